//! `paas agent --host NAME --listen ADDR --state-dir DIR --token-file FILE
//! [--tls-cert FILE --tls-key FILE]`: runs the host agent until SIGTERM or
//! SIGINT (then drains and stops its components).
//!
//! `paas agent install ...`: writes the agent's systemd unit and prints
//! the `systemctl` commands that start it (it runs none of them).

use crate::agent::install::{self, InstallArgs, Written};
use crate::agent::{self, AgentConfig};

use super::CmdError;

pub async fn run(cfg: AgentConfig) -> Result<String, CmdError> {
    let shutdown = async {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    agent::run(cfg, shutdown)
        .await
        .map_err(|e| CmdError::new(format!("paas agent: {e}")))?;
    Ok(String::new())
}

/// Checks the flags, writes the unit, and says what to run next.
pub fn install(args: &InstallArgs) -> Result<String, CmdError> {
    let done =
        install::install(args).map_err(|e| CmdError::new(format!("paas agent install: {e}")))?;
    let what = match done.written {
        Written::New => "Wrote",
        Written::Unchanged => "Unchanged",
        Written::Replaced => "Replaced",
    };
    let scheme = if done.spec.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut out = format!(
        "{what} {} (0644): the agent of {} on {scheme}://{}\n\n{}\nNext, as root:\n  systemctl daemon-reload && systemctl enable --now paas-agent\n",
        done.path.display(),
        done.spec.host,
        done.spec.listen,
        done.text,
    );
    if done.written == Written::Replaced {
        out.push_str("  systemctl restart paas-agent    (an agent already running keeps the old flags until then)\n");
    }
    if done.spec.listen.ip().is_loopback() {
        out.push_str(&format!(
            "Note: {} is reachable from this host only; the deployer calls the agent at the manifest's address and agent_port.\n",
            done.spec.listen
        ));
    }
    Ok(out)
}
