//! The cloud controller (docs/architecture.md §6): CF v3 API, store, blobstore,
//! tokens, placement, staging orchestration, health-request respondent and
//! log aggregation.

pub mod api;
pub mod auth;
pub mod authz;
pub mod blob_gc;
pub mod blobstore;
pub mod config;
pub mod context;
pub mod deployments;
pub mod error;
pub mod keys;
pub mod login;
pub mod logs;
pub mod placement;
pub mod quota;
pub mod resource_pool;
pub mod revisions;
pub mod runtime;
pub mod services;
pub mod signing;
pub mod staging;
pub mod store;
pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use config::Config;
pub use context::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Blob(#[from] blobstore::BlobError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bus(#[from] proto::BusError),
    #[error("cannot write addr file: {0}")]
    AddrFile(#[source] std::io::Error),
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
    #[error("internal_api_token is not set: give the controller, router and health manager the same long random secret (cf dev start generates one)")]
    NoInternalToken,
}

/// Writes `contents` to `path` atomically (temp file, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Opens the store, bootstraps it, binds, connects to NATS, serves until `shutdown`.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if cfg.internal_api_token.is_empty() {
        return Err(RunError::NoInternalToken);
    }
    // 0700: the database (with the signing keys) and the blobs are the
    // controller's only, whatever the umask made of an older directory.
    std::fs::create_dir_all(&cfg.data_dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|source| RunError::DataDir {
            path: cfg.data_dir.display().to_string(),
            source,
        })?;
    let store = store::Store::open(&cfg.database_url()).await?;
    store
        .bootstrap(
            &cfg.admin_user,
            &cfg.admin_password,
            &cfg.system_domain,
            &cfg.apps_domain,
        )
        .await?;
    store.seed_security_groups(&dns_rules()).await?;
    let blobs = blobstore::BlobStore::for_config(&cfg).await?;
    let (listener, addr) = bind(cfg.listen).await?;
    let (internal_listener, internal_addr) = bind(cfg.internal_listen).await?;
    let host = if internal_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        internal_addr.ip().to_string()
    };
    let internal_url = format!("http://{host}:{}", internal_addr.port());
    let bus = proto::Bus::connect_with(&cfg.nats_url, &cfg.bus, "cloud-controller").await?;
    let ctx = Ctx::new(
        cfg.clone(),
        store.clone(),
        blobs,
        Some(bus.clone()),
        internal_url,
    )
    .await?;
    let mut tasks = runtime::spawn_subscribers(&ctx, &bus, addr).await?;
    tasks.push(staging::spawn_loop(ctx.clone()));
    tasks.extend(blob_gc::spawn(ctx.clone()));
    tasks.push(crate::tasks::spawn_sweep(ctx.clone()));
    tasks.push(deployments::spawn_updater(ctx.clone()));
    tasks.push(services::spawn_job_pruning(ctx.clone()));
    match services::resume(&ctx).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "resumed unfinished service jobs"),
        Err(e) => tracing::error!(error = %e, "cannot resume service jobs"),
    }
    // Ask DEAs to advertise now so placement works right after a restart.
    ctx.publish(proto::subjects::DEA_LOCATE, &serde_json::json!({}))
        .await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serve = |listener: tokio::net::TcpListener, app: axum::Router| {
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
        })
    };
    let server = serve(listener, api::router(ctx.clone()));
    let internal = serve(internal_listener, api::internal_router(ctx.clone()));
    if let Some(path) = &cfg.internal_addr_file {
        write_atomic(path, &format!("{internal_addr}\n")).map_err(RunError::AddrFile)?;
    }
    if let Some(path) = &cfg.addr_file {
        write_atomic(path, &format!("{addr}\n")).map_err(RunError::AddrFile)?;
    }
    tracing::info!(%internal_addr, "internal API listening");
    tracing::info!(%addr, db = %redact(&cfg.database_url()), "cloud controller listening");

    tokio::pin!(shutdown);
    let mut server = server;
    let result = tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            // Live log streams never end by themselves: give requests a moment.
            match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
                Ok(Ok(r)) => r.map_err(RunError::Serve),
                _ => Ok(()),
            }
        }
        r = &mut server => match r {
            Ok(r) => r.map_err(RunError::Serve),
            Err(e) => Err(RunError::Serve(std::io::Error::other(e))),
        },
    };
    server.abort();
    internal.abort();
    for t in tasks {
        t.abort();
    }
    if cfg.register_route {
        ctx.publish(
            proto::subjects::ROUTER_UNREGISTER,
            &runtime::api_registration(&ctx, addr),
        )
        .await;
    }
    let _ = bus.flush().await;
    store.close().await;
    result
}

/// Connections the kernel queues before the controller accepts them
/// (capped by `net.core.somaxconn`): a burst of a thousand clients (a
/// login flood) must not overflow it, or a newcomer's SYN is dropped and
/// retried a second later.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), RunError> {
    let err = |source| RunError::Listen { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    let l = socket.listen(LISTEN_BACKLOG).map_err(err)?;
    let bound = l.local_addr().map_err(err)?;
    Ok((l, bound))
}

/// The `dns` security group's rules: port 53 at the resolvers this host
/// uses (a loopback stub's upstream servers instead of the stub).
fn dns_rules() -> Vec<proto::EgressRule> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    let usable = proto::egress::usable_resolv_conf(&host, upstream.as_deref());
    proto::egress::dns(&proto::egress::nameservers(&usable))
}

/// Hides a password in a database URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x/cc.db"), "sqlite://x/cc.db");
    }
}
