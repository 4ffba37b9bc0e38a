//! `/v3/tasks` and `/v3/apps/:guid/tasks`: create (run), list, show,
//! cancel (docs/architecture.md §5.9). Placing and ending tasks is
//! `crate::tasks`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, input, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query};
use crate::authz::{Action, Perms, Scope};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{DropletState, NewTask, Target, Task, TaskFilter};

/// CF's bound on a task's command.
const MAX_COMMAND: usize = 4096;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/tasks", get(list))
        .route("/v3/tasks/{guid}", get(show))
        .route("/v3/tasks/{guid}/actions/cancel", post(cancel))
        .route("/v3/tasks/{guid}/cancel", put(cancel))
        .route("/v3/apps/{guid}/tasks", get(list_for_app).post(create))
}

/// A task as CF shows it; `command` only to those who may see it (CF: admins,
/// read-only admins and space developers: the holders of `ReadSystemEnv`).
fn present(base: &BaseUrl, t: &Task, show_command: bool) -> Value {
    let path = format!("/v3/tasks/{}", t.guid);
    json!({
        "guid": t.guid,
        "sequence_id": t.sequence_id,
        "name": t.name,
        "command": if show_command { Value::String(t.command.clone()) } else { Value::Null },
        "user": null,
        "state": t.state,
        "memory_in_mb": t.memory_in_mb,
        "disk_in_mb": t.disk_in_mb,
        "log_rate_limit_in_bytes_per_second": -1,
        "result": {"failure_reason": t.failure_reason},
        "droplet_guid": t.droplet_guid,
        "relationships": {"app": rel(&t.app_guid)},
        "metadata": metadata(),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "links": {
            "self": base.link(&path),
            "app": base.link(&format!("/v3/apps/{}", t.app_guid)),
            "cancel": base.action(&format!("{path}/actions/cancel"), "POST"),
            "droplet": base.link(&format!("/v3/droplets/{}", t.droplet_guid)),
        },
    })
}

/// Whether the caller may see the commands of app `app_guid`'s tasks.
async fn sees_command(ctx: &Ctx, perms: &Perms, app_guid: &str) -> ApiResult<bool> {
    Ok(match ctx.store.locate(Target::App, app_guid).await? {
        Some(at) => perms.may(
            Action::ReadSystemEnv,
            Scope::Space {
                org: &at.org,
                space: &at.space,
            },
        ),
        None => false,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Create {
    command: Option<String>,
    name: Option<String>,
    memory_in_mb: Option<i64>,
    disk_in_mb: Option<i64>,
    droplet_guid: Option<String>,
    template: Option<Template>,
}

#[derive(Debug, Default, Deserialize)]
struct Template {
    process: TemplateProcess,
}

#[derive(Debug, Default, Deserialize)]
struct TemplateProcess {
    guid: String,
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(app_guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Create = parse_json(&body)?;
    let app = ctx.store.app(&app_guid).await?;
    let droplet_guid = match req
        .droplet_guid
        .as_deref()
        .or(app.current_droplet_guid.as_deref())
    {
        Some(g) => g.to_string(),
        None => {
            return Err(ApiError::Unprocessable(
                "Task must have a droplet. Specify droplet or assign current droplet to app."
                    .into(),
            ))
        }
    };
    let droplet = ctx
        .store
        .droplet(&droplet_guid)
        .await
        .ok()
        .filter(|d| d.app_guid == app.guid && d.state == DropletState::Staged)
        .ok_or_else(|| {
            ApiError::Unprocessable("Droplet must be a staged droplet of the app.".into())
        })?;
    // The command: given, or the template process's (CF's `cf run-task`
    // without `--command` uses the `task` process).
    let command = match (&req.command, &req.template) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => {
            let p = ctx
                .store
                .process(&t.process.guid)
                .await
                .ok()
                .filter(|p| p.app_guid == app.guid)
                .ok_or_else(|| {
                    ApiError::Unprocessable("Template process must be a process of the app.".into())
                })?;
            p.command
                .clone()
                .filter(|c| !c.is_empty())
                .or_else(|| droplet.command_for(&p.kind))
                .unwrap_or_default()
        }
        (None, None) => String::new(),
    };
    if command.trim().is_empty() || command.len() > MAX_COMMAND {
        return Err(ApiError::Unprocessable(format!(
            "Command must be between 1 and {MAX_COMMAND} characters"
        )));
    }
    let name = match req.name {
        Some(n) => {
            input::check_name(&n)?;
            n
        }
        None => uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };
    let memory_in_mb = req
        .memory_in_mb
        .unwrap_or_else(|| i64::try_from(ctx.cfg.default_app_memory_mb).unwrap_or(1024));
    let disk_in_mb = req.disk_in_mb.unwrap_or(1024);
    if memory_in_mb < 1 || disk_in_mb < 1 {
        return Err(ApiError::Unprocessable(
            "Memory and disk must be greater than 0MB".into(),
        ));
    }
    crate::quota::check_task(&ctx, &app, memory_in_mb).await?;
    let task = ctx
        .store
        .create_task(&NewTask {
            app_guid: &app.guid,
            name: &name,
            command: &command,
            memory_in_mb,
            disk_in_mb,
            droplet_guid: &droplet_guid,
        })
        .await?;
    ctx.audit_app(
        &actor,
        "audit.app.task.create",
        &app,
        json!({"task_guid": task.guid, "request": {"name": task.name, "memory_in_mb": memory_in_mb, "disk_in_mb": disk_in_mb}}),
    )
    .await;
    let task = crate::tasks::start(&ctx, &app, &task).await?;
    let shown = present(&base, &task, sees_command(&ctx, &perms, &app.guid).await?);
    Ok((StatusCode::ACCEPTED, Json(shown)).into_response())
}

async fn show(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = ctx.store.task(&guid).await?;
    let sees = sees_command(&ctx, &perms, &t.app_guid).await?;
    Ok(Json(present(&base, &t, sees)))
}

async fn cancel(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let t = ctx.store.task(&guid).await?;
    if t.is_done() {
        return Err(ApiError::Unprocessable(format!(
            "Task state is {} and therefore cannot be canceled",
            t.state
        )));
    }
    crate::tasks::cancel(&ctx, &t).await?;
    if let Ok(app) = ctx.store.app(&t.app_guid).await {
        ctx.audit_app(
            &actor,
            "audit.app.task.cancel",
            &app,
            json!({"task_guid": t.guid, "request": {}}),
        )
        .await;
    }
    let t = ctx.store.task(&guid).await?;
    let sees = sees_command(&ctx, &perms, &t.app_guid).await?;
    Ok((StatusCode::ACCEPTED, Json(present(&base, &t, sees))).into_response())
}

const LIST_PARAMS: &[&str] = &[
    "page",
    "per_page",
    "order_by",
    "names",
    "states",
    "guids",
    "app_guids",
    "space_guids",
    "sequence_ids",
];

async fn list_tasks(
    ctx: &Ctx,
    perms: &Perms,
    base: &BaseUrl,
    q: &Query,
    path: &str,
    app_guid: Option<&str>,
) -> ApiResult<Json<Value>> {
    input::known_params(q, LIST_PARAMS)?;
    let page = PageReq::from_query(q)?;
    let sequence_ids = input::int_filter(q, "sequence_ids")?;
    let f = TaskFilter {
        guids: filter(q, "guids"),
        names: filter(q, "names"),
        states: filter(q, "states"),
        app_guids: match app_guid {
            Some(a) => Some(vec![a.to_string()]),
            None => filter(q, "app_guids"),
        },
        space_guids: filter(q, "space_guids"),
        sequence_ids,
        scope: perms.space_scope(),
    };
    let (total, tasks) = ctx
        .store
        .tasks_page(&f, page.per_page, page.offset())
        .await?;
    let mut sees: HashMap<String, bool> = HashMap::new();
    let mut items = Vec::new();
    for t in &tasks {
        let show = match sees.get(&t.app_guid) {
            Some(s) => *s,
            None => {
                let s = sees_command(ctx, perms, &t.app_guid).await?;
                sees.insert(t.app_guid.clone(), s);
                s
            }
        };
        items.push(present(base, t, show));
    }
    Ok(Json(page_of(base, path, q, page, total, items)))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    list_tasks(&ctx, &perms, &base, &q, "/v3/tasks", None).await
}

async fn list_for_app(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.app(&guid).await?;
    let path = format!("/v3/apps/{guid}/tasks");
    list_tasks(&ctx, &perms, &base, &q, &path, Some(&guid)).await
}
