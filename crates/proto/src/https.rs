//! The one TLS stack of the HTTP clients (cf CLI, DEA, health manager):
//! reqwest over rustls with the ring provider, verifying against Mozilla's
//! roots (`webpki-roots`) plus any private CA named in the config.
//!
//! reqwest is built with `rustls-no-provider` (no aws-lc-rs), so a client
//! built with its default TLS settings needs a process-wide provider:
//! [`install_ring`] puts ring there. [`client_builder`] hands reqwest a
//! complete rustls config instead and needs nothing installed.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("reading CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA file {0}: no certificate in it")]
    CaEmpty(PathBuf),
    #[error("CA file {path}: {source}")]
    CaBad {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Makes ring rustls' process-wide provider (once; later calls do nothing).
/// Needed before `reqwest::Client::new()` or a builder without
/// [`client_builder`]'s config.
pub fn install_ring() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: it is ring too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of PEM files (a CA file may hold several).
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| HttpsError::CaRead {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(HttpsError::CaEmpty(path.to_path_buf()));
    }
    Ok(certs)
}

/// Mozilla's roots plus the certificates of `ca_files`.
pub fn root_store(ca_files: &[PathBuf]) -> Result<RootCertStore, HttpsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in ca_files {
        for cert in read_pem_certs(path)? {
            roots.add(cert).map_err(|source| HttpsError::CaBad {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(roots)
}

/// How a client checks servers' certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verify {
    /// Webpki roots plus these CA files (PEM); names checked.
    #[default]
    Roots,
    RootsAnd(Vec<PathBuf>),
    /// Accept any certificate (`cf api --skip-ssl-validation`).
    Skip,
}

/// The rustls client config for `verify` (ring, TLS 1.2 and 1.3,
/// ALPN http/1.1: the clients speak HTTP/1.1 only).
pub fn client_config(verify: &Verify) -> Result<rustls::ClientConfig, HttpsError> {
    let builder = rustls::ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?;
    let mut cfg = match verify {
        Verify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(ring())))
            .with_no_client_auth(),
        Verify::Roots => builder
            .with_root_certificates(root_store(&[])?)
            .with_no_client_auth(),
        Verify::RootsAnd(files) => builder
            .with_root_certificates(root_store(files)?)
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A reqwest builder speaking HTTP and HTTPS with [`client_config`].
pub fn client_builder(verify: &Verify) -> Result<reqwest::ClientBuilder, HttpsError> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(verify)?))
}

/// The verification of a component's `tls_ca_file` setting: the webpki
/// roots, plus that CA when set.
pub fn verify_with_ca(tls_ca_file: Option<&Path>) -> Verify {
    match tls_ca_file {
        Some(p) => Verify::RootsAnd(vec![p.to_path_buf()]),
        None => Verify::Roots,
    }
}

/// Checks signatures but accepts any certificate: the user asked for it.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a server's certificate was refused, if that is what `err` (a
/// reqwest error, or anything with one in its source chain) is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// The certificate names other hosts: (names in it, the host asked for).
    Name {
        presented: Vec<String>,
        host: String,
    },
    /// Not signed by a trusted CA.
    UnknownAuthority,
    /// Expired, not yet valid, revoked, malformed...: rustls' words.
    Other(String),
}

impl std::fmt::Display for CertProblem {
    /// In the words of Go's crypto/x509, which CF CLI users know.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::Name { presented, host } if presented.is_empty() => {
                write!(
                    f,
                    "x509: certificate is not valid for any names, but wanted to match {host}"
                )
            }
            CertProblem::Name { presented, host } => write!(
                f,
                "x509: certificate is valid for {}, not {host}",
                presented.join(", ")
            ),
            CertProblem::UnknownAuthority => {
                write!(f, "x509: certificate signed by unknown authority")
            }
            CertProblem::Other(s) => write!(f, "x509: {s}"),
        }
    }
}

/// The certificate problem in an error's source chain (rustls errors sit
/// inside `io::Error`s, whose `source()` skips them: look inside those).
pub fn cert_problem(err: &(dyn std::error::Error + 'static)) -> Option<CertProblem> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // io::Errors may nest (hyper-util wraps tokio-rustls' one).
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(next) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = next;
        }
        let found = inner.downcast_ref::<rustls::Error>();
        if let Some(rustls::Error::InvalidCertificate(c)) = found {
            return Some(describe(c));
        }
        cur = e.source();
    }
    None
}

fn describe(c: &rustls::CertificateError) -> CertProblem {
    use rustls::CertificateError as C;
    match c {
        C::NotValidForNameContext {
            expected,
            presented,
        } => CertProblem::Name {
            presented: presented.iter().map(|p| unwrap_name(p)).collect(),
            host: match expected {
                ServerName::DnsName(d) => d.as_ref().to_string(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            },
        },
        C::NotValidForName => CertProblem::Name {
            presented: vec![],
            host: "the host".into(),
        },
        C::UnknownIssuer => CertProblem::UnknownAuthority,
        other => CertProblem::Other(format!("{other}")),
    }
}

/// `DnsName("a.example")` (webpki's Debug form) → `a.example`.
fn unwrap_name(p: &str) -> String {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(rest) = p.strip_prefix(prefix) {
            return rest.trim_end_matches(')').trim_end_matches('"').to_string();
        }
    }
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_go_words() {
        let p = CertProblem::Name {
            presented: vec![unwrap_name("DnsName(\"other.example\")")],
            host: "api.sys.localhost".into(),
        };
        assert_eq!(
            p.to_string(),
            "x509: certificate is valid for other.example, not api.sys.localhost"
        );
        assert_eq!(unwrap_name("IpAddress(10.0.0.1)"), "10.0.0.1");
    }

    #[test]
    fn configs_build_and_bad_ca_files_are_reported() {
        for v in [Verify::Roots, Verify::Skip] {
            let cfg = client_config(&v).expect("config");
            assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
        let missing = Verify::RootsAnd(vec![PathBuf::from("/nonexistent/ca.pem")]);
        assert!(matches!(
            client_config(&missing),
            Err(HttpsError::CaRead { .. })
        ));
        let dir = std::env::temp_dir().join(format!("https-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem\n").expect("write");
        assert!(matches!(
            client_config(&Verify::RootsAnd(vec![empty])),
            Err(HttpsError::CaEmpty(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
