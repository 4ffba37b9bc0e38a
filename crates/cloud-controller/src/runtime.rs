//! Talking to DEAs and routers over the bus: starting, stopping and updating
//! instances, stats, and the subscribers (adverts, health requests, exits, logs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::{
    subjects, Bus, DeaAdvertise, DeaShutdown, DropletExited, ExitReason, FindDropletRequest,
    FindDropletResponse, HealthCheck, HealthCheckType, HealthStart, HealthStop, InstanceState,
    Limits, LogMessage, LogSource, LogStream, RouteRegistration, RouterStart, StagingActive,
    StagingRecorded, StagingResult, StartRequest, StopRequest, UpdateRequest,
};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::context::{Actor, Ctx};
use crate::placement::Need;
use crate::store::{App, Process, StoreError};

/// Lifetime of signed blob URLs handed to DEAs for instance starts.
const START_URL_TTL_S: i64 = 3600;

impl Ctx {
    pub async fn publish<T: Serialize + ?Sized>(&self, subject: impl Into<String>, msg: &T) {
        let subject = subject.into();
        if let Some(bus) = &self.bus {
            if let Err(e) = bus.publish(subject.clone(), msg).await {
                tracing::warn!(subject = %subject, error = %e, "publish failed");
            }
        }
    }

    /// A controller log line (source API) for an app.
    pub async fn api_log(&self, app_id: &str, line: impl Into<String>) {
        let msg = LogMessage::new(app_id, LogSource::Api, None, LogStream::Stdout, line);
        match &self.bus {
            Some(_) => self.publish(subjects::logs(app_id), &msg).await,
            None => self.logs.push(msg),
        }
    }

    /// A signed absolute URL on the controller's own address.
    pub fn signed_url(&self, method: &str, path: &str, ttl_s: i64) -> String {
        let expires = chrono::Utc::now().timestamp().saturating_add(ttl_s);
        crate::signing::sign_url(&self.blob_key, &self.internal_url, method, path, expires)
    }

    /// `host.domain[/path]` of every route mapped to the app.
    pub async fn app_uris(&self, app_guid: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .app_routes(app_guid)
            .await?
            .iter()
            .map(|r| r.url())
            .collect())
    }

    /// Starts the given indices of an app at its current version.
    /// Returns how many were placed; the rest lack capacity (the app stays desired).
    pub async fn start_indices(&self, app: &App, indices: &[u32]) -> Result<usize, StoreError> {
        if indices.is_empty() {
            return Ok(0);
        }
        let Some(droplet_guid) = app.current_droplet_guid.as_deref() else {
            return Ok(0);
        };
        let droplet = self.store.droplet(droplet_guid).await?;
        let process = self.store.web_process(&app.guid).await?;
        let uris = self.app_uris(&app.guid).await?;
        let space = self.store.space(&app.space_guid).await?;
        let org = self.store.org(&space.organization_guid).await?;
        let memory_mb = u64::try_from(process.memory_in_mb).unwrap_or(256);
        let disk_mb = u64::try_from(process.disk_in_mb).unwrap_or(1024);
        let need = Need {
            app_id: &app.guid,
            stack: &droplet.stack,
            memory_mb,
            disk_mb,
        };
        let (picks, short) = match self.placement.lock() {
            Ok(mut t) => t.place(&need, indices.len(), Instant::now()),
            Err(_) => (Vec::new(), None),
        };
        let egress = self
            .store
            .egress_rules(&app.space_guid, crate::store::Lifecycle::Running)
            .await?;
        // The buildpack's config_vars, then the user's (which win).
        let mut env: BTreeMap<String, String> = droplet.config_vars_map();
        env.extend(env_list(app).into_iter().filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        }));
        let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let limits = Limits {
            memory_mb,
            disk_mb,
            fds: 16384,
        };
        let vcap = json!({
            "application_id": app.guid,
            "application_name": app.name,
            "application_uris": uris,
            "name": app.name,
            "uris": uris,
            "version": app.version,
            "application_version": app.version,
            "space_name": space.name,
            "space_id": space.guid,
            "organization_name": org.name,
            "organization_id": org.guid,
            "limits": {"mem": memory_mb, "disk": disk_mb, "fds": limits.fds},
        });
        let droplet_uri = self.signed_url(
            "GET",
            &format!("/internal/v1/droplets/{}/download", droplet.guid),
            START_URL_TTL_S,
        );
        let start_command = process
            .command
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| droplet.web_command())
            .unwrap_or_default();
        for (index, (dea_id, placement_id)) in indices.iter().zip(picks.iter()) {
            let req = StartRequest {
                app_id: app.guid.clone(),
                app_name: app.name.clone(),
                version: app.version.clone(),
                index: *index,
                droplet_uri: droplet_uri.clone(),
                droplet_sha256: droplet.sha256.clone().unwrap_or_default(),
                uris: uris.clone(),
                env: env.clone(),
                limits,
                health_check: health_check(&process),
                start_command: start_command.clone(),
                stack: droplet.stack.clone(),
                vcap_application: vcap.clone(),
                placement_id: Some(placement_id.clone()),
                egress: Some(egress.clone()),
            };
            tracing::info!(app_id = %app.guid, index, dea_id = %dea_id, version = %app.version, "starting instance");
            self.publish(subjects::dea_start(dea_id), &req).await;
        }
        if picks.len() < indices.len() {
            let missing = indices.len() - picks.len();
            let why = short.map(|s| s.to_string()).unwrap_or_default();
            tracing::warn!(app_id = %app.guid, missing, why = %why, "InsufficientResources");
            self.api_log(
                &app.guid,
                format!("InsufficientResources - {missing} instance(s) not started: {why}"),
            )
            .await;
        }
        Ok(picks.len())
    }

    pub async fn stop_instances(&self, req: StopRequest) {
        tracing::info!(app_id = %req.app_id, version = ?req.version, indices = ?req.indices, instance_ids = ?req.instance_ids, "stopping instances");
        self.publish(subjects::DEA_STOP, &req).await;
    }

    /// Tells DEAs about the app's current routes (no restart).
    pub async fn update_routes(&self, app_guid: &str) -> Result<(), StoreError> {
        let app = match self.store.app(app_guid).await {
            Ok(a) => a,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let uris = self.app_uris(app_guid).await?;
        self.publish(
            subjects::DEA_UPDATE,
            &UpdateRequest {
                app_id: app.guid.clone(),
                uris,
                version: Some(app.version.clone()),
            },
        )
        .await;
        Ok(())
    }

    fn fresh_dea_count(&self) -> usize {
        self.placement
            .lock()
            .map(|mut t| t.fresh(Instant::now()).len())
            .unwrap_or(0)
    }

    /// Gathers instance state from DEAs (`dea.find.droplet`).
    pub async fn find_instances(&self, app_guid: &str) -> Vec<FindDropletResponse> {
        let Some(bus) = &self.bus else {
            return Vec::new();
        };
        if self.fresh_dea_count() == 0 {
            return Vec::new();
        }
        let req = FindDropletRequest {
            app_id: app_guid.to_string(),
            include_stats: true,
            ..Default::default()
        };
        // DEAs may answer once per instance or with an array: gather until
        // replies stop coming (or the deadline).
        let replies: Vec<Value> = match bus
            .request_gather(
                subjects::DEA_FIND_DROPLET,
                &req,
                Duration::from_millis(500),
                Duration::from_millis(100),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(app_id = %app_guid, error = %e, "dea.find.droplet failed");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for r in replies {
            let items = match r {
                Value::Array(v) => v,
                other => vec![other],
            };
            out.extend(
                items
                    .into_iter()
                    .filter_map(|v| serde_json::from_value::<FindDropletResponse>(v).ok()),
            );
        }
        out
    }

    /// CF process stats: one resource per index `0..instances`.
    pub async fn process_stats(&self, app: &App, process: &Process) -> Vec<Value> {
        let (found, crashes) = if app.started() {
            (
                self.find_instances(&app.guid).await,
                self.recent_crashes(app).await,
            )
        } else {
            (Vec::new(), BTreeMap::new())
        };
        stats_resources(process, &app.version, &found, &crashes)
    }

    /// Crashes of the app's current version per index within
    /// `FLAPPING_WINDOW_S`, from the `app.crash` audit events.
    pub async fn recent_crashes(&self, app: &App) -> BTreeMap<u32, IndexCrashes> {
        let since = (chrono::Utc::now() - chrono::Duration::seconds(FLAPPING_WINDOW_S))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let events = match self
            .store
            .target_events_since(&app.guid, "app.crash", &since)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(app_id = %app.guid, error = %e, "cannot read crash events");
                return BTreeMap::new();
            }
        };
        let mut out: BTreeMap<u32, IndexCrashes> = BTreeMap::new();
        for e in events {
            let Ok(data) = serde_json::from_str::<Value>(&e.data) else {
                continue;
            };
            if data["version"].as_str().is_some_and(|v| v != app.version) {
                continue;
            }
            let Some(index) = data["index"].as_u64().and_then(|i| u32::try_from(i).ok()) else {
                continue;
            };
            let c = out.entry(index).or_default();
            c.count += 1;
            c.last_reason = data["reason"].as_str().unwrap_or_default().to_string();
            c.last_exit_status = data["exit_status"].as_i64();
        }
        out
    }
}

fn env_list(app: &App) -> Vec<String> {
    app.env_map()
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect()
}

fn health_check(p: &Process) -> HealthCheck {
    let kind = match p.health_check_type.as_str() {
        "http" => HealthCheckType::Http,
        "process" | "none" => HealthCheckType::Process,
        _ => HealthCheckType::Port,
    };
    HealthCheck {
        kind,
        timeout_s: p
            .health_check_timeout
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(60),
        endpoint: p.health_check_endpoint.clone(),
    }
}

/// Crashes counted for the flapping flag are those of the last 10 minutes.
pub const FLAPPING_WINDOW_S: i64 = 600;
/// An index that crashed this many times within the window is flapping
/// (the health manager restarts the first 3 crashes at once, later ones
/// with a growing delay).
pub const FLAPPING_CRASHES: u32 = 3;

/// Recent crashes of one index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexCrashes {
    pub count: u32,
    pub last_reason: String,
    pub last_exit_status: Option<i64>,
}

impl IndexCrashes {
    pub fn flapping(&self) -> bool {
        self.count >= FLAPPING_CRASHES
    }

    /// The `details` of a crashed index in process stats.
    pub fn details(&self) -> String {
        let status = self
            .last_exit_status
            .map(|s| format!(", exit status {s}"))
            .unwrap_or_default();
        let what = if self.flapping() { "flapping: " } else { "" };
        let times = if self.count == 1 { "time" } else { "times" };
        format!(
            "{what}crashed {} {times} in {} min (last: {}{status})",
            self.count,
            FLAPPING_WINDOW_S / 60,
            if self.last_reason.is_empty() {
                "exited"
            } else {
                &self.last_reason
            }
        )
    }
}

fn state_rank(s: InstanceState) -> u8 {
    match s {
        InstanceState::Running => 0,
        InstanceState::Starting | InstanceState::Born => 1,
        InstanceState::Crashed => 2,
        _ => 3,
    }
}

/// Pure: builds stats resources for indices `0..instances`, preferring
/// RUNNING (then current version) when several instances share an index.
/// An index with no running instance and recent crashes shows as CRASHED,
/// with the crash count (and "flapping") in `details`.
pub fn stats_resources(
    process: &Process,
    version: &str,
    found: &[FindDropletResponse],
    crashes: &BTreeMap<u32, IndexCrashes>,
) -> Vec<Value> {
    let mut best: BTreeMap<u32, &FindDropletResponse> = BTreeMap::new();
    for f in found {
        let better = match best.get(&f.index) {
            None => true,
            Some(cur) => {
                (state_rank(f.state), f.version != version)
                    < (state_rank(cur.state), cur.version != version)
            }
        };
        if better {
            best.insert(f.index, f);
        }
    }
    let mem_quota = process.memory_in_mb.max(0) as u64 * 1024 * 1024;
    let disk_quota = process.disk_in_mb.max(0) as u64 * 1024 * 1024;
    let n = u32::try_from(process.instances.max(0)).unwrap_or(0);
    (0..n)
        .map(|index| match best.get(&index) {
            Some(f) => {
                let crashed = crashes.get(&index).filter(|c| c.count > 0);
                let state = match (f.state, crashed) {
                    (InstanceState::Running, _) => "RUNNING",
                    (InstanceState::Born | InstanceState::Starting, _) => "STARTING",
                    (InstanceState::Crashed, _) | (_, Some(_)) => "CRASHED",
                    _ => "DOWN",
                };
                let details = match (state, crashed) {
                    ("CRASHED" | "STARTING", Some(c)) => Value::String(c.details()),
                    _ => Value::Null,
                };
                let stats = f.stats.unwrap_or_default();
                json!({
                    "type": process.kind, "index": index, "state": state,
                    "host": f.host,
                    "instance_ports": [{"external": f.port, "internal": f.port}],
                    "uptime": stats.uptime,
                    "usage": {"time": proto::now_rfc3339(), "cpu": stats.cpu, "mem": stats.mem, "disk": stats.disk},
                    "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                    "details": details,
                })
            }
            None => match crashes.get(&index).filter(|c| c.count > 0) {
                Some(c) => json!({
                    "type": process.kind, "index": index, "state": "CRASHED",
                    "host": "", "instance_ports": [], "uptime": 0,
                    "usage": {"time": proto::now_rfc3339(), "cpu": 0.0, "mem": 0, "disk": 0},
                    "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                    "details": c.details(),
                }),
                None => json!({
                "type": process.kind, "index": index, "state": "DOWN",
                "host": "", "instance_ports": [], "uptime": 0,
                "usage": {"time": proto::now_rfc3339(), "cpu": 0.0, "mem": 0, "disk": 0},
                "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                "details": null,
                }),
            },
        })
        .collect()
}

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
            c.stop_instances(StopRequest { app_id: h.app_id, version: h.version, instance_ids: Some(h.instance_ids), indices: None }).await;
        }
    }));

    let mut exits = bus
        .subscribe::<DropletExited>(subjects::DROPLET_EXITED)
        .await?;
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(m) = exits.next().await {
            let e = m.payload;
            if e.reason != ExitReason::Crashed {
                continue;
            }
            if let Ok(app) = c.store.app(&e.app_id).await {
                let data = json!({"index": e.index, "exit_status": e.exit_status, "reason": e.exit_description, "instance": e.instance_id, "version": e.version});
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

/// Acts on `health.start` only if still valid.
pub async fn handle_health_start(ctx: &Ctx, h: HealthStart) {
    let app = match ctx.store.app(&h.app_id).await {
        Ok(a) => a,
        Err(_) => return,
    };
    if !app.started() || app.version != h.version {
        tracing::debug!(app_id = %h.app_id, "ignoring stale health.start");
        return;
    }
    let Ok(process) = ctx.store.web_process(&app.guid).await else {
        return;
    };
    let indices: Vec<u32> = h
        .indices
        .iter()
        .copied()
        .filter(|i| i64::from(*i) < process.instances)
        .collect();
    if indices.is_empty() {
        return;
    }
    tracing::info!(app_id = %app.guid, indices = ?indices, reason = %h.reason, "health.start");
    if let Err(e) = ctx.start_indices(&app, &indices).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn process(instances: i64) -> Process {
        Process {
            guid: "p".into(),
            app_guid: "a".into(),
            kind: "web".into(),
            command: None,
            instances,
            memory_in_mb: 256,
            disk_in_mb: 1024,
            health_check_type: "port".into(),
            health_check_timeout: None,
            health_check_endpoint: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn found(index: u32, state: InstanceState, version: &str, port: u16) -> FindDropletResponse {
        FindDropletResponse {
            dea_id: "d".into(),
            app_id: "a".into(),
            version: version.into(),
            instance_id: format!("i{index}{port}"),
            index,
            state,
            since: 0.0,
            host: "127.0.0.1".into(),
            port,
            stats: None,
        }
    }

    #[test]
    fn stats_one_per_index_preferring_running() {
        let f = [
            found(0, InstanceState::Crashed, "v", 1),
            found(0, InstanceState::Running, "v", 2),
            found(1, InstanceState::Starting, "v", 3),
            found(5, InstanceState::Running, "v", 4),
            found(2, InstanceState::Running, "old", 5),
            found(2, InstanceState::Running, "v", 6),
        ];
        let r = stats_resources(&process(4), "v", &f, &BTreeMap::new());
        assert_eq!(r.len(), 4);
        assert_eq!(
            (
                r[0]["state"].as_str(),
                r[0]["instance_ports"][0]["external"].as_u64()
            ),
            (Some("RUNNING"), Some(2))
        );
        assert_eq!(r[1]["state"], "STARTING");
        assert_eq!(r[2]["instance_ports"][0]["external"], 6);
        assert_eq!(r[3]["state"], "DOWN");
        assert_eq!(r[3]["mem_quota"], 256u64 * 1024 * 1024);
    }

    #[test]
    fn crashed_and_flapping_indices() {
        let crash = |count| IndexCrashes {
            count,
            last_reason: "exited with status 3".into(),
            last_exit_status: Some(3),
        };
        // 0: running despite crashes; 1: crashing, nothing live (flapping);
        // 2: crashed once, restarting; 3: never crashed, nothing live.
        let f = [
            found(0, InstanceState::Running, "v", 1),
            found(2, InstanceState::Starting, "v", 2),
        ];
        let crashes = BTreeMap::from([(0, crash(5)), (1, crash(4)), (2, crash(1))]);
        let r = stats_resources(&process(4), "v", &f, &crashes);
        assert_eq!(
            (r[0]["state"].as_str(), &r[0]["details"]),
            (Some("RUNNING"), &Value::Null)
        );
        assert_eq!(r[1]["state"], "CRASHED");
        assert_eq!(
            r[1]["details"],
            "flapping: crashed 4 times in 10 min (last: exited with status 3, exit status 3)"
        );
        assert_eq!(r[2]["state"], "STARTING");
        assert!(r[2]["details"]
            .as_str()
            .is_some_and(|d| !d.contains("flapping")));
        assert_eq!(
            (r[3]["state"].as_str(), &r[3]["details"]),
            (Some("DOWN"), &Value::Null)
        );
    }

    #[test]
    fn health_check_mapping() {
        let mut p = process(1);
        assert_eq!(
            health_check(&p),
            HealthCheck {
                kind: HealthCheckType::Port,
                timeout_s: 60,
                endpoint: None
            }
        );
        p.health_check_type = "http".into();
        p.health_check_timeout = Some(5);
        p.health_check_endpoint = Some("/h".into());
        assert_eq!(
            health_check(&p),
            HealthCheck {
                kind: HealthCheckType::Http,
                timeout_s: 5,
                endpoint: Some("/h".into())
            }
        );
    }
}
