//! `paas lab up|down|status --dir D`: simulated hosts on this machine
//! (crate::lab::dev; `cf dev start --hosts N` runs these).

use std::path::PathBuf;

use super::CmdError;
use crate::lab::dev;

pub enum Action {
    Up {
        dir: PathBuf,
        hosts: usize,
        lb_port: u16,
        database_url: String,
    },
    Down(PathBuf),
    Status(PathBuf),
}

/// `dir` made absolute (the agents and the manifest name paths in it).
fn absolute(dir: PathBuf) -> Result<PathBuf, CmdError> {
    if dir.is_absolute() {
        return Ok(dir);
    }
    std::env::current_dir()
        .map(|c| c.join(dir))
        .map_err(|e| CmdError::new(format!("paas lab: current directory: {e}")))
}

pub async fn run(action: Action) -> Result<String, CmdError> {
    let failed = |e: crate::lab::LabError| CmdError::new(format!("paas lab: {e}"));
    match action {
        Action::Up {
            dir,
            hosts,
            lb_port,
            database_url,
        } => {
            let bin_dir = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(PathBuf::from))
                .ok_or_else(|| CmdError::new("paas lab: cannot find this binary's directory"))?;
            dev::up(&dev::UpArgs {
                dir: absolute(dir)?,
                hosts,
                lb_port,
                database_url,
                bin_dir,
            })
            .await
            .map_err(failed)
        }
        Action::Down(dir) => dev::down(&absolute(dir)?).map_err(failed),
        Action::Status(dir) => dev::status(&absolute(dir)?).await.map_err(failed),
    }
}
