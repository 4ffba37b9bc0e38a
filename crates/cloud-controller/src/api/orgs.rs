//! `/v3/organizations`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, BaseUrl, PageReq, Query};
use crate::authz::Perms;
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{DomainFilter, OrgFilter, Organization, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/organizations", get(list).post(create))
        .route(
            "/v3/organizations/{guid}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v3/organizations/{guid}/domains/default",
            get(default_domain),
        )
        .route("/v3/organizations/{guid}/domains", get(domains))
        .route("/v3/organizations/{guid}/usage_summary", get(usage_summary))
}

pub fn present(base: &BaseUrl, o: &Organization) -> Value {
    let p = format!("/v3/organizations/{}", o.guid);
    let quota = match &o.quota_guid {
        Some(q) => json!({"data": {"guid": q}}),
        None => json!({"data": null}),
    };
    json!({
        "guid": o.guid,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "name": o.name,
        "suspended": o.suspended != 0,
        "relationships": {"quota": quota},
        "metadata": metadata(),
        "links": {
            "self": base.link(&p),
            "domains": base.link(&format!("{p}/domains")),
            "default_domain": base.link(&format!("{p}/domains/default")),
            "quota": o.quota_guid.as_ref().map(|q| base.link(&format!("/v3/organization_quotas/{q}"))),
        },
    })
}

fn audit_target(o: &Organization) -> AuditTarget<'_> {
    AuditTarget {
        kind: "organization",
        guid: &o.guid,
        name: &o.name,
        space: None,
        org: Some(&o.guid),
    }
}

#[derive(Debug, Deserialize)]
struct CreateOrg {
    name: String,
    #[serde(default)]
    suspended: Option<bool>,
}

/// Admins create orgs; others only with the `user_org_creation` flag, and
/// then become the org's user and manager, as in CF.
async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateOrg = parse_json(&body)?;
    let name = req.name.trim();
    super::check_name(name)?;
    let admin = perms.is_admin();
    if !admin && !super::feature_flags::enabled(&ctx, "user_org_creation").await? {
        return Err(ApiError::Forbidden(
            "Feature Disabled: user_org_creation".into(),
        ));
    }
    let mut org = ctx.store.create_org(name).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            ApiError::Unprocessable(format!("Organization '{name}' already exists."))
        }
        other => other.into(),
    })?;
    if req.suspended == Some(true) {
        org.suspended = 1;
        org = ctx.store.update_org(&org).await?;
    }
    if !admin {
        for t in ["organization_user", "organization_manager"] {
            ctx.store
                .create_role(t, &perms.user_guid, &org.guid, "")
                .await?;
        }
    }
    ctx.audit(
        &actor,
        "audit.organization.create",
        audit_target(&org),
        json!({"request": {"name": name}}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(present(&base, &org))))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = OrgFilter {
        names: filter(&q, "names"),
        guids: filter(&q, "guids"),
        member: (!perms.reads_everything()).then(|| perms.user_guid.clone()),
    };
    let (total, orgs) = ctx.store.orgs_page(&f, page.window()).await?;
    let items = orgs.iter().map(|o| present(&base, o)).collect();
    Ok(Json(page_of(
        &base,
        "/v3/organizations",
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
    Ok(Json(present(&base, &ctx.store.org(&guid).await?)))
}

#[derive(Debug, Deserialize)]
struct UpdateOrg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    suspended: Option<bool>,
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: UpdateOrg = parse_json(&body)?;
    let mut org = ctx.store.org(&guid).await?;
    if let Some(n) = &req.name {
        let n = n.trim();
        super::check_name(n)?;
        org.name = n.to_string();
    }
    if let Some(s) = req.suspended {
        // Suspending is the admin's call (CF).
        if !perms.is_admin() {
            return Err(ApiError::not_authorized());
        }
        org.suspended = i64::from(s);
    }
    let name = org.name.clone();
    let org = ctx.store.update_org(&org).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            ApiError::Unprocessable(format!("Organization '{name}' already exists."))
        }
        other => other.into(),
    })?;
    ctx.audit(
        &actor,
        "audit.organization.update",
        audit_target(&org),
        json!({"request": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)}),
    )
    .await;
    Ok(Json(present(&base, &org)))
}

/// Deletes an org. With spaces left it needs `recursive=true` (then every
/// space, app and route goes too); else 422, as CF answers.
async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let org = ctx.store.org(&guid).await?;
    if org.name == crate::store::SYSTEM_ORG {
        return Err(ApiError::Unprocessable(
            "The system organization cannot be deleted.".into(),
        ));
    }
    let spaces = ctx.store.spaces_of_org(&guid).await?;
    let recursive = q.get("recursive").is_some_and(|v| v == "true");
    if !spaces.is_empty() && !recursive {
        return Err(ApiError::Unprocessable(format!(
            "Resource inside organization '{}' must first be deleted, or specify recursive delete.",
            org.name
        )));
    }
    for s in &spaces {
        super::spaces::delete_contents(&ctx, &actor, s).await?;
        ctx.store.delete_space(&s.guid).await?;
    }
    ctx.store.delete_org(&guid).await?;
    ctx.audit(
        &actor,
        "audit.organization.delete-request",
        audit_target(&org),
        json!({"recursive": recursive}),
    )
    .await;
    super::jobs::accepted(&ctx, &base, "organization.delete").await
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
    let shared = ctx.store.domain_shared_with(&d.guid).await?;
    Ok(Json(super::domains::present(&base, &d, &shared)))
}

async fn domains(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    ctx.store.org(&guid).await?;
    let f = DomainFilter {
        names: filter(&q, "names"),
        member: None,
        usable_by: Some(guid.clone()),
    };
    let (total, domains) = ctx.store.domains_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(domains.len());
    for d in &domains {
        let shared = ctx.store.domain_shared_with(&d.guid).await?;
        items.push(super::domains::present(&base, d, &shared));
    }
    Ok(Json(page_of(
        &base,
        &format!("/v3/organizations/{guid}/domains"),
        &q,
        page,
        total,
        items,
    )))
}

async fn usage_summary(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.org(&guid).await?;
    let u = ctx.store.usage(&guid, false, "").await?;
    Ok(Json(json!({
        "usage_summary": {
            "started_instances": u.instances,
            "memory_in_mb": u.memory_in_mb,
            "routes": u.routes,
            "service_instances": 0,
            "reserved_ports": 0,
            "domains": 0,
            "per_app_tasks": 0,
            "service_keys": 0,
        },
        "links": {
            "self": base.link(&format!("/v3/organizations/{guid}/usage_summary")),
            "organization": base.link(&format!("/v3/organizations/{guid}")),
        },
    })))
}
