//! `/v3/feature_flags`: platform switches with CF's names and defaults.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{paginate, parse_json, BaseUrl, Query};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};

/// The flags and their defaults (CF's).
pub const FLAGS: &[(&str, bool)] = &[
    ("user_org_creation", false),
    ("set_roles_by_username", true),
    ("unset_roles_by_username", true),
    ("app_scaling", true),
    ("resource_matching", true),
    ("route_creation", true),
    ("private_domain_creation", true),
    ("space_developer_env_var_visibility", true),
];

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/feature_flags", get(list))
        .route("/v3/feature_flags/{name}", get(show).patch(update))
}

/// Whether flag `name` is on.
pub async fn enabled(ctx: &Ctx, name: &str) -> ApiResult<bool> {
    let default = FLAGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or(false);
    Ok(ctx
        .store
        .setting(&format!("feature_flag.{name}"))
        .await?
        .map(|v| v == "true")
        .unwrap_or(default))
}

async fn present(ctx: &Ctx, base: &BaseUrl, name: &str) -> ApiResult<Value> {
    Ok(json!({
        "name": name,
        "enabled": enabled(ctx, name).await?,
        "updated_at": null,
        "custom_error_message": null,
        "links": {"self": base.link(&format!("/v3/feature_flags/{name}"))},
    }))
}

/// `GET /v3/feature_flags`. The flags are the fixed list `FLAGS` compiled
/// in (only their values are settings rows), so this list is paged in
/// memory (it does not grow with user input).
async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for (name, _) in FLAGS {
        items.push(present(&ctx, &base, name).await?);
    }
    Ok(Json(paginate(&base, "/v3/feature_flags", &q, items)?))
}

fn known(name: &str) -> ApiResult<()> {
    if FLAGS.iter().any(|(n, _)| *n == name) {
        Ok(())
    } else {
        Err(ApiError::not_found("Feature flag"))
    }
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    known(&name)?;
    Ok(Json(present(&ctx, &base, &name).await?))
}

#[derive(Debug, Deserialize)]
struct Update {
    enabled: bool,
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    known(&name)?;
    let req: Update = parse_json(&body)?;
    ctx.store
        .set_setting(&format!("feature_flag.{name}"), &req.enabled.to_string())
        .await?;
    ctx.audit(
        &actor,
        "audit.feature_flag.update",
        AuditTarget {
            kind: "feature_flag",
            guid: &name,
            name: &name,
            space: None,
            org: None,
        },
        json!({"request": {"enabled": req.enabled}}),
    )
    .await;
    Ok(Json(present(&ctx, &base, &name).await?))
}
