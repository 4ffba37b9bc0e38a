//! The agent's API over HTTPS (`paas agent --tls-cert FILE --tls-key FILE`,
//! docs/operations.md "TLS between the deployer and the agents"): rustls
//! with the ring provider, the workspace's one TLS stack. Off by default.
//!
//! The key file must be readable by its owner only, as the token file is:
//! the agent refuses to start otherwise. Handshakes run in their own tasks
//! with a time limit, so a slow or silent client holds up no one else; the
//! finished streams are handed to axum through [`TlsListener`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for axum to take them.
const QUEUE: usize = 64;

/// The agent's certificate chain and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the agent's TLS setup was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {why}")]
    Cert { path: String, why: String },
    #[error("TLS key {path}: {why}")]
    Key { path: String, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn key_err(path: &Path, why: impl ToString) -> TlsError {
    TlsError::Key {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn cert_err(path: &Path, why: impl ToString) -> TlsError {
    TlsError::Cert {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Checks that a private file (the TLS key) is readable by its owner only.
pub fn check_private(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| key_err(path, e))?;
    if !meta.is_file() {
        return Err(key_err(path, "not a file"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_err(
            path,
            "must be readable by its owner only (chmod 600)",
        ));
    }
    Ok(())
}

/// The server config of `files`: the key's mode checked, the chain and
/// key read and matched, ALPN http/1.1 (the API speaks HTTP/1.1).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    check_private(&files.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_err(&files.cert, e))?;
    if chain.is_empty() {
        return Err(cert_err(&files.cert, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_err(&files.key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| {
        key_err(
            &files.key,
            format!("does not go with {}: {e}", files.cert.display()),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener handing axum TLS streams whose handshake is done.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp`, each handshake in its own task.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "agent API: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "agent API: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "agent API: TLS handshake timeout"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The TCP listener closes with its task.
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accepting task is gone (only when dropped): nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_others_can_read_or_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "not a key\n").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: key.clone(),
        };
        let e = server_config(&files).expect_err("0640 refused");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = server_config(&files).expect_err("no certificate file");
        assert!(matches!(e, TlsError::Cert { .. }), "{e}");
        std::fs::write(&files.cert, "not a certificate\n").expect("write");
        let e = server_config(&files).expect_err("no certificate in it");
        assert!(e.to_string().contains("no certificate"), "{e}");
        let missing = TlsFiles {
            cert: files.cert.clone(),
            key: dir.path().join("absent.pem"),
        };
        assert!(matches!(server_config(&missing), Err(TlsError::Key { .. })));
    }
}
