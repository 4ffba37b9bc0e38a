//! CF's permission matrix as one table: which holders may take which
//! action. Pure: no I/O, no requests; the tests iterate the table.

/// Something a user holds: a global role (from the token's scopes) or a
/// role in the org or space at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    Admin,
    AdminReadOnly,
    GlobalAuditor,
    OrgManager,
    OrgUser,
    OrgAuditor,
    OrgBillingManager,
    SpaceManager,
    SpaceDeveloper,
    SpaceAuditor,
    SpaceSupporter,
}

impl Who {
    /// The holder for a role type (`organization_manager`, ...).
    pub fn from_role_type(t: &str) -> Option<Who> {
        Some(match t {
            "organization_user" => Who::OrgUser,
            "organization_auditor" => Who::OrgAuditor,
            "organization_manager" => Who::OrgManager,
            "organization_billing_manager" => Who::OrgBillingManager,
            "space_auditor" => Who::SpaceAuditor,
            "space_developer" => Who::SpaceDeveloper,
            "space_manager" => Who::SpaceManager,
            "space_supporter" => Who::SpaceSupporter,
            _ => return None,
        })
    }

    /// The global holder for a token scope.
    pub fn from_scope(scope: &str) -> Option<Who> {
        Some(match scope {
            "cloud_controller.admin" => Who::Admin,
            "cloud_controller.admin_read_only" => Who::AdminReadOnly,
            "cloud_controller.global_auditor" => Who::GlobalAuditor,
            _ => return None,
        })
    }
}

/// The eight role types, as the API spells them.
pub const ROLE_TYPES: [&str; 8] = [
    "organization_user",
    "organization_auditor",
    "organization_manager",
    "organization_billing_manager",
    "space_auditor",
    "space_developer",
    "space_manager",
    "space_supporter",
];

/// What is being done; each action is about the whole platform, an org or
/// a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Anything any signed-in user may read (buildpacks, shared domains,
    /// feature flags, org quotas).
    ReadGlobal,
    /// Buildpacks, feature flags, users, org quotas, shared domains,
    /// security groups: admin only.
    AdminOnly,
    /// See an org (its name, domains, quota, roles).
    ReadOrg,
    UpdateOrg,
    DeleteOrg,
    CreateSpace,
    ManageOrgRoles,
    /// Private domains and space quotas of an org.
    ManageOrgDomainsAndQuotas,
    /// Read a space and its content: apps, processes, routes, droplets,
    /// packages, builds, stats, logs, events.
    ReadSpace,
    UpdateSpace,
    DeleteSpace,
    ManageSpaceRoles,
    /// Create, update, delete apps; upload packages; stage; set droplets.
    WriteSpace,
    /// Start, stop, restart, scale, set env, create and map routes.
    ManageApp,
    /// Read env (`/env`, `/environment_variables`).
    ReadEnv,
    /// The system env part of `/env` (service credentials and the like).
    ReadSystemEnv,
}

use Action::*;
use Who::*;

const EVERYONE: &[Who] = &[
    Admin,
    AdminReadOnly,
    GlobalAuditor,
    OrgManager,
    OrgUser,
    OrgAuditor,
    OrgBillingManager,
    SpaceManager,
    SpaceDeveloper,
    SpaceAuditor,
    SpaceSupporter,
];

/// The matrix (CF's `permissions.rb` and the v3 docs' "Permitted roles").
pub const MATRIX: &[(Action, &[Who])] = &[
    (ReadGlobal, EVERYONE),
    (AdminOnly, &[Admin]),
    (
        ReadOrg,
        &[
            Admin,
            AdminReadOnly,
            GlobalAuditor,
            OrgManager,
            OrgUser,
            OrgAuditor,
            OrgBillingManager,
        ],
    ),
    (UpdateOrg, &[Admin, OrgManager]),
    (DeleteOrg, &[Admin]),
    (CreateSpace, &[Admin, OrgManager]),
    (ManageOrgRoles, &[Admin, OrgManager]),
    (ManageOrgDomainsAndQuotas, &[Admin, OrgManager]),
    (
        ReadSpace,
        &[
            Admin,
            AdminReadOnly,
            GlobalAuditor,
            OrgManager,
            SpaceManager,
            SpaceDeveloper,
            SpaceAuditor,
            SpaceSupporter,
        ],
    ),
    (UpdateSpace, &[Admin, OrgManager, SpaceManager]),
    (DeleteSpace, &[Admin, OrgManager]),
    (ManageSpaceRoles, &[Admin, OrgManager, SpaceManager]),
    (WriteSpace, &[Admin, SpaceDeveloper]),
    (ManageApp, &[Admin, SpaceDeveloper, SpaceSupporter]),
    (
        ReadEnv,
        &[Admin, AdminReadOnly, SpaceDeveloper, SpaceSupporter],
    ),
    (ReadSystemEnv, &[Admin, AdminReadOnly, SpaceDeveloper]),
];

/// Where an action applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Platform,
    Org,
    Space,
}

impl Action {
    pub fn level(self) -> Level {
        match self {
            ReadGlobal | AdminOnly => Level::Platform,
            ReadOrg
            | UpdateOrg
            | DeleteOrg
            | CreateSpace
            | ManageOrgRoles
            | ManageOrgDomainsAndQuotas => Level::Org,
            ReadSpace | UpdateSpace | DeleteSpace | ManageSpaceRoles | WriteSpace | ManageApp
            | ReadEnv | ReadSystemEnv => Level::Space,
        }
    }

    /// The action that decides whether the target is visible at all.
    pub fn visibility(self) -> Action {
        match self.level() {
            Level::Platform => ReadGlobal,
            Level::Org => ReadOrg,
            Level::Space => ReadSpace,
        }
    }

    pub fn holders(self) -> &'static [Who] {
        MATRIX
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, w)| *w)
            .unwrap_or(&[])
    }
}

/// Whether any of `holds` may take `action`.
pub fn permits(action: Action, holds: &[Who]) -> bool {
    let allowed = action.holders();
    holds.iter().any(|h| allowed.contains(h))
}

/// The answer for one caller and one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Visible but not allowed: 403.
    Forbidden,
    /// Not even visible: 404, so names do not leak.
    NotFound,
}

/// Platform-wide actions are visible to every signed-in user (even one
/// holding no role yet), and `ReadGlobal` is theirs.
pub fn decide(action: Action, holds: &[Who]) -> Decision {
    if action == ReadGlobal {
        return Decision::Allow;
    }
    if action.level() != Level::Platform && !permits(action.visibility(), holds) {
        Decision::NotFound
    } else if !permits(action, holds) {
        Decision::Forbidden
    } else {
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_in_the_matrix_once() {
        let all = [
            ReadGlobal,
            AdminOnly,
            ReadOrg,
            UpdateOrg,
            DeleteOrg,
            CreateSpace,
            ManageOrgRoles,
            ManageOrgDomainsAndQuotas,
            ReadSpace,
            UpdateSpace,
            DeleteSpace,
            ManageSpaceRoles,
            WriteSpace,
            ManageApp,
            ReadEnv,
            ReadSystemEnv,
        ];
        for a in all {
            assert_eq!(MATRIX.iter().filter(|(x, _)| *x == a).count(), 1, "{a:?}");
            // Whoever may act may see.
            for w in a.holders() {
                assert!(permits(a.visibility(), &[*w]), "{a:?} {w:?}");
            }
        }
        assert_eq!(MATRIX.len(), all.len());
    }

    #[test]
    fn cf_rules() {
        // (action, holder, decision) rows from CF's docs.
        let rows = [
            (ReadSpace, OrgUser, Decision::NotFound),
            (ReadSpace, OrgAuditor, Decision::NotFound),
            (ReadSpace, OrgBillingManager, Decision::NotFound),
            (ReadSpace, OrgManager, Decision::Allow),
            (ReadSpace, SpaceAuditor, Decision::Allow),
            (WriteSpace, SpaceSupporter, Decision::Forbidden),
            (WriteSpace, SpaceDeveloper, Decision::Allow),
            (ManageApp, SpaceSupporter, Decision::Allow),
            (ManageApp, SpaceAuditor, Decision::Forbidden),
            (ManageApp, AdminReadOnly, Decision::Forbidden),
            (ReadEnv, SpaceAuditor, Decision::Forbidden),
            (ReadEnv, GlobalAuditor, Decision::Forbidden),
            (ReadEnv, AdminReadOnly, Decision::Allow),
            (ReadSystemEnv, SpaceSupporter, Decision::Forbidden),
            (CreateSpace, OrgUser, Decision::Forbidden),
            (CreateSpace, SpaceDeveloper, Decision::NotFound),
            (ManageSpaceRoles, SpaceManager, Decision::Allow),
            (ManageOrgRoles, SpaceManager, Decision::NotFound),
            (AdminOnly, OrgManager, Decision::Forbidden),
            (AdminOnly, Admin, Decision::Allow),
        ];
        for (a, w, d) in rows {
            assert_eq!(decide(a, &[w]), d, "{a:?} {w:?}");
        }
        assert_eq!(decide(ReadSpace, &[]), Decision::NotFound);
        // A user with no role at all is still a signed-in user.
        assert_eq!(decide(ReadGlobal, &[]), Decision::Allow);
        assert_eq!(decide(AdminOnly, &[]), Decision::Forbidden);
        assert_eq!(Who::from_role_type("space_supporter"), Some(SpaceSupporter));
        assert!(ROLE_TYPES.iter().all(|t| Who::from_role_type(t).is_some()));
    }
}
