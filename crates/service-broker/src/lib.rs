//! An Open Service Broker API v2 server for the data services of this
//! machine: PostgreSQL, MySQL (MariaDB), Redis and RabbitMQ
//! (docs/service-broker.md).
//!
//! [`start`] returns a running [`Broker`] (its bound address, which
//! backends were found); [`run`] serves until a shutdown future ends;
//! [`probe_backends`] only says which backends answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod api;
pub mod backends;
pub mod catalog;
pub mod config;
pub mod names;
pub mod store;

pub use backends::{Backend, BackendStatus};
pub use catalog::Kind;
pub use config::{Config, MysqlConfig, PlanConfig, PostgresConfig, RabbitConfig, RedisConfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    ConfigFile(#[from] proto::config::ConfigError),
    #[error("config: {0}")]
    Config(String),
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write addr_file {path}: {source}")]
    AddrFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

/// [`BackendStatus::skipped`] of a backend without a config section.
pub const NOT_CONFIGURED: &str = "not configured";

/// How a broker started by [`start_with`] behaves beyond its config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Accept and persist asynchronous provisions but never start their
    /// work (a broker that "dies" mid-provision; tests restart another
    /// broker on the same state, which finishes it).
    pub hold_async_work: bool,
}

/// A running broker.
pub struct Broker {
    addr: SocketAddr,
    statuses: Vec<BackendStatus>,
    shared: Arc<api::Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    guard: Option<tokio::task::JoinHandle<()>>,
}

impl Broker {
    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's base URL, `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every backend, available or skipped (and why).
    pub fn statuses(&self) -> &[BackendStatus] {
        &self.statuses
    }

    /// Stops serving, aborts background work (it resumes at the next
    /// start), closes the pools.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        if let Some(g) = &self.guard {
            g.abort();
        }
        let served = self.server.await;
        self.shared.stop_background().await;
        for b in self.shared.backends.values() {
            b.close().await;
        }
        self.shared.store.close().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("server: {e}"))),
            Err(e) => Err(Error::Internal(format!("server task: {e}"))),
        }
    }
}

/// Builds and probes every backend of `config`: the available ones and
/// the status of all four (`skipped: Some("not configured")` for those
/// without a section).
pub async fn connect_backends(
    config: &Config,
) -> Result<(BTreeMap<Kind, Backend>, Vec<BackendStatus>), Error> {
    let timeout = Duration::from_secs(config.probe_timeout_secs.max(1));
    let mut built = Vec::new();
    let mut statuses = Vec::new();
    for kind in Kind::ALL {
        match Backend::from_config(kind, config)? {
            Some(b) => built.push(b),
            None => statuses.push(BackendStatus {
                kind,
                skipped: Some(NOT_CONFIGURED.into()),
            }),
        }
    }
    let probes = futures_util::future::join_all(built.iter().map(|b| b.probe(timeout))).await;
    let mut available = BTreeMap::new();
    for (b, probe) in built.into_iter().zip(probes) {
        let kind = b.kind();
        match probe {
            Ok(()) => {
                statuses.push(BackendStatus {
                    kind,
                    skipped: None,
                });
                available.insert(kind, b);
            }
            Err(e) => {
                b.close().await;
                statuses.push(BackendStatus {
                    kind,
                    skipped: Some(e.to_string()),
                });
            }
        }
    }
    statuses.sort_by_key(|s| s.kind);
    Ok((available, statuses))
}

/// Which backends of `config` answer now (for `cf dev start`: "found
/// postgresql, mysql; skipped rabbitmq (...)"). Contacts the servers,
/// changes nothing.
pub async fn probe_backends(config: &Config) -> Result<Vec<BackendStatus>, Error> {
    let (available, statuses) = connect_backends(config).await?;
    for b in available.values() {
        b.close().await;
    }
    Ok(statuses)
}

/// Starts a broker: opens its state, probes the backends (logging which
/// are skipped and why), listens, resumes unfinished work.
pub async fn start(config: Config) -> Result<Broker, Error> {
    start_with(config, Options::default()).await
}

pub async fn start_with(mut config: Config, options: Options) -> Result<Broker, Error> {
    let password = config.resolve_password()?;
    let store = store::Store::open(&config.state_url).await?;
    // The Redis guard listens first: credentials name its port.
    let mut guard = None;
    if let Some(r) = config.redis.as_mut() {
        if let Some(at) = r.guard_listen {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|source| Error::Listen { addr: at, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| Error::Listen { addr: at, source })?;
            r.advertise_port.get_or_insert(bound.port());
            let (host, port) = backends::url_host_port(&r.url, 6379)?;
            let upstream = tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| Error::Config(format!("[redis] url: cannot resolve {host}")))?;
            tracing::info!(%bound, %upstream, "redis guard listening");
            guard = Some(tokio::spawn(backends::redis_guard::serve(l, upstream)));
        }
    }
    let (backends, statuses) = connect_backends(&config).await?;
    for s in &statuses {
        match &s.skipped {
            None => tracing::info!(backend = s.kind.name(), "backend available"),
            Some(why) if why == NOT_CONFIGURED => {
                tracing::info!(backend = s.kind.name(), "backend not configured")
            }
            Some(why) => {
                tracing::warn!(backend = s.kind.name(), reason = %why, "backend skipped: not in the catalog")
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(api::Shared::new(
        store,
        backends,
        &config.username,
        &password,
        config.max_body_bytes,
        options.hold_async_work,
    ));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let app = api::router(shared.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    shared.resume().await?;
    if let Some(path) = &config.addr_file {
        write_addr_file(path, addr)?;
    }
    tracing::info!(%addr, "service broker listening");
    Ok(Broker {
        addr,
        statuses,
        shared,
        stop,
        server,
        guard,
    })
}

fn write_addr_file(path: &std::path::Path, addr: SocketAddr) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::AddrFile {
            path: path.into(),
            source,
        })
}

/// Serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let broker = start(config).await?;
    shutdown.await;
    tracing::info!("service broker stopping");
    broker.shutdown().await
}
