//! `paas deploy MANIFEST [--dry-run]`: plans the move of every host to the
//! manifest's release; with `--dry-run` prints the plan, else carries it
//! out through the host agents (resuming an unfinished deployment of the
//! same release) and prints its timeline.

use std::path::Path;

use super::{actual, agents, ended, load_manifest, state_dir, CmdError};
use crate::deploy::execute;
use crate::deploy::plan::{plan, render};
use crate::deploy::timeline::{self, Timeline};

pub async fn run(manifest: &Path, state: Option<&Path>, dry_run: bool) -> Result<String, CmdError> {
    let m = load_manifest(manifest)?;
    if dry_run {
        let actual = actual(manifest, &m, state).await?;
        return Ok(render(&m, &plan(&m, &actual)));
    }
    let mut hosts = agents(manifest, &m)?;
    let mut t =
        Timeline::open(&state_dir(manifest, &m)).map_err(|e| CmdError::new(e.to_string()))?;
    let from = t.events().len();
    let result = execute::deploy(&m, &mut hosts, &mut t).await;
    let events = timeline::render(&t.events()[from..]);
    match result {
        Ok(e) => ended(&e, &events),
        Err(e) => Err(CmdError::new(format!("{events}paas deploy: {e}"))),
    }
}
