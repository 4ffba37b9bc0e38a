//! The CF v3 resources the CLI reads (lenient: every field has a default).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Href {
    pub href: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pagination {
    pub total_results: u64,
    pub next: Option<Href>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    #[serde(default)]
    pub pagination: Pagination,
    #[serde(default = "Vec::new")]
    pub resources: Vec<T>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    pub guid: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GuidRef {
    pub guid: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ToOne {
    pub data: Option<GuidRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LifecycleData {
    pub buildpacks: Vec<String>,
    pub stack: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Lifecycle {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: LifecycleData,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct App {
    pub guid: String,
    pub name: String,
    pub state: String,
    pub lifecycle: Lifecycle,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HealthCheckData {
    pub timeout: Option<u64>,
    pub endpoint: Option<String>,
    pub invocation_timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: HealthCheckData,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Process {
    pub guid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub command: Option<String>,
    pub instances: u32,
    pub memory_in_mb: u64,
    pub disk_in_mb: u64,
    pub health_check: HealthCheck,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub time: Option<String>,
    pub cpu: f64,
    pub mem: u64,
    pub disk: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProcessStat {
    #[serde(rename = "type")]
    pub kind: String,
    pub index: u32,
    pub state: String,
    pub usage: Usage,
    pub host: String,
    pub uptime: u64,
    pub mem_quota: Option<u64>,
    pub disk_quota: Option<u64>,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PackageData {
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Package {
    pub guid: String,
    pub state: String,
    pub data: PackageData,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Build {
    pub guid: String,
    pub state: String,
    pub error: Option<String>,
    pub droplet: Option<GuidRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DropletBuildpack {
    pub name: String,
    pub detect_output: Option<String>,
    pub buildpack_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Droplet {
    pub guid: String,
    pub state: String,
    pub process_types: BTreeMap<String, String>,
    pub buildpacks: Vec<DropletBuildpack>,
    pub stack: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Domain {
    pub guid: String,
    pub name: String,
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DestinationApp {
    pub guid: String,
    pub process: DestinationProcess,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DestinationProcess {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Destination {
    pub guid: String,
    pub app: DestinationApp,
    pub port: Option<u64>,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteRelationships {
    pub space: ToOne,
    pub domain: ToOne,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    pub guid: String,
    pub host: String,
    pub path: String,
    pub url: String,
    pub protocol: Option<String>,
    pub port: Option<u64>,
    pub destinations: Vec<Destination>,
    pub relationships: RouteRelationships,
}

impl Route {
    pub fn domain_guid(&self) -> &str {
        self.relationships
            .domain
            .data
            .as_ref()
            .map(|d| d.guid.as_str())
            .unwrap_or("")
    }

    pub fn space_guid(&self) -> &str {
        self.relationships
            .space
            .data
            .as_ref()
            .map(|d| d.guid.as_str())
            .unwrap_or("")
    }

    /// `url` when the controller gives one, else `host.domain/path`.
    pub fn display_url(&self, domain_name: &str) -> String {
        if !self.url.is_empty() {
            return self.url.clone();
        }
        route_url(&self.host, domain_name, &self.path)
    }
}

pub fn route_url(host: &str, domain: &str, path: &str) -> String {
    let mut s = if host.is_empty() {
        domain.to_string()
    } else {
        format!("{host}.{domain}")
    };
    s.push_str(path);
    s
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Actor {
    pub guid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuditEvent {
    pub guid: String,
    pub created_at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: Actor,
    pub target: Actor,
    pub data: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    pub guid: String,
    pub state: String,
    pub errors: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<u64>,
}
