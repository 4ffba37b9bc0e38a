//! One file per subcommand.

pub mod agent;
pub mod deploy;
pub mod events;
pub mod lab;
pub mod rollback;
pub mod status;

use std::path::{Path, PathBuf};

use crate::deploy::agents::AgentHosts;
use crate::deploy::execute::{Ended, Hosts};
use crate::deploy::manifest::Manifest;
use crate::deploy::render::Secrets;
use crate::deploy::rollout::Phase;
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

/// The deployment's state dir: `.paas/<name>/` beside the manifest
/// (timeline, lock, secrets).
pub fn state_dir(manifest: &Path, m: &Manifest) -> PathBuf {
    manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join(".paas")
        .join(&m.name)
}

/// The recorded state file of a manifest's deployment (default:
/// `state.json` in its state dir).
pub fn state_path(manifest: &Path, m: &Manifest, given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => state_dir(manifest, m).join("state.json"),
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

/// The deployment's secrets, made on first use and kept 0600.
pub fn load_secrets(dir: &Path, m: &Manifest) -> Result<Secrets, CmdError> {
    let path = dir.join("secrets.json");
    let err = |e: &dyn std::fmt::Display| CmdError::new(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let mut secrets = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| err(&e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = Secrets::generate(m);
            save_secrets(&path, &s).map_err(|e| err(&e))?;
            s
        }
        Err(e) => return Err(err(&e)),
    };
    if secrets.complete(m) {
        save_secrets(&path, &secrets).map_err(|e| err(&e))?;
    }
    Ok(secrets)
}

fn save_secrets(path: &Path, s: &Secrets) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    crate::agent::supervisor::write_private(path, &text)
}

/// A file the manifest names, on the deployer's machine: relative to the
/// manifest's directory.
pub fn beside_manifest(manifest: &Path, file: &str) -> PathBuf {
    manifest.parent().unwrap_or(Path::new(".")).join(file)
}

/// The agents of the manifest's hosts (its `agent_token_file` needed):
/// over HTTPS, trusting the manifest's `certificates.ca` alone, when it
/// names one.
pub fn agents(manifest: &Path, m: &Manifest) -> Result<AgentHosts, CmdError> {
    let Some(file) = &m.agent_token_file else {
        return Err(CmdError::new(format!(
            "{}: agent_token_file: needed to reach the host agents",
            manifest.display()
        )));
    };
    let path = beside_manifest(manifest, file);
    let token = crate::agent::read_token(&path).map_err(|e| CmdError::new(e.to_string()))?;
    let ca = m
        .certificates
        .ca
        .as_deref()
        .map(|ca| beside_manifest(manifest, ca));
    let secrets = load_secrets(&state_dir(manifest, m), m)?;
    AgentHosts::new(m, &secrets, &token, ca.as_deref())
        .map_err(|e| CmdError::new(format!("{}: {e}", manifest.display())))
}

/// What the hosts run: from their agents when the manifest names a token,
/// else as recorded in `state` (or the default state file).
pub async fn actual(
    manifest: &Path,
    m: &Manifest,
    state: Option<&Path>,
) -> Result<Actual, CmdError> {
    if state.is_none() && m.agent_token_file.is_some() {
        let mut hosts = agents(manifest, m)?;
        return hosts.actual().await.map_err(CmdError::new);
    }
    load_state(&state_path(manifest, m, state))
}

/// How a deploy or rollback ended, as printed; the exit code is 0 only
/// when it is done.
pub fn ended(e: &Ended, events: &str) -> Result<String, CmdError> {
    let phase = serde_json::to_value(e.phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let text = format!(
        "{events}Deployment #{}: {phase}{}\n",
        e.deployment,
        e.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if e.phase == Phase::Done {
        Ok(text)
    } else {
        Err(CmdError::new(text))
    }
}
