//! The components' shared config convention (docs/architecture.md §2.2): a
//! TOML file, every field defaulted, then environment overrides (`NATS_URL`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// Reads the TOML file at `path`, or the defaults when there is none.
pub fn load_toml<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
        path: p.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: p.into(),
        source,
    })
}

/// Writes `text` to `path`, readable by its owner only (0600, also when the
/// file existed with another mode): configs holding passwords and tokens,
/// nats-server's users, keys.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

/// The `NATS_URL` override, when set and not empty.
pub fn nats_url_override() -> Option<String> {
    std::env::var("NATS_URL").ok().filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        name: String,
        port: u16,
    }

    #[test]
    fn loads_defaults_file_and_reports_errors_with_the_path() {
        assert_eq!(load_toml::<Demo>(None).expect("defaults"), Demo::default());
        let dir = std::env::temp_dir().join(format!("proto-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good.toml");
        std::fs::write(&good, "port = 7\n").expect("write");
        assert_eq!(
            load_toml::<Demo>(Some(&good)).expect("load"),
            Demo {
                name: String::new(),
                port: 7
            }
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "bogus = 1\n").expect("write");
        let e = load_toml::<Demo>(Some(&bad)).expect_err("unknown field");
        assert!(e.to_string().contains("bad.toml"), "{e}");
        let missing = load_toml::<Demo>(Some(&dir.join("none.toml"))).expect_err("missing");
        assert!(matches!(missing, ConfigError::Read { .. }));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
