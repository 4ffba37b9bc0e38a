//! The HTTP proxy: route lookup, load balancing with retry on connection
//! failure, sticky sessions, forwarding headers, streaming bodies, upgrades.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, COOKIE, HOST, REFERER, SET_COOKIE,
    UPGRADE, USER_AGENT,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::access_log::{AccessLog, AccessRecord};
use crate::body::{full, BodyTimeout, Counted, RespBody, RetryBody, TooLarge};
use crate::busypoll::BusyPoll;
use crate::client::{Client, SendError};
use crate::config::ForwardedClientCert;
use crate::metrics::{BackendError, Metrics};
use crate::server::ConnInfo;
use crate::table::{ActiveGuard, Choice, Endpoint, Pool, Snapshot};

pub const X_CF_ROUTER_ERROR: &str = "x-cf-routererror";
pub const X_VCAP_REQUEST_ID: &str = "x-vcap-request-id";
pub const X_CF_INSTANCE_ID: &str = "x-cf-instanceid";
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";
pub const X_REQUEST_START: &str = "x-request-start";
pub const X_REAL_IP: &str = "x-real-ip";
pub const FORWARDED: &str = "forwarded";
pub const X_FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";
/// Sticky-session cookie set by the router.
pub const VCAP_ID: &str = "__VCAP_ID__";
/// The app's session cookie that turns stickiness on.
pub const JSESSIONID: &str = "JSESSIONID";

/// Tries per request (first attempt + retries on connection failure).
pub const MAX_ATTEMPTS: usize = 3;
/// How long an endpoint that refused a connection is avoided.
pub const FAILED_ENDPOINT_SKIP_MS: u64 = 5000;

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Proxy behaviour from the config.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub connect_timeout: Duration,
    pub endpoint_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_request_body_bytes: u64,
    pub max_conns_per_backend: usize,
    /// Longest wait for the next bytes of a request body.
    pub request_body_timeout: Duration,
    pub forwarded_client_cert: ForwardedClientCert,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            connect_timeout: Duration::from_secs(5),
            endpoint_timeout: Duration::from_secs(900),
            idle_timeout: Duration::from_secs(900),
            max_request_body_bytes: 0,
            max_conns_per_backend: 0,
            request_body_timeout: Duration::from_secs(30),
            forwarded_client_cert: ForwardedClientCert::SanitizeSet,
        }
    }
}

pub struct Proxy {
    pub(crate) routes: Arc<ArcSwap<Snapshot>>,
    client: Client,
    pub(crate) log: AccessLog,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) opts: ProxyOptions,
    /// Request activity for busy polling.
    pub(crate) busy: Arc<BusyPoll>,
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    let n = name.as_str();
    // Cheap length filter first: most headers are none of these.
    matches!(n.len(), 2 | 7 | 10 | 16 | 17 | 18 | 19)
        && (HOP_BY_HOP.contains(&n) || name == http::header::TRANSFER_ENCODING)
}

/// Removes hop-by-hop headers (and those named in `Connection`). One pass
/// over the names; nothing is hashed or allocated when there are none.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        // Headers named in Connection are hop-by-hop too.
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
    headers.remove(http::header::TRANSFER_ENCODING);
}

/// The `Upgrade` protocol when the request asks for a connection upgrade.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(UPGRADE).cloned()
    } else {
        None
    }
}

/// The `__VCAP_ID__` cookie of the request, if any.
fn sticky_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == VCAP_ID)
        .map(|(_, value)| value.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The attributes (`; Path=/; Max-Age=...`) of the app's `JSESSIONID`
/// cookie when the response sets one.
fn jsessionid_attributes(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| {
            c.split_once('=')
                .is_some_and(|(name, _)| name.trim() == JSESSIONID)
        })
        .map(|c| c.split_once(';').map_or("", |(_, attrs)| attrs).to_string())
}

pub(crate) fn sticky_cookie(instance_id: &str, attributes: &str, tls: bool) -> Option<HeaderValue> {
    let mut cookie = format!("{VCAP_ID}={instance_id}");
    let attrs: Vec<&str> = attributes
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let has = |name: &str| {
        attrs.iter().any(|a| {
            a.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    };
    for a in &attrs {
        cookie.push_str("; ");
        cookie.push_str(a);
    }
    if !has("path") {
        cookie.push_str("; Path=/");
    }
    if !has("httponly") {
        cookie.push_str("; HttpOnly");
    }
    if tls && !has("secure") {
        cookie.push_str("; Secure");
    }
    HeaderValue::try_from(cookie).ok()
}

fn error_response(
    status: StatusCode,
    code: Option<&'static str>,
    text: &str,
) -> Response<RespBody> {
    let mut resp = Response::new(full(format!("{text}\n")));
    *resp.status_mut() = status;
    if let Some(code) = code {
        resp.headers_mut()
            .insert(X_CF_ROUTER_ERROR, HeaderValue::from_static(code));
    }
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `e` or one of its sources is an `E`.
fn caused_by<E: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<E>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// 400 for a request whose target cannot be trusted (two `Host`s, or a
/// `Host` that differs from the HTTP/2 `:authority` or the absolute target).
fn bad_host(text: &str) -> Response<RespBody> {
    let mut resp = error_response(StatusCode::BAD_REQUEST, None, text);
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The host a request is for: the target's authority (HTTP/2 `:authority`,
/// or an absolute-form HTTP/1 target) or else the one `Host` header;
/// `Err` with the reason for a 400 when they disagree, `Host` repeats, or
/// an HTTP/1.1 request has none (RFC 9112 §3.2; HTTP/1.0 may omit it).
fn request_host(parts: &http::request::Parts) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("Bad request: more than one Host header.");
    }
    match (parts.uri.authority(), host) {
        (Some(a), Some(h)) => {
            if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) {
                return Err("Bad request: the Host header differs from the request's authority.");
            }
            Ok(Some(h.clone()))
        }
        (Some(a), None) => Ok(HeaderValue::from_str(a.as_str()).ok()),
        (None, None) if parts.version == http::Version::HTTP_11 => {
            Err("Bad request: an HTTP/1.1 request needs a Host header.")
        }
        (None, h) => Ok(h.cloned()),
    }
}

/// Copies one direction of a tunnel, recording activity.
async fn pump<R, W>(mut r: R, mut w: W, last: &AtomicU64, epoch: Instant) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(total);
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        total += n as u64;
        last.store(
            u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Copies bytes both ways between an upgraded client and backend connection
/// until both sides close or nothing moved for `idle`.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    endpoint: Arc<Endpoint>,
    guard: ActiveGuard,
    idle: Duration,
) {
    let _guard = guard;
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(backend = %endpoint.address, error = %e, "upgrade failed");
            return;
        }
    };
    let (cr, cw) = tokio::io::split(TokioIo::new(client));
    let (br, bw) = tokio::io::split(TokioIo::new(backend));
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    let watchdog = async {
        loop {
            tokio::time::sleep((idle / 4).max(Duration::from_millis(10))).await;
            let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
                return;
            }
        }
    };
    tokio::select! {
        (up, down) = async { tokio::join!(pump(cr, bw, &last, epoch), pump(br, cw, &last, epoch)) } => {
            tracing::debug!(backend = %endpoint.address, up = ?up, down = ?down, "upgraded connection closed");
        }
        () = watchdog => {
            tracing::debug!(backend = %endpoint.address, "upgraded connection idle, closing");
        }
    }
}

/// Per-request state carried to the end of the response body.
struct Finish {
    record: AccessRecord,
    pool: Option<Arc<Pool>>,
    body: Option<RetryBody>,
    guard: Option<ActiveGuard>,
    started: Instant,
}

impl Proxy {
    pub fn new(
        routes: Arc<ArcSwap<Snapshot>>,
        log: AccessLog,
        metrics: Arc<Metrics>,
        opts: ProxyOptions,
        busy: Arc<BusyPoll>,
    ) -> Proxy {
        let client = Client::new(opts.connect_timeout);
        Proxy {
            routes,
            client,
            log,
            metrics,
            opts,
            busy,
        }
    }

    /// Handles one client request end to end.
    pub async fn handle(&self, mut req: Request<Incoming>, conn: ConnInfo) -> Response<RespBody> {
        self.busy.touch();
        let started = Instant::now();
        let wall = SystemTime::now();
        // Websocket / HTTP upgrade: remember the protocol and the client side.
        let mut upgrade =
            upgrade_protocol(req.headers()).map(|proto| (proto, hyper::upgrade::on(&mut req)));
        let (mut parts, body) = req.into_parts();
        let (host, host_error) = match request_host(&parts) {
            Ok(h) => (h, None),
            Err(e) => (parts.headers.get(HOST).cloned(), Some(e)),
        };
        let record = AccessRecord {
            host: host.clone(),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            status: 0,
            referer: parts.headers.get(REFERER).cloned(),
            user_agent: parts.headers.get(USER_AGENT).cloned(),
            client: conn.peer,
            endpoint: None,
            x_forwarded_for: None,
            request_id: None,
            started: wall,
            bytes_in: 0,
            bytes_out: 0,
            elapsed: Duration::ZERO,
        };
        let mut fin = Finish {
            record,
            pool: None,
            body: None,
            guard: None,
            started,
        };

        if let Some(text) = host_error {
            return self.finish(bad_host(text), fin);
        }
        // Short-lived guard: the pool is an Arc, the snapshot guard is not held across awaits.
        let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let pool = self
            .routes
            .load()
            .lookup(host_str, &crate::path::normalize(parts.uri.path()));
        let Some(pool) = pool else {
            let text = format!(
                "Requested route ('{}') does not exist.",
                crate::table::normalize_host(host_str)
            );

            return self.finish(
                error_response(StatusCode::NOT_FOUND, Some("unknown_route"), &text),
                fin,
            );
        };
        fin.pool = Some(pool.clone());

        if self.opts.max_request_body_bytes > 0 {
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.opts.max_request_body_bytes) {
                return self.finish(
                    error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        None,
                        "Request body too large.",
                    ),
                    fin,
                );
            }
        }

        // Always the router's own: a client's value is dropped (as
        // gorouter does), so request ids in logs are never chosen by clients.
        let request_id = {
            let mut buf = uuid::Uuid::encode_buffer();
            // A v4 uuid from the thread-local fast generator (no syscall).
            let random = fastrand::u128(..).to_le_bytes();
            let id = uuid::Builder::from_random_bytes(random)
                .into_uuid()
                .hyphenated()
                .encode_lower(&mut buf);
            HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
        };
        let xff = match parts
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.is_empty() => {
                HeaderValue::try_from(format!("{prev}, {}", conn.peer.ip())).ok()
            }
            _ => Some(conn.peer_ip.clone()),
        };
        fin.record.x_forwarded_for = xff.clone();
        fin.record.request_id = Some(request_id.clone());
        let sticky = sticky_id(&parts.headers);

        strip_hop_by_hop(&mut parts.headers);
        if let Some((proto, _)) = &upgrade {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(UPGRADE, proto.clone());
        }
        // Headers that say where the request came from are the router's
        // own, never the client's (docs/router.md "Headers").
        parts.headers.remove(X_REAL_IP);
        parts.headers.remove(FORWARDED);
        if self.opts.forwarded_client_cert != ForwardedClientCert::AlwaysForward {
            // No mTLS: no client certificate to forward or set.
            parts.headers.remove(X_FORWARDED_CLIENT_CERT);
        }
        match &host {
            Some(h) => {
                parts.headers.insert(HOST, h.clone());
                parts.headers.insert(X_FORWARDED_HOST, h.clone());
            }
            None => {
                parts.headers.remove(X_FORWARDED_HOST);
            }
        }
        if let Some(v) = xff {
            parts.headers.insert(X_FORWARDED_FOR, v);
        }
        parts.headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
        );
        parts
            .headers
            .insert(X_REQUEST_START, HeaderValue::from(now_ms()));
        parts.headers.insert(X_VCAP_REQUEST_ID, request_id);

        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let body = RetryBody::new(
            body,
            self.opts.max_request_body_bytes,
            self.opts.request_body_timeout,
        );
        fin.body = Some(body.clone());
        let max_conns = self.opts.max_conns_per_backend;
        let mut tried = [usize::MAX; MAX_ATTEMPTS];
        let mut attempts = 0;
        let mut last_error: Option<(StatusCode, &'static str)> = None;
        while attempts < MAX_ATTEMPTS {
            let now = now_ms();
            let choice = match sticky.as_deref().filter(|_| attempts == 0) {
                Some(id) => match pool.sticky(id, now, max_conns) {
                    Some((i, e)) => Choice::Endpoint(i, e),
                    None => pool.next(&tried[..attempts], now, max_conns),
                },
                None => pool.next(&tried[..attempts], now, max_conns),
            };
            let (i, endpoint) = match choice {
                Choice::Endpoint(i, e) => (i, e),
                Choice::Overloaded if attempts == 0 => {
                    let text = format!(
                        "Requested route ('{}') has no available endpoints.",
                        pool.key
                    );
                    return self.finish(
                        error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Some("no_endpoints"),
                            &text,
                        ),
                        fin,
                    );
                }
                Choice::Overloaded | Choice::Exhausted => break,
            };
            tried[attempts] = i;
            attempts += 1;
            if attempts > 1 {
                self.metrics.record_retry();
            }
            fin.record.endpoint = Some(endpoint.clone());
            if endpoint.authority.is_none() {
                tracing::warn!(address = %endpoint.address, "bad endpoint address");
                continue;
            }
            // Origin form (`/path?query`); the Host header names the route.
            let uri = Uri::from(path_and_query.clone());
            // Keep the headers for another attempt only when one can follow.
            let last_try = attempts == MAX_ATTEMPTS || attempts >= pool.endpoints.len();
            let mut headers = if last_try {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            match &endpoint.instance_id {
                Some(id) => match HeaderValue::from_str(id) {
                    Ok(v) => {
                        headers.insert(X_CF_INSTANCE_ID, v);
                    }
                    Err(_) => {
                        headers.remove(X_CF_INSTANCE_ID);
                    }
                },
                None => {
                    headers.remove(X_CF_INSTANCE_ID);
                }
            }
            let mut out = Request::new(body.clone());
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = Version::HTTP_11;
            *out.headers_mut() = headers;
            let guard = endpoint.acquire();
            let sent = if upgrade.is_some() {
                tokio::time::timeout(
                    self.opts.endpoint_timeout,
                    self.client.send_upgrade(&endpoint.address, out),
                )
                .await
            } else {
                tokio::time::timeout(
                    self.opts.endpoint_timeout,
                    self.client.send(&endpoint.address, out),
                )
                .await
            };
            match sent {
                Ok(Ok(mut resp)) => {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some((_, client_side)) = upgrade.take() {
                            let backend_side = hyper::upgrade::on(&mut resp);
                            tokio::spawn(tunnel(
                                client_side,
                                backend_side,
                                endpoint.clone(),
                                guard,
                                self.opts.idle_timeout,
                            ));
                            return self.finish(resp, fin);
                        }
                    }
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    if let Some(id) = endpoint.instance_id.as_deref() {
                        let attrs = jsessionid_attributes(&rparts.headers).or_else(|| {
                            // The session was pinned elsewhere: re-pin it here.
                            sticky
                                .as_deref()
                                .filter(|s| *s != id)
                                .map(|_| String::new())
                        });
                        if let Some(cookie) = attrs.and_then(|a| sticky_cookie(id, &a, conn.tls)) {
                            rparts.headers.append(SET_COOKIE, cookie);
                        }
                    }
                    fin.guard = Some(guard);
                    return self.finish(Response::from_parts(rparts, rbody), fin);
                }
                Ok(Err(e))
                    if body.reusable()
                        && (e.is_connect() || closed_before_response(&e, &parts.method)) =>
                {
                    endpoint.mark_failed(now + FAILED_ENDPOINT_SKIP_MS);
                    self.metrics.record_backend_error(BackendError::Connect);
                    tracing::warn!(route = %pool.key, backend = %endpoint.address, error = %e, attempt = attempts, "backend connection failed, retrying");
                    last_error = Some((StatusCode::BAD_GATEWAY, "endpoint_failure"));
                }
                Ok(Err(e)) => {
                    if caused_by::<BodyTimeout>(&e) {
                        // The backend connection went with the failed send.
                        tracing::info!(route = %pool.key, backend = %endpoint.address, "request body stalled, request ended");
                        self.metrics.record_request_body_timeout();
                        let mut resp = error_response(
                            StatusCode::REQUEST_TIMEOUT,
                            None,
                            "Request body timed out.",
                        );
                        resp.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                        return self.finish(resp, fin);
                    }
                    if caused_by::<TooLarge>(&e) {
                        return self.finish(
                            error_response(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                None,
                                "Request body too large.",
                            ),
                            fin,
                        );
                    }
                    self.metrics.record_backend_error(if e.is_connect() {
                        BackendError::Connect
                    } else {
                        BackendError::Request
                    });
                    tracing::warn!(route = %pool.key, backend = %endpoint.address, error = %e, "backend request failed");
                    last_error = Some((StatusCode::BAD_GATEWAY, "endpoint_failure"));
                    break;
                }
                Err(_) => {
                    self.metrics.record_backend_error(BackendError::Timeout);
                    tracing::warn!(route = %pool.key, backend = %endpoint.address, "backend response timeout");
                    last_error = Some((StatusCode::BAD_GATEWAY, "endpoint_failure"));
                    break;
                }
            }
        }
        let (status, code) = last_error.unwrap_or((StatusCode::BAD_GATEWAY, "endpoint_failure"));
        let resp = error_response(
            status,
            Some(code),
            "Registered endpoint failed to handle the request.",
        );
        self.finish(resp, fin)
    }

    /// Wraps the response body so that the access log and metrics are
    /// written when it ends (or is dropped).
    fn finish<B>(&self, resp: Response<B>, fin: Finish) -> Response<RespBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes, Error = hyper::Error>
            + Unpin
            + Send
            + Sync
            + 'static,
    {
        let status = resp.status().as_u16();
        let log = self.log.clone();
        let metrics = self.metrics.clone();
        let busy = self.busy.clone();
        let (parts, inner) = resp.into_parts();
        let counted = Counted::new(
            inner,
            Box::new(move |bytes_out| {
                let Finish {
                    mut record,
                    pool,
                    body,
                    guard,
                    started,
                } = fin;
                drop(guard);
                busy.touch();
                let elapsed = started.elapsed();
                metrics.record_response(status, bytes_out, elapsed);
                if let Some(pool) = pool {
                    pool.stats.record(status);
                }
                record.status = status;
                record.bytes_in = body.map_or(0, |b| b.bytes_read());
                record.bytes_out = bytes_out;
                record.elapsed = elapsed;
                log.emit(record);
            }),
        );
        Response::from_parts(parts, http_body_util::BodyExt::boxed(counted))
    }
}

/// An idempotent request whose connection the backend closed or reset before
/// answering anything (e.g. it sat in the listen backlog of a process that
/// just died). Like gorouter's `IdempotentRequestEOF`, such requests are
/// retried on another endpoint: repeating a GET the app may never have read
/// is safe, unlike repeating a POST.
fn closed_before_response(e: &SendError, method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) && e.closed_before_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; __VCAP_ID__=inst-2"));
        assert_eq!(sticky_id(&h).as_deref(), Some("inst-2"));
        let mut r = HeaderMap::new();
        r.append(SET_COOKIE, HeaderValue::from_static("other=1"));
        assert_eq!(jsessionid_attributes(&r), None);
        r.append(
            SET_COOKIE,
            HeaderValue::from_static("JSESSIONID=abc; Path=/app; Max-Age=60"),
        );
        let attrs = jsessionid_attributes(&r).expect("attrs");
        assert_eq!(
            sticky_cookie("i1", &attrs, true).expect("cookie"),
            "__VCAP_ID__=i1; Path=/app; Max-Age=60; HttpOnly; Secure"
        );
        assert_eq!(
            sticky_cookie("i1", "", false).expect("cookie"),
            "__VCAP_ID__=i1; Path=/; HttpOnly"
        );
    }
}
