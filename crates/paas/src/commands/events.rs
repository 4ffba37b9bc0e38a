//! `paas events MANIFEST`: the deployment timeline, every deployer's step
//! with its host, components, result and output.

use std::path::Path;

use super::{load_manifest, state_dir, CmdError};
use crate::deploy::timeline;

pub fn run(manifest: &Path) -> Result<String, CmdError> {
    let m = load_manifest(manifest)?;
    let path = state_dir(manifest, &m).join("events.jsonl");
    let events = timeline::read_events(&path)
        .map_err(|e| CmdError::new(format!("cannot read {}: {e}", path.display())))?;
    if events.is_empty() {
        return Ok(format!("No deployment of {} yet.\n", m.name));
    }
    Ok(timeline::render(&events))
}
