//! The controller's bus subscribers: DEA adverts and shutdowns, health
//! requests, crash exits, staging progress and results, app logs, and the
//! API's route registration with routers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::{
    subjects, Bus, DeaAdvertise, DeaShutdown, DropletExited, ExitReason, HealthStart, HealthStop,
    LogMessage, RouteRegistration, RouterStart, StagingActive, StagingRecorded, StagingResult,
    StopRequest,
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::context::{Actor, Ctx};

/// Starts every bus subscriber; returns their tasks (aborted at shutdown).
pub async fn spawn_subscribers(
    ctx: &Ctx,
    bus: &Bus,
    api_addr: SocketAddr,
) -> Result<Vec<JoinHandle<()>>, proto::BusError> {
    let mut tasks = Vec::new();

    let mut adverts = bus
        .subscribe::<DeaAdvertise>(subjects::DEA_ADVERTISE)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = adverts.next().await {
            if let Ok(mut t) = c.placement.lock() {
                t.advertise(&m.payload, Instant::now());
            }
        }
    }));

    let mut shutdowns = bus.subscribe::<DeaShutdown>(subjects::DEA_SHUTDOWN).await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = shutdowns.next().await {
            tracing::info!(dea_id = %m.payload.id, "DEA shutting down; removed from placement");
            if let Ok(mut t) = c.placement.lock() {
                t.remove(&m.payload.id, Instant::now());
            }
        }
    }));

    let mut starts = bus
        .queue_subscribe::<HealthStart>(subjects::HEALTH_START, subjects::CC_QUEUE_GROUP)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = starts.next().await {
            handle_health_start(&c, m.payload).await;
        }
    }));

    let mut stops = bus
        .queue_subscribe::<HealthStop>(subjects::HEALTH_STOP, subjects::CC_QUEUE_GROUP)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = stops.next().await {
            let h = m.payload;
            if h.instance_ids.is_empty() {
                continue;
            }
            tracing::info!(app_id = %h.app_id, instance_ids = ?h.instance_ids, reason = %h.reason, "health.stop");
            c.stop_instances(StopRequest { app_id: h.app_id, version: h.version, instance_ids: Some(h.instance_ids), ..Default::default() }).await;
        }
    }));

    // One controller of the group handles each exit: its audit event, its
    // log line (published on the bus, so every controller has it) and a
    // task's end happen once however many controllers run.
    let mut exits = bus
        .queue_subscribe::<DropletExited>(subjects::DROPLET_EXITED, subjects::CC_QUEUE_GROUP)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = exits.next().await {
            let e = m.payload;
            // A task's end (its guid is its bus id).
            if let Ok(Some(task)) = c.store.task_opt(&e.app_id).await {
                crate::tasks::on_exit(&c, &task, &e).await;
                continue;
            }
            if e.reason != ExitReason::Crashed {
                continue;
            }
            if let Ok((app, process)) = c.store.unit(&e.app_id).await {
                c.api_log(&app.guid, crash_line(&app.guid, &e)).await;
                let data = json!({"index": e.index, "exit_status": e.exit_status, "reason": e.exit_description, "instance": e.instance_id, "version": e.version, "process_type": process.kind});
                c.audit_app(&Actor { guid: app.guid.clone(), name: app.name.clone(), kind: "app" }, "app.crash", &app, data).await;
            }
        }
    }));

    let mut active = bus
        .subscribe::<StagingActive>(subjects::STAGING_ACTIVE)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = active.next().await {
            c.staging.on_active(&m.payload, Instant::now());
        }
    }));

    // Results of builds: recorded by one controller, one at a time (a
    // flood waits in the bounded subscription), answered once stored (a DEA
    // sends a result again until it is answered).
    let mut finished = bus
        .queue_subscribe::<StagingResult>(subjects::STAGING_FINISHED, subjects::CC_QUEUE_GROUP)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = finished.next().await {
            let r = m.payload;
            match crate::staging::record(&c, &r).await {
                Ok(()) => {
                    if let Some(reply) = m.reply {
                        let done = StagingRecorded {
                            staging_id: r.staging_id.clone(),
                        };
                        c.publish(reply, &done).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(build = %r.staging_id, error = %e, "cannot record staging result; the DEA will send it again")
                }
            }
        }
    }));

    let mut logs = bus.subscribe::<LogMessage>(subjects::LOGS_ALL).await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = logs.next().await {
            let mut msg = m.payload;
            if let Some(id) = subjects::app_id_from_logs_subject(&m.subject) {
                if msg.app_id != id {
                    msg.app_id = id.to_string();
                }
            }
            c.logs.push(msg);
        }
    }));

    if ctx.cfg.register_route {
        let routers = bus.subscribe::<RouterStart>(subjects::ROUTER_START).await?;
        let c = ctx.clone();
        tasks.push(tokio::spawn(register_loop(c, routers, api_addr)));
    }
    Ok(tasks)
}

/// Acts on `health.start` only if still valid. Its `app_id` is a
/// process's bus id (`Process::bus_id`).
pub async fn handle_health_start(ctx: &Ctx, h: HealthStart) {
    let Ok((app, process)) = ctx.store.unit(&h.app_id).await else {
        return;
    };
    if !app.started() || app.version != h.version {
        tracing::debug!(app_id = %h.app_id, "ignoring stale health.start");
        return;
    }
    let indices: Vec<u32> = h
        .indices
        .iter()
        .copied()
        .filter(|i| i64::from(*i) < process.instances)
        .collect();
    if indices.is_empty() {
        return;
    }
    tracing::info!(app_id = %app.guid, process_type = %process.kind, indices = ?indices, reason = %h.reason, "health.start");
    if let Err(e) = ctx.start_indices(&app, &process, &indices).await {
        tracing::warn!(app_id = %app.guid, error = %e, "cannot start instances");
    }
}

pub fn api_registration(ctx: &Ctx, addr: SocketAddr) -> RouteRegistration {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    RouteRegistration {
        host,
        port: addr.port(),
        uris: vec![format!("api.{}", ctx.cfg.system_domain)],
        app_id: None,
        instance_id: None,
        tags: BTreeMap::from([("component".to_string(), "CloudController".to_string())]),
        stale_threshold_s: None,
    }
}

async fn register_loop(
    ctx: Ctx,
    mut routers: proto::bus::Subscription<RouterStart>,
    addr: SocketAddr,
) {
    let reg = api_registration(&ctx, addr);
    let mut interval = Duration::from_secs(5);
    loop {
        ctx.publish(subjects::ROUTER_REGISTER, &reg).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            m = routers.next() => match m {
                Some(m) => interval = Duration::from_secs(m.payload.minimum_register_interval_s.max(1)),
                None => return,
            },
        }
    }
}

/// CF's `[API/0]` line for a crashed instance:
/// `App instance exited with guid G payload: {"instance"=>..., ...}`.
fn crash_line(app_guid: &str, e: &DropletExited) -> String {
    let status = e
        .exit_status
        .map(|s| format!("\"exit_status\"=>{s}, "))
        .unwrap_or_default();
    format!(
        "App instance exited with guid {app_guid} payload: {{\"instance\"=>{:?}, \"index\"=>{}, \"reason\"=>\"CRASHED\", {status}\"exit_description\"=>{:?}, \"crash_timestamp\"=>{}, \"version\"=>{:?}}}",
        e.instance_id, e.index, e.exit_description, e.crash_timestamp as i64, e.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_line_reads_like_cf() {
        let e = DropletExited {
            app_id: "a".into(),
            version: "v1".into(),
            index: 0,
            instance_id: "i1".into(),
            reason: ExitReason::Crashed,
            exit_status: Some(3),
            exit_description: "exited with status 3".into(),
            crash_timestamp: 1_700_000_000.5,
        };
        assert_eq!(
            crash_line("g", &e),
            "App instance exited with guid g payload: {\"instance\"=>\"i1\", \"index\"=>0, \"reason\"=>\"CRASHED\", \"exit_status\"=>3, \"exit_description\"=>\"exited with status 3\", \"crash_timestamp\"=>1700000000, \"version\"=>\"v1\"}"
        );
    }
}
