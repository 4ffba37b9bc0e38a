//! `/v3/service_credential_bindings`: an app's binding to a service
//! instance (its credentials reach the app's `VCAP_SERVICES` on the next
//! start) or a service key. Managed instances' bindings are made by their
//! broker in a job; user-provided instances' at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::jobs::location as accepted;
use super::presenters::services as present;
use super::service_instances::{check_object, identity, IN_PROGRESS};
use super::{filter, input, page_of, parse_json, BaseUrl, PageReq, Query, ToOne};
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::services::{self, Work};
use crate::store::{Binding, BindingFilter, Instance, NewBinding, Target, OP_FAILED};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/service_credential_bindings", get(list).post(create))
        .route(
            "/v3/service_credential_bindings/{guid}",
            get(show).delete(remove),
        )
        .route(
            "/v3/service_credential_bindings/{guid}/details",
            get(details),
        )
        .route(
            "/v3/service_credential_bindings/{guid}/parameters",
            get(parameters),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Relationships {
    service_instance: Option<ToOne>,
    app: Option<ToOne>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Create {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    relationships: Relationships,
    parameters: Option<Value>,
    metadata: Option<Value>,
}

/// What the caller may do in the space of instance `i`.
fn decide(perms: &Perms, action: Action, org: &str, i: &Instance) -> Decision {
    perms.decide(
        action,
        Scope::Space {
            org,
            space: &i.space_guid,
        },
    )
}

async fn audit(ctx: &Ctx, actor: &Actor, kind: &str, b: &Binding, i: &Instance) {
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
            kind: "service_credential_binding",
            guid: &b.guid,
            name: b.name.as_deref().unwrap_or(""),
            space: Some(&i.space_guid),
            org: org.as_deref(),
        },
        json!({"service_instance_guid": i.guid, "app_guid": b.app_guid}),
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
        Some(k @ ("app" | "key")) => k,
        _ => {
            return Err(ApiError::Unprocessable(
                "Type must be one of 'app', 'key'".into(),
            ))
        }
    };
    let _ = &req.metadata;
    if let Some(n) = &req.name {
        input::check_name(n)?;
    }
    let parameters = match &req.parameters {
        Some(p) => check_object(p, "Parameters")?,
        None => "{}".into(),
    };
    let si_guid = req
        .relationships
        .service_instance
        .as_ref()
        .map(|r| r.data.guid.clone())
        .ok_or_else(|| {
            ApiError::Unprocessable("Relationships Service instance can't be blank".into())
        })?;
    let not_found = || {
        ApiError::Unprocessable(format!(
            "The service instance could not be found: '{si_guid}'."
        ))
    };
    let i = ctx
        .store
        .instance(&si_guid)
        .await
        .map_err(|_| not_found())?;
    let org = ctx.store.space(&i.space_guid).await?.organization_guid;
    let action = if kind == "app" {
        Action::ManageApp
    } else {
        Action::WriteSpace
    };
    match decide(&perms, action, &org, &i) {
        Decision::Allow => {}
        Decision::Forbidden => return Err(ApiError::not_authorized()),
        Decision::NotFound => return Err(not_found()),
    }
    let app = if kind == "app" {
        let app_guid = req
            .relationships
            .app
            .as_ref()
            .map(|r| r.data.guid.clone())
            .ok_or_else(|| ApiError::Unprocessable("Relationships App can't be blank".into()))?;
        let app = ctx.store.app(&app_guid).await.map_err(|_| {
            ApiError::Unprocessable(format!("The app could not be found: '{app_guid}'."))
        })?;
        if app.space_guid != i.space_guid {
            return Err(ApiError::Unprocessable(
                "The service instance and the app are in different spaces".into(),
            ));
        }
        Some(app)
    } else {
        if req.relationships.app.is_some() {
            return Err(ApiError::Unprocessable(
                "Relationships App is not allowed for key bindings".into(),
            ));
        }
        if req.name.is_none() {
            return Err(ApiError::Unprocessable("Name can't be blank".into()));
        }
        if !i.is_managed() {
            return Err(ApiError::Unprocessable(
                "Service credential bindings of type 'key' are not supported for user-provided service instances."
                    .into(),
            ));
        }
        None
    };
    let (b, job) = make(
        &ctx,
        &actor,
        &perms,
        &i,
        app.as_ref(),
        kind,
        req.name.as_deref(),
        &parameters,
    )
    .await?;
    match job {
        None => Ok((StatusCode::CREATED, Json(present::binding(&base, &b))).into_response()),
        Some(job) => Ok(accepted(&base, &job)),
    }
}

/// Checks and makes a binding of instance `i` (to `app` for type `app`),
/// the caller's permission already checked: a user-provided instance's at
/// once, a managed one's in a bind job (returned).
#[allow(clippy::too_many_arguments)]
pub async fn make(
    ctx: &Ctx,
    actor: &Actor,
    perms: &Perms,
    i: &Instance,
    app: Option<&crate::store::App>,
    kind: &str,
    name: Option<&str>,
    parameters: &str,
) -> ApiResult<(Binding, Option<crate::store::JobRow>)> {
    if i.busy() || (i.op_type == "create" && i.op_state == OP_FAILED) {
        return Err(ApiError::Unprocessable(IN_PROGRESS.into()));
    }
    if let Some(pg) = &i.plan_guid {
        if ctx.store.plan(pg).await?.bindable == 0 {
            return Err(ApiError::Unprocessable(
                "Service plan does not allow bindings.".into(),
            ));
        }
    }
    // One binding per app and instance; one key per name.
    for b in ctx.store.bindings_of_instance(&i.guid).await? {
        let same = match app {
            Some(a) => b.kind == "app" && b.app_guid.as_deref() == Some(a.guid.as_str()),
            None => b.kind == "key" && b.name.as_deref() == name,
        };
        if !same {
            continue;
        }
        if b.op_type == "create" && b.op_state == OP_FAILED {
            // A failed create is replaced (CF).
            ctx.store.delete_binding(&b.guid).await?;
            continue;
        }
        if app.is_some() {
            if b.op_state == crate::store::OP_IN_PROGRESS || b.op_state == crate::store::OP_INITIAL
            {
                return Err(ApiError::Unprocessable(format!(
                    "There is already a binding in progress for this service instance and app (binding guid: {})",
                    b.guid
                )));
            }
            return Err(ApiError::Unprocessable(
                "The app is already bound to the service instance".into(),
            ));
        }
        return Err(ApiError::Unprocessable(format!(
            "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name '{}'.",
            name.unwrap_or_default()
        )));
    }
    let managed = i.is_managed();
    let b = ctx
        .store
        .create_binding(&NewBinding {
            kind,
            name,
            instance_guid: &i.guid,
            app_guid: app.map(|a| a.guid.as_str()),
            credentials: if managed { "{}" } else { &i.credentials },
            syslog_drain_url: if managed {
                None
            } else {
                i.syslog_drain_url.as_deref()
            },
            parameters,
            op_state: if managed {
                crate::store::OP_INITIAL
            } else {
                crate::store::OP_SUCCEEDED
            },
        })
        .await?;
    let event = if kind == "app" {
        "audit.service_binding.create"
    } else {
        "audit.service_key.create"
    };
    audit(ctx, actor, event, &b, i).await;
    if !managed {
        return Ok((b, None));
    }
    let job = services::start(ctx, Work::Bind, &b.guid, identity(perms)).await?;
    Ok((b, Some(job)))
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
            "service_instance_guids",
            "service_instance_names",
            "app_guids",
            "app_names",
            "service_plan_guids",
            "service_plan_names",
            "service_offering_guids",
            "service_offering_names",
            "page",
            "per_page",
            "order_by",
            "label_selector",
            "include",
        ],
    )?;
    let kind = match q.get("type").map(String::as_str) {
        None => None,
        Some(k @ ("app" | "key")) => Some(k.to_string()),
        Some(_) => {
            return Err(ApiError::BadQuery(
                "type must be one of 'app', 'key'".into(),
            ))
        }
    };
    let mut instance_guids = filter(&q, "service_instance_guids");
    if let Some(names) = filter(&q, "service_instance_names") {
        let f = crate::store::InstanceFilter {
            guids: None,
            names: Some(names),
            space_guids: None,
            plan_guids: None,
            kind: None,
            scope: perms.space_scope(),
        };
        let (_, rows) = ctx.store.instances_page(&f, 5000, 0).await?;
        instance_guids = super::narrow(&instance_guids, rows.into_iter().map(|i| i.guid));
    }
    let mut app_guids = filter(&q, "app_guids");
    if let Some(names) = filter(&q, "app_names") {
        let f = crate::store::AppFilter {
            names: Some(names),
            space_guids: None,
            guids: None,
            scope: perms.space_scope(),
            order_by: None,
        };
        let (_, apps) = ctx.store.apps_page(&f, 5000, 0).await?;
        app_guids = super::narrow(&app_guids, apps.into_iter().map(|a| a.guid));
    }
    let f = BindingFilter {
        guids: filter(&q, "guids"),
        names: filter(&q, "names"),
        instance_guids,
        app_guids,
        kind,
        scope: perms.space_scope(),
    };
    let req = PageReq::from_query(&q)?;
    let (total, rows) = ctx
        .store
        .bindings_page(&f, req.per_page, req.offset())
        .await?;
    let items = rows.iter().map(|b| present::binding(&base, b)).collect();
    let mut page = page_of(
        &base,
        "/v3/service_credential_bindings",
        &q,
        req,
        total,
        items,
    );
    let includes: Vec<&str> = q
        .get("include")
        .map(|i| i.split(',').collect())
        .unwrap_or_default();
    if !includes.is_empty() {
        let mut inc = json!({});
        if includes.contains(&"app") {
            let mut apps = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for b in &rows {
                if let Some(a) = b.app_guid.as_deref() {
                    if !seen.contains(&a) {
                        seen.push(a);
                        if let Ok(app) = ctx.store.app(a).await {
                            apps.push(super::apps::present(&base, &app));
                        }
                    }
                }
            }
            inc["apps"] = json!(apps);
        }
        if includes.contains(&"service_instance") {
            let mut sis = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for b in &rows {
                if !seen.contains(&b.instance_guid.as_str()) {
                    seen.push(&b.instance_guid);
                    if let Ok(i) = ctx.store.instance(&b.instance_guid).await {
                        sis.push(present::instance(&base, &i));
                    }
                }
            }
            inc["service_instances"] = json!(sis);
        }
        page["included"] = inc;
    }
    Ok(Json(page))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present::binding(
        &base,
        &ctx.store.binding(&guid).await?,
    )))
}

async fn details(State(ctx): State<Ctx>, Path(guid): Path<String>) -> ApiResult<Json<Value>> {
    let b = ctx.store.binding(&guid).await?;
    if b.op_state != crate::store::OP_SUCCEEDED {
        return Err(ApiError::not_found("Service credential binding"));
    }
    Ok(Json(present::binding_details(&b)))
}

async fn parameters(State(ctx): State<Ctx>, Path(guid): Path<String>) -> ApiResult<Json<Value>> {
    let b = ctx.store.binding(&guid).await?;
    Ok(Json(
        serde_json::from_str::<Value>(&b.parameters).unwrap_or_else(|_| json!({})),
    ))
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let b = ctx.store.binding(&guid).await?;
    let i = ctx.store.instance(&b.instance_guid).await?;
    // Supporters may unbind apps (the route's rule); keys are developers'.
    if b.kind == "key" {
        crate::authz::check_target(
            &ctx,
            &perms,
            Target::ServiceBinding,
            Action::WriteSpace,
            &b.guid,
        )
        .await?;
    }
    if b.op_state == crate::store::OP_IN_PROGRESS || b.op_state == crate::store::OP_INITIAL {
        return Err(ApiError::Unprocessable(
            "There is an operation in progress for the service binding.".into(),
        ));
    }
    let event = if b.kind == "app" {
        "audit.service_binding.delete"
    } else {
        "audit.service_key.delete"
    };
    audit(&ctx, &actor, event, &b, &i).await;
    if !i.is_managed() {
        ctx.store.delete_binding(&b.guid).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let job = services::start(&ctx, Work::Unbind, &b.guid, identity(&perms)).await?;
    Ok(accepted(&base, &job))
}
