//! Every API route's rule: which action it takes and on what target. The
//! authorization layer looks the matched route up here; a route missing
//! from the table is refused (deny by default), so new endpoints must be
//! added. The permission matrix test iterates this table.

use super::matrix::Action::{self, *};

pub use crate::store::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any signed-in user; the handler shows only what the caller may read
    /// (lists) or checks the target named in the body (creates).
    Caller,
    /// A platform-wide action.
    Platform(Action),
    /// The action on the resource the path's `{guid}` names.
    On(Target, Action),
    /// UAA's user management: admins, and holders of `scim.write` (or
    /// `scim.read` for reading) or `uaa.admin`.
    Scim,
}

use Rule::*;
use Target as T;

/// (method, route template as axum matches it, rule).
pub const POLICY: &[(&str, &str, Rule)] = &[
    // UAA side (SCIM users and groups).
    ("GET", "/Users", Scim),
    ("POST", "/Users", Scim),
    ("GET", "/Users/{id}", Scim),
    ("DELETE", "/Users/{id}", Scim),
    ("PUT", "/Users/{id}/password", Caller),
    ("GET", "/Groups", Scim),
    ("POST", "/Groups/{id}/members", Scim),
    ("DELETE", "/Groups/{id}/members/{member}", Scim),
    // Operator actions: the token signing keys.
    ("GET", "/v3/admin/token_keys", Platform(AdminOnly)),
    (
        "POST",
        "/v3/admin/actions/rotate_token_keys",
        Platform(AdminOnly),
    ),
    // Users, orgs, spaces, roles.
    ("GET", "/v3/users", Caller),
    ("POST", "/v3/users", Platform(AdminOnly)),
    ("GET", "/v3/users/{guid}", Caller),
    ("DELETE", "/v3/users/{guid}", Platform(AdminOnly)),
    ("GET", "/v3/organizations", Caller),
    ("POST", "/v3/organizations", Caller),
    ("GET", "/v3/organizations/{guid}", On(T::Org, ReadOrg)),
    ("PATCH", "/v3/organizations/{guid}", On(T::Org, UpdateOrg)),
    ("DELETE", "/v3/organizations/{guid}", On(T::Org, DeleteOrg)),
    (
        "GET",
        "/v3/organizations/{guid}/domains",
        On(T::Org, ReadOrg),
    ),
    (
        "GET",
        "/v3/organizations/{guid}/domains/default",
        On(T::Org, ReadOrg),
    ),
    (
        "GET",
        "/v3/organizations/{guid}/usage_summary",
        On(T::Org, ReadOrg),
    ),
    ("GET", "/v3/spaces", Caller),
    ("POST", "/v3/spaces", Caller),
    ("GET", "/v3/spaces/{guid}", On(T::Space, ReadSpace)),
    ("PATCH", "/v3/spaces/{guid}", On(T::Space, UpdateSpace)),
    ("DELETE", "/v3/spaces/{guid}", On(T::Space, DeleteSpace)),
    (
        "POST",
        "/v3/spaces/{guid}/actions/apply_manifest",
        On(T::Space, WriteSpace),
    ),
    (
        "GET",
        "/v3/spaces/{guid}/running_security_groups",
        On(T::Space, ReadSpace),
    ),
    (
        "GET",
        "/v3/spaces/{guid}/staging_security_groups",
        On(T::Space, ReadSpace),
    ),
    ("GET", "/v3/roles", Caller),
    ("POST", "/v3/roles", Caller),
    ("GET", "/v3/roles/{guid}", On(T::Role, ReadOrg)),
    ("DELETE", "/v3/roles/{guid}", On(T::Role, ManageOrgRoles)),
    ("GET", "/v3/feature_flags", Platform(ReadGlobal)),
    ("GET", "/v3/feature_flags/{name}", Platform(ReadGlobal)),
    ("PATCH", "/v3/feature_flags/{name}", Platform(AdminOnly)),
    // Quotas.
    ("GET", "/v3/organization_quotas", Platform(ReadGlobal)),
    ("POST", "/v3/organization_quotas", Platform(AdminOnly)),
    (
        "GET",
        "/v3/organization_quotas/{guid}",
        Platform(ReadGlobal),
    ),
    (
        "PATCH",
        "/v3/organization_quotas/{guid}",
        Platform(AdminOnly),
    ),
    (
        "DELETE",
        "/v3/organization_quotas/{guid}",
        Platform(AdminOnly),
    ),
    (
        "POST",
        "/v3/organization_quotas/{guid}/relationships/organizations",
        Platform(AdminOnly),
    ),
    ("GET", "/v3/space_quotas", Caller),
    ("POST", "/v3/space_quotas", Caller),
    ("GET", "/v3/space_quotas/{guid}", On(T::SpaceQuota, ReadOrg)),
    (
        "PATCH",
        "/v3/space_quotas/{guid}",
        On(T::SpaceQuota, ManageOrgDomainsAndQuotas),
    ),
    (
        "DELETE",
        "/v3/space_quotas/{guid}",
        On(T::SpaceQuota, ManageOrgDomainsAndQuotas),
    ),
    (
        "POST",
        "/v3/space_quotas/{guid}/relationships/spaces",
        On(T::SpaceQuota, ManageOrgDomainsAndQuotas),
    ),
    (
        "DELETE",
        "/v3/space_quotas/{guid}/relationships/spaces/{space}",
        On(T::SpaceQuota, ManageOrgDomainsAndQuotas),
    ),
    // Domains.
    ("GET", "/v3/domains", Caller),
    ("POST", "/v3/domains", Caller),
    ("GET", "/v3/domains/{guid}", On(T::Domain, ReadOrg)),
    (
        "DELETE",
        "/v3/domains/{guid}",
        On(T::Domain, ManageOrgDomainsAndQuotas),
    ),
    (
        "POST",
        "/v3/domains/{guid}/relationships/shared_organizations",
        On(T::Domain, ManageOrgDomainsAndQuotas),
    ),
    (
        "DELETE",
        "/v3/domains/{guid}/relationships/shared_organizations/{org}",
        On(T::Domain, ManageOrgDomainsAndQuotas),
    ),
    // Apps.
    ("GET", "/v3/apps", Caller),
    ("POST", "/v3/apps", Caller),
    ("GET", "/v3/apps/{guid}", On(T::App, ReadSpace)),
    ("PATCH", "/v3/apps/{guid}", On(T::App, WriteSpace)),
    ("DELETE", "/v3/apps/{guid}", On(T::App, WriteSpace)),
    (
        "POST",
        "/v3/apps/{guid}/actions/start",
        On(T::App, ManageApp),
    ),
    (
        "POST",
        "/v3/apps/{guid}/actions/stop",
        On(T::App, ManageApp),
    ),
    (
        "POST",
        "/v3/apps/{guid}/actions/restart",
        On(T::App, ManageApp),
    ),
    ("GET", "/v3/apps/{guid}/env", On(T::App, ReadEnv)),
    (
        "GET",
        "/v3/apps/{guid}/environment_variables",
        On(T::App, ReadEnv),
    ),
    (
        "PATCH",
        "/v3/apps/{guid}/environment_variables",
        On(T::App, ManageApp),
    ),
    ("GET", "/v3/apps/{guid}/packages", On(T::App, ReadSpace)),
    ("GET", "/v3/apps/{guid}/droplets", On(T::App, ReadSpace)),
    (
        "GET",
        "/v3/apps/{guid}/droplets/current",
        On(T::App, ReadSpace),
    ),
    (
        "GET",
        "/v3/apps/{guid}/relationships/current_droplet",
        On(T::App, ReadSpace),
    ),
    (
        "PATCH",
        "/v3/apps/{guid}/relationships/current_droplet",
        On(T::App, WriteSpace),
    ),
    ("GET", "/v3/apps/{guid}/routes", On(T::App, ReadSpace)),
    ("GET", "/v3/apps/{guid}/builds", On(T::App, ReadSpace)),
    ("GET", "/v3/apps/{guid}/logs/recent", On(T::App, ReadSpace)),
    ("GET", "/v3/apps/{guid}/logs/stream", On(T::App, ReadSpace)),
    ("GET", "/v3/apps/{guid}/processes", On(T::App, ReadSpace)),
    (
        "GET",
        "/v3/apps/{guid}/processes/{kind}",
        On(T::App, ReadSpace),
    ),
    (
        "PATCH",
        "/v3/apps/{guid}/processes/{kind}",
        On(T::App, ManageApp),
    ),
    (
        "POST",
        "/v3/apps/{guid}/processes/{kind}/actions/scale",
        On(T::App, ManageApp),
    ),
    (
        "GET",
        "/v3/apps/{guid}/processes/{kind}/stats",
        On(T::App, ReadSpace),
    ),
    // Revisions and app features.
    ("GET", "/v3/apps/{guid}/revisions", On(T::App, ReadSpace)),
    (
        "GET",
        "/v3/apps/{guid}/revisions/deployed",
        On(T::App, ReadSpace),
    ),
    ("GET", "/v3/revisions/{guid}", On(T::Revision, ReadSpace)),
    (
        "GET",
        "/v3/revisions/{guid}/environment_variables",
        On(T::Revision, ReadEnv),
    ),
    ("GET", "/v3/apps/{guid}/features", On(T::App, ReadSpace)),
    (
        "GET",
        "/v3/apps/{guid}/features/{name}",
        On(T::App, ReadSpace),
    ),
    (
        "PATCH",
        "/v3/apps/{guid}/features/{name}",
        On(T::App, WriteSpace),
    ),
    // Tasks (CF: created by admins and space developers, cancelled also
    // by supporters).
    ("POST", "/v3/apps/{guid}/tasks", On(T::App, WriteSpace)),
    ("GET", "/v3/apps/{guid}/tasks", On(T::App, ReadSpace)),
    ("GET", "/v3/tasks", Caller),
    ("POST", "/v3/deployments", Caller),
    ("GET", "/v3/deployments", Caller),
    (
        "GET",
        "/v3/deployments/{guid}",
        On(T::Deployment, ReadSpace),
    ),
    (
        "POST",
        "/v3/deployments/{guid}/actions/cancel",
        On(T::Deployment, ManageApp),
    ),
    (
        "POST",
        "/v3/deployments/{guid}/actions/continue",
        On(T::Deployment, ManageApp),
    ),
    ("GET", "/v3/tasks/{guid}", On(T::Task, ReadSpace)),
    (
        "POST",
        "/v3/tasks/{guid}/actions/cancel",
        On(T::Task, ManageApp),
    ),
    ("PUT", "/v3/tasks/{guid}/cancel", On(T::Task, ManageApp)),
    // Processes, packages, builds, droplets.
    ("GET", "/v3/processes", Caller),
    ("GET", "/v3/processes/{guid}", On(T::Process, ReadSpace)),
    ("PATCH", "/v3/processes/{guid}", On(T::Process, ManageApp)),
    (
        "POST",
        "/v3/processes/{guid}/actions/scale",
        On(T::Process, ManageApp),
    ),
    (
        "GET",
        "/v3/processes/{guid}/stats",
        On(T::Process, ReadSpace),
    ),
    ("GET", "/v3/packages", Caller),
    ("POST", "/v3/packages", Caller),
    ("GET", "/v3/packages/{guid}", On(T::Package, ReadSpace)),
    (
        "POST",
        "/v3/packages/{guid}/upload",
        On(T::Package, WriteSpace),
    ),
    ("POST", "/v3/resource_matches", Caller),
    ("GET", "/v3/builds", Caller),
    ("POST", "/v3/builds", Caller),
    ("GET", "/v3/builds/{guid}", On(T::Build, ReadSpace)),
    ("GET", "/v3/droplets/{guid}", On(T::Droplet, ReadSpace)),
    // Routes.
    ("GET", "/v3/routes", Caller),
    ("POST", "/v3/routes", Caller),
    ("GET", "/v3/routes/{guid}", On(T::Route, ReadSpace)),
    ("DELETE", "/v3/routes/{guid}", On(T::Route, ManageApp)),
    (
        "GET",
        "/v3/routes/{guid}/destinations",
        On(T::Route, ReadSpace),
    ),
    (
        "POST",
        "/v3/routes/{guid}/destinations",
        On(T::Route, ManageApp),
    ),
    (
        "DELETE",
        "/v3/routes/{guid}/destinations/{dest}",
        On(T::Route, ManageApp),
    ),
    // Platform-wide resources.
    ("GET", "/v3/buildpacks", Platform(ReadGlobal)),
    ("POST", "/v3/buildpacks", Platform(AdminOnly)),
    ("GET", "/v3/buildpacks/{guid}", Platform(ReadGlobal)),
    ("PATCH", "/v3/buildpacks/{guid}", Platform(AdminOnly)),
    ("DELETE", "/v3/buildpacks/{guid}", Platform(AdminOnly)),
    ("POST", "/v3/buildpacks/{guid}/upload", Platform(AdminOnly)),
    ("GET", "/v3/stacks", Platform(ReadGlobal)),
    ("GET", "/v3/security_groups", Platform(ReadGlobal)),
    ("POST", "/v3/security_groups", Platform(AdminOnly)),
    ("GET", "/v3/security_groups/{guid}", Platform(ReadGlobal)),
    ("PATCH", "/v3/security_groups/{guid}", Platform(AdminOnly)),
    ("DELETE", "/v3/security_groups/{guid}", Platform(AdminOnly)),
    (
        "POST",
        "/v3/security_groups/{guid}/relationships/{lifecycle}",
        Platform(AdminOnly),
    ),
    (
        "DELETE",
        "/v3/security_groups/{guid}/relationships/{lifecycle}/{space}",
        Platform(AdminOnly),
    ),
    // Services (docs/architecture.md §5.11). Brokers and plan visibility
    // are admins'; the catalog is read by everyone (the handlers show the
    // plans visible to the caller); instances and keys are space
    // developers'; app bindings also supporters'; secrets are read by
    // admins, read-only admins and space developers.
    ("GET", "/v3/service_brokers", Caller),
    ("POST", "/v3/service_brokers", Platform(AdminOnly)),
    ("GET", "/v3/service_brokers/{guid}", Caller),
    ("PATCH", "/v3/service_brokers/{guid}", Platform(AdminOnly)),
    ("DELETE", "/v3/service_brokers/{guid}", Platform(AdminOnly)),
    ("GET", "/v3/service_offerings", Caller),
    ("GET", "/v3/service_offerings/{guid}", Caller),
    ("GET", "/v3/service_plans", Caller),
    ("GET", "/v3/service_plans/{guid}", Caller),
    ("GET", "/v3/service_plans/{guid}/visibility", Caller),
    (
        "POST",
        "/v3/service_plans/{guid}/visibility",
        Platform(AdminOnly),
    ),
    (
        "PATCH",
        "/v3/service_plans/{guid}/visibility",
        Platform(AdminOnly),
    ),
    (
        "DELETE",
        "/v3/service_plans/{guid}/visibility/{org}",
        Platform(AdminOnly),
    ),
    ("GET", "/v3/service_instances", Caller),
    ("POST", "/v3/service_instances", Caller),
    (
        "GET",
        "/v3/service_instances/{guid}",
        On(T::ServiceInstance, ReadSpace),
    ),
    (
        "PATCH",
        "/v3/service_instances/{guid}",
        On(T::ServiceInstance, WriteSpace),
    ),
    (
        "DELETE",
        "/v3/service_instances/{guid}",
        On(T::ServiceInstance, WriteSpace),
    ),
    (
        "GET",
        "/v3/service_instances/{guid}/credentials",
        On(T::ServiceInstance, ReadSystemEnv),
    ),
    (
        "GET",
        "/v3/service_instances/{guid}/parameters",
        On(T::ServiceInstance, ReadSpace),
    ),
    ("GET", "/v3/service_instances/{guid}/permissions", Caller),
    ("GET", "/v3/service_credential_bindings", Caller),
    ("POST", "/v3/service_credential_bindings", Caller),
    (
        "GET",
        "/v3/service_credential_bindings/{guid}",
        On(T::ServiceBinding, ReadSpace),
    ),
    (
        "DELETE",
        "/v3/service_credential_bindings/{guid}",
        On(T::ServiceBinding, ManageApp),
    ),
    (
        "GET",
        "/v3/service_credential_bindings/{guid}/details",
        On(T::ServiceBinding, ReadSystemEnv),
    ),
    (
        "GET",
        "/v3/service_credential_bindings/{guid}/parameters",
        On(T::ServiceBinding, ReadSpace),
    ),
    // Audit events and jobs.
    ("GET", "/v3/audit_events", Caller),
    (
        "GET",
        "/v3/audit_events/{guid}",
        On(T::AuditEvent, ReadSpace),
    ),
    ("GET", "/v3/jobs/{guid}", Caller),
];

/// The rule of a route; `None` when the route is not in the table.
pub fn rule(method: &str, path: &str) -> Option<Rule> {
    let method = if method == "HEAD" { "GET" } else { method };
    POLICY
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_once() {
        for (i, (m, p, _)) in POLICY.iter().enumerate() {
            assert!(
                POLICY[i + 1..].iter().all(|(m2, p2, _)| (m2, p2) != (m, p)),
                "{m} {p} twice"
            );
        }
        assert_eq!(rule("HEAD", "/v3/apps"), Some(Rule::Caller));
        assert_eq!(rule("PUT", "/v3/apps"), None);
    }
}
