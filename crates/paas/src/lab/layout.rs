//! Pure: which roles each of a lab's N hosts gets, and the manifest that
//! deploys them (`cf dev start --hosts N`, docs/operations.md "A platform
//! on simulated hosts").

use std::net::Ipv4Addr;

/// The most hosts `cf dev start --hosts` makes (one bridge's /24 holds
/// far more; past this a laptop runs out of memory first).
pub const MAX_HOSTS: usize = 32;

/// The agent's port on every host (each host has its own ports).
pub const AGENT_PORT: u16 = 7070;
/// The routers' ports on every host.
pub const ROUTER_PORT: u16 = 8888;
pub const ROUTER_ADMIN_PORT: u16 = 8889;

/// `h1`..`hN` and their roles: NATS on the first three hosts (a cluster
/// as soon as there are three), the control plane (controller, router,
/// health manager) on the first two when there are three hosts or more,
/// else on the first; DEAs on the rest (on the only host when N is 1).
pub fn hosts(n: usize) -> Vec<(String, Vec<&'static str>)> {
    let control = if n >= 3 { 2 } else { 1 };
    (0..n)
        .map(|i| {
            let mut roles = Vec::new();
            if i < 3 {
                roles.push("nats");
            }
            if i < control {
                roles.extend(["controller", "router", "health_manager"]);
            }
            if i >= control || n == 1 {
                roles.push("dea");
            }
            (format!("h{}", i + 1), roles)
        })
        .collect()
}

/// What a manifest for a lab names besides its hosts.
pub struct ManifestArgs<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub releases_dir: &'a str,
    pub database_url: &'a str,
    /// Relative to the manifest's directory, or absolute.
    pub token_file: &'a str,
    pub router_drain_wait_s: u64,
    /// `canaries`, `max_in_flight`, `failure_budget`, `watch_time`.
    pub update: &'a str,
}

/// The manifest's YAML for `hosts` at `addrs`.
pub fn manifest(a: &ManifestArgs<'_>, hosts: &[(String, Vec<&str>)], addrs: &[Ipv4Addr]) -> String {
    let host_lines: String = hosts
        .iter()
        .zip(addrs)
        .map(|((name, roles), addr)| {
            format!(
                "  - {{name: {name}, address: {addr}, agent_port: {AGENT_PORT}, roles: [{}]}}\n",
                roles.join(", ")
            )
        })
        .collect();
    format!(
        "name: {name}\nrelease: {{version: {version}, dir: {releases}}}\ndatabase_url: {db}\nagent_token_file: {token}\n\
         nats: {{client_port: 4222, cluster_port: 6222}}\n\
         ports: {{controller: 9022, controller_internal: 9023, router: {ROUTER_PORT}, router_admin: {ROUTER_ADMIN_PORT}, router_drain_wait_s: {drain}}}\n\
         hosts:\n{host_lines}\
         update: {{{update}}}\n",
        name = a.name,
        version = a.version,
        releases = a.releases_dir,
        db = a.database_url,
        token = a.token_file,
        drain = a.router_drain_wait_s,
        update = a.update,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_host_count() {
        let table: [(usize, &[&str]); 5] = [
            (1, &["h1 nats controller router health_manager dea"]),
            (
                2,
                &["h1 nats controller router health_manager", "h2 nats dea"],
            ),
            (
                3,
                &[
                    "h1 nats controller router health_manager",
                    "h2 nats controller router health_manager",
                    "h3 nats dea",
                ],
            ),
            (
                4,
                &[
                    "h1 nats controller router health_manager",
                    "h2 nats controller router health_manager",
                    "h3 nats dea",
                    "h4 dea",
                ],
            ),
            (
                6,
                &[
                    "h1 nats controller router health_manager",
                    "h2 nats controller router health_manager",
                    "h3 nats dea",
                    "h4 dea",
                    "h5 dea",
                    "h6 dea",
                ],
            ),
        ];
        for (n, want) in table {
            let got: Vec<String> = hosts(n)
                .into_iter()
                .map(|(name, roles)| format!("{name} {}", roles.join(" ")))
                .collect();
            assert_eq!(got, want, "{n} hosts");
        }
    }

    #[test]
    fn the_manifest_parses_and_names_every_host() {
        let hs = hosts(3);
        let addrs: Vec<Ipv4Addr> = (2..5).map(|i| Ipv4Addr::new(10, 251, 7, i)).collect();
        let text = manifest(
            &ManifestArgs {
                name: "dev",
                version: "v0.1.0",
                releases_dir: "/tmp/r",
                database_url: "postgres://postgres@10.251.7.1:5432/paas_dev",
                token_file: "agent.token",
                router_drain_wait_s: 2,
                update: "canaries: 1, max_in_flight: 1, watch_time: 60s",
            },
            &hs,
            &addrs,
        );
        let m = crate::deploy::manifest::Manifest::parse(&text).expect("the manifest parses");
        assert_eq!(m.hosts.len(), 3);
        assert_eq!(m.hosts[2].address.to_string(), "10.251.7.4");
        assert_eq!(m.release.version, "v0.1.0");
        assert_eq!(m.ports.router, ROUTER_PORT);
    }
}
