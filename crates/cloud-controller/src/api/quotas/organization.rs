//! `/v3/organization_quotas`: admin only; applied to orgs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{audit_target, create, list, object, present, remove, update};
use crate::api::{filter, parse_json, BaseUrl, PageReq, Query, ToMany};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{QuotaFilter, QuotaKind};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/organization_quotas", get(list_org).post(create_org))
        .route(
            "/v3/organization_quotas/{guid}",
            get(show_org).patch(update_org).delete(delete_org),
        )
        .route(
            "/v3/organization_quotas/{guid}/relationships/organizations",
            post(apply_org),
        )
}

/// `GET /v3/organization_quotas` (filter `names`), paged in SQL.
async fn list_org(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = QuotaFilter {
        kind: QuotaKind::Organization,
        names: filter(&q, "names"),
        organization_guids: None,
        visible_orgs: None,
    };
    Ok(Json(list(&ctx, &base, &q, page, &f).await?))
}

async fn show_org(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let q = ctx.store.quota(QuotaKind::Organization, &guid).await?;
    Ok(Json(present(&ctx, &base, &q).await?))
}

async fn create_org(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = object(&body)?;
    let q = create(&ctx, &actor, QuotaKind::Organization, "", &body).await?;
    if let Some(orgs) = body
        .get("relationships")
        .and_then(|r| r.get("organizations"))
        .cloned()
    {
        let orgs: ToMany =
            serde_json::from_value(orgs).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        for o in orgs.data {
            ctx.store.org(&o.guid).await?;
            ctx.store.set_org_quota(&o.guid, &q.guid).await?;
        }
    }
    Ok((StatusCode::CREATED, Json(present(&ctx, &base, &q).await?)))
}

async fn update_org(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let q = update(
        &ctx,
        &actor,
        QuotaKind::Organization,
        &guid,
        &object(&body)?,
    )
    .await?;
    Ok(Json(present(&ctx, &base, &q).await?))
}

async fn delete_org(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    remove(&ctx, &actor, &base, QuotaKind::Organization, &guid).await
}

async fn apply_org(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ToMany = parse_json(&body)?;
    let q = ctx.store.quota(QuotaKind::Organization, &guid).await?;
    for o in &req.data {
        ctx.store.org(&o.guid).await.map_err(|_| {
            ApiError::Unprocessable(format!(
                "Organizations with guids [\"{}\"] do not exist",
                o.guid
            ))
        })?;
    }
    for o in &req.data {
        ctx.store.set_org_quota(&o.guid, &q.guid).await?;
    }
    ctx.audit(
        &actor,
        "audit.organization_quota.apply",
        audit_target(QuotaKind::Organization, &q),
        json!({"request": {"organizations": req.data.iter().map(|o| o.guid.clone()).collect::<Vec<_>>()}}),
    )
    .await;
    let data: Vec<Value> = ctx
        .store
        .orgs()
        .await?
        .iter()
        .filter(|o| o.quota_guid.as_deref() == Some(guid.as_str()))
        .map(|o| json!({"guid": o.guid}))
        .collect();
    Ok(Json(json!({"data": data})))
}
