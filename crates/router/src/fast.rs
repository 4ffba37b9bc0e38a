//! The HTTP/1.1 fast path of the plain-HTTP listener.
//!
//! The common request (HTTP/1.1, a `Host`, no body or a `Content-Length`
//! body, no upgrade, no `Expect`, a registered route with an endpoint that
//! has room) is proxied here without hyper: the request head is parsed in
//! place with `httparse`, the backend request head is written straight into
//! a buffer (hop-by-hop headers dropped, `X-Forwarded-*`, `X-Request-Start`,
//! `X-Vcap-Request-Id`, `X-Cf-InstanceID` added), the response head is parsed
//! and rewritten the same way (sticky-session cookie added), and the body is
//! relayed as it comes, keeping the backend's framing (`Content-Length`,
//! chunked, or until close). Backend connections are plain sockets kept in a
//! per-backend idle stack. Everything runs in the client connection's task.
//!
//! Anything else (HTTP/2 preface, HTTP/1.0, chunked or oversized uploads,
//! upgrades, `Expect`, malformed or oversized heads, unknown routes, full
//! endpoints) is handed to the hyper server together with the bytes read
//! so far, at a request boundary, and hyper serves the rest of that
//! connection: it has the complete behaviour (error pages, limits, h2,
//! upgrades). The fast path gives the same headers, retries, sticky
//! sessions, access log and metrics as the hyper path.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::access_log::{push_u64, AccessRecord};
use crate::client::IdlePool;
use crate::metrics::BackendError;
use crate::proxy::{sticky_cookie, Proxy, FAILED_ENDPOINT_SKIP_MS, MAX_ATTEMPTS, VCAP_ID};
use crate::server::{ConnInfo, Limits};
use crate::table::{ActiveGuard, Choice, Endpoint};

/// Most headers in a request or response head handled here (more: hyper).
const MAX_HEADERS: usize = 64;
/// Largest backend response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Relay buffer size for bodies.
const RELAY_BUF: usize = 16 * 1024;

/// What became of a client connection.
pub enum Outcome {
    /// Closed (or to be closed).
    Done,
    /// Continue with hyper; these bytes were read but not handled.
    Handover(BytesMut),
}

/// Shared state of the fast path.
pub struct FastPath {
    proxy: Arc<Proxy>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    max_header_bytes: usize,
    pool: IdlePool<TcpStream>,
}

fn is(name: &str, want: &str) -> bool {
    name.len() == want.len() && name.eq_ignore_ascii_case(want)
}

/// Hop-by-hop headers (dropped both ways).
fn hop_by_hop(name: &str) -> bool {
    match name.len() {
        2 => is(name, "te"),
        7 => is(name, "trailer") || is(name, "upgrade"),
        10 => is(name, "connection") || is(name, "keep-alive"),
        16 => is(name, "proxy-connection"),
        17 => is(name, "transfer-encoding"),
        18 => is(name, "proxy-authenticate"),
        19 => is(name, "proxy-authorization"),
        _ => false,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Comma-separated tokens of a header value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

fn parse_len(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the backend frames its response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Finds the end of a chunked body while its bytes go by unchanged.
#[derive(Debug, Default)]
struct ChunkScanner {
    state: ChunkState,
    /// Data bytes left in the current chunk.
    remaining: u64,
    /// Payload bytes seen.
    payload: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After the size: extensions until LF.
    SizeLine,
    Data,
    /// CRLF after the data.
    DataEnd,
    /// Start of a trailer line (empty line ends the body).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Saw CR of the final empty line.
    EndCr,
    Done,
}

impl ChunkScanner {
    /// Scans `data`; `Ok(Some(n))` when the body ends after `n` bytes of it.
    fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        let mut size_digits = 0usize;
        while i < data.len() {
            let b = data[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).ok_or(())?;
                        self.remaining = self
                            .remaining
                            .checked_mul(16)
                            .and_then(|r| r.checked_add(u64::from(d)))
                            .ok_or(())?;
                        size_digits += 1;
                        if size_digits > 16 {
                            return Err(());
                        }
                    }
                    b';' | b' ' | b'\t' | b'\r' => self.state = ChunkState::SizeLine,
                    b'\n' => self.end_size_line(),
                    _ => return Err(()),
                },
                ChunkState::SizeLine => {
                    if b == b'\n' {
                        self.end_size_line();
                    }
                }
                ChunkState::Data => {
                    let n =
                        (data.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    self.remaining -= n as u64;
                    self.payload += n as u64;
                    i += n;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    continue;
                }
                ChunkState::DataEnd => {
                    if b == b'\n' {
                        self.state = ChunkState::Size;
                        size_digits = 0;
                    } else if b != b'\r' {
                        return Err(());
                    }
                }
                ChunkState::TrailerStart => match b {
                    b'\r' => self.state = ChunkState::EndCr,
                    b'\n' => {
                        self.state = ChunkState::Done;
                        return Ok(Some(i + 1));
                    }
                    _ => self.state = ChunkState::Trailer,
                },
                ChunkState::Trailer => {
                    if b == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::EndCr => {
                    if b == b'\n' {
                        self.state = ChunkState::Done;
                        return Ok(Some(i + 1));
                    }
                    return Err(());
                }
                ChunkState::Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok(None)
    }

    fn end_size_line(&mut self) {
        if self.remaining == 0 {
            self.state = ChunkState::TrailerStart;
        } else {
            self.state = ChunkState::Data;
        }
    }
}

/// The request head, as far as the fast path needs it.
struct ReqInfo {
    method: Method,
    uri: Uri,
    host: HeaderValue,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    request_id: HeaderValue,
    xff: HeaderValue,
    sticky: Option<String>,
    body_len: u64,
    close: bool,
    /// When the head was parsed.
    wall: SystemTime,
    wall_ms: u64,
}

/// The backend connection a client connection used last, and its address.
type Own = Option<(Box<str>, TcpStream)>;

/// Whether an idle backend connection is still open: nothing to read
/// (tokio's readiness, no syscall) or a read that would block.
async fn alive(s: &TcpStream) -> bool {
    let readable = std::future::poll_fn(|cx| Poll::Ready(s.poll_read_ready(cx).is_ready())).await;
    if !readable {
        return true;
    }
    // Readable while idle: closed by the backend (or garbage).
    let mut b = [0u8; 1];
    matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A copy of a request head, and where the original started, to turn
/// slices of the original into slices of the copy.
struct Slice {
    bytes: Bytes,
    base: usize,
}

impl Slice {
    fn of(&self, part: &[u8]) -> Bytes {
        let start = (part.as_ptr() as usize).wrapping_sub(self.base);
        match start.checked_add(part.len()) {
            Some(end) if end <= self.bytes.len() => self.bytes.slice(start..end),
            _ => Bytes::copy_from_slice(part),
        }
    }
}

/// A request head read so far.
#[allow(clippy::large_enum_variant)] // a temporary on the stack
enum Head {
    /// Incomplete: read more.
    Partial,
    /// Not for the fast path: hand the connection to hyper.
    Handover,
    /// Complete (its length) and taken.
    Ready(usize, ReqInfo),
}

/// Why a backend attempt failed.
enum Failure {
    /// Could not connect (retried elsewhere, endpoint avoided).
    Connect,
    /// Closed or reset before any response byte.
    ClosedEarly,
    /// A failure after which nothing can be retried.
    Fatal(BackendError),
    /// The client went away.
    Client,
    /// The client stalled in the request body past `request_body_timeout`.
    BodyTimeout,
}

impl FastPath {
    pub fn new(proxy: Arc<Proxy>, limits: &Limits) -> FastPath {
        FastPath {
            proxy,
            header_timeout: limits.header_timeout,
            keepalive_timeout: limits.keepalive_timeout,
            max_header_bytes: limits.max_header_bytes,
            pool: IdlePool::new(|_| false),
        }
    }

    /// Serves `stream` until it closes or something needs hyper.
    pub async fn serve(
        &self,
        stream: &mut TcpStream,
        info: &ConnInfo,
        stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let mut own: Own = None;
        let outcome = self.serve_requests(stream, info, stop, &mut own).await;
        if let Some((address, conn)) = own {
            self.pool.put(&address, conn);
        }
        outcome
    }

    async fn serve_requests(
        &self,
        stream: &mut TcpStream,
        info: &ConnInfo,
        stop: &mut watch::Receiver<bool>,
        own: &mut Own,
    ) -> Outcome {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut rbuf = BytesMut::with_capacity(8 * 1024);
        let mut out = Vec::with_capacity(1024);
        let mut resp_out = Vec::with_capacity(1024);
        // One timer per kind of deadline for the connection's life: it
        // fires at an old deadline and is moved to the current one only
        // then (or when the deadline comes closer), instead of arming a
        // timer for every read.
        let accepted = tokio::time::Instant::now();
        let header_timer = tokio::time::sleep(self.header_timeout);
        tokio::pin!(header_timer);
        // The first request head must come within the header timeout of
        // the connection; later ones within the keep-alive timeout of the
        // previous response (idle), then within the header timeout of
        // their first byte.
        let mut first_request = true;
        let mut idle_since = accepted;
        let backend_timer = tokio::time::sleep(self.proxy.opts.endpoint_timeout);
        tokio::pin!(backend_timer);
        // Shutdown: one registration for the connection's life (polled
        // only while idle), the flag checked after every request.
        let stopping = stop.clone();
        let stopped = stop.changed();
        tokio::pin!(stopped);
        loop {
            if *stopping.borrow() && buf.is_empty() {
                return Outcome::Done;
            }
            // Read a complete request head in time. A later head's clock
            // starts when it is first seen incomplete (no clock read for a
            // head that arrives whole, the common case).
            let mut head_since = first_request.then_some(accepted);
            let (head_len, req) = loop {
                if !buf.is_empty() {
                    out.clear();
                    match self.parse_request(&buf, info, &mut out) {
                        Head::Ready(n, req) => break (n, req),
                        Head::Handover => return Outcome::Handover(buf),
                        Head::Partial => {
                            if head_since.is_none() {
                                head_since = Some(tokio::time::Instant::now());
                            }
                        }
                    }
                }
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(8 * 1024);
                }
                let idle = buf.is_empty();
                let deadline = match head_since {
                    Some(t) => t + self.header_timeout,
                    None => idle_since + self.keepalive_timeout,
                };
                if header_timer.deadline() > deadline {
                    header_timer.as_mut().reset(deadline);
                }
                let read = tokio::select! {
                    biased;
                    r = stream.read_buf(&mut buf) => r,
                    _ = &mut stopped, if idle => return Outcome::Done,
                    _ = header_timer.as_mut() => {
                        if tokio::time::Instant::now() >= deadline {
                            return Outcome::Done;
                        }
                        header_timer.as_mut().reset(deadline);
                        continue;
                    }
                };
                match read {
                    Ok(0) | Err(_) => return Outcome::Done,
                    Ok(_) => {}
                }
            };
            first_request = false;
            self.proxy.busy.touch();
            let started = Instant::now();
            let wall = req.wall;
            let backend_deadline =
                tokio::time::Instant::from_std(started) + self.proxy.opts.endpoint_timeout;
            let Some(pool) = self.proxy.routes.load().lookup(
                req.host.to_str().unwrap_or(""),
                &crate::path::normalize(req.uri.path()),
            ) else {
                return Outcome::Handover(buf);
            };
            let limit = self.proxy.opts.max_request_body_bytes;
            if limit > 0 && req.body_len > limit {
                return Outcome::Handover(buf);
            }
            let max_conns = self.proxy.opts.max_conns_per_backend;
            let now = req.wall_ms;
            let first = match req.sticky.as_deref() {
                Some(id) => match pool.sticky(id, now, max_conns) {
                    Some((i, e)) => Choice::Endpoint(i, e),
                    None => pool.next(&[], now, max_conns),
                },
                None => pool.next(&[], now, max_conns),
            };
            let Choice::Endpoint(first_i, first_e) = first else {
                return Outcome::Handover(buf);
            };
            // From here on the request is ours.
            buf.advance(head_len);
            let head_prefix = out.len();
            let mut tried = [usize::MAX; MAX_ATTEMPTS];
            let mut attempts = 0;
            let mut next = Some((first_i, first_e));
            let mut status = StatusCode::BAD_GATEWAY;
            let mut bytes_out = 0u64;
            let mut bytes_in = 0u64;
            let mut endpoint: Option<Arc<Endpoint>> = None;
            let mut client_ok = true;
            let mut answered = false;
            while let Some((i, e)) = next.take() {
                tried[attempts] = i;
                attempts += 1;
                if attempts > 1 {
                    self.proxy.metrics.record_retry();
                }
                endpoint = Some(e.clone());
                out.truncate(head_prefix);
                if let Some(id) = e.instance_id.as_deref() {
                    if HeaderValue::from_str(id).is_ok() {
                        push_header(&mut out, b"X-Cf-InstanceID", id.as_bytes());
                    }
                }
                out.extend_from_slice(b"\r\n");
                // Released as soon as the backend's response is complete,
                // before its last bytes reach the client: a client that
                // sends its next request on reading them must not find
                // this endpoint still counted busy.
                let mut guard = Some(e.acquire());
                let result = self
                    .attempt(
                        stream,
                        &e,
                        &req,
                        &mut buf,
                        &mut rbuf,
                        &mut out,
                        (backend_timer.as_mut(), backend_deadline),
                        own,
                        (&mut resp_out, &mut guard),
                    )
                    .await;
                drop(guard);
                match result {
                    Ok((st, sent_out, sent_in, reusable)) => {
                        status = st;
                        bytes_out = sent_out;
                        bytes_in = sent_in;
                        answered = true;
                        client_ok = reusable;
                        break;
                    }
                    Err((failure, body_sent)) => {
                        bytes_in = body_sent;
                        let retry = match failure {
                            Failure::Connect => {
                                self.proxy
                                    .metrics
                                    .record_backend_error(BackendError::Connect);
                                body_sent == 0
                            }
                            Failure::ClosedEarly => {
                                // Like gorouter's IdempotentRequestEOF; never
                                // once body bytes went to the app.
                                let retry = req.body_len == 0 && idempotent(&req.method);
                                self.proxy.metrics.record_backend_error(if retry {
                                    BackendError::Connect
                                } else {
                                    BackendError::Request
                                });
                                retry
                            }
                            Failure::Fatal(kind) => {
                                self.proxy.metrics.record_backend_error(kind);
                                false
                            }
                            Failure::Client => {
                                client_ok = false;
                                answered = true;
                                status = StatusCode::BAD_GATEWAY;
                                break;
                            }
                            Failure::BodyTimeout => {
                                // No response byte went to the client yet:
                                // 408, then the connection is closed (the
                                // rest of the body is never read).
                                tracing::info!(route = %pool.key, backend = %e.address, "request body stalled, request ended");
                                self.proxy.metrics.record_request_body_timeout();
                                let text = b"Request body timed out.\n";
                                out.clear();
                                out.extend_from_slice(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: ");
                                push_u64(&mut out, text.len() as u64);
                                out.extend_from_slice(b"\r\n\r\n");
                                out.extend_from_slice(text);
                                let _ = stream.write_all(&out).await;
                                bytes_out = text.len() as u64;
                                client_ok = false;
                                answered = true;
                                status = StatusCode::REQUEST_TIMEOUT;
                                break;
                            }
                        };
                        if retry {
                            e.mark_failed(now_ms() + FAILED_ENDPOINT_SKIP_MS);
                            tracing::warn!(route = %pool.key, backend = %e.address, attempt = attempts, "backend connection failed, retrying");
                            if attempts < MAX_ATTEMPTS {
                                if let Choice::Endpoint(i, e) =
                                    pool.next(&tried[..attempts], now_ms(), max_conns)
                                {
                                    next = Some((i, e));
                                }
                            }
                        } else {
                            tracing::warn!(route = %pool.key, backend = %e.address, "backend request failed");
                        }
                    }
                }
            }
            if !answered {
                // Every attempt failed before a response: 502.
                status = StatusCode::BAD_GATEWAY;
                let text = b"Registered endpoint failed to handle the request.\n";
                out.clear();
                out.extend_from_slice(b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\nx-cf-routererror: endpoint_failure\r\ncontent-length: ");
                push_u64(&mut out, text.len() as u64);
                out.extend_from_slice(b"\r\n");
                // The request body may be partly unread: close afterwards.
                let unread = req.body_len > bytes_in;
                if req.close || unread {
                    out.extend_from_slice(b"connection: close\r\n");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(text);
                bytes_out = text.len() as u64;
                client_ok = stream.write_all(&out).await.is_ok() && !unread;
                // A body not sent at all is still at the front of `buf`
                // (one sent was consumed from it or from the socket).
                if !unread && bytes_in == 0 {
                    let skip = usize::try_from(req.body_len)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    if skip as u64 == req.body_len {
                        buf.advance(skip);
                    } else {
                        client_ok = false;
                    }
                }
            }
            self.proxy.busy.touch();
            let elapsed = started.elapsed();
            let code = status.as_u16();
            self.proxy.metrics.record_response(code, bytes_out, elapsed);
            pool.stats.record(code);
            self.proxy.log.emit(AccessRecord {
                host: Some(req.host.clone()),
                method: req.method.clone(),
                uri: req.uri.clone(),
                version: Version::HTTP_11,
                status: code,
                referer: req.referer.clone(),
                user_agent: req.user_agent.clone(),
                client: info.peer,
                endpoint,
                x_forwarded_for: Some(req.xff.clone()),
                request_id: Some(req.request_id.clone()),
                started: wall,
                bytes_in,
                bytes_out,
                elapsed,
            });
            if !client_ok || req.close || *stopping.borrow() {
                let _ = stream.shutdown().await;
                return Outcome::Done;
            }
            idle_since = tokio::time::Instant::from_std(started + elapsed);
        }
    }

    /// Parses the request head at the start of `buf`; when the fast path
    /// takes it, writes the backend request head into `out`.
    fn parse_request(&self, buf: &[u8], info: &ConnInfo, out: &mut Vec<u8>) -> Head {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) if n <= self.max_header_bytes => {
                // One copy of the head; the fields kept for the access
                // log are slices of it.
                let head = Slice {
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    base: buf.as_ptr() as usize,
                };
                match self.build_request(&req, &head, info, out) {
                    Some(r) => Head::Ready(n, r),
                    None => Head::Handover,
                }
            }
            Ok(httparse::Status::Partial) if buf.len() < self.max_header_bytes => Head::Partial,
            _ => Head::Handover,
        }
    }

    /// Checks the request and writes the backend request head (without the
    /// per-endpoint `X-Cf-InstanceID` and the final CRLF) into `out`.
    fn build_request(
        &self,
        req: &httparse::Request<'_, '_>,
        head: &Slice,
        info: &ConnInfo,
        out: &mut Vec<u8>,
    ) -> Option<ReqInfo> {
        if req.version != Some(1) {
            return None;
        }
        let method_str = req.method?;
        let path = req.path?;
        if !path.starts_with('/') || method_str == "CONNECT" {
            return None;
        }
        let method = Method::from_bytes(method_str.as_bytes()).ok()?;
        let uri = Uri::from_maybe_shared(head.of(path.as_bytes())).ok()?;
        let mut host: Option<&[u8]> = None;
        let mut body_len: Option<u64> = None;
        let mut close = false;
        let mut prev_xff: Option<&[u8]> = None;
        let forward_xfcc = self.proxy.opts.forwarded_client_cert
            == crate::config::ForwardedClientCert::AlwaysForward;
        let mut referer = None;
        let mut user_agent = None;
        let mut sticky = None;

        out.extend_from_slice(method_str.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for h in req.headers.iter() {
            let name = h.name;
            let value = h.value;
            match name.len() {
                4 if is(name, "host") => {
                    if host.is_some() {
                        return None;
                    }
                    host = Some(value);
                }
                6 if is(name, "expect") => return None,
                6 if is(name, "cookie") && sticky.is_none() => sticky = sticky_from(value),
                7 if is(name, "referer") => {
                    referer = HeaderValue::from_maybe_shared(head.of(value)).ok();
                }
                7 if is(name, "upgrade") => return None,
                10 if is(name, "connection") => {
                    for t in tokens(value) {
                        if t.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                            return None;
                        }
                    }
                    continue;
                }
                10 if is(name, "user-agent") => {
                    user_agent = HeaderValue::from_maybe_shared(head.of(value)).ok();
                }
                14 if is(name, "content-length") => {
                    let n = parse_len(value)?;
                    if body_len.is_some_and(|b| b != n) {
                        return None;
                    }
                    body_len = Some(n);
                }
                15 if is(name, "x-forwarded-for") => {
                    if prev_xff.is_some() {
                        return None;
                    }
                    prev_xff = Some(value);
                    continue;
                }
                15 if is(name, "x-request-start") || is(name, "x-cf-instanceid") => continue,
                // The router's own, never the client's (docs/router.md
                // "Headers").
                9 if is(name, "x-real-ip") || is(name, "forwarded") => continue,
                16 if is(name, "x-forwarded-host") => continue,
                17 if is(name, "x-forwarded-proto") || is(name, "x-vcap-request-id") => continue,
                23 if !forward_xfcc && is(name, "x-forwarded-client-cert") => continue,
                17 if is(name, "transfer-encoding") => return None,
                _ => {}
            }
            if hop_by_hop(name) {
                continue;
            }
            push_header(out, name.as_bytes(), value);
        }
        let host = HeaderValue::from_maybe_shared(head.of(host?)).ok()?;
        host.to_str().ok()?;
        let xff = match prev_xff.map(trim) {
            Some(prev) if !prev.is_empty() => {
                let mut v = Vec::with_capacity(prev.len() + 2 + info.peer_ip.len());
                v.extend_from_slice(prev);
                v.extend_from_slice(b", ");
                v.extend_from_slice(info.peer_ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()?
            }
            _ => info.peer_ip.clone(),
        };
        push_header(out, b"X-Forwarded-For", xff.as_bytes());
        // The fast path serves only the plain-HTTP listener.
        push_header(out, b"X-Forwarded-Proto", b"http");
        push_header(out, b"X-Forwarded-Host", host.as_bytes());
        let wall = SystemTime::now();
        let wall_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        out.extend_from_slice(b"X-Request-Start: ");
        push_u64(out, wall_ms);
        out.extend_from_slice(b"\r\n");
        let request_id = {
            let mut b = uuid::Uuid::encode_buffer();
            let random = fastrand::u128(..).to_le_bytes();
            let id = uuid::Builder::from_random_bytes(random)
                .into_uuid()
                .hyphenated()
                .encode_lower(&mut b);
            push_header(out, b"X-Vcap-Request-Id", id.as_bytes());
            HeaderValue::from_str(id).ok()?
        };
        Some(ReqInfo {
            method,
            uri,
            host,
            referer,
            user_agent,
            request_id,
            xff,
            sticky,
            body_len: body_len.unwrap_or(0),
            close,
            wall,
            wall_ms,
        })
    }

    async fn connect(&self, address: &str) -> Option<TcpStream> {
        match tokio::time::timeout(self.proxy.opts.connect_timeout, TcpStream::connect(address))
            .await
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Some(s)
            }
            _ => None,
        }
    }

    /// An idle connection to `address` that the backend has not closed:
    /// the one this client connection used last if it went there, else one
    /// from the shared pool.
    async fn checkout(&self, address: &str, own: &mut Own) -> Option<TcpStream> {
        if let Some((a, s)) = own.take() {
            if &*a == address {
                if alive(&s).await {
                    return Some(s);
                }
            } else {
                *own = Some((a, s));
            }
        }
        while let Some(s) = self.pool.take(address) {
            if alive(&s).await {
                return Some(s);
            }
        }
        None
    }

    /// Keeps a reusable backend connection with the client connection
    /// (the one it held before, for another backend, goes to the pool).
    fn keep(&self, address: &str, conn: TcpStream, own: &mut Own) {
        if let Some((a, old)) = own.take() {
            if &*a == address {
                self.pool.put(&a, old);
                *own = Some((a, conn));
                return;
            }
            self.pool.put(&a, old);
        }
        *own = Some((address.into(), conn));
    }

    /// One try on endpoint `e`. `Ok((status, body bytes out, body bytes
    /// in, client connection reusable))`, or the failure and the request
    /// body bytes sent.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        client: &mut TcpStream,
        e: &Endpoint,
        req: &ReqInfo,
        buf: &mut BytesMut,
        rbuf: &mut BytesMut,
        out: &mut Vec<u8>,
        (mut timer, deadline): (Pin<&mut tokio::time::Sleep>, tokio::time::Instant),
        own: &mut Own,
        (resp_out, guard): (&mut Vec<u8>, &mut Option<ActiveGuard>),
    ) -> Result<(StatusCode, u64, u64, bool), (Failure, u64)> {
        let body_len = req.body_len;
        // Body bytes already read with the head go out with it.
        let buffered = usize::try_from(body_len)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let head_len = out.len();
        out.extend_from_slice(&buf[..buffered]);
        let mut reused = true;
        let mut backend = match self.checkout(&e.address, own).await {
            Some(s) => s,
            None => {
                reused = false;
                match self.connect(&e.address).await {
                    Some(s) => s,
                    None => {
                        out.truncate(head_len);
                        return Err((Failure::Connect, 0));
                    }
                }
            }
        };
        loop {
            rbuf.clear();
            let sent = backend.write_all(out).await;
            let early = match sent {
                Ok(()) => None,
                Err(_) => Some(()),
            };
            let mut body_sent = buffered as u64;
            let mut result = None;
            if early.is_none() {
                // The rest of the body, straight from the client.
                if body_sent < body_len {
                    buf.advance(buffered);
                    let stall = Some(self.proxy.opts.request_body_timeout).filter(|t| !t.is_zero());
                    match relay_exact(client, &mut backend, body_len - body_sent, buf, stall).await
                    {
                        Ok(()) => body_sent = body_len,
                        Err(Side::Client) => return Err((Failure::Client, body_sent)),
                        // The backend connection is dropped (closed) here.
                        Err(Side::Timeout) => return Err((Failure::BodyTimeout, body_sent)),
                        Err(Side::Other) => {
                            return Err((Failure::Fatal(BackendError::Request), body_sent))
                        }
                    }
                }
                result = Some(
                    self.respond(
                        client,
                        &mut backend,
                        req,
                        e,
                        rbuf,
                        (timer.as_mut(), deadline),
                        (resp_out, &mut *guard),
                    )
                    .await,
                );
            }
            let failure = match result {
                Some(Ok((status, bytes_out, client_ok, backend_ok))) => {
                    if body_sent == buffered as u64 {
                        buf.advance(buffered);
                    }
                    if backend_ok {
                        self.keep(&e.address, backend, own);
                    }
                    return Ok((status, bytes_out, body_sent, client_ok));
                }
                Some(Err(f)) => f,
                // The write failed: the backend had closed the connection.
                None => Failure::ClosedEarly,
            };
            // A kept-alive connection the backend had closed: once more on
            // a new one, when the request did not go out (the write failed)
            // or has no body and may be repeated.
            let stale = reused
                && matches!(failure, Failure::ClosedEarly)
                && (early.is_some() || (body_len == 0 && idempotent(&req.method)));
            if !stale {
                out.truncate(head_len);
                let sent = if body_sent == buffered as u64 {
                    0
                } else {
                    body_sent
                };
                return Err((failure, sent));
            }
            reused = false;
            match self.connect(&e.address).await {
                Some(s) => backend = s,
                None => {
                    out.truncate(head_len);
                    return Err((Failure::Connect, 0));
                }
            }
        }
    }

    /// Reads the backend's response head and relays the response.
    /// `Ok((status, body bytes, client reusable, backend reusable))`.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        client: &mut TcpStream,
        backend: &mut TcpStream,
        req: &ReqInfo,
        e: &Endpoint,
        rbuf: &mut BytesMut,
        (mut timer, deadline): (Pin<&mut tokio::time::Sleep>, tokio::time::Instant),
        (out, guard): (&mut Vec<u8>, &mut Option<ActiveGuard>),
    ) -> Result<(StatusCode, u64, bool, bool), Failure> {
        loop {
            // Read a complete response head.
            let (head_len, status, framing, backend_close) = loop {
                if !rbuf.is_empty() {
                    out.clear();
                    match self.build_response(rbuf, req, e, out) {
                        Ok(Some(r)) => break r,
                        Ok(None) if rbuf.len() < MAX_RESPONSE_HEAD => {}
                        _ => return Err(Failure::Fatal(BackendError::Request)),
                    }
                }
                if rbuf.capacity() - rbuf.len() < 1024 {
                    rbuf.reserve(8 * 1024);
                }
                let had = rbuf.len();
                let read = tokio::select! {
                    biased;
                    r = backend.read_buf(rbuf) => r,
                    _ = timer.as_mut() => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(Failure::Fatal(BackendError::Timeout));
                        }
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                };
                match read {
                    Ok(0) | Err(_) if had == 0 => return Err(Failure::ClosedEarly),
                    Ok(0) | Err(_) => return Err(Failure::Fatal(BackendError::Request)),
                    Ok(_) => {}
                }
            };
            if status.is_informational() {
                // 1xx before the real response: skip it.
                rbuf.advance(head_len);
                continue;
            }
            rbuf.advance(head_len);
            let framing = if req.method == Method::HEAD
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
            {
                Framing::Empty
            } else {
                framing
            };
            let close = req.close || framing == Framing::UntilClose;
            if close {
                out.extend_from_slice(b"connection: close\r\n");
            }
            out.extend_from_slice(b"\r\n");
            let mut backend_ok = !backend_close && framing != Framing::UntilClose;
            // Body bytes already here go out with the head.
            let (bytes, client_ok) = match framing {
                Framing::Empty => {
                    backend_ok &= rbuf.is_empty();
                    guard.take();
                    let ok = client.write_all(out).await.is_ok();
                    (0, ok)
                }
                Framing::Length(n) => {
                    let have = usize::try_from(n).unwrap_or(usize::MAX).min(rbuf.len());
                    out.extend_from_slice(&rbuf[..have]);
                    rbuf.advance(have);
                    if have as u64 == n {
                        guard.take();
                    }
                    if client.write_all(out).await.is_err() {
                        return Ok((status, have as u64, false, false));
                    }
                    if (have as u64) < n
                        && relay_exact(backend, client, n - have as u64, rbuf, None)
                            .await
                            .is_err()
                    {
                        return Ok((status, have as u64, false, false));
                    }
                    backend_ok &= rbuf.is_empty();
                    (n, true)
                }
                Framing::Chunked => {
                    let mut scanner = ChunkScanner::default();
                    let end = scanner
                        .scan(rbuf)
                        .map_err(|()| Failure::Fatal(BackendError::Request))?;
                    let have = end.unwrap_or(rbuf.len());
                    out.extend_from_slice(&rbuf[..have]);
                    rbuf.advance(have);
                    if end.is_some() {
                        guard.take();
                    }
                    if client.write_all(out).await.is_err() {
                        return Ok((status, scanner.payload, false, false));
                    }
                    if end.is_none() {
                        match relay_chunked(backend, client, &mut scanner, rbuf).await {
                            Ok(()) => {}
                            Err(_) => return Ok((status, scanner.payload, false, false)),
                        }
                    }
                    backend_ok &= rbuf.is_empty();
                    (scanner.payload, true)
                }
                Framing::UntilClose => {
                    let have = rbuf.len();
                    out.extend_from_slice(&rbuf[..]);
                    rbuf.clear();
                    if client.write_all(out).await.is_err() {
                        return Ok((status, have as u64, false, false));
                    }
                    let more = relay_until_close(backend, client).await;
                    (have as u64 + more, false)
                }
            };
            return Ok((status, bytes, client_ok && !close, backend_ok));
        }
    }

    /// Parses the response head in `rbuf` and writes the client's response
    /// head (without the final CRLF) into `out`.
    /// `Ok(Some((head length, status, framing, backend closes)))`.
    #[allow(clippy::type_complexity)]
    fn build_response(
        &self,
        rbuf: &[u8],
        req: &ReqInfo,
        e: &Endpoint,
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, StatusCode, Framing, bool)>, ()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(rbuf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(()),
        };
        let code = resp.code.ok_or(())?;
        let status = StatusCode::from_u16(code).map_err(|_| ())?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(());
        }
        let http10 = resp.version == Some(0);
        let mut close = http10;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_te = false;
        // Headers named in Connection are hop-by-hop too.
        let mut named: [&[u8]; 8] = [b""; 8];
        let mut n_named = 0;
        for h in resp.headers.iter() {
            if is(h.name, "connection") {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        if http10 {
                            close = false;
                        }
                    } else if n_named < named.len() {
                        named[n_named] = t;
                        n_named += 1;
                    } else {
                        return Err(());
                    }
                }
            }
        }
        out.extend_from_slice(b"HTTP/1.1 ");
        push_u64(out, u64::from(code));
        out.push(b' ');
        out.extend_from_slice(
            resp.reason
                .filter(|r| !r.is_empty())
                .or(status.canonical_reason())
                .unwrap_or("")
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        let mut jsession: Option<&str> = None;
        for h in resp.headers.iter() {
            let name = h.name;
            match name.len() {
                10 if is(name, "set-cookie") && jsession.is_none() => {
                    if let Ok(v) = std::str::from_utf8(h.value) {
                        if v.split_once('=')
                            .is_some_and(|(n, _)| n.trim() == crate::proxy::JSESSIONID)
                        {
                            jsession = Some(v.split_once(';').map_or("", |(_, a)| a));
                        }
                    }
                }
                14 if is(name, "content-length") => {
                    let n = parse_len(h.value).ok_or(())?;
                    if length.is_some_and(|l| l != n) {
                        return Err(());
                    }
                    length = Some(n);
                }
                17 if is(name, "transfer-encoding") => {
                    match tokens(h.value).last() {
                        Some(t) if t.eq_ignore_ascii_case(b"chunked") => chunked = true,
                        _ => other_te = true,
                    }
                    continue;
                }
                _ => {}
            }
            if hop_by_hop(name)
                || named[..n_named]
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
            {
                continue;
            }
            push_header(out, name.as_bytes(), h.value);
        }
        let framing = if chunked && !other_te {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        } else if other_te {
            Framing::UntilClose
        } else if let Some(n) = length {
            Framing::Length(n)
        } else if code >= 200 && code != 204 && code != 304 && req.method != Method::HEAD {
            Framing::UntilClose
        } else {
            Framing::Empty
        };
        if let Some(id) = e.instance_id.as_deref() {
            let attrs = jsession.map(str::to_string).or_else(|| {
                req.sticky
                    .as_deref()
                    .filter(|s| *s != id)
                    .map(|_| String::new())
            });
            if let Some(cookie) = attrs.and_then(|a| sticky_cookie(id, &a, false)) {
                push_header(out, b"set-cookie", cookie.as_bytes());
            }
        }
        Ok(Some((head_len, status, framing, close)))
    }
}

/// Methods that may be sent again when the backend closed the connection
/// before any response byte.
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `__VCAP_ID__` value of a `Cookie` header.
fn sticky_from(value: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(value).ok()?;
    v.split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == VCAP_ID)
        .map(|(_, value)| value.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which side of a relay failed.
enum Side {
    /// The side being read from... or the client, see callers.
    Client,
    Other,
    /// Nothing to read for the read timeout.
    Timeout,
}

/// Copies exactly `n` bytes from `from` to `to`, starting with what is in
/// `pending` (bytes of `from` already read; what follows the `n` bytes
/// stays there). A failure reading `from` is `Side::Client`, writing `to`
/// is `Side::Other` (callers name them); with `read_timeout`, a read that
/// gets nothing for that long is `Side::Timeout`.
async fn relay_exact<R, W>(
    from: &mut R,
    to: &mut W,
    mut n: u64,
    pending: &mut BytesMut,
    read_timeout: Option<Duration>,
) -> Result<(), Side>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !pending.is_empty() {
        let take = usize::try_from(n).unwrap_or(usize::MAX).min(pending.len());
        to.write_all(&pending[..take])
            .await
            .map_err(|_| Side::Other)?;
        pending.advance(take);
        n -= take as u64;
    }
    let mut chunk = vec![
        0u8;
        RELAY_BUF
            .min(usize::try_from(n).unwrap_or(RELAY_BUF))
            .max(1)
    ];
    while n > 0 {
        let want = chunk.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let read = from.read(&mut chunk[..want]);
        let got = match read_timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| Side::Timeout)?,
            None => read.await,
        }
        .map_err(|_| Side::Client)?;
        if got == 0 {
            return Err(Side::Client);
        }
        to.write_all(&chunk[..got]).await.map_err(|_| Side::Other)?;
        n -= got as u64;
    }
    Ok(())
}

/// Relays a chunked body from the backend until its end; bytes after it
/// stay in `rbuf`.
async fn relay_chunked(
    backend: &mut TcpStream,
    client: &mut TcpStream,
    scanner: &mut ChunkScanner,
    rbuf: &mut BytesMut,
) -> Result<(), Side> {
    let mut chunk = vec![0u8; RELAY_BUF];
    loop {
        let got = backend.read(&mut chunk).await.map_err(|_| Side::Other)?;
        if got == 0 {
            return Err(Side::Other);
        }
        let end = scanner.scan(&chunk[..got]).map_err(|()| Side::Other)?;
        let upto = end.unwrap_or(got);
        client
            .write_all(&chunk[..upto])
            .await
            .map_err(|_| Side::Client)?;
        if end.is_some() {
            rbuf.extend_from_slice(&chunk[upto..got]);
            return Ok(());
        }
    }
}

/// Relays until the backend closes; the byte count.
async fn relay_until_close(backend: &mut TcpStream, client: &mut TcpStream) -> u64 {
    let mut chunk = vec![0u8; RELAY_BUF];
    let mut total = 0;
    loop {
        match backend.read(&mut chunk).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => {
                if client.write_all(&chunk[..n]).await.is_err() {
                    return total;
                }
                total += n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_scanner_finds_the_end() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        let mut s = ChunkScanner::default();
        assert_eq!(s.scan(body), Ok(Some(body.len() - 4)));
        assert_eq!(s.payload, 11);
        // Byte by byte.
        let mut s = ChunkScanner::default();
        let mut end = None;
        for (i, b) in body.iter().enumerate() {
            if let Some(n) = s.scan(std::slice::from_ref(b)).expect("valid") {
                end = Some(i + n);
                break;
            }
        }
        assert_eq!(end, Some(body.len() - 4));
        // Trailers.
        let body = b"0\r\nx-t: 1\r\n\r\n";
        let mut s = ChunkScanner::default();
        assert_eq!(s.scan(body), Ok(Some(body.len())));
        let mut s = ChunkScanner::default();
        assert!(s.scan(b"zz\r\n").is_err());
    }

    #[test]
    fn header_helpers() {
        assert!(hop_by_hop("Connection"));
        assert!(hop_by_hop("TE"));
        assert!(!hop_by_hop("content-type"));
        assert_eq!(parse_len(b" 42 "), Some(42));
        assert_eq!(parse_len(b"4x"), None);
        assert_eq!(parse_len(b""), None);
        assert_eq!(
            sticky_from(b"a=1; __VCAP_ID__=inst-2").as_deref(),
            Some("inst-2")
        );
        assert_eq!(
            tokens(b"keep-alive, Upgrade").collect::<Vec<_>>(),
            vec![&b"keep-alive"[..], &b"Upgrade"[..]]
        );
    }
}
