//! The cloud controller (docs/architecture.md §6): CF v3 API, store, blobstore,
//! tokens, placement, staging orchestration, health-request respondent and
//! log aggregation.

pub mod api;
pub mod auth;
pub mod authz;
pub mod blobstore;
pub mod config;
pub mod context;
pub mod error;
pub mod login;
pub mod logs;
pub mod placement;
pub mod quota;
pub mod runtime;
pub mod signing;
pub mod staging;
pub mod store;

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
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| RunError::DataDir {
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
    let blobs = blobstore::BlobStore::open(&cfg.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let internal_url = format!("http://{host}:{}", addr.port());
    let bus = proto::Bus::connect(&cfg.nats_url, "cloud-controller").await?;
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
    // Ask DEAs to advertise now so placement works right after a restart.
    ctx.publish(proto::subjects::DEA_LOCATE, &serde_json::json!({}))
        .await;

    let app = api::router(ctx.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        })
        .await
    });
    if let Some(path) = &cfg.addr_file {
        write_atomic(path, &format!("{addr}\n")).map_err(RunError::AddrFile)?;
    }
    tracing::info!(%addr, db = %redact(&cfg.database_url()), "cloud controller listening");

    tokio::pin!(shutdown);
    let mut server = server;
    let result = tokio::select! {
        _ = &mut shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(());
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
