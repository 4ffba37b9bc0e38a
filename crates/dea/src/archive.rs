//! Safe archive handling: package zips, droplet and cache tarballs. Entries
//! that would land outside the target directory (`..`, absolute paths, links
//! pointing out) are skipped; unix permissions are kept.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use proto::archive::{ArchiveLimits, Budget, LimitError};

use crate::error::{DeaError, Result};

/// A relative path made only of normal components, or `None`.
pub fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Whether a symlink at `entry` (relative) pointing to `target` stays inside.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn refused(what: &str, e: LimitError) -> DeaError {
    DeaError::Archive(format!("{what} is refused: {e}"))
}

/// Extracts a zip into `dest` within `limits`: the entry count its end
/// record declares is checked before the central directory is parsed, the
/// sizes its entries declare before anything is written, and the bytes
/// written as they are inflated (no entry beyond its declared size).
/// Returns the number of skipped entries. Symlinks are never created.
pub fn unzip_safe<R: Read + Seek>(
    mut reader: R,
    dest: &Path,
    limits: ArchiveLimits,
) -> Result<usize> {
    let packed = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| DeaError::Archive(format!("bad zip: {e}")))?;
    let mut budget = Budget::new(limits, packed).map_err(|e| refused("the zip", e))?;
    match proto::archive::zip_declared_entries(&mut reader) {
        Ok(Some(n)) if n > limits.max_entries => {
            return Err(refused(
                "the zip",
                LimitError::Entries {
                    limit: limits.max_entries,
                },
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(DeaError::Archive(format!("bad zip: {e}"))),
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| DeaError::Archive(format!("bad zip: {e}")))?;
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| DeaError::Archive(format!("bad zip: {e}")))?;
    let mut declared = Budget::new(limits, packed).map_err(|e| refused("the zip", e))?;
    for i in 0..zip.len() {
        declared.entry().map_err(|e| refused("the zip", e))?;
        let size = zip
            .by_index_raw(i)
            .map_err(|e| DeaError::Archive(format!("bad zip entry: {e}")))?
            .size();
        declared.add(size).map_err(|e| refused("the zip", e))?;
    }
    let mut skipped = 0;
    for i in 0..zip.len() {
        budget.entry().map_err(|e| refused("the zip", e))?;
        let mut f = zip
            .by_index(i)
            .map_err(|e| DeaError::Archive(format!("bad zip entry: {e}")))?;
        let Ok(name) = f.name().map(|n| n.to_string()) else {
            skipped += 1;
            continue;
        };
        let Some(rel) = safe_relative(Path::new(&name)) else {
            tracing::warn!(entry = %name, "skipping unsafe zip entry");
            skipped += 1;
            continue;
        };
        let mode = f.unix_mode();
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            tracing::warn!(entry = %name, "skipping symlink in zip");
            skipped += 1;
            continue;
        }
        let out = dest.join(&rel);
        if f.is_dir() {
            std::fs::create_dir_all(&out).map_err(|e| DeaError::io(&out, e))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DeaError::io(parent, e))?;
        }
        let mut w = std::fs::File::create(&out).map_err(|e| DeaError::io(&out, e))?;
        let size = f.size();
        let cap = size.min(budget.room()).saturating_add(1);
        // (The zip reader refuses data beyond the declared size too.)
        let n = std::io::copy(&mut (&mut f).take(cap), &mut w)
            .map_err(|e| DeaError::Archive(format!("the zip is refused: {name}: {e}")))?;
        if n > size {
            return Err(refused(
                "the zip",
                LimitError::Lies {
                    name,
                    declared: size,
                },
            ));
        }
        budget.add(n).map_err(|e| refused("the zip", e))?;
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            let perm = std::fs::Permissions::from_mode((m & 0o777) | 0o600);
            std::fs::set_permissions(&out, perm).map_err(|e| DeaError::io(&out, e))?;
        }
    }
    Ok(skipped)
}

/// Extracts a gzipped tarball of `packed` bytes into `dest` within
/// `limits` (entries counted, sizes summed before each entry is written,
/// the inflated stream capped); returns the number of skipped entries
/// (escaping paths, hard links, links pointing outside, devices).
pub fn untar_gz_safe<R: Read>(
    reader: R,
    dest: &Path,
    limits: ArchiveLimits,
    packed: u64,
) -> Result<usize> {
    let mut budget = Budget::new(limits, packed).map_err(|e| refused("the tarball", e))?;
    std::fs::create_dir_all(dest).map_err(|e| DeaError::io(dest, e))?;
    // Headers and padding: at most 1.5 KB per entry beyond the contents.
    let overhead = limits
        .max_entries
        .saturating_mul(1536)
        .saturating_add(1 << 20);
    let inflated =
        flate2::read::GzDecoder::new(reader).take(budget.room().saturating_add(overhead));
    let mut ar = tar::Archive::new(inflated);
    ar.set_preserve_permissions(true);
    let mut skipped = 0;
    let entries = ar
        .entries()
        .map_err(|e| DeaError::Archive(format!("bad tarball: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DeaError::Archive(format!("bad tar entry: {e}")))?;
        budget.entry().map_err(|e| refused("the tarball", e))?;
        let path = entry
            .path()
            .map_err(|e| DeaError::Archive(format!("bad tar path: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        let ok = match safe_relative(&path) {
            None => path.components().all(|c| matches!(c, Component::CurDir)) && kind.is_dir(),
            Some(rel) if kind.is_symlink() => entry
                .link_name()
                .ok()
                .flatten()
                .is_some_and(|t| link_stays_inside(&rel, &t)),
            Some(_) => kind.is_file() || kind.is_dir() || kind == tar::EntryType::Continuous,
        };
        if !ok {
            if !path.as_os_str().is_empty() && path != Path::new(".") && path != Path::new("./") {
                tracing::warn!(entry = %path.display(), "skipping unsafe tar entry");
                skipped += 1;
            }
            continue;
        }
        budget
            .add(entry.header().size().unwrap_or(0))
            .map_err(|e| refused("the tarball", e))?;
        if !entry
            .unpack_in(dest)
            .map_err(|e| DeaError::Archive(format!("extract {}: {e}", path.display())))?
        {
            skipped += 1;
        }
    }
    Ok(skipped)
}

/// Writes a gzipped tarball of `entries` (name in archive, dir on disk);
/// plain files given as (name, bytes) are appended at the root.
pub fn tar_gz<W: Write>(out: W, dirs: &[(&str, &Path)], files: &[(&str, &[u8])]) -> Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    let err = |e: std::io::Error| DeaError::Archive(format!("tar: {e}"));
    for (name, dir) in dirs {
        b.append_dir_all(name, dir).map_err(err)?;
    }
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        h.set_cksum();
        b.append_data(&mut h, name, *bytes).map_err(err)?;
    }
    let gz = b.into_inner().map_err(err)?;
    gz.finish().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn unlimited() -> ArchiveLimits {
        ArchiveLimits::from_config(0, 0, 0, 0)
    }

    fn zip_bytes(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            w.start_file(*name, opts).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn unzip_skips_escaping_entries_and_keeps_exec_bits() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dest = tmp.path().join("app");
        std::fs::create_dir_all(&dest).expect("mkdir");
        let z = zip_bytes(&[
            ("../evil.txt", b"x", 0o644),
            ("/abs/evil.txt", b"x", 0o644),
            ("a/../../evil2.txt", b"x", 0o644),
            ("ok/run.sh", b"#!/bin/sh\n", 0o755),
            ("app.py", b"print(1)", 0o644),
        ]);
        let skipped = unzip_safe(std::io::Cursor::new(z), &dest, unlimited()).expect("unzip");
        assert_eq!(skipped, 3);
        assert!(!tmp.path().join("evil.txt").exists());
        assert!(!tmp.path().join("evil2.txt").exists());
        assert!(!Path::new("/abs/evil.txt").exists());
        let mode = std::fs::metadata(dest.join("ok/run.sh"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            std::fs::read(dest.join("app.py")).expect("read"),
            b"print(1)"
        );
        let entries: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").collect();
        assert_eq!(entries.len(), 1, "only app/ in the parent");
    }

    #[test]
    fn untar_round_trip_and_refuses_escapes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/f.txt"), "hi").expect("write");
        std::os::unix::fs::symlink("f.txt", src.join("sub/ok-link")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", src.join("bad-link")).expect("link");
        std::os::unix::fs::symlink("../../../x", src.join("sub/bad-link2")).expect("link");
        let tgz = tar_gz(Vec::new(), &[("app", &src)], &[("info.yml", b"a: b\n")]).expect("tar");
        let dest = tmp.path().join("dest");
        let skipped = untar_gz_safe(&tgz[..], &dest, unlimited(), tgz.len() as u64).expect("untar");
        assert_eq!(skipped, 2);
        assert_eq!(
            std::fs::read_to_string(dest.join("app/sub/f.txt")).expect("read"),
            "hi"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("app/sub/ok-link")).expect("read"),
            "hi"
        );
        assert!(dest.join("info.yml").exists());
        assert!(dest.join("app/bad-link").symlink_metadata().is_err());

        // A hand-made archive with a `../` path writes nothing outside.
        let mut raw = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().expect("gnu").name[..10].copy_from_slice(b"../evil.tx");
        h.set_cksum();
        raw.append(&h, &b"x"[..]).expect("append");
        let bytes = raw.into_inner().expect("inner").finish().expect("finish");
        let d2 = tmp.path().join("d2");
        assert_eq!(
            untar_gz_safe(&bytes[..], &d2, unlimited(), bytes.len() as u64).expect("untar"),
            1
        );
        assert!(!tmp.path().join("evil.tx").exists());
    }

    #[test]
    fn expansion_is_bounded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let big = vec![0u8; 64 * 1024];
        let z = zip_bytes(&[("a", &big, 0o644), ("b", &big, 0o644)]);
        let e = unzip_safe(
            std::io::Cursor::new(z.clone()),
            &tmp.path().join("z1"),
            unlimited().unpacked_at_most(100_000),
        )
        .expect_err("over the limit");
        assert!(e.to_string().contains("expands to more than"), "{e}");
        assert!(
            !tmp.path().join("z1").exists(),
            "refused on the declared sizes, before writing"
        );
        unzip_safe(
            std::io::Cursor::new(z),
            &tmp.path().join("z2"),
            unlimited().unpacked_at_most(200_000),
        )
        .expect("fits");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("f"), &big).expect("write");
        let tgz = tar_gz(Vec::new(), &[("app", &src)], &[]).expect("tar");
        let n = tgz.len() as u64;
        assert!(untar_gz_safe(
            &tgz[..],
            &tmp.path().join("t1"),
            unlimited().unpacked_at_most(1000),
            n
        )
        .is_err());
        untar_gz_safe(
            &tgz[..],
            &tmp.path().join("t2"),
            unlimited().unpacked_at_most(100_000),
            n,
        )
        .expect("fits");
    }

    #[test]
    fn safe_relative_rules() {
        assert_eq!(
            safe_relative(Path::new("./a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(safe_relative(Path::new("a/../b")), None);
        assert_eq!(safe_relative(Path::new("/a")), None);
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("../../c")));
    }
}
