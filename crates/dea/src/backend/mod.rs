//! Container backends behind one object-safe trait (ARCHITECTURE §5). Only
//! `process` exists today; a `namespaces` backend plugs in behind the same
//! trait (its `create` sets up the namespaces/cgroups, `spawn` enters them).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;

use crate::error::{DeaError, Result};

#[cfg(test)]
pub mod fake;
pub mod process;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;

/// What to create.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub id: String,
    /// Host directory holding the container's files (instance or staging dir).
    pub root: PathBuf,
    pub memory_mb: u64,
    pub disk_mb: u64,
}

/// A created container.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub root: PathBuf,
    pub created: Instant,
}

/// A process to run inside a container: `bash -c <script>`.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub script: String,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Shell-style status: the code, or 128 + signal.
    pub fn status(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    pub fn description(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "exited".to_string(),
        }
    }
}

/// A running process: its output streams and a future for its end.
pub struct Spawned {
    pub pid: Option<u32>,
    pub stdout: Option<BoxRead>,
    pub stderr: Option<BoxRead>,
    pub wait: BoxFut<'static, Result<ExitInfo>>,
}

pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>>;
    fn spawn<'a>(
        &'a self,
        container: &'a Container,
        process: ProcessSpec,
    ) -> BoxFut<'a, Result<Spawned>>;
    /// Stops every process of the container: SIGTERM, then SIGKILL after
    /// `grace`. Returns once they are gone (or SIGKILLed).
    fn stop<'a>(&'a self, container: &'a Container, grace: Duration) -> BoxFut<'a, Result<()>>;
    /// Kills whatever is left and removes the container's files.
    fn destroy<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<()>>;
    fn stats<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>>;
    /// Kills every process of every container (DEA shutdown).
    fn kill_all(&self);
}

/// The backend named in the config.
pub fn by_name(name: &str) -> Result<Arc<dyn Backend>> {
    match name {
        "process" => Ok(Arc::new(process::ProcessBackend::default())),
        other => Err(DeaError::UnknownBackend(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        let e = ExitInfo {
            code: Some(1),
            signal: None,
        };
        assert_eq!(
            (e.status(), e.description().as_str()),
            (1, "exited with status 1")
        );
        let e = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(
            (e.status(), e.description().as_str()),
            (137, "killed by signal 9")
        );
        assert!(by_name("nope").is_err());
    }
}
