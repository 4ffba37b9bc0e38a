//! Who may say what on the bus (docs/architecture.md §3.4): one NATS user
//! per component role, each allowed to publish and subscribe only the
//! subjects that role uses, and the nats-server configuration that
//! enforces it. `cf dev start` and the test harness generate the passwords
//! ([`BusUsers::generate`]), write [`server_config`] (0600) for nats-server
//! and give each component its role's [`BusCredentials`].
//!
//! DEAs: besides the shared `dea` role (a DEA standing for any DEA, kept
//! for tools and tests), each DEA of a platform gets a user of its own
//! ([`BusUsers::with_deas`], `dea-<id>`) that receives only its own start
//! and staging requests (`dea.<id>.start`, `staging.<id>.*`): a DEA taken
//! over cannot read the environments and credentials sent to the others.
//!
//! Replies: every role's requests use a private inbox prefix
//! (`_INBOX.<role>.`), so a role subscribes only to its own replies; a role
//! that answers requests has `allow_responses` (it may publish once to the
//! reply subject of a request it received, and nowhere else through it).

use std::fmt;
use std::path::PathBuf;

use crate::subjects as s;

/// A component's bus identity, as its config gives it (`bus = { user = ..,
/// password = .. }`). Empty user: connect without credentials (a bus
/// without authorization, as in most unit tests).
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusCredentials {
    pub user: String,
    pub password: String,
    /// PEM CA bundle that signs the servers' certificates; set → TLS is
    /// required on every connection.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate and key, for servers that verify clients.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl fmt::Debug for BusCredentials {
    // The password never reaches a log line, even through `{:?}` of a config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusCredentials")
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

impl BusCredentials {
    /// The inbox prefix of this identity's requests (`_INBOX.<user>`), so
    /// its subscription permission can be limited to its own replies.
    pub fn inbox_prefix(&self) -> Option<String> {
        (!self.user.is_empty()).then(|| format!("_INBOX.{}", self.user))
    }

    /// The TOML inline table for a component config (`bus = { .. }`), a
    /// top-level key so it may stand anywhere in the file.
    pub fn toml_inline(&self) -> String {
        let mut parts = vec![
            format!("user = {}", toml_str(&self.user)),
            format!("password = {}", toml_str(&self.password)),
        ];
        for (k, v) in [
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ] {
            if let Some(p) = v {
                parts.push(format!("{k} = {}", toml_str(&p.display().to_string())));
            }
        }
        format!("bus = {{ {} }}", parts.join(", "))
    }
}

/// The platform's component roles on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Controller,
    Dea,
    Router,
    HealthManager,
}

/// What one role may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// May answer requests it received (publish once to their reply subject).
    pub allow_responses: bool,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Controller,
        Role::Dea,
        Role::Router,
        Role::HealthManager,
    ];

    /// The NATS user name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Dea => "dea",
            Role::Router => "router",
            Role::HealthManager => "health-manager",
        }
    }

    /// The subjects this role publishes and subscribes (docs/architecture.md
    /// §3.4 has the same table). Only DEAs and the controller announce
    /// routes; only the controller tells DEAs what to run or stage.
    pub fn permissions(self, hm_bucket: &str) -> Permissions {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let inbox = format!("_INBOX.{}.>", self.user());
        let (mut publish, mut subscribe, allow_responses) = match self {
            Role::Controller => (
                v(&[
                    s::LOGS_ALL,
                    "dea.*.start",
                    s::DEA_STOP,
                    s::DEA_UPDATE,
                    s::DEA_FIND_DROPLET,
                    s::DEA_LOCATE,
                    s::DEA_EGRESS,
                    s::ROUTER_REGISTER,
                    s::ROUTER_UNREGISTER,
                    "staging.*.start",
                    "staging.*.stop",
                ]),
                v(&[
                    s::DEA_ADVERTISE,
                    s::DEA_SHUTDOWN,
                    s::DROPLET_EXITED,
                    s::HEALTH_START,
                    s::HEALTH_STOP,
                    s::STAGING_ACTIVE,
                    s::STAGING_FINISHED,
                    s::LOGS_ALL,
                    s::ROUTER_START,
                ]),
                true,
            ),
            Role::Dea => (
                v(&[
                    s::DEA_HEARTBEAT,
                    s::DEA_ADVERTISE,
                    s::DEA_SHUTDOWN,
                    s::DROPLET_EXITED,
                    s::ROUTER_REGISTER,
                    s::ROUTER_UNREGISTER,
                    s::STAGING_ACTIVE,
                    s::STAGING_FINISHED,
                    s::LOGS_ALL,
                    s::COMPONENT_ANNOUNCE,
                ]),
                v(&[
                    "dea.*.start",
                    s::DEA_STOP,
                    s::DEA_UPDATE,
                    s::DEA_FIND_DROPLET,
                    s::DEA_LOCATE,
                    s::DEA_EGRESS,
                    s::DEA_HEARTBEAT,
                    s::ROUTER_START,
                    s::COMPONENT_DISCOVER,
                    "staging.*.start",
                    "staging.*.stop",
                ]),
                true,
            ),
            Role::Router => (
                v(&[s::ROUTER_START, s::LOGS_ALL]),
                v(&[s::ROUTER_REGISTER, s::ROUTER_UNREGISTER, s::ROUTER_GREET]),
                true,
            ),
            Role::HealthManager => (
                v(&[s::HEALTH_START, s::HEALTH_STOP, s::LOGS_ALL]),
                v(&[s::DEA_HEARTBEAT, s::DROPLET_EXITED]),
                false,
            ),
        };
        if self == Role::HealthManager {
            // The leader lock: a JetStream KV bucket of the HM's own.
            let stream = format!("KV_{hm_bucket}");
            publish.extend([
                "$JS.API.INFO".to_string(),
                format!("$JS.API.STREAM.*.{stream}"),
                format!("$JS.API.STREAM.MSG.GET.{stream}"),
                format!("$JS.API.DIRECT.GET.{stream}.>"),
                format!("$JS.API.CONSUMER.*.{stream}"),
                format!("$JS.API.CONSUMER.*.{stream}.>"),
                format!("$KV.{hm_bucket}.>"),
            ]);
        }
        subscribe.push(inbox);
        Permissions {
            publish,
            subscribe,
            allow_responses,
        }
    }
}

/// The bus user of the DEA with this id.
pub fn dea_user(id: &str) -> String {
    format!("dea-{id}")
}

/// What the DEA `id` may do: the `dea` role's rights, with the requests
/// addressed to DEAs narrowed to its own and its own reply inbox.
pub fn dea_permissions(id: &str, hm_bucket: &str) -> Permissions {
    let mut p = Role::Dea.permissions(hm_bucket);
    let inbox = format!("_INBOX.{}.>", Role::Dea.user());
    for sub in p.subscribe.iter_mut() {
        *sub = match sub.as_str() {
            "dea.*.start" => s::dea_start(id),
            "staging.*.start" => s::staging_start(id),
            "staging.*.stop" => s::staging_stop(id),
            x if x == inbox => format!("_INBOX.{}.>", dea_user(id)),
            x => x.to_string(),
        };
    }
    p
}

/// One user of the server config.
#[derive(Clone, PartialEq, Eq)]
pub struct BusUser {
    pub user: String,
    pub password: String,
    pub permissions: Permissions,
}

impl fmt::Debug for BusUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusUser")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// Every role's user with a fresh random password.
#[derive(Clone, Debug)]
pub struct BusUsers {
    pub users: Vec<BusUser>,
}

/// The leader-lock bucket the health manager uses by default.
pub const DEFAULT_HM_BUCKET: &str = "hm_leader";

impl BusUsers {
    /// A user per role, each with 244 random bits of password.
    pub fn generate(hm_bucket: &str) -> BusUsers {
        BusUsers {
            users: Role::ALL
                .iter()
                .map(|r| BusUser {
                    user: r.user().to_string(),
                    password: random_secret(),
                    permissions: r.permissions(hm_bucket),
                })
                .collect(),
        }
    }

    /// Adds a user with every permission (the test harness's observer, which
    /// stands for any component; never in `cf dev start`'s configs).
    pub fn with_superuser(mut self, user: &str) -> BusUsers {
        self.users.push(BusUser {
            user: user.to_string(),
            password: random_secret(),
            permissions: Permissions {
                publish: vec![">".into()],
                subscribe: vec![">".into()],
                allow_responses: true,
            },
        });
        self
    }

    /// Adds a user of its own for each DEA id ([`dea_permissions`]).
    pub fn with_deas(mut self, ids: &[String], hm_bucket: &str) -> BusUsers {
        for id in ids {
            self.users.push(BusUser {
                user: dea_user(id),
                password: random_secret(),
                permissions: dea_permissions(id, hm_bucket),
            });
        }
        self
    }

    /// The credentials of the DEA `id`: its own user when there is one,
    /// else the shared `dea` role's.
    pub fn dea(&self, id: &str) -> BusCredentials {
        self.credentials(&dea_user(id))
            .unwrap_or_else(|| self.role(Role::Dea))
    }

    /// The credentials of `user` (a role's name or an added user).
    pub fn credentials(&self, user: &str) -> Option<BusCredentials> {
        self.users
            .iter()
            .find(|u| u.user == user)
            .map(|u| BusCredentials {
                user: u.user.clone(),
                password: u.password.clone(),
                ..Default::default()
            })
    }

    /// The credentials of a role; every generated set has each role.
    pub fn role(&self, role: Role) -> BusCredentials {
        self.credentials(role.user()).unwrap_or_default()
    }
}

/// How a responder may answer: `dea.find.droplet` gets one reply per
/// matching instance from each DEA, so more than the server's default of
/// one message per request, within a minute of it.
const RESPONSES: &str = ", allow_responses: { max: 10000, expires: \"1m\" }";

/// Server-side TLS (`tls { .. }` of nats-server's config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set → clients must present a certificate this CA signed.
    pub verify_clients_ca: Option<PathBuf>,
}

/// The nats-server configuration text (its own format) with these users,
/// and TLS when given. Write it 0600: it holds every password.
pub fn server_config(users: &BusUsers, tls: Option<&ServerTls>) -> String {
    let list = |xs: &[String]| {
        xs.iter()
            .map(|x| conf_str(x))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("authorization {\n  users = [\n");
    for u in &users.users {
        let p = &u.permissions;
        out.push_str(&format!(
            "    {{ user: {}, password: {}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}{} }} }}\n",
            conf_str(&u.user),
            conf_str(&u.password),
            list(&p.publish),
            list(&p.subscribe),
            if p.allow_responses { RESPONSES } else { "" },
        ));
    }
    out.push_str("  ]\n}\n");
    if let Some(t) = tls {
        out.push_str(&format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n",
            conf_str(&t.cert_file.display().to_string()),
            conf_str(&t.key_file.display().to_string()),
        ));
        if let Some(ca) = &t.verify_clients_ca {
            out.push_str(&format!(
                "  ca_file: {}\n  verify: true\n",
                conf_str(&ca.display().to_string())
            ));
        }
        out.push_str("}\n");
    }
    out
}

/// A double-quoted string of nats-server's config format (JSON-like
/// escapes; our values are subjects, names, hex and paths).
fn conf_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn toml_str(s: &str) -> String {
    // TOML basic strings accept JSON's escapes for everything we write.
    conf_str(s)
}

/// 64 hex characters from two v4 UUIDs' random bits (the OS's CSPRNG).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(patterns: &[String], subject: &str) -> bool {
        patterns.iter().any(|p| matches(p, subject))
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn who_may_publish_what() {
        let table: &[(&str, &[Role])] = &[
            ("router.register", &[Role::Controller, Role::Dea]),
            ("router.unregister", &[Role::Controller, Role::Dea]),
            ("dea.d1.start", &[Role::Controller]),
            ("staging.d1.start", &[Role::Controller]),
            ("dea.stop", &[Role::Controller]),
            ("dea.heartbeat", &[Role::Dea]),
            ("droplet.exited", &[Role::Dea]),
            ("health.start", &[Role::HealthManager]),
            ("router.start", &[Role::Router]),
            ("staging.finished", &[Role::Dea]),
            (
                "logs.app",
                &[
                    Role::Controller,
                    Role::Dea,
                    Role::Router,
                    Role::HealthManager,
                ],
            ),
            ("_INBOX.controller.x.y", &[]),
            ("$JS.API.STREAM.DELETE.KV_other", &[]),
            ("$JS.API.STREAM.CREATE.KV_hm_leader", &[Role::HealthManager]),
        ];
        for (subject, who) in table {
            for r in Role::ALL {
                assert_eq!(
                    allows(&r.permissions("hm_leader").publish, subject),
                    who.contains(&r),
                    "{r:?} publish {subject}"
                );
            }
        }
    }

    #[test]
    fn replies_only_to_own_inbox() {
        for r in Role::ALL {
            let p = r.permissions("b");
            let own = format!("_INBOX.{}.abc.1", r.user());
            assert!(allows(&p.subscribe, &own), "{r:?}");
            for other in Role::ALL.iter().filter(|o| **o != r) {
                let theirs = format!("_INBOX.{}.abc.1", other.user());
                assert!(!allows(&p.subscribe, &theirs), "{r:?} reads {other:?}");
            }
        }
        assert!(!allows(
            &Role::Router.permissions("b").subscribe,
            "dea.d.start"
        ));
    }

    /// A DEA's own user hears only its own start and staging requests and
    /// replies; it publishes what any DEA publishes.
    #[test]
    fn a_dea_hears_only_its_own_requests() {
        let p = dea_permissions("dea-0", "b");
        for own in [
            "dea.dea-0.start",
            "staging.dea-0.start",
            "staging.dea-0.stop",
            "_INBOX.dea-dea-0.x.1",
            "dea.stop",
            "dea.find.droplet",
        ] {
            assert!(allows(&p.subscribe, own), "{own}");
        }
        for other in [
            "dea.dea-1.start",
            "dea.*.start",
            "staging.dea-1.start",
            "staging.dea-1.stop",
            "_INBOX.dea.x.1",
            "_INBOX.dea-dea-1.x.1",
            "_INBOX.controller.x.1",
        ] {
            assert!(!allows(&p.subscribe, other), "{other}");
        }
        assert_eq!(p.publish, Role::Dea.permissions("b").publish);
        let users = BusUsers::generate("b").with_deas(&["dea-0".into()], "b");
        assert_eq!(users.dea("dea-0").user, "dea-dea-0");
        assert_eq!(
            users.dea("dea-0").inbox_prefix().as_deref(),
            Some("_INBOX.dea-dea-0")
        );
        assert_eq!(
            users.dea("dea-9").user,
            "dea",
            "no own user: the shared one"
        );
        let text = server_config(&users, None);
        assert!(text.contains("\"dea.dea-0.start\""), "{text}");
    }

    #[test]
    fn server_config_and_credentials() {
        let users = BusUsers::generate("hm_leader").with_superuser("test");
        let text = server_config(&users, None);
        assert!(text.contains("user: \"controller\""), "{text}");
        assert!(text.contains("\"dea.*.start\""), "{text}");
        assert!(text.contains("allow_responses: { max: 10000"), "{text}");
        assert!(!text.contains("tls"), "{text}");
        let c = users.role(Role::Router);
        assert_eq!(c.user, "router");
        assert_eq!(c.password.len(), 64);
        assert_ne!(users.role(Role::Dea).password, c.password);
        assert!(!format!("{c:?}").contains(&c.password));
        assert!(!format!("{users:?}").contains(&c.password));
        let t: toml::Table = toml::from_str(&c.toml_inline()).expect("toml");
        assert_eq!(t["bus"]["user"].as_str(), Some("router"));
        assert_eq!(c.inbox_prefix().as_deref(), Some("_INBOX.router"));
        let tls = server_config(
            &users,
            Some(&ServerTls {
                cert_file: "/c".into(),
                key_file: "/k".into(),
                verify_clients_ca: None,
            }),
        );
        assert!(tls.contains("cert_file: \"/c\""), "{tls}");
    }
}
