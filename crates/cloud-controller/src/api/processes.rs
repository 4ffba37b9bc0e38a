//! `/v3/processes` and `/v3/apps/:guid/processes`: show, update, scale, stats.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use proto::StopRequest;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query};
use crate::authz::Perms;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, Process, ProcessFilter, SpaceScope};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/processes", get(list))
        .route("/v3/processes/{guid}", get(show).patch(update))
        .route("/v3/processes/{guid}/actions/scale", post(scale))
        .route("/v3/processes/{guid}/stats", get(stats))
        .route("/v3/apps/{guid}/processes", get(list_for_app))
        .route(
            "/v3/apps/{guid}/processes/{kind}",
            get(show_for_app).patch(update_for_app),
        )
        .route(
            "/v3/apps/{guid}/processes/{kind}/actions/scale",
            post(scale_for_app),
        )
        .route("/v3/apps/{guid}/processes/{kind}/stats", get(stats_for_app))
}

async fn present(ctx: &Ctx, base: &BaseUrl, p: &Process) -> ApiResult<Value> {
    let app = ctx.store.app(&p.app_guid).await?;
    let mut command = p.command.clone();
    if command.is_none() {
        if let Some(dg) = &app.current_droplet_guid {
            command = ctx
                .store
                .droplet(dg)
                .await
                .ok()
                .and_then(|d| d.command_for(&p.kind));
        }
    }
    let path = format!("/v3/processes/{}", p.guid);
    Ok(json!({
        "guid": p.guid,
        "type": p.kind,
        "command": command,
        "instances": p.instances,
        "memory_in_mb": p.memory_in_mb,
        "disk_in_mb": p.disk_in_mb,
        "log_rate_limit_in_bytes_per_second": p.log_rate_limit,
        "health_check": {"type": p.health_check_type, "data": {
            "timeout": p.health_check_timeout, "invocation_timeout": p.health_check_invocation_timeout,
            "interval": p.health_check_interval, "endpoint": p.health_check_endpoint,
        }},
        "readiness_health_check": {"type": p.readiness_type, "data": {
            "invocation_timeout": p.readiness_invocation_timeout, "interval": p.readiness_interval,
            "endpoint": p.readiness_endpoint,
        }},
        "relationships": {"app": rel(&p.app_guid), "revision": {"data": null}},
        "metadata": metadata(),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "links": {
            "self": base.link(&path),
            "scale": base.action(&format!("{path}/actions/scale"), "POST"),
            "app": base.link(&format!("/v3/apps/{}", p.app_guid)),
            "space": base.link(&format!("/v3/spaces/{}", app.space_guid)),
            "stats": base.link(&format!("{path}/stats")),
        },
    }))
}

async fn by_app(ctx: &Ctx, app_guid: &str, kind: &str) -> ApiResult<Process> {
    ctx.store.app(app_guid).await?;
    ctx.store
        .processes_of(app_guid)
        .await?
        .into_iter()
        .find(|p| p.kind == kind)
        .ok_or_else(|| ApiError::not_found("Process"))
}

/// `GET /v3/processes` (filter `app_guids`): the processes of the apps in
/// readable spaces, by app (in the apps' creation order), then oldest
/// first, paged in SQL.
async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = ProcessFilter {
        app_guids: filter(&q, "app_guids"),
        scope: perms.space_scope(),
    };
    Ok(Json(
        page_response(&ctx, &base, &q, page, &f, "/v3/processes").await?,
    ))
}

/// A page of the processes `f` selects (paged in SQL), listed at `path`.
async fn page_response(
    ctx: &Ctx,
    base: &BaseUrl,
    q: &Query,
    page: PageReq,
    f: &ProcessFilter,
    path: &str,
) -> ApiResult<Value> {
    let (total, procs) = ctx.store.processes_page(f, page.window()).await?;
    let mut items = Vec::with_capacity(procs.len());
    for p in &procs {
        items.push(present(ctx, base, p).await?);
    }
    Ok(page_of(base, path, q, page, total, items))
}

/// `GET /v3/apps/:guid/processes`: the app's processes, oldest first,
/// paged in SQL (the policy checked the app: no scope).
async fn list_for_app(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    ctx.store.app(&guid).await?;
    let f = ProcessFilter {
        app_guids: Some(vec![guid.clone()]),
        scope: SpaceScope::All,
    };
    let path = format!("/v3/apps/{guid}/processes");
    Ok(Json(page_response(&ctx, &base, &q, page, &f, &path).await?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = ctx.store.process(&guid).await?;
    Ok(Json(present(&ctx, &base, &p).await?))
}

async fn show_for_app(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path((guid, kind)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let p = by_app(&ctx, &guid, &kind).await?;
    Ok(Json(present(&ctx, &base, &p).await?))
}

/// CF's `maximum_health_check_timeout` (the start timeout, `-t`).
const MAX_HEALTH_CHECK_TIMEOUT: i64 = 180;

/// `port`, `process` or `http` (and `none`, CF's old word for `process`).
fn check_type(t: &Value, what: &str) -> ApiResult<String> {
    match t.as_str() {
        Some(t @ ("port" | "process" | "http")) => Ok(t.to_string()),
        Some("none") => Ok("process".into()),
        _ => Err(ApiError::Unprocessable(format!(
            "{what} must be \"port\", \"process\", or \"http\""
        ))),
    }
}

/// A positive number of seconds, or null (the default).
fn seconds(v: &Value, what: &str) -> ApiResult<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        t => {
            t.as_i64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                ApiError::Unprocessable(format!("{what} must be a positive integer"))
            })
        }
    }
}

/// The changes of a process update (`PATCH /v3/processes/:guid`) to `p`.
fn apply_update(p: &mut Process, v: &Value) -> ApiResult<()> {
    if let Some(c) = v.get("command") {
        p.command = match c {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(ApiError::Unprocessable("Command must be a string".into())),
        };
    }
    if let Some(hc) = v.get("health_check") {
        if let Some(t) = hc.get("type") {
            p.health_check_type = check_type(t, "Health check type")?;
        }
        if let Some(data) = hc.get("data") {
            if let Some(t) = data.get("timeout") {
                p.health_check_timeout = seconds(t, "Health check timeout")?;
                if p.health_check_timeout
                    .is_some_and(|t| t > MAX_HEALTH_CHECK_TIMEOUT)
                {
                    return Err(ApiError::Unprocessable(format!(
                        "Health check timeout must be less than or equal to {MAX_HEALTH_CHECK_TIMEOUT}"
                    )));
                }
            }
            if let Some(t) = data.get("invocation_timeout") {
                p.health_check_invocation_timeout = seconds(t, "Health check invocation timeout")?;
            }
            if let Some(t) = data.get("interval") {
                p.health_check_interval = seconds(t, "Health check interval")?;
            }
            if let Some(e) = data.get("endpoint") {
                p.health_check_endpoint = e.as_str().map(str::to_string);
            }
        }
        if p.health_check_type != "http" {
            p.health_check_endpoint = None;
        }
    }
    if let Some(rc) = v.get("readiness_health_check") {
        if let Some(t) = rc.get("type") {
            p.readiness_type = check_type(t, "Readiness health check type")?;
        }
        if let Some(data) = rc.get("data") {
            if let Some(t) = data.get("invocation_timeout") {
                p.readiness_invocation_timeout =
                    seconds(t, "Readiness health check invocation timeout")?;
            }
            if let Some(t) = data.get("interval") {
                p.readiness_interval = seconds(t, "Readiness health check interval")?;
            }
            if let Some(e) = data.get("endpoint") {
                p.readiness_endpoint = e.as_str().map(str::to_string);
            }
        }
        if p.readiness_type != "http" {
            p.readiness_endpoint = None;
        }
    }
    Ok(())
}

pub(super) async fn do_update(
    ctx: &Ctx,
    actor: &Actor,
    p: Process,
    body: &Bytes,
) -> ApiResult<Process> {
    let v: Value = parse_json(body)?;
    // Applied to the process as stored when written (another request's
    // change in between is kept: `Store::modify_process`).
    let p = ctx
        .store
        .modify_process(&p.guid, |p| apply_update(p, &v))
        .await?;
    let app = ctx.store.app(&p.app_guid).await?;
    ctx.audit_app(
        actor,
        "audit.app.process.update",
        &app,
        json!({"request": v}),
    )
    .await;
    Ok(p)
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let p = do_update(&ctx, &actor, ctx.store.process(&guid).await?, &body).await?;
    Ok(Json(present(&ctx, &base, &p).await?))
}

async fn update_for_app(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path((guid, kind)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let p = do_update(&ctx, &actor, by_app(&ctx, &guid, &kind).await?, &body).await?;
    Ok(Json(present(&ctx, &base, &p).await?))
}

#[derive(Debug, Deserialize)]
struct Scale {
    #[serde(default)]
    instances: Option<i64>,
    #[serde(default)]
    memory_in_mb: Option<i64>,
    #[serde(default)]
    disk_in_mb: Option<i64>,
    #[serde(default)]
    log_rate_limit_in_bytes_per_second: Option<i64>,
}

pub(super) async fn do_scale(
    ctx: &Ctx,
    actor: &Actor,
    mut p: Process,
    body: &Bytes,
) -> ApiResult<Process> {
    let req: Scale = parse_json(body)?;
    if p.is_web() && ctx.store.active_deployment(&p.app_guid).await?.is_some() {
        return Err(ApiError::Unprocessable(
            "Cannot scale this process while a deployment is in flight.".into(),
        ));
    }
    if req.instances.is_some_and(|n| !(0..=1000).contains(&n)) {
        return Err(ApiError::Unprocessable(
            "Instances must be between 0 and 1000".into(),
        ));
    }
    if req.memory_in_mb.is_some_and(|n| n < 1) || req.disk_in_mb.is_some_and(|n| n < 1) {
        return Err(ApiError::Unprocessable(
            "Memory and disk must be greater than 0MB".into(),
        ));
    }
    if req
        .log_rate_limit_in_bytes_per_second
        .is_some_and(|n| n < -1)
    {
        return Err(ApiError::Unprocessable(
            "Log rate limit must be greater than or equal to -1".into(),
        ));
    }
    let apply = |p: &mut Process| {
        if let Some(l) = req.log_rate_limit_in_bytes_per_second {
            p.log_rate_limit = l;
        }
        if let Some(n) = req.instances {
            p.instances = n;
        }
        if let Some(m) = req.memory_in_mb {
            p.memory_in_mb = m;
        }
        if let Some(d) = req.disk_in_mb {
            p.disk_in_mb = d;
        }
    };
    let old = p.instances;
    apply(&mut p);
    let app = ctx.store.app(&p.app_guid).await?;
    if req.memory_in_mb.is_some() || req.disk_in_mb.is_some() {
        refuse_if_never_fits(ctx, &app, &p).await?;
    }
    // Nothing changes when the quota says no.
    crate::quota::check_process(ctx, &app, &p, app.started()).await?;
    // Applied to the process as stored when written (a concurrent update
    // of its other fields is kept).
    let p = ctx
        .store
        .modify_process(&p.guid, |p| {
            apply(p);
            Ok::<_, ApiError>(())
        })
        .await?;
    let app = ctx
        .store
        .modify_app(&app.guid, |a| {
            a.state_changed_at = store::now();
            Ok::<_, ApiError>(())
        })
        .await?;
    ctx.api_log(
        &app.guid,
        format!(
            "Scaling app with guid {} to {} instance(s), {} MB memory, {} MB disk",
            app.guid, p.instances, p.memory_in_mb, p.disk_in_mb
        ),
    )
    .await;
    if app.started() && p.instances != old {
        let (old, new) = (
            u32::try_from(old).unwrap_or(0),
            u32::try_from(p.instances).unwrap_or(0),
        );
        if new > old {
            let indices: Vec<u32> = (old..new).collect();
            ctx.start_indices(&app, &p, &indices).await?;
        } else {
            ctx.stop_instances(StopRequest {
                app_id: p.bus_id().to_string(),
                indices: Some((new..old).collect()),
                ..Default::default()
            })
            .await;
        }
    }
    let data = json!({"request": {"instances": req.instances, "memory_in_mb": req.memory_in_mb, "disk_in_mb": req.disk_in_mb, "log_rate_limit_in_bytes_per_second": req.log_rate_limit_in_bytes_per_second}, "process_type": p.kind});
    ctx.audit_app(actor, "audit.app.process.scale", &app, data)
        .await;
    Ok(p)
}

/// A size no DEA could ever hold is refused at once (422), naming what is
/// lacking as CF's placement does ("insufficient resources: memory").
async fn refuse_if_never_fits(ctx: &Ctx, app: &store::App, p: &Process) -> ApiResult<()> {
    let stack = match app.current_droplet_guid.as_deref() {
        Some(d) => ctx.store.droplet(d).await.ok().map(|d| d.stack),
        None => None,
    };
    let largest = match ctx.placement.lock() {
        Ok(mut t) => t.largest(stack.as_deref(), std::time::Instant::now()),
        Err(_) => None,
    };
    let Some((mem, disk)) = largest else {
        return Ok(());
    };
    let (memory_mb, disk_mb) = (
        u64::try_from(p.memory_in_mb).unwrap_or(0),
        u64::try_from(p.disk_in_mb).unwrap_or(0),
    );
    let lacking = if memory_mb > mem {
        Some(("memory", memory_mb, mem))
    } else if disk_mb > disk {
        Some(("disk", disk_mb, disk))
    } else {
        None
    };
    match lacking {
        Some((what, asked, most)) => Err(ApiError::Unprocessable(format!(
            "insufficient resources: {what}: an instance of {asked} MB of {what} fits on no DEA (the largest has {most} MB)"
        ))),
        None => Ok(()),
    }
}

async fn scale(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let p = do_scale(&ctx, &actor, ctx.store.process(&guid).await?, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(present(&ctx, &base, &p).await?)).into_response())
}

async fn scale_for_app(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path((guid, kind)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let p = do_scale(&ctx, &actor, by_app(&ctx, &guid, &kind).await?, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(present(&ctx, &base, &p).await?)).into_response())
}

async fn stats_of(ctx: &Ctx, p: &Process) -> ApiResult<Json<Value>> {
    let app = ctx.store.app(&p.app_guid).await?;
    Ok(Json(
        json!({"resources": super::presenters::stats::process_stats(ctx, &app, p).await}),
    ))
}

async fn stats(State(ctx): State<Ctx>, Path(guid): Path<String>) -> ApiResult<Json<Value>> {
    stats_of(&ctx, &ctx.store.process(&guid).await?).await
}

async fn stats_for_app(
    State(ctx): State<Ctx>,
    Path((guid, kind)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    stats_of(&ctx, &by_app(&ctx, &guid, &kind).await?).await
}
