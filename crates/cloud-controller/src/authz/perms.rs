//! The caller: global roles from the token's scopes and every role it
//! holds, loaded once per request; answers "may it do this here?".

use super::matrix::{decide, permits, Action, Decision, Who};
use crate::error::ApiError;
use crate::store::{Role, SpaceScope};

/// Where an action is aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Platform,
    Org(&'a str),
    Space { org: &'a str, space: &'a str },
}

#[derive(Debug, Clone)]
pub struct Perms {
    pub user_guid: String,
    pub user_name: String,
    global: Vec<Who>,
    roles: Vec<Role>,
}

impl Perms {
    pub fn new(user_guid: &str, user_name: &str, scopes: &[String], roles: Vec<Role>) -> Perms {
        Perms {
            user_guid: user_guid.to_string(),
            user_name: user_name.to_string(),
            global: scopes.iter().filter_map(|s| Who::from_scope(s)).collect(),
            roles,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.global.contains(&Who::Admin)
    }

    /// Admin, admin_read_only or global_auditor: reads every org and space.
    pub fn reads_everything(&self) -> bool {
        !self.global.is_empty()
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// What the caller holds at `scope`.
    pub fn holds(&self, scope: Scope<'_>) -> Vec<Who> {
        let mut out = self.global.clone();
        let (org, space) = match scope {
            Scope::Platform => {
                out.extend(
                    self.roles
                        .iter()
                        .filter_map(|r| Who::from_role_type(&r.kind)),
                );
                return out;
            }
            Scope::Org(o) => (o, None),
            Scope::Space { org, space } => (org, Some(space)),
        };
        for r in &self.roles {
            let here = r.organization_guid == org
                && (r.space_guid.is_empty() || Some(r.space_guid.as_str()) == space);
            if here {
                if let Some(w) = Who::from_role_type(&r.kind) {
                    out.push(w);
                }
            }
        }
        out
    }

    pub fn decide(&self, action: Action, scope: Scope<'_>) -> Decision {
        decide(action, &self.holds(scope))
    }

    pub fn may(&self, action: Action, scope: Scope<'_>) -> bool {
        permits(action, &self.holds(scope))
    }

    /// `Ok` when allowed; 404 `what not found` when the target is not
    /// visible; 403 when visible but not allowed.
    pub fn check(&self, action: Action, scope: Scope<'_>, what: &str) -> Result<(), ApiError> {
        match self.decide(action, scope) {
            Decision::Allow => Ok(()),
            Decision::Forbidden => Err(ApiError::not_authorized()),
            Decision::NotFound => Err(ApiError::not_found(what)),
        }
    }

    pub fn space_scope(&self) -> SpaceScope {
        if self.reads_everything() {
            SpaceScope::All
        } else {
            SpaceScope::ReadableBy(self.user_guid.clone())
        }
    }

    /// Orgs the caller holds a role in (`None`: every org).
    pub fn org_guids(&self) -> Option<Vec<String>> {
        if self.reads_everything() {
            return None;
        }
        let mut v: Vec<String> = self
            .roles
            .iter()
            .map(|r| r.organization_guid.clone())
            .collect();
        v.sort();
        v.dedup();
        Some(v)
    }
}
