//! The deployment manifest (YAML; docs/operations.md "Manifest"): the
//! release, the hosts with their addresses and roles, the shared services'
//! URLs, certificates, and how an update proceeds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A platform component a host can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Nats,
    Controller,
    Router,
    HealthManager,
    Dea,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Nats,
        Role::Controller,
        Role::Router,
        Role::HealthManager,
        Role::Dea,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nats => "nats",
            Role::Controller => "controller",
            Role::Router => "router",
            Role::HealthManager => "health_manager",
            Role::Dea => "dea",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many hosts of a role group change at once after the canaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    Count(usize),
    /// Of the group's hosts, rounded up; at least one.
    Percent(u8),
}

impl InFlight {
    /// Hosts at once among `hosts`.
    pub fn of(self, hosts: usize) -> usize {
        match self {
            InFlight::Count(n) => n.max(1),
            InFlight::Percent(p) => (hosts * usize::from(p)).div_ceil(100).max(1),
        }
    }
}

impl<'de> Deserialize<'de> for InFlight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Text(String),
        }
        let bad =
            || serde::de::Error::custom("max_in_flight must be a count (2) or a percent (\"25%\")");
        match Raw::deserialize(d)? {
            Raw::Count(n) if n >= 1 => usize::try_from(n).map(InFlight::Count).map_err(|_| bad()),
            Raw::Count(_) => Err(bad()),
            Raw::Text(t) => {
                let t = t.trim();
                if let Some(p) = t.strip_suffix('%') {
                    match p.trim().parse::<u8>() {
                        Ok(p) if (1..=100).contains(&p) => Ok(InFlight::Percent(p)),
                        _ => Err(bad()),
                    }
                } else {
                    match t.parse::<usize>() {
                        Ok(n) if n >= 1 => Ok(InFlight::Count(n)),
                        _ => Err(bad()),
                    }
                }
            }
        }
    }
}

/// `watch_time`: seconds, or a text with a unit (`30s`, `2m`).
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    let bad = || serde::de::Error::custom("a duration is seconds (30) or a text: \"30s\", \"2m\"");
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => {
            let t = t.trim();
            let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
                return n
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad());
            } else if let Some(n) = t.strip_suffix('s') {
                (n, 1)
            } else if let Some(n) = t.strip_suffix('m') {
                (n, 60)
            } else {
                (t, 1)
            };
            num.trim()
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .map(Duration::from_secs)
                .ok_or_else(bad)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The version label every component of the release reports.
    pub version: String,
    /// Where releases are on every host: release `v` is `<dir>/<v>/`
    /// (`VERSION` and `bin/`), installed by the agents from there.
    #[serde(default = "default_release_dir")]
    pub dir: String,
}

fn default_release_dir() -> String {
    "/opt/paas/releases".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    /// The host agent's port (`paas agent`).
    #[serde(default = "default_agent_port")]
    pub agent_port: u16,
    pub roles: Vec<Role>,
}

fn default_agent_port() -> u16 {
    7070
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    #[serde(default = "default_nats_port")]
    pub client_port: u16,
    #[serde(default = "default_cluster_port")]
    pub cluster_port: u16,
    /// The monitoring port: the agent's health check asks its `/healthz`,
    /// which answers 200 only once the node has joined the cluster and
    /// its JetStream is current, so a rolling upgrade moves on to the next
    /// node only then (never two nodes of the lock's stream down at once).
    #[serde(default = "default_monitor_port")]
    pub monitor_port: u16,
}

impl Default for Nats {
    fn default() -> Self {
        Nats {
            client_port: default_nats_port(),
            cluster_port: default_cluster_port(),
            monitor_port: default_monitor_port(),
        }
    }
}

fn default_monitor_port() -> u16 {
    8222
}

fn default_nats_port() -> u16 {
    4222
}

fn default_cluster_port() -> u16 {
    6222
}

/// Files every host needs (paths on the hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificates {
    /// The platform CA (bus TLS, the agents' channel). When set, the
    /// deployer also reads it on its own machine (relative to the
    /// manifest's directory, like `agent_token_file`) and talks HTTPS to
    /// every agent, trusting this CA only.
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Role groups in the order they change; every role in exactly one.
    #[serde(default = "default_sequence")]
    pub sequence: Vec<Vec<Role>>,
    /// Hosts of each group changed first, one at a time.
    #[serde(default = "default_canaries")]
    pub canaries: usize,
    pub max_in_flight: InFlight,
    /// Failed hosts tolerated; one more and the rollout stops and rolls back.
    #[serde(default)]
    pub failure_budget: usize,
    /// How long a changed component has to report healthy.
    #[serde(deserialize_with = "seconds")]
    pub watch_time: Duration,
}

/// The dependency order: the bus, then the controllers, then routers and
/// health managers, then the DEAs.
pub fn default_sequence() -> Vec<Vec<Role>> {
    vec![
        vec![Role::Nats],
        vec![Role::Controller],
        vec![Role::Router, Role::HealthManager],
        vec![Role::Dea],
    ]
}

fn default_canaries() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub release: Release,
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub nats: Nats,
    /// Postgres: every controller's database.
    pub database_url: String,
    /// The shared blobstore; default: `database_url` (large objects).
    #[serde(default)]
    pub blobstore_url: Option<String>,
    #[serde(default)]
    pub certificates: Certificates,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default = "default_system_domain")]
    pub system_domain: String,
    #[serde(default = "default_apps_domain")]
    pub apps_domain: String,
    /// The agents' token (a file on the deployer's machine, 0600; each
    /// agent has the same token in its own file). Needed to deploy.
    #[serde(default)]
    pub agent_token_file: Option<String>,
    pub update: Update,
}

fn default_system_domain() -> String {
    "sys.localhost".into()
}

fn default_apps_domain() -> String {
    "localhost".into()
}

/// The components' ports (on each host's address).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    pub controller: u16,
    pub controller_internal: u16,
    pub router: u16,
    pub router_admin: u16,
    /// How long a router stopping answers its `/health` with 503 while
    /// still serving (the load balancer's time to notice).
    pub router_drain_wait_s: u64,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            controller: 9022,
            controller_internal: 9023,
            router: 8080,
            router_admin: 8081,
            router_drain_wait_s: 5,
        }
    }
}

/// What is wrong with a manifest: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid YAML for a deployment: {0}")]
    Parse(String),
    #[error("{field}: {why}")]
    Invalid { field: String, why: String },
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// A name usable in file names and on the command line (deployment,
/// host and release names).
pub(crate) fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !s.starts_with('.')
}

/// Manifests larger than this are refused unread.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Parse(format!(
                "larger than {} KiB",
                MAX_MANIFEST_BYTES / 1024
            )));
        }
        let m: Manifest =
            serde_norway::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ManifestError> {
        if !plain(&self.name) {
            return Err(invalid(
                "name",
                "1 to 63 letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        if !plain(&self.release.version) {
            return Err(invalid(
                "release.version",
                "1 to 63 letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        if self.hosts.is_empty() {
            return Err(invalid("hosts", "at least one host"));
        }
        let mut names = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let at = format!("hosts[{i}]");
            if !plain(&h.name) {
                return Err(invalid(
                    format!("{at}.name"),
                    "1 to 63 letters, digits, '-', '_' or '.'",
                ));
            }
            if !names.insert(h.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("{} is named twice", h.name),
                ));
            }
            if h.address.is_unspecified() {
                return Err(invalid(
                    format!("{at}.address"),
                    "a host's own address, not 0.0.0.0",
                ));
            }
            if !addresses.insert(h.address) {
                return Err(invalid(
                    format!("{at}.address"),
                    format!("{} is given to two hosts", h.address),
                ));
            }
            if h.roles.is_empty() {
                return Err(invalid(format!("{at}.roles"), "at least one role"));
            }
            let distinct: BTreeSet<Role> = h.roles.iter().copied().collect();
            if distinct.len() != h.roles.len() {
                return Err(invalid(format!("{at}.roles"), "a role is listed twice"));
            }
        }
        for role in Role::ALL {
            if self.hosts_with(role).is_empty() {
                return Err(invalid("hosts", format!("no host has the role {role}")));
            }
        }
        let mut seen = BTreeMap::new();
        for (i, group) in self.update.sequence.iter().enumerate() {
            if group.is_empty() {
                return Err(invalid(format!("update.sequence[{i}]"), "an empty group"));
            }
            for r in group {
                if let Some(first) = seen.insert(*r, i) {
                    return Err(invalid(
                        format!("update.sequence[{i}]"),
                        format!("{r} is already in group {first}"),
                    ));
                }
            }
        }
        if let Some(r) = Role::ALL.iter().find(|r| !seen.contains_key(r)) {
            return Err(invalid("update.sequence", format!("{r} is in no group")));
        }
        if !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database_url",
                "controllers on several hosts share one Postgres (postgres://...)",
            ));
        }
        if let Some(b) = &self.blobstore_url {
            if !b.starts_with("postgres://") && !b.starts_with("postgresql://") {
                return Err(invalid(
                    "blobstore_url",
                    "the shared blobstore is Postgres (postgres://...)",
                ));
            }
        }
        if self
            .certificates
            .ca
            .as_deref()
            .is_some_and(|ca| ca.trim().is_empty())
        {
            return Err(invalid(
                "certificates.ca",
                "the path of a PEM file (or no ca: plain HTTP to the agents)",
            ));
        }
        if self.update.watch_time.is_zero() {
            return Err(invalid("update.watch_time", "must be more than 0"));
        }
        Ok(())
    }

    /// The hosts with `role`, in manifest order.
    pub fn hosts_with(&self, role: Role) -> Vec<&Host> {
        self.hosts
            .iter()
            .filter(|h| h.roles.contains(&role))
            .collect()
    }

    /// The NATS cluster's client URLs (every component's seed list).
    pub fn nats_urls(&self) -> Vec<String> {
        self.hosts_with(Role::Nats)
            .iter()
            .map(|h| format!("nats://{}", socket(h.address, self.nats.client_port)))
            .collect()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The blobstore URL the controllers get.
    pub fn blobstore(&self) -> &str {
        self.blobstore_url.as_deref().unwrap_or(&self.database_url)
    }
}

/// `ip:port`, IPv6 in brackets.
pub fn socket(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const THREE_HOSTS: &str = r#"
name: prod
release: {version: v1}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: h1, address: 10.0.0.1, roles: [nats, controller, router, health_manager]}
  - {name: h2, address: 10.0.0.2, roles: [nats, controller, router, health_manager, dea]}
  - {name: h3, address: 10.0.0.3, roles: [nats, dea]}
update: {canaries: 1, max_in_flight: "50%", failure_budget: 0, watch_time: 30s}
"#;

    #[test]
    fn a_three_host_manifest_parses_with_defaults() {
        let m = Manifest::parse(THREE_HOSTS).expect("parses");
        assert_eq!(m.update.sequence, default_sequence());
        assert_eq!(m.update.watch_time, Duration::from_secs(30));
        assert_eq!(m.update.max_in_flight, InFlight::Percent(50));
        assert_eq!(m.hosts[0].agent_port, 7070);
        assert_eq!(
            m.nats_urls(),
            vec![
                "nats://10.0.0.1:4222",
                "nats://10.0.0.2:4222",
                "nats://10.0.0.3:4222"
            ]
        );
        assert_eq!(m.blobstore(), "postgres://cc@10.0.0.1/cc");
        assert_eq!(m.hosts_with(Role::Dea).len(), 2);
    }

    #[test]
    fn in_flight_counts_and_percents() {
        for (f, hosts, want) in [
            (InFlight::Count(2), 6, 2),
            (InFlight::Count(9), 3, 9),
            (InFlight::Percent(25), 6, 2),
            (InFlight::Percent(50), 3, 2),
            (InFlight::Percent(1), 3, 1),
            (InFlight::Percent(100), 4, 4),
        ] {
            assert_eq!(f.of(hosts), want, "{f:?} of {hosts}");
        }
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases: &[(&str, &str, &str)] = &[
            ("name: prod", "name: ../x", "name"),
            ("release: {version: v1}", "release: {version: \"\"}", "release.version"),
            ("{name: h3, address: 10.0.0.3", "{name: h1, address: 10.0.0.3", "hosts[2].name"),
            ("{name: h3, address: 10.0.0.3", "{name: h3, address: 10.0.0.2", "hosts[2].address"),
            ("{name: h3, address: 10.0.0.3", "{name: h3, address: 0.0.0.0", "hosts[2].address"),
            ("roles: [nats, dea]}", "roles: []}", "hosts[2].roles"),
            ("roles: [nats, dea]}", "roles: [nats, nats]}", "hosts[2].roles"),
            ("postgres://cc@10.0.0.1/cc", "sqlite://cc.db", "database_url"),
            ("watch_time: 30s", "watch_time: 0", "update.watch_time"),
            ("name: prod", "name: prod\ncertificates: {ca: \"\"}", "certificates.ca"),
            (
                "failure_budget: 0,",
                "failure_budget: 0, sequence: [[nats], [controller, nats], [router, health_manager], [dea]],",
                "update.sequence[1]",
            ),
            (
                "failure_budget: 0,",
                "failure_budget: 0, sequence: [[nats], [controller], [router]],",
                "update.sequence",
            ),
        ];
        for (from, to, field) in cases {
            assert!(THREE_HOSTS.contains(from), "{from}");
            let text = THREE_HOSTS.replacen(from, to, 1);
            match Manifest::parse(&text) {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(&f, field, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        let no_dea = THREE_HOSTS
            .replace("health_manager, dea]", "health_manager]")
            .replace("[nats, dea]", "[nats]");
        assert!(matches!(
            Manifest::parse(&no_dea),
            Err(ManifestError::Invalid { why, .. }) if why.contains("dea")
        ));
        for (bad, what) in [
            ("max_in_flight: \"50%\"", "max_in_flight: \"0%\""),
            ("max_in_flight: \"50%\"", "max_in_flight: 0"),
            ("max_in_flight: \"50%\"", "max_in_flight: many"),
            ("watch_time: 30s", "watch_time: soon"),
            ("name: prod", "name: prod\ncolour: blue"),
        ] {
            let text = THREE_HOSTS.replacen(bad, what, 1);
            assert!(
                matches!(Manifest::parse(&text), Err(ManifestError::Parse(_))),
                "{what}"
            );
        }
        assert!(Manifest::parse(&"x".repeat(MAX_MANIFEST_BYTES + 1)).is_err());
    }
}
