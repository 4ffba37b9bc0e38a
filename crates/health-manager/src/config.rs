//! Health manager configuration (docs/conventions.md "Health manager config").

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::HmError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub nats_url: String,
    /// The component's bus identity and TLS (`bus = { user, password, .. }`;
    /// docs/architecture.md §3.4). `nats_url` may list several servers,
    /// comma-separated.
    pub bus: proto::bus::BusCredentials,
    /// The controller's internal API base URL (its `internal_listen`; for
    /// `/internal/v1/desired`).
    pub cc_url: String,
    /// A PEM CA file trusted, besides the webpki roots, for an `https`
    /// `cc_url`. None: the roots only.
    pub tls_ca_file: Option<PathBuf>,
    /// The controller's internal API token; no default (the HM refuses to
    /// start without one).
    pub internal_api_token: String,
    pub pass_interval_ms: u64,
    /// DEA heartbeat interval; a DEA silent for 3 intervals is gone, and the
    /// HM waits 3 intervals after boot before acting.
    pub heartbeat_interval_s: f64,
    pub desired_refresh_ms: u64,
    /// Written with `ready` once connected and listening.
    pub addr_file: Option<PathBuf>,
    /// At most this many instance starts per pass.
    pub max_starts_per_pass: usize,
    /// A start issued for (app, index, version) is not re-issued for this long
    /// unless that index crashes; once a heartbeat shows the index live the
    /// start is settled. The DEA reports a started instance at once (BORN),
    /// so a start not seen within this time was lost (e.g. sent to a DEA that
    /// had just died) and is issued again.
    pub start_timeout_s: f64,
    /// Crashes of one index restarted at once; later ones wait.
    pub crash_immediate_restarts: u32,
    /// First backoff delay after the immediate restarts; doubles each crash.
    pub crash_backoff_initial_s: f64,
    pub crash_backoff_max_s: f64,
    /// An index's crash count is forgotten after this long without a crash.
    pub crash_reset_s: f64,
    /// This HM's name in the leader lock (default: a random uuid).
    pub id: String,
    /// Act only while holding the leader lock (a JetStream KV key). When
    /// false, this HM always acts (one HM, or NATS without JetStream).
    pub leader_lock: bool,
    /// KV bucket of the lock; its `max_age` is the lock's TTL.
    pub leader_bucket: String,
    /// The lock expires this long after its holder's last renewal (renewed
    /// every pass, so it must exceed `pass_interval_ms`).
    pub leader_ttl_s: f64,
    /// Copies of the lock bucket's stream: 1 on one nats-server; on a
    /// cluster, the cluster's size up to 3 (docs/architecture.md §3.5) so
    /// the lock survives a node going down. Used when the HM creates the
    /// bucket.
    pub leader_replicas: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nats_url: "nats://127.0.0.1:4222".into(),
            bus: Default::default(),
            cc_url: "http://127.0.0.1:9023".into(),
            tls_ca_file: None,
            internal_api_token: String::new(),
            pass_interval_ms: 1000,
            heartbeat_interval_s: 2.0,
            desired_refresh_ms: 2000,
            addr_file: None,
            max_starts_per_pass: 50,
            start_timeout_s: 5.0,
            crash_immediate_restarts: 3,
            crash_backoff_initial_s: 30.0,
            crash_backoff_max_s: 960.0,
            crash_reset_s: 1800.0,
            id: uuid::Uuid::new_v4().to_string(),
            leader_lock: true,
            leader_bucket: proto::busauth::DEFAULT_HM_BUCKET.into(),
            leader_ttl_s: 3.0,
            leader_replicas: 1,
        }
    }
}

impl Config {
    /// Reads the TOML file (if any), then applies `NATS_URL`.
    pub fn load(path: Option<&Path>) -> Result<Config, HmError> {
        let mut config: Config =
            proto::config::load_toml(path).map_err(|e| HmError::Config(e.to_string()))?;
        if let Some(url) = proto::config::nats_url_override() {
            config.nats_url = url;
        }
        Ok(config)
    }

    /// A DEA not heard from for this long is gone.
    pub fn dea_timeout_s(&self) -> f64 {
        3.0 * self.heartbeat_interval_s
    }

    /// Desired state older than this is not acted upon.
    pub fn desired_max_age_s(&self) -> f64 {
        3.0 * self.desired_refresh_ms as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_seconds_and_unknown_fields_fail() {
        let c: Config =
            toml::from_str("heartbeat_interval_s = 2\ncc_url = \"http://x\"").expect("parse");
        assert_eq!(c.heartbeat_interval_s, 2.0);
        assert_eq!(c.dea_timeout_s(), 6.0);
        assert_eq!(c.desired_max_age_s(), 6.0);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
    }
}
