//! The droplet format (docs/architecture.md §11): `droplet.tgz` holds `app/`
//! (and the buildpacks' `deps/` and `profile.d/`) and `staging_info.yml` with
//! `detected_buildpack` and `start_command`.

use serde::{Deserialize, Serialize};

/// Directory inside the droplet holding the staged app.
pub const APP_DIR: &str = "app";
/// File at the droplet's root describing the staging result.
pub const STAGING_INFO_FILE: &str = "staging_info.yml";

/// Contents of `staging_info.yml`. YAML is a superset of JSON, so the file is
/// written as a one-line JSON object and any YAML reader can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingInfo {
    pub detected_buildpack: String,
    pub start_command: String,
}

impl StagingInfo {
    pub fn to_yaml(&self) -> String {
        // serde_json never fails on this struct.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    pub fn from_json_or_simple_yaml(text: &str) -> Option<StagingInfo> {
        if let Ok(v) = serde_json::from_str(text) {
            return Some(v);
        }
        // Minimal `key: value` YAML, as written by other tools.
        let mut bp = None;
        let mut cmd = None;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim().trim_matches('"').to_string();
                match k.trim() {
                    "detected_buildpack" => bp = Some(v),
                    "start_command" => cmd = Some(v),
                    _ => {}
                }
            }
        }
        Some(StagingInfo {
            detected_buildpack: bp?,
            start_command: cmd?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_info_round_trips_both_forms() {
        let i = StagingInfo {
            detected_buildpack: "python".into(),
            start_command: "python3 app.py".into(),
        };
        assert_eq!(
            StagingInfo::from_json_or_simple_yaml(&i.to_yaml()),
            Some(i.clone())
        );
        let y = "detected_buildpack: python\nstart_command: python3 app.py\n";
        assert_eq!(StagingInfo::from_json_or_simple_yaml(y), Some(i));
        assert_eq!(StagingInfo::from_json_or_simple_yaml("nothing"), None);
    }
}
