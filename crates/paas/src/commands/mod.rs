//! One file per subcommand.

pub mod agent;
pub mod deploy;
pub mod status;

use std::path::{Path, PathBuf};

use crate::deploy::manifest::Manifest;
use crate::deploy::state::Actual;

/// A command's failure: what to print, and the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CmdError {
    pub message: String,
    pub code: u8,
}

impl CmdError {
    pub fn new(message: impl Into<String>) -> CmdError {
        CmdError {
            message: message.into(),
            code: 1,
        }
    }
}

/// Reads and checks a manifest file.
pub fn load_manifest(path: &Path) -> Result<Manifest, CmdError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CmdError::new(format!("cannot read {}: {e}", path.display())))?;
    Manifest::parse(&text).map_err(|e| CmdError::new(format!("{}: {e}", path.display())))
}

/// The deployer's state file of a manifest's deployment (default:
/// `.paas/<name>/state.json` beside the manifest).
pub fn state_path(manifest: &Path, m: &Manifest, given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join(".paas")
            .join(&m.name)
            .join("state.json"),
    }
}

/// What the hosts run as last recorded (nothing when there is no record).
pub fn load_state(path: &Path) -> Result<Actual, CmdError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            CmdError::new(format!("{} is not a deployment state: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Actual::default()),
        Err(e) => Err(CmdError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}
