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
    /// Parent resources asked for with `include=` or `fields[...]=`.
    #[serde(default)]
    pub included: Option<Value>,
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

/// `relationships.X.data.guid` of a resource, or "".
pub fn related_guid<'a>(relationships: &'a Value, name: &str) -> &'a str {
    relationships[name]["data"]["guid"].as_str().unwrap_or("")
}

/// The `last_operation` of a service instance or binding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LastOperation {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub description: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl LastOperation {
    /// `create succeeded`, as the cf CLI shows it (empty when unknown).
    pub fn summary(&self) -> String {
        if self.kind.is_empty() || self.state.is_empty() {
            return String::new();
        }
        format!("{} {}", self.kind, self.state)
    }
}

/// A service instance (`/v3/service_instances`), managed or user-provided.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceInstance {
    pub guid: String,
    pub name: String,
    /// `managed` or `user-provided`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tags: Vec<String>,
    pub last_operation: Option<LastOperation>,
    pub upgrade_available: Option<bool>,
    pub dashboard_url: Option<String>,
    pub syslog_drain_url: Option<String>,
    pub route_service_url: Option<String>,
    pub relationships: Value,
}

impl ServiceInstance {
    pub fn is_user_provided(&self) -> bool {
        self.kind == "user-provided"
    }

    pub fn plan_guid(&self) -> &str {
        related_guid(&self.relationships, "service_plan")
    }
}

/// A service plan (`/v3/service_plans`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServicePlan {
    pub guid: String,
    pub name: String,
    pub description: Option<String>,
    /// `public`, `admin`, `organization` or `space`.
    pub visibility_type: String,
    pub available: bool,
    pub free: bool,
    pub costs: Vec<Value>,
    pub relationships: Value,
}

impl ServicePlan {
    pub fn offering_guid(&self) -> &str {
        related_guid(&self.relationships, "service_offering")
    }
}

/// A service offering (`/v3/service_offerings`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceOffering {
    pub guid: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub documentation_url: Option<String>,
    pub relationships: Value,
}

impl ServiceOffering {
    pub fn broker_guid(&self) -> &str {
        related_guid(&self.relationships, "service_broker")
    }
}

/// A service broker (`/v3/service_brokers`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceBroker {
    pub guid: String,
    pub name: String,
    pub url: String,
    pub relationships: Value,
}

/// A service credential binding (`/v3/service_credential_bindings`): an
/// app binding or a service key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceBinding {
    pub guid: String,
    pub name: Option<String>,
    /// `app` or `key`.
    #[serde(rename = "type")]
    pub kind: String,
    pub last_operation: Option<LastOperation>,
    pub created_at: String,
    pub relationships: Value,
}

impl ServiceBinding {
    pub fn app_guid(&self) -> &str {
        related_guid(&self.relationships, "app")
    }

    pub fn instance_guid(&self) -> &str {
        related_guid(&self.relationships, "service_instance")
    }
}

/// A space as `include=space` gives it (its org in `relationships`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IncludedSpace {
    pub guid: String,
    pub name: String,
    pub relationships: Value,
}

/// The `included` parents of a list (merged over its pages).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Included {
    pub apps: Vec<Named>,
    pub spaces: Vec<IncludedSpace>,
    pub organizations: Vec<Named>,
    pub service_instances: Vec<Named>,
    pub service_plans: Vec<ServicePlan>,
    pub service_offerings: Vec<ServiceOffering>,
    pub service_brokers: Vec<ServiceBroker>,
}

impl Included {
    /// Merge the `included` objects of a list's pages (anything that does
    /// not parse is left out).
    pub fn from_pages(pages: Vec<Value>) -> Included {
        let mut all = Included::default();
        for p in pages {
            let Ok(i) = serde_json::from_value::<Included>(p) else {
                continue;
            };
            all.apps.extend(i.apps);
            all.spaces.extend(i.spaces);
            all.organizations.extend(i.organizations);
            all.service_instances.extend(i.service_instances);
            all.service_plans.extend(i.service_plans);
            all.service_offerings.extend(i.service_offerings);
            all.service_brokers.extend(i.service_brokers);
        }
        all
    }

    pub fn plan(&self, guid: &str) -> Option<&ServicePlan> {
        self.service_plans.iter().find(|p| p.guid == guid)
    }

    pub fn offering(&self, guid: &str) -> Option<&ServiceOffering> {
        self.service_offerings.iter().find(|o| o.guid == guid)
    }

    pub fn broker(&self, guid: &str) -> Option<&ServiceBroker> {
        self.service_brokers.iter().find(|b| b.guid == guid)
    }

    pub fn app(&self, guid: &str) -> Option<&Named> {
        self.apps.iter().find(|a| a.guid == guid)
    }

    /// Offering and broker names of a plan (empty when not included).
    pub fn offering_and_broker(&self, plan_guid: &str) -> (String, String) {
        let offering = self
            .plan(plan_guid)
            .and_then(|p| self.offering(p.offering_guid()));
        let broker = offering.and_then(|o| self.broker(o.broker_guid()));
        (
            offering.map(|o| o.name.clone()).unwrap_or_default(),
            broker.map(|b| b.name.clone()).unwrap_or_default(),
        )
    }
}
