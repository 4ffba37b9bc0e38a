//! The router: learns routes from NATS and proxies HTTP to app instances
//! (ARCHITECTURE §6, docs/conventions.md "Router config").

pub mod access_log;
pub mod admin;
pub mod body;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod table;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use proto::{Bus, RouterStart};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Bus(#[from] proto::BusError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad config: {0}")]
    Config(String),
}

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), RouterError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RouterError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| RouterError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    Ok((listener, local))
}

fn write_addr(file: Option<&Path>, addr: SocketAddr) -> Result<(), RouterError> {
    match file {
        Some(f) => config::write_atomic(f, &format!("{addr}\n")),
        None => Ok(()),
    }
}

/// Runs the router until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RouterError> {
    let id = uuid::Uuid::new_v4().to_string();
    let bus = Bus::connect(&config.nats_url, "router").await?;
    let routes = Arc::new(ArcSwap::from_pointee(table::Snapshot::default()));
    let (stop_tx, stop_rx) = watch::channel(false);

    let start = RouterStart {
        id: id.clone(),
        minimum_register_interval_s: config.minimum_register_interval_s,
        prune_threshold_s: config.prune_threshold_s,
    };
    let registry = registry::Registry::new(
        bus.clone(),
        routes.clone(),
        start,
        Duration::from_secs(config.prune_threshold_s),
    )
    .spawn(stop_rx.clone())
    .await?;

    let (proxy_listener, proxy_addr) = bind(&config.listen).await?;
    let (admin_listener, admin_addr) = bind(&config.admin_listen).await?;
    tracing::info!(id = %id, listen = %proxy_addr, admin = %admin_addr, nats = %config.nats_url, "router listening");

    let drain = Duration::from_secs(config.drain_timeout_s);
    let metrics = Arc::new(metrics::Metrics::default());
    let proxy = Arc::new(proxy::Proxy::new(
        routes.clone(),
        access_log::AccessLog::start(bus.clone()),
        metrics.clone(),
        Duration::from_millis(config.connect_timeout_ms),
    ));
    let proxy_task = tokio::spawn(server::serve(
        "proxy",
        proxy_listener,
        move |req, peer| {
            let proxy = proxy.clone();
            async move { proxy.handle(req, peer).await }
        },
        stop_rx.clone(),
        drain,
    ));
    let admin_routes = routes.clone();
    let admin_task = tokio::spawn(server::serve(
        "admin",
        admin_listener,
        move |req, _peer| {
            let resp = admin::handle(&admin_routes, &metrics, &req);
            async move { resp }
        },
        stop_rx,
        Duration::from_secs(1),
    ));

    write_addr(config.admin_addr_file.as_deref(), admin_addr)?;
    write_addr(config.addr_file.as_deref(), proxy_addr)?;

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(proxy_task, admin_task, registry);
    let _ = bus.flush().await;
    tracing::info!("router stopped");
    Ok(())
}
