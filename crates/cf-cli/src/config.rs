//! `$CF_HOME/.cf/config.json`: API endpoint, tokens and the targeted org/space.

use crate::error::{CliError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub guid: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// API endpoint, e.g. `http://api.sys.localhost:8080` (no trailing slash).
    pub api: Option<String>,
    pub api_version: Option<String>,
    /// Token endpoint base (the root's `links.uaa.href`); the API when absent.
    pub uaa: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub user: Option<String>,
    pub org: Option<Target>,
    pub space: Option<Target>,
    /// Accept any TLS certificate from the API (`cf api URL
    /// --skip-ssl-validation`, kept for every later command; `cf api URL`
    /// without the flag turns checking back on).
    pub skip_ssl_validation: bool,
}

/// `$CF_HOME` (default `$HOME`, else the current directory).
pub fn cf_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CF_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn config_path(home: &Path) -> PathBuf {
    home.join(".cf").join("config.json")
}

impl Config {
    pub fn load(home: &Path) -> Result<Config> {
        let path = config_path(home);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Config::default()),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                CliError::other(format!("Config file {} is invalid: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(CliError::io(format!("reading {}", path.display()), e)),
        }
    }

    pub fn save(&self, home: &Path) -> Result<()> {
        let path = config_path(home);
        let dir = path.parent().unwrap_or(home);
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| CliError::other(e.to_string()))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| CliError::io(format!("writing {}", tmp.display()), e))?;
            f.write_all(&body)
                .map_err(|e| CliError::io(format!("writing {}", tmp.display()), e))?;
        }
        std::fs::rename(&tmp, &path)
            .map_err(|e| CliError::io(format!("writing {}", path.display()), e))
    }

    pub fn api(&self) -> Result<&str> {
        self.api.as_deref().ok_or(CliError::NoApi)
    }

    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or("unknown")
    }

    /// Org, space and user, or the CF CLI's error for what is missing.
    pub fn target(&self) -> Result<(Target, Target, String)> {
        self.api()?;
        if self.access_token.is_none() {
            return Err(CliError::NotLoggedIn);
        }
        let org = self.org.clone().ok_or(CliError::NoOrg)?;
        let space = self.space.clone().ok_or(CliError::NoSpace)?;
        Ok((org, space, self.user_name().to_string()))
    }

    pub fn logout(&mut self) {
        self.access_token = None;
        self.refresh_token = None;
        self.user = None;
        self.org = None;
        self.space = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Config::load(dir.path()).expect("load empty"),
            Config::default()
        );
        let cfg = Config {
            api: Some("http://api.sys.localhost:8080".into()),
            access_token: Some("t".into()),
            org: Some(Target {
                guid: "g".into(),
                name: "dev".into(),
            }),
            ..Config::default()
        };
        cfg.save(dir.path()).expect("save");
        assert_eq!(Config::load(dir.path()).expect("load"), cfg);
    }

    #[test]
    fn skip_ssl_validation_is_saved_and_defaults_to_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            api: Some("https://api.example.com".into()),
            skip_ssl_validation: true,
            ..Config::default()
        };
        cfg.save(dir.path()).expect("save");
        let loaded = Config::load(dir.path()).expect("load");
        assert!(loaded.skip_ssl_validation);
        // A config written before the field existed: verification on.
        std::fs::write(
            config_path(dir.path()),
            r#"{"api":"https://api.example.com","access_token":"t"}"#,
        )
        .expect("write");
        assert!(
            !Config::load(dir.path())
                .expect("load old")
                .skip_ssl_validation
        );
        // Logging out keeps the endpoint's choice (it is the endpoint's).
        let mut c = loaded;
        c.logout();
        assert!(c.skip_ssl_validation);
    }

    #[test]
    fn target_reports_what_is_missing() {
        let mut cfg = Config::default();
        assert!(matches!(cfg.target(), Err(CliError::NoApi)));
        cfg.api = Some("http://x".into());
        assert!(matches!(cfg.target(), Err(CliError::NotLoggedIn)));
        cfg.access_token = Some("t".into());
        assert!(matches!(cfg.target(), Err(CliError::NoOrg)));
    }
}
