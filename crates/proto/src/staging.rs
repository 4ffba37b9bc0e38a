//! Staging as long-running work (docs/architecture.md "Staging"):
//!
//! 1. `staging.<dea_id>.start` (request): the controller hands a build to
//!    one DEA, which answers [`StagingAccepted`] at once and stages in the
//!    background;
//! 2. `staging.active` (publish, every 2 s while a DEA stages): the DEA's
//!    builds in flight, so a controller notices a lost DEA within seconds;
//! 3. `logs.<app_id>` (source STG): the build's output as it comes;
//! 4. `staging.finished` (request, queue group `cc`): the result, sent
//!    again until a controller answers [`StagingRecorded`] (a controller
//!    restarted meanwhile loses nothing);
//! 5. `staging.<dea_id>.stop` (publish): the controller gave up on a build
//!    (its timeout); the DEA stops it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::egress::EgressRule;

/// Cloud Foundry's staging timeout (15 minutes), the platform default.
pub const DEFAULT_STAGING_TIMEOUT_S: u64 = 900;

fn default_timeout() -> u64 {
    DEFAULT_STAGING_TIMEOUT_S
}

/// `staging.<dea_id>.start` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingRequest {
    /// The build's guid.
    pub staging_id: String,
    pub app_id: String,
    pub stack: String,
    /// Buildpacks named by the user, in order (`cf push -b a -b b`): every
    /// one but the last supplies, the last finalizes; none = detect.
    #[serde(default)]
    pub buildpacks: Vec<String>,
    /// User environment as `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// Signed URL to GET the package zip.
    pub package_uri: String,
    /// Signed URL to PUT the droplet tarball.
    pub droplet_upload_uri: String,
    /// Signed URL to GET the build cache (404 when there is none yet).
    #[serde(default)]
    pub cache_download_uri: Option<String>,
    /// Signed URL to PUT the build cache.
    #[serde(default)]
    pub cache_upload_uri: Option<String>,
    /// Start command given by the user (`-c`, manifest); wins over Procfile
    /// and buildpack defaults.
    #[serde(default)]
    pub start_command: Option<String>,
    /// Enabled admin buildpacks with bits, in position order; tried before
    /// the built-in ones, and selectable by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_buildpacks: Vec<AdminBuildpack>,
    /// The platform's staging timeout; the DEA stops the build when it is
    /// reached and reports `StagingTimeExpired`.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// The staging security groups' rules for the app's space; absent: the
    /// DEA's defaults (public networks and the host's DNS resolvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// The app's `VCAP_SERVICES` (as `StartRequest::vcap_services`):
    /// buildpacks see it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcap_services: Option<serde_json::Value>,
}

/// An admin buildpack offered to a stager: a zip at a signed URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminBuildpack {
    pub name: String,
    /// Signed URL to GET the buildpack zip.
    pub uri: String,
    /// sha256 of the zip (the DEA caches by it and checks it).
    pub sha256: String,
}

/// Reply to `staging.<dea_id>.start`: the DEA took the build (or, with
/// `error`, refused it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingAccepted {
    pub staging_id: String,
    pub dea_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StagingFailure>,
}

/// `staging.active`: the builds a DEA is working on (published every 2 s
/// while there is any, and while their results are not yet recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingActive {
    pub dea_id: String,
    pub staging_ids: Vec<String>,
}

/// A buildpack that took part in a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildpackUsed {
    pub name: String,
    /// What its `bin/detect` printed (none when detection was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_output: Option<String>,
}

/// `staging.finished`: how a build ended. Sent as a request until a
/// controller answers [`StagingRecorded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingResult {
    pub staging_id: String,
    pub dea_id: String,
    /// The buildpacks that ran, the final one last.
    #[serde(default)]
    pub buildpacks: Vec<BuildpackUsed>,
    #[serde(default)]
    pub start_command: Option<String>,
    #[serde(default)]
    pub droplet_sha256: Option<String>,
    /// `config_vars` of the final buildpack's `bin/release`: the app's
    /// default environment (the user's own variables win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StagingFailure>,
}

impl StagingResult {
    /// A failed build.
    pub fn failed(staging_id: &str, dea_id: &str, error: StagingFailure) -> StagingResult {
        StagingResult {
            staging_id: staging_id.to_string(),
            dea_id: dea_id.to_string(),
            buildpacks: Vec::new(),
            start_command: None,
            droplet_sha256: None,
            config_vars: BTreeMap::new(),
            error: Some(error),
        }
    }

    /// The final buildpack's name.
    pub fn detected_buildpack(&self) -> Option<&str> {
        self.buildpacks.last().map(|b| b.name.as_str())
    }
}

/// The answer to `staging.finished`: the result is stored (or the build was
/// already over); the DEA stops sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecorded {
    pub staging_id: String,
}

/// `staging.<dea_id>.stop`: give up on a build; the DEA stops it and
/// reports `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingStop {
    pub staging_id: String,
    pub reason: StagingFailure,
}

/// Why a build failed: Cloud Foundry's staging error ids (the build's
/// `error` reads `<id> - <message>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StagingErrorId {
    NoAppDetectedError,
    BuildpackCompileFailed,
    BuildpackReleaseFailed,
    StagingTimeExpired,
    InsufficientResources,
    /// Anything else (also what an unknown id from a newer peer reads as).
    #[serde(other)]
    StagingError,
}

impl StagingErrorId {
    pub fn as_str(self) -> &'static str {
        match self {
            StagingErrorId::StagingError => "StagingError",
            StagingErrorId::NoAppDetectedError => "NoAppDetectedError",
            StagingErrorId::BuildpackCompileFailed => "BuildpackCompileFailed",
            StagingErrorId::BuildpackReleaseFailed => "BuildpackReleaseFailed",
            StagingErrorId::StagingTimeExpired => "StagingTimeExpired",
            StagingErrorId::InsufficientResources => "InsufficientResources",
        }
    }

    /// Cloud Foundry's error code for the id (`CF-<id>`).
    pub fn code(self) -> u32 {
        match self {
            StagingErrorId::StagingError => 170001,
            StagingErrorId::NoAppDetectedError => 170003,
            StagingErrorId::BuildpackCompileFailed => 170004,
            StagingErrorId::BuildpackReleaseFailed => 170005,
            StagingErrorId::StagingTimeExpired => 170007,
            StagingErrorId::InsufficientResources => 170008,
        }
    }

    pub fn from_name(name: &str) -> Option<StagingErrorId> {
        [
            StagingErrorId::StagingError,
            StagingErrorId::NoAppDetectedError,
            StagingErrorId::BuildpackCompileFailed,
            StagingErrorId::BuildpackReleaseFailed,
            StagingErrorId::StagingTimeExpired,
            StagingErrorId::InsufficientResources,
        ]
        .into_iter()
        .find(|i| i.as_str() == name)
    }
}

impl std::fmt::Display for StagingErrorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A staging error: its id and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingFailure {
    pub id: StagingErrorId,
    pub message: String,
}

impl StagingFailure {
    pub fn new(id: StagingErrorId, message: impl Into<String>) -> StagingFailure {
        StagingFailure {
            id,
            message: message.into(),
        }
    }

    /// `NoAppDetectedError` with CF's text.
    pub fn no_app_detected() -> StagingFailure {
        StagingFailure::new(
            StagingErrorId::NoAppDetectedError,
            "An app was not successfully detected by any available buildpack",
        )
    }
}

impl std::fmt::Display for StagingFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} - {}", self.id, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_defaults_apply() {
        let v = serde_json::json!({
            "staging_id": "s", "app_id": "a", "stack": "host", "memory_mb": 1,
            "disk_mb": 1, "package_uri": "p", "droplet_upload_uri": "d"
        });
        let r: StagingRequest = serde_json::from_value(v).expect("parse");
        assert!(r.admin_buildpacks.is_empty() && r.buildpacks.is_empty());
        assert_eq!(r.timeout_s, DEFAULT_STAGING_TIMEOUT_S);
        assert!(r.egress.is_none());
        let s = serde_json::to_string(&r).expect("serialize");
        assert!(!s.contains("admin_buildpacks") && !s.contains("egress"));
        let back: StagingRequest = serde_json::from_str(&s).expect("parse");
        assert_eq!(back, r);

        let res = StagingResult {
            staging_id: "s".into(),
            dea_id: "d".into(),
            buildpacks: vec![BuildpackUsed {
                name: "python".into(),
                detect_output: Some("python".into()),
            }],
            start_command: Some("python3 app.py".into()),
            droplet_sha256: Some("ab".into()),
            config_vars: BTreeMap::from([("A".into(), "b".into())]),
            error: None,
        };
        let s = serde_json::to_string(&res).expect("json");
        assert_eq!(
            serde_json::from_str::<StagingResult>(&s).expect("back"),
            res
        );
        assert_eq!(res.detected_buildpack(), Some("python"));
    }

    #[test]
    fn errors_read_as_in_cloud_foundry() {
        let f = StagingFailure::new(
            StagingErrorId::BuildpackCompileFailed,
            "python: bin/compile exited with status 1",
        );
        assert_eq!(
            f.to_string(),
            "BuildpackCompileFailed - python: bin/compile exited with status 1"
        );
        let json = serde_json::to_string(&f).expect("json");
        assert!(json.contains(r#""id":"BuildpackCompileFailed""#), "{json}");
        // An id this version does not know is a plain StagingError.
        let f: StagingFailure =
            serde_json::from_str(r#"{"id":"SomethingNew","message":"m"}"#).expect("parse");
        assert_eq!(f.id, StagingErrorId::StagingError);
        assert_eq!(StagingErrorId::InsufficientResources.code(), 170008);
        assert_eq!(
            StagingErrorId::from_name("StagingTimeExpired"),
            Some(StagingErrorId::StagingTimeExpired)
        );
        assert_eq!(
            StagingFailure::no_app_detected().to_string(),
            "NoAppDetectedError - An app was not successfully detected by any available buildpack"
        );
    }
}
