//! `/v3/service_instances`: managed instances (a broker provisions them in
//! a job) and user-provided ones (credentials the user gives; no broker).
//! One operation at a time per instance.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::jobs::location as accepted;
use super::presenters::services as present;
use super::service_plans::Catalog;
use super::{filter, input, page_of, parse_json, BaseUrl, PageReq, Query, ToOne};
use crate::authz::{self, Action, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::services::{self, osb::Identity, Work};
use crate::store::{Instance, InstanceFilter, NewInstance, StoreError, MANAGED, USER_PROVIDED};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/service_instances", get(list).post(create))
        .route(
            "/v3/service_instances/{guid}",
            get(show).patch(update).delete(remove),
        )
        .route("/v3/service_instances/{guid}/credentials", get(credentials))
        .route("/v3/service_instances/{guid}/parameters", get(parameters))
        .route("/v3/service_instances/{guid}/permissions", get(permissions))
}

pub const IN_PROGRESS: &str = "There is an operation in progress for the service instance.";
const INVALID_PLAN: &str =
    "Invalid service plan. Ensure that the service plan exists, is available, and you have access to it.";
/// CF's bound on the tags of an instance (their JSON text).
const MAX_TAGS: usize = 2048;
/// Bound on credentials and parameters (their JSON text).
const MAX_OBJECT: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Relationships {
    space: Option<ToOne>,
    service_plan: Option<ToOne>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Create {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    relationships: Relationships,
    parameters: Option<Value>,
    tags: Option<Value>,
    credentials: Option<Value>,
    syslog_drain_url: Option<String>,
    route_service_url: Option<String>,
    metadata: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Update {
    name: Option<String>,
    relationships: Relationships,
    parameters: Option<Value>,
    tags: Option<Value>,
    credentials: Option<Value>,
    syslog_drain_url: Option<String>,
    route_service_url: Option<String>,
    metadata: Option<Value>,
    maintenance_info: Option<Value>,
}

/// Tags: an array of strings, at most 2048 characters in all.
pub fn check_tags(tags: &Value) -> ApiResult<String> {
    let list: Vec<String> = serde_json::from_value(tags.clone())
        .map_err(|_| ApiError::Unprocessable("Tags must be a list of strings".into()))?;
    let text = json!(list).to_string();
    if list.iter().map(String::len).sum::<usize>() > MAX_TAGS {
        return Err(ApiError::Unprocessable(format!(
            "Tags is too long (maximum is {MAX_TAGS} characters)"
        )));
    }
    Ok(text)
}

/// A JSON object field (parameters, credentials), bounded.
pub fn check_object(v: &Value, what: &str) -> ApiResult<String> {
    if !v.is_object() {
        return Err(ApiError::Unprocessable(format!("{what} must be an object")));
    }
    let text = v.to_string();
    if text.len() > MAX_OBJECT {
        return Err(ApiError::Unprocessable(format!(
            "{what} is too large (maximum is {MAX_OBJECT} bytes)"
        )));
    }
    Ok(text)
}

fn check_url(url: &str, what: &str, schemes: &[&str]) -> ApiResult<()> {
    let ok = schemes.iter().any(|s| {
        url.strip_prefix(s)
            .and_then(|r| r.strip_prefix("://"))
            .is_some_and(|rest| !rest.is_empty())
    }) && url.len() <= 2048
        && !url.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "{what} must be a valid url"
        )))
    }
}

/// A user-provided instance's syslog drain (syslog, syslog-tls, http(s))
/// and route service (https) URLs.
fn check_upsi_urls(syslog: Option<&str>, route: Option<&str>) -> ApiResult<()> {
    if let Some(u) = syslog {
        check_url(
            u,
            "Syslog drain url",
            &["syslog", "syslog-tls", "https", "http"],
        )?;
    }
    if let Some(u) = route {
        check_url(u, "Route service url", &["https"])?;
    }
    Ok(())
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::Unprocessable(m),
        other => other.into(),
    }
}

pub fn identity(perms: &Perms) -> Identity {
    Identity {
        user_guid: Some(perms.user_guid.clone()),
    }
}

async fn audit(ctx: &Ctx, actor: &Actor, kind: &str, i: &Instance) {
    let org = ctx
        .store
        .space(&i.space_guid)
        .await
        .ok()
        .map(|s| s.organization_guid);
    ctx.audit(
        actor,
        kind,
        AuditTarget {
            kind: "service_instance",
            guid: &i.guid,
            name: &i.name,
            space: Some(&i.space_guid),
            org: org.as_deref(),
        },
        json!({}),
    )
    .await;
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Create = parse_json(&body)?;
    let kind = match req.kind.as_deref() {
        Some(k @ (MANAGED | USER_PROVIDED)) => k,
        _ => {
            return Err(ApiError::Unprocessable(
                "Type must be one of 'managed', 'user-provided'".into(),
            ))
        }
    };
    let name = req.name.clone().unwrap_or_default();
    input::check_name(&name)?;
    let space_guid = req
        .relationships
        .space
        .as_ref()
        .map(|s| s.data.guid.clone())
        .ok_or_else(|| ApiError::Unprocessable("Relationships Space can't be blank".into()))?;
    let space = authz::require_in_space(
        &ctx,
        &perms,
        Action::WriteSpace,
        &space_guid,
        authz::INVALID_SPACE,
    )
    .await?;
    let tags = match &req.tags {
        Some(t) => check_tags(t)?,
        None => "[]".into(),
    };
    let _ = &req.metadata;
    if kind == USER_PROVIDED {
        if req.relationships.service_plan.is_some() || req.parameters.is_some() {
            return Err(ApiError::Unprocessable(
                "User-provided service instances take no service plan or parameters".into(),
            ));
        }
        let credentials = match &req.credentials {
            Some(c) => check_object(c, "Credentials")?,
            None => "{}".into(),
        };
        check_upsi_urls(
            req.syslog_drain_url.as_deref(),
            req.route_service_url.as_deref(),
        )?;
        let i = ctx
            .store
            .create_instance(&NewInstance {
                name: &name,
                kind: USER_PROVIDED,
                space_guid: &space.guid,
                plan_guid: None,
                tags: &tags,
                parameters: "{}",
                credentials: &credentials,
                syslog_drain_url: req.syslog_drain_url.as_deref(),
                route_service_url: req.route_service_url.as_deref(),
                op_state: crate::store::OP_SUCCEEDED,
            })
            .await
            .map_err(name_taken)?;
        audit(
            &ctx,
            &actor,
            "audit.user_provided_service_instance.create",
            &i,
        )
        .await;
        return Ok((StatusCode::CREATED, Json(present::instance(&base, &i))).into_response());
    }
    if req.credentials.is_some()
        || req.syslog_drain_url.is_some()
        || req.route_service_url.is_some()
    {
        return Err(ApiError::Unprocessable(
            "Managed service instances take no credentials, syslog_drain_url or route_service_url"
                .into(),
        ));
    }
    let plan_guid = req
        .relationships
        .service_plan
        .as_ref()
        .map(|p| p.data.guid.clone())
        .ok_or_else(|| {
            ApiError::Unprocessable("Relationships Service plan can't be blank".into())
        })?;
    let parameters = match &req.parameters {
        Some(p) => check_object(p, "Parameters")?,
        None => "{}".into(),
    };
    let cat = Catalog::load(&ctx, &perms).await?;
    let plan = cat
        .plans
        .iter()
        .find(|p| p.guid == plan_guid)
        .filter(|p| p.available != 0 && cat.usable_in(&perms, p, &space.organization_guid))
        .ok_or_else(|| ApiError::Unprocessable(INVALID_PLAN.into()))?;
    let i = ctx
        .store
        .create_instance(&NewInstance {
            name: &name,
            kind: MANAGED,
            space_guid: &space.guid,
            plan_guid: Some(&plan.guid),
            tags: &tags,
            parameters: &parameters,
            credentials: "{}",
            syslog_drain_url: None,
            route_service_url: None,
            op_state: crate::store::OP_INITIAL,
        })
        .await
        .map_err(name_taken)?;
    audit(&ctx, &actor, "audit.service_instance.create", &i).await;
    let job = services::start(&ctx, Work::Provision, &i.guid, identity(&perms)).await?;
    Ok(accepted(&base, &job))
}

/// The `included` resources the cf CLI asks for with `fields[...]`.
async fn included(
    ctx: &Ctx,
    base: &BaseUrl,
    q: &BTreeMap<String, String>,
    instances: &[Instance],
) -> ApiResult<Option<Value>> {
    let f = |k: &str| q.get(&format!("fields[{k}]"));
    let wants_plans = f("service_plan").is_some()
        || f("service_plan.service_offering").is_some()
        || f("service_plan.service_offering.service_broker").is_some();
    let wants_spaces = f("space").is_some() || f("space.organization").is_some();
    if !wants_plans && !wants_spaces {
        return Ok(None);
    }
    let mut out = json!({});
    if wants_plans {
        // The instances' own plans, visible to the caller or not now.
        let all_brokers = ctx.store.brokers().await?;
        let all_plans = ctx.store.plans().await?;
        let all_offerings = ctx.store.offerings().await?;
        let mut plans = Vec::new();
        let mut offerings = Vec::new();
        let mut brokers = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for i in instances {
            let Some(pg) = &i.plan_guid else { continue };
            let Some(p) = all_plans.iter().find(|p| &p.guid == pg) else {
                continue;
            };
            if !seen.contains(&p.guid) {
                seen.push(p.guid.clone());
                plans.push(present::partial(present::plan(base, p), f("service_plan")));
            }
            let Some(o) = all_offerings.iter().find(|o| o.guid == p.offering_guid) else {
                continue;
            };
            if !seen.contains(&o.guid) {
                seen.push(o.guid.clone());
                offerings.push(present::partial(
                    present::offering(base, o),
                    f("service_plan.service_offering"),
                ));
            }
            if let Some(b) = all_brokers.iter().find(|b| b.guid == o.broker_guid) {
                if !seen.contains(&b.guid) {
                    seen.push(b.guid.clone());
                    brokers.push(present::partial(
                        json!({"guid": b.guid, "name": b.name}),
                        f("service_plan.service_offering.service_broker"),
                    ));
                }
            }
        }
        out["service_plans"] = json!(plans);
        out["service_offerings"] = json!(offerings);
        out["service_brokers"] = json!(brokers);
    }
    if wants_spaces {
        let mut spaces = Vec::new();
        let mut orgs = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for i in instances {
            if seen.contains(&i.space_guid) {
                continue;
            }
            seen.push(i.space_guid.clone());
            let Ok(s) = ctx.store.space(&i.space_guid).await else {
                continue;
            };
            spaces.push(present::partial(
                json!({"guid": s.guid, "name": s.name,
                       "relationships": {"organization": super::rel(&s.organization_guid)}}),
                f("space"),
            ));
            if !seen.contains(&s.organization_guid) {
                seen.push(s.organization_guid.clone());
                if let Ok(o) = ctx.store.org(&s.organization_guid).await {
                    orgs.push(present::partial(
                        json!({"guid": o.guid, "name": o.name}),
                        f("space.organization"),
                    ));
                }
            }
        }
        out["spaces"] = json!(spaces);
        out["organizations"] = json!(orgs);
    }
    Ok(Some(out))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    input::known_params(
        &q,
        &[
            "names",
            "guids",
            "type",
            "space_guids",
            "organization_guids",
            "service_plan_guids",
            "service_plan_names",
            "page",
            "per_page",
            "order_by",
            "label_selector",
            "fields[space]",
            "fields[space.organization]",
            "fields[service_plan]",
            "fields[service_plan.service_offering]",
            "fields[service_plan.service_offering.service_broker]",
        ],
    )?;
    let kind = match q.get("type").map(String::as_str) {
        None => None,
        Some(k @ (MANAGED | USER_PROVIDED)) => Some(k.to_string()),
        Some(_) => {
            return Err(ApiError::BadQuery(
                "type must be one of 'managed', 'user-provided'".into(),
            ))
        }
    };
    let mut space_guids = filter(&q, "space_guids");
    if let Some(orgs) = filter(&q, "organization_guids") {
        let spaces = ctx.store.spaces().await?.into_iter();
        space_guids = super::narrow(
            &space_guids,
            spaces
                .filter(|s| orgs.contains(&s.organization_guid))
                .map(|s| s.guid),
        );
    }
    let mut plan_guids = filter(&q, "service_plan_guids");
    if let Some(names) = filter(&q, "service_plan_names") {
        let plans = ctx.store.plans().await?.into_iter();
        plan_guids = super::narrow(
            &plan_guids,
            plans.filter(|p| names.contains(&p.name)).map(|p| p.guid),
        );
    }
    let f = InstanceFilter {
        guids: filter(&q, "guids"),
        names: filter(&q, "names"),
        space_guids,
        plan_guids,
        kind,
        scope: perms.space_scope(),
    };
    let req = PageReq::from_query(&q)?;
    let (total, rows) = ctx
        .store
        .instances_page(&f, req.per_page, req.offset())
        .await?;
    let items = rows.iter().map(|i| present::instance(&base, i)).collect();
    let mut page = page_of(&base, "/v3/service_instances", &q, req, total, items);
    if let Some(inc) = included(&ctx, &base, &q, &rows).await? {
        page["included"] = inc;
    }
    Ok(Json(page))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let i = ctx.store.instance(&guid).await?;
    let mut v = present::instance(&base, &i);
    if let Some(inc) = included(&ctx, &base, &q, std::slice::from_ref(&i)).await? {
        v["included"] = inc;
    }
    Ok(Json(v))
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Update = parse_json(&body)?;
    let mut i = ctx.store.instance(&guid).await?;
    if i.busy() {
        return Err(ApiError::Unprocessable(IN_PROGRESS.into()));
    }
    if let Some(n) = &req.name {
        input::check_name(n)?;
        i.name = n.clone();
    }
    if let Some(t) = &req.tags {
        i.tags = check_tags(t)?;
    }
    let _ = (&req.metadata, &req.maintenance_info);
    if !i.is_managed() {
        if req.relationships.service_plan.is_some() || req.parameters.is_some() {
            return Err(ApiError::Unprocessable(
                "User-provided service instances take no service plan or parameters".into(),
            ));
        }
        if let Some(c) = &req.credentials {
            i.credentials = check_object(c, "Credentials")?;
        }
        check_upsi_urls(
            req.syslog_drain_url.as_deref(),
            req.route_service_url.as_deref(),
        )?;
        if let Some(u) = &req.syslog_drain_url {
            i.syslog_drain_url = Some(u.clone());
        }
        if let Some(u) = &req.route_service_url {
            i.route_service_url = Some(u.clone());
        }
        ctx.store.update_instance(&i).await.map_err(name_taken)?;
        if req.credentials.is_some() || req.syslog_drain_url.is_some() {
            ctx.store.copy_upsi_credentials(&i).await?;
        }
        audit(
            &ctx,
            &actor,
            "audit.user_provided_service_instance.update",
            &i,
        )
        .await;
        return Ok(
            Json(present::instance(&base, &ctx.store.instance(&guid).await?)).into_response(),
        );
    }
    if req.credentials.is_some()
        || req.syslog_drain_url.is_some()
        || req.route_service_url.is_some()
    {
        return Err(ApiError::Unprocessable(
            "Managed service instances take no credentials, syslog_drain_url or route_service_url"
                .into(),
        ));
    }
    let space = ctx.store.space(&i.space_guid).await?;
    let new_plan = match &req.relationships.service_plan {
        Some(p) => {
            let cat = Catalog::load(&ctx, &perms).await?;
            let plan = cat
                .plans
                .iter()
                .find(|x| x.guid == p.data.guid)
                .filter(|x| x.available != 0 && cat.usable_in(&perms, x, &space.organization_guid))
                .ok_or_else(|| ApiError::Unprocessable(INVALID_PLAN.into()))?;
            let current = i.plan_guid.clone().unwrap_or_default();
            let old = ctx.store.plan(&current).await?;
            if plan.offering_guid != old.offering_guid {
                return Err(ApiError::Unprocessable(
                    "Cannot update a service instance to a plan of another service offering".into(),
                ));
            }
            if plan.guid == old.guid {
                None
            } else {
                if old.plan_updateable == 0 {
                    let o = ctx.store.offering(&old.offering_guid).await?;
                    return Err(ApiError::Unprocessable(format!(
                        "The service does not support changing plans. ({})",
                        o.name
                    )));
                }
                Some(plan.guid.clone())
            }
        }
        None => None,
    };
    let parameters = match &req.parameters {
        Some(p) => {
            check_object(p, "Parameters")?;
            Some(p.clone())
        }
        None => None,
    };
    ctx.store.update_instance(&i).await.map_err(name_taken)?;
    if new_plan.is_none() && parameters.is_none() {
        audit(&ctx, &actor, "audit.service_instance.update", &i).await;
        return Ok(
            Json(present::instance(&base, &ctx.store.instance(&guid).await?)).into_response(),
        );
    }
    if !ctx.store.begin_instance_op(&i.guid, "update").await? {
        return Err(ApiError::Unprocessable(IN_PROGRESS.into()));
    }
    audit(&ctx, &actor, "audit.service_instance.update", &i).await;
    let job = services::start(
        &ctx,
        Work::Update {
            plan_guid: new_plan,
            parameters,
        },
        &i.guid,
        identity(&perms),
    )
    .await?;
    Ok(accepted(&base, &job))
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let i = ctx.store.instance(&guid).await?;
    if q.get("purge").is_some_and(|p| p == "true") {
        // Forget the instance without asking its broker (admins, as in CF).
        if !perms.is_admin() {
            return Err(ApiError::not_authorized());
        }
        ctx.store.delete_instance(&i.guid).await?;
        audit(&ctx, &actor, "audit.service_instance.purge", &i).await;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !i.is_managed() {
        ctx.store.delete_instance(&i.guid).await?;
        audit(
            &ctx,
            &actor,
            "audit.user_provided_service_instance.delete",
            &i,
        )
        .await;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // A create that failed may be deleted at once; otherwise one
    // operation at a time.
    if !ctx.store.begin_instance_op(&i.guid, "delete").await? {
        return Err(ApiError::Unprocessable(IN_PROGRESS.into()));
    }
    audit(&ctx, &actor, "audit.service_instance.delete", &i).await;
    let job = services::start(&ctx, Work::Deprovision, &i.guid, identity(&perms)).await?;
    Ok(accepted(&base, &job))
}

async fn credentials(State(ctx): State<Ctx>, Path(guid): Path<String>) -> ApiResult<Json<Value>> {
    let i = ctx.store.instance(&guid).await?;
    if i.is_managed() {
        return Err(ApiError::not_found("Service instance"));
    }
    Ok(Json(
        serde_json::from_str::<Map<String, Value>>(&i.credentials)
            .map(Value::Object)
            .unwrap_or_else(|_| json!({})),
    ))
}

async fn parameters(State(ctx): State<Ctx>, Path(guid): Path<String>) -> ApiResult<Json<Value>> {
    let i = ctx.store.instance(&guid).await?;
    if !i.is_managed() {
        return Err(ApiError::Unprocessable(
            "This service does not support fetching service instance parameters.".into(),
        ));
    }
    Ok(Json(
        serde_json::from_str::<Value>(&i.parameters).unwrap_or_else(|_| json!({})),
    ))
}

async fn permissions(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let (read, manage) = match ctx
        .store
        .locate(crate::store::Target::ServiceInstance, &guid)
        .await?
    {
        Some(at) => {
            let scope = Scope::Space {
                org: &at.org,
                space: &at.space,
            };
            (
                perms.may(Action::ReadSpace, scope),
                perms.may(Action::WriteSpace, scope),
            )
        }
        None => (false, false),
    };
    Ok(Json(json!({"read": read, "manage": manage})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_objects() {
        assert_eq!(check_tags(&json!(["a", "b"])).expect("ok"), r#"["a","b"]"#);
        assert!(check_tags(&json!("a")).is_err());
        assert!(check_tags(&json!([1])).is_err());
        assert!(check_tags(&json!(["x".repeat(3000)])).is_err());
        assert!(check_object(&json!([1]), "Parameters").is_err());
        assert!(check_object(&json!({"a": "x".repeat(70_000)}), "Parameters").is_err());
        assert!(check_object(&json!({"a": 1}), "Parameters").is_ok());
        assert!(check_url("https://d", "u", &["https"]).is_ok());
        assert!(check_url("http://d", "u", &["https"]).is_err());
        assert!(check_url("syslog://h:514", "u", &["syslog", "https"]).is_ok());
    }
}
