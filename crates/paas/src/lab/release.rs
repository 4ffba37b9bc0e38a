//! A lab's releases: a directory per version with its `VERSION` and a
//! `bin/` of scripts that run binaries built on this machine (a real
//! release holds the binaries themselves; docs/operations.md "Releases").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::LabError;

/// The release's programs besides `nats-server`.
pub const PROGRAMS: [&str; 4] = ["cloud-controller", "router", "health-manager", "dea"];

/// Writes `root/<version>/`: `bins` are (program, binary to run); `over`
/// replaces some programs with a script body of their own (a bad release
/// in the tests).
pub fn write(
    root: &Path,
    version: &str,
    bins: &[(&str, PathBuf)],
    over: &[(&str, &str)],
) -> Result<(), LabError> {
    let dir = root.join(version);
    let io = |p: &Path, e: std::io::Error| LabError(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(dir.join("bin")).map_err(|e| io(&dir, e))?;
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).map_err(|e| io(&dir, e))?;
    for (name, path) in bins {
        let body = match over.iter().find(|(n, _)| n == name) {
            Some((_, b)) => b.to_string(),
            None => format!("exec '{}' \"$@\"", path.display()),
        };
        let script = dir.join("bin").join(name);
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n"))
            .and_then(|()| {
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| io(&script, e))?;
    }
    Ok(())
}

/// `nats-server` (on PATH or in /usr/sbin) and [`PROGRAMS`] in `dir`.
pub fn binaries_in(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>, LabError> {
    let nats = proto::nats_server::find()
        .ok_or_else(|| LabError(proto::nats_server::NOT_FOUND.to_string()))?;
    let mut out = vec![("nats-server", nats)];
    for p in PROGRAMS {
        let path = dir.join(p);
        if !path.exists() {
            return Err(LabError(format!(
                "no {} (build it with `cargo build --bins`)",
                path.display()
            )));
        }
        out.push((p, path));
    }
    Ok(out)
}
