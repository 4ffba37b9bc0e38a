//! `paas deploy MANIFEST [--dry-run]`: plans the move of every host to the
//! manifest's release and (with `--dry-run`) prints the plan.

use std::path::Path;

use super::{load_manifest, load_state, state_path, CmdError};
use crate::deploy::plan::{plan, render};

pub fn run(manifest: &Path, state: Option<&Path>, dry_run: bool) -> Result<String, CmdError> {
    let m = load_manifest(manifest)?;
    let actual = load_state(&state_path(manifest, &m, state))?;
    let p = plan(&m, &actual);
    if dry_run {
        return Ok(render(&m, &p));
    }
    Err(CmdError {
        message: format!(
            "{}paas deploy: carrying the plan out needs the host agents (`paas agent`), which this release does not have yet; nothing was changed",
            render(&m, &p)
        ),
        code: 2,
    })
}
