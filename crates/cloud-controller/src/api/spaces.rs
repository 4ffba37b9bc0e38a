//! `/v3/spaces`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query, ToOne};
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Space, SpaceFilter, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/spaces", get(list).post(create))
        .route("/v3/spaces/{guid}", get(show).patch(update).delete(remove))
}

#[derive(Debug, Deserialize)]
struct OrgRel {
    organization: ToOne,
}

#[derive(Debug, Deserialize)]
struct CreateSpace {
    name: String,
    relationships: OrgRel,
}

const INVALID_ORG: &str =
    "Invalid organization. Ensure the organization exists and you have access to it.";

fn audit_target(s: &Space) -> AuditTarget<'_> {
    AuditTarget {
        kind: "space",
        guid: &s.guid,
        name: &s.name,
        space: Some(&s.guid),
        org: Some(&s.organization_guid),
    }
}

fn unique_name(name: &str) -> ApiError {
    ApiError::Unprocessable(format!(
        "Name must be unique per organization (a space named '{name}' exists)"
    ))
}

/// `POST /v3/spaces {name, relationships.organization}`: admins and org
/// managers (the cf CLI then gives the creator space roles).
async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateSpace = parse_json(&body)?;
    let name = req.name.trim();
    super::check_name(name)?;
    let org = req.relationships.organization.data.guid;
    ctx.store
        .org(&org)
        .await
        .map_err(|_| ApiError::Unprocessable(INVALID_ORG.into()))?;
    match perms.decide(Action::CreateSpace, Scope::Org(&org)) {
        Decision::Allow => {}
        Decision::Forbidden => return Err(ApiError::not_authorized()),
        Decision::NotFound => return Err(ApiError::Unprocessable(INVALID_ORG.into())),
    }
    let s = ctx
        .store
        .create_space(name, &org)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => unique_name(name),
            other => other.into(),
        })?;
    ctx.audit(
        &actor,
        "audit.space.create",
        audit_target(&s),
        json!({"request": {"name": name}}),
    )
    .await;
    tracing::info!(space = %s.name, actor = %actor.name, "space created");
    Ok((StatusCode::CREATED, Json(present(&base, &s))))
}

pub fn present(base: &BaseUrl, s: &Space) -> Value {
    let quota = match &s.quota_guid {
        Some(q) => json!({"data": {"guid": q}}),
        None => json!({"data": null}),
    };
    json!({
        "guid": s.guid,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "name": s.name,
        "relationships": {"organization": rel(&s.organization_guid), "quota": quota},
        "metadata": metadata(),
        "links": {
            "self": base.link(&format!("/v3/spaces/{}", s.guid)),
            "organization": base.link(&format!("/v3/organizations/{}", s.organization_guid)),
            "features": base.link(&format!("/v3/spaces/{}/features", s.guid)),
            "apply_manifest": base.action(&format!("/v3/spaces/{}/actions/apply_manifest", s.guid), "POST"),
        },
    })
}

/// Spaces whose content the caller may read (filtered in SQL).
async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = SpaceFilter {
        names: filter(&q, "names"),
        organization_guids: filter(&q, "organization_guids"),
        guids: filter(&q, "guids"),
        scope: perms.space_scope(),
    };
    let (total, spaces) = ctx.store.spaces_page(&f, page.window()).await?;
    let items = spaces.iter().map(|s| present(&base, s)).collect();
    Ok(Json(page_of(&base, "/v3/spaces", &q, page, total, items)))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.space(&guid).await?)))
}

#[derive(Debug, Deserialize)]
struct UpdateSpace {
    #[serde(default)]
    name: Option<String>,
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: UpdateSpace = parse_json(&body)?;
    let mut s = ctx.store.space(&guid).await?;
    if let Some(n) = &req.name {
        let n = n.trim();
        super::check_name(n)?;
        s.name = n.to_string();
    }
    let name = s.name.clone();
    let s = ctx.store.update_space(&s).await.map_err(|e| match e {
        StoreError::Conflict(_) => unique_name(&name),
        other => other.into(),
    })?;
    ctx.audit(
        &actor,
        "audit.space.update",
        audit_target(&s),
        json!({"request": {"name": name}}),
    )
    .await;
    Ok(Json(present(&base, &s)))
}

/// Stops and deletes every app of the space, and its service instances
/// (deprovisioned in jobs).
pub async fn delete_contents(ctx: &Ctx, actor: &Actor, space: &Space) -> ApiResult<()> {
    let apps = ctx
        .store
        .apps()
        .await?
        .into_iter()
        .filter(|a| a.space_guid == space.guid);
    for app in apps {
        ctx.stop_all(&app.guid, None).await;
        crate::tasks::cancel_all(ctx, &app.guid).await?;
        crate::services::unbind_app(ctx, &app.guid).await?;
        ctx.store.delete_app(&app.guid).await?;
        crate::blob_gc::remove_app_cache(ctx, &app.guid).await;
        ctx.audit_app(
            actor,
            "audit.app.delete-request",
            &app,
            json!({"recursive": true}),
        )
        .await;
        ctx.logs.forget(&app.guid);
    }
    crate::services::delete_space_instances(ctx, &space.guid).await?;
    Ok(())
}

/// Deletes a space with its apps, routes and roles (202 + job, as CF).
async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let s = ctx.store.space(&guid).await?;
    let org = ctx.store.org(&s.organization_guid).await?;
    if org.name == crate::store::SYSTEM_ORG && s.name == crate::store::SYSTEM_ORG {
        return Err(ApiError::Unprocessable(
            "The system space cannot be deleted.".into(),
        ));
    }
    delete_contents(&ctx, &actor, &s).await?;
    ctx.store.delete_space(&guid).await?;
    ctx.audit(
        &actor,
        "audit.space.delete-request",
        audit_target(&s),
        json!({"recursive": true}),
    )
    .await;
    super::jobs::accepted(&ctx, &base, "space.delete").await
}
