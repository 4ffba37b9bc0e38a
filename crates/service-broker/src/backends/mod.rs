//! The servers the broker provisions on. Each backend's work is
//! idempotent (it checks before it creates, and deletes with IF EXISTS),
//! so work interrupted by a crash is simply done again.

use std::time::Duration;

use serde_json::{json, Value};

use crate::catalog::Kind;
use crate::config::{Config, PlanConfig};
use crate::Error;

pub mod mysql;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod redis_guard;
pub mod resp;

/// One configured backend.
pub enum Backend {
    Postgresql(postgres::Postgres),
    Mysql(mysql::Mysql),
    Redis(redis::Redis),
    Rabbitmq(rabbitmq::Rabbit),
}

/// What start-up found for one backend (see [`crate::probe_backends`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    pub kind: Kind,
    /// `None`: it answered and is in the catalog; `Some(why)`: skipped.
    pub skipped: Option<String>,
}

impl std::fmt::Display for BackendStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.skipped {
            None => write!(f, "{}: available", self.kind.name()),
            Some(why) => write!(f, "{}: skipped ({why})", self.kind.name()),
        }
    }
}

/// Where credentials point: the advertised host and port.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub host: String,
    pub port: u16,
}

/// `host:port` of a URL, with `default_port` when it names none.
pub(crate) fn url_host_port(raw: &str, default_port: u16) -> Result<(String, u16), Error> {
    let u = url::Url::parse(raw).map_err(|e| Error::Config(format!("invalid URL: {e}")))?;
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Config("URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, u.port().unwrap_or(default_port)))
}

pub(crate) fn advertised(
    raw_url: &str,
    default_port: u16,
    host: &Option<String>,
    port: Option<u16>,
) -> Result<Advertised, Error> {
    let (h, p) = url_host_port(raw_url, default_port)?;
    Ok(Advertised {
        host: host.clone().unwrap_or(h),
        port: port.unwrap_or(p),
    })
}

fn host_in_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The credentials a binding returns: `uri` and `url` (the same),
/// `hostname`, `port`, `name`, `username`, `password`.
pub fn credentials(
    scheme: &str,
    at: &Advertised,
    name: &str,
    path: &str,
    username: &str,
    password: &str,
) -> Value {
    let uri = format!(
        "{scheme}://{}:{}@{}:{}{path}",
        crate::names::pct(username),
        crate::names::pct(password),
        host_in_url(&at.host),
        at.port
    );
    json!({
        "uri": uri,
        "url": uri,
        "hostname": at.host,
        "port": at.port,
        "name": name,
        "username": username,
        "password": password,
    })
}

fn plans_or_default(kind: Kind, plans: &[PlanConfig]) -> Result<Vec<PlanConfig>, Error> {
    if plans.is_empty() {
        return Ok(kind.default_plans());
    }
    for (i, p) in plans.iter().enumerate() {
        if p.id.is_empty() || p.name.is_empty() {
            return Err(Error::Config(format!(
                "[{}] plan {i}: id and name are required",
                kind.name()
            )));
        }
        if plans[..i].iter().any(|q| q.id == p.id || q.name == p.name) {
            return Err(Error::Config(format!(
                "[{}] plan {:?}: duplicate id or name",
                kind.name(),
                p.name
            )));
        }
    }
    Ok(plans.to_vec())
}

impl Backend {
    /// Builds the backend `kind` from `config` (`None` when its section
    /// is absent). Does not contact the server: see [`Backend::probe`].
    pub fn from_config(kind: Kind, config: &Config) -> Result<Option<Backend>, Error> {
        Ok(match kind {
            Kind::Postgresql => match &config.postgresql {
                None => None,
                Some(c) => Some(Backend::Postgresql(postgres::Postgres::new(
                    c,
                    plans_or_default(kind, &c.plans)?,
                )?)),
            },
            Kind::Mysql => match &config.mysql {
                None => None,
                Some(c) => Some(Backend::Mysql(mysql::Mysql::new(
                    c,
                    plans_or_default(kind, &c.plans)?,
                )?)),
            },
            Kind::Redis => match &config.redis {
                None => None,
                Some(c) => Some(Backend::Redis(redis::Redis::new(
                    c,
                    plans_or_default(kind, &c.plans)?,
                )?)),
            },
            Kind::Rabbitmq => match &config.rabbitmq {
                None => None,
                Some(c) => Some(Backend::Rabbitmq(rabbitmq::Rabbit::new(
                    c,
                    plans_or_default(kind, &c.plans)?,
                )?)),
            },
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Backend::Postgresql(_) => Kind::Postgresql,
            Backend::Mysql(_) => Kind::Mysql,
            Backend::Redis(_) => Kind::Redis,
            Backend::Rabbitmq(_) => Kind::Rabbitmq,
        }
    }

    pub fn plans(&self) -> &[PlanConfig] {
        match self {
            Backend::Postgresql(b) => &b.plans,
            Backend::Mysql(b) => &b.plans,
            Backend::Redis(b) => &b.plans,
            Backend::Rabbitmq(b) => &b.plans,
        }
    }

    pub fn plan(&self, plan_id: &str) -> Option<&PlanConfig> {
        self.plans().iter().find(|p| p.id == plan_id)
    }

    /// Whether the server answers (and lets the admin do its work), within
    /// `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), Error> {
        let work = async {
            match self {
                Backend::Postgresql(b) => b.probe().await,
                Backend::Mysql(b) => b.probe().await,
                Backend::Redis(b) => b.probe().await,
                Backend::Rabbitmq(b) => b.probe().await,
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Backend(format!("no answer within {} s", timeout.as_secs())))?
    }

    /// Creates the instance's database / prefix / vhost (idempotent).
    pub async fn provision(&self, instance_id: &str, plan: &PlanConfig) -> Result<(), Error> {
        match self {
            Backend::Postgresql(b) => b.provision(instance_id, plan).await,
            Backend::Mysql(b) => b.provision(instance_id, plan).await,
            Backend::Redis(b) => b.provision(instance_id, plan).await,
            Backend::Rabbitmq(b) => b.provision(instance_id, plan).await,
        }
    }

    /// Deletes the instance's database / keys / vhost and what is left of
    /// its users (idempotent; bindings are unbound first by the caller).
    pub async fn deprovision(&self, instance_id: &str) -> Result<(), Error> {
        match self {
            Backend::Postgresql(b) => b.deprovision(instance_id).await,
            Backend::Mysql(b) => b.deprovision(instance_id).await,
            Backend::Redis(b) => b.deprovision(instance_id).await,
            Backend::Rabbitmq(b) => b.deprovision(instance_id).await,
        }
    }

    /// Creates (or resets to `password`) the binding's user and returns
    /// its credentials (idempotent).
    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        password: &str,
        plan: &PlanConfig,
    ) -> Result<Value, Error> {
        match self {
            Backend::Postgresql(b) => b.bind(instance_id, binding_id, password, plan).await,
            Backend::Mysql(b) => b.bind(instance_id, binding_id, password, plan).await,
            Backend::Redis(b) => b.bind(instance_id, binding_id, password, plan).await,
            Backend::Rabbitmq(b) => b.bind(instance_id, binding_id, password, plan).await,
        }
    }

    /// Ends the binding user's sessions and deletes it (idempotent).
    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> Result<(), Error> {
        match self {
            Backend::Postgresql(b) => b.unbind(instance_id, binding_id).await,
            Backend::Mysql(b) => b.unbind(instance_id, binding_id).await,
            Backend::Redis(b) => b.unbind(instance_id, binding_id).await,
            Backend::Rabbitmq(b) => b.unbind(instance_id, binding_id).await,
        }
    }

    /// Closes pools.
    pub async fn close(&self) {
        match self {
            Backend::Postgresql(b) => b.pool.close().await,
            Backend::Mysql(b) => b.pool.close().await,
            Backend::Redis(_) | Backend::Rabbitmq(_) => {}
        }
    }
}

/// Polls `check` until it returns true or `deadline` passes (then false).
pub(crate) async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> Result<bool, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= end {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
