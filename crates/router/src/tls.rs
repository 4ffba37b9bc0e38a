//! TLS termination: rustls (ring provider) with several certificates chosen
//! by SNI; ALPN offers h2 and http/1.1.

use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::TlsCertificate;
use crate::RouterError;

/// Picks the first certificate valid for the client's SNI name, else the
/// first certificate.
pub struct SniResolver {
    certs: Vec<Arc<CertifiedKey>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certs", &self.certs.len())
            .finish()
    }
}

fn valid_for(ck: &CertifiedKey, name: &str) -> bool {
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    let Some(der) = ck.cert.first() else {
        return false;
    };
    webpki::EndEntityCert::try_from(der)
        .and_then(|c| c.verify_is_valid_for_subject_name(&server_name))
        .is_ok()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            if let Some(ck) = self.certs.iter().find(|ck| valid_for(ck, name)) {
                return Some(ck.clone());
            }
        }
        self.certs.first().cloned()
    }
}

fn tls_err(what: String, e: impl fmt::Display) -> RouterError {
    RouterError::Config(format!("{what}: {e}"))
}

/// Loads one certificate chain and key (PEM).
pub fn load_certified_key(c: &TlsCertificate) -> Result<CertifiedKey, RouterError> {
    let provider = rustls::crypto::ring::default_provider();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert_file)
        .map_err(|e| tls_err(format!("reading {}", c.cert_file.display()), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("parsing {}", c.cert_file.display()), e))?;
    if chain.is_empty() {
        return Err(RouterError::Config(format!(
            "{}: no certificate",
            c.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .map_err(|e| tls_err(format!("reading {}", c.key_file.display()), e))?;
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| tls_err(format!("loading {}", c.cert_file.display()), e))
}

/// The server config for the HTTPS listener.
pub fn server_config(certs: &[TlsCertificate]) -> Result<Arc<rustls::ServerConfig>, RouterError> {
    if certs.is_empty() {
        return Err(RouterError::Config(
            "tls_listen needs at least one of tls_certificates".into(),
        ));
    }
    let certs = certs
        .iter()
        .map(|c| load_certified_key(c).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err("tls versions".into(), e))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(SniResolver { certs }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
