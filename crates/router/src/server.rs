//! Accept loop shared by the HTTP, HTTPS and admin listeners: HTTP/1.1 with
//! keep-alive and HTTP/2 (h2c, or ALPN over TLS), header-read timeout and
//! size limits, graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::RespBody;
use crate::fast::{FastPath, Outcome, Prefixed};

/// What the handler knows about the client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's IP as a header value (formatted once per connection).
    pub peer_ip: http::HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            peer_ip: http::HeaderValue::try_from(peer.ip().to_string())
                .unwrap_or(http::HeaderValue::from_static("-")),
        }
    }
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request headers must arrive within this time (also closes idle
    /// keep-alive connections; covers the TLS handshake and the first byte).
    pub header_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(15),
            max_header_bytes: 64 * 1024,
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `listener` (TLS when `tls` is set) until `stop` turns true, then
/// waits up to `drain` for open connections to finish.
#[allow(clippy::too_many_arguments)]
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    fast: Option<Arc<FastPath>>,
    limits: Limits,
    handler: H,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RespBody>> + Send + 'static,
{
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    // Connections on the fast path (each holds a clone while it runs).
    let fast_conns = Arc::new(());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let info = ConnInfo::new(peer, tls.is_some());
                let handler = handler.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let mut stopping = stop.clone();
                let tls = tls.clone();
                let timeout = limits.header_timeout;
                let fast = fast.clone();
                let fast_conn = fast_conns.clone();
                tokio::spawn(async move {
                    match tls {
                        None if fast.is_some() => {
                            let mut stream = stream;
                            let outcome = match &fast {
                                Some(f) => f.serve(&mut stream, &info, &mut stopping).await,
                                None => Outcome::Done,
                            };
                            drop(fast_conn);
                            if let Outcome::Handover(read) = outcome {
                                serve_conn(name, Prefixed::new(read, stream), info, handler, &builder, watcher).await;
                            }
                        }
                        None => {
                            // Do not hand hyper a connection that never
                            // sends a byte (protocol detection has no timeout).
                            let mut b = [0u8; 1];
                            tokio::select! {
                                r = tokio::time::timeout(timeout, stream.peek(&mut b)) => match r {
                                    Ok(Ok(n)) if n > 0 => {}
                                    _ => return,
                                },
                                _ = stopping.changed() => return,
                            }
                            serve_conn(name, stream, info, handler, &builder, watcher).await;
                        }
                        Some(acceptor) => {
                            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => serve_conn(name, s, info, handler, &builder, watcher).await,
                                Ok(Err(e)) => tracing::debug!(listener = name, peer = %peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(listener = name, peer = %peer, "TLS handshake timeout"),
                            }
                        }
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(listener = name, "draining connections");
    let fast_drained = async {
        while Arc::strong_count(&fast_conns) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(drain, async {
        tokio::join!(graceful.shutdown(), fast_drained)
    })
    .await
    .is_err()
    {
        tracing::warn!(
            listener = name,
            "drain timeout, closing remaining connections"
        );
    }
}

async fn serve_conn<S, H, F>(
    name: &'static str,
    stream: S,
    info: ConnInfo,
    handler: H,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RespBody>> + Send + 'static,
{
    let peer = info.peer;
    let service = service_fn(move |req| {
        let fut = handler(req, info.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let conn = watcher.watch(conn);
    if let Err(e) = conn.await {
        tracing::debug!(listener = name, peer = %peer, error = %e, "connection ended with error");
    }
}
