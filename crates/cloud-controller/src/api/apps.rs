//! `/v3/apps`: CRUD, lifecycle actions, environment, current droplet.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    check_name, filter, input, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query, ToOne,
};
use crate::authz::{Action, Perms, Scope};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    self, App, AppFilter, AppState, DropletFilter, DropletState, PackageFilter, RouteFilter,
    SpaceScope,
};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/apps", get(list).post(create))
        .route("/v3/apps/{guid}", get(show).patch(update).delete(delete))
        .route("/v3/apps/{guid}/actions/start", post(start))
        .route("/v3/apps/{guid}/actions/stop", post(stop))
        .route("/v3/apps/{guid}/actions/restart", post(restart))
        .route("/v3/apps/{guid}/env", get(env))
        .route(
            "/v3/apps/{guid}/environment_variables",
            get(env_vars).patch(patch_env_vars),
        )
        .route("/v3/apps/{guid}/packages", get(packages))
        .route("/v3/apps/{guid}/droplets", get(droplets))
        .route("/v3/apps/{guid}/droplets/current", get(current_droplet))
        .route(
            "/v3/apps/{guid}/relationships/current_droplet",
            get(current_droplet_rel).patch(set_current_droplet),
        )
        .route("/v3/apps/{guid}/routes", get(app_routes))
}

pub fn present(base: &BaseUrl, app: &App) -> Value {
    let p = format!("/v3/apps/{}", app.guid);
    let buildpacks = app.buildpacks();
    json!({
        "guid": app.guid,
        "name": app.name,
        "state": app.state,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
        "lifecycle": {"type": "buildpack", "data": {"buildpacks": buildpacks, "stack": app.stack}},
        "relationships": {"space": rel(&app.space_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&p),
            "space": base.link(&format!("/v3/spaces/{}", app.space_guid)),
            "processes": base.link(&format!("{p}/processes")),
            "packages": base.link(&format!("{p}/packages")),
            "environment_variables": base.link(&format!("{p}/environment_variables")),
            "current_droplet": base.link(&format!("{p}/droplets/current")),
            "droplets": base.link(&format!("{p}/droplets")),
            "tasks": base.link(&format!("{p}/tasks")),
            "start": base.action(&format!("{p}/actions/start"), "POST"),
            "stop": base.action(&format!("{p}/actions/stop"), "POST"),
            "revisions": base.link(&format!("{p}/revisions")),
            "deployed_revisions": base.link(&format!("{p}/revisions/deployed")),
            "features": base.link(&format!("{p}/features")),
        },
    })
}

#[derive(Debug, Deserialize)]
struct SpaceRel {
    space: ToOne,
}

#[derive(Debug, Deserialize, Default)]
struct LifecycleData {
    #[serde(default)]
    buildpacks: Option<Vec<String>>,
    #[serde(default)]
    stack: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Lifecycle {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    data: Option<LifecycleData>,
}

#[derive(Debug, Deserialize)]
struct CreateApp {
    name: String,
    relationships: SpaceRel,
    #[serde(default)]
    lifecycle: Option<Lifecycle>,
    #[serde(default)]
    environment_variables: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct UpdateApp {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    lifecycle: Option<Lifecycle>,
}

fn check_lifecycle(l: &Lifecycle) -> ApiResult<()> {
    match l.kind.as_deref() {
        None | Some("buildpack") => Ok(()),
        Some(other) => Err(ApiError::Unprocessable(format!(
            "Lifecycle type '{other}' is not supported"
        ))),
    }
}

/// The buildpacks of a lifecycle, checked, as stored (comma-separated;
/// `None` for none or `default`).
fn buildpack_list(list: &[String]) -> ApiResult<Option<String>> {
    let names: Vec<&str> = list
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty() && *b != "default" && *b != "null")
        .collect();
    if names.len() > 16 {
        return Err(ApiError::Unprocessable(
            "An app may name at most 16 buildpacks".into(),
        ));
    }
    for n in &names {
        let ok = n.len() <= 255
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(ApiError::Unprocessable(format!(
                "Buildpack \"{n}\" must be an existing admin buildpack or a built-in one (git URLs are not supported)"
            )));
        }
    }
    Ok((!names.is_empty()).then(|| names.join(",")))
}

/// Only apps in spaces the caller may read; filtered, counted and paged
/// in SQL.
async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    input::known_params(
        &q,
        &[
            "page",
            "per_page",
            "order_by",
            "names",
            "guids",
            "space_guids",
        ],
    )?;
    let page = PageReq::from_query(&q)?;
    let f = AppFilter {
        names: filter(&q, "names"),
        space_guids: filter(&q, "space_guids"),
        guids: filter(&q, "guids"),
        scope: perms.space_scope(),
        order_by: input::order_by(&q, &["created_at", "updated_at", "name"])?,
    };
    let (total, apps) = ctx
        .store
        .apps_page(&f, page.per_page, page.offset())
        .await?;
    let items = apps.iter().map(|a| present(&base, a)).collect();
    Ok(Json(page_of(&base, "/v3/apps", &q, page, total, items)))
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateApp = parse_json(&body)?;
    check_name(&req.name)?;
    let space_guid = req.relationships.space.data.guid;
    let space = crate::authz::require_in_space(
        &ctx,
        &perms,
        Action::WriteSpace,
        &space_guid,
        crate::authz::INVALID_SPACE,
    )
    .await?;
    crate::quota::check_new_app(&ctx, &space).await?;
    let (mut buildpack, mut stack) = (None, "host".to_string());
    if let Some(l) = &req.lifecycle {
        check_lifecycle(l)?;
        if let Some(d) = &l.data {
            if let Some(b) = &d.buildpacks {
                buildpack = buildpack_list(b)?;
            }
            if let Some(s) = &d.stack {
                super::stacks::check(s)?;
                stack = s.clone();
            }
        }
    }
    let env = req.environment_variables.unwrap_or_default();
    input::check_env(&env)?;
    let env = Value::Object(env).to_string();
    let app = ctx
        .store
        .create_app_sized(
            req.name.trim(),
            &space_guid,
            buildpack.as_deref(),
            &stack,
            &env,
            ctx.cfg.default_app_memory_mb,
        )
        .await?;
    ctx.audit_app(
        &actor,
        "audit.app.create",
        &app,
        json!({"request": {"name": app.name}}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(present(&base, &app))).into_response())
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.app(&guid).await?)))
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: UpdateApp = parse_json(&body)?;
    if let Some(name) = &req.name {
        check_name(name)?;
    }
    let mut buildpack = None;
    let mut stack = None;
    if let Some(l) = &req.lifecycle {
        check_lifecycle(l)?;
        if let Some(d) = &l.data {
            if let Some(b) = &d.buildpacks {
                buildpack = Some(buildpack_list(b)?);
            }
            if let Some(s) = &d.stack {
                super::stacks::check(s)?;
                stack = Some(s.clone());
            }
        }
    }
    let app = ctx
        .store
        .modify_app(&guid, |app| {
            if let Some(name) = &req.name {
                app.name = name.trim().to_string();
            }
            if let Some(b) = &buildpack {
                app.buildpack = b.clone();
            }
            if let Some(s) = &stack {
                app.stack = s.clone();
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    ctx.audit_app(
        &actor,
        "audit.app.update",
        &app,
        json!({"request": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)}),
    )
    .await;
    Ok(Json(present(&base, &app)))
}

async fn delete(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let app = ctx.store.app(&guid).await?;
    let routes = ctx.store.app_routes(&guid).await?;
    crate::deployments::abandon(&ctx, &guid).await?;
    ctx.stop_all(&guid, None).await;
    crate::tasks::cancel_all(&ctx, &guid).await?;
    crate::services::unbind_app(&ctx, &guid).await?;
    ctx.store.delete_app(&guid).await?;
    crate::blob_gc::remove_app_cache(&ctx, &guid).await;
    ctx.audit_app(
        &actor,
        "audit.app.delete-request",
        &app,
        json!({"recursive": true}),
    )
    .await;
    ctx.logs.forget(&guid);
    tracing::info!(app_id = %guid, routes = routes.len(), "app deleted");
    super::jobs::accepted(&ctx, &base, "app.delete").await
}

/// Puts an app into STARTED with a fresh version and starts every index
/// (a deployment in flight ends where it is).
pub(crate) async fn start_app(ctx: &Ctx, app: App, restart: bool) -> ApiResult<App> {
    let no_droplet =
        || ApiError::Unprocessable("Assign a droplet before starting this app.".into());
    if app.current_droplet_guid.is_none() {
        return Err(no_droplet());
    }
    if app.started() && !restart {
        return Ok(app);
    }
    if !app.started() {
        crate::quota::check_start(ctx, &app).await?;
    }
    // Decided on the row as written (another request may have started it
    // in between): the version it ran, if it was started.
    let mut old_version = None;
    let mut started_meanwhile = false;
    let app = ctx
        .store
        .modify_app(&app.guid, |a| {
            if a.current_droplet_guid.is_none() {
                return Err(no_droplet());
            }
            old_version = a.started().then(|| a.version.clone());
            started_meanwhile = a.started() && !restart;
            if !started_meanwhile {
                a.state = AppState::Started;
                a.version = store::new_guid();
                a.state_changed_at = store::now();
            }
            Ok(())
        })
        .await?;
    if started_meanwhile {
        return Ok(app);
    }
    if let Some(old_version) = old_version {
        crate::deployments::abandon(ctx, &app.guid).await?;
        ctx.stop_all(&app.guid, Some(&old_version)).await;
    }
    crate::revisions::record(ctx, &app).await?;
    ctx.api_log(
        &app.guid,
        format!(
            "{} app with guid {}",
            if restart { "Restarting" } else { "Starting" },
            app.guid
        ),
    )
    .await;
    ctx.start_all(&app).await?;
    Ok(app)
}

async fn start(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&guid).await?;
    let was_started = app.started();
    let app = start_app(&ctx, app, false).await?;
    if !was_started {
        ctx.audit_app(&actor, "audit.app.start", &app, Value::Null)
            .await;
    }
    Ok(Json(present(&base, &app)))
}

async fn restart(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = start_app(&ctx, ctx.store.app(&guid).await?, true).await?;
    ctx.audit_app(&actor, "audit.app.restart", &app, Value::Null)
        .await;
    Ok(Json(present(&base, &app)))
}

async fn stop(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut app = ctx.store.app(&guid).await?;
    if app.started() {
        app = ctx
            .store
            .modify_app(&guid, |a| {
                a.state = AppState::Stopped;
                a.state_changed_at = store::now();
                Ok::<_, ApiError>(())
            })
            .await?;
        ctx.api_log(&app.guid, format!("Stopping app with guid {}", app.guid))
            .await;
        crate::deployments::abandon(&ctx, &app.guid).await?;
        ctx.stop_all(&app.guid, None).await;
        ctx.audit_app(&actor, "audit.app.stop", &app, Value::Null)
            .await;
    }
    Ok(Json(present(&base, &app)))
}

/// `GET /v3/apps/:guid/env`; a space supporter gets the system env
/// (service credentials) hidden, as in CF.
async fn env(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&guid).await?;
    let process = ctx.store.web_process(&guid).await?;
    let space = ctx.store.space(&app.space_guid).await?;
    let org = ctx.store.org(&space.organization_guid).await?;
    let uris = ctx.app_uris(&guid).await?;
    let system_env = if perms.may(
        Action::ReadSystemEnv,
        Scope::Space {
            org: &org.guid,
            space: &space.guid,
        },
    ) {
        json!({"VCAP_SERVICES": ctx.vcap_services(&app.guid).await?})
    } else {
        json!({"redacted_message": "[PRIVATE DATA HIDDEN]"})
    };
    Ok(Json(json!({
        "staging_env_json": {},
        "running_env_json": {},
        "environment_variables": app.env_map(),
        "system_env_json": system_env,
        "application_env_json": {"VCAP_APPLICATION": {
            "application_id": app.guid, "application_name": app.name, "application_uris": uris, "uris": uris,
            "name": app.name, "version": app.version, "application_version": app.version,
            "space_id": space.guid, "space_name": space.name, "organization_id": org.guid, "organization_name": org.name,
            "limits": {"mem": process.memory_in_mb, "disk": process.disk_in_mb, "fds": 16384},
        }},
    })))
}

fn env_body(base: &BaseUrl, app: &App) -> Value {
    json!({
        "var": app.env_map(),
        "links": {
            "self": base.link(&format!("/v3/apps/{}/environment_variables", app.guid)),
            "app": base.link(&format!("/v3/apps/{}", app.guid)),
        },
    })
}

async fn env_vars(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(env_body(&base, &ctx.store.app(&guid).await?)))
}

#[derive(Debug, Deserialize)]
struct EnvPatch {
    var: Map<String, Value>,
}

async fn patch_env_vars(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: EnvPatch = parse_json(&body)?;
    if req.var.keys().any(|k| k.is_empty()) {
        return Err(ApiError::Unprocessable(
            "Environment variable names can't be blank".into(),
        ));
    }
    let changed: Vec<String> = req.var.keys().cloned().collect();
    // Applied to the app as stored when written (merged with whatever
    // another request set meanwhile).
    let app = ctx
        .store
        .modify_app(&guid, |app| {
            let mut env = app.env_map();
            for (k, v) in &req.var {
                match v {
                    Value::Null => {
                        env.remove(k);
                    }
                    other => {
                        env.insert(k.clone(), other.clone());
                    }
                }
            }
            input::check_env(&env)?;
            app.env = Value::Object(env).to_string();
            Ok::<_, ApiError>(())
        })
        .await?;
    ctx.audit_app(
        &actor,
        "audit.app.update",
        &app,
        json!({"request": {"environment_variables": changed}}),
    )
    .await;
    Ok(Json(env_body(&base, &app)))
}

async fn packages(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    ctx.store.app(&guid).await?;
    // The policy checked the app: no scope.
    let f = PackageFilter {
        app_guids: Some(vec![guid.clone()]),
        scope: SpaceScope::All,
    };
    let (total, packages) = ctx.store.packages_page(&f, page.window()).await?;
    let items = packages
        .iter()
        .map(|p| super::packages::present(&base, p))
        .collect();
    Ok(Json(page_of(
        &base,
        &format!("/v3/apps/{guid}/packages"),
        &q,
        page,
        total,
        items,
    )))
}

async fn droplets(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    ctx.store.app(&guid).await?;
    let f = DropletFilter {
        app: guid.clone(),
        states: filter(&q, "states"),
    };
    let (total, droplets) = ctx.store.droplets_page(&f, page.window()).await?;
    let items = droplets
        .iter()
        .map(|d| super::droplets::present(&base, d))
        .collect();
    Ok(Json(page_of(
        &base,
        &format!("/v3/apps/{guid}/droplets"),
        &q,
        page,
        total,
        items,
    )))
}

async fn current_droplet(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&guid).await?;
    let dg = app
        .current_droplet_guid
        .ok_or_else(|| ApiError::not_found("Droplet"))?;
    Ok(Json(super::droplets::present(
        &base,
        &ctx.store.droplet(&dg).await?,
    )))
}

fn droplet_rel(base: &BaseUrl, app: &App) -> Value {
    json!({
        "data": app.current_droplet_guid.as_ref().map(|g| json!({"guid": g})),
        "links": {
            "self": base.link(&format!("/v3/apps/{}/relationships/current_droplet", app.guid)),
            "related": base.link(&format!("/v3/apps/{}/droplets/current", app.guid)),
        },
    })
}

async fn current_droplet_rel(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(droplet_rel(&base, &ctx.store.app(&guid).await?)))
}

async fn set_current_droplet(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ToOne = parse_json(&body)?;
    let app = ctx.store.app(&guid).await?;
    let droplet = match ctx.store.droplet(&req.data.guid).await {
        Ok(d) if d.app_guid == app.guid => d,
        _ => return Err(ApiError::Unprocessable(
            "Unable to assign current droplet. Ensure the droplet exists and belongs to this app."
                .into(),
        )),
    };
    if droplet.state != DropletState::Staged {
        return Err(ApiError::Unprocessable(
            "Unable to assign current droplet: the droplet is not STAGED.".into(),
        ));
    }
    let app = ctx
        .store
        .modify_app(&app.guid, |a| {
            a.current_droplet_guid = Some(droplet.guid.clone());
            Ok::<_, ApiError>(())
        })
        .await?;
    ctx.audit_app(
        &actor,
        "audit.app.droplet.mapped",
        &app,
        json!({"request": {"droplet_guid": droplet.guid}}),
    )
    .await;
    Ok(Json(droplet_rel(&base, &app)))
}

async fn app_routes(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    ctx.store.app(&guid).await?;
    // The routes with a destination of the app; the policy checked the
    // app: no scope.
    let f = RouteFilter {
        hosts: None,
        paths: None,
        domain_guids: None,
        space_guids: None,
        organization_guids: None,
        app_guids: Some(vec![guid.clone()]),
        scope: SpaceScope::All,
    };
    let (total, routes) = ctx.store.routes_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(routes.len());
    for r in &routes {
        items.push(super::routes::present(&ctx, &base, r).await?);
    }
    Ok(Json(page_of(
        &base,
        &format!("/v3/apps/{guid}/routes"),
        &q,
        page,
        total,
        items,
    )))
}
