//! Admin buildpacks: zips served by the controller, cached on the DEA by
//! sha256 under `<state_dir>/admin_buildpacks/<sha256>/`, unpacked with the
//! safe unzip (nothing outside, no symlinks, exec bits kept). A zip may hold
//! `bin/` at its top level or under a single top-level directory.

use std::path::{Path, PathBuf};

use proto::archive::ArchiveLimits;
use proto::AdminBuildpack;

use crate::error::{DeaError, Result};

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The unpacked buildpack for `bp`, downloading it unless cached.
pub async fn ensure(
    http: &reqwest::Client,
    cache_dir: &Path,
    bp: &AdminBuildpack,
    limits: ArchiveLimits,
) -> Result<PathBuf> {
    if !is_sha256(&bp.sha256) {
        return Err(DeaError::Staging(format!(
            "buildpack {}: invalid checksum {:?}",
            bp.name, bp.sha256
        )));
    }
    let sha = bp.sha256.to_ascii_lowercase();
    let dest = cache_dir.join(&sha);
    if dest.join("bin").is_dir() {
        return Ok(dest);
    }
    tokio::fs::create_dir_all(cache_dir)
        .await
        .map_err(|e| DeaError::io(cache_dir, e))?;
    let tmp = cache_dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let zip = tmp.with_extension("zip");
    let result = fetch_and_unpack(http, bp, &sha, &zip, &tmp, &dest, limits).await;
    let _ = tokio::fs::remove_file(&zip).await;
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    result.map(|()| dest)
}

async fn fetch_and_unpack(
    http: &reqwest::Client,
    bp: &AdminBuildpack,
    sha: &str,
    zip: &Path,
    tmp: &Path,
    dest: &Path,
    limits: ArchiveLimits,
) -> Result<()> {
    match crate::http::download(http, &bp.uri, zip, limits.max_packed_bytes).await? {
        None => {
            return Err(DeaError::Staging(format!(
                "buildpack {}: bits not found",
                bp.name
            )))
        }
        Some(got) if got != sha => {
            return Err(DeaError::Staging(format!(
                "buildpack {}: checksum mismatch (expected {sha}, got {got})",
                bp.name
            )))
        }
        Some(_) => {}
    }
    let (zip, tmp, dest, name) = (
        zip.to_path_buf(),
        tmp.to_path_buf(),
        dest.to_path_buf(),
        bp.name.clone(),
    );
    tokio::task::spawn_blocking(move || unpack(&zip, &tmp, &dest, &name, limits))
        .await
        .map_err(|e| DeaError::Staging(format!("unzip task: {e}")))?
}

/// Most an admin buildpack may hold once unzipped.
const MAX_UNZIPPED: u64 = 2 * 1024 * 1024 * 1024;

/// Unzips into `tmp`, then moves the buildpack root to `dest`.
fn unpack(zip: &Path, tmp: &Path, dest: &Path, name: &str, limits: ArchiveLimits) -> Result<()> {
    std::fs::create_dir_all(tmp).map_err(|e| DeaError::io(tmp, e))?;
    let f = std::fs::File::open(zip).map_err(|e| DeaError::io(zip, e))?;
    let skipped = crate::archive::unzip_safe(
        std::io::BufReader::new(f),
        tmp,
        limits.unpacked_at_most(MAX_UNZIPPED),
    )?;
    if skipped > 0 {
        tracing::warn!(buildpack = %name, skipped, "skipped unsafe entries in buildpack zip");
    }
    let root = find_root(tmp).ok_or_else(|| {
        DeaError::Staging(format!(
            "buildpack {name}: no bin/ directory at the top of the zip or under a single directory"
        ))
    })?;
    make_scripts_executable(&root.join("bin"))?;
    match std::fs::rename(&root, dest) {
        Ok(()) => Ok(()),
        // Another staging unpacked the same bits first.
        Err(_) if dest.join("bin").is_dir() => Ok(()),
        Err(e) => Err(DeaError::io(dest, e)),
    }
}

/// `dir` when it holds `bin/`, else its single subdirectory holding `bin/`.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    if dir.join("bin").is_dir() {
        return Some(dir.to_path_buf());
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "__MACOSX")
        .map(|e| e.path())
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() && only.join("bin").is_dir() => Some(only.clone()),
        _ => None,
    }
}

/// Zips made without unix modes lose exec bits: give them back to `bin/*`.
fn make_scripts_executable(bin: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(bin).map_err(|e| DeaError::io(bin, e))? {
        let Ok(e) = e else { continue };
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_file() {
            let mode = meta.permissions().mode() | 0o555;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| DeaError::io(&p, e))?;
        }
    }
    Ok(())
}

/// Copies a directory tree (files keep their modes; symlinks are skipped).
pub fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| DeaError::io(dst, e))?;
    for e in std::fs::read_dir(src).map_err(|e| DeaError::io(src, e))? {
        let e = e.map_err(|e| DeaError::io(src, e))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().map_err(|e| DeaError::io(&from, e))?;
        if ft.is_dir() {
            copy_dir(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| DeaError::io(&from, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn zip_bytes(entries: &[(&str, &[u8], Option<u32>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            let mut opts = zip::write::SimpleFileOptions::default();
            if let Some(m) = mode {
                opts = opts.unix_permissions(*m);
            }
            w.start_file(*name, opts).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    fn unpack_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<()>) {
        let tmp = tempfile::tempdir().expect("tmp");
        let zip = tmp.path().join("bp.zip");
        std::fs::write(&zip, bytes).expect("write");
        let r = unpack(
            &zip,
            &tmp.path().join("x"),
            &tmp.path().join("dest"),
            "t",
            ArchiveLimits::default(),
        );
        (tmp, r)
    }

    #[test]
    fn unpacks_top_level_and_single_dir_layouts() {
        for prefix in ["", "my-bp-1.0/"] {
            let d = format!("{prefix}bin/detect");
            let c = format!("{prefix}bin/compile");
            let (tmp, r) = unpack_bytes(&zip_bytes(&[
                (&d, b"#!/bin/sh\nexit 0\n", Some(0o755)),
                (&c, b"#!/bin/sh\n", None),
            ]));
            r.expect("unpack");
            let dest = tmp.path().join("dest");
            let mode = |f: &str| {
                std::fs::metadata(dest.join(f))
                    .expect("meta")
                    .permissions()
                    .mode()
            };
            assert_eq!(mode("bin/detect") & 0o111, 0o111, "{prefix}");
            assert_eq!(mode("bin/compile") & 0o111, 0o111, "exec bit restored");
        }
    }

    #[test]
    fn refuses_zips_without_bin_and_never_writes_outside() {
        let (tmp, r) = unpack_bytes(&zip_bytes(&[
            ("a/bin/detect", b"x", None),
            ("b/README", b"x", None),
        ]));
        assert!(r.is_err());
        assert!(!tmp.path().join("dest").exists());
        let (tmp, r) = unpack_bytes(&zip_bytes(&[
            ("bin/detect", b"x", Some(0o755)),
            ("../escape.txt", b"x", None),
        ]));
        r.expect("unpack");
        assert!(!tmp.path().join("escape.txt").exists());
        assert!(!tmp
            .path()
            .parent()
            .expect("parent")
            .join("escape.txt")
            .exists());
    }

    #[test]
    fn copies_trees_with_modes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("bin")).expect("mkdir");
        std::fs::write(src.join("bin/run"), "x").expect("write");
        std::fs::set_permissions(src.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).expect("link");
        copy_dir(&src, &tmp.path().join("dst")).expect("copy");
        let m = std::fs::metadata(tmp.path().join("dst/bin/run"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o755);
        assert!(tmp.path().join("dst/link").symlink_metadata().is_err());
        assert!(is_sha256(&"a".repeat(64)) && !is_sha256("../x"));
    }
}
