//! Router configuration (docs/conventions.md "Router config").

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::RouterError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Proxy address (port 0 = any free port).
    pub listen: String,
    /// Where to write the bound proxy address once listening.
    pub addr_file: Option<PathBuf>,
    /// Admin address (`/health`, `/routes`).
    pub admin_listen: String,
    pub admin_addr_file: Option<PathBuf>,
    pub nats_url: String,
    /// The component's bus identity and TLS (`bus = { user, password, .. }`;
    /// docs/architecture.md §3.4). `nats_url` may list several servers,
    /// comma-separated.
    pub bus: proto::bus::BusCredentials,
    /// Announced in `router.start`: how often registrars must re-register.
    pub minimum_register_interval_s: u64,
    /// Default stale threshold of a route without its own `stale_threshold_s`.
    pub prune_threshold_s: u64,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout_s: u64,
    /// Lame duck (gorouter's `drain_wait`): on a stop signal the router
    /// first keeps serving for this long while `GET /health` answers 503,
    /// so that a load balancer checking it stops sending new clients; only
    /// then does it stop accepting and drain (`drain_timeout_s`). 0: stop
    /// at once.
    pub drain_wait_s: u64,
    /// Backend connect timeout.
    pub connect_timeout_ms: u64,
    /// A client must send its first request head within this time of
    /// connecting, and every later head within this time of its first byte
    /// (slow-loris protection; also a stalled TLS handshake or HTTP/2
    /// preface).
    pub client_header_timeout_ms: u64,
    /// A client connection with no request in flight and nothing received
    /// for this long is closed (HTTP/1 keep-alive and HTTP/2).
    pub client_keepalive_timeout_ms: u64,
    /// How long to wait for a backend's response headers (502 after).
    pub endpoint_timeout_ms: u64,
    /// Upgraded (websocket) connections with no bytes either way are closed
    /// after this long.
    pub idle_timeout_s: u64,
    /// Largest request head (request line + headers); larger → 431 / 414.
    pub max_header_bytes: usize,
    /// Largest request body (0 = unlimited); a larger `Content-Length` → 413.
    pub max_request_body_bytes: u64,
    /// Requests in flight per backend (0 = unlimited); when every backend of
    /// a route is full → 503 `no_endpoints`.
    pub max_conns_per_backend: usize,
    /// Client connections open at once on the HTTP and HTTPS listeners
    /// together (0 = unlimited); beyond it a new connection is closed at
    /// once (after a `503` on plain HTTP).
    pub max_client_connections: usize,
    /// A request body whose next bytes do not arrive within this time ends
    /// the request: 408 to the client (and its connection closed), the
    /// backend connection closed.
    pub request_body_timeout_ms: u64,
    /// What to do with a client's `X-Forwarded-Client-Cert` (gorouter's
    /// `forwarded_client_cert`).
    pub forwarded_client_cert: ForwardedClientCert,
    /// Runtime worker threads (0 = one per core).
    pub worker_threads: usize,
    /// The controller (`http://host:port`) whose route assignments decide
    /// which app may register which route; none admits every registration.
    pub route_authority_url: Option<String>,
    /// The controller's internal API token, for `route_authority_url`.
    pub route_authority_token: String,
    /// With one worker thread: keep polling for work this long after the
    /// last request activity instead of sleeping (0 = never); see
    /// `busypoll.rs`.
    pub busy_poll_us: u64,
    /// Write the access log to stdout (it always goes to `logs.<app_id>`).
    pub access_log_stdout: bool,
    /// HTTPS listener (none by default); needs `tls_certificates`.
    pub tls_listen: Option<String>,
    pub tls_addr_file: Option<PathBuf>,
    /// Certificates served by SNI (the first one without a match or SNI).
    pub tls_certificates: Vec<TlsCertificate>,
}

/// gorouter's `forwarded_client_cert` modes. The router asks for no client
/// certificate (no mTLS), so only `always_forward` ever passes a client's
/// `X-Forwarded-Client-Cert` on; `forward` and `sanitize_set` remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedClientCert {
    /// Pass the client's header on unchanged.
    AlwaysForward,
    /// Pass it on only from a client that presented a certificate over TLS
    /// (never, without mTLS).
    Forward,
    /// Remove the client's header; set it from the client's certificate
    /// when there is one (never, without mTLS).
    #[default]
    SanitizeSet,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            addr_file: None,
            admin_listen: "127.0.0.1:0".into(),
            admin_addr_file: None,
            nats_url: "nats://127.0.0.1:4222".into(),
            bus: Default::default(),
            minimum_register_interval_s: 5,
            prune_threshold_s: 20,
            drain_timeout_s: 10,
            drain_wait_s: 0,
            connect_timeout_ms: 5000,
            client_header_timeout_ms: 15_000,
            client_keepalive_timeout_ms: 75_000,
            endpoint_timeout_ms: 900_000,
            idle_timeout_s: 900,
            max_header_bytes: 64 * 1024,
            // Above the controller's 1 GiB upload limit, so that it, not
            // the router, refuses oversized uploads (docs/router.md).
            max_request_body_bytes: 2 * 1024 * 1024 * 1024,
            // routing-release's default `router.backends.max_conns`.
            max_conns_per_backend: 500,
            max_client_connections: 10_000,
            request_body_timeout_ms: 30_000,
            forwarded_client_cert: ForwardedClientCert::SanitizeSet,
            worker_threads: 0,
            route_authority_url: None,
            route_authority_token: String::new(),
            busy_poll_us: 50,
            access_log_stdout: true,
            tls_listen: None,
            tls_addr_file: None,
            tls_certificates: Vec::new(),
        }
    }
}

impl Config {
    /// Reads the TOML file (if any), then applies `NATS_URL`.
    pub fn load(path: Option<&Path>) -> Result<Config, RouterError> {
        let mut config: Config =
            proto::config::load_toml(path).map_err(|e| RouterError::Config(e.to_string()))?;
        if let Some(url) = proto::config::nats_url_override() {
            config.nats_url = url;
        }
        Ok(config)
    }
}

/// Writes `contents` to `path` atomically (temp file, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), RouterError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| RouterError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_and_rejects_unknown() {
        let c: Config =
            toml::from_str("listen = \"127.0.0.1:0\"\nprune_threshold_s = 3").expect("parse");
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.prune_threshold_s, 3);
        assert_eq!(c.minimum_register_interval_s, 5);
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        let c: Config = toml::from_str(
            "tls_listen = \"127.0.0.1:0\"\n[[tls_certificates]]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"",
        )
        .expect("tls");
        assert_eq!(c.tls_certificates.len(), 1);
        let c: Config = toml::from_str("forwarded_client_cert = \"always_forward\"").expect("xfcc");
        assert_eq!(c.forwarded_client_cert, ForwardedClientCert::AlwaysForward);
        assert!(toml::from_str::<Config>("forwarded_client_cert = \"sometimes\"").is_err());
        let d = Config::default();
        assert_eq!(d.forwarded_client_cert, ForwardedClientCert::SanitizeSet);
        assert_eq!(d.max_conns_per_backend, 500);
    }
}
