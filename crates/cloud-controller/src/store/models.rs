//! Rows of the controller's tables.

use sqlx::FromRow;

use super::states::{AppState, BuildState, DropletState, PackageState};

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct User {
    pub guid: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: String,
    pub origin: String,
    /// Extra scopes (space-separated), e.g. `cloud_controller.admin`.
    pub groups: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    /// Bumped by a password change: older tokens stop working.
    pub token_generation: i64,
}

impl User {
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.split_whitespace()
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Organization {
    pub guid: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    pub quota_guid: Option<String>,
    pub suspended: i64,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Space {
    pub guid: String,
    pub name: String,
    pub organization_guid: String,
    pub created_at: String,
    pub updated_at: String,
    pub quota_guid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Domain {
    pub guid: String,
    pub name: String,
    pub internal: i64,
    pub created_at: String,
    pub updated_at: String,
    /// The owning org of a private domain; `None` for a shared domain.
    pub organization_guid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct App {
    pub guid: String,
    pub name: String,
    pub space_guid: String,
    /// `STARTED` or `STOPPED`.
    #[sqlx(try_from = "String")]
    pub state: AppState,
    pub version: String,
    pub buildpack: Option<String>,
    pub stack: String,
    /// JSON object of user environment variables.
    pub env: String,
    pub current_droplet_guid: Option<String>,
    /// Last start/stop/restart/scale (the desired document's `updated_at`).
    pub state_changed_at: String,
    pub created_at: String,
    pub updated_at: String,
    /// Optimistic locking: one more on every write of the row
    /// ([`super::Store::update_app`]).
    pub lock_version: i64,
}

impl App {
    pub fn env_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.env).unwrap_or_default()
    }

    pub fn started(&self) -> bool {
        self.state == AppState::Started
    }

    /// The buildpacks named for the app, in order (stored comma-separated:
    /// names never hold a comma).
    pub fn buildpacks(&self) -> Vec<String> {
        self.buildpack
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Process {
    pub guid: String,
    pub app_guid: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub command: Option<String>,
    pub instances: i64,
    pub memory_in_mb: i64,
    pub disk_in_mb: i64,
    pub health_check_type: String,
    pub health_check_timeout: Option<i64>,
    pub health_check_endpoint: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Seconds one liveness probe may take (CF's `invocation_timeout`).
    pub health_check_invocation_timeout: Option<i64>,
    /// Seconds between liveness probes once the instance runs.
    pub health_check_interval: Option<i64>,
    /// The readiness check: `process` (none), `port` or `http`.
    pub readiness_type: String,
    pub readiness_endpoint: Option<String>,
    pub readiness_invocation_timeout: Option<i64>,
    pub readiness_interval: Option<i64>,
    /// CF's `log_rate_limit_in_bytes_per_second`: -1 unlimited (within
    /// the platform's cap), 0 no logs.
    pub log_rate_limit: i64,
    /// The bus id of its instances once a deployment set one (§5.12).
    pub bus_guid: Option<String>,
    /// Optimistic locking: one more on every write of the row
    /// ([`super::Store::update_process`]).
    pub lock_version: i64,
}

impl Process {
    /// The health-check fields' defaults (no invocation timeout or interval
    /// given, no readiness check), for building a new process.
    pub fn defaults() -> Process {
        Process {
            guid: String::new(),
            app_guid: String::new(),
            kind: String::new(),
            command: None,
            instances: 0,
            memory_in_mb: 0,
            disk_in_mb: 0,
            health_check_type: "port".into(),
            health_check_timeout: None,
            health_check_endpoint: None,
            created_at: String::new(),
            updated_at: String::new(),
            health_check_invocation_timeout: None,
            health_check_interval: None,
            readiness_type: "process".into(),
            readiness_endpoint: None,
            readiness_invocation_timeout: None,
            readiness_interval: None,
            log_rate_limit: -1,
            bus_guid: None,
            lock_version: 0,
        }
    }

    /// The id its instances have on the bus (DEAs, health manager): the
    /// one a deployment gave it; else the app's guid for the web process
    /// (as CF's web process guid is its app's), the process guid for any
    /// other type.
    pub fn bus_id(&self) -> &str {
        if let Some(b) = &self.bus_guid {
            b
        } else if self.kind == "web" {
            &self.app_guid
        } else {
            &self.guid
        }
    }

    pub fn is_web(&self) -> bool {
        self.kind == "web"
    }
}

#[cfg(test)]
impl Process {
    /// The web process of app `a` with `instances` (unit tests' fixture).
    pub fn for_tests(instances: i64) -> Process {
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
            ..Process::defaults()
        }
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Package {
    pub guid: String,
    pub app_guid: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub state: PackageState,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Build {
    pub guid: String,
    pub app_guid: String,
    pub package_guid: String,
    #[sqlx(try_from = "String")]
    pub state: BuildState,
    pub error: Option<String>,
    pub droplet_guid: Option<String>,
    pub uploaded_sha256: Option<String>,
    pub created_by_guid: String,
    pub created_by_name: String,
    pub created_at: String,
    pub updated_at: String,
    /// The DEA staging it (set when it was handed over).
    pub dea_id: Option<String>,
    /// RFC 3339: when the platform's staging timeout is reached.
    pub staging_deadline: Option<String>,
    /// CF's error id of a failed build (`error` is its description).
    pub error_id: Option<String>,
}

impl Build {
    /// The build's `error` as CF shows it: `<id> - <description>`.
    pub fn error_text(&self) -> Option<String> {
        match (&self.error_id, &self.error) {
            (Some(id), Some(e)) => Some(format!("{id} - {e}")),
            (None, Some(e)) => Some(e.clone()),
            (Some(id), None) => Some(id.clone()),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Droplet {
    pub guid: String,
    pub app_guid: String,
    pub package_guid: String,
    #[sqlx(try_from = "String")]
    pub state: DropletState,
    pub sha256: Option<String>,
    /// JSON object `{type: command}`.
    pub process_types: String,
    pub buildpack: Option<String>,
    pub stack: String,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// JSON array of `{name, detect_output}`.
    pub buildpacks: Option<String>,
    /// JSON object: the final buildpack's `config_vars`.
    pub config_vars: Option<String>,
}

impl Droplet {
    /// The buildpacks it was built with.
    pub fn buildpacks_used(&self) -> Vec<proto::BuildpackUsed> {
        self.buildpacks
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_else(|| {
                self.buildpack
                    .iter()
                    .map(|b| proto::BuildpackUsed {
                        name: b.clone(),
                        detect_output: None,
                    })
                    .collect()
            })
    }

    /// The app's default environment from the buildpack.
    pub fn config_vars_map(&self) -> std::collections::BTreeMap<String, String> {
        self.config_vars
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default()
    }

    /// The droplet's command for process type `kind` (its Procfile's, or
    /// the buildpack's default for `web`).
    pub fn command_for(&self, kind: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.process_types).ok()?;
        v.get(kind)?.as_str().map(str::to_string)
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Route {
    pub guid: String,
    pub host: String,
    pub domain_guid: String,
    pub path: String,
    pub space_guid: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct RouteDestination {
    pub guid: String,
    pub route_guid: String,
    pub app_guid: String,
    pub process_type: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AuditEvent {
    pub guid: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub actor_guid: String,
    pub actor_type: String,
    pub actor_name: String,
    pub target_guid: String,
    pub target_type: String,
    pub target_name: String,
    /// JSON object.
    pub data: String,
    pub space_guid: Option<String>,
    pub organization_guid: Option<String>,
    pub created_at: String,
}

/// A route with its domain name resolved, as apps see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteUrl {
    pub route: Route,
    pub domain: String,
}

impl RouteUrl {
    /// `host.domain[/path]` (no scheme).
    pub fn url(&self) -> String {
        let mut s = if self.route.host.is_empty() {
            self.domain.clone()
        } else {
            format!("{}.{}", self.route.host, self.domain)
        };
        s.push_str(&self.route.path);
        s
    }
}
