//! `/v3/domains`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, BaseUrl, Query};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::store::Domain;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/domains", get(list))
        .route("/v3/domains/{guid}", get(show))
}

pub fn present(base: &BaseUrl, d: &Domain) -> Value {
    json!({
        "guid": d.guid,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "name": d.name,
        "internal": d.internal != 0,
        "router_group": null,
        "supported_protocols": ["http"],
        "metadata": metadata(),
        "relationships": {"organization": {"data": null}, "shared_organizations": {"data": []}},
        "links": {
            "self": base.link(&format!("/v3/domains/{}", d.guid)),
            "route_reservations": base.link(&format!("/v3/domains/{}/route_reservations", d.guid)),
        },
    })
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let names = filter(&q, "names");
    let items = ctx
        .store
        .domains()
        .await?
        .iter()
        .filter(|d| matches(&names, &d.name))
        .map(|d| present(&base, d))
        .collect();
    Ok(Json(paginate(&base, "/v3/domains", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.domain(&guid).await?)))
}
