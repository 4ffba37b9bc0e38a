//! The host agent (`paas agent`, docs/operations.md "Host agent"): one per
//! host, the BOSH agent and monit in one. It keeps the host's desired set
//! of components (from the deployer, over an authenticated HTTP API),
//! installs their releases side by side, supervises their processes
//! (restart with backoff), drains them before they stop, and reports each
//! one's health. Its API is plain HTTP unless it is given a certificate
//! and key ([`tls`]); `paas agent install` ([`install`]) writes the systemd
//! unit that keeps it running on a host.

pub mod api;
pub mod install;
pub mod plan;
pub mod release;
pub mod spec;
pub mod supervisor;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spec::{AgentStatus, Desired};

/// How often the agent reconciles.
pub const PASS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// The deployment's agent token (a file readable by its owner only).
    pub token_file: PathBuf,
    /// Where to write the bound address (for port 0).
    pub addr_file: Option<PathBuf>,
    /// Serve the API over HTTPS with this certificate and key.
    pub tls: Option<tls::TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent token {path}: {why}")]
    Token { path: String, why: String },
    #[error("agent state dir {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the token: the file must be readable by its owner only.
pub fn read_token(path: &Path) -> Result<String, AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |why: String| AgentError::Token {
        path: path.display().to_string(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err("must be readable by its owner only (chmod 600)".into()));
    }
    let token = std::fs::read_to_string(path)
        .map_err(|e| err(e.to_string()))?
        .trim()
        .to_string();
    if token.len() < 16 {
        return Err(err("holds no token of at least 16 characters".into()));
    }
    Ok(token)
}

/// Runs the agent until `shutdown`; then drains and stops every component.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let token = read_token(&cfg.token_file)?;
    // A bad certificate or key stops the agent before it listens.
    let tls_config = cfg.tls.as_ref().map(tls::server_config).transpose()?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| AgentError::StateDir {
        path: cfg.state_dir.display().to_string(),
        source,
    })?;
    let desired_file = cfg.state_dir.join("desired.json");
    let desired: Desired = std::fs::read_to_string(&desired_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::watch::channel(desired);
    let status = Arc::new(Mutex::new(AgentStatus {
        host: cfg.host.clone(),
        ..Default::default()
    }));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| AgentError::Listen {
        addr: cfg.listen,
        source,
    })?;
    if let Some(f) = &cfg.addr_file {
        if let Err(e) = std::fs::write(f, bound.to_string()) {
            tracing::warn!(error = %e, "cannot write the address file");
        }
    }
    let app = api::router(api::Shared {
        token: Arc::new(token),
        desired: tx,
        status: status.clone(),
        desired_file: Arc::new(desired_file),
    });
    let server = match tls_config {
        None => {
            tracing::info!(host = %cfg.host, addr = %bound, "agent listening (http)");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "agent API stopped");
                }
            })
        }
        Some(config) => {
            let listener =
                tls::TlsListener::new(listener, config).map_err(|source| AgentError::Listen {
                    addr: cfg.listen,
                    source,
                })?;
            tracing::info!(host = %cfg.host, addr = %bound, "agent listening (https)");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "agent API stopped");
                }
            })
        }
    };
    let mut sup = supervisor::Supervisor::new(&cfg.host, &cfg.state_dir);
    tokio::pin!(shutdown);
    loop {
        let desired = rx.borrow_and_update().clone();
        sup.pass(&desired).await;
        if let Ok(mut s) = status.lock() {
            *s = sup.status();
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(PASS_EVERY) => {}
            _ = rx.changed() => {}
        }
    }
    tracing::info!("agent stopping: draining its components");
    server.abort();
    sup.stop_all().await;
    Ok(())
}
