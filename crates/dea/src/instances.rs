//! The instance logic of the DEA: start (droplet → container → process →
//! health check → RUNNING → route), crash handling, stop, update, find,
//! heartbeats and advertisements. Everything outgoing goes through the
//! `Outbox`, so this module is tested with the sim backend and no NATS.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use proto::subjects;
use proto::{
    DeaAdvertise, DeaShutdown, DropletExited, ExitReason, FindDropletRequest, FindDropletResponse,
    HealthCheckType, Heartbeat, InstanceState, LogSource, LogStream, RouteRegistration,
    StartRequest, StopRequest, UpdateRequest,
};
use tokio::sync::{mpsc, Notify};

use crate::backend::{Backend, ContainerSpec, ExitInfo, ProcessSpec};
use crate::cell_log;
use crate::config::Config;
use crate::env::{build_env, start_script, EnvInput};
use crate::error::{DeaError, Result};
use crate::outbox::{spawn_line_reader_max, LogRateLimit, Outbox, LINE_CHANNEL};
use crate::registry::{Filter, Instance, Registry};
use crate::staging::Stagings;
use crate::state::Lifecycle;
use InstanceState::*;

/// How long one health probe may take: the check's invocation timeout
/// (seconds), 1 s when none is given.
fn probe_timeout(invocation_timeout_s: Option<u64>) -> Duration {
    Duration::from_secs(invocation_timeout_s.unwrap_or(1).max(1))
}

/// Between unregistering an evacuated instance and stopping it.
const EVACUATION_UNREGISTER_GRACE: Duration = Duration::from_secs(1);

pub struct Agent {
    pub cfg: Config,
    pub backend: Arc<dyn Backend>,
    pub outbox: Outbox,
    pub http: reqwest::Client,
    registry: Mutex<Registry>,
    register_interval_s: AtomicU64,
    stale_threshold_s: AtomicU64,
    draining: AtomicBool,
    /// The builds in flight, counted in adverts (once attached).
    stagings: OnceLock<Stagings>,
    /// Placement ids of recent starts (named in adverts for a while).
    recent_placements: Mutex<VecDeque<(String, tokio::time::Instant)>>,
    /// Wakes the advertiser.
    advertise: Notify,
}

/// How long an advert names a start's placement id.
pub const PLACEMENT_MEMORY: Duration = Duration::from_secs(10);
/// Most placement ids an advert names.
const MAX_PLACEMENTS: usize = 512;

impl Agent {
    pub fn new(cfg: Config, backend: Arc<dyn Backend>, outbox: Outbox) -> Arc<Agent> {
        // `run` has checked the config's client builds; the fallback
        // (webpki roots only) is for callers that did not.
        let http = cfg.http_client().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "HTTP client without tls_ca_file");
            proto::https::install_ring();
            reqwest::Client::new()
        });
        Arc::new(Agent {
            cfg,
            backend,
            outbox,
            http,
            registry: Mutex::new(Registry::default()),
            register_interval_s: AtomicU64::new(5),
            stale_threshold_s: AtomicU64::new(20),
            draining: AtomicBool::new(false),
            stagings: OnceLock::new(),
            recent_placements: Mutex::new(VecDeque::new()),
            advertise: Notify::new(),
        })
    }

    /// Counts the builds of `stagings` in this DEA's adverts.
    pub fn attach_stagings(&self, stagings: Stagings) {
        let _ = self.stagings.set(stagings);
    }

    /// Asks for an advert soon (resources were taken or given back).
    pub fn advertise_soon(&self) {
        self.advertise.notify_one();
    }

    /// Resolves when an advert was asked for (by a start, a stop or a
    /// staging).
    pub async fn advertise_wanted(&self) {
        match self.stagings.get() {
            Some(st) => tokio::select! {
                _ = self.advertise.notified() => {}
                _ = st.changed() => {}
            },
            None => self.advertise.notified().await,
        }
    }

    /// Live placement ids (older ones are dropped).
    fn placements(&self) -> Vec<String> {
        let mut q = self
            .recent_placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        while q
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > PLACEMENT_MEMORY)
        {
            q.pop_front();
        }
        q.iter().map(|(id, _)| id.clone()).collect()
    }

    fn remember_placement(&self, id: &str) {
        if id.is_empty() || id.len() > 64 {
            return;
        }
        let mut q = self
            .recent_placements
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_PLACEMENTS {
            q.pop_front();
        }
        q.push_back((id.to_string(), tokio::time::Instant::now()));
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the droplets of every instance on record, the
    /// registry locked: no start can pick a cached droplet meanwhile
    /// (`crate::droplet_cache` removes files only inside `f`).
    pub fn with_droplets_in_use<R>(&self, f: impl FnOnce(&HashSet<String>) -> R) -> R {
        let reg = self.lock();
        f(&reg.droplets_in_use())
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("instances")
    }

    pub fn state_of(&self, id: &str) -> Option<InstanceState> {
        self.lock().instances.get(id).map(|i| i.life.state)
    }

    /// Applies a transition; returns a copy of the instance when allowed.
    /// Publishes a heartbeat on every change.
    fn transition(&self, id: &str, to: InstanceState) -> Option<Instance> {
        let copy = {
            let mut reg = self.lock();
            let i = reg.instances.get_mut(id)?;
            if let Err(e) = i.life.transition(to, proto::now_unix()) {
                tracing::debug!(instance_id = %id, error = %e, "transition refused");
                return None;
            }
            i.clone()
        };
        tracing::info!(instance_id = %id, app_id = %copy.app_id, index = copy.index, state = to.as_str(), "instance state");
        self.publish_heartbeat();
        Some(copy)
    }

    // ---- periodic messages -------------------------------------------------

    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            dea_id: self.cfg.id.clone(),
            instances: self.lock().heartbeats(),
        }
    }

    pub fn publish_heartbeat(&self) {
        self.outbox.send(subjects::DEA_HEARTBEAT, &self.heartbeat());
    }

    /// Capacity left after live instances and builds in flight, and the
    /// placements those figures already count.
    pub fn advertisement(&self) -> DeaAdvertise {
        let c = self.lock().capacity(self.cfg.memory_mb, self.cfg.disk_mb);
        let load = self.stagings.get().map(Stagings::load).unwrap_or_default();
        let mut placements = load.ids;
        placements.extend(self.placements());
        DeaAdvertise {
            id: self.cfg.id.clone(),
            stacks: self.cfg.stacks.clone(),
            available_memory_mb: c.available_memory_mb.saturating_sub(load.memory_mb),
            available_disk_mb: c.available_disk_mb.saturating_sub(load.disk_mb),
            app_id_to_count: c.app_id_to_count,
            zone: self.cfg.zone.clone(),
            url: None,
            placements,
            memory_capacity_mb: self.cfg.memory_mb,
            disk_capacity_mb: self.cfg.disk_mb,
        }
    }

    /// Advertises capacity (not while draining: no new placements here).
    pub fn publish_advertise(&self) {
        if self.is_draining() {
            return;
        }
        self.outbox
            .send(subjects::DEA_ADVERTISE, &self.advertisement());
    }

    // ---- routes ------------------------------------------------------------

    pub fn register_interval(&self) -> Duration {
        Duration::from_secs(self.register_interval_s.load(Ordering::Relaxed).max(1))
    }

    /// Applies a `router.start` and re-registers at once.
    pub fn on_router_start(&self, msg: &proto::RouterStart) {
        if msg.minimum_register_interval_s > 0 {
            self.register_interval_s
                .store(msg.minimum_register_interval_s, Ordering::Relaxed);
        }
        if msg.prune_threshold_s > 0 {
            self.stale_threshold_s
                .store(msg.prune_threshold_s, Ordering::Relaxed);
        }
        self.register_all();
    }

    fn route(&self, i: &Instance, uris: Vec<String>) -> RouteRegistration {
        RouteRegistration {
            host: self.cfg.host_ip.clone(),
            port: i.port,
            uris,
            // The app's guid (a deployment's instances have bus ids of
            // their own): routers admit routes assigned to the app.
            app_id: Some(i.log.app_id.clone()),
            instance_id: Some(i.id.clone()),
            tags: BTreeMap::new(),
            stale_threshold_s: Some(self.stale_threshold_s.load(Ordering::Relaxed)),
        }
    }

    fn send_route(&self, subject: &str, i: &Instance, uris: Vec<String>) {
        if !uris.is_empty() && i.port != 0 {
            self.outbox.send(subject, &self.route(i, uris));
        }
    }

    /// (Re-)registers every routable instance.
    pub fn register_all(&self) {
        let list: Vec<Instance> = self
            .lock()
            .instances
            .values()
            .filter(|i| matches!(i.life.state, Running | Evacuating) && i.ready)
            .cloned()
            .collect();
        for i in list {
            self.send_route(subjects::ROUTER_REGISTER, &i, i.uris.clone());
        }
    }

    /// Marks instance `id` ready or not; its copy when that changed.
    fn set_ready(&self, id: &str, ready: bool) -> Option<Instance> {
        let mut reg = self.lock();
        let i = reg.instances.get_mut(id)?;
        if i.ready == ready {
            return None;
        }
        i.ready = ready;
        Some(i.clone())
    }

    // ---- start -------------------------------------------------------------

    /// Accepts a `dea.<id>.start`: records the instance (BORN) and starts it
    /// in the background. Returns the instance id.
    pub fn start(self: &Arc<Self>, req: StartRequest) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let inst = Instance {
            id: id.clone(),
            app_id: req.app_id.clone(),
            log: req.log_owner(),
            version: req.version.clone(),
            index: req.index,
            limits: req.limits,
            uris: req.uris.clone(),
            life: Lifecycle::new(proto::now_unix()),
            port: 0,
            container: None,
            droplet_sha256: req.droplet_sha256.trim().to_ascii_lowercase(),
            task: req.is_task(),
            ready: req.readiness.is_none(),
        };
        self.lock().instances.insert(id.clone(), inst);
        if let Some(p) = &req.placement_id {
            self.remember_placement(p);
        }
        tracing::info!(instance_id = %id, app_id = %req.app_id, index = req.index, version = %req.version, "starting instance");
        self.publish_heartbeat();
        self.advertise_soon();
        let me = self.clone();
        let iid = id.clone();
        tokio::spawn(async move {
            if let Err(e) = me.launch(&iid, &req).await {
                tracing::warn!(instance_id = %iid, app_id = %req.app_id, error = %e, "instance failed to start");
                me.outbox.log_as(
                    &req.log_owner(),
                    LogSource::App,
                    Some(req.index),
                    LogStream::Stderr,
                    &format!("Failed to start instance: {e}"),
                );
                me.crashed(&iid, None, format!("failed to start: {e}"))
                    .await;
            }
        });
        id
    }

    /// Whether the instance is still in `state` (a stop may have come in).
    fn still(&self, id: &str, state: InstanceState) -> bool {
        self.state_of(id) == Some(state)
    }

    async fn launch(self: &Arc<Self>, id: &str, req: &StartRequest) -> Result<()> {
        if self.transition(id, Starting).is_none() {
            return Ok(());
        }
        let droplet = self.fetch_droplet(req).await?;
        let root = self.instances_dir().join(id);
        self.cell_log(req, LogStream::Stdout, cell_log::creating(&self.cfg.id, id));
        let container = self
            .backend
            .create(ContainerSpec {
                id: id.to_string(),
                root: root.clone(),
                memory_mb: req.limits.memory_mb,
                disk_mb: req.limits.disk_mb,
                egress: req.egress.clone(),
            })
            .await?;
        let attached = {
            let mut reg = self.lock();
            match reg.instances.get_mut(id) {
                Some(i) if i.life.state == Starting => {
                    i.container = Some(container.clone());
                    true
                }
                _ => false,
            }
        };
        if !attached {
            let _ = self.backend.destroy(&container).await;
            return Ok(());
        }
        self.cell_log(req, LogStream::Stdout, cell_log::created(&self.cfg.id, id));
        let (d, r) = (droplet.clone(), root.clone());
        let limits = self
            .cfg
            .archive_limits()
            .unpacked_at_most(req.limits.disk_mb.saturating_mul(1024 * 1024));
        tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&d).map_err(|e| DeaError::io(&d, e))?;
            let packed = f.metadata().map_err(|e| DeaError::io(&d, e))?.len();
            crate::archive::untar_gz_safe(std::io::BufReader::new(f), &r, limits, packed)
        })
        .await
        .map_err(|e| DeaError::Backend(format!("extract task: {e}")))??;
        for d in [root.join("app"), root.join("tmp")] {
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(|e| DeaError::io(&d, e))?;
        }
        let command = match req.start_command.trim() {
            "" => tokio::fs::read_to_string(root.join(proto::droplet::STAGING_INFO_FILE))
                .await
                .ok()
                .and_then(|t| proto::droplet::StagingInfo::from_json_or_simple_yaml(&t))
                .map(|i| i.start_command)
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| DeaError::Backend("no start command".into()))?,
            c => c.to_string(),
        };
        let port = self.reserve_port(&container).await?;
        {
            let mut reg = self.lock();
            if let Some(i) = reg.instances.get_mut(id) {
                i.port = port;
            }
        }
        let started_at = proto::now_rfc3339();
        let path = crate::staging::host_path();
        let mut env = build_env(&EnvInput {
            req,
            instance_id: id,
            host_ip: &self.cfg.host_ip,
            port,
            instance_dir: &root,
            started_at: &started_at,
            started_at_unix: chrono::Utc::now().timestamp(),
            path: &path,
        });
        if let Some(inside) = self.backend.app_port() {
            // The app listens on its own port inside the container; the
            // host port reaches it through the backend (DNAT, exposed by
            // `reserve_port`).
            for (k, v) in env.iter_mut() {
                if k == "PORT" {
                    *v = inside.to_string();
                }
            }
        }
        if !self.still(id, Starting) {
            return Ok(());
        }
        let spawned = self
            .backend
            .spawn(
                &container,
                ProcessSpec {
                    script: start_script(&command),
                    env,
                    cwd: root.join("app"),
                },
            )
            .await?;
        tracing::info!(instance_id = %id, pid = ?spawned.pid, port, command = %command, "instance process started");
        self.forward_logs(req, spawned.stdout, spawned.stderr);
        let me = self.clone();
        let iid = id.to_string();
        let wait = spawned.wait;
        let c = container.clone();
        let req_for_exit = req.clone();
        tokio::spawn(async move {
            match wait.await {
                Ok(exit) => {
                    let reason = me.backend.exit_reason(&c);
                    if me.is_live(&iid) {
                        me.cell_log(
                            &req_for_exit,
                            LogStream::Stdout,
                            cell_log::exit_status(&exit, reason.as_deref()),
                        );
                    }
                    let desc = reason.unwrap_or_else(|| exit.description());
                    if req_for_exit.is_task() && exit.status() == 0 {
                        me.exited(&iid, Some(exit), desc, ExitReason::Completed)
                            .await
                    } else {
                        me.crashed(&iid, Some(exit), desc).await
                    }
                }
                Err(e) => me.crashed(&iid, None, e.to_string()).await,
            }
        });
        if !self.still(id, Starting) {
            // Stopped while we were spawning: make sure nothing survives.
            let _ = self.backend.stop(&container, Duration::ZERO).await;
            return Ok(());
        }
        if req.is_task() {
            // A task runs until it exits: no health check, no route.
            self.transition(id, Running);
            return Ok(());
        }
        self.health_check(id, req, port).await
    }

    fn forward_logs(
        &self,
        req: &StartRequest,
        stdout: Option<crate::backend::BoxRead>,
        stderr: Option<crate::backend::BoxRead>,
    ) {
        let (tx, mut rx) = mpsc::channel(LINE_CHANNEL);
        let max_line = self.cfg.log_max_line_bytes;
        spawn_line_reader_max(stdout, LogStream::Stdout, tx.clone(), max_line);
        spawn_line_reader_max(stderr, LogStream::Stderr, tx, max_line);
        let outbox = self.outbox.clone();
        let (owner, index) = (req.log_owner(), req.index);
        let mut limit = LogRateLimit::for_instance(
            self.cfg.log_rate_limit_bytes_per_s,
            req.log_rate_limit_bytes_per_s,
        );
        tokio::spawn(async move {
            while let Some((stream, line)) = rx.recv().await {
                if limit.allow(line.len()) {
                    outbox.log_as(&owner, LogSource::App, Some(index), stream, &line);
                } else if let Some(notice) = limit.notice() {
                    tracing::info!(app_id = %owner.app_id, index, dropped = limit.dropped(), "app log rate limit exceeded");
                    outbox.log_as(
                        &owner,
                        LogSource::App,
                        Some(index),
                        LogStream::Stderr,
                        &notice,
                    );
                }
            }
        });
    }

    async fn health_check(self: &Arc<Self>, id: &str, req: &StartRequest, port: u16) -> Result<()> {
        let hc = &req.health_check;
        let limit = Duration::from_secs(hc.timeout_s.max(1));
        let deadline = tokio::time::Instant::now() + limit;
        if hc.kind != HealthCheckType::Process {
            self.cell_log(req, LogStream::Stdout, cell_log::HEALTH_MONITORING.into());
        }
        let invocation = probe_timeout(hc.invocation_timeout_s);
        // Apps usually listen within tens of milliseconds: look again soon,
        // then less and less often.
        let mut pause = Duration::from_millis(5);
        loop {
            if !self.still(id, Starting) {
                return Ok(());
            }
            let Some(why) = self
                .probe(hc.kind, hc.endpoint.as_deref(), port, invocation)
                .await
            else {
                break;
            };
            if tokio::time::Instant::now() >= deadline {
                self.health_log(req, &why);
                let desc = cell_log::timed_out(limit);
                self.cell_log(req, LogStream::Stderr, desc.clone());
                self.crashed(id, None, desc).await;
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        if hc.kind != HealthCheckType::Process {
            self.cell_log(req, LogStream::Stdout, cell_log::HEALTHY.into());
        }
        if let Some(i) = self.transition(id, Running) {
            // With a readiness check, routed once it passes (the monitor).
            if i.ready {
                self.send_route(subjects::ROUTER_REGISTER, &i, i.uris.clone());
            }
        }
        if hc.kind != HealthCheckType::Process || req.readiness.is_some() {
            let me = self.clone();
            let (id, req) = (id.to_string(), req.clone());
            tokio::spawn(async move { me.monitor(&id, &req, port).await });
        }
        Ok(())
    }

    /// While instance `id` runs: its liveness check every `interval_s`
    /// (30 s; a failure crashes it, as CF's), and its readiness check every
    /// readiness `interval_s` (30 s; routed only while it passes).
    async fn monitor(self: &Arc<Self>, id: &str, req: &StartRequest, port: u16) {
        let hc = &req.health_check;
        let live_every = Duration::from_secs(hc.interval_s.unwrap_or(30).max(1));
        let live_timeout = probe_timeout(hc.invocation_timeout_s);
        let now = tokio::time::Instant::now();
        let mut next_live = (hc.kind != HealthCheckType::Process).then_some(now + live_every);
        let mut next_ready = req.readiness.as_ref().map(|_| now);
        loop {
            let wake = match (next_live, next_ready) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return,
            };
            tokio::time::sleep_until(wake).await;
            if !matches!(self.state_of(id), Some(Running | Evacuating)) {
                return;
            }
            let now = tokio::time::Instant::now();
            if let (Some(at), Some(rc)) = (next_ready, req.readiness.as_ref()) {
                // An evacuating instance keeps its routes as evacuation
                // decides: readiness acts on running ones only.
                if now >= at {
                    if self.state_of(id) == Some(Running) {
                        let timeout = probe_timeout(rc.invocation_timeout_s);
                        let failure = self
                            .probe(rc.kind, rc.endpoint.as_deref(), port, timeout)
                            .await;
                        self.readiness_changed(id, req, failure);
                    }
                    let every = Duration::from_secs(rc.interval_s.unwrap_or(30).max(1));
                    next_ready = Some(now + every);
                }
            }
            if let Some(at) = next_live {
                if now >= at {
                    if let Some(why) = self
                        .probe(hc.kind, hc.endpoint.as_deref(), port, live_timeout)
                        .await
                    {
                        if !matches!(self.state_of(id), Some(Running | Evacuating)) {
                            return;
                        }
                        self.health_log(req, &why);
                        self.cell_log(req, LogStream::Stderr, cell_log::UNHEALTHY.into());
                        self.crashed(id, None, format!("{}: {why}", cell_log::UNHEALTHY))
                            .await;
                        return;
                    }
                    next_live = Some(now + live_every);
                }
            }
        }
    }

    /// A readiness probe's outcome: routes the instance when it becomes
    /// ready, unroutes it when it stops being ready.
    fn readiness_changed(&self, id: &str, req: &StartRequest, failure: Option<String>) {
        let ready = failure.is_none();
        let Some(i) = self.set_ready(id, ready) else {
            return;
        };
        if ready {
            self.cell_log(req, LogStream::Stdout, cell_log::READY.into());
            self.send_route(subjects::ROUTER_REGISTER, &i, i.uris.clone());
        } else {
            if let Some(why) = &failure {
                self.health_log(req, why);
            }
            self.cell_log(req, LogStream::Stderr, cell_log::NOT_READY.into());
            self.send_route(subjects::ROUTER_UNREGISTER, &i, i.uris.clone());
        }
    }

    /// A `HEALTH` line (why a probe failed) in the instance's app's log.
    fn health_log(&self, req: &StartRequest, why: &str) {
        self.outbox.log_as(
            &req.log_owner(),
            LogSource::Health,
            Some(req.index),
            LogStream::Stderr,
            why,
        );
    }

    /// One probe of `kind` on `port`: `None` when it passes, else why not
    /// (CF's words).
    async fn probe(
        &self,
        kind: HealthCheckType,
        endpoint: Option<&str>,
        port: u16,
        timeout: Duration,
    ) -> Option<String> {
        let host = self.cfg.host_ip.as_str();
        match kind {
            HealthCheckType::Process => None,
            HealthCheckType::Port => {
                let connect = tokio::net::TcpStream::connect((host, port));
                match tokio::time::timeout(timeout, connect).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(cell_log::tcp_failure(port, &cell_log::probe_error(&e))),
                    Err(_) => Some(cell_log::tcp_failure(port, "timeout")),
                }
            }
            HealthCheckType::Http => {
                let ep = endpoint.unwrap_or("/");
                let sep = if ep.starts_with('/') { "" } else { "/" };
                let url = format!("http://{host}:{port}{sep}{ep}");
                let r = self.http.get(&url).timeout(timeout).send().await;
                let why = match r {
                    Ok(resp) if resp.status() == reqwest::StatusCode::OK => None,
                    Ok(resp) => Some(format!("received status code {}", resp.status().as_u16())),
                    Err(e) if e.is_timeout() => Some("timeout".to_string()),
                    Err(e) if e.is_connect() => Some("connection refused".to_string()),
                    Err(_) => Some("the request failed".to_string()),
                };
                why.map(|w| cell_log::http_failure(&format!("{sep}{ep}"), port, &w))
            }
        }
    }

    /// A free host port for an instance; with a backend that maps it into
    /// the container, exposed (held) too. Between picking a free port and
    /// holding it another process may take it: then another port, a few
    /// times.
    async fn reserve_port(&self, container: &crate::backend::Container) -> Result<u16> {
        let mut attempt = 0;
        loop {
            let port = pick_port(&self.cfg.host_ip)?;
            if self.backend.app_port().is_none() {
                return Ok(port);
            }
            match self.backend.expose(container, port).await {
                Ok(()) => return Ok(port),
                Err(e) if attempt < 4 => {
                    tracing::debug!(port, error = %e, "port taken meanwhile; another");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A `CELL` line about instance `req` in its app's log.
    fn cell_log(&self, req: &StartRequest, stream: LogStream, line: String) {
        self.outbox.log_as(
            &req.log_owner(),
            LogSource::Cell,
            Some(req.index),
            stream,
            &line,
        );
    }

    /// Whether instance `id` is starting or serving (its exit is news).
    fn is_live(&self, id: &str) -> bool {
        self.state_of(id).is_some_and(|s| s.is_live())
    }

    /// The droplet from the local cache (by sha256) or downloaded into it.
    async fn fetch_droplet(&self, req: &StartRequest) -> Result<PathBuf> {
        let dir = self.cfg.state_dir.join("droplets");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| DeaError::io(&dir, e))?;
        let expected = req.droplet_sha256.trim().to_ascii_lowercase();
        let valid = !expected.is_empty() && expected.bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            let cached = dir.join(format!("{expected}.tgz"));
            if tokio::fs::metadata(&cached).await.is_ok() {
                return Ok(cached);
            }
        }
        let tmp = dir.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let max = self.cfg.archive_limits().max_packed_bytes;
        let got = crate::http::download(&self.http, &req.droplet_uri, &tmp, max).await;
        let actual = match got {
            Ok(Some(sha)) => sha,
            Ok(None) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(DeaError::Http("droplet not found".into()));
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        if !expected.is_empty() && actual != expected {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(DeaError::Checksum { expected, actual });
        }
        let path = dir.join(format!("{actual}.tgz"));
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| DeaError::io(&path, e))?;
        Ok(path)
    }

    // ---- exits -------------------------------------------------------------

    /// An unexpected end (process exit, failed start, health check): CRASHED,
    /// unregister, `droplet.exited`, forget after the retention period.
    /// No-op when the instance is not live (e.g. it is being stopped).
    pub async fn crashed(self: &Arc<Self>, id: &str, exit: Option<ExitInfo>, description: String) {
        self.exited(id, exit, description, ExitReason::Crashed)
            .await
    }

    /// [`Agent::crashed`], reporting `reason`: `Completed` for a task that
    /// exited 0 (kept as CRASHED, that is no longer live, until forgotten).
    async fn exited(
        self: &Arc<Self>,
        id: &str,
        exit: Option<ExitInfo>,
        description: String,
        reason: ExitReason,
    ) {
        let was_routed = matches!(self.state_of(id), Some(Running | Evacuating));
        let Some(i) = self.transition(id, Crashed) else {
            return;
        };
        if reason == ExitReason::Completed {
            tracing::info!(instance_id = %id, app_id = %i.app_id, "task completed");
        } else {
            tracing::warn!(instance_id = %id, app_id = %i.app_id, index = i.index, reason = %description, "instance crashed");
        }
        if was_routed {
            self.send_route(subjects::ROUTER_UNREGISTER, &i, i.uris.clone());
        }
        self.outbox.send(
            subjects::DROPLET_EXITED,
            &DropletExited {
                app_id: i.app_id.clone(),
                version: i.version.clone(),
                index: i.index,
                instance_id: i.id.clone(),
                reason,
                exit_status: exit.map(|e| e.status()),
                exit_description: description,
                crash_timestamp: proto::now_unix(),
            },
        );
        if let Some(c) = &i.container {
            let _ = self.backend.stop(c, Duration::from_secs(1)).await;
        }
        let me = self.clone();
        let id = id.to_string();
        let retention = Duration::from_secs(self.cfg.crashed_retention_s);
        tokio::spawn(async move {
            tokio::time::sleep(retention).await;
            me.forget_crashed(&id).await;
        });
    }

    async fn forget_crashed(&self, id: &str) {
        let removed = {
            let mut reg = self.lock();
            match reg.instances.get(id) {
                Some(i) if i.life.state == Crashed => reg.instances.remove(id),
                _ => None,
            }
        };
        if let Some(i) = removed {
            if let Some(c) = &i.container {
                let _ = self.backend.destroy(c).await;
            }
            self.publish_heartbeat();
        }
    }

    // ---- stop / update / find ----------------------------------------------

    /// New egress rules for the app's running instances (its space's
    /// running security groups changed).
    pub async fn update_egress(&self, u: &proto::EgressUpdate) {
        let containers: Vec<crate::backend::Container> = self
            .lock()
            .instances
            .values()
            // Every process of the app: its bus ids differ (other types,
            // a deployed web process), its log owner is the app.
            .filter(|i| {
                (i.app_id == u.app_id || i.log.app_id == u.app_id) && i.life.state.is_live()
            })
            .filter_map(|i| i.container.clone())
            .collect();
        for c in containers {
            if let Err(e) = self.backend.set_egress(&c, &u.rules).await {
                tracing::warn!(app_id = %u.app_id, container = %c.id, error = %e, "cannot apply egress rules");
            }
        }
    }

    pub async fn stop_matching(self: &Arc<Self>, req: &StopRequest) {
        let f = Filter {
            app_id: &req.app_id,
            version: req.version.as_deref(),
            instance_ids: req.instance_ids.as_deref(),
            indices: req.indices.as_deref(),
        };
        let ids = self.lock().matching(&f);
        let drain = Duration::from_secs(req.drain_s.unwrap_or(0).min(proto::MAX_STOP_DRAIN_S));
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let me = self.clone();
                tokio::spawn(
                    async move { me.stop_instance_with(&id, ExitReason::Stopped, drain).await },
                )
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// STOPPING → unregister → stop → STOPPED, `droplet.exited` STOPPED,
    /// files removed. A CRASHED instance is just forgotten.
    pub async fn stop_instance(self: &Arc<Self>, id: &str) {
        self.stop_instance_with(id, ExitReason::Stopped, Duration::ZERO)
            .await
    }

    /// As [`Self::stop_instance`]; a routed instance gets `drain` between
    /// its unregistration and SIGTERM (a deployment's graceful stop; an
    /// evacuation waits `EVACUATION_UNREGISTER_GRACE`).
    async fn stop_instance_with(self: &Arc<Self>, id: &str, reason: ExitReason, drain: Duration) {
        if self.state_of(id) == Some(Crashed) {
            self.forget_crashed(id).await;
            return;
        }
        let was_routed = matches!(self.state_of(id), Some(Running | Evacuating));
        let Some(i) = self.transition(id, Stopping) else {
            return;
        };
        let cell = |line: String| {
            self.outbox.log_as(
                &i.log,
                LogSource::Cell,
                Some(i.index),
                LogStream::Stdout,
                &line,
            );
        };
        cell(cell_log::stopping(id));
        if was_routed {
            self.send_route(subjects::ROUTER_UNREGISTER, &i, i.uris.clone());
            let wait = if reason == ExitReason::Evacuating {
                EVACUATION_UNREGISTER_GRACE
            } else {
                drain
            };
            if !wait.is_zero() {
                // No failed request: the routers drop the route at once,
                // and the requests in flight get `wait` to finish.
                cell(format!(
                    "Draining instance {id}: stopping in {}s",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
            }
        }
        // The container may have been attached after our copy was taken.
        let container = self
            .lock()
            .instances
            .get(id)
            .and_then(|x| x.container.clone());
        if let Some(c) = &container {
            if let Err(e) = self
                .backend
                .stop(c, Duration::from_secs(self.cfg.stop_grace_s))
                .await
            {
                tracing::warn!(instance_id = %id, error = %e, "stop failed");
            }
        }
        let _ = self.transition(id, Stopped);
        self.lock().instances.remove(id);
        self.outbox.send(
            subjects::DROPLET_EXITED,
            &DropletExited {
                app_id: i.app_id.clone(),
                version: i.version.clone(),
                index: i.index,
                instance_id: i.id.clone(),
                reason,
                exit_status: None,
                exit_description: match reason {
                    ExitReason::Evacuating => "evacuated".into(),
                    _ => "stopped".into(),
                },
                crash_timestamp: proto::now_unix(),
            },
        );
        if let Some(c) = &container {
            cell(cell_log::destroying(id));
            match self.backend.destroy(c).await {
                Ok(()) => cell(cell_log::destroyed(id)),
                Err(e) => {
                    tracing::warn!(instance_id = %id, error = %e, "cannot remove instance files")
                }
            }
        }
        self.publish_heartbeat();
    }

    /// `dea.update`: new uris for the app's instances.
    pub fn update(&self, req: &UpdateRequest) {
        let mut changes = Vec::new();
        {
            let mut reg = self.lock();
            for i in reg.instances.values_mut() {
                if i.app_id != req.app_id || req.version.as_deref().is_some_and(|v| v != i.version)
                {
                    continue;
                }
                let removed: Vec<String> = i
                    .uris
                    .iter()
                    .filter(|u| !req.uris.contains(u))
                    .cloned()
                    .collect();
                let added: Vec<String> = req
                    .uris
                    .iter()
                    .filter(|u| !i.uris.contains(u))
                    .cloned()
                    .collect();
                i.uris = req.uris.clone();
                if matches!(i.life.state, Running | Evacuating) && i.ready {
                    changes.push((i.clone(), removed, added));
                }
            }
        }
        for (i, removed, added) in changes {
            self.send_route(subjects::ROUTER_UNREGISTER, &i, removed);
            self.send_route(subjects::ROUTER_REGISTER, &i, added);
        }
    }

    pub async fn find(&self, req: &FindDropletRequest) -> Vec<FindDropletResponse> {
        let f = Filter {
            app_id: &req.app_id,
            version: req.version.as_deref(),
            instance_ids: req.instance_ids.as_deref(),
            indices: req.indices.as_deref(),
        };
        let list: Vec<Instance> = self
            .lock()
            .instances
            .values()
            .filter(|i| f.matches(i))
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(list.len());
        for i in list {
            let stats = match (&i.container, req.include_stats && i.life.state == Running) {
                (Some(c), true) => self.backend.stats(c).await.ok(),
                _ => None,
            };
            out.push(FindDropletResponse {
                dea_id: self.cfg.id.clone(),
                app_id: i.app_id,
                version: i.version,
                instance_id: i.id,
                index: i.index,
                state: i.life.state,
                since: i.life.since,
                host: self.cfg.host_ip.clone(),
                port: i.port,
                stats,
                ready: i.ready,
            });
        }
        out.sort_by_key(|r| r.index);
        out
    }

    // ---- drain (evacuation) ------------------------------------------------

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining: RUNNING instances become EVACUATING, advertising
    /// stops and `dea.shutdown` tells the controller to place replacements.
    /// Tasks are never replaced: they run on until they end (or the drain's
    /// deadline stops them, which fails them).
    pub fn evacuate(&self) {
        if self.draining.swap(true, Ordering::Relaxed) {
            return;
        }
        let counts = self
            .lock()
            .capacity(self.cfg.memory_mb, self.cfg.disk_mb)
            .app_id_to_count;
        let running: Vec<String> = self
            .lock()
            .instances
            .values()
            .filter(|i| i.life.state == Running && !i.task)
            .map(|i| i.id.clone())
            .collect();
        for id in running {
            let _ = self.transition(&id, Evacuating);
        }
        self.outbox.send(
            subjects::DEA_SHUTDOWN,
            &DeaShutdown {
                id: self.cfg.id.clone(),
                app_id_to_count: counts,
            },
        );
    }

    /// While draining: an evacuating instance is stopped once another DEA
    /// reports a RUNNING instance of the same app and index.
    pub async fn on_peer_heartbeat(self: &Arc<Self>, hb: &Heartbeat) {
        if hb.dea_id == self.cfg.id || !self.is_draining() {
            return;
        }
        let replaced: Vec<String> = {
            let reg = self.lock();
            reg.instances
                .values()
                .filter(|i| i.life.state == Evacuating)
                .filter(|i| {
                    hb.instances
                        .iter()
                        .any(|r| r.state == Running && r.app_id == i.app_id && r.index == i.index)
                })
                .map(|i| i.id.clone())
                .collect()
        };
        for id in replaced {
            tracing::info!(instance_id = %id, replacement_dea = %hb.dea_id, "replacement running, stopping evacuated instance");
            self.stop_instance_with(&id, ExitReason::Evacuating, Duration::ZERO)
                .await;
        }
    }

    /// Instances still holding resources.
    pub fn live_count(&self) -> usize {
        self.lock()
            .instances
            .values()
            .filter(|i| i.reserves())
            .count()
    }

    // ---- shutdown ------------------------------------------------------------

    /// Stops every instance cleanly (unregister first), kills leftovers and
    /// says `dea.shutdown`.
    pub async fn shutdown(self: &Arc<Self>) {
        let counts = self.advertisement().app_id_to_count;
        let ids: Vec<String> = self.lock().instances.keys().cloned().collect();
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let me = self.clone();
                tokio::spawn(async move { me.stop_instance(&id).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        self.backend.kill_all();
        if self.is_draining() {
            return; // `dea.shutdown` already sent
        }
        self.outbox.send(
            subjects::DEA_SHUTDOWN,
            &DeaShutdown {
                id: self.cfg.id.clone(),
                app_id_to_count: counts,
            },
        );
    }
}

/// A free port on `host` (bind port 0, then release it).
pub fn pick_port(host: &str) -> Result<u16> {
    let l = std::net::TcpListener::bind((host, 0))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .map_err(|e| DeaError::Backend(format!("cannot pick a port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DeaError::Backend(format!("cannot pick a port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::SimBackend;
    use tokio::sync::mpsc::UnboundedReceiver;

    struct Setup {
        agent: Arc<Agent>,
        fake: Arc<SimBackend>,
        rx: UnboundedReceiver<crate::outbox::Outgoing>,
        _tmp: tempfile::TempDir,
        sha: String,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().expect("tmp");
        let cfg = Config {
            id: "dea-1".into(),
            state_dir: tmp.path().to_path_buf(),
            memory_mb: 1000,
            ..Config::default()
        };
        // A droplet already in the cache: no download needed.
        let app = tmp.path().join("src");
        std::fs::create_dir_all(&app).expect("mkdir");
        std::fs::write(app.join("run.sh"), "echo hi").expect("write");
        let tgz =
            crate::archive::tar_gz(Vec::new(), &[("app", &app)], &[("staging_info.yml", b"{}")])
                .expect("tar");
        let sha = crate::http::sha256_hex(&tgz);
        std::fs::create_dir_all(tmp.path().join("droplets")).expect("mkdir");
        std::fs::write(tmp.path().join("droplets").join(format!("{sha}.tgz")), &tgz)
            .expect("write");
        let fake = Arc::new(SimBackend::with_output(vec!["hello from app".into()]));
        let (outbox, rx) = Outbox::channel();
        let agent = Agent::new(cfg, fake.clone(), outbox);
        Setup {
            agent,
            fake,
            rx,
            _tmp: tmp,
            sha,
        }
    }

    fn request(sha: &str) -> StartRequest {
        serde_json::from_value(serde_json::json!({
            "app_id": "app-1", "app_name": "web", "version": "v1", "index": 0,
            "droplet_uri": "http://127.0.0.1:9/unused", "droplet_sha256": sha,
            "uris": ["web.localhost"], "limits": {"memory_mb": 256, "disk_mb": 100, "fds": 10},
            "health_check": {"type": "process", "timeout_s": 5},
            "start_command": "./run.sh", "stack": "host"
        }))
        .expect("req")
    }

    async fn wait_state(agent: &Agent, id: &str, want: Option<InstanceState>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while agent.state_of(id) != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "state {:?} != {want:?}",
                agent.state_of(id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn drain(
        rx: &mut UnboundedReceiver<crate::outbox::Outgoing>,
    ) -> Vec<(String, serde_json::Value)> {
        let mut v = Vec::new();
        while let Ok((s, b)) = rx.try_recv() {
            v.push((s, serde_json::from_slice(&b).expect("json")));
        }
        v
    }

    /// Messages until one on `subject` arrives (10 s deadline).
    async fn until(
        rx: &mut UnboundedReceiver<crate::outbox::Outgoing>,
        subject: &str,
    ) -> Vec<(String, serde_json::Value)> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Some((s, b))) = tokio::time::timeout(left, rx.recv()).await else {
                panic!("no {subject} within 10 s; saw {seen:?}");
            };
            let done = s == subject;
            seen.push((s, serde_json::from_slice(&b).expect("json")));
            if done {
                return seen;
            }
        }
    }

    #[tokio::test]
    async fn a_task_runs_once_unrouted_unwatched_and_reports_its_exit() {
        let mut s = setup();
        let task = |guid: &str| {
            let mut r = request(&s.sha);
            r.app_id = guid.into();
            r.uris = vec![];
            r.log_guid = Some("app-1".into());
            r.task_name = Some("migrate".into());
            r
        };
        let id = s.agent.start(task("task-1"));
        wait_state(&s.agent, &id, Some(Running)).await;
        // Not in heartbeats (the HM neither restarts nor stops it), but
        // counted in adverts (the controller sees it is still there).
        assert!(s.agent.heartbeat().instances.is_empty());
        assert_eq!(
            s.agent.advertisement().app_id_to_count.get("task-1"),
            Some(&1)
        );
        s.fake.crash(
            &id,
            ExitInfo {
                code: Some(0),
                signal: None,
            },
        );
        let msgs = until(&mut s.rx, "droplet.exited").await;
        let exited = &msgs.last().expect("exited").1;
        assert_eq!(
            (&exited["app_id"], &exited["reason"], &exited["exit_status"]),
            (
                &serde_json::json!("task-1"),
                &serde_json::json!("COMPLETED"),
                &serde_json::json!(0)
            )
        );
        assert!(
            !msgs.iter().any(|(s, _)| s.starts_with("router.")),
            "{msgs:?}"
        );
        let app_lines: Vec<&serde_json::Value> = msgs
            .iter()
            .filter(|(s, m)| s == "logs.app-1" && m["source"] == "APP")
            .map(|(_, m)| m)
            .collect();
        assert!(
            !app_lines.is_empty() && app_lines.iter().all(|m| m["task_name"] == "migrate"),
            "{msgs:?}"
        );
        assert_eq!(s.agent.advertisement().available_memory_mb, 1000);

        // A failing task is reported as crashed, with its status.
        let id = s.agent.start(task("task-2"));
        wait_state(&s.agent, &id, Some(Running)).await;
        s.fake.crash(
            &id,
            ExitInfo {
                code: Some(2),
                signal: None,
            },
        );
        let msgs = until(&mut s.rx, "droplet.exited").await;
        let exited = &msgs.last().expect("exited").1;
        assert_eq!(
            (&exited["reason"], &exited["exit_status"]),
            (&serde_json::json!("CRASHED"), &serde_json::json!(2))
        );
    }

    #[tokio::test]
    async fn a_drain_leaves_tasks_running() {
        let s = setup();
        let web = s.agent.start(request(&s.sha));
        let mut t = request(&s.sha);
        t.app_id = "task-1".into();
        t.uris = vec![];
        t.task_name = Some("migrate".into());
        let task = s.agent.start(t);
        wait_state(&s.agent, &web, Some(Running)).await;
        wait_state(&s.agent, &task, Some(Running)).await;
        s.agent.evacuate();
        assert_eq!(s.agent.state_of(&web), Some(Evacuating));
        assert_eq!(
            s.agent.state_of(&task),
            Some(Running),
            "nothing replaces a task"
        );
    }

    #[tokio::test]
    async fn start_run_crash() {
        let mut s = setup();
        let id = s.agent.start(request(&s.sha));
        wait_state(&s.agent, &id, Some(Running)).await;
        assert_eq!(s.agent.advertisement().available_memory_mb, 744);
        let spawned = s.fake.spawned.lock().expect("lock").clone();
        assert!(spawned[0].script.contains("exec bash -c './run.sh'"));
        assert!(spawned[0]
            .env
            .iter()
            .any(|(k, v)| k == "CF_INSTANCE_GUID" && v == &id));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let msgs = drain(&mut s.rx);
        let reg = msgs
            .iter()
            .find(|(s, _)| s == "router.register")
            .expect("registered");
        assert_eq!(reg.1["uris"][0], "web.localhost");
        let logs: Vec<(Option<&str>, Option<&str>)> = msgs
            .iter()
            .filter(|(s, _)| s == "logs.app-1")
            .map(|(_, m)| (m["source"].as_str(), m["line"].as_str()))
            .collect();
        assert!(
            logs.contains(&(Some("APP"), Some("hello from app"))),
            "{logs:?}"
        );
        // The cell's own lines, as CF's cells write them.
        let cell: Vec<&str> = logs
            .iter()
            .filter(|(s, _)| *s == Some("CELL"))
            .filter_map(|(_, l)| *l)
            .collect();
        assert!(
            cell[0].starts_with("Cell dea-1 creating container for instance "),
            "{cell:?}"
        );
        assert!(
            cell[1].starts_with("Cell dea-1 successfully created container"),
            "{cell:?}"
        );
        assert!(msgs
            .iter()
            .any(|(s, m)| s == "dea.heartbeat" && m["instances"][0]["state"] == "RUNNING"));

        s.fake.crash(
            &id,
            ExitInfo {
                code: Some(1),
                signal: None,
            },
        );
        wait_state(&s.agent, &id, Some(Crashed)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let msgs = drain(&mut s.rx);
        assert!(msgs.iter().any(|(s, _)| s == "router.unregister"));
        let exited = msgs
            .iter()
            .find(|(s, _)| s == "droplet.exited")
            .expect("exited");
        assert_eq!(exited.1["reason"], "CRASHED");
        assert_eq!(exited.1["exit_description"], "exited with status 1");
        assert_eq!(exited.1["exit_status"], 1);
        // Still visible, but no longer reserving capacity.
        assert_eq!(s.agent.heartbeat().instances.len(), 1);
        assert_eq!(s.agent.advertisement().available_memory_mb, 1000);
        let found = s
            .agent
            .find(&FindDropletRequest {
                app_id: "app-1".into(),
                ..Default::default()
            })
            .await;
        assert_eq!(found[0].state, Crashed);
    }

    #[tokio::test]
    async fn stop_and_update() {
        let mut s = setup();
        let id = s.agent.start(request(&s.sha));
        wait_state(&s.agent, &id, Some(Running)).await;
        let dir = s.agent.instances_dir().join(&id);
        assert!(dir.join("app/run.sh").exists());
        drain(&mut s.rx);

        s.agent.update(&UpdateRequest {
            app_id: "app-1".into(),
            uris: vec!["b.localhost".into()],
            version: None,
        });
        let msgs = drain(&mut s.rx);
        assert_eq!(msgs[0].0, "router.unregister");
        assert_eq!(msgs[0].1["uris"][0], "web.localhost");
        assert_eq!(msgs[1].0, "router.register");
        assert_eq!(msgs[1].1["uris"][0], "b.localhost");

        let found = s
            .agent
            .find(&FindDropletRequest {
                app_id: "app-1".into(),
                include_stats: true,
                ..Default::default()
            })
            .await;
        assert_eq!(found.len(), 1);
        assert!(found[0].stats.is_some());
        assert!(s
            .agent
            .find(&FindDropletRequest {
                app_id: "other".into(),
                ..Default::default()
            })
            .await
            .is_empty());

        s.agent
            .stop_matching(&StopRequest {
                app_id: "app-1".into(),
                indices: Some(vec![0]),
                ..Default::default()
            })
            .await;
        assert_eq!(s.agent.state_of(&id), None);
        assert!(!dir.exists());
        let msgs = drain(&mut s.rx);
        let subjects: Vec<&str> = msgs
            .iter()
            .map(|(s, _)| s.as_str())
            .filter(|s| *s != "dea.heartbeat" && !s.starts_with("logs."))
            .collect();
        assert_eq!(subjects, vec!["router.unregister", "droplet.exited"]);
        let cell: Vec<&str> = msgs
            .iter()
            .filter(|(s, m)| s.starts_with("logs.") && m["source"] == "CELL")
            .filter_map(|(_, m)| m["line"].as_str())
            .collect();
        assert_eq!(
            cell,
            [
                format!("Stopping instance {id}"),
                format!("Destroying container for instance {id}"),
                format!("Successfully destroyed container for instance {id}"),
            ]
        );
        assert_eq!(
            msgs.iter()
                .find(|(s, _)| s == "droplet.exited")
                .expect("exited")
                .1["reason"],
            "STOPPED"
        );
    }

    #[tokio::test]
    async fn evacuation_waits_for_replacement() {
        let mut s = setup();
        let id = s.agent.start(request(&s.sha));
        wait_state(&s.agent, &id, Some(Running)).await;
        drain(&mut s.rx);
        s.agent.evacuate();
        assert_eq!(s.agent.state_of(&id), Some(Evacuating));
        let msgs = drain(&mut s.rx);
        let sd = msgs
            .iter()
            .find(|(s, _)| s == "dea.shutdown")
            .expect("shutdown");
        assert_eq!(sd.1["app_id_to_count"]["app-1"], 1);
        s.agent.publish_advertise();
        assert!(drain(&mut s.rx).is_empty(), "no advertising while draining");
        let peer = |state: InstanceState, index: u32| Heartbeat {
            dea_id: "other".into(),
            instances: vec![proto::InstanceHeartbeat {
                app_id: "app-1".into(),
                version: "v1".into(),
                index,
                instance_id: "x".into(),
                state,
                since: 0.0,
            }],
        };
        s.agent.on_peer_heartbeat(&peer(Starting, 0)).await;
        s.agent.on_peer_heartbeat(&peer(Running, 1)).await;
        assert_eq!(s.agent.state_of(&id), Some(Evacuating));
        s.agent.on_peer_heartbeat(&peer(Running, 0)).await;
        assert_eq!(s.agent.state_of(&id), None);
        assert_eq!(s.agent.live_count(), 0);
        let msgs = drain(&mut s.rx);
        let exited = msgs
            .iter()
            .find(|(s, _)| s == "droplet.exited")
            .expect("exited");
        assert_eq!(exited.1["reason"], "EVACUATING");
        assert!(msgs.iter().any(|(s, _)| s == "router.unregister"));
    }

    #[tokio::test]
    async fn failed_download_crashes() {
        let mut s = setup();
        let mut req = request(&"0".repeat(64));
        req.droplet_uri = "http://127.0.0.1:1/droplet".into();
        let id = s.agent.start(req);
        wait_state(&s.agent, &id, Some(Crashed)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let msgs = drain(&mut s.rx);
        assert!(msgs
            .iter()
            .any(|(s, m)| s == "droplet.exited" && m["reason"] == "CRASHED"));
        assert!(!msgs.iter().any(|(s, _)| s == "router.register"));
    }
}
