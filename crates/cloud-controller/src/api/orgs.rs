//! `/v3/organizations`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, BaseUrl, Query};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::store::Organization;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/organizations", get(list))
        .route("/v3/organizations/{guid}", get(show))
        .route(
            "/v3/organizations/{guid}/domains/default",
            get(default_domain),
        )
        .route("/v3/organizations/{guid}/domains", get(domains))
}

fn present(base: &BaseUrl, o: &Organization) -> Value {
    let p = format!("/v3/organizations/{}", o.guid);
    json!({
        "guid": o.guid,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "name": o.name,
        "suspended": false,
        "relationships": {"quota": {"data": null}},
        "metadata": metadata(),
        "links": {
            "self": base.link(&p),
            "domains": base.link(&format!("{p}/domains")),
            "default_domain": base.link(&format!("{p}/domains/default")),
        },
    })
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let names = filter(&q, "names");
    let items = ctx
        .store
        .orgs()
        .await?
        .iter()
        .filter(|o| matches(&names, &o.name))
        .map(|o| present(&base, o))
        .collect();
    Ok(Json(paginate(&base, "/v3/organizations", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.org(&guid).await?)))
}

async fn default_domain(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.org(&guid).await?;
    let d = ctx
        .store
        .domain_by_name(&ctx.cfg.apps_domain)
        .await?
        .ok_or_else(|| ApiError::not_found("Domain"))?;
    Ok(Json(super::domains::present(&base, &d)))
}

async fn domains(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.org(&guid).await?;
    let items = ctx
        .store
        .domains()
        .await?
        .iter()
        .map(|d| super::domains::present(&base, d))
        .collect();
    Ok(Json(paginate(
        &base,
        &format!("/v3/organizations/{guid}/domains"),
        &q,
        items,
    )?))
}
