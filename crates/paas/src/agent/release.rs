//! Releases installed side by side: `<state>/releases/<version>/`, copied
//! from a release directory (`VERSION` + `bin/`) once, never changed after.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read the release at {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the release at {path} is version {found:?}, not {want}")]
    Version {
        path: String,
        found: String,
        want: String,
    },
    #[error("cannot install release {version}: {source}")]
    Install {
        version: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a release version")]
    Name(String),
}

/// Where releases are installed under an agent's state dir.
pub fn releases_dir(state: &Path) -> PathBuf {
    state.join("releases")
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Installs release `version` from `from` (unless installed): checks its
/// `VERSION`, copies it to a temp dir and renames it into place. Returns
/// the installed directory. Blocking.
pub fn install(state: &Path, version: &str, from: &Path) -> Result<PathBuf, ReleaseError> {
    if !plain(version) {
        return Err(ReleaseError::Name(version.to_string()));
    }
    let root = releases_dir(state);
    let dest = root.join(version);
    if dest.join("VERSION").is_file() {
        return Ok(dest);
    }
    let shown = from.display().to_string();
    let found =
        std::fs::read_to_string(from.join("VERSION")).map_err(|source| ReleaseError::Read {
            path: shown.clone(),
            source,
        })?;
    if found.trim() != version {
        return Err(ReleaseError::Version {
            path: shown,
            found: found.trim().chars().take(64).collect(),
            want: version.to_string(),
        });
    }
    let io = |source| ReleaseError::Install {
        version: version.to_string(),
        source,
    };
    std::fs::create_dir_all(&root).map_err(io)?;
    let tmp = root.join(format!(".tmp-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(from, &tmp).map_err(io)?;
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            // Installed meanwhile by another start: fine.
            if dest.join("VERSION").is_file() {
                Ok(dest)
            } else {
                Err(io(e))
            }
        }
    }
}

/// Copies a directory tree (files' contents and modes; links followed).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if std::fs::metadata(&path)?.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

/// The installed releases, by name.
pub fn installed(state: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(releases_dir(state))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(dir: &Path, version: &str) -> PathBuf {
        let r = dir.join(format!("src-{version}"));
        std::fs::create_dir_all(r.join("bin")).expect("mkdir");
        std::fs::write(r.join("VERSION"), format!("{version}\n")).expect("write");
        std::fs::write(r.join("bin/tool"), version).expect("write");
        r
    }

    #[test]
    fn releases_install_side_by_side_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let v1 = release(dir.path(), "v1");
        let v2 = release(dir.path(), "v2");
        let a = install(&state, "v1", &v1).expect("v1");
        let b = install(&state, "v2", &v2).expect("v2");
        assert_eq!(
            std::fs::read_to_string(a.join("bin/tool")).expect("read"),
            "v1"
        );
        assert_eq!(
            std::fs::read_to_string(b.join("bin/tool")).expect("read"),
            "v2"
        );
        // Installed once: a changed source does not change it.
        std::fs::write(v1.join("bin/tool"), "tampered").expect("write");
        install(&state, "v1", &v1).expect("again");
        assert_eq!(
            std::fs::read_to_string(a.join("bin/tool")).expect("read"),
            "v1"
        );
        assert_eq!(installed(&state), vec!["v1", "v2"]);
    }

    #[test]
    fn a_release_must_be_the_version_it_is_asked_as() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let v1 = release(dir.path(), "v1");
        assert!(matches!(
            install(&state, "v2", &v1),
            Err(ReleaseError::Version { .. })
        ));
        assert!(matches!(
            install(&state, "../x", &v1),
            Err(ReleaseError::Name(_))
        ));
        assert!(matches!(
            install(&state, "v1", &dir.path().join("missing")),
            Err(ReleaseError::Read { .. })
        ));
        assert!(installed(&state).is_empty());
    }
}
