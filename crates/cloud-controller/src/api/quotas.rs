//! `/v3/organization_quotas` and `/v3/space_quotas`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{filter, matches, paginate, parse_json, BaseUrl, Query, ToMany};
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Quota, QuotaKind, QuotaLimits, StoreError};

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

fn noun(kind: QuotaKind) -> &'static str {
    match kind {
        QuotaKind::Organization => "Organization Quota",
        QuotaKind::Space => "Space Quota",
    }
}

fn path(kind: QuotaKind) -> &'static str {
    match kind {
        QuotaKind::Organization => "/v3/organization_quotas",
        QuotaKind::Space => "/v3/space_quotas",
    }
}

async fn present(ctx: &Ctx, base: &BaseUrl, q: &Quota) -> ApiResult<Value> {
    let kind = if q.kind == "space" {
        QuotaKind::Space
    } else {
        QuotaKind::Organization
    };
    let mut v = json!({
        "guid": q.guid,
        "created_at": q.created_at,
        "updated_at": q.updated_at,
        "name": q.name,
        "apps": {
            "total_memory_in_mb": q.total_memory_in_mb,
            "per_process_memory_in_mb": q.per_process_memory_in_mb,
            "total_instances": q.total_instances,
            "per_app_tasks": null,
            "log_rate_limit_in_bytes_per_second": null,
            "total_apps": q.total_apps,
        },
        "services": {"paid_services_allowed": true, "total_service_instances": null, "total_service_keys": null},
        "routes": {"total_routes": q.total_routes, "total_reserved_ports": null},
        "links": {"self": base.link(&format!("{}/{}", path(kind), q.guid))},
    });
    match kind {
        QuotaKind::Organization => {
            let orgs: Vec<Value> = ctx
                .store
                .orgs()
                .await?
                .iter()
                .filter(|o| o.quota_guid.as_deref() == Some(q.guid.as_str()))
                .map(|o| json!({"guid": o.guid}))
                .collect();
            v["domains"] = json!({"total_domains": null});
            v["relationships"] = json!({"organizations": {"data": orgs}});
        }
        QuotaKind::Space => {
            let spaces: Vec<Value> = ctx
                .store
                .spaces_of_org(&q.organization_guid)
                .await?
                .iter()
                .filter(|s| s.quota_guid.as_deref() == Some(q.guid.as_str()))
                .map(|s| json!({"guid": s.guid}))
                .collect();
            v["relationships"] = json!({
                "organization": {"data": {"guid": q.organization_guid}},
                "spaces": {"data": spaces},
            });
            v["links"]["organization"] =
                base.link(&format!("/v3/organizations/{}", q.organization_guid));
        }
    }
    Ok(v)
}

/// Applies the `apps` and `routes` objects of a request to `l`: a present
/// field sets the limit (`null` = unlimited), an absent one keeps it.
pub fn apply_limits(body: &Map<String, Value>, l: &mut QuotaLimits) -> ApiResult<()> {
    let field = |obj: &str, key: &str, slot: &mut Option<i64>| -> ApiResult<()> {
        let Some(o) = body.get(obj) else {
            return Ok(());
        };
        let Some(o) = o.as_object() else {
            return Err(ApiError::Unprocessable(format!("{obj} must be an object")));
        };
        match o.get(key) {
            None => Ok(()),
            Some(Value::Null) => {
                *slot = None;
                Ok(())
            }
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => {
                    *slot = Some(n);
                    Ok(())
                }
                _ => Err(ApiError::Unprocessable(format!(
                    "{} must be greater than or equal to 0",
                    key.replace('_', " ").replacen('t', "T", 1)
                ))),
            },
        }
    };
    field("apps", "total_memory_in_mb", &mut l.total_memory_in_mb)?;
    field(
        "apps",
        "per_process_memory_in_mb",
        &mut l.per_process_memory_in_mb,
    )?;
    field("apps", "total_instances", &mut l.total_instances)?;
    field("apps", "total_apps", &mut l.total_apps)?;
    field("routes", "total_routes", &mut l.total_routes)?;
    Ok(())
}

fn name_of(body: &Map<String, Value>) -> ApiResult<Option<String>> {
    match body.get("name") {
        None => Ok(None),
        Some(Value::String(n)) => {
            let n = n.trim();
            super::orgs::check_name(n)?;
            Ok(Some(n.to_string()))
        }
        Some(_) => Err(ApiError::Unprocessable("Name must be a string".into())),
    }
}

fn conflict(kind: QuotaKind, name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => {
            ApiError::Unprocessable(format!("{} '{name}' already exists.", noun(kind)))
        }
        other => other.into(),
    }
}

fn audit_target<'a>(kind: QuotaKind, q: &'a Quota) -> AuditTarget<'a> {
    AuditTarget {
        kind: match kind {
            QuotaKind::Organization => "organization_quota",
            QuotaKind::Space => "space_quota",
        },
        guid: &q.guid,
        name: &q.name,
        space: None,
        org: (!q.organization_guid.is_empty()).then_some(q.organization_guid.as_str()),
    }
}

async fn create(
    ctx: &Ctx,
    actor: &Actor,
    kind: QuotaKind,
    org: &str,
    body: &Map<String, Value>,
) -> ApiResult<Quota> {
    let name =
        name_of(body)?.ok_or_else(|| ApiError::Unprocessable("Name can't be blank".into()))?;
    let mut l = QuotaLimits::default();
    apply_limits(body, &mut l)?;
    let q = ctx
        .store
        .create_quota(kind, &name, org, &l)
        .await
        .map_err(conflict(kind, &name))?;
    let event = match kind {
        QuotaKind::Organization => "audit.organization_quota.create",
        QuotaKind::Space => "audit.space_quota.create",
    };
    ctx.audit(
        actor,
        event,
        audit_target(kind, &q),
        json!({"request": body}),
    )
    .await;
    Ok(q)
}

async fn update(
    ctx: &Ctx,
    actor: &Actor,
    kind: QuotaKind,
    guid: &str,
    body: &Map<String, Value>,
) -> ApiResult<Quota> {
    let mut q = ctx.store.quota(kind, guid).await?;
    if let Some(n) = name_of(body)? {
        q.name = n;
    }
    let mut l = q.limits();
    apply_limits(body, &mut l)?;
    q.total_memory_in_mb = l.total_memory_in_mb;
    q.per_process_memory_in_mb = l.per_process_memory_in_mb;
    q.total_instances = l.total_instances;
    q.total_routes = l.total_routes;
    q.total_apps = l.total_apps;
    let name = q.name.clone();
    let q = ctx
        .store
        .update_quota(&q)
        .await
        .map_err(conflict(kind, &name))?;
    let event = match kind {
        QuotaKind::Organization => "audit.organization_quota.update",
        QuotaKind::Space => "audit.space_quota.update",
    };
    ctx.audit(
        actor,
        event,
        audit_target(kind, &q),
        json!({"request": body}),
    )
    .await;
    Ok(q)
}

async fn remove(
    ctx: &Ctx,
    actor: &Actor,
    base: &BaseUrl,
    kind: QuotaKind,
    guid: &str,
) -> ApiResult<Response> {
    let q = ctx.store.quota(kind, guid).await?;
    if q.name == crate::store::DEFAULT_QUOTA && kind == QuotaKind::Organization {
        return Err(ApiError::Unprocessable(
            "The default organization quota cannot be deleted.".into(),
        ));
    }
    ctx.store.delete_quota(guid).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Unprocessable(match kind {
            QuotaKind::Organization => "This quota is applied to one or more organizations. Remove this quota from all organizations before deleting.".into(),
            QuotaKind::Space => "This quota is applied to one or more spaces. Remove this quota from all spaces before deleting.".into(),
        }),
        other => other.into(),
    })?;
    let event = match kind {
        QuotaKind::Organization => "audit.organization_quota.delete",
        QuotaKind::Space => "audit.space_quota.delete",
    };
    ctx.audit(actor, event, audit_target(kind, &q), Value::Null)
        .await;
    Ok(super::jobs::accepted(ctx, base, "quota.delete").into_response())
}

fn object(body: &Bytes) -> ApiResult<Map<String, Value>> {
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::Unprocessable(
            "The request body must be an object".into(),
        )),
    }
}

// ---- organization quotas ----

async fn list_org(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let names = filter(&q, "names");
    let mut items = Vec::new();
    for quota in ctx.store.quotas(QuotaKind::Organization).await? {
        if matches(&names, &quota.name) {
            items.push(present(&ctx, &base, &quota).await?);
        }
    }
    Ok(Json(paginate(&base, "/v3/organization_quotas", &q, items)?))
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

// ---- space quotas ----

async fn list_space(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let (names, orgs_filter) = (filter(&q, "names"), filter(&q, "organization_guids"));
    let mine = perms.org_guids();
    let mut items = Vec::new();
    for quota in ctx.store.quotas(QuotaKind::Space).await? {
        let visible = mine
            .as_ref()
            .is_none_or(|m| m.contains(&quota.organization_guid));
        if visible
            && matches(&names, &quota.name)
            && matches(&orgs_filter, &quota.organization_guid)
        {
            items.push(present(&ctx, &base, &quota).await?);
        }
    }
    Ok(Json(paginate(&base, "/v3/space_quotas", &q, items)?))
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
