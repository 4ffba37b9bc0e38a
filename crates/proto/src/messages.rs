//! Payloads of every subject in docs/architecture.md §4. JSON, snake_case.
//! Optional fields default so that older/newer peers interoperate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `router.start` and the reply to `router.greet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterStart {
    pub id: String,
    pub minimum_register_interval_s: u64,
    pub prune_threshold_s: u64,
}

/// `router.register` / `router.unregister`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRegistration {
    pub host: String,
    pub port: u16,
    pub uris: Vec<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    /// Instance id (private: not shown to users).
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub stale_threshold_s: Option<u64>,
}

/// `dea.advertise`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeaAdvertise {
    pub id: String,
    pub stacks: Vec<String>,
    pub available_memory_mb: u64,
    pub available_disk_mb: u64,
    #[serde(default)]
    pub app_id_to_count: BTreeMap<String, u32>,
    #[serde(default)]
    pub zone: String,
    /// Base URL of the DEA's own HTTP endpoint, if any.
    #[serde(default)]
    pub url: Option<String>,
    /// The placements (`StartRequest::placement_id`, staging ids) this DEA
    /// received lately and counts in the figures above, so a controller
    /// stops holding its own reservation for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<String>,
    /// The DEA's whole capacity (its configured memory and disk, free or
    /// not): the most one instance could ever get there. 0: not said.
    #[serde(default)]
    pub memory_capacity_mb: u64,
    #[serde(default)]
    pub disk_capacity_mb: u64,
}

/// Resource limits of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub fds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 256,
            disk_mb: 1024,
            fds: 16384,
        }
    }
}

/// Health check kind of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    #[default]
    Port,
    Http,
    Process,
}

/// The liveness check: passed within `timeout_s` to start, then probed
/// every `interval_s` while the instance runs (a failure is a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(rename = "type", default)]
    pub kind: HealthCheckType,
    pub timeout_s: u64,
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Seconds one probe may take (CF's `invocation_timeout`); absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_timeout_s: Option<u64>,
    /// Seconds between probes once running; absent: 30 (CF's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<u64>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthCheckType::Port,
            timeout_s: 60,
            endpoint: None,
            invocation_timeout_s: None,
            interval_s: None,
        }
    }
}

/// The readiness check (CF's `readiness_health_check`): while it fails the
/// instance is not routed; it never stops the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Seconds one probe may take; absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_timeout_s: Option<u64>,
    /// Seconds between probes; absent: 30 (CF's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<u64>,
}

/// `dea.<dea_id>.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    pub app_id: String,
    pub app_name: String,
    pub version: String,
    pub index: u32,
    /// Signed URL to GET the droplet tarball.
    pub droplet_uri: String,
    pub droplet_sha256: String,
    #[serde(default)]
    pub uris: Vec<String>,
    /// User environment as `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    pub limits: Limits,
    #[serde(default)]
    pub health_check: HealthCheck,
    pub start_command: String,
    pub stack: String,
    /// The `VCAP_APPLICATION` document (JSON object).
    #[serde(default)]
    pub vcap_application: serde_json::Value,
    /// Names this placement in the DEA's adverts (`DeaAdvertise::placements`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_id: Option<String>,
    /// The running security groups' rules for the app's space; absent: the
    /// DEA's defaults (public networks and the host's DNS resolvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<crate::egress::EgressRule>>,
    /// The process type (CF's `web`, `worker`, …); absent: `web`. An app's
    /// web process is scheduled under the app's guid (`app_id`), any other
    /// process under its own process guid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_type: Option<String>,
    /// Whose log the instance writes to (Diego's `log_guid`): the app's
    /// guid. Absent: `app_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_guid: Option<String>,
    /// Set for a one-off task (CF's `/v3/tasks`): its name. `app_id` is
    /// then the task's guid. A task runs once, with no health check and no
    /// route; its exit is reported (`ExitReason::Completed` for status 0)
    /// and never restarted; it is left out of heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// The readiness check; absent: none (routed once live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ReadinessCheck>,
    /// Bytes a second the instance may log (CF's
    /// `log_rate_limit_in_bytes_per_second`; 0: nothing), within the DEA's
    /// own cap; absent: only the DEA's cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rate_limit_bytes_per_s: Option<u64>,
    /// The app's `VCAP_SERVICES` (JSON object: its bound services'
    /// credentials; docs/architecture.md §5.11); absent: `{}`. The DEA
    /// also sets `DATABASE_URL` from it (`proto::services::database_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcap_services: Option<serde_json::Value>,
}

impl StartRequest {
    /// Where this instance's log lines go, and with which process type.
    pub fn log_owner(&self) -> LogOwner {
        LogOwner {
            app_id: self.log_guid.clone().unwrap_or_else(|| self.app_id.clone()),
            process_type: self.process_type.clone().filter(|t| t != "web"),
            task_name: self.task_name.clone(),
        }
    }

    pub fn is_task(&self) -> bool {
        self.task_name.is_some()
    }
}

/// The app whose log an instance writes to and, for a process other than
/// `web`, that process's type (shown as `APP/PROC/WORKER/0`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOwner {
    pub app_id: String,
    pub process_type: Option<String>,
    /// A task's name: its `APP` lines show as `APP/TASK/<name>/0`.
    pub task_name: Option<String>,
}

impl LogOwner {
    /// The owner of an app's web process or of its staging.
    pub fn app(app_id: &str) -> LogOwner {
        LogOwner {
            app_id: app_id.to_string(),
            process_type: None,
            task_name: None,
        }
    }
}

/// `dea.egress`: the running security groups of an app changed; DEAs apply
/// the rules to its running instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressUpdate {
    pub app_id: String,
    pub rules: Vec<crate::egress::EgressRule>,
}

/// `dea.stop`: every field narrows the filter; absent = any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StopRequest {
    pub app_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<u32>>,
    /// Seconds between unregistering a routed instance and SIGTERM, for
    /// routers to drop the route and requests in flight to finish (a
    /// deployment's graceful stop); omitted: none. The DEA caps it at
    /// `MAX_STOP_DRAIN_S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_s: Option<u64>,
}

/// The longest drain a `dea.stop` may ask for.
pub const MAX_STOP_DRAIN_S: u64 = 120;

/// `dea.update`: route changes without a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub app_id: String,
    pub uris: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// `dea.find.droplet` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FindDropletRequest {
    pub app_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<u32>>,
    #[serde(default)]
    pub include_stats: bool,
}

/// Instance states (docs/architecture.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    Born,
    Starting,
    Running,
    Stopping,
    Stopped,
    Crashed,
    Evacuating,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Born => "BORN",
            InstanceState::Starting => "STARTING",
            InstanceState::Running => "RUNNING",
            InstanceState::Stopping => "STOPPING",
            InstanceState::Stopped => "STOPPED",
            InstanceState::Crashed => "CRASHED",
            InstanceState::Evacuating => "EVACUATING",
        }
    }

    /// Whether the instance is alive (counts towards the desired count).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            InstanceState::Born
                | InstanceState::Starting
                | InstanceState::Running
                | InstanceState::Evacuating
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct InstanceStats {
    /// CPU usage as a fraction of one core (0.0–n).
    pub cpu: f64,
    /// Resident memory in bytes.
    pub mem: u64,
    /// Disk usage in bytes.
    pub disk: u64,
    /// Seconds since the instance started.
    pub uptime: u64,
}

/// One reply to `dea.find.droplet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindDropletResponse {
    pub dea_id: String,
    pub app_id: String,
    pub version: String,
    pub instance_id: String,
    pub index: u32,
    pub state: InstanceState,
    /// Unix seconds of the last state change.
    pub since: f64,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub stats: Option<InstanceStats>,
    /// Whether it passes its readiness check (and so is routed while
    /// RUNNING); absent (older DEAs): true.
    #[serde(default = "yes")]
    pub ready: bool,
}

fn yes() -> bool {
    true
}

/// One instance in a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceHeartbeat {
    pub app_id: String,
    pub version: String,
    pub index: u32,
    pub instance_id: String,
    pub state: InstanceState,
    /// Unix seconds of the last state change.
    pub since: f64,
}

/// `dea.heartbeat`: full list, replaces that DEA's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub dea_id: String,
    pub instances: Vec<InstanceHeartbeat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExitReason {
    Crashed,
    Stopped,
    Evacuating,
    /// A task's process exited with status 0.
    Completed,
}

/// `droplet.exited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropletExited {
    pub app_id: String,
    pub version: String,
    pub index: u32,
    pub instance_id: String,
    pub reason: ExitReason,
    #[serde(default)]
    pub exit_status: Option<i32>,
    #[serde(default)]
    pub exit_description: String,
    /// Unix seconds.
    pub crash_timestamp: f64,
}

/// `dea.shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeaShutdown {
    pub id: String,
    #[serde(default)]
    pub app_id_to_count: BTreeMap<String, u32>,
}

/// `health.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStart {
    pub app_id: String,
    pub version: String,
    pub indices: Vec<u32>,
    pub reason: String,
}

/// `health.stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStop {
    pub app_id: String,
    #[serde(default)]
    pub version: Option<String>,
    pub instance_ids: Vec<String>,
    pub reason: String,
}

/// Source of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogSource {
    App,
    Stg,
    Rtr,
    Api,
    Hm,
    /// The DEA itself about an instance (CF's `CELL`).
    Cell,
    /// The DEA's health check of an instance (CF's `HEALTH`).
    Health,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::App => "APP",
            LogSource::Stg => "STG",
            LogSource::Rtr => "RTR",
            LogSource::Api => "API",
            LogSource::Hm => "HM",
            LogSource::Cell => "CELL",
            LogSource::Health => "HEALTH",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    #[default]
    Stdout,
    Stderr,
}

/// `logs.<app_id>`; also the shape the controller serves to the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    pub app_id: String,
    pub source: LogSource,
    #[serde(default)]
    pub instance_index: Option<u32>,
    #[serde(default)]
    pub stream: LogStream,
    /// RFC 3339 with milliseconds.
    pub timestamp: String,
    pub line: String,
    /// The process type of an `APP` line from a process other than `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_type: Option<String>,
    /// The task's name, for an `APP` line of a task (`APP/TASK/<name>/0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
}

impl LogMessage {
    pub fn new(
        app_id: &str,
        source: LogSource,
        index: Option<u32>,
        stream: LogStream,
        line: impl Into<String>,
    ) -> Self {
        LogMessage {
            app_id: app_id.to_string(),
            source,
            instance_index: index,
            stream,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            line: line.into(),
            process_type: None,
            task_name: None,
        }
    }

    /// A line of `owner`'s log (its process type set for `APP` lines).
    pub fn of(
        owner: &LogOwner,
        source: LogSource,
        index: Option<u32>,
        stream: LogStream,
        line: impl Into<String>,
    ) -> Self {
        let mut m = LogMessage::new(&owner.app_id, source, index, stream, line);
        if source == LogSource::App {
            m.process_type = owner.process_type.clone();
            m.task_name = owner.task_name.clone();
        }
        m
    }
}

/// `component.announce` and replies to `component.discover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentAnnounce {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub admin_url: Option<String>,
    pub uptime_s: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let s = serde_json::to_string(v).expect("serialize");
        let back: T = serde_json::from_str(&s).expect("deserialize");
        assert_eq!(&back, v, "round trip of {s}");
    }

    #[test]
    fn every_payload_round_trips() {
        round_trip(&RouterStart {
            id: "r".into(),
            minimum_register_interval_s: 5,
            prune_threshold_s: 20,
        });
        round_trip(&RouteRegistration {
            host: "127.0.0.1".into(),
            port: 8080,
            uris: vec!["a.localhost".into()],
            app_id: Some("app".into()),
            instance_id: Some("i".into()),
            tags: BTreeMap::from([("component".into(), "x".into())]),
            stale_threshold_s: Some(20),
        });
        round_trip(&DeaAdvertise {
            id: "d".into(),
            stacks: vec!["host".into()],
            available_memory_mb: 1024,
            available_disk_mb: 2048,
            app_id_to_count: BTreeMap::from([("a".into(), 2)]),
            zone: "z1".into(),
            url: None,
            placements: vec!["p1".into()],
            memory_capacity_mb: 8192,
            disk_capacity_mb: 16384,
        });
        round_trip(&StartRequest {
            app_id: "a".into(),
            app_name: "n".into(),
            version: "v".into(),
            index: 2,
            droplet_uri: "http://x".into(),
            droplet_sha256: "ab".into(),
            uris: vec!["n.localhost".into()],
            env: vec![],
            limits: Limits::default(),
            health_check: HealthCheck {
                kind: HealthCheckType::Http,
                timeout_s: 10,
                endpoint: Some("/h".into()),
                invocation_timeout_s: Some(2),
                interval_s: Some(10),
            },
            start_command: "./run".into(),
            stack: "host".into(),
            vcap_application: serde_json::json!({"name": "n"}),
            placement_id: Some("p1".into()),
            egress: Some(crate::egress::public_networks()),
            process_type: Some("worker".into()),
            log_guid: Some("app".into()),
            task_name: None,
            readiness: Some(ReadinessCheck {
                kind: HealthCheckType::Http,
                endpoint: Some("/ready".into()),
                invocation_timeout_s: None,
                interval_s: Some(2),
            }),
            log_rate_limit_bytes_per_s: Some(1024),
            vcap_services: Some(serde_json::json!({"user-provided": []})),
        });
        round_trip(&EgressUpdate {
            app_id: "a".into(),
            rules: crate::egress::dns(&[std::net::Ipv4Addr::new(10, 0, 0, 2)]),
        });
        round_trip(&StopRequest {
            app_id: "a".into(),
            version: None,
            instance_ids: Some(vec!["i".into()]),
            indices: None,
            drain_s: Some(10),
        });
        round_trip(&UpdateRequest {
            app_id: "a".into(),
            uris: vec![],
            version: Some("v".into()),
        });
        round_trip(&FindDropletRequest {
            app_id: "a".into(),
            include_stats: true,
            ..Default::default()
        });
        round_trip(&FindDropletResponse {
            dea_id: "d".into(),
            app_id: "a".into(),
            version: "v".into(),
            instance_id: "i".into(),
            index: 0,
            state: InstanceState::Running,
            since: 1.5,
            host: "127.0.0.1".into(),
            port: 1234,
            stats: Some(InstanceStats {
                cpu: 0.1,
                mem: 10,
                disk: 20,
                uptime: 3,
            }),
            ready: false,
        });
        round_trip(&Heartbeat {
            dea_id: "d".into(),
            instances: vec![InstanceHeartbeat {
                app_id: "a".into(),
                version: "v".into(),
                index: 0,
                instance_id: "i".into(),
                state: InstanceState::Crashed,
                since: 2.0,
            }],
        });
        round_trip(&DropletExited {
            app_id: "a".into(),
            version: "v".into(),
            index: 1,
            instance_id: "i".into(),
            reason: ExitReason::Crashed,
            exit_status: Some(137),
            exit_description: "killed".into(),
            crash_timestamp: 3.0,
        });
        round_trip(&DeaShutdown {
            id: "d".into(),
            app_id_to_count: BTreeMap::new(),
        });
        round_trip(&HealthStart {
            app_id: "a".into(),
            version: "v".into(),
            indices: vec![0, 2],
            reason: "missing".into(),
        });
        round_trip(&HealthStop {
            app_id: "a".into(),
            version: None,
            instance_ids: vec!["i".into()],
            reason: "extra".into(),
        });
        round_trip(&LogMessage::new(
            "a",
            LogSource::Stg,
            None,
            LogStream::Stderr,
            "hello",
        ));
        round_trip(&ComponentAnnounce {
            kind: "router".into(),
            id: "r".into(),
            admin_url: None,
            uptime_s: 4,
        });
    }

    #[test]
    fn wire_names_match_the_contract() {
        let v = serde_json::to_value(InstanceState::Evacuating).expect("json");
        assert_eq!(v, "EVACUATING");
        let v = serde_json::to_value(LogSource::Rtr).expect("json");
        assert_eq!(v, "RTR");
        let hc: HealthCheck =
            serde_json::from_str(r#"{"type":"http","timeout_s":5,"endpoint":"/x"}"#).expect("hc");
        assert_eq!(hc.kind, HealthCheckType::Http);
        // Optional fields may be absent.
        let r: RouteRegistration =
            serde_json::from_str(r#"{"host":"h","port":1,"uris":["u"]}"#).expect("reg");
        assert!(r.app_id.is_none() && r.tags.is_empty());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert!(serde_json::from_str::<Heartbeat>("{").is_err());
        assert!(serde_json::from_str::<Heartbeat>(r#"{"dea_id":5,"instances":[]}"#).is_err());
        assert!(serde_json::from_str::<StartRequest>(r#"{"app_id":"a"}"#).is_err());
    }

    #[test]
    fn a_worker_logs_to_its_app_with_its_type() {
        let mut req: StartRequest = serde_json::from_value(serde_json::json!({
            "app_id": "proc-guid", "app_name": "a", "version": "v", "index": 1,
            "droplet_uri": "u", "droplet_sha256": "s", "limits": Limits::default(),
            "start_command": "./work", "stack": "host",
        }))
        .expect("start request");
        assert_eq!(req.log_owner(), LogOwner::app("proc-guid"));
        req.process_type = Some("web".into());
        assert_eq!(req.log_owner().process_type, None);
        req.process_type = Some("worker".into());
        req.log_guid = Some("app-guid".into());
        let owner = req.log_owner();
        assert_eq!(owner.app_id, "app-guid");
        let app = LogMessage::of(&owner, LogSource::App, Some(1), LogStream::Stdout, "x");
        assert_eq!(app.process_type.as_deref(), Some("worker"));
        let cell = LogMessage::of(&owner, LogSource::Cell, Some(1), LogStream::Stdout, "x");
        assert_eq!(
            (cell.app_id.as_str(), cell.process_type),
            ("app-guid", None)
        );
        req.process_type = None;
        req.task_name = Some("migrate".into());
        assert!(req.is_task());
        let app = LogMessage::of(
            &req.log_owner(),
            LogSource::App,
            Some(0),
            LogStream::Stdout,
            "x",
        );
        assert_eq!(app.task_name.as_deref(), Some("migrate"));
    }
}
