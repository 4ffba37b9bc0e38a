//! The components' specs (BOSH's job templates): what each role runs on a
//! host, with which config, health check and drain, rendered purely from
//! the manifest and the deployment's secrets.

use std::collections::BTreeMap;

use proto::busauth::{self, BusUsers};
use serde::{Deserialize, Serialize};

use super::manifest::{socket, Host, Manifest, Role};
use crate::agent::spec::{ComponentSpec, Drain, Health};

/// The deployment's secrets, generated once and kept (0600) in its state
/// dir: bus passwords by user, the route password, the internal API token
/// and the admin password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    pub bus_passwords: BTreeMap<String, String>,
    pub route_password: String,
    pub internal_token: String,
    pub admin_password: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// A DEA's id: its host's name.
pub fn dea_id(host: &str) -> String {
    host.to_string()
}

impl Secrets {
    pub fn generate(m: &Manifest) -> Secrets {
        let users = bus_users_fresh(m);
        Secrets {
            bus_passwords: users
                .users
                .iter()
                .map(|u| (u.user.clone(), u.password.clone()))
                .collect(),
            route_password: busauth::random_secret(),
            internal_token: busauth::random_secret(),
            admin_password: busauth::random_secret(),
        }
    }

    /// The bus users (with their permissions) at the kept passwords; a
    /// DEA host new since the secrets were made gets a fresh password, kept
    /// by [`Secrets::complete`].
    pub fn bus_users(&self, m: &Manifest) -> BusUsers {
        let mut users = bus_users_fresh(m);
        for u in &mut users.users {
            if let Some(p) = self.bus_passwords.get(&u.user) {
                u.password = p.clone();
            }
        }
        users
    }

    /// Adds passwords for users the manifest has gained; whether any was.
    pub fn complete(&mut self, m: &Manifest) -> bool {
        let mut added = false;
        for u in bus_users_fresh(m).users {
            if let std::collections::btree_map::Entry::Vacant(e) = self.bus_passwords.entry(u.user)
            {
                e.insert(u.password);
                added = true;
            }
        }
        added
    }
}

fn bus_users_fresh(m: &Manifest) -> BusUsers {
    let ids: Vec<String> = m
        .hosts_with(Role::Dea)
        .iter()
        .map(|h| dea_id(&h.name))
        .collect();
    BusUsers::generate(busauth::DEFAULT_HM_BUCKET).with_deas(&ids, busauth::DEFAULT_HM_BUCKET)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn toml_doc(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} = {}\n", toml_str(v)))
        .collect()
}

/// The controllers' internal API URLs.
fn controller_urls(m: &Manifest) -> Vec<String> {
    m.hosts_with(Role::Controller)
        .iter()
        .map(|h| format!("http://{}", socket(h.address, m.ports.controller_internal)))
        .collect()
}

/// What `role` runs on `host` from release `version`.
pub fn render(m: &Manifest, s: &Secrets, host: &Host, role: Role, version: &str) -> ComponentSpec {
    let users = s.bus_users(m);
    let nats = m.nats_urls().join(",");
    let addr = host.address;
    let release_dir = format!("{}/{version}", m.release.dir.trim_end_matches('/'));
    let bus = |creds: proto::bus::BusCredentials| format!("{}\n", creds.toml_inline().trim_end());
    let (argv, config, health, drain) = match role {
        Role::Nats => {
            let routes: Vec<String> = m
                .hosts_with(Role::Nats)
                .iter()
                .map(|h| {
                    format!(
                        "    \"nats-route://route:{}@{}\"",
                        s.route_password,
                        socket(h.address, m.nats.cluster_port)
                    )
                })
                .collect();
            // One node runs alone: a cluster of one never becomes healthy
            // (its JetStream waits for peers that do not exist).
            let cluster = if routes.len() > 1 {
                format!(
                    "cluster {{\n  name: {}\n  listen: {}\n  authorization {{ user: \"route\", password: {} }}\n  routes: [\n{}\n  ]\n}}\n",
                    toml_str(&m.name),
                    toml_str(&socket(addr, m.nats.cluster_port)),
                    toml_str(&s.route_password),
                    routes.join("\n"),
                )
            } else {
                String::new()
            };
            let text = format!(
                "server_name: {}\nlisten: {}\nhttp: {}\njetstream {{\n  store_dir: \"{{dir}}/jetstream\"\n}}\n{cluster}{}",
                toml_str(&host.name),
                toml_str(&socket(addr, m.nats.client_port)),
                toml_str(&socket(addr, m.nats.monitor_port)),
                busauth::server_config(&users, None),
            );
            (
                vec![
                    "bin/nats-server".to_string(),
                    "-c".into(),
                    "{config}".into(),
                ],
                text,
                // Joined and current, not just listening (see Nats).
                Health::Http {
                    url: format!("http://{}/healthz", socket(addr, m.nats.monitor_port)),
                },
                Drain {
                    signal: "TERM".into(),
                    hook: None,
                    timeout_s: 30,
                },
            )
        }
        Role::Controller => {
            let text = toml_doc(&[
                ("listen", socket(addr, m.ports.controller)),
                ("internal_listen", socket(addr, m.ports.controller_internal)),
                ("nats_url", nats.clone()),
                ("data_dir", "{dir}/data".into()),
                ("database_url", m.database_url.clone()),
                ("blobstore_url", m.blobstore().to_string()),
                ("system_domain", m.system_domain.clone()),
                ("apps_domain", m.apps_domain.clone()),
                ("admin_password", s.admin_password.clone()),
                ("internal_api_token", s.internal_token.clone()),
            ]) + &bus(users.role(busauth::Role::Controller));
            (
                vec![
                    "bin/cloud-controller".into(),
                    "--config".into(),
                    "{config}".into(),
                ],
                text,
                Health::Http {
                    url: format!("http://{}/", socket(addr, m.ports.controller)),
                },
                Drain {
                    signal: "TERM".into(),
                    hook: None,
                    timeout_s: 30,
                },
            )
        }
        Role::Router => {
            let text = toml_doc(&[
                ("listen", socket(addr, m.ports.router)),
                ("admin_listen", socket(addr, m.ports.router_admin)),
                ("nats_url", nats.clone()),
            ]) + &format!("drain_wait_s = {}\n", m.ports.router_drain_wait_s)
                + &bus(users.role(busauth::Role::Router));
            (
                vec!["bin/router".into(), "--config".into(), "{config}".into()],
                text,
                Health::Http {
                    url: format!("http://{}/health", socket(addr, m.ports.router_admin)),
                },
                Drain {
                    signal: "TERM".into(),
                    hook: None,
                    timeout_s: m.ports.router_drain_wait_s + 30,
                },
            )
        }
        Role::HealthManager => {
            // Its own host's controller when it has one, else the first.
            let urls = controller_urls(m);
            let cc = if host.roles.contains(&Role::Controller) {
                format!("http://{}", socket(addr, m.ports.controller_internal))
            } else {
                urls.first().cloned().unwrap_or_default()
            };
            let text = toml_doc(&[
                ("nats_url", nats.clone()),
                ("cc_url", cc),
                ("internal_api_token", s.internal_token.clone()),
                ("id", format!("hm-{}", host.name)),
            ]) + &format!(
                // With 3 NATS nodes or more, the leader lock survives one
                // going down (2 replicas would need both for a quorum).
                "leader_replicas = {}\n",
                if m.hosts_with(Role::Nats).len() >= 3 {
                    3
                } else {
                    1
                }
            ) + &bus(users.role(busauth::Role::HealthManager));
            (
                vec![
                    "bin/health-manager".into(),
                    "--config".into(),
                    "{config}".into(),
                ],
                text,
                Health::Alive,
                Drain::default(),
            )
        }
        Role::Dea => {
            let urls: Vec<String> = controller_urls(m).iter().map(|u| toml_str(u)).collect();
            let text = toml_doc(&[
                ("nats_url", nats.clone()),
                ("id", dea_id(&host.name)),
                ("zone", host.name.clone()),
                ("state_dir", "{dir}/state".into()),
                ("host_ip", addr.to_string()),
            ]) + &format!("controller_urls = [{}]\n", urls.join(", "))
                + &bus(users.dea(&dea_id(&host.name)));
            (
                vec!["bin/dea".into(), "--config".into(), "{config}".into()],
                text,
                Health::Alive,
                // Evacuate (the new instances elsewhere serve first), then exit.
                Drain {
                    signal: "USR2".into(),
                    hook: None,
                    timeout_s: 180,
                },
            )
        }
    };
    ComponentSpec {
        role,
        version: version.to_string(),
        release_dir,
        argv,
        config: Some(config),
        env: BTreeMap::new(),
        health,
        drain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = r#"
name: lab
release: {version: v1, dir: /srv/releases/}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: h1, address: 10.0.0.1, roles: [nats, controller, router, health_manager]}
  - {name: h2, address: 10.0.0.2, roles: [nats, dea]}
update: {max_in_flight: 1, watch_time: 30}
"#;

    #[test]
    fn one_nats_node_runs_alone_and_several_form_a_cluster() {
        let one = M.replace("roles: [nats, dea]", "roles: [dea]");
        for (text, clustered) in [(M.to_string(), true), (one, false)] {
            let m = Manifest::parse(&text).expect("manifest");
            let s = Secrets::generate(&m);
            let h1 = m.host("h1").expect("h1");
            let conf = render(&m, &s, h1, Role::Nats, "v1")
                .config
                .unwrap_or_default();
            assert_eq!(conf.contains("cluster {"), clustered, "{conf}");
            assert!(conf.contains("http: \"10.0.0.1:8222\""), "{conf}");
        }
    }

    #[test]
    fn each_role_gets_its_config_health_and_drain() {
        let m = Manifest::parse(M).expect("manifest");
        let s = Secrets::generate(&m);
        let h1 = m.host("h1").expect("h1");
        let h2 = m.host("h2").expect("h2");
        let nats = render(&m, &s, h2, Role::Nats, "v1");
        assert_eq!(nats.release_dir, "/srv/releases/v1");
        let conf = nats.config.clone().unwrap_or_default();
        assert!(conf.contains("listen: \"10.0.0.2:4222\""), "{conf}");
        assert!(conf.contains("@10.0.0.1:6222\""), "{conf}");
        assert!(conf.contains("authorization {\n  users = ["), "{conf}");
        assert!(conf.contains("http: \"10.0.0.2:8222\""), "{conf}");
        assert_eq!(
            nats.health,
            Health::Http {
                url: "http://10.0.0.2:8222/healthz".into()
            }
        );

        let cc = render(&m, &s, h1, Role::Controller, "v2");
        let conf = cc.config.clone().unwrap_or_default();
        let t: toml::Table = conf.parse().unwrap_or_else(|e| panic!("{e}: {conf}"));
        assert_eq!(t["listen"].as_str(), Some("10.0.0.1:9022"));
        assert_eq!(
            t["blobstore_url"].as_str(),
            Some("postgres://cc@10.0.0.1/cc")
        );
        assert_eq!(
            t["nats_url"].as_str(),
            Some("nats://10.0.0.1:4222,nats://10.0.0.2:4222")
        );
        assert_eq!(t["bus"]["user"].as_str(), Some("controller"));

        let dea = render(&m, &s, h2, Role::Dea, "v1");
        let conf = dea.config.clone().unwrap_or_default();
        let t: toml::Table = conf.parse().unwrap_or_else(|e| panic!("{e}: {conf}"));
        assert_eq!(t["host_ip"].as_str(), Some("10.0.0.2"));
        assert_eq!(
            t["controller_urls"][0].as_str(),
            Some("http://10.0.0.1:9023")
        );
        assert_eq!(t["bus"]["user"].as_str(), Some("dea-h2"));
        assert_eq!(dea.drain.signal, "USR2");

        let hm = render(&m, &s, h1, Role::HealthManager, "v1");
        let conf = hm.config.clone().unwrap_or_default();
        let t: toml::Table = conf.parse().unwrap_or_else(|e| panic!("{e}: {conf}"));
        assert_eq!(
            t["leader_replicas"].as_integer(),
            Some(1),
            "two NATS hosts: no quorum to spare"
        );
        assert_eq!(t["cc_url"].as_str(), Some("http://10.0.0.1:9023"));

        let r = render(&m, &s, h1, Role::Router, "v1");
        assert_eq!(
            r.health,
            Health::Http {
                url: "http://10.0.0.1:8081/health".into()
            }
        );
        assert!(crate::agent::api::check(&crate::agent::spec::Desired {
            components: vec![nats, cc, dea, r],
        })
        .is_ok());
        // Secrets are never printed.
        assert_eq!(format!("{s:?}"), "Secrets(<redacted>)");
    }
}
