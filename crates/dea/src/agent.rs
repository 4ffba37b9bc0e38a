//! `run`: wires the DEA to the bus: subscriptions, timers, shutdown.

use crate::blob_urls::BlobUrls;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use proto::{
    subjects, Bus, ComponentAnnounce, FindDropletRequest, RouterStart, StagingActive,
    StagingRecorded, StagingRequest, StagingResult, StagingStop, StartRequest, StopRequest,
    UpdateRequest,
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::{DeaError, Result};
use crate::instances::Agent;
use crate::outbox::{pump, Outbox};
use crate::staging::{Deliver, Stager, Stagings};

/// Prepares the state dir: leftovers of a previous run are removed, the
/// built-in buildpacks are (re)written.
pub fn prepare_state_dir(state_dir: &Path) -> Result<()> {
    // A crashed run's containers' disk volumes are still mounted on their
    // directories (and ready ones under disks/).
    crate::backend::namespaces::unmount_leftovers(state_dir);
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
    // Cached droplets are tenants' code: the DEA's only (instances get
    // their copy through their own mounts).
    let droplets = state_dir.join("droplets");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&droplets, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| DeaError::io(&droplets, e))?;
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
    // A bad `tls_ca_file` stops the DEA here (Agent::new cannot fail).
    cfg.http_client()?;
    let blob_urls = Arc::new(BlobUrls::new(&cfg.controller_urls));
    if !blob_urls.enforced() {
        if !cfg.allow_any_blob_url {
            return Err(crate::error::DeaError::Config(
                "controller_urls is empty (or names no valid URL): set the controllers' internal API URLs, from which alone the DEA fetches droplets and packages (allow_any_blob_url = true turns the check off, for tests)".into(),
            ));
        }
        tracing::warn!("allow_any_blob_url: start and staging requests may name any URL");
    }
    let backend = crate::backend::from_config(&cfg)?;
    let bus = Bus::connect_with(&cfg.nats_url, &cfg.bus, "dea").await?;
    tracing::info!(id = %cfg.id, nats = %cfg.nats_url, backend = backend.name(), state_dir = %cfg.state_dir.display(), "dea starting");
    let (outbox, rx) = Outbox::with_log_queue(cfg.log_queue_kb.saturating_mul(1024));
    let pump_task = tokio::spawn(pump(bus.clone(), rx, outbox.log_queue()));
    let agent = Agent::new(cfg.clone(), backend.clone(), outbox.clone());
    let stager = Stager {
        backend,
        outbox: outbox.clone(),
        http: agent.http.clone(),
        state_dir: cfg.state_dir.clone(),
        dea_id: cfg.id.clone(),
        passthrough: cfg.passthrough_env(|k| std::env::var(k).ok()),
        limits: cfg.archive_limits(),
        slots: crate::staging::Slots::new(cfg.staging_slots()),
    };
    let stagings = Stagings::new(stager, deliver_via(&bus));
    agent.attach_stagings(stagings.clone());
    let started = Instant::now();

    let mut tasks: Vec<JoinHandle<()>> =
        staging_tasks(&cfg, &bus, &agent, &stagings, &outbox, blob_urls.clone()).await?;
    // Subject → what the agent does with each message.
    let (o, id) = (outbox.clone(), cfg.id.clone());
    let handlers = Handlers::new(&bus, &agent)
        .on(subjects::dea_start(&cfg.id), move |a, m: Msg<StartRequest>| {
            // Only signed controller blob URLs are fetched (issue 13).
            match blob_urls.check_start(&m.payload, chrono::Utc::now().timestamp()) {
                Ok(()) => {
                    a.start(m.payload);
                }
                Err(e) => {
                    tracing::warn!(app_id = %m.payload.app_id, index = m.payload.index, error = %e, "start refused");
                    a.outbox.log_as(
                        &m.payload.log_owner(),
                        proto::LogSource::Cell,
                        Some(m.payload.index),
                        proto::LogStream::Stderr,
                        &format!("Instance not started: {e}"),
                    );
                }
            }
        })
        .on(subjects::DEA_STOP, |a, m: Msg<StopRequest>| {
            detach(a, |a| async move { a.stop_matching(&m.payload).await })
        })
        .on(subjects::DEA_UPDATE, |a, m: Msg<UpdateRequest>| {
            a.update(&m.payload)
        })
        .on(
            subjects::DEA_FIND_DROPLET,
            |a, m: Msg<FindDropletRequest>| {
                let Some(reply) = m.reply else { return };
                detach(a, |a| async move {
                    for r in a.find(&m.payload).await {
                        a.outbox.send(reply.clone(), &r);
                    }
                })
            },
        )
        .on(subjects::ROUTER_START, |a, m: Msg<RouterStart>| {
            a.on_router_start(&m.payload)
        })
        .on(subjects::DEA_EGRESS, |a, m: Msg<proto::EgressUpdate>| {
            detach(a, |a| async move { a.update_egress(&m.payload).await })
        })
        // Raw subscriptions: these requests may come with an empty body.
        .on_raw(subjects::DEA_LOCATE, |a, _| a.publish_advertise())
        .on_raw(subjects::COMPONENT_DISCOVER, move |_, reply| {
            if let Some(r) = reply {
                o.send(r, &announce(&id, started));
            }
        });
    tasks.extend(handlers.subscribe().await?);
    // Timers.
    // Cached droplets no instance uses go (docs/architecture.md §10.6).
    tasks.extend(crate::droplet_cache::spawn(agent.clone()));
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
    blob_urls: Arc<BlobUrls>,
) -> Result<Vec<JoinHandle<()>>> {
    let cap = cfg.max_staging_timeout_s.max(1);
    let dea_id = cfg.id.clone();
    let (st, o, st_stop) = (stagings.clone(), outbox.clone(), stagings.clone());
    let handlers = Handlers::new(bus, agent)
        .on(subjects::staging_start(&cfg.id), move |a, m: Msg<StagingRequest>| {
            let mut req = m.payload;
            req.timeout_s = req.timeout_s.clamp(1, cap);
            if let Err(e) = blob_urls.check_staging(&req, chrono::Utc::now().timestamp()) {
                tracing::warn!(staging_id = %req.staging_id, error = %e, "staging refused");
                let refused = proto::StagingAccepted {
                    staging_id: req.staging_id.clone(),
                    dea_id: dea_id.clone(),
                    error: Some(proto::StagingFailure::new(
                        proto::StagingErrorId::StagingError,
                        e.to_string(),
                    )),
                };
                if let Some(reply) = m.reply {
                    o.send(reply, &refused);
                }
                return;
            }
            // Room after live instances and the builds already held.
            let ad = a.advertisement();
            let accepted = st.accept(req, (ad.available_memory_mb, ad.available_disk_mb));
            match m.reply {
                Some(reply) => o.send(reply, &accepted),
                None => tracing::warn!(staging_id = %accepted.staging_id, "staging request without reply subject"),
            }
        })
        .on(subjects::staging_stop(&cfg.id), move |_, m: Msg<StagingStop>| {
            st_stop.stop(&m.payload.staging_id, m.payload.reason)
        });
    let mut tasks = handlers.subscribe().await?;
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

/// A message received on a subscription.
type Msg<T> = proto::bus::Incoming<T>;

/// A subscription being made; resolves to the task handling its messages.
type Subscribing<'a> = Pin<Box<dyn Future<Output = Result<JoinHandle<()>>> + Send + 'a>>;

/// The table of subscriptions: subject → handler. Each subscription gets a
/// task that hands its messages, one at a time and in order, to its
/// handler with the agent; a handler that waits runs that part on another
/// task (`detach`) so that the next message is not held up.
struct Handlers<'a> {
    bus: &'a Bus,
    agent: Arc<Agent>,
    subs: Vec<Subscribing<'a>>,
}

impl<'a> Handlers<'a> {
    fn new(bus: &'a Bus, agent: &Arc<Agent>) -> Handlers<'a> {
        Handlers {
            bus,
            agent: agent.clone(),
            subs: Vec::new(),
        }
    }

    /// `subject` → `f` on each well-formed message.
    fn on<T, F>(mut self, subject: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(&Arc<Agent>, Msg<T>) + Send + 'static,
    {
        let (bus, a, subject) = (self.bus, self.agent.clone(), subject.into());
        self.subs.push(Box::pin(async move {
            let mut sub = bus.subscribe::<T>(subject).await?;
            Ok(tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    f(&a, m);
                }
            }))
        }));
        self
    }

    /// As `on`, for requests that may come with an empty body: `f` gets
    /// only the reply subject.
    fn on_raw<F>(mut self, subject: &'static str, f: F) -> Self
    where
        F: Fn(&Arc<Agent>, Option<String>) + Send + 'static,
    {
        let (bus, a) = (self.bus, self.agent.clone());
        self.subs.push(Box::pin(async move {
            let mut sub =
                bus.client()
                    .subscribe(subject)
                    .await
                    .map_err(|e| proto::BusError::Subscribe {
                        subject: subject.into(),
                        message: e.to_string(),
                    })?;
            Ok(tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    f(&a, m.reply.map(|r| r.to_string()));
                }
            }))
        }));
        self
    }

    /// Subscribes, in the table's order, and starts each handler's task.
    async fn subscribe(self) -> Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::with_capacity(self.subs.len());
        for s in self.subs {
            tasks.push(s.await?);
        }
        Ok(tasks)
    }
}

/// Runs `f` on its own task with a clone of the agent.
fn detach<Fut>(agent: &Arc<Agent>, f: impl FnOnce(Arc<Agent>) -> Fut)
where
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(f(agent.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// No `controller_urls`: the DEA will not run (it would fetch any URL a
    /// start request names), before it touches the backend or the bus.
    #[tokio::test]
    async fn refuses_to_run_without_controller_urls() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cfg = Config {
            state_dir: tmp.path().join("state"),
            nats_url: "nats://127.0.0.1:9".into(),
            ..Config::default()
        };
        let e = run(cfg, std::future::pending()).await.expect_err("refused");
        assert!(e.to_string().contains("controller_urls is empty"), "{e}");
    }
}
