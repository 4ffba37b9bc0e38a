//! Zip an app directory in memory for upload (unix permissions kept; what
//! `crate::ignore` excludes is skipped). A single `.zip`/`.jar` file is
//! uploaded as is.

use crate::error::{CliError, Result};
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zip::write::SimpleFileOptions;

use crate::ignore::Ignore;

pub fn zip_path(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::io(format!("reading app path {}", path.display()), e))?;
    if meta.is_file() {
        return std::fs::read(path)
            .map_err(|e| CliError::io(format!("reading {}", path.display()), e));
    }
    let ignore = Ignore::for_dir(path)
        .map_err(|e| CliError::io(format!("reading {}", path.join(".cfignore").display()), e))?;
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    add_dir(&mut zw, path, "", &ignore)?;
    let cur = zw
        .finish()
        .map_err(|e| CliError::other(format!("zipping {}: {e}", path.display())))?;
    Ok(cur.into_inner())
}

fn add_dir(
    zw: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
    dir: &Path,
    prefix: &str,
    ignore: &Ignore,
) -> Result<()> {
    let ioerr = |e| CliError::io(format!("reading {}", dir.display()), e);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(ioerr)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(ioerr)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        // Follow symlinks; skip dangling ones.
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        if ignore.excluded(&rel, meta.is_dir()) {
            continue;
        }
        let zerr =
            |e: zip::result::ZipError| CliError::other(format!("zipping {}: {e}", p.display()));
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            zw.add_directory(
                format!("{rel}/"),
                SimpleFileOptions::default().unix_permissions(mode | 0o700),
            )
            .map_err(zerr)?;
            add_dir(zw, &p, &format!("{rel}/"), ignore)?;
        } else if meta.is_file() {
            let data = std::fs::read(&p)
                .map_err(|e| CliError::io(format!("reading {}", p.display()), e))?;
            let opts = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(mode)
                .large_file(data.len() >= u32::MAX as usize);
            zw.start_file(rel, opts).map_err(zerr)?;
            zw.write_all(&data)
                .map_err(|e| CliError::io(format!("zipping {}", p.display()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zips_with_permissions_and_skips_vcs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("app.py"), "print(1)").expect("write");
        std::fs::create_dir_all(d.join("bin")).expect("mkdir");
        std::fs::write(d.join("bin/run"), "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(d.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::create_dir_all(d.join(".git")).expect("mkdir");
        std::fs::write(d.join(".git/HEAD"), "x").expect("write");
        std::fs::create_dir_all(d.join(".cf")).expect("mkdir");
        std::fs::write(d.join(".cf/config.json"), "{}").expect("write");
        std::fs::write(d.join(".cfignore"), "*.log\nbin/secret\n").expect("write");
        std::fs::write(d.join("debug.log"), "x").expect("write");
        std::fs::write(d.join("bin/secret"), "x").expect("write");
        std::fs::write(d.join("manifest.yml"), "applications: []").expect("write");

        let bytes = zip_path(d).expect("zip");
        let mut z = zip::ZipArchive::new(Cursor::new(bytes)).expect("archive");
        let names: Vec<String> = z
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .collect();
        assert!(names.contains(&"app.py".to_string()));
        assert!(names.contains(&"bin/run".to_string()));
        assert!(!names
            .iter()
            .any(|n| n.starts_with(".git") || n.starts_with(".cf")));
        for gone in ["debug.log", "bin/secret", "manifest.yml"] {
            assert!(!names.iter().any(|n| n == gone), "{gone} in {names:?}");
        }
        let mut f = z.by_name("bin/run").expect("entry");
        assert_eq!(f.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut s = String::new();
        f.read_to_string(&mut s).expect("read");
        assert_eq!(s, "#!/bin/sh\n");
    }
}
