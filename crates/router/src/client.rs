//! HTTP/1.1 connections to backends, driven inside the request's own task.
//!
//! hyper-util's pooled client runs every backend connection in a task of its
//! own, so each request hops between two tasks (and a channel) twice and
//! takes the pool's lock several times. Here a request checks a connection
//! out of a per-backend LIFO stack, polls the connection future itself while
//! it waits for the response head, and the response body keeps polling it
//! until the body ends; then the connection goes back on the stack. Nothing
//! is spawned per request. Upgrade requests get a fresh connection driven by
//! a task of its own (it must outlive the response to hand over the socket).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::RetryBody;
use crate::table::FastHash;

type Io = TokioIo<TcpStream>;
type Driver = http1::Connection<Io, RetryBody>;

/// Idle connections kept per backend at most.
pub const MAX_IDLE_PER_BACKEND: usize = 1024;
/// Idle connections are closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One HTTP/1.1 connection to a backend: the request sender and the
/// connection future that must be polled to move bytes.
struct Conn {
    tx: http1::SendRequest<RetryBody>,
    driver: Driver,
}

impl Conn {
    /// Polls the connection once (to notice a close by the backend and to
    /// let it ask for the next request); true if it can take a request.
    fn usable(&mut self, cx: &mut Context<'_>) -> bool {
        match Pin::new(&mut self.driver).poll(cx) {
            Poll::Ready(_) => false,
            Poll::Pending => self.tx.is_ready(),
        }
    }
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

struct PoolInner<T> {
    /// Backend address → idle connections, most recently used last.
    idle: Mutex<HashMap<Box<str>, Vec<Idle<T>>, FastHash>>,
    closed: fn(&T) -> bool,
}

/// Idle connections per backend address (LIFO), closed after
/// [`IDLE_TIMEOUT`] by a reaper task. Cheap to clone.
pub struct IdlePool<T> {
    inner: Arc<PoolInner<T>>,
}

impl<T> Clone for IdlePool<T> {
    fn clone(&self) -> Self {
        IdlePool {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> IdlePool<T> {
    /// Must be called inside a tokio runtime (starts the reaper).
    /// `closed` tells a connection that can no longer be used.
    pub fn new(closed: fn(&T) -> bool) -> IdlePool<T> {
        let inner = Arc::new(PoolInner {
            idle: Mutex::new(HashMap::default()),
            closed,
        });
        let weak: Weak<PoolInner<T>> = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => IdlePool { inner }.reap(Instant::now()),
                    None => return,
                }
            }
        });
        IdlePool { inner }
    }
}

impl<T> IdlePool<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Vec<Idle<T>>, FastHash>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `conn` for reuse (dropped when the backend has too many idle).
    pub fn put(&self, address: &str, conn: T) {
        if (self.inner.closed)(&conn) {
            return;
        }
        let idle = Idle {
            conn,
            since: Instant::now(),
        };
        let mut map = self.lock();
        match map.get_mut(address) {
            Some(stack) => {
                if stack.len() < MAX_IDLE_PER_BACKEND {
                    stack.push(idle);
                }
            }
            None => {
                map.insert(address.into(), vec![idle]);
            }
        }
    }

    /// The most recently used idle connection not past the idle timeout.
    pub fn take(&self, address: &str) -> Option<T> {
        let mut map = self.lock();
        let stack = map.get_mut(address)?;
        while let Some(idle) = stack.pop() {
            if idle.since.elapsed() < IDLE_TIMEOUT {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Drops connections idle for too long or closed, and empty entries.
    fn reap(&self, now: Instant) {
        let closed = self.inner.closed;
        let mut map = self.lock();
        map.retain(|_, stack| {
            stack.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && !closed(&i.conn));
            !stack.is_empty()
        });
    }
}

/// Why a backend request failed.
#[derive(Debug)]
pub enum SendError {
    /// The connection could not be opened (refused, unreachable, timeout).
    Connect(std::io::Error),
    /// The request failed on an open connection. `reused`: the connection
    /// had served requests before (it may have been closed by the backend
    /// while idle).
    Request { error: hyper::Error, reused: bool },
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// The request was never written: a pooled connection closed before it
    /// could be used. Safe to send again on a new connection.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, SendError::Request { error, reused: true } if error.is_canceled())
    }

    /// The backend closed or reset the connection before any response byte.
    pub fn closed_before_response(&self) -> bool {
        let SendError::Request { error, .. } = self else {
            return false;
        };
        if error.is_incomplete_message() {
            return true;
        }
        let mut source = error.source();
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) {
                    return true;
                }
            }
            source = err.source();
        }
        false
    }

    /// Whether the connection had served requests before.
    pub fn reused(&self) -> bool {
        matches!(self, SendError::Request { reused: true, .. })
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Request { error, .. } => {
                write!(f, "{error}")?;
                let mut source = error.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::Request { error, .. } => Some(error),
        }
    }
}

/// The backend connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pool: IdlePool<Conn>,
    connect_timeout: Duration,
}

impl Client {
    /// Must be called inside a tokio runtime (starts the idle reaper).
    pub fn new(connect_timeout: Duration) -> Client {
        Client {
            pool: IdlePool::new(|c: &Conn| c.tx.is_closed()),
            connect_timeout,
        }
    }

    async fn connect(&self, address: &str) -> Result<Conn, SendError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(SendError::Connect(e)),
                Err(_) => {
                    return Err(SendError::Connect(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timeout",
                    )))
                }
            };
        let _ = stream.set_nodelay(true);
        let (tx, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| SendError::Request {
                error,
                reused: false,
            })?;
        Ok(Conn { tx, driver })
    }

    /// A usable idle connection to `address`, if any.
    async fn checkout(&self, address: &str) -> Option<Conn> {
        loop {
            let mut conn = self.pool.take(address)?;
            let usable = std::future::poll_fn(|cx| Poll::Ready(conn.usable(cx))).await;
            if usable {
                return Some(conn);
            }
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `address` on an idle
    /// connection or a new one; the response body drives the connection
    /// and returns it to the pool when it ends.
    pub async fn send(
        &self,
        address: &str,
        mut req: Request<RetryBody>,
    ) -> Result<Response<BackendBody>, SendError> {
        loop {
            let (conn, reused) = match self.checkout(address).await {
                Some(c) => (c, true),
                None => (self.connect(address).await?, false),
            };
            match self.send_on(address, conn, req, reused).await {
                Ok(resp) => return Ok(resp),
                Err((error, Some(back))) if reused => {
                    // A stale pooled connection that never took the
                    // request: try again (a new connection once the idle
                    // ones are used up).
                    tracing::debug!(backend = %address, error = %error, "stale pooled connection");
                    req = back;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    async fn send_on(
        &self,
        address: &str,
        mut conn: Conn,
        req: Request<RetryBody>,
        reused: bool,
    ) -> Result<Response<BackendBody>, (SendError, Option<Request<RetryBody>>)> {
        let mut response = std::pin::pin!(conn.tx.try_send_request(req));
        let mut driver = Some(conn.driver);
        let result = std::future::poll_fn(|cx| {
            if let Some(d) = driver.as_mut() {
                if let Poll::Ready(r) = Pin::new(d).poll(cx) {
                    driver = None;
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "backend connection error");
                    }
                }
            }
            match response.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(r),
                // The connection ended: the response future resolves with
                // its error right away.
                Poll::Pending if driver.is_none() => response.as_mut().poll(cx),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match result {
            Ok(resp) => {
                let conn = driver.map(|driver| Conn {
                    tx: conn.tx,
                    driver,
                });
                let (parts, body) = resp.into_parts();
                Ok(Response::from_parts(
                    parts,
                    BackendBody {
                        inner: body,
                        conn,
                        pool: Some((self.pool.clone(), address.into())),
                    },
                ))
            }
            Err(mut e) => {
                let back = e.take_message();
                Err((
                    SendError::Request {
                        error: e.into_error(),
                        reused,
                    },
                    back,
                ))
            }
        }
    }

    /// Sends a request that asks for a protocol upgrade on a new
    /// connection driven by its own task (which hands the socket over to
    /// `hyper::upgrade::on` after a 101).
    pub async fn send_upgrade(
        &self,
        address: &str,
        req: Request<RetryBody>,
    ) -> Result<Response<BackendBody>, SendError> {
        let Conn { mut tx, driver } = self.connect(address).await?;
        tokio::spawn(async move {
            if let Err(e) = driver.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection error");
            }
        });
        let resp = tx
            .send_request(req)
            .await
            .map_err(|error| SendError::Request {
                error,
                reused: false,
            })?;
        let (parts, body) = resp.into_parts();
        Ok(Response::from_parts(
            parts,
            BackendBody {
                inner: body,
                conn: None,
                pool: None,
            },
        ))
    }
}

/// A backend response body that drives its connection while it is read
/// and returns the connection to the pool once it has ended.
pub struct BackendBody {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Option<(IdlePool<Conn>, Box<str>)>,
}

impl BackendBody {
    fn release(&mut self) {
        if let (Some(conn), Some((pool, address))) = (self.conn.take(), self.pool.take()) {
            pool.put(&address, conn);
        }
    }

    /// Polls the connection; forgets it when it ended.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = self.conn.as_mut() {
            if let Poll::Ready(r) = Pin::new(&mut conn.driver).poll(cx) {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "backend connection error");
                }
                self.conn = None;
            }
        }
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        // A body that was never polled because it is empty (HEAD, 204,
        // 304, Content-Length: 0) leaves its connection reusable; any other
        // unfinished body leaves it in an unknown state.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut res = Pin::new(&mut this.inner).poll_frame(cx);
        if res.is_pending() {
            this.drive(cx);
            res = Pin::new(&mut this.inner).poll_frame(cx);
        }
        match &res {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
