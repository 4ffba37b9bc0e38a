//! What the hosts run: per host, each component's version and health, as
//! the agents report it (or as the deployer last recorded it). The planner's
//! "actual" input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifest::Role;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub version: String,
    pub healthy: bool,
}

/// One host's components by role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    #[serde(default)]
    pub components: BTreeMap<Role, Component>,
}

/// Every host's state, by host name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actual {
    #[serde(default)]
    pub hosts: BTreeMap<String, HostState>,
}

impl Actual {
    /// Whether no host runs anything (a first deploy).
    pub fn is_empty(&self) -> bool {
        self.hosts.values().all(|h| h.components.is_empty())
    }

    pub fn component(&self, host: &str, role: Role) -> Option<&Component> {
        self.hosts.get(host)?.components.get(&role)
    }

    /// Whether any host runs `role`.
    pub fn runs(&self, role: Role) -> bool {
        self.hosts
            .values()
            .any(|h| h.components.contains_key(&role))
    }

    /// Records `role` on `host` at `version`.
    pub fn set(&mut self, host: &str, role: Role, version: &str, healthy: bool) {
        self.hosts
            .entry(host.to_string())
            .or_default()
            .components
            .insert(
                role,
                Component {
                    version: version.to_string(),
                    healthy,
                },
            );
    }
}
