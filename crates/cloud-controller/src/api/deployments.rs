//! `/v3/deployments` (docs/architecture.md §5.12): CF's rolling and
//! canary deployments, with our failure policy's options
//! (`failure_budget`, `progress_deadline_s`) as an extension.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, input, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query};
use crate::authz::matrix::Action;
use crate::authz::Perms;
use crate::context::{Actor, Ctx};
use crate::deployments::{self, Request, MAX_IN_FLIGHT};
use crate::error::{ApiError, ApiResult};
use crate::store::{Deployment, DeploymentFilter, DropletState};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/deployments", get(list).post(create))
        .route("/v3/deployments/{guid}", get(show))
        .route("/v3/deployments/{guid}/actions/cancel", post(cancel))
        .route("/v3/deployments/{guid}/actions/continue", post(resume))
}

const UNUSABLE_APP: &str =
    "Unable to use app. Ensure that the app exists and you have access to it.";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Guid {
    guid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    instance_weight: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Canary {
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    max_in_flight: Option<i64>,
    canary: Option<Canary>,
    /// Extension: new instances that may crash before it rolls back.
    failure_budget: Option<i64>,
    /// Extension: seconds without a new healthy instance before it rolls
    /// back.
    progress_deadline_s: Option<i64>,
    /// CF's web instance count for the new process; not supported here.
    web_instances: Option<Value>,
    memory_in_mb: Option<Value>,
    disk_in_mb: Option<Value>,
    log_rate_limit_in_bytes_per_second: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppData {
    data: Guid,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Relationships {
    app: AppData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    droplet: Option<Guid>,
    revision: Option<Guid>,
    strategy: Option<String>,
    #[serde(default)]
    options: Options,
    relationships: Relationships,
    #[serde(default)]
    metadata: Option<Value>,
}

fn unprocessable(msg: &str) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

/// Pure: the request's strategy and options, checked with CF's texts.
fn request(c: &Create) -> Result<Request, ApiError> {
    if c.droplet.is_some() && c.revision.is_some() {
        return Err(unprocessable("Cannot set both revision and droplet"));
    }
    let strategy = c.strategy.clone().unwrap_or_else(|| "rolling".into());
    if strategy != "rolling" && strategy != "canary" {
        return Err(unprocessable(
            "Strategy is not a supported value. Valid values are: rolling, canary",
        ));
    }
    let o = &c.options;
    if o.web_instances.is_some()
        || o.memory_in_mb.is_some()
        || o.disk_in_mb.is_some()
        || o.log_rate_limit_in_bytes_per_second.is_some()
    {
        return Err(unprocessable(
            "Options web_instances, memory_in_mb, disk_in_mb and log_rate_limit_in_bytes_per_second are not supported: scale the app first",
        ));
    }
    let max_in_flight = match o.max_in_flight {
        None => 1,
        Some(n) if (1..=i64::from(MAX_IN_FLIGHT)).contains(&n) => {
            u32::try_from(n).unwrap_or(MAX_IN_FLIGHT)
        }
        Some(_) => {
            return Err(unprocessable(
                "Max in flight must be an integer greater than 0",
            ))
        }
    };
    let steps = o.canary.as_ref().map(|c| c.steps.as_slice()).unwrap_or(&[]);
    if !steps.is_empty() && strategy != "canary" {
        return Err(unprocessable(
            "Options canary steps are only valid for Canary deployments",
        ));
    }
    let mut weights = Vec::new();
    for s in steps {
        if !(1..=100).contains(&s.instance_weight) {
            return Err(unprocessable(
                "Canary steps must have an instance_weight between 1 and 100",
            ));
        }
        let w = u32::try_from(s.instance_weight).unwrap_or(100);
        if weights.last().is_some_and(|l| *l > w) {
            return Err(unprocessable(
                "Canary steps must be sorted in ascending order",
            ));
        }
        weights.push(w);
    }
    if weights.len() > 100 {
        return Err(unprocessable("Canary steps must number at most 100"));
    }
    let failure_budget = match o.failure_budget {
        None => None,
        Some(n) if (1..=1000).contains(&n) => u32::try_from(n).ok(),
        Some(_) => {
            return Err(unprocessable(
                "Failure budget must be an integer between 1 and 1000",
            ))
        }
    };
    let progress_deadline_s = match o.progress_deadline_s {
        None => None,
        Some(n) if (1..=86_400).contains(&n) => u64::try_from(n).ok(),
        Some(_) => {
            return Err(unprocessable(
                "Progress deadline must be an integer between 1 and 86400 seconds",
            ))
        }
    };
    Ok(Request {
        strategy,
        max_in_flight,
        canary_weights: weights,
        failure_budget,
        progress_deadline_s,
    })
}

fn present(base: &BaseUrl, d: &Deployment) -> Value {
    let path = format!("/v3/deployments/{}", d.guid);
    let new_running = if d.status_reason == "DEPLOYED" {
        d.target
    } else {
        d.healthy.min(d.new_instances)
    };
    let mut status = json!({
        "value": d.status_value,
        "reason": d.status_reason,
        "details": {
            "last_successful_healthcheck": d.last_healthy_at.clone().unwrap_or_else(|| d.created_at.clone()),
            "last_status_change": d.last_status_change,
            "error": d.error,
            "failures": d.failures,
            "instances": {
                "new_running": new_running,
                "new_total": if d.active() { d.new_instances } else { new_running },
                "target": d.target,
                "old_serving": if d.active() { d.old_instances } else { 0 },
            },
        },
    });
    let weights = d.steps();
    let mut options = json!({"max_in_flight": d.max_in_flight, "failure_budget": d.failure_budget, "progress_deadline_s": d.progress_deadline_s});
    if d.strategy == "canary" {
        let total = crate::deployments::planner::step_targets(
            u32::try_from(d.target.max(0)).unwrap_or(0),
            true,
            &weights,
        )
        .len();
        status["canary"] =
            json!({"steps": {"current": (d.canary_step + 1).min(total as i64), "total": total}});
        options["canary"] = json!({"steps": weights.iter().map(|w| json!({"instance_weight": w})).collect::<Vec<_>>()});
    }
    json!({
        "guid": d.guid,
        "state": d.status_reason,
        "status": status,
        "strategy": d.strategy,
        "options": options,
        "droplet": {"guid": d.droplet_guid},
        "previous_droplet": {"guid": d.previous_droplet_guid},
        "new_processes": [{"guid": d.new_bus_id, "type": "web"}],
        "revision": d.revision_guid.as_ref().map(|g| json!({"guid": g})),
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "relationships": {"app": rel(&d.app_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "app": base.link(&format!("/v3/apps/{}", d.app_guid)),
            "cancel": base.action(&format!("{path}/actions/cancel"), "POST"),
            "continue": base.action(&format!("{path}/actions/continue"), "POST"),
        },
    })
}

/// The revision's version, for the `revision` field.
async fn present_full(ctx: &Ctx, base: &BaseUrl, d: &Deployment) -> Value {
    let mut v = present(base, d);
    if let Some(g) = &d.revision_guid {
        if let Ok(r) = ctx.store.revision(g).await {
            v["revision"] = json!({"guid": r.guid, "version": r.version});
        }
    }
    v
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let c: Create = parse_json(&body)?;
    let req = request(&c)?;
    let app = ctx
        .store
        .app(&c.relationships.app.data.guid)
        .await
        .map_err(|_| unprocessable(UNUSABLE_APP))?;
    crate::authz::require_in_space(
        &ctx,
        &perms,
        Action::ManageApp,
        &app.space_guid,
        UNUSABLE_APP,
    )
    .await?;
    let revision = match &c.revision {
        Some(r) => Some(
            ctx.store
                .revision(&r.guid)
                .await
                .ok()
                .filter(|x| x.app_guid == app.guid)
                .ok_or_else(|| unprocessable("The revision must exist and belong to the app."))?,
        ),
        None => None,
    };
    let droplet_guid = match (&c.droplet, &revision) {
        (Some(d), _) => d.guid.clone(),
        (None, Some(r)) => r.droplet_guid.clone(),
        (None, None) => app
            .current_droplet_guid
            .clone()
            .ok_or_else(|| unprocessable("Invalid droplet. Please specify a droplet in the request or set a current droplet for the app."))?,
    };
    let staged = ctx
        .store
        .droplet(&droplet_guid)
        .await
        .ok()
        .is_some_and(|d| d.app_guid == app.guid && d.state == DropletState::Staged);
    if !staged {
        return Err(unprocessable(if revision.is_some() {
            "Unable to deploy this revision, the droplet for this revision no longer exists."
        } else {
            "Unable to assign current droplet. Ensure the droplet exists and belongs to this app."
        }));
    }
    let _ = &c.metadata;
    let d = if deployments::replaces_nothing(&ctx, &app).await? {
        // Nothing runs to replace: set the droplet and start, as CF does.
        let next = deployments::prepare_start(&ctx, &app, &droplet_guid, revision.as_ref()).await?;
        let started = super::apps::start_app(&ctx, next, true).await?;
        deployments::record_started(&ctx, &actor, &app, &started, &droplet_guid, &req).await?
    } else {
        deployments::create(&ctx, &actor, &app, &droplet_guid, revision.as_ref(), &req).await?
    };
    Ok((
        StatusCode::CREATED,
        Json(present_full(&ctx, &base, &d).await),
    )
        .into_response())
}

const LIST_PARAMS: &[&str] = &[
    "page",
    "per_page",
    "order_by",
    "guids",
    "app_guids",
    "states",
    "status_values",
    "status_reasons",
    "label_selector",
    "created_ats",
    "updated_ats",
];

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    input::known_params(&q, LIST_PARAMS)?;
    let page = PageReq::from_query(&q)?;
    let f = DeploymentFilter {
        guids: filter(&q, "guids"),
        app_guids: filter(&q, "app_guids"),
        states: filter(&q, "states"),
        status_values: filter(&q, "status_values"),
        status_reasons: filter(&q, "status_reasons"),
        scope: perms.space_scope(),
    };
    let (total, rows) = ctx.store.deployments_page(&f, page.window()).await?;
    let mut items = Vec::new();
    for d in &rows {
        items.push(present_full(&ctx, &base, d).await);
    }
    Ok(Json(page_of(
        &base,
        "/v3/deployments",
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
    let d = ctx.store.deployment(&guid).await?;
    Ok(Json(present_full(&ctx, &base, &d).await))
}

async fn cancel(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = ctx.store.deployment(&guid).await?;
    let d = deployments::cancel(&ctx, &actor, &d).await?;
    Ok(Json(present_full(&ctx, &base, &d).await))
}

async fn resume(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = ctx.store.deployment(&guid).await?;
    let d = deployments::resume(&ctx, &actor, &d).await?;
    Ok(Json(present_full(&ctx, &base, &d).await))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(v: Value) -> Result<Request, ApiError> {
        let c: Create =
            serde_json::from_value(v).map_err(|e| ApiError::MessageParse(e.to_string()))?;
        request(&c)
    }

    fn app() -> Value {
        json!({"app": {"data": {"guid": "a"}}})
    }

    #[test]
    fn requests_are_checked_with_cf_texts() {
        let ok = parse(json!({"relationships": app()})).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok.strategy, "rolling");
        assert_eq!(ok.max_in_flight, 1);
        let canary = parse(
            json!({"relationships": app(), "strategy": "canary", "options": {"max_in_flight": 2, "canary": {"steps": [{"instance_weight": 25}, {"instance_weight": 50}]}, "failure_budget": 2, "progress_deadline_s": 30}}),
        );
        let canary = canary.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(canary.canary_weights, vec![25, 50]);
        assert_eq!(
            (canary.failure_budget, canary.progress_deadline_s),
            (Some(2), Some(30))
        );
        let bad: BTreeMap<&str, Value> = BTreeMap::from([
            (
                "Strategy is not a supported value",
                json!({"relationships": app(), "strategy": "blue-green"}),
            ),
            (
                "Max in flight must be an integer greater than 0",
                json!({"relationships": app(), "options": {"max_in_flight": 0}}),
            ),
            (
                "only valid for Canary",
                json!({"relationships": app(), "options": {"canary": {"steps": [{"instance_weight": 5}]}}}),
            ),
            (
                "between 1 and 100",
                json!({"relationships": app(), "strategy": "canary", "options": {"canary": {"steps": [{"instance_weight": 101}]}}}),
            ),
            (
                "ascending",
                json!({"relationships": app(), "strategy": "canary", "options": {"canary": {"steps": [{"instance_weight": 50}, {"instance_weight": 20}]}}}),
            ),
            (
                "both revision and droplet",
                json!({"relationships": app(), "droplet": {"guid": "d"}, "revision": {"guid": "r"}}),
            ),
            (
                "Failure budget",
                json!({"relationships": app(), "options": {"failure_budget": 0}}),
            ),
        ]);
        for (want, body) in bad {
            match parse(body) {
                Err(ApiError::Unprocessable(m)) => assert!(m.contains(want), "{m} lacks {want}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(json!({"relationships": app(), "colour": "red"})),
            Err(ApiError::MessageParse(_))
        ));
    }
}
