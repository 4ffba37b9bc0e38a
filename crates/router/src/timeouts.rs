//! Client connection timeouts for connections served by hyper: the header
//! timeout (first request of a connection, and each later HTTP/1 head from
//! its first byte) and the keep-alive (idle) timeout, for HTTP/1 and HTTP/2.
//!
//! hyper has one HTTP/1 timer that runs from the end of a response to the
//! end of the next head, so it cannot tell an idle kept-alive connection
//! from a slow-loris one, and it has nothing for HTTP/2 or for a client
//! that stalls before the protocol is known. Here the stream is wrapped in
//! [`Watched`], which notes when bytes arrive; the service notes when
//! requests start and end ([`InFlight`], held by the response body); and
//! [`deadline`], a pure function of those facts, says when the connection
//! is due to be closed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Marks "not reading a head".
const NONE: u64 = u64::MAX;

/// What is known about a connection, in milliseconds since its accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Requests started so far.
    pub requests: u64,
    /// Requests whose response has not ended.
    pub in_flight: u64,
    /// When bytes last arrived or a response last ended.
    pub last_activity: u64,
    /// When the first byte of an HTTP/1 head arrived while no request was
    /// in flight (`None`: not reading a head).
    pub head_since: Option<u64>,
}

/// When the connection is due to be closed (ms since accept), or `None`
/// while a request is in flight (the backend's timeouts apply then).
pub fn deadline(f: Facts, header_ms: u64, keepalive_ms: u64) -> Option<u64> {
    if f.requests == 0 {
        // Nothing served yet: the first head (after the TLS handshake or
        // the HTTP/2 preface) is due within the header timeout.
        return Some(header_ms);
    }
    let idle = (f.in_flight == 0).then(|| f.last_activity.saturating_add(keepalive_ms));
    let head = f.head_since.map(|t| t.saturating_add(header_ms));
    match (idle, head) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Shared between the stream wrapper, the service and the watchdog.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    requests: AtomicU64,
    in_flight: AtomicU64,
    last_activity: AtomicU64,
    head_since: AtomicU64,
    /// HTTP/2 (its preface seen, over TLS too): no per-head timer,
    /// streams are multiplexed.
    h2: AtomicBool,
    /// Whether the first bytes were looked at for the HTTP/2 preface.
    sniffed: AtomicBool,
    /// Wakes the watchdog when a deadline comes closer (a head starts).
    closer: Notify,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            accepted: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            h2: AtomicBool::new(false),
            sniffed: AtomicBool::new(false),
            closer: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self, bytes: &[u8]) {
        let now = self.now_ms();
        self.last_activity.store(now, Ordering::Relaxed);
        if !self.sniffed.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI * HTTP/2") {
            self.h2.store(true, Ordering::Relaxed);
        }
        if !self.h2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(now, Ordering::Relaxed);
            self.closer.notify_one();
        }
    }

    /// A request head was read: it is in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn facts(&self) -> Facts {
        let head = self.head_since.load(Ordering::Relaxed);
        Facts {
            requests: self.requests.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_activity: self.last_activity.load(Ordering::Relaxed),
            head_since: (head != NONE).then_some(head),
        }
    }

    /// Resolves when the connection is due to be closed.
    pub async fn expired(&self, header: Duration, keepalive: Duration) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let (header_ms, keepalive_ms) = (ms(header), ms(keepalive));
        // While a request is in flight nothing can expire; look again after
        // the shorter timeout (a response that ends is seen then).
        let recheck = header.min(keepalive).max(Duration::from_millis(10));
        loop {
            let now = self.now_ms();
            match deadline(self.facts(), header_ms, keepalive_ms) {
                Some(d) if d <= now => return,
                Some(d) => {
                    let until = self.accepted + Duration::from_millis(d);
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = self.closer.notified() => {}
                    }
                }
                None => tokio::time::sleep(recheck).await,
            }
        }
    }
}

/// A request in flight; its end counts as activity.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_activity.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client stream that reports arriving bytes to its [`Activity`], with
/// bytes already read (by the fast path, before a hand-over) put back in
/// front.
pub struct Watched<S> {
    prefix: BytesMut,
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn with_prefix(prefix: BytesMut, inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched {
            prefix,
            inner,
            activity,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            self.activity.read(&buf.filled()[before..]);
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 15_000;
    const K: u64 = 75_000;

    fn facts(requests: u64, in_flight: u64, last: u64, head: Option<u64>) -> Facts {
        Facts {
            requests,
            in_flight,
            last_activity: last,
            head_since: head,
        }
    }

    #[test]
    fn first_request_is_due_within_the_header_timeout_of_the_accept() {
        // Silent, a partial head, or bytes of an HTTP/2 preface: the same.
        assert_eq!(deadline(facts(0, 0, 0, None), H, K), Some(H));
        assert_eq!(deadline(facts(0, 0, 9_000, Some(9_000)), H, K), Some(H));
    }

    #[test]
    fn idle_connection_is_due_after_the_keepalive_timeout() {
        assert_eq!(deadline(facts(3, 0, 20_000, None), H, K), Some(20_000 + K));
    }

    #[test]
    fn a_started_head_is_due_within_the_header_timeout_of_its_first_byte() {
        assert_eq!(
            deadline(facts(3, 0, 20_000, Some(20_000)), H, K),
            Some(20_000 + H)
        );
        // A keep-alive timeout shorter than the header timeout still wins.
        assert_eq!(
            deadline(facts(3, 0, 20_000, Some(20_000)), H, 1_000),
            Some(21_000)
        );
    }

    #[test]
    fn nothing_is_due_while_a_request_is_in_flight() {
        assert_eq!(deadline(facts(1, 1, 0, None), H, K), None);
        assert_eq!(deadline(facts(7, 2, 50, None), H, 10), None);
    }

    #[test]
    fn activity_tracks_heads_requests_and_http2() {
        let a = Activity::new();
        a.read(b"GET / HTTP/1.1\r\n");
        assert!(a.facts().head_since.is_some());
        let guard = a.start();
        assert_eq!(a.facts().in_flight, 1);
        assert_eq!(a.facts().head_since, None);
        // Bytes while a request is in flight (a pipelined head, a body)
        // start no head timer.
        a.read(b"GET /next");
        assert_eq!(a.facts().head_since, None);
        drop(guard);
        let f = a.facts();
        assert_eq!((f.requests, f.in_flight), (1, 0));

        let h2 = Activity::new();
        h2.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(h2.facts().head_since, None);
    }

    #[tokio::test(start_paused = true)]
    async fn expires_when_due_and_not_while_a_request_is_in_flight() {
        let a = Activity::new();
        let header = Duration::from_secs(15);
        let keepalive = Duration::from_secs(75);
        // Nothing received: closed at the header timeout.
        let t = Instant::now();
        a.expired(header, keepalive).await;
        assert_eq!(t.elapsed().as_secs(), 15);

        // A request in flight for ten minutes, then 75 s idle.
        let a = Activity::new();
        let guard = a.start();
        let expired = a.expired(header, keepalive);
        tokio::pin!(expired);
        assert!(
            tokio::time::timeout(Duration::from_secs(600), expired.as_mut())
                .await
                .is_err()
        );
        drop(guard);
        let t = Instant::now();
        expired.await;
        let waited = t.elapsed().as_secs();
        assert!((75..=90).contains(&waited), "{waited}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_started_while_idle_brings_the_deadline_closer() {
        let a = Activity::new();
        drop(a.start());
        let expired = a.expired(Duration::from_secs(15), Duration::from_secs(75));
        tokio::pin!(expired);
        // Idle for 30 s (the watchdog sleeps towards 75 s)...
        assert!(
            tokio::time::timeout(Duration::from_secs(30), expired.as_mut())
                .await
                .is_err()
        );
        // ...then half a head: due 15 s later, not at 75 s.
        a.read(b"GET / HT");
        let t = Instant::now();
        expired.await;
        assert_eq!(t.elapsed().as_secs(), 15);
    }
}
