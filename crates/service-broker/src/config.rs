//! The broker's TOML config (docs/service-broker.md "Config"). Every field
//! has a default, an unknown key is an error (docs/architecture.md §2.2);
//! a backend is served only when its section is present.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the OSB API listens; port 0 picks a free port (see
    /// [`crate::Broker::addr`] and `addr_file`).
    pub listen: SocketAddr,
    /// Once listening, the bound `ip:port` and a newline are written here
    /// (temp file, then rename), as every component does.
    pub addr_file: Option<PathBuf>,
    /// HTTP basic auth the platform uses (`cf create-service-broker NAME
    /// USER PASSWORD URL`).
    pub username: String,
    /// The password itself; `password_file` wins when both are set.
    pub password: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The broker's own state (instances, bindings, operations): a SQLite
    /// URL, e.g. `sqlite:///var/lib/broker/state.db` (created if missing).
    pub state_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a backend has to answer at start-up before it is skipped.
    pub probe_timeout_secs: u64,
    pub postgresql: Option<PostgresConfig>,
    pub mysql: Option<MysqlConfig>,
    pub redis: Option<RedisConfig>,
    pub rabbitmq: Option<RabbitConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9040)),
            addr_file: None,
            username: "broker".into(),
            password: None,
            password_file: None,
            state_url: "sqlite://service-broker.db".into(),
            max_body_bytes: 64 * 1024,
            probe_timeout_secs: 5,
            postgresql: None,
            mysql: None,
            redis: None,
            rabbitmq: None,
        }
    }
}

/// A plan of one offering. `id` is what the platform keeps: never change
/// it once the broker is registered.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Connections at once: per database (PostgreSQL), per binding's user
    /// (MySQL), per vhost (RabbitMQ); not enforced for Redis (docs).
    pub connection_limit: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// A superuser (or CREATEROLE + CREATEDB role) connection URL.
    pub admin_url: String,
    /// Host put in credentials; default the admin URL's host.
    pub advertise_host: Option<String>,
    /// Port put in credentials; default the admin URL's port.
    pub advertise_port: Option<u16>,
    /// Empty: the default plans (`small`, `shared`).
    pub plans: Vec<PlanConfig>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            admin_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            advertise_host: None,
            advertise_port: None,
            plans: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlConfig {
    /// A user with CREATE, DROP, CREATE USER, PROCESS, CONNECTION ADMIN
    /// (or SUPER) and GRANT OPTION: root on a local MariaDB.
    pub admin_url: String,
    pub advertise_host: Option<String>,
    pub advertise_port: Option<u16>,
    pub plans: Vec<PlanConfig>,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            admin_url: "mysql://root@127.0.0.1:3306".into(),
            advertise_host: None,
            advertise_port: None,
            plans: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port`: a user allowed ACL, CLIENT,
    /// SCAN and UNLINK (the default user of a local Redis 7).
    pub url: String,
    pub advertise_host: Option<String>,
    pub advertise_port: Option<u16>,
    /// Where the AUTH guard listens (`backends::redis_guard`): apps
    /// connect there, not to Redis; credentials then name its port (unless
    /// `advertise_port` says otherwise). Port 0: any free port. None: no
    /// guard, credentials name Redis itself.
    pub guard_listen: Option<std::net::SocketAddr>,
    pub plans: Vec<PlanConfig>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            advertise_host: None,
            advertise_port: None,
            guard_listen: None,
            plans: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitConfig {
    /// The management plugin's HTTP API with an administrator's
    /// credentials (plain http).
    pub management_url: String,
    /// The AMQP port put in credentials (and probed at start-up).
    pub amqp_port: u16,
    /// Host put in credentials; default the management URL's host.
    pub advertise_host: Option<String>,
    /// Port put in credentials; default `amqp_port`.
    pub advertise_port: Option<u16>,
    pub plans: Vec<PlanConfig>,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        RabbitConfig {
            management_url: "http://guest:guest@127.0.0.1:15672".into(),
            amqp_port: 5672,
            advertise_host: None,
            advertise_port: None,
            plans: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path` (none: every default, no backend).
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        Ok(proto::config::load_toml(path)?)
    }

    /// A config serving all four backends at their defaults (the servers
    /// of this machine), with `password`.
    pub fn all_local(password: &str) -> Config {
        Config {
            password: Some(password.into()),
            postgresql: Some(PostgresConfig::default()),
            mysql: Some(MysqlConfig::default()),
            redis: Some(RedisConfig::default()),
            rabbitmq: Some(RabbitConfig::default()),
            ..Config::default()
        }
    }

    /// The basic-auth password: `password_file`'s first line, else
    /// `password`. Never logged.
    pub fn resolve_password(&self) -> Result<String, Error> {
        let pw = match &self.password_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::PasswordFile {
                    path: p.clone(),
                    source,
                })?;
                text.lines().next().unwrap_or("").trim().to_string()
            }
            None => self.password.clone().unwrap_or_default(),
        };
        if pw.is_empty() {
            return Err(Error::Config(
                "no broker password: set `password` or `password_file`".into(),
            ));
        }
        if self.username.is_empty() || self.username.contains(':') {
            return Err(Error::Config(
                "`username` must be non-empty and have no ':'".into(),
            ));
        }
        Ok(pw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_defaults_and_password_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\nignored\n").expect("write");
        let file = dir.path().join("b.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:0\"\npassword_file = {:?}\n[postgresql]\nadvertise_host = \"10.0.0.1\"\n[redis]\n",
                pw.display().to_string()
            ),
        )
        .expect("write");
        let c = Config::load(Some(&file)).expect("load");
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.resolve_password().expect("password"), "s3cret");
        let pg = c.postgresql.expect("postgresql section");
        assert_eq!(pg.admin_url, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(pg.advertise_host.as_deref(), Some("10.0.0.1"));
        assert!(c.redis.is_some() && c.mysql.is_none() && c.rabbitmq.is_none());

        std::fs::write(&file, "[redis]\nbogus = 1\n").expect("write");
        assert!(Config::load(Some(&file)).is_err());
        assert!(Config::default().resolve_password().is_err(), "no password");
    }
}
