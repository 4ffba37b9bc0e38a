//! Errors of the DEA library.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeaError {
    #[error(transparent)]
    Bus(#[from] proto::BusError),
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("http: {0}")]
    Http(String),
    #[error("archive: {0}")]
    Archive(String),
    #[error("droplet checksum mismatch: expected {expected}, got {actual}")]
    Checksum { expected: String, actual: String },
    #[error("backend: {0}")]
    Backend(String),
    #[error("unknown backend {0}")]
    UnknownBackend(String),
    /// The `process` backend without `allow_unisolated_process_backend`.
    #[error("the process backend runs apps and builds as plain host processes, without any isolation; {reason}. Set allow_unisolated_process_backend = true in the DEA config to run it anyway (tests, cf dev), or run the DEA as root on Linux >= 5.12 with cgroups, ip and iptables for the namespaces backend")]
    UnisolatedBackend { reason: String },
    /// A config the DEA will not run with.
    #[error("config: {0}")]
    Config(String),
    #[error("{0}")]
    Staging(String),
    /// A staging failure with its CF error id.
    #[error("{0}")]
    Failed(proto::StagingFailure),
}

impl DeaError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DeaError::Io {
            path: path.into(),
            source,
        }
    }

    /// The error as a staging failure (`StagingError` unless it says).
    pub fn into_failure(self) -> proto::StagingFailure {
        match self {
            DeaError::Failed(f) => f,
            other => {
                proto::StagingFailure::new(proto::StagingErrorId::StagingError, other.to_string())
            }
        }
    }
}

pub type Result<T, E = DeaError> = std::result::Result<T, E>;
