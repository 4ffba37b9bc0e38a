//! `run`: wires the DEA to the bus: subscriptions, timers, shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use proto::{
    subjects, Bus, ComponentAnnounce, FindDropletRequest, RouterStart, StagingActive,
    StagingRecorded, StagingRequest, StagingResult, StagingStop, StartRequest, StopRequest,
    UpdateRequest,
};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::{DeaError, Result};
use crate::instances::Agent;
use crate::outbox::{pump, Outbox};
use crate::staging::{Deliver, Stager, Stagings};

/// Prepares the state dir: leftovers of a previous run are removed, the
/// built-in buildpacks are (re)written.
pub fn prepare_state_dir(state_dir: &Path) -> Result<()> {
    for sub in ["instances", "staging", "staging-out"] {
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
    cfg.size_from_host();
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
        dea_id: cfg.id.clone(),
        passthrough: cfg.passthrough_env(|k| std::env::var(k).ok()),
    };
    let stagings = Stagings::new(stager, deliver_via(&bus));
    agent.attach_stagings(stagings.clone());
    let started = Instant::now();

    let mut tasks: Vec<JoinHandle<()>> =
        staging_tasks(&cfg, &bus, &agent, &stagings, &outbox).await?;
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
            .subscribe::<proto::EgressUpdate>(subjects::DEA_EGRESS)
            .await?;
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let a = a.clone();
                tokio::spawn(async move { a.update_egress(&m.payload).await });
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
        // Every interval, and soon after a staging or an instance took or
        // gave back resources (coalesced), so that controllers' placement
        // follows real work.
        let a = agent.clone();
        let every = Duration::from_secs(cfg.advertise_interval_s.max(1));
        tasks.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = a.advertise_wanted() => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        t.reset();
                    }
                }
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
    // Builds in flight end with a result saying the DEA went away.
    stagings.shutdown(Duration::from_secs(5)).await;
    agent.shutdown().await;
    drop(stagings);
    drop(agent);
    drop(outbox);
    // The pump ends once every sender is gone; don't wait forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), pump_task).await;
    // Bounded: with the server gone a flush would wait for a reconnect.
    let _ = tokio::time::timeout(Duration::from_secs(2), bus.flush()).await;
    tracing::info!("dea stopped");
    Ok(())
}

/// Sends a staging result as a `staging.finished` request; recorded once a
/// controller answers.
fn deliver_via(bus: &Bus) -> Deliver {
    let bus = bus.clone();
    Arc::new(move |result: StagingResult| {
        let bus = bus.clone();
        Box::pin(async move {
            match bus
                .request::<_, StagingRecorded>(
                    subjects::STAGING_FINISHED,
                    &result,
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(r) => r.staging_id == result.staging_id,
                Err(e) => {
                    tracing::warn!(staging_id = %result.staging_id, error = %e, "staging result not recorded yet");
                    false
                }
            }
        })
    })
}

/// The staging subjects: builds handed to this DEA (answered at once),
/// builds a controller gave up on, and `staging.active` every 2 s while
/// builds are in flight.
async fn staging_tasks(
    cfg: &Config,
    bus: &Bus,
    agent: &Arc<Agent>,
    stagings: &Stagings,
    outbox: &Outbox,
) -> Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    {
        let mut sub = bus
            .subscribe::<StagingRequest>(subjects::staging_start(&cfg.id))
            .await?;
        let (a, st, o) = (agent.clone(), stagings.clone(), outbox.clone());
        let cap = cfg.max_staging_timeout_s.max(1);
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let mut req = m.payload;
                req.timeout_s = req.timeout_s.clamp(1, cap);
                // Room after live instances and the builds already held.
                let ad = a.advertisement();
                let accepted = st.accept(req, (ad.available_memory_mb, ad.available_disk_mb));
                match m.reply {
                    Some(reply) => o.send(reply, &accepted),
                    None => tracing::warn!(staging_id = %accepted.staging_id, "staging request without reply subject"),
                }
            }
        }));
    }
    {
        let mut sub = bus
            .subscribe::<StagingStop>(subjects::staging_stop(&cfg.id))
            .await?;
        let st = stagings.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                st.stop(&m.payload.staging_id, m.payload.reason);
            }
        }));
    }
    {
        let (st, o, id) = (stagings.clone(), outbox.clone(), cfg.id.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = tokio::time::interval(STAGING_ACTIVE_INTERVAL);
            loop {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = st.changed() => {}
                }
                let ids = st.load().ids;
                if !ids.is_empty() {
                    o.send(
                        subjects::STAGING_ACTIVE,
                        &StagingActive {
                            dea_id: id.clone(),
                            staging_ids: ids,
                        },
                    );
                }
            }
        }));
    }
    Ok(tasks)
}

/// How often a DEA names its builds in flight (`staging.active`).
pub const STAGING_ACTIVE_INTERVAL: Duration = Duration::from_secs(2);

fn announce(id: &str, started: Instant) -> ComponentAnnounce {
    ComponentAnnounce {
        kind: "dea".into(),
        id: id.to_string(),
        admin_url: None,
        uptime_s: started.elapsed().as_secs(),
    }
}
