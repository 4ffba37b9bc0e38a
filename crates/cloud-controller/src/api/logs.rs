//! Logs API (docs/conventions.md): recent lines and a live NDJSON stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::Query;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};

const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/apps/{guid}/logs/recent", get(recent))
        .route("/v3/apps/{guid}/logs/stream", get(stream))
}

async fn recent(
    State(ctx): State<Ctx>,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.app(&guid).await?;
    let limit = match q.get("limit") {
        None => 200,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::BadQuery("limit must be a non-negative integer".into()))?,
    };
    Ok(Json(json!({"resources": ctx.logs.recent(&guid, limit)})))
}

/// A live stream; a user holds at most `log_streams_per_user` at once
/// (429 beyond), each given back when its client goes away.
async fn stream(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    ctx.store.app(&guid).await?;
    let slot = ctx
        .logs
        .open_stream(&actor.guid, ctx.cfg.log_streams_per_user)
        .ok_or_else(|| {
            ApiError::TooManyRequests(format!(
                "You may have at most {} log streams open at once",
                ctx.cfg.log_streams_per_user
            ))
        })?;
    let rx = ctx.logs.subscribe(&guid);
    let lines = futures_util::stream::unfold(
        (rx, guid, Instant::now() + KEEPALIVE, slot),
        |(mut rx, guid, mut next_ping, slot)| async move {
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(m) if m.app_id == guid => {
                            let mut line = serde_json::to_vec(&m).unwrap_or_default();
                            line.push(b'\n');
                            return Some((Ok::<Bytes, Infallible>(Bytes::from(line)), (rx, guid, next_ping, slot)));
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    },
                    _ = tokio::time::sleep_until(next_ping) => {
                        next_ping = Instant::now() + KEEPALIVE;
                        return Some((Ok(Bytes::from_static(b"\n")), (rx, guid, next_ping, slot)));
                    }
                }
            }
        },
    );
    Response::builder()
        .header(CONTENT_TYPE, "application/x-ndjson")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(lines))
        .map_err(|e| ApiError::Internal(e.to_string()))
}
