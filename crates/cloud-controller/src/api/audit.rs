//! `/v3/audit_events`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::{filter, page_of, BaseUrl, PageReq, Query};
use crate::authz::Perms;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::store::{AuditEvent, EventFilter, Order};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/audit_events", get(list))
        .route("/v3/audit_events/{guid}", get(show))
}

fn present(base: &BaseUrl, e: &AuditEvent) -> Value {
    json!({
        "guid": e.guid,
        "created_at": e.created_at,
        "updated_at": e.created_at,
        "type": e.kind,
        "actor": {"guid": e.actor_guid, "type": e.actor_type, "name": e.actor_name},
        "target": {"guid": e.target_guid, "type": e.target_type, "name": e.target_name},
        "data": serde_json::from_str::<Value>(&e.data).unwrap_or_else(|_| json!({})),
        "space": e.space_guid.as_ref().map(|g| json!({"guid": g})),
        "organization": e.organization_guid.as_ref().map(|g| json!({"guid": g})),
        "links": {"self": base.link(&format!("/v3/audit_events/{}", e.guid))},
    })
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = EventFilter {
        types: filter(&q, "types"),
        target_guids: filter(&q, "target_guids"),
        space_guids: filter(&q, "space_guids"),
        organization_guids: filter(&q, "organization_guids"),
        scope: perms.space_scope(),
        // Creation order; any `-` order (`-created_at`) reverses it.
        order: Order {
            column: "created_at",
            descending: q.get("order_by").is_some_and(|o| o.starts_with('-')),
        },
    };
    let (total, events) = ctx.store.events_page(&f, page.window()).await?;
    let items = events.iter().map(|e| present(&base, e)).collect();
    Ok(Json(page_of(
        &base,
        "/v3/audit_events",
        &q,
        page,
        total,
        items,
    )))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.event(&guid).await?)))
}
