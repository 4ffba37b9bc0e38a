//! `paas rollback MANIFEST`: returns every host the last deployment
//! changed to the release it ran before, canary first.

use std::path::Path;

use super::{agents, ended, load_manifest, state_dir, CmdError};
use crate::deploy::execute;
use crate::deploy::timeline::{self, Timeline};

pub async fn run(manifest: &Path) -> Result<String, CmdError> {
    let m = load_manifest(manifest)?;
    let mut hosts = agents(manifest, &m)?;
    let mut t =
        Timeline::open(&state_dir(manifest, &m)).map_err(|e| CmdError::new(e.to_string()))?;
    let from = t.events().len();
    match execute::rollback(&m, &mut hosts, &mut t).await {
        Ok(Some(e)) => ended(&e, &timeline::render(&t.events()[from..])),
        Ok(None) => Ok("Nothing to roll back.\n".into()),
        Err(e) => Err(CmdError::new(format!("paas rollback: {e}"))),
    }
}
