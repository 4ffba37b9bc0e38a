//! The router: learns routes from NATS and proxies HTTP to app instances
//! (docs/architecture.md §12, docs/conventions.md "Router config").

pub mod access_log;
pub mod admin;
pub mod authority;
pub mod body;
pub mod busypoll;
pub mod client;
pub mod config;
pub mod fast;
pub mod lognats;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod table;
pub mod timeouts;
pub mod tls;

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
    let tls = match &config.tls_listen {
        Some(_) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            &config.tls_certificates,
        )?)),
        None => None,
    };
    let bus = Bus::connect_with(&config.nats_url, &config.bus, "router").await?;
    let routes = Arc::new(ArcSwap::from_pointee(table::Snapshot::default()));
    let metrics = Arc::new(metrics::Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    let start = RouterStart {
        id: id.clone(),
        minimum_register_interval_s: config.minimum_register_interval_s,
        prune_threshold_s: config.prune_threshold_s,
    };
    let authority = match &config.route_authority_url {
        Some(url) => Some(
            authority::Authority::new(url, &config.route_authority_token)
                .map_err(RouterError::Config)?,
        ),
        None => None,
    };
    let registry = registry::Registry::new(
        bus.clone(),
        routes.clone(),
        start,
        Duration::from_secs(config.prune_threshold_s),
        metrics.clone(),
    )
    .with_authority(authority)
    .spawn(stop_rx.clone())
    .await?;

    let (proxy_listener, proxy_addr) = bind(&config.listen).await?;
    let tls_listener = match &config.tls_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let (admin_listener, admin_addr) = bind(&config.admin_listen).await?;
    tracing::info!(
        id = %id,
        listen = %proxy_addr,
        tls = ?tls_listener.as_ref().map(|l| l.1),
        admin = %admin_addr,
        nats = %config.nats_url,
        "router listening"
    );

    let drain = Duration::from_secs(config.drain_timeout_s);
    // Busy polling only where it has a thread of its own to keep awake: a
    // current-thread runtime (`worker_threads = 1`).
    let busy = Arc::new(busypoll::BusyPoll::default());
    let spin = (config.busy_poll_us > 0
        && tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread)
        .then(|| {
            let busy = busy.clone();
            let window = Duration::from_micros(config.busy_poll_us);
            tokio::spawn(async move { busy.run(window).await })
        });
    let limits = server::Limits {
        header_timeout: Duration::from_millis(config.client_header_timeout_ms),
        keepalive_timeout: Duration::from_millis(config.client_keepalive_timeout_ms),
        max_header_bytes: config.max_header_bytes,
        max_client_connections: config.max_client_connections,
    };
    // One count for the HTTP and HTTPS listeners together.
    let client_conns = server::ConnCount::new(metrics.clone());
    let proxy = Arc::new(proxy::Proxy::new(
        routes.clone(),
        access_log::AccessLog::start(
            Some(bus.clone()),
            Some((config.nats_url.clone(), config.bus.clone())),
            config.access_log_stdout,
            metrics.clone(),
        ),
        metrics.clone(),
        proxy::ProxyOptions {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            endpoint_timeout: Duration::from_millis(config.endpoint_timeout_ms),
            idle_timeout: Duration::from_secs(config.idle_timeout_s.max(1)),
            max_request_body_bytes: config.max_request_body_bytes,
            max_conns_per_backend: config.max_conns_per_backend,
            request_body_timeout: Duration::from_millis(config.request_body_timeout_ms),
            forwarded_client_cert: config.forwarded_client_cert,
        },
        busy.clone(),
    ));
    let fast = Arc::new(fast::FastPath::new(proxy.clone(), &limits));
    let handler = move |req, conn| {
        let proxy = proxy.clone();
        async move { proxy.handle(req, conn).await }
    };
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(server::serve(
        "proxy",
        proxy_listener,
        None,
        Some(fast),
        Some(client_conns.clone()),
        limits.clone(),
        handler.clone(),
        stop_rx.clone(),
        drain,
    )));
    let tls_addr = match (tls_listener, tls) {
        (Some((listener, addr)), Some(acceptor)) => {
            tasks.push(tokio::spawn(server::serve(
                "proxy-tls",
                listener,
                Some(acceptor),
                None,
                Some(client_conns),
                limits.clone(),
                handler,
                stop_rx.clone(),
                drain,
            )));
            Some(addr)
        }
        _ => None,
    };
    let admin_routes = routes.clone();
    let admin_busy = busy.clone();
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin_draining = draining.clone();
    tasks.push(tokio::spawn(server::serve(
        "admin",
        admin_listener,
        None,
        None,
        None,
        limits,
        move |req, _conn| {
            let lame = admin_draining.load(std::sync::atomic::Ordering::Relaxed);
            let resp = admin::handle(&admin_routes, &metrics, &admin_busy, lame, &req);
            async move { resp }
        },
        stop_rx,
        Duration::from_secs(1),
    )));

    write_addr(config.admin_addr_file.as_deref(), admin_addr)?;
    if let Some(addr) = tls_addr {
        write_addr(config.tls_addr_file.as_deref(), addr)?;
    }
    write_addr(config.addr_file.as_deref(), proxy_addr)?;

    shutdown.await;
    if config.drain_wait_s > 0 {
        // Lame duck: still serving, but telling the load balancer to go.
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            drain_wait_s = config.drain_wait_s,
            "draining: /health answers 503 while requests are still served"
        );
        tokio::time::sleep(Duration::from_secs(config.drain_wait_s)).await;
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = registry.await;
    if let Some(spin) = spin {
        spin.abort();
    }
    // Flushing waits for a connection: do not hang when NATS is gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), bus.flush()).await;
    tracing::info!("router stopped");
    Ok(())
}
