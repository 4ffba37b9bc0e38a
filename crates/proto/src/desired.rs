//! The controller's internal desired-state document, served at
//! `GET /internal/v1/desired` for the health manager.

use serde::{Deserialize, Serialize};

/// One app the controller wants running (state STARTED with a droplet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredApp {
    pub app_id: String,
    pub name: String,
    /// Current version; instances of other versions are stale.
    pub version: String,
    pub instances: u32,
    /// `STARTED` or `STOPPED`; stopped apps are listed so the HM can stop leftovers.
    pub state: String,
    /// RFC 3339 of the last change. The HM compares it only with the value
    /// of its previous copy (a change), never with its own clock.
    pub updated_at: String,
    /// The app whose log the HM's lines about this process go to, when it
    /// is not `app_id` (a process other than web).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_guid: Option<String>,
}

/// One page of desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPage {
    pub apps: Vec<DesiredApp>,
    /// Token for the next page (`?token=`), `None` on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = DesiredPage {
            apps: vec![DesiredApp {
                app_id: "a".into(),
                name: "n".into(),
                version: "v".into(),
                instances: 3,
                state: "STARTED".into(),
                updated_at: "2026-11-22T00:00:00Z".into(),
                log_guid: Some("app".into()),
            }],
            next_token: None,
        };
        let s = serde_json::to_string(&p).expect("ser");
        assert_eq!(serde_json::from_str::<DesiredPage>(&s).expect("de"), p);
    }
}
