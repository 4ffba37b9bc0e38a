//! `POST /v3/resource_matches`: which of the given files the resource cache
//! holds (crate::resource_pool). Any signed-in user may ask: a file matches
//! only when the caller names its sha1 and size.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::parse_json;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::resource_pool::{self, Resource, MAX_MATCH_RESOURCES};

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v3/resource_matches", post(create))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matches {
    resources: Vec<Resource>,
}

async fn create(State(ctx): State<Ctx>, body: Bytes) -> ApiResult<Response> {
    let req: Matches = parse_json(&body)?;
    if req.resources.is_empty() {
        return Err(ApiError::Unprocessable(
            "Resources must have at least 1 resource".into(),
        ));
    }
    if req.resources.len() > MAX_MATCH_RESOURCES {
        return Err(ApiError::Unprocessable(format!(
            "Resources array can have at most {MAX_MATCH_RESOURCES} resources"
        )));
    }
    if let Some(i) = req
        .resources
        .iter()
        .position(|r| !resource_pool::is_sha1(&r.checksum.value))
    {
        return Err(ApiError::Unprocessable(format!(
            "Resources[{i}]: checksum value must be a SHA-1 (40 hex digits)"
        )));
    }
    let mut matched = Vec::new();
    if super::feature_flags::enabled(&ctx, "resource_matching").await? {
        let limits = ctx.cfg.pool_limits();
        for r in req.resources {
            if resource_pool::known(&ctx.blobs, limits, &r).await {
                matched.push(r);
            }
        }
    }
    Ok((StatusCode::CREATED, Json(json!({ "resources": matched }))).into_response())
}
