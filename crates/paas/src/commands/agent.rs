//! `paas agent --host NAME --listen ADDR --state-dir DIR --token-file FILE`:
//! runs the host agent until SIGTERM or SIGINT (then drains and stops its
//! components).

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
