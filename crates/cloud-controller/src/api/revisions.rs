//! `/v3/revisions` and `/v3/apps/:guid/revisions`, and the app features
//! (`/v3/apps/:guid/features`) that turn revisions off
//! (docs/architecture.md §5.10).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{input, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{DropletState, Revision};

/// The app features there are (CF also has `ssh`, which has no meaning
/// here).
const FEATURES: &[(&str, &str)] = &[("revisions", "Enable versioning of an application")];

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/apps/{guid}/revisions", get(list))
        .route("/v3/apps/{guid}/revisions/deployed", get(deployed))
        .route("/v3/revisions/{guid}", get(show))
        .route(
            "/v3/revisions/{guid}/environment_variables",
            get(environment_variables),
        )
        .route("/v3/apps/{guid}/features", get(features))
        .route(
            "/v3/apps/{guid}/features/{name}",
            get(feature).patch(update_feature),
        )
}

async fn present(ctx: &Ctx, base: &BaseUrl, r: &Revision) -> Value {
    let deployable = ctx
        .store
        .droplet(&r.droplet_guid)
        .await
        .is_ok_and(|d| d.state == DropletState::Staged);
    let c = r.content();
    let processes: serde_json::Map<String, Value> = c
        .commands
        .iter()
        .map(|(kind, cmd)| (kind.clone(), json!({ "command": cmd })))
        .collect();
    let path = format!("/v3/revisions/{}", r.guid);
    json!({
        "guid": r.guid,
        "version": r.version,
        "droplet": {"guid": r.droplet_guid},
        "processes": processes,
        "sidecars": [],
        "description": r.description,
        "deployable": deployable,
        "relationships": {"app": rel(&r.app_guid)},
        "metadata": metadata(),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "links": {
            "self": base.link(&path),
            "app": base.link(&format!("/v3/apps/{}", r.app_guid)),
            "environment_variables": base.link(&format!("{path}/environment_variables")),
        },
    })
}

async fn list(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    input::known_params(&q, &["page", "per_page", "order_by", "versions"])?;
    ctx.store.app(&guid).await?;
    let page = PageReq::from_query(&q)?;
    let versions = input::int_filter(&q, "versions")?;
    let (total, rows) = ctx
        .store
        .revisions_page(&guid, versions.as_deref(), page.per_page, page.offset())
        .await?;
    let mut items = Vec::new();
    for r in &rows {
        items.push(present(&ctx, &base, r).await);
    }
    let path = format!("/v3/apps/{guid}/revisions");
    Ok(Json(page_of(&base, &path, &q, page, total, items)))
}

/// The revision the app's instances run: its newest, while it is started.
async fn deployed(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&guid).await?;
    let page = PageReq::from_query(&q)?;
    let mut items = Vec::new();
    if app.started() {
        if let Some(r) = ctx.store.latest_revision(&guid).await? {
            items.push(present(&ctx, &base, &r).await);
        }
    }
    let total = items.len();
    let path = format!("/v3/apps/{guid}/revisions/deployed");
    Ok(Json(page_of(&base, &path, &q, page, total, items)))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = ctx.store.revision(&guid).await?;
    Ok(Json(present(&ctx, &base, &r).await))
}

async fn environment_variables(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = ctx.store.revision(&guid).await?;
    Ok(Json(json!({
        "var": r.content().env,
        "links": {
            "self": base.link(&format!("/v3/revisions/{guid}/environment_variables")),
            "revision": base.link(&format!("/v3/revisions/{guid}")),
        },
    })))
}

fn present_feature(name: &str, description: &str, enabled: bool) -> Value {
    json!({"name": name, "description": description, "enabled": enabled})
}

async fn features(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.app(&guid).await?;
    let mut items = Vec::new();
    for (name, description) in FEATURES {
        let on = ctx.store.app_feature(&guid, name).await?;
        items.push(present_feature(name, description, on));
    }
    let page = PageReq::from_query(&q)?;
    let total = items.len();
    let path = format!("/v3/apps/{guid}/features");
    Ok(Json(page_of(&base, &path, &q, page, total, items)))
}

fn known(name: &str) -> ApiResult<&'static str> {
    FEATURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| ApiError::not_found("Feature"))
}

async fn feature(
    State(ctx): State<Ctx>,
    Path((guid, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.store.app(&guid).await?;
    let description = known(&name)?;
    let on = ctx.store.app_feature(&guid, &name).await?;
    Ok(Json(present_feature(&name, description, on)))
}

#[derive(Debug, serde::Deserialize)]
struct FeatureUpdate {
    enabled: bool,
}

async fn update_feature(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path((guid, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&guid).await?;
    let description = known(&name)?;
    let req: FeatureUpdate = parse_json(&body)?;
    ctx.store.set_app_feature(&guid, &name, req.enabled).await?;
    ctx.audit_app(
        &actor,
        "audit.app.update",
        &app,
        json!({"request": {"features": {name.as_str(): req.enabled}}}),
    )
    .await;
    Ok(Json(present_feature(&name, description, req.enabled)))
}
