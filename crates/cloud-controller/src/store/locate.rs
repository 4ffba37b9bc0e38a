//! Where a resource lives: its org and space, for authorization.

use super::{Result, Store};

/// What the `{guid}` in the path names; resolved to its org and space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    App,
    Process,
    Package,
    Build,
    Droplet,
    Route,
    Space,
    Org,
    /// An org role or a space role: org roles are managed with
    /// `ManageOrgRoles`, space roles with `ManageSpaceRoles`.
    Role,
    /// A private domain (its owner org); shared domains are platform-wide.
    Domain,
    SpaceQuota,
    AuditEvent,
    Task,
    Revision,
    Deployment,
    ServiceInstance,
    /// A credential binding (located by its instance's space).
    ServiceBinding,
}

impl Target {
    /// The noun of the 404 ("App not found").
    pub fn noun(self) -> &'static str {
        match self {
            Target::App => "App",
            Target::Process => "Process",
            Target::Package => "Package",
            Target::Build => "Build",
            Target::Droplet => "Droplet",
            Target::Route => "Route",
            Target::Space => "Space",
            Target::Org => "Organization",
            Target::Role => "Role",
            Target::Domain => "Domain",
            Target::SpaceQuota => "Space quota",
            Target::AuditEvent => "Event",
            Target::Task => "Task",
            Target::Revision => "Revision",
            Target::Deployment => "Deployment",
            Target::ServiceInstance => "Service instance",
            Target::ServiceBinding => "Service credential binding",
        }
    }
}

/// A resource's org and space (`""` when it has none: an org, a shared
/// domain, a platform event).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Located {
    pub org: String,
    pub space: String,
}

impl Store {
    /// The org and space of the resource `guid` of kind `target`; `None`
    /// when there is no such resource.
    pub async fn locate(&self, target: Target, guid: &str) -> Result<Option<Located>> {
        let via_app = |table: &str, col: &str| {
            format!(
                "SELECT s.organization_guid, s.guid FROM {table} x JOIN apps a ON a.guid = x.{col} JOIN spaces s ON s.guid = a.space_guid WHERE x.guid = $1"
            )
        };
        let sql = match target {
            Target::App => "SELECT s.organization_guid, s.guid FROM apps a JOIN spaces s ON s.guid = a.space_guid WHERE a.guid = $1".to_string(),
            Target::Process => via_app("processes", "app_guid"),
            Target::Package => via_app("packages", "app_guid"),
            Target::Build => via_app("builds", "app_guid"),
            Target::Droplet => via_app("droplets", "app_guid"),
            Target::Task => via_app("tasks", "app_guid"),
            Target::Revision => via_app("revisions", "app_guid"),
            Target::Deployment => via_app("deployments", "app_guid"),
            Target::ServiceInstance => "SELECT s.organization_guid, s.guid FROM service_instances i JOIN spaces s ON s.guid = i.space_guid WHERE i.guid = $1".to_string(),
            Target::ServiceBinding => "SELECT s.organization_guid, s.guid FROM service_bindings b JOIN service_instances i ON i.guid = b.instance_guid JOIN spaces s ON s.guid = i.space_guid WHERE b.guid = $1".to_string(),
            Target::Route => "SELECT s.organization_guid, s.guid FROM routes r JOIN spaces s ON s.guid = r.space_guid WHERE r.guid = $1".to_string(),
            Target::Space => "SELECT organization_guid, guid FROM spaces WHERE guid = $1".to_string(),
            Target::Org => "SELECT guid, '' FROM organizations WHERE guid = $1".to_string(),
            Target::Role => "SELECT organization_guid, space_guid FROM roles WHERE guid = $1".to_string(),
            Target::Domain => "SELECT COALESCE(organization_guid, ''), '' FROM domains WHERE guid = $1".to_string(),
            Target::SpaceQuota => "SELECT organization_guid, '' FROM quotas WHERE guid = $1 AND kind = 'space'".to_string(),
            Target::AuditEvent => "SELECT COALESCE(organization_guid, ''), COALESCE(space_guid, '') FROM audit_events WHERE guid = $1".to_string(),
        };
        let row: Option<(String, String)> = self.all(&sql, &[guid]).await?.into_iter().next();
        Ok(row.map(|(org, space)| Located { org, space }))
    }
}
