//! `/v3/space_quotas`: an org's, managed by admins and its org managers;
//! applied to its spaces.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{audit_target, create, list, object, present, remove, update};
use crate::api::{filter, parse_json, BaseUrl, PageReq, Query, ToMany};
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Quota, QuotaFilter, QuotaKind};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/space_quotas", get(list_space).post(create_space))
        .route(
            "/v3/space_quotas/{guid}",
            get(show_space).patch(update_space).delete(delete_space),
        )
        .route(
            "/v3/space_quotas/{guid}/relationships/spaces",
            post(apply_space),
        )
        .route(
            "/v3/space_quotas/{guid}/relationships/spaces/{space}",
            delete(unapply_space),
        )
}

async fn list_space(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    // A user who does not read everything sees the quotas of its orgs.
    let f = QuotaFilter {
        kind: QuotaKind::Space,
        names: filter(&q, "names"),
        organization_guids: filter(&q, "organization_guids"),
        visible_orgs: perms.org_guids(),
    };
    Ok(Json(list(&ctx, &base, &q, page, &f).await?))
}

async fn show_space(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let q = ctx.store.quota(QuotaKind::Space, &guid).await?;
    Ok(Json(present(&ctx, &base, &q).await?))
}

const INVALID_ORG: &str =
    "Organization with guid '{}' does not exist, or you do not have access to it.";

async fn create_space(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = object(&body)?;
    let org = body
        .get("relationships")
        .and_then(|r| r.get("organization"))
        .and_then(|o| o.get("data"))
        .and_then(|d| d.get("guid"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Unprocessable("Relationships Organization can't be blank".into()))?
        .to_string();
    let invalid = || ApiError::Unprocessable(INVALID_ORG.replace("{}", &org));
    ctx.store.org(&org).await.map_err(|_| invalid())?;
    match perms.decide(Action::ManageOrgDomainsAndQuotas, Scope::Org(&org)) {
        Decision::Allow => {}
        Decision::Forbidden => return Err(ApiError::not_authorized()),
        Decision::NotFound => return Err(invalid()),
    }
    let q = create(&ctx, &actor, QuotaKind::Space, &org, &body).await?;
    if let Some(spaces) = body
        .get("relationships")
        .and_then(|r| r.get("spaces"))
        .cloned()
    {
        let spaces: ToMany =
            serde_json::from_value(spaces).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        set_spaces(&ctx, &q, &spaces).await?;
    }
    Ok((StatusCode::CREATED, Json(present(&ctx, &base, &q).await?)))
}

async fn set_spaces(ctx: &Ctx, q: &Quota, spaces: &ToMany) -> ApiResult<()> {
    for s in &spaces.data {
        let space = ctx.store.space(&s.guid).await.map_err(|_| {
            ApiError::Unprocessable(format!(
                "Spaces with guids [\"{}\"] do not exist, or you do not have access to them.",
                s.guid
            ))
        })?;
        if space.organization_guid != q.organization_guid {
            return Err(ApiError::Unprocessable(
                "Space quotas cannot be applied outside of their owning organization.".into(),
            ));
        }
    }
    for s in &spaces.data {
        ctx.store.set_space_quota(&s.guid, Some(&q.guid)).await?;
    }
    Ok(())
}

async fn update_space(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let q = update(&ctx, &actor, QuotaKind::Space, &guid, &object(&body)?).await?;
    Ok(Json(present(&ctx, &base, &q).await?))
}

async fn delete_space(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    remove(&ctx, &actor, &base, QuotaKind::Space, &guid).await
}

async fn apply_space(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ToMany = parse_json(&body)?;
    let q = ctx.store.quota(QuotaKind::Space, &guid).await?;
    set_spaces(&ctx, &q, &req).await?;
    ctx.audit(
        &actor,
        "audit.space_quota.apply",
        audit_target(QuotaKind::Space, &q),
        json!({"request": {"spaces": req.data.iter().map(|s| s.guid.clone()).collect::<Vec<_>>()}}),
    )
    .await;
    let data: Vec<Value> = ctx
        .store
        .spaces_of_org(&q.organization_guid)
        .await?
        .iter()
        .filter(|s| s.quota_guid.as_deref() == Some(guid.as_str()))
        .map(|s| json!({"guid": s.guid}))
        .collect();
    Ok(Json(json!({"data": data})))
}

async fn unapply_space(
    State(ctx): State<Ctx>,
    Path((guid, space)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.store.quota(QuotaKind::Space, &guid).await?;
    let s = ctx.store.space(&space).await?;
    if s.quota_guid.as_deref() == Some(guid.as_str()) {
        ctx.store.set_space_quota(&space, None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
