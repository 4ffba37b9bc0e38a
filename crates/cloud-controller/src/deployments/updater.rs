//! The deployment updater (docs/architecture.md §5.12): every pass, the
//! controller holding the `deployment-updater` lease re-reads each ACTIVE
//! deployment, asks the DEAs for both versions' instances, counts the new
//! version's crashes, lets the planner decide and acts. Writes come before
//! messages and are conditional on the row's generation: a pass that lost
//! a race (a cancel, a continue, another holder) does nothing and the next
//! one re-reads.

use std::time::Duration;

use proto::{FindDropletResponse, StopRequest};
use serde_json::Value;

use super::planner::{self, Action, Observed, Progress, Seen, Spec};
use super::DRAIN_S;
use crate::context::{Actor, Ctx};
use crate::store::deployments::Fence;
use crate::store::{self, Deployment, StoreError};

const PASS_EVERY: Duration = Duration::from_millis(500);
const LEASE: &str = "deployment-updater";
/// CF's lock TTL for its singleton jobs.
const LEASE_TTL_S: i64 = 15;

pub fn spawn_updater(ctx: Ctx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let holder = store::new_guid();
        loop {
            let now_s = chrono::Utc::now().timestamp();
            match ctx
                .store
                .acquire_lease(LEASE, &holder, now_s, LEASE_TTL_S)
                .await
            {
                Ok(Some(generation)) => match ctx.store.active_deployments().await {
                    Ok(list) => {
                        let fence = Fence {
                            lease: LEASE.to_string(),
                            holder: holder.clone(),
                            generation,
                        };
                        for d in list {
                            if let Err(e) = pass(&ctx, &d, &fence).await {
                                tracing::warn!(deployment = %d.guid, app_id = %d.app_guid, error = %e, "deployment pass failed");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list deployments"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the deployment lease"),
            }
            tokio::time::sleep(PASS_EVERY).await;
        }
    })
}

fn unix(t: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

fn rfc3339(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

pub(super) fn spec(d: &Deployment) -> Spec {
    let target = count(d.target);
    Spec {
        target,
        max_in_flight: count(d.max_in_flight),
        steps: planner::step_targets(target, d.strategy == "canary", &d.steps()),
        failure_budget: count(d.failure_budget),
        progress_deadline_s: d.progress_deadline_s.max(1) as f64,
    }
}

fn progress(d: &Deployment) -> Progress {
    Progress {
        reason: d.status_reason.clone(),
        error: d.error.clone(),
        step: count(d.canary_step),
        new_instances: count(d.new_instances),
        old_instances: count(d.old_instances),
        healthy: count(d.healthy),
        failures: count(d.failures),
        last_progress_at: unix(&d.last_progress_at),
        last_healthy_at: d.last_healthy_at.as_deref().map(unix),
    }
}

fn seen(found: Vec<FindDropletResponse>, version: &str) -> Vec<Seen> {
    found
        .into_iter()
        .filter(|f| f.version == version)
        .map(|f| Seen {
            index: f.index,
            state: f.state,
            ready: f.ready,
            since: f.since,
        })
        .collect()
}

/// Crashes of the new version's web instances since the deployment began
/// (the controller records each as an `app.crash` event), and how the
/// last one ended.
async fn crashes(ctx: &Ctx, d: &Deployment) -> Result<(u32, Option<String>), StoreError> {
    let events = ctx
        .store
        .target_events_since(&d.app_guid, "app.crash", &d.created_at)
        .await?;
    let mut n = 0u32;
    let mut last = None;
    for e in events {
        let Ok(data) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        if data["version"].as_str() != Some(d.new_version.as_str())
            || data["process_type"].as_str().unwrap_or("web") != "web"
        {
            continue;
        }
        n = n.saturating_add(1);
        last = Some(match data["exit_status"].as_i64() {
            Some(s) => format!("exit status {s}"),
            None => data["reason"].as_str().unwrap_or("crash").to_string(),
        });
    }
    Ok((n, last))
}

/// One pass over `d`; its writes are fenced by the updater's lease.
async fn pass(ctx: &Ctx, d: &Deployment, fence: &Fence) -> Result<(), StoreError> {
    let app = ctx.store.app(&d.app_guid).await?;
    let web = ctx.store.web_process(&app.guid).await?;
    let (crashes, last_crash) = crashes(ctx, d).await?;
    let seen = Observed {
        new: seen(ctx.find_instances(&d.new_bus_id).await, &d.new_version),
        old: seen(ctx.find_instances(&d.old_bus_id).await, &d.old_version),
        crashes,
        last_crash,
    };
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let (p, actions) = planner::plan(&spec(d), &progress(d), &seen, now);
    let mut next = d.clone();
    next.status_reason = p.reason.clone();
    next.error = p.error.clone();
    next.canary_step = i64::from(p.step);
    next.new_instances = i64::from(p.new_instances);
    next.old_instances = i64::from(p.old_instances);
    next.healthy = i64::from(p.healthy);
    next.failures = i64::from(p.failures);
    next.last_progress_at = if p.last_progress_at == progress(d).last_progress_at {
        d.last_progress_at.clone()
    } else {
        rfc3339(p.last_progress_at)
    };
    next.last_healthy_at = match p.last_healthy_at {
        Some(t) if Some(t) != progress(d).last_healthy_at => Some(rfc3339(t)),
        _ => d.last_healthy_at.clone(),
    };
    if next.status_reason != d.status_reason {
        next.last_status_change = rfc3339(now);
    }
    if next.new_instances != d.new_instances {
        next.new_changed_at = rfc3339(now);
    }
    if next.old_instances != d.old_instances {
        next.old_changed_at = rfc3339(now);
    }
    let system = Actor::system();
    if actions.contains(&Action::Finish) {
        let olds = ctx.store.old_units(&app.guid).await?;
        if !ctx.store.finish_deployment(&next, Some(fence)).await? {
            return Ok(());
        }
        for o in olds {
            stop(ctx, &o.old_bus_id, &o.old_version, None).await;
        }
        tracing::info!(app_id = %app.guid, deployment = %d.guid, "deployment finished");
        ctx.api_log(&app.guid, format!("Deployment {} finished", d.guid))
            .await;
        return Ok(());
    }
    if actions.contains(&Action::Cancel) {
        let olds = ctx.store.old_units(&app.guid).await?;
        if !ctx.store.cancel_deployment(&next, Some(fence)).await? {
            return Ok(());
        }
        stop(ctx, &d.new_bus_id, &d.new_version, None).await;
        // The deployed revision is the previous one again.
        let back = ctx.store.app(&app.guid).await?;
        crate::revisions::record_cancel(ctx, &back, d.revision_guid.as_deref()).await?;
        for o in olds.iter().filter(|o| o.old_bus_id != d.old_bus_id) {
            stop(ctx, &o.old_bus_id, &o.old_version, None).await;
        }
        let why = next.error.clone().unwrap_or_else(|| "canceled".into());
        tracing::warn!(app_id = %app.guid, deployment = %d.guid, why = %why, "deployment canceled");
        ctx.api_log(&app.guid, format!("Deployment {} canceled: {why}", d.guid))
            .await;
        if next.error.is_some() {
            let data = serde_json::json!({"deployment_guid": d.guid, "error": next.error, "failures": next.failures});
            ctx.audit_app(&system, "audit.app.deployment.rollback", &app, data)
                .await;
        }
        return Ok(());
    }
    if next == *d {
        return Ok(());
    }
    if !ctx.store.save_deployment(&next, Some(fence)).await? {
        return Ok(());
    }
    if next.status_reason != d.status_reason {
        tracing::info!(app_id = %app.guid, deployment = %d.guid, reason = %next.status_reason, error = ?next.error, "deployment status");
    }
    for a in actions {
        match a {
            Action::StartNew(indices) => {
                let process = next.new_process(&web);
                ctx.start_indices(&app, &process, &indices).await?;
            }
            Action::StartOld(indices) => {
                let process = next.old_process(&web);
                ctx.start_indices(&next.old_app(&app), &process, &indices)
                    .await?;
            }
            Action::StopOld(indices) => {
                stop(ctx, &d.old_bus_id, &d.old_version, Some(indices)).await;
            }
            Action::Finish | Action::Cancel => {}
        }
    }
    Ok(())
}

/// A graceful stop: out of the routers, `DRAIN_S` for requests in flight,
/// then SIGTERM.
async fn stop(ctx: &Ctx, bus_id: &str, version: &str, indices: Option<Vec<u32>>) {
    ctx.stop_instances(StopRequest {
        app_id: bus_id.to_string(),
        version: Some(version.to_string()),
        indices,
        drain_s: Some(DRAIN_S),
        ..Default::default()
    })
    .await;
}
