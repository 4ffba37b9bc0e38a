//! DEA configuration (docs/conventions.md "DEA config").

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default `log_max_line_bytes`: longer lines are split.
pub const DEFAULT_LOG_MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub nats_url: String,
    /// The component's bus identity and TLS (`bus = { user, password, .. }`;
    /// docs/architecture.md §3.4). `nats_url` may list several servers,
    /// comma-separated.
    pub bus: proto::bus::BusCredentials,
    /// The controllers' internal API base URLs (`http://host:port`): start
    /// and staging requests may only name signed blob URLs there
    /// (`crate::blob_urls`). Empty: the DEA refuses to start, unless
    /// `allow_any_blob_url` says otherwise.
    pub controller_urls: Vec<String>,
    /// Runs with no `controller_urls`, fetching whatever URL a start or
    /// staging request names (tests with their own blob servers, the
    /// simulated DEA). Never in `cf dev` or a real deployment.
    pub allow_any_blob_url: bool,
    /// A PEM CA file trusted, besides the webpki roots, by the DEA's HTTP
    /// client (droplets, buildpacks, uploads over HTTPS). None: the roots only.
    pub tls_ca_file: Option<PathBuf>,
    /// DEA id; a random uuid when empty.
    pub id: String,
    pub zone: String,
    pub state_dir: PathBuf,
    pub host_ip: String,
    /// Memory instances and builds may reserve; 0 (the default): the
    /// host's memory less 1 GB for the system and the platform.
    pub memory_mb: u64,
    /// Disk instances and builds may reserve; 0 (the default): the free
    /// space of the state dir's file system at start, less 1 GB.
    pub disk_mb: u64,
    pub stacks: Vec<String>,
    /// Container backend: `auto` (namespaces when root on Linux, else
    /// process), `namespaces` or `process`.
    pub backend: String,
    /// The `process` backend (no isolation at all: apps and builds run as
    /// host processes of the DEA's user) runs only when this is true,
    /// whether named or chosen by `auto`; otherwise the DEA refuses to
    /// start. For tests and `cf dev` on laptops.
    pub allow_unisolated_process_backend: bool,
    /// namespaces: containers kept ready (network and cgroups set up);
    /// 0 disables the pool.
    pub warm_pool_size: usize,
    /// namespaces: most processes (and threads) per container.
    pub pids_limit: u64,
    /// namespaces: run each container's processes in a user namespace of
    /// their own (uid 2000, `vcap`, inside is the slot's host uid; uid 0
    /// inside is the unprivileged host uid 4294967294, as Garden's
    /// "maximus"), where the kernel allows; otherwise, or when false, they
    /// run as the slot's host uid directly (docs/containers.md "User
    /// namespaces").
    pub user_namespaces: bool,
    /// namespaces: egress allowed beyond the public internet, `CIDR` or
    /// `CIDR:PORT` (host, private ranges and other containers are closed).
    pub egress_allow: Vec<String>,
    /// namespaces: servers on the host's loopback that containers may
    /// reach (bound services: PostgreSQL, MySQL, Redis, RabbitMQ on
    /// 127.0.0.1): a container connecting to `host_services_address:PORT`,
    /// for a PORT listed here, reaches `127.0.0.1:PORT`, when its egress
    /// rules allow that address and port (the controller adds a rule per
    /// bound service). None: off (docs/containers.md "Host services").
    pub host_services_address: Option<String>,
    pub host_services_ports: Vec<u16>,
    /// namespaces: the binary with the `container-init` entry (default: the
    /// running DEA binary).
    pub container_init_exe: Option<PathBuf>,
    pub heartbeat_interval_s: u64,
    pub advertise_interval_s: u64,
    /// Written with `ready` once connected and advertising.
    pub addr_file: Option<PathBuf>,
    /// Extension: grace period between SIGTERM and SIGKILL when stopping.
    pub stop_grace_s: u64,
    /// Extension: the longest a build may take on this DEA, whatever the
    /// controller's staging timeout (which applies when shorter).
    pub max_staging_timeout_s: u64,
    /// Host variables handed to every build: package index settings (pip,
    /// npm) and proxies. Nothing else of the DEA's environment reaches a
    /// build. Absolute paths named in them are visible read-only in
    /// staging containers.
    pub staging_env_passthrough: Vec<String>,
    /// Extension: how long CRASHED instances stay visible.
    pub crashed_retention_s: u64,
    /// Extension: longest a drain (SIGUSR2) waits for replacements.
    pub evacuation_timeout_s: u64,
    /// Archives this DEA downloads and unpacks (packages, buildpacks,
    /// droplets, caches): most MB downloaded, most MB unpacked (a build's
    /// or instance's disk quota applies when smaller), most entries, most
    /// expansion ratio (docs/architecture.md "Archive limits"); 0 = none.
    pub max_package_mb: u64,
    pub max_unpacked_mb: u64,
    pub max_archive_entries: u64,
    pub max_compression_ratio: u64,
    /// Builds running at once; more wait in line (their staging log says
    /// how many are ahead). 0 = the number of cores.
    pub max_concurrent_stagings: usize,
    /// Every HTTP call to the controller (blobs): connecting, and the
    /// longest pause between two reads (downloads may take long, but never
    /// stall longer than this).
    pub http_connect_timeout_s: u64,
    pub http_read_timeout_s: u64,
    /// App log bytes per second per instance (the platform's cap; CF's
    /// `log_rate_limit_in_bytes_per_second`); beyond it lines are dropped
    /// and counted. 0 = unlimited.
    pub log_rate_limit_bytes_per_s: u64,
    /// Longest log line; longer output is cut into lines of this size.
    pub log_max_line_bytes: usize,
    /// Log messages waiting for the bus, in KB; beyond it new lines are
    /// dropped and counted.
    pub log_queue_kb: usize,
    /// The droplet cache (`<state_dir>/droplets`, `crate::droplet_cache`):
    /// seconds between sweeps (the first soon after start); 0 = never.
    pub droplet_cache_sweep_interval_s: u64,
    /// No cached droplet younger than this (by mtime, refreshed while an
    /// instance uses it) is removed.
    pub droplet_cache_grace_s: u64,
    /// Droplets no instance uses go once unused this long (0 = no age
    /// bound), and beyond this many MB the least recently used unused ones
    /// go (0 = no size bound).
    pub droplet_cache_max_age_s: u64,
    pub droplet_cache_max_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nats_url: "nats://127.0.0.1:4222".into(),
            bus: Default::default(),
            controller_urls: Vec::new(),
            allow_any_blob_url: false,
            tls_ca_file: None,
            id: String::new(),
            zone: "default".into(),
            state_dir: PathBuf::from("./.dea"),
            host_ip: "127.0.0.1".into(),
            memory_mb: 0,
            disk_mb: 0,
            stacks: vec!["host".into()],
            backend: "auto".into(),
            allow_unisolated_process_backend: false,
            warm_pool_size: 2,
            pids_limit: 1024,
            user_namespaces: true,
            egress_allow: Vec::new(),
            host_services_address: None,
            host_services_ports: Vec::new(),
            container_init_exe: None,
            heartbeat_interval_s: 2,
            advertise_interval_s: 2,
            addr_file: None,
            stop_grace_s: 10,
            max_staging_timeout_s: 3600,
            staging_env_passthrough: DEFAULT_PASSTHROUGH.iter().map(|s| s.to_string()).collect(),
            crashed_retention_s: 60,
            evacuation_timeout_s: 120,
            max_package_mb: proto::archive::DEFAULT_MAX_PACKED_MB,
            max_unpacked_mb: proto::archive::DEFAULT_MAX_UNPACKED_MB,
            max_archive_entries: proto::archive::DEFAULT_MAX_ENTRIES,
            max_compression_ratio: proto::archive::DEFAULT_MAX_RATIO,
            max_concurrent_stagings: 2,
            http_connect_timeout_s: 10,
            http_read_timeout_s: 60,
            log_rate_limit_bytes_per_s: 1024 * 1024,
            log_max_line_bytes: DEFAULT_LOG_MAX_LINE_BYTES,
            log_queue_kb: 8 * 1024,
            droplet_cache_sweep_interval_s: 600,
            droplet_cache_grace_s: 600,
            droplet_cache_max_age_s: 24 * 3600,
            droplet_cache_max_mb: 4096,
        }
    }
}

pub use proto::config::ConfigError;

/// What a build gets of the DEA's environment by default.
pub const DEFAULT_PASSTHROUGH: &[&str] = &[
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_NO_INDEX",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "NPM_CONFIG_CAFILE",
    "npm_config_cafile",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Set aside for the system and the platform when sizing from the host.
const HOST_RESERVE_MB: u64 = 1024;

/// `MemTotal` of a `/proc/meminfo` text, in MB.
pub fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

impl Config {
    /// Fills `memory_mb` and `disk_mb` left at 0 from the host (see their
    /// docs); never below 1024 MB each.
    pub fn size_from_host(&mut self) {
        if self.memory_mb == 0 {
            let total = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| mem_total_mb(&m))
                .unwrap_or(8192 + HOST_RESERVE_MB);
            self.memory_mb = total.saturating_sub(HOST_RESERVE_MB).max(1024);
        }
        if self.disk_mb == 0 {
            let dir = if self.state_dir.exists() {
                self.state_dir.clone()
            } else {
                PathBuf::from("/")
            };
            let free = rustix::fs::statvfs(&dir)
                .ok()
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024))
                .unwrap_or(16384 + HOST_RESERVE_MB);
            self.disk_mb = free.saturating_sub(HOST_RESERVE_MB).max(1024);
        }
    }

    /// The archive limits of the `max_*` fields.
    pub fn archive_limits(&self) -> proto::archive::ArchiveLimits {
        proto::archive::ArchiveLimits::from_config(
            self.max_package_mb,
            self.max_unpacked_mb,
            self.max_archive_entries,
            self.max_compression_ratio,
        )
    }

    /// Builds at once: `max_concurrent_stagings`, or the cores when 0.
    pub fn staging_slots(&self) -> usize {
        match self.max_concurrent_stagings {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// The passthrough variables set in `lookup` (the DEA's environment).
    pub fn passthrough_env(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        self.staging_env_passthrough
            .iter()
            .filter_map(|k| lookup(k).map(|v| (k.clone(), v)))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Loads the TOML file (or defaults), applies `NATS_URL`, fills the id.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg: Config = proto::config::load_toml(path)?;
        if let Some(url) = proto::config::nats_url_override() {
            cfg.nats_url = url;
        }
        cfg.fill_id();
        Ok(cfg)
    }

    /// The DEA's HTTP client: HTTP and HTTPS (rustls, ring), verifying
    /// with the webpki roots and `tls_ca_file`.
    /// Every call has `http_connect_timeout_s` and `http_read_timeout_s`
    /// (the longest pause between two reads; no total limit for big blobs).
    pub fn http_client(&self) -> Result<reqwest::Client, crate::error::DeaError> {
        let secs = |s: u64| std::time::Duration::from_secs(s.max(1));
        proto::https::client_builder(&proto::https::verify_with_ca(self.tls_ca_file.as_deref()))
            .map_err(|e| crate::error::DeaError::Http(e.to_string()))?
            .connect_timeout(secs(self.http_connect_timeout_s))
            .read_timeout(secs(self.http_read_timeout_s))
            .build()
            .map_err(|e| crate::error::DeaError::Http(e.to_string()))
    }

    /// Gives the DEA a random id when none is configured.
    pub fn fill_id(&mut self) {
        if self.id.is_empty() {
            self.id = uuid::Uuid::new_v4().to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_toml_and_rejects_unknown() {
        let c: Config = toml::from_str("zone = \"z1\"\nmemory_mb = 100").expect("parse");
        assert_eq!(c.zone, "z1");
        assert_eq!(c.memory_mb, 100);
        assert_eq!(c.heartbeat_interval_s, 2);
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }

    #[test]
    fn capacity_from_the_host() {
        assert_eq!(
            mem_total_mb("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24000)
        );
        assert_eq!(mem_total_mb("nothing"), None);
        let mut c = Config {
            state_dir: std::env::temp_dir(),
            ..Config::default()
        };
        c.size_from_host();
        assert!(c.memory_mb >= 1024 && c.disk_mb >= 1024, "{c:?}");
        let mut set = Config {
            memory_mb: 100,
            disk_mb: 200,
            ..Config::default()
        };
        set.size_from_host();
        assert_eq!((set.memory_mb, set.disk_mb), (100, 200), "given sizes stay");
    }

    #[test]
    fn only_listed_host_variables_reach_builds() {
        let c = Config::default();
        let env = c.passthrough_env(|k| match k {
            "PIP_CERT" => Some("/etc/ssl/certs/ca-certificates.crt".into()),
            "PIP_INDEX_URL" => Some(String::new()),
            "AWS_SECRET_ACCESS_KEY" => Some("x".into()),
            _ => None,
        });
        assert_eq!(
            env,
            vec![(
                "PIP_CERT".to_string(),
                "/etc/ssl/certs/ca-certificates.crt".to_string()
            )]
        );
    }
}
