//! One-off tasks (CF's `/v3/tasks`, docs/architecture.md §5.9): placing a
//! task on a DEA, its end (the DEA's `droplet.exited`), cancelling it, and
//! the sweep that fails tasks their DEA lost. The API is `api/tasks.rs`.

mod lost;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::{
    subjects, DropletExited, ExitReason, HealthCheck, HealthCheckType, Limits, StartRequest,
    StopRequest,
};

use crate::context::Ctx;
use crate::placement::Need;
use crate::store::deployments::Fence;
use crate::store::tasks::{CANCELING, FAILED, PENDING, RUNNING, SUCCEEDED};
use crate::store::{App, StoreError, Task};

pub use lost::LOST_AFTER;

/// How often the sweep looks for lost tasks.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// The sweep's lease and its time to live (CF's lock TTL).
pub const SWEEP_LEASE: &str = "task-sweep";
const SWEEP_LEASE_TTL_S: i64 = 15;

/// CF's reason for a cancelled task.
pub const CANCELLED: &str = "task was cancelled";

/// Places a `PENDING` task on a DEA and marks it `RUNNING` there, or
/// `FAILED` when no DEA has room ("insufficient resources", as CF).
/// Returns the task as stored.
pub async fn start(ctx: &Ctx, app: &App, task: &Task) -> Result<Task, StoreError> {
    let droplet = ctx.store.droplet(&task.droplet_guid).await?;
    let memory_mb = u64::try_from(task.memory_in_mb).unwrap_or(1024);
    let disk_mb = u64::try_from(task.disk_in_mb).unwrap_or(1024);
    let need = Need {
        app_id: &task.guid,
        stack: &droplet.stack,
        memory_mb,
        disk_mb,
    };
    let (pick, why) = match ctx.placement.lock() {
        Ok(mut t) => {
            let now = Instant::now();
            let (mut picks, short) = t.place(&need, 1, now);
            match picks.pop() {
                Some(p) => (Some(p), String::new()),
                None => {
                    let what = match t.never_fits(&need, now) {
                        Some(what) => what.to_string(),
                        None => short
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "no DEA has room".into()),
                    };
                    (None, format!("insufficient resources: {what}"))
                }
            }
        }
        Err(_) => (None, "insufficient resources: no DEA".to_string()),
    };
    let Some((dea_id, placement_id)) = pick else {
        tracing::warn!(task = %task.guid, app_id = %app.guid, why = %why, "task not placed");
        ctx.store
            .set_task_state(&task.guid, &[PENDING], FAILED, Some(&why), None)
            .await?;
        return ctx.store.task(&task.guid).await;
    };
    let limits = Limits {
        memory_mb,
        disk_mb,
        fds: 16384,
    };
    let launch = ctx.launch(app, &droplet, &[], limits).await?;
    let req = StartRequest {
        app_id: task.guid.clone(),
        app_name: app.name.clone(),
        version: app.version.clone(),
        index: 0,
        droplet_uri: launch.droplet_uri,
        droplet_sha256: droplet.sha256.clone().unwrap_or_default(),
        uris: Vec::new(),
        env: launch.env,
        limits,
        health_check: HealthCheck {
            kind: HealthCheckType::Process,
            ..HealthCheck::default()
        },
        start_command: task.command.clone(),
        stack: droplet.stack.clone(),
        vcap_application: launch.vcap,
        placement_id: Some(placement_id),
        egress: Some(launch.egress),
        process_type: None,
        log_guid: Some(app.guid.clone()),
        task_name: Some(task.name.clone()),
        readiness: None,
        log_rate_limit_bytes_per_s: None,
        vcap_services: Some(launch.vcap_services),
    };
    tracing::info!(task = %task.guid, app_id = %app.guid, dea_id = %dea_id, "starting task");
    ctx.publish(subjects::dea_start(&dea_id), &req).await;
    // CF marks a task RUNNING once it is handed to the backend.
    ctx.store
        .set_task_state(&task.guid, &[PENDING], RUNNING, None, Some(&dea_id))
        .await?;
    ctx.store.task(&task.guid).await
}

/// The end of a task, as its DEA reports it.
pub async fn on_exit(ctx: &Ctx, task: &Task, e: &DropletExited) {
    let live = [RUNNING, CANCELING];
    let (to, reason) = match e.reason {
        ExitReason::Completed => (SUCCEEDED, None),
        ExitReason::Crashed => (
            FAILED,
            Some(match e.exit_status {
                Some(n) => format!("APP/TASK/{}: Exited with status {n}", task.name),
                None => format!("APP/TASK/{}: {}", task.name, e.exit_description),
            }),
        ),
        ExitReason::Stopped | ExitReason::Evacuating if task.state == CANCELING => {
            (FAILED, Some(CANCELLED.to_string()))
        }
        ExitReason::Stopped | ExitReason::Evacuating => (
            FAILED,
            Some(format!("task was stopped: {}", e.exit_description)),
        ),
    };
    match ctx
        .store
        .set_task_state(&task.guid, &live, to, reason.as_deref(), None)
        .await
    {
        Ok(true) => {
            tracing::info!(task = %task.guid, app_id = %task.app_guid, state = to, reason = ?reason, "task ended")
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(task = %task.guid, error = %e, "cannot record the end of a task"),
    }
}

/// Cancels a task that has not ended: a `PENDING` one fails at once, a
/// running one is `CANCELING` until its DEA reports it stopped.
pub async fn cancel(ctx: &Ctx, task: &Task) -> Result<(), StoreError> {
    if task.state == PENDING
        && ctx
            .store
            .set_task_state(&task.guid, &[PENDING], FAILED, Some(CANCELLED), None)
            .await?
    {
        return Ok(());
    }
    ctx.store
        .set_task_state(&task.guid, &[RUNNING, PENDING], CANCELING, None, None)
        .await?;
    ctx.stop_instances(StopRequest {
        app_id: task.guid.clone(),
        ..Default::default()
    })
    .await;
    Ok(())
}

/// Cancels every task of an app that has not ended (the app is deleted).
pub async fn cancel_all(ctx: &Ctx, app_guid: &str) -> Result<(), StoreError> {
    for t in ctx.store.live_tasks_of(app_guid).await? {
        cancel(ctx, &t).await?;
    }
    Ok(())
}

/// The sweep: every few seconds, tasks whose DEA has not listed them for
/// [`LOST_AFTER`] fail (CF never re-runs a task silently). It runs in one
/// controller at a time, the holder of the `task-sweep` lease: each
/// controller's view of the DEAs is its own (one cut off from the bus
/// would see every task's DEA silent), so one decides and its writes are
/// fenced by the lease.
pub fn spawn_sweep(ctx: Ctx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let holder = crate::store::new_guid();
        let mut missing: HashMap<String, Instant> = HashMap::new();
        loop {
            if let Err(e) = sweep_as(&ctx, &holder, &mut missing).await {
                tracing::warn!(error = %e, "task sweep failed");
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    })
}

/// One pass of the sweep as `holder`: nothing unless it holds (or takes)
/// the lease; a new holder starts its own count of how long each task has
/// been missing. Whether it held the lease.
pub async fn sweep_as(
    ctx: &Ctx,
    holder: &str,
    missing: &mut HashMap<String, Instant>,
) -> Result<bool, StoreError> {
    let now_s = chrono::Utc::now().timestamp();
    let Some(generation) = ctx
        .store
        .acquire_lease(SWEEP_LEASE, holder, now_s, SWEEP_LEASE_TTL_S)
        .await?
    else {
        missing.clear();
        return Ok(false);
    };
    let fence = Fence {
        lease: SWEEP_LEASE.to_string(),
        holder: holder.to_string(),
        generation,
    };
    sweep(ctx, missing, &fence).await?;
    Ok(true)
}

async fn sweep(
    ctx: &Ctx,
    missing: &mut HashMap<String, Instant>,
    fence: &Fence,
) -> Result<(), StoreError> {
    let tasks = ctx.store.tasks_in_states(&[RUNNING, CANCELING]).await?;
    let now = Instant::now();
    let seen: Vec<(String, lost::Seen)> = match ctx.placement.lock() {
        Ok(t) => tasks
            .iter()
            .map(|task| {
                let count = task
                    .dea_id
                    .as_deref()
                    .and_then(|d| t.advertised_count(d, &task.guid, now));
                let s = match count {
                    None => lost::Seen::Silent,
                    Some(0) => lost::Seen::Missing,
                    Some(_) => lost::Seen::Listed,
                };
                (task.guid.clone(), s)
            })
            .collect(),
        Err(_) => return Ok(()),
    };
    for (guid, why) in lost::lost(&seen, missing, now) {
        if ctx.store.fail_lost_task(&guid, why, fence).await? {
            tracing::warn!(task = %guid, why, "task lost");
        }
    }
    Ok(())
}
