//! Built-in buildpacks (shell scripts embedded in the binary) and the pure
//! parts of the buildpack contract: Procfile, start command priority
//! (`bin/release` output: `staging::plan`).

use std::path::{Path, PathBuf};

use crate::error::{DeaError, Result};

pub mod admin;
#[cfg(test)]
mod script_tests;

pub struct Builtin {
    pub name: &'static str,
    pub detect: &'static str,
    pub compile: &'static str,
    pub release: &'static str,
    /// Whether plain detection may pick it (binary only matches a Procfile).
    pub detectable: bool,
}

/// In detection order: python, nodejs, java, staticfile, binary.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "python",
        detect: include_str!("buildpacks/python/detect"),
        compile: include_str!("buildpacks/python/compile"),
        release: include_str!("buildpacks/python/release"),
        detectable: true,
    },
    Builtin {
        name: "nodejs",
        detect: include_str!("buildpacks/nodejs/detect"),
        compile: include_str!("buildpacks/nodejs/compile"),
        release: include_str!("buildpacks/nodejs/release"),
        detectable: true,
    },
    Builtin {
        name: "java",
        detect: include_str!("buildpacks/java/detect"),
        compile: include_str!("buildpacks/java/compile"),
        release: include_str!("buildpacks/java/release"),
        detectable: true,
    },
    // After the language buildpacks: a Node or Python app that also ships an
    // index.html is theirs.
    Builtin {
        name: "staticfile",
        detect: include_str!("buildpacks/staticfile/detect"),
        compile: include_str!("buildpacks/staticfile/compile"),
        release: include_str!("buildpacks/staticfile/release"),
        detectable: true,
    },
    Builtin {
        name: "binary",
        detect: include_str!("buildpacks/binary/detect"),
        compile: include_str!("buildpacks/binary/compile"),
        release: include_str!("buildpacks/binary/release"),
        detectable: true,
    },
];

/// Fallback used when nothing detects but the user gave a start command.
pub const FALLBACK: &str = "binary";

/// Writes every built-in to `<dir>/<name>/bin/{detect,compile,release}`.
pub fn install(dir: &Path) -> Result<()> {
    for bp in BUILTINS {
        install_one(bp, &dir.join(bp.name))?;
    }
    Ok(())
}

/// Writes one built-in to `<dest>/bin/{detect,compile,release}`.
pub fn install_one(bp: &Builtin, dest: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dest.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| DeaError::io(&bin, e))?;
    for (file, text) in [
        ("detect", bp.detect),
        ("compile", bp.compile),
        ("release", bp.release),
    ] {
        let p = bin.join(file);
        std::fs::write(&p, text).map_err(|e| DeaError::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| DeaError::io(&p, e))?;
    }
    Ok(())
}

/// The built-in named `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Directory of an installed built-in.
pub fn path(dir: &Path, name: &str) -> Option<PathBuf> {
    BUILTINS
        .iter()
        .any(|b| b.name == name)
        .then(|| dir.join(name))
}

/// The `web:` command of a Procfile.
pub fn procfile_web(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "web" && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// Start command priority: request > Procfile `web:` > release's web.
pub fn choose_start_command(
    request: Option<&str>,
    procfile: Option<&str>,
    release: Option<&str>,
) -> Option<String> {
    [request, procfile, release]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfile_parsing() {
        assert_eq!(
            procfile_web("worker: x\nweb: ./run --port $PORT\n"),
            Some("./run --port $PORT".into())
        );
        assert_eq!(procfile_web("web:\n"), None);
        assert_eq!(procfile_web("# nothing"), None);
        assert_eq!(
            procfile_web("web: python3 -c 'a:b'"),
            Some("python3 -c 'a:b'".into())
        );
    }

    #[test]
    fn start_command_priority() {
        assert_eq!(
            choose_start_command(Some("a"), Some("b"), Some("c")),
            Some("a".into())
        );
        assert_eq!(
            choose_start_command(None, Some("b"), Some("c")),
            Some("b".into())
        );
        assert_eq!(
            choose_start_command(Some(" "), None, Some("c")),
            Some("c".into())
        );
        assert_eq!(choose_start_command(None, None, None), None);
    }

    #[test]
    fn installs_scripts() {
        let tmp = tempfile::tempdir().expect("tmp");
        install(tmp.path()).expect("install");
        assert!(tmp.path().join("python/bin/compile").exists());
        assert!(path(tmp.path(), "binary").is_some());
        assert!(path(tmp.path(), "ruby").is_none());
    }
}
