//! `/v3/organization_quotas` (`organization.rs`) and `/v3/space_quotas`
//! (`space.rs`): what both share (shape, limits, create, update, delete).

mod organization;
mod space;

use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{parse_json, BaseUrl};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Quota, QuotaKind, QuotaLimits, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .merge(organization::routes())
        .merge(space::routes())
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

/// A page of the quotas `f` selects (paged in SQL), as the list endpoint
/// of `f.kind` answers it.
pub(super) async fn list(
    ctx: &Ctx,
    base: &BaseUrl,
    q: &super::Query,
    page: super::PageReq,
    f: &crate::store::QuotaFilter,
) -> ApiResult<Value> {
    let (total, quotas) = ctx.store.quotas_page(f, page.window()).await?;
    let mut items = Vec::with_capacity(quotas.len());
    for quota in &quotas {
        items.push(present(ctx, base, quota).await?);
    }
    Ok(super::page_of(base, path(f.kind), q, page, total, items))
}

pub(super) async fn present(ctx: &Ctx, base: &BaseUrl, q: &Quota) -> ApiResult<Value> {
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
            crate::api::check_name(n)?;
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

pub(super) fn audit_target<'a>(kind: QuotaKind, q: &'a Quota) -> AuditTarget<'a> {
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

pub(super) async fn create(
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

pub(super) async fn update(
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

pub(super) async fn remove(
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
    super::jobs::accepted(ctx, base, "quota.delete").await
}

pub(super) fn object(body: &Bytes) -> ApiResult<Map<String, Value>> {
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::Unprocessable(
            "The request body must be an object".into(),
        )),
    }
}
