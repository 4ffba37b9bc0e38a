//! The HTTP proxy: route lookup, load balancing with retry on connection
//! failure, forwarding headers, streaming bodies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::{HeaderName, HeaderValue, HOST, REFERER, USER_AGENT};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::access_log::{AccessLog, AccessRecord};
use crate::body::{full, Counted, RespBody, RetryBody};
use crate::metrics::Metrics;
use crate::table::{normalize_host, Snapshot};

pub const X_CF_ROUTER_ERROR: &str = "x-cf-routererror";
pub const X_VCAP_REQUEST_ID: &str = "x-vcap-request-id";
pub const X_CF_INSTANCE_ID: &str = "x-cf-instanceid";
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";
pub const X_REQUEST_START: &str = "x-request-start";

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

pub struct Proxy {
    routes: Arc<ArcSwap<Snapshot>>,
    client: Client<HttpConnector, RetryBody>,
    log: AccessLog,
    metrics: Arc<Metrics>,
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
    headers.remove(http::header::TRANSFER_ENCODING);
}

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The `Upgrade` protocol when the request asks for a connection upgrade.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(http::header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Copies bytes both ways between an upgraded client and backend connection.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    address: String,
) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(backend = %address, error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => {
            tracing::debug!(backend = %address, up, down, "upgraded connection closed")
        }
        Err(e) => tracing::debug!(backend = %address, error = %e, "upgraded connection ended"),
    }
}

fn error_response(status: StatusCode, code: &'static str, text: &str) -> Response<RespBody> {
    let mut resp = Response::new(full(format!("{text}\n")));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(X_CF_ROUTER_ERROR, HeaderValue::from_static(code));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Proxy {
    pub fn new(
        routes: Arc<ArcSwap<Snapshot>>,
        log: AccessLog,
        metrics: Arc<Metrics>,
        connect_timeout: Duration,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Proxy {
            routes,
            client,
            log,
            metrics,
        }
    }

    /// Handles one client request end to end.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<RespBody> {
        let started = Instant::now();
        // Websocket / HTTP upgrade: remember the protocol and the client side.
        let mut upgrade =
            upgrade_protocol(req.headers()).map(|proto| (proto, hyper::upgrade::on(&mut req)));
        let (mut parts, body) = req.into_parts();
        let host_header = parts
            .headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let request_id = match parts
            .headers
            .get(X_VCAP_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
        {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let client_ip = client.ip().to_string();
        let xff = match parts
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.is_empty() => format!("{prev}, {client_ip}"),
            _ => client_ip,
        };
        let mut record = AccessRecord {
            host: normalize_host(&host_header),
            method: parts.method.to_string(),
            path: path_and_query.clone(),
            protocol: version_str(parts.version).to_string(),
            status: 0,
            referer: header_str(&parts.headers, REFERER),
            user_agent: header_str(&parts.headers, USER_AGENT),
            client_addr: client.to_string(),
            backend_addr: None,
            x_forwarded_for: xff.clone(),
            request_id: request_id.clone(),
            app_id: None,
            start_time: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3f%z")
                .to_string(),
        };

        // Short-lived guard: the pool is an Arc, the snapshot guard is not held across awaits.
        let pool = self.routes.load().lookup(&host_header, parts.uri.path());
        let Some(pool) = pool else {
            let text = format!("Requested route ('{}') does not exist.", record.host);
            return self.finish(
                error_response(StatusCode::NOT_FOUND, "unknown_route", &text),
                record,
                None,
                started,
            );
        };
        if pool.endpoints.is_empty() {
            let text = format!(
                "Requested route ('{}') has no available endpoints.",
                record.host
            );
            return self.finish(
                error_response(StatusCode::SERVICE_UNAVAILABLE, "no_endpoints", &text),
                record,
                None,
                started,
            );
        }

        strip_hop_by_hop(&mut parts.headers);
        if let Some((proto, _)) = &upgrade {
            parts.headers.insert(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            parts.headers.insert(http::header::UPGRADE, proto.clone());
        }
        if !parts.headers.contains_key(HOST) && !host_header.is_empty() {
            set(&mut parts.headers, "host", &host_header);
        }
        set(&mut parts.headers, X_FORWARDED_FOR, &xff);
        if !parts.headers.contains_key(X_FORWARDED_PROTO) {
            set(&mut parts.headers, X_FORWARDED_PROTO, "http");
        }
        if !parts.headers.contains_key(X_FORWARDED_HOST) && !host_header.is_empty() {
            set(&mut parts.headers, X_FORWARDED_HOST, &host_header);
        }
        set(
            &mut parts.headers,
            X_REQUEST_START,
            &chrono::Utc::now().timestamp_millis().to_string(),
        );
        set(&mut parts.headers, X_VCAP_REQUEST_ID, &request_id);

        let body = RetryBody::new(body);
        let mut tried = Vec::with_capacity(MAX_ATTEMPTS);
        while tried.len() < MAX_ATTEMPTS {
            let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
            let Some((i, endpoint)) = pool.next(&tried, now_ms) else {
                break;
            };
            tried.push(i);
            record.backend_addr = Some(endpoint.address.clone());
            record.app_id = endpoint.app_id.clone();
            let uri: Uri = match format!("http://{}{}", endpoint.address, path_and_query).parse() {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(address = %endpoint.address, error = %e, "bad endpoint address");
                    continue;
                }
            };
            let mut headers = parts.headers.clone();
            match &endpoint.instance_id {
                Some(id) => set(&mut headers, X_CF_INSTANCE_ID, id),
                None => {
                    headers.remove(X_CF_INSTANCE_ID);
                }
            }
            let mut out = Request::new(body.clone());
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = Version::HTTP_11;
            *out.headers_mut() = headers;
            match self.client.request(out).await {
                Ok(mut resp) => {
                    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some((_, client_side)) = upgrade.take() {
                            let backend_side = hyper::upgrade::on(&mut resp);
                            tokio::spawn(tunnel(
                                client_side,
                                backend_side,
                                endpoint.address.clone(),
                            ));
                            return self.finish(resp, record, Some(body), started);
                        }
                    }
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    let resp = Response::from_parts(rparts, rbody);
                    return self.finish(resp, record, Some(body), started);
                }
                Err(e) if e.is_connect() && body.reusable() => {
                    pool.mark_failed(i, now_ms + FAILED_ENDPOINT_SKIP_MS);
                    self.metrics.record_connect_failure();
                    tracing::warn!(route = %pool.key, backend = %endpoint.address, error = %e, attempt = tried.len(), "backend connection failed, retrying");
                }
                Err(e) => {
                    tracing::warn!(route = %pool.key, backend = %endpoint.address, error = %e, "backend request failed");
                    break;
                }
            }
        }
        let resp = error_response(
            StatusCode::BAD_GATEWAY,
            "endpoint_failure",
            "Registered endpoint failed to handle the request.",
        );
        self.finish(resp, record, Some(body), started)
    }

    /// Wraps the response body so that the access log is written when it ends.
    fn finish<B>(
        &self,
        resp: Response<B>,
        mut record: AccessRecord,
        body: Option<RetryBody>,
        started: Instant,
    ) -> Response<RespBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes, Error = hyper::Error>
            + Unpin
            + Send
            + Sync
            + 'static,
    {
        record.status = resp.status().as_u16();
        let log = self.log.clone();
        let metrics = self.metrics.clone();
        let (parts, inner) = resp.into_parts();
        let counted = Counted::new(
            inner,
            Box::new(move |bytes_out| {
                let bytes_in = body.map_or(0, |b| b.bytes_read());
                metrics.record_response(record.status, bytes_out);
                log.emit(&record, bytes_in, bytes_out, started.elapsed());
            }),
        );
        Response::from_parts(parts, http_body_util::BodyExt::boxed(counted))
    }
}
