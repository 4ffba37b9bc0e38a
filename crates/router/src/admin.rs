//! Admin endpoints: `GET /health`, `GET /routes`, `GET /metrics`.

use arc_swap::ArcSwap;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{full, RespBody};
use crate::busypoll::BusyPoll;
use crate::metrics::Metrics;
use crate::table::Snapshot;

/// `GET /health`: 200 `ok`, or 503 `draining` once the router is a lame
/// duck (`drain_wait_s`, gorouter's behaviour).
pub fn handle(
    routes: &ArcSwap<Snapshot>,
    metrics: &Metrics,
    busy: &BusyPoll,
    draining: bool,
    req: &Request<Incoming>,
) -> Response<RespBody> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(&routes.load(), busy.spun()),
        ),
        (&Method::GET, "/health") if draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining".to_string(),
        ),
        (&Method::GET, "/health") => (StatusCode::OK, "text/plain", "ok".to_string()),
        (&Method::GET, "/routes") => match serde_json::to_string(&routes.load_full().dump()) {
            Ok(json) => (StatusCode::OK, "application/json", json),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            ),
        },
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found".to_string()),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
