//! Rolling and canary deployments with the failure policy CF lacks
//! (docs/architecture.md §5.12). `planner` decides (pure, table-tested);
//! `updater` reads state, asks the planner and acts, one controller at a
//! time under a lease. Creating, cancelling and continuing are here; the
//! HTTP edge is `api/deployments.rs`.

pub mod planner;
mod updater;

pub use updater::spawn_updater;

use proto::StopRequest;

use crate::context::{Actor, Ctx};
use crate::error::ApiError;
use crate::store::deployments::{
    AppChange, Deployment, ACTIVE, CANCELING, DEPLOYED, DEPLOYING, FINALIZED, PAUSED,
};
use crate::store::{self, App, Process, Revision, StoreError};

/// New instances may crash this many times before the deployment rolls
/// back (option `failure_budget`).
pub const DEFAULT_FAILURE_BUDGET: u32 = 3;
/// The progress deadline is the health check's start timeout times this
/// (option `progress_deadline_s`).
pub const DEADLINE_TIMEOUTS: u64 = 3;
/// Seconds a stopped old instance gets between leaving the routers and
/// SIGTERM, for requests in flight.
pub const DRAIN_S: u64 = 10;
/// CF's `max_in_flight` bound.
pub const MAX_IN_FLIGHT: u32 = 1000;

/// What a `POST /v3/deployments` asks for, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub strategy: String,
    pub max_in_flight: u32,
    pub canary_weights: Vec<u32>,
    pub failure_budget: Option<u32>,
    pub progress_deadline_s: Option<u64>,
}

/// Whether a deployment of `app` has nothing to replace (the app is not
/// started, or has no web instance): the API then starts it on the
/// droplet ([`prepare_start`], [`record_started`]), as CF does.
pub async fn replaces_nothing(ctx: &Ctx, app: &App) -> Result<bool, StoreError> {
    Ok(!app.started() || ctx.store.web_process(&app.guid).await?.instances <= 0)
}

/// The revision's environment (JSON) and process commands.
fn settings(revision: Option<&Revision>) -> (Option<String>, Vec<(String, Option<String>)>) {
    let content = revision.map(Revision::content);
    let env = content
        .as_ref()
        .map(|c| serde_json::Value::Object(c.env.clone()).to_string());
    let commands = content
        .map(|c| c.commands.into_iter().collect())
        .unwrap_or_default();
    (env, commands)
}

/// A new ACTIVE deployment's row: every web instance of the app's current
/// version is the old unit.
fn row(app: &App, web: &Process, droplet_guid: &str, req: &Request) -> Deployment {
    let t = store::now();
    let target = web.instances.max(0);
    let timeout = web
        .health_check_timeout
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(60);
    let deadline = req
        .progress_deadline_s
        .unwrap_or(timeout.saturating_mul(DEADLINE_TIMEOUTS));
    Deployment {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        status_value: ACTIVE.into(),
        status_reason: DEPLOYING.into(),
        error: None,
        strategy: req.strategy.clone(),
        max_in_flight: i64::from(req.max_in_flight),
        canary_steps: serde_json::to_string(&req.canary_weights).unwrap_or_else(|_| "[]".into()),
        canary_step: 0,
        failure_budget: i64::from(req.failure_budget.unwrap_or(DEFAULT_FAILURE_BUDGET)),
        progress_deadline_s: i64::try_from(deadline).unwrap_or(i64::MAX),
        droplet_guid: droplet_guid.to_string(),
        previous_droplet_guid: app.current_droplet_guid.clone(),
        revision_guid: None,
        target,
        new_bus_id: store::new_guid(),
        new_version: store::new_guid(),
        new_instances: 0,
        old_bus_id: web.bus_id().to_string(),
        old_version: app.version.clone(),
        old_env: app.env.clone(),
        old_instances: target,
        healthy: 0,
        failures: 0,
        last_healthy_at: None,
        last_progress_at: t.clone(),
        last_status_change: t.clone(),
        new_changed_at: t.clone(),
        old_changed_at: t.clone(),
        generation: 0,
        created_at: t.clone(),
        updated_at: t,
    }
}

/// For an app a deployment replaces nothing in: the app set to the droplet
/// (and the revision's settings), ready to be started.
pub async fn prepare_start(
    ctx: &Ctx,
    app: &App,
    droplet_guid: &str,
    revision: Option<&Revision>,
) -> Result<App, StoreError> {
    let (env, commands) = settings(revision);
    for (kind, command) in commands {
        let p = ctx.store.ensure_process(&app.guid, &kind).await?;
        ctx.store
            .modify_process(&p.guid, |p| {
                p.command = command.clone();
                Ok::<_, StoreError>(())
            })
            .await?;
    }
    ctx.store
        .modify_app(&app.guid, |next| {
            next.current_droplet_guid = Some(droplet_guid.to_string());
            if let Some(e) = &env {
                next.env = e.clone();
            }
            Ok::<_, StoreError>(())
        })
        .await
}

/// Records the deployment of an app that was simply started (`started`,
/// from `before`): FINALIZED / DEPLOYED at once.
pub async fn record_started(
    ctx: &Ctx,
    actor: &Actor,
    before: &App,
    started: &App,
    droplet_guid: &str,
    req: &Request,
) -> Result<Deployment, ApiError> {
    let web = ctx.store.web_process(&started.guid).await?;
    let mut d = row(before, &web, droplet_guid, req);
    d.status_value = FINALIZED.into();
    d.status_reason = DEPLOYED.into();
    d.new_version = started.version.clone();
    d.new_bus_id = web.bus_id().to_string();
    d.new_instances = d.target;
    d.old_instances = 0;
    d.revision_guid = ctx
        .store
        .latest_revision(&started.guid)
        .await?
        .map(|r| r.guid);
    ctx.store.insert_deployment(&d).await?;
    audit(ctx, actor, started, "audit.app.deployment.create", &d).await;
    Ok(d)
}

/// Starts a deployment of `droplet_guid` (or of `revision`: its droplet,
/// environment and commands) on a started `app` with web instances
/// ([`replaces_nothing`] is false).
pub async fn create(
    ctx: &Ctx,
    actor: &Actor,
    app: &App,
    droplet_guid: &str,
    revision: Option<&Revision>,
    req: &Request,
) -> Result<Deployment, ApiError> {
    let web = ctx.store.web_process(&app.guid).await?;
    let (env, commands) = settings(revision);
    let mut d = row(app, &web, droplet_guid, req);
    ctx.store
        .create_deployment(
            &d,
            &AppChange {
                env: env.as_deref(),
                commands: &commands,
            },
        )
        .await?;
    let app = ctx.store.app(&app.guid).await?;
    let rev = match revision {
        Some(r) => Some(crate::revisions::record_rollback(ctx, &app, r).await?),
        None => crate::revisions::record(ctx, &app).await?,
    };
    if let Some(r) = rev.or(ctx.store.latest_revision(&app.guid).await?) {
        ctx.store.set_deployment_revision(&d.guid, &r.guid).await?;
        d.revision_guid = Some(r.guid);
    }
    ctx.api_log(
        &app.guid,
        format!(
            "Deploying app with guid {} ({} strategy, max in flight {})",
            app.guid, d.strategy, d.max_in_flight
        ),
    )
    .await;
    // Workers run the app's version: they restart on the new one now
    // (only web is rolled).
    for p in ctx.store.processes_of(&app.guid).await? {
        if !p.is_web() {
            ctx.stop_instances(StopRequest {
                app_id: p.bus_id().to_string(),
                version: Some(d.old_version.clone()),
                ..Default::default()
            })
            .await;
            let n = u32::try_from(p.instances.max(0)).unwrap_or(0);
            ctx.start_indices(&app, &p, &(0..n).collect::<Vec<_>>())
                .await?;
        }
    }
    audit(ctx, actor, &app, "audit.app.deployment.create", &d).await;
    tracing::info!(app_id = %app.guid, deployment = %d.guid, strategy = %d.strategy, target = d.target, "deployment created");
    Ok(ctx.store.deployment(&d.guid).await?)
}

/// `actions/cancel`: back to the old version (the updater restores it).
pub async fn cancel(ctx: &Ctx, actor: &Actor, d: &Deployment) -> Result<Deployment, ApiError> {
    if !d.active() || d.status_reason == CANCELING {
        return Err(ApiError::Unprocessable(format!(
            "Cannot cancel a {} deployment",
            if d.active() { "canceling" } else { "finalized" }
        )));
    }
    let mut next = d.clone();
    next.status_reason = CANCELING.into();
    next.last_progress_at = store::now();
    next.last_status_change = next.last_progress_at.clone();
    if !ctx.store.save_deployment(&next, None).await? {
        return Err(ApiError::Unprocessable(
            "The deployment changed meanwhile; try again.".into(),
        ));
    }
    if let Ok(app) = ctx.store.app(&d.app_guid).await {
        audit(ctx, actor, &app, "audit.app.deployment.cancel", d).await;
    }
    Ok(ctx.store.deployment(&d.guid).await?)
}

/// `actions/continue`: a paused canary goes on to its next step.
pub async fn resume(ctx: &Ctx, actor: &Actor, d: &Deployment) -> Result<Deployment, ApiError> {
    if !d.active() || d.status_reason != PAUSED {
        return Err(ApiError::Unprocessable(format!(
            "Cannot continue a deployment with status: {} and reason: {}.",
            d.status_value, d.status_reason
        )));
    }
    let mut next = d.clone();
    next.status_reason = DEPLOYING.into();
    next.canary_step += 1;
    next.last_progress_at = store::now();
    next.last_status_change = next.last_progress_at.clone();
    if !ctx.store.save_deployment(&next, None).await? {
        return Err(ApiError::Unprocessable(
            "The deployment changed meanwhile; try again.".into(),
        ));
    }
    if let Ok(app) = ctx.store.app(&d.app_guid).await {
        audit(ctx, actor, &app, "audit.app.deployment.continue", d).await;
    }
    Ok(ctx.store.deployment(&d.guid).await?)
}

/// The app stops, restarts or goes: its deployments end where they are
/// and the old versions' instances stop.
pub async fn abandon(ctx: &Ctx, app_guid: &str) -> Result<(), StoreError> {
    for bus_id in ctx.store.abandon_deployments(app_guid).await? {
        ctx.stop_instances(StopRequest {
            app_id: bus_id,
            ..Default::default()
        })
        .await;
    }
    Ok(())
}

async fn audit(ctx: &Ctx, actor: &Actor, app: &App, kind: &str, d: &Deployment) {
    let data = serde_json::json!({
        "deployment_guid": d.guid,
        "droplet_guid": d.droplet_guid,
        "strategy": d.strategy,
        "reason": d.status_reason,
        "error": d.error,
    });
    ctx.audit_app(actor, kind, app, data).await;
}
