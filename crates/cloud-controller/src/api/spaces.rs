//! `/v3/spaces`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, rel, BaseUrl, Query};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::store::Space;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/spaces", get(list))
        .route("/v3/spaces/{guid}", get(show))
}

fn present(base: &BaseUrl, s: &Space) -> Value {
    json!({
        "guid": s.guid,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "name": s.name,
        "relationships": {"organization": rel(&s.organization_guid), "quota": {"data": null}},
        "metadata": metadata(),
        "links": {
            "self": base.link(&format!("/v3/spaces/{}", s.guid)),
            "organization": base.link(&format!("/v3/organizations/{}", s.organization_guid)),
        },
    })
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let (names, orgs) = (filter(&q, "names"), filter(&q, "organization_guids"));
    let items = ctx
        .store
        .spaces()
        .await?
        .iter()
        .filter(|s| matches(&names, &s.name) && matches(&orgs, &s.organization_guid))
        .map(|s| present(&base, s))
        .collect();
    Ok(Json(paginate(&base, "/v3/spaces", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.space(&guid).await?)))
}
