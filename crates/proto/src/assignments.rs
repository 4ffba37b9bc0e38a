//! Which app may register which route: the controller's answer at
//! `GET /internal/v1/route_assignments` (docs/architecture.md §7.1, §12),
//! which the router checks every `router.register` against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAssignments {
    /// Route (`host.domain[/path]`, lowercase) → the guids of the apps
    /// mapped to it.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Routes the platform's own components register without an app id
    /// (the API's `api.<system domain>`).
    #[serde(default)]
    pub reserved: Vec<String>,
}

impl RouteAssignments {
    /// Whether a registration of `uri` by `app_id` (none for a platform
    /// component) is one the controller assigned.
    pub fn allows(&self, uri: &str, app_id: Option<&str>) -> bool {
        let uri = uri.trim_end_matches('/').to_ascii_lowercase();
        match app_id {
            None => self.reserved.contains(&uri),
            Some(app) => self
                .routes
                .get(&uri)
                .is_some_and(|apps| apps.iter().any(|a| a == app)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assigned_pairs() {
        let a = RouteAssignments {
            routes: BTreeMap::from([
                ("x.localhost".to_string(), vec!["app-x".to_string()]),
                ("x.localhost/api".to_string(), vec!["app-y".to_string()]),
                ("api.sys.localhost".to_string(), vec![]),
            ]),
            reserved: vec!["api.sys.localhost".into()],
        };
        let rows = [
            ("x.localhost", Some("app-x"), true),
            ("X.Localhost/", Some("app-x"), true),
            ("x.localhost", Some("app-y"), false),
            ("x.localhost/api", Some("app-y"), true),
            ("x.localhost", None, false),
            ("api.sys.localhost", None, true),
            ("api.sys.localhost", Some("app-x"), false),
            ("new.localhost", Some("app-x"), false),
        ];
        for (uri, app, ok) in rows {
            assert_eq!(a.allows(uri, app), ok, "{uri} {app:?}");
        }
    }
}
