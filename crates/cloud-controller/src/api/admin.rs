//! Operator actions on the public API, admin only (the policy's
//! `Platform(AdminOnly)`): the token signing keys (docs/architecture.md §17
//! "Signing keys"). Key ids and times only: a secret is never served.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::parse_json;
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::keys::{KeyError, KeyRing};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/admin/token_keys", get(list))
        .route("/v3/admin/actions/rotate_token_keys", post(rotate))
}

fn time(unix: Option<i64>) -> Value {
    unix.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn present(ring: &KeyRing) -> Value {
    let keys: Vec<Value> = ring
        .info()
        .into_iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "active": k.active,
                "created_at": time(Some(k.created_at)),
                "retired_at": time(k.retired_at),
                "expires_at": time(k.expires_at),
            })
        })
        .collect();
    json!({"active_key_id": ring.active().kid, "keys": keys})
}

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Store(e) => e.into(),
        KeyError::NoActiveKey => ApiError::Internal(e.to_string()),
    }
}

/// `GET /v3/admin/token_keys`: the ring's key ids, which one signs, and
/// when the retired ones stop verifying.
async fn list(State(ctx): State<Ctx>) -> ApiResult<Json<Value>> {
    let ring = ctx.keys.reload(&ctx.store).await.map_err(key_error)?;
    Ok(Json(present(&ring)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Drop every earlier key now (a leaked key): their tokens are refused.
    #[serde(default)]
    revoke_previous: bool,
}

/// `POST /v3/admin/actions/rotate_token_keys {revoke_previous?}`: a new
/// active key; earlier keys verify until their tokens expire (or go at
/// once with `revoke_previous`).
async fn rotate(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: RotateBody = parse_json(&body)?;
    let ring = ctx
        .keys
        .rotate(&ctx.store, b.revoke_previous)
        .await
        .map_err(key_error)?;
    let kid = ring.active().kid.clone();
    tracing::info!(kid = %kid, revoke_previous = b.revoke_previous, "token signing key rotated");
    ctx.audit(
        &actor,
        "audit.token_keys.rotate",
        AuditTarget {
            kind: "token_key",
            guid: &kid,
            name: &kid,
            space: None,
            org: None,
        },
        json!({"revoke_previous": b.revoke_previous}),
    )
    .await;
    Ok(Json(present(&ring)))
}
