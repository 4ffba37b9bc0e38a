//! `cf dev start --hosts N`, and `cf dev stop|status` of such a platform:
//! the platform on N simulated hosts on this machine, deployed by the
//! operator's tool as on real hosts (`paas lab up|down|status`,
//! docs/operations.md "A platform on simulated hosts"). Root only.

use crate::devenv::{self as d, Layout};
use crate::error::{CliError, Result};

/// Whether `paas lab up` left hosts running in this dev dir.
pub fn is_up(l: &Layout) -> bool {
    l.dir.join("lab.json").exists()
}

/// `paas lab ACTION --dir DIR ARGS`, its output passed through.
async fn paas(action: &str, l: &Layout, args: &[String]) -> Result<()> {
    let bin = d::find_binary("paas")?;
    let status = tokio::process::Command::new(&bin)
        .args(["lab", action, "--dir"])
        .arg(&l.dir)
        .args(args)
        .status()
        .await
        .map_err(|e| CliError::io(format!("running {}", bin.display()), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::other(format!(
            "paas lab {action} failed ({status})"
        )))
    }
}

pub async fn start(l: &Layout, hosts: u16, lb_port: u16, database_url: &str) -> Result<()> {
    println!(
        "Starting the platform on {hosts} simulated hosts in {}...",
        l.dir.display()
    );
    paas(
        "up",
        l,
        &[
            "--hosts".into(),
            hosts.to_string(),
            "--lb-port".into(),
            lb_port.to_string(),
            "--database-url".into(),
            database_url.into(),
        ],
    )
    .await
}

pub async fn stop(l: &Layout) -> Result<()> {
    println!("Stopping the simulated hosts in {}...", l.dir.display());
    paas("down", l, &[]).await
}

pub async fn status(l: &Layout) -> Result<()> {
    paas("status", l, &[]).await
}
