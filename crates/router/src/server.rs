//! Accept loop shared by the HTTP, HTTPS and admin listeners: HTTP/1.1 with
//! keep-alive and HTTP/2 (h2c, or ALPN over TLS), header-read timeout and
//! size limits, graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{Counted, RespBody};
use crate::fast::{FastPath, Outcome};
use crate::metrics::Metrics;
use crate::timeouts::{Activity, Watched};

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
    /// The first request head of a connection must be complete within this
    /// time of the accept (this covers the TLS handshake, a client that
    /// never sends a byte and one that stalls in the HTTP/2 preface), and
    /// every later HTTP/1 head within this time of its first byte
    /// (slow-loris protection).
    pub header_timeout: Duration,
    /// A connection with no request in flight and nothing received for this
    /// long is closed (HTTP/1 keep-alive and HTTP/2 alike).
    pub keepalive_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Client connections open at once (0 = unlimited), counted in the
    /// [`ConnCount`] given to [`serve`].
    pub max_client_connections: usize,
}

/// Client connections open, shared by the listeners that count them (in
/// [`Metrics`]: `router_client_connections`).
#[derive(Debug, Clone)]
pub struct ConnCount(Arc<Metrics>);

/// One counted connection; uncounted when dropped.
struct ConnSlot(Arc<Metrics>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.release_client_connection();
    }
}

impl ConnCount {
    pub fn new(metrics: Arc<Metrics>) -> ConnCount {
        ConnCount(metrics)
    }

    /// Counts a new connection unless `max` (0 = unlimited) are open.
    fn admit(&self, max: usize) -> Option<ConnSlot> {
        self.0
            .admit_client_connection(max)
            .then(|| ConnSlot(self.0.clone()))
    }
}

/// Written (best effort, without waiting) to a plain-HTTP connection
/// refused at the connection limit.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 22\r\nconnection: close\r\n\r\nToo many connections.\n";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(75),
            max_header_bytes: 64 * 1024,
            max_client_connections: 10_000,
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timer would also run while a kept-alive connection
    // is idle: the connection watchdog (`timeouts.rs`) keeps the two apart.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
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
    conns: Option<ConnCount>,
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
                let counted = match &conns {
                    Some(c) => match c.admit(limits.max_client_connections) {
                        Some(counted) => Some(counted),
                        None => {
                            // Refused at once: nothing is spawned or kept.
                            if tls.is_none() {
                                let _ = stream.try_write(OVER_CAPACITY);
                            }
                            tracing::debug!(listener = name, peer = %peer, "connection limit reached, connection refused");
                            continue;
                        }
                    },
                    None => None,
                };
                let _ = stream.set_nodelay(true);
                let info = ConnInfo::new(peer, tls.is_some());
                let handler = handler.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let mut stopping = stop.clone();
                let tls = tls.clone();
                let limits = limits.clone();
                let fast = fast.clone();
                let fast_conn = fast_conns.clone();
                tokio::spawn(async move {
                    let _counted = counted;
                    let conn = Conn { name, info, limits: &limits, builder: &builder, watcher };
                    match tls {
                        None => match &fast {
                            Some(f) => {
                                let mut stream = stream;
                                let outcome = f.serve(&mut stream, &conn.info, &mut stopping).await;
                                drop(fast_conn);
                                if let Outcome::Handover(read) = outcome {
                                    conn.serve(read, stream, Activity::new(), handler).await;
                                }
                            }
                            None => conn.serve(BytesMut::new(), stream, Activity::new(), handler).await,
                        },
                        Some(acceptor) => {
                            // The handshake counts towards the first head's time.
                            let activity = Activity::new();
                            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => conn.serve(BytesMut::new(), s, activity, handler).await,
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

/// A client connection handed to hyper.
struct Conn<'a> {
    name: &'static str,
    info: ConnInfo,
    limits: &'a Limits,
    builder: &'a auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Conn<'_> {
    /// Serves the connection with hyper until it ends, or until it has
    /// been idle or slow past the limits (see `timeouts.rs`). `read`: bytes
    /// the fast path read before handing the connection over.
    async fn serve<S, H, F>(self, read: BytesMut, stream: S, activity: Arc<Activity>, handler: H)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<RespBody>> + Send + 'static,
    {
        let Conn {
            name,
            info,
            limits,
            builder,
            watcher,
        } = self;
        let peer = info.peer;
        let requests = activity.clone();
        let service = service_fn(move |req| {
            let in_flight = requests.start();
            let fut = handler(req, info.clone());
            async move {
                let resp = fut.await;
                // The request is in flight until its response body ends.
                let done = Box::new(move |_bytes| drop(in_flight));
                Ok::<_, Infallible>(resp.map(|b| Counted::new(b, done).boxed()))
            }
        });
        let io = TokioIo::new(Watched::with_prefix(read, stream, activity.clone()));
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = watcher.watch(conn);
        tokio::select! {
            r = conn => {
                if let Err(e) = r {
                    tracing::debug!(listener = name, peer = %peer, error = %e, "connection ended with error");
                }
            }
            _ = activity.expired(limits.header_timeout, limits.keepalive_timeout) => {
                tracing::debug!(listener = name, peer = %peer, "closing an idle or slow connection");
            }
        }
    }
}
