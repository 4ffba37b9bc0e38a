//! Controller configuration (docs/conventions.md "Cloud controller config").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The public API (the router sends `api.<system_domain>` here).
    pub listen: SocketAddr,
    pub addr_file: Option<PathBuf>,
    /// The internal API (`/internal/*`: desired state, route assignments,
    /// signed blob URLs): a listener of its own, never routed, bound where
    /// only platform components reach it (docs/architecture.md §7).
    pub internal_listen: SocketAddr,
    /// Where to write the bound internal address once listening.
    pub internal_addr_file: Option<PathBuf>,
    pub nats_url: String,
    /// The component's bus identity and TLS (`bus = { user, password, .. }`;
    /// docs/architecture.md §3.4). `nats_url` may list several servers,
    /// comma-separated.
    pub bus: proto::bus::BusCredentials,
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default `sqlite://<data_dir>/cc.db?mode=rwc`.
    pub database_url: Option<String>,
    /// The shared blobstore (`postgres://...`: large objects in that
    /// database, usually `database_url`'s); unset: the data dir alone
    /// (docs/architecture.md §6.9). Every controller of a platform with
    /// more than one must name the same one.
    pub blobstore_url: Option<String>,
    pub system_domain: String,
    pub apps_domain: String,
    pub admin_user: String,
    pub admin_password: String,
    /// The internal API's bearer token, shared with the router and the
    /// health manager. No default: the controller refuses to start without
    /// one (`cf dev start` and the test harness generate one).
    pub internal_api_token: String,
    pub token_ttl_s: u64,
    /// The platform's staging timeout (CF: 15 minutes); `cf push -t` does
    /// not change it.
    pub staging_timeout_s: u64,
    /// Memory of a new app's web process when the push does not say
    /// (CF: 1G).
    pub default_app_memory_mb: u64,
    pub register_route: bool,
    /// Failed logins of one user name within `login_lock_s` that lock it
    /// for `login_lock_s` (UAA's lockout); a client address locks after
    /// ten times as many.
    pub login_max_failures: u32,
    pub login_lock_s: u64,
    /// Password checks (argon2, ~19 MiB each) running at once; more wait
    /// up to 2 s, then get 503.
    pub password_checks: usize,
    /// Live log streams one user may hold open at once; more get 429.
    pub log_streams_per_user: usize,
    /// Uploads (package and buildpack zips, droplets): most MB as
    /// uploaded, most MB unpacked, most entries, most expansion ratio
    /// (docs/architecture.md "Archive limits"); 0 = no limit.
    pub max_package_mb: u64,
    pub max_unpacked_mb: u64,
    pub max_archive_entries: u64,
    pub max_compression_ratio: u64,
    /// Log bytes kept per app for `logs/recent` (besides the 1000 lines).
    pub recent_log_kb_per_app: usize,
    /// The resource cache's file sizes (CF's `resource_pool.minimum_size`
    /// and `maximum_size`, bytes): only files within are cached and
    /// matched (docs/architecture.md "Resource matching").
    pub resource_pool_minimum_size: u64,
    pub resource_pool_maximum_size: u64,
    /// The resource cache's bounds (docs/architecture.md §6.8): files
    /// unused for longer than this go (0 = no age bound), and beyond this
    /// many MB the least recently used go (0 = no size bound).
    pub resource_pool_max_age_s: u64,
    pub resource_pool_max_mb: u64,
    /// Blob garbage collection (docs/architecture.md §6.8): seconds between
    /// passes, the first at start-up; 0 = never.
    pub blob_gc_interval_s: u64,
    /// Nothing in the blobstore younger than this (by mtime) is removed:
    /// a blob uploaded or staged moments ago whose row is not written yet
    /// stays.
    pub blob_gc_grace_s: u64,
    /// READY packages and STAGED droplets kept per app, newest first (CF's
    /// `max_valid_packages_stored` / `max_staged_droplets_stored`); older
    /// ones' rows and blobs go, never the current droplet or its package.
    /// 0 = keep all.
    pub max_packages_per_app: usize,
    pub max_droplets_per_app: usize,
    /// Service brokers (docs/architecture.md §5.11): seconds a broker
    /// request may take (CF's `broker_client_timeout_seconds`, 60), seconds
    /// between `last_operation` polls when the broker sends no
    /// `Retry-After`, and the longest a broker operation may poll when its
    /// plan gives no `maximum_polling_duration` (CF: 7 days).
    pub broker_client_timeout_s: u64,
    pub broker_poll_interval_s: u64,
    pub broker_max_poll_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9022)),
            addr_file: None,
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 9023)),
            internal_addr_file: None,
            nats_url: "nats://127.0.0.1:4222".into(),
            bus: Default::default(),
            data_dir: PathBuf::from("./.cc"),
            database_url: None,
            blobstore_url: None,
            system_domain: "sys.localhost".into(),
            apps_domain: "localhost".into(),
            admin_user: "admin".into(),
            admin_password: "admin".into(),
            internal_api_token: String::new(),
            token_ttl_s: 3600,
            staging_timeout_s: proto::DEFAULT_STAGING_TIMEOUT_S,
            default_app_memory_mb: crate::store::DEFAULT_APP_MEMORY_MB,
            register_route: true,
            login_max_failures: 10,
            login_lock_s: 300,
            password_checks: 2,
            log_streams_per_user: 50,
            max_package_mb: proto::archive::DEFAULT_MAX_PACKED_MB,
            max_unpacked_mb: proto::archive::DEFAULT_MAX_UNPACKED_MB,
            max_archive_entries: proto::archive::DEFAULT_MAX_ENTRIES,
            max_compression_ratio: proto::archive::DEFAULT_MAX_RATIO,
            recent_log_kb_per_app: 1024,
            resource_pool_minimum_size: crate::resource_pool::DEFAULT_MINIMUM_SIZE,
            resource_pool_maximum_size: crate::resource_pool::DEFAULT_MAXIMUM_SIZE,
            resource_pool_max_age_s: 30 * 24 * 3600,
            resource_pool_max_mb: 4096,
            blob_gc_interval_s: 600,
            blob_gc_grace_s: 3600,
            max_packages_per_app: 5,
            max_droplets_per_app: 5,
            broker_client_timeout_s: 60,
            broker_poll_interval_s: 5,
            broker_max_poll_s: 7 * 24 * 3600,
        }
    }
}

pub use proto::config::ConfigError;

impl Config {
    /// Loads the TOML file (or defaults when `path` is `None`), then applies
    /// the `NATS_URL` environment override.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg: Config = proto::config::load_toml(path)?;
        if let Some(url) = proto::config::nats_url_override() {
            cfg.nats_url = url;
        }
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The upload limits of the `max_*` fields.
    pub fn archive_limits(&self) -> proto::archive::ArchiveLimits {
        proto::archive::ArchiveLimits::from_config(
            self.max_package_mb,
            self.max_unpacked_mb,
            self.max_archive_entries,
            self.max_compression_ratio,
        )
    }

    /// The resource cache's sizes.
    pub fn pool_limits(&self) -> crate::resource_pool::PoolLimits {
        crate::resource_pool::PoolLimits {
            min: self.resource_pool_minimum_size,
            max: self.resource_pool_maximum_size,
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("cc.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c =
            Config::from_toml("listen = \"127.0.0.1:0\"\ndata_dir = \"/tmp/x\"").expect("parse");
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/cc.db?mode=rwc");
        assert_eq!(c.system_domain, "sys.localhost");
        assert!(Config::from_toml("bogus = 1").is_err());
    }
}
