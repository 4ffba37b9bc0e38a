//! Talking to DEAs and routers over the bus: starting, stopping and updating
//! instances, finding them and their recent crashes. The subscribers
//! (adverts, health requests, exits, logs) are in `subscribers`; the API
//! presents what is found here (`api::presenters`).

mod subscribers;

pub use subscribers::{api_registration, handle_health_start, spawn_subscribers};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto::{
    subjects, FindDropletRequest, FindDropletResponse, HealthCheck, HealthCheckType, Limits,
    LogMessage, LogSource, LogStream, ReadinessCheck, StartRequest, StopRequest, UpdateRequest,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::placement::Need;
use crate::store::{App, Droplet, Process, StoreError};

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

    /// Starts the given indices of one of an app's processes at the app's
    /// current version. Returns how many were placed; the rest lack
    /// capacity (the process stays desired).
    pub async fn start_indices(
        &self,
        app: &App,
        process: &Process,
        indices: &[u32],
    ) -> Result<usize, StoreError> {
        if indices.is_empty() {
            return Ok(0);
        }
        let Some(droplet_guid) = app.current_droplet_guid.as_deref() else {
            return Ok(0);
        };
        let droplet = self.store.droplet(droplet_guid).await?;
        let start_command = process
            .command
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| droplet.command_for(&process.kind))
            .unwrap_or_default();
        if start_command.is_empty() && !process.is_web() {
            // CF: a process type with no command (none given, none in the
            // Procfile) cannot run.
            self.api_log(
                &app.guid,
                format!(
                    "Process type '{}' has no command: give it one (manifest `command`, Procfile) before scaling it up",
                    process.kind
                ),
            )
            .await;
            return Ok(0);
        }
        let bus_id = process.bus_id().to_string();
        // Only the web process is routed (CF maps routes to `web` by default).
        let uris = if process.is_web() {
            self.app_uris(&app.guid).await?
        } else {
            Vec::new()
        };
        let memory_mb = u64::try_from(process.memory_in_mb).unwrap_or(256);
        let disk_mb = u64::try_from(process.disk_in_mb).unwrap_or(1024);
        let need = Need {
            app_id: &bus_id,
            stack: &droplet.stack,
            memory_mb,
            disk_mb,
        };
        let (picks, short, never) = match self.placement.lock() {
            Ok(mut t) => {
                let now = Instant::now();
                let (picks, short) = t.place(&need, indices.len(), now);
                // CF's InsufficientResources: shown in the stats of the
                // instances that can never be placed.
                let never = if picks.len() < indices.len() {
                    t.never_fits(&need, now)
                } else {
                    None
                };
                t.set_unplaceable(&bus_id, never);
                (picks, short, never)
            }
            Err(_) => (Vec::new(), None, None),
        };
        let limits = Limits {
            memory_mb,
            disk_mb,
            fds: 16384,
        };
        let launch = self.launch(app, &droplet, &uris, limits).await?;
        let mut vcap = launch.vcap;
        vcap["process_id"] = json!(process.guid);
        vcap["process_type"] = json!(process.kind);
        let process_type = (!process.is_web()).then(|| process.kind.clone());
        // A unit whose bus id is not the app's guid logs to the app.
        let log_guid = (bus_id != app.guid).then(|| app.guid.clone());
        for (index, (dea_id, placement_id)) in indices.iter().zip(picks.iter()) {
            let req = StartRequest {
                app_id: bus_id.clone(),
                app_name: app.name.clone(),
                version: app.version.clone(),
                index: *index,
                droplet_uri: launch.droplet_uri.clone(),
                droplet_sha256: droplet.sha256.clone().unwrap_or_default(),
                uris: uris.clone(),
                env: launch.env.clone(),
                limits,
                health_check: health_check(process),
                start_command: start_command.clone(),
                stack: droplet.stack.clone(),
                vcap_application: vcap.clone(),
                placement_id: Some(placement_id.clone()),
                egress: Some(launch.egress.clone()),
                process_type: process_type.clone(),
                log_guid: log_guid.clone(),
                task_name: None,
                readiness: readiness(process),
                log_rate_limit_bytes_per_s: u64::try_from(process.log_rate_limit).ok(),
                vcap_services: Some(launch.vcap_services.clone()),
            };
            tracing::info!(app_id = %app.guid, process_type = %process.kind, index, dea_id = %dea_id, version = %app.version, "starting instance");
            self.publish(subjects::dea_start(dea_id), &req).await;
        }
        if picks.len() < indices.len() {
            let missing = indices.len() - picks.len();
            let why = match never {
                Some(what) => {
                    format!("insufficient resources: {what} (no DEA could ever hold one instance)")
                }
                None => short.map(|s| s.to_string()).unwrap_or_default(),
            };
            tracing::warn!(app_id = %app.guid, process_type = %process.kind, missing, why = %why, "InsufficientResources");
            self.api_log(
                &app.guid,
                format!("InsufficientResources - {missing} instance(s) not started: {why}"),
            )
            .await;
        }
        Ok(picks.len())
    }

    /// What every start of an app's droplet carries: the environment (the
    /// buildpack's config_vars, then the user's, which win), the running
    /// security groups' rules, `VCAP_APPLICATION` and a signed droplet URL.
    pub async fn launch(
        &self,
        app: &App,
        droplet: &Droplet,
        uris: &[String],
        limits: Limits,
    ) -> Result<Launch, StoreError> {
        let space = self.store.space(&app.space_guid).await?;
        let org = self.store.org(&space.organization_guid).await?;
        let egress = self
            .store
            .egress_rules(&app.space_guid, crate::store::Lifecycle::Running)
            .await?;
        let mut env: BTreeMap<String, String> = droplet.config_vars_map();
        env.extend(env_list(app).into_iter().filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        }));
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
            "limits": {"mem": limits.memory_mb, "disk": limits.disk_mb, "fds": limits.fds},
        });
        // The bound services' addresses join the running security groups'
        // rules (a binding takes effect at the next start, as in CF).
        let vcap_services = self.vcap_services(&app.guid).await?;
        let mut egress = egress;
        for r in proto::vcap::egress_rules(&vcap_services) {
            if !egress.contains(&r) {
                egress.push(r);
            }
        }
        Ok(Launch {
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            egress,
            vcap,
            vcap_services,
            droplet_uri: self.signed_url(
                "GET",
                &format!("/internal/v1/droplets/{}/download", droplet.guid),
                START_URL_TTL_S,
            ),
        })
    }

    /// Starts every index of every process of a started app.
    pub async fn start_all(&self, app: &App) -> Result<(), StoreError> {
        for p in self.store.processes_of(&app.guid).await? {
            let n = u32::try_from(p.instances.max(0)).unwrap_or(0);
            let indices: Vec<u32> = (0..n).collect();
            self.start_indices(app, &p, &indices).await?;
        }
        Ok(())
    }

    /// Stops the instances of every process of an app (of `version` only,
    /// when given).
    pub async fn stop_all(&self, app_guid: &str, version: Option<&str>) {
        let mut ids = vec![app_guid.to_string()];
        match self.store.processes_of(app_guid).await {
            Ok(ps) => ids.extend(
                ps.iter()
                    .map(|p| p.bus_id().to_string())
                    .filter(|id| id != app_guid),
            ),
            Err(e) => {
                tracing::warn!(app_id = %app_guid, error = %e, "cannot list processes to stop")
            }
        }
        for app_id in ids {
            self.stop_instances(StopRequest {
                app_id,
                version: version.map(str::to_string),
                ..Default::default()
            })
            .await;
        }
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
        // The web process's instances, and an old version's while a
        // deployment keeps it (§5.12).
        let web = self.store.web_process(app_guid).await?;
        let mut units = vec![(web.bus_id().to_string(), app.version.clone())];
        for d in self.store.old_units(app_guid).await? {
            units.push((d.old_bus_id, d.old_version));
        }
        for (app_id, version) in units {
            self.publish(
                subjects::DEA_UPDATE,
                &UpdateRequest {
                    app_id,
                    uris: uris.clone(),
                    version: Some(version),
                },
            )
            .await;
        }
        Ok(())
    }

    fn fresh_dea_count(&self) -> usize {
        self.placement
            .lock()
            .map(|mut t| t.fresh(Instant::now()).len())
            .unwrap_or(0)
    }

    /// Gathers instance state from DEAs (`dea.find.droplet`) of the
    /// process with bus id `app_guid` (`Process::bus_id`).
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

    /// Crashes of the app's current version of process type `kind` per
    /// index within `FLAPPING_WINDOW_S`, from the `app.crash` audit events.
    pub async fn recent_crashes(&self, app: &App, kind: &str) -> BTreeMap<u32, IndexCrashes> {
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
            if data["process_type"].as_str().unwrap_or("web") != kind {
                continue;
            }
            let Some(index) = data["index"].as_u64().and_then(|i| u32::try_from(i).ok()) else {
                continue;
            };
            let c = out.entry(index).or_default();
            c.count += 1;
            c.last_reason = data["reason"].as_str().unwrap_or_default().to_string();
            c.last_exit_status = data["exit_status"].as_i64();
            c.last_at = chrono::DateTime::parse_from_rfc3339(&e.created_at)
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or(c.last_at);
        }
        out
    }
}

/// The parts of a start request that come from the app and its droplet
/// ([`Ctx::launch`]).
pub struct Launch {
    pub env: Vec<String>,
    pub egress: Vec<proto::EgressRule>,
    pub vcap: Value,
    /// `VCAP_SERVICES` (its bindings' credentials).
    pub vcap_services: Value,
    pub droplet_uri: String,
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

fn check_type(t: &str) -> HealthCheckType {
    match t {
        "http" => HealthCheckType::Http,
        "process" | "none" => HealthCheckType::Process,
        _ => HealthCheckType::Port,
    }
}

fn seconds(v: Option<i64>) -> Option<u64> {
    v.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0)
}

fn health_check(p: &Process) -> HealthCheck {
    HealthCheck {
        kind: check_type(&p.health_check_type),
        timeout_s: seconds(p.health_check_timeout).unwrap_or(60),
        endpoint: p.health_check_endpoint.clone(),
        invocation_timeout_s: seconds(p.health_check_invocation_timeout),
        interval_s: seconds(p.health_check_interval),
    }
}

/// The process's readiness check; none for `process` (CF's default).
fn readiness(p: &Process) -> Option<ReadinessCheck> {
    let kind = check_type(&p.readiness_type);
    (kind != HealthCheckType::Process).then(|| ReadinessCheck {
        kind,
        endpoint: p.readiness_endpoint.clone(),
        invocation_timeout_s: seconds(p.readiness_invocation_timeout),
        interval_s: seconds(p.readiness_interval),
    })
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
    /// Unix seconds of the last crash.
    pub last_at: f64,
}

impl IndexCrashes {
    pub fn flapping(&self) -> bool {
        self.count >= FLAPPING_CRASHES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(instances: i64) -> Process {
        Process::for_tests(instances)
    }

    #[test]
    fn health_check_mapping() {
        let mut p = process(1);
        assert_eq!(
            health_check(&p),
            HealthCheck {
                kind: HealthCheckType::Port,
                timeout_s: 60,
                endpoint: None,
                invocation_timeout_s: None,
                interval_s: None,
            }
        );
        assert_eq!(readiness(&p), None);
        p.health_check_type = "http".into();
        p.health_check_timeout = Some(5);
        p.health_check_endpoint = Some("/h".into());
        p.health_check_invocation_timeout = Some(2);
        p.health_check_interval = Some(0);
        assert_eq!(
            health_check(&p),
            HealthCheck {
                kind: HealthCheckType::Http,
                timeout_s: 5,
                endpoint: Some("/h".into()),
                invocation_timeout_s: Some(2),
                interval_s: None,
            }
        );
        p.readiness_type = "http".into();
        p.readiness_endpoint = Some("/ready".into());
        p.readiness_interval = Some(3);
        assert_eq!(
            readiness(&p),
            Some(ReadinessCheck {
                kind: HealthCheckType::Http,
                endpoint: Some("/ready".into()),
                invocation_timeout_s: None,
                interval_s: Some(3),
            })
        );
    }
}
