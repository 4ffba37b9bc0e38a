//! `run`: wires the DEA to the bus: subscriptions, timers, shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use proto::{
    subjects, Bus, ComponentAnnounce, FindDropletRequest, RouterStart, StagingRequest,
    StartRequest, StopRequest, UpdateRequest,
};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::{DeaError, Result};
use crate::instances::Agent;
use crate::outbox::{pump, Outbox};
use crate::staging::Stager;

/// Prepares the state dir: leftovers of a previous run are removed, the
/// built-in buildpacks are (re)written.
pub fn prepare_state_dir(state_dir: &Path) -> Result<()> {
    for sub in ["instances", "staging"] {
        let d = state_dir.join(sub);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => tracing::info!(dir = %d.display(), "removed leftovers of a previous run"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DeaError::io(&d, e)),
        }
    }
    for sub in ["instances", "staging", "droplets", "buildpacks"] {
        let d = state_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| DeaError::io(&d, e))?;
    }
    crate::buildpacks::install(&state_dir.join("buildpacks"))
}

fn write_ready(path: &Path) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, "ready\n").map_err(|e| DeaError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DeaError::io(path, e))
}

/// Runs the DEA until `shutdown` resolves; then stops every instance,
/// publishes `dea.shutdown` and returns.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    run_with_drain(cfg, shutdown, std::future::pending()).await
}

/// As `run`, and when `drain` resolves (SIGUSR2) the DEA evacuates: its
/// instances become EVACUATING, `dea.shutdown` is sent, each instance is
/// stopped once another DEA reports its replacement RUNNING (or after
/// `evacuation_timeout_s`), then the DEA exits.
pub async fn run_with_drain(
    mut cfg: Config,
    shutdown: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) -> Result<()> {
    cfg.fill_id();
    if cfg.state_dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            cfg.state_dir = cwd.join(&cfg.state_dir);
        }
    }
    prepare_state_dir(&cfg.state_dir)?;
    let backend = crate::backend::from_config(&cfg)?;
    let bus = Bus::connect(&cfg.nats_url, "dea").await?;
    tracing::info!(id = %cfg.id, nats = %cfg.nats_url, backend = backend.name(), state_dir = %cfg.state_dir.display(), "dea starting");
    let (outbox, rx) = Outbox::channel();
    let pump_task = tokio::spawn(pump(bus.clone(), rx));
    let agent = Agent::new(cfg.clone(), backend.clone(), outbox.clone());
    let stager = Stager {
        backend,
        outbox: outbox.clone(),
        http: agent.http.clone(),
        state_dir: cfg.state_dir.clone(),
        step_timeout: Duration::from_secs(cfg.staging_timeout_s.max(1)),
    };
    let started = Instant::now();
    let pending_stagings: Pending = Arc::default();

    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    {
        let mut sub = bus
            .subscribe::<StartRequest>(subjects::dea_start(&cfg.id))
            .await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                a.start(m.payload);
            }
        }));
    }
    {
        let mut sub = bus.subscribe::<StopRequest>(subjects::DEA_STOP).await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let a = a.clone();
                tokio::spawn(async move { a.stop_matching(&m.payload).await });
            }
        }));
    }
    {
        let mut sub = bus.subscribe::<UpdateRequest>(subjects::DEA_UPDATE).await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                a.update(&m.payload);
            }
        }));
    }
    {
        let mut sub = bus
            .subscribe::<FindDropletRequest>(subjects::DEA_FIND_DROPLET)
            .await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(reply) = m.reply else { continue };
                let a = a.clone();
                tokio::spawn(async move {
                    for r in a.find(&m.payload).await {
                        a.outbox.send(reply.clone(), &r);
                    }
                });
            }
        }));
    }
    {
        let mut sub = bus.subscribe::<RouterStart>(subjects::ROUTER_START).await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                a.on_router_start(&m.payload);
            }
        }));
    }
    {
        let mut sub = bus
            .subscribe::<StagingRequest>(subjects::staging_start(&cfg.id))
            .await?;
        let (s, o, pending) = (stager.clone(), outbox.clone(), pending_stagings.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let (s, o, pending) = (s.clone(), o.clone(), pending.clone());
                tokio::spawn(async move {
                    let req = m.payload;
                    let Some(reply) = m.reply else {
                        tracing::warn!(staging_id = %req.staging_id, "staging request without reply subject");
                        return;
                    };
                    tracing::info!(staging_id = %req.staging_id, app_id = %req.app_id, "staging");
                    let key = uuid::Uuid::new_v4().to_string();
                    lock(&pending).insert(key.clone(), (reply, req.staging_id.clone()));
                    let staging_id = req.staging_id.clone();
                    // A separate task so that even a panic gets an answer.
                    let resp = tokio::spawn(async move { s.handle(req).await })
                        .await
                        .unwrap_or_else(|_| failed(&staging_id, "staging failed: internal error"));
                    // Absent when shutdown already answered it.
                    if let Some((reply, _)) = lock(&pending).remove(&key) {
                        o.send(reply, &resp);
                    }
                });
            }
        }));
    }
    // Raw subscriptions: these requests may come with an empty body.
    {
        let mut sub = bus
            .client()
            .subscribe(subjects::DEA_LOCATE)
            .await
            .map_err(|e| proto::BusError::Subscribe {
                subject: subjects::DEA_LOCATE.into(),
                message: e.to_string(),
            })?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while sub.next().await.is_some() {
                a.publish_advertise();
            }
        }));
    }
    {
        let mut sub = bus
            .client()
            .subscribe(subjects::COMPONENT_DISCOVER)
            .await
            .map_err(|e| proto::BusError::Subscribe {
                subject: subjects::COMPONENT_DISCOVER.into(),
                message: e.to_string(),
            })?;
        let (o, id) = (outbox.clone(), cfg.id.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(r) = m.reply {
                    o.send(r.to_string(), &announce(&id, started));
                }
            }
        }));
    }
    // Timers.
    {
        let a = agent.clone();
        let every = Duration::from_secs(cfg.advertise_interval_s.max(1));
        tasks.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                a.publish_advertise();
            }
        }));
    }
    {
        let a = agent.clone();
        let every = Duration::from_secs(cfg.heartbeat_interval_s.max(1));
        tasks.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                a.publish_heartbeat();
            }
        }));
    }
    {
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(a.register_interval()).await;
                a.register_all();
            }
        }));
    }
    {
        // After a reconnect, tell everyone about us again.
        let mut events = bus.events();
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if ev == proto::bus::BusEvent::Connected {
                    a.publish_advertise();
                    a.register_all();
                }
            }
        }));
    }

    outbox.send(subjects::COMPONENT_ANNOUNCE, &announce(&cfg.id, started));
    agent.publish_advertise();
    agent.publish_heartbeat();
    if let Err(e) = bus.flush().await {
        tracing::warn!(error = %e, "flush failed");
    }
    if let Some(p) = &cfg.addr_file {
        write_ready(p)?;
    }
    tracing::info!(id = %cfg.id, "dea ready");

    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = drain => {
            tracing::info!(id = %cfg.id, "draining: evacuating instances");
            agent.evacuate();
            let mut sub = bus.subscribe::<proto::Heartbeat>(subjects::DEA_HEARTBEAT).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.evacuation_timeout_s);
            loop {
                if agent.live_count() == 0 {
                    break;
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(id = %cfg.id, "evacuation timed out");
                        break;
                    }
                    m = sub.next() => match m {
                        Some(m) => agent.on_peer_heartbeat(&m.payload).await,
                        None => break,
                    },
                }
            }
        }
    }
    tracing::info!(id = %cfg.id, "dea shutting down");
    for t in &tasks {
        t.abort();
    }
    // Never leave a staging request unanswered.
    for (_, (reply, staging_id)) in lock(&pending_stagings).drain() {
        outbox.send(
            reply,
            &failed(&staging_id, "staging aborted: DEA shutting down"),
        );
    }
    agent.shutdown().await;
    drop(stager);
    drop(agent);
    drop(outbox);
    // The pump ends once every sender is gone; don't wait forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), pump_task).await;
    let _ = bus.flush().await;
    tracing::info!("dea stopped");
    Ok(())
}

/// In-flight stagings: key → (reply subject, staging id).
type Pending = Arc<Mutex<HashMap<String, (String, String)>>>;

fn lock(p: &Pending) -> MutexGuard<'_, HashMap<String, (String, String)>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(staging_id: &str, error: &str) -> proto::StagingResponse {
    proto::StagingResponse {
        staging_id: staging_id.to_string(),
        detected_buildpack: None,
        start_command: None,
        droplet_sha256: None,
        error: Some(error.to_string()),
    }
}

fn announce(id: &str, started: Instant) -> ComponentAnnounce {
    ComponentAnnounce {
        kind: "dea".into(),
        id: id.to_string(),
        admin_url: None,
        uptime_s: started.elapsed().as_secs(),
    }
}
