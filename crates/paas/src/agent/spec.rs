//! What the deployer asks of a host's agent, and what the agent reports:
//! the wire types of the agent's API (docs/operations.md "Host agent").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deploy::manifest::Role;

/// How the agent tells a component is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Health {
    /// `GET url` answers 2xx.
    Http { url: String },
    /// A TCP connection to `addr` is accepted.
    Tcp { addr: String },
    /// The process is alive.
    Alive,
}

/// How a component is stopped: `hook` (if any) runs first, then `signal`
/// is sent, and after `timeout_s` without an exit, SIGKILL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// `TERM`, `INT`, `USR2` (the DEA's evacuate-then-exit) or `QUIT`.
    #[serde(default = "default_signal")]
    pub signal: String,
    #[serde(default)]
    pub hook: Option<Vec<String>>,
    #[serde(default = "default_drain_timeout")]
    pub timeout_s: u64,
}

fn default_signal() -> String {
    "TERM".into()
}

fn default_drain_timeout() -> u64 {
    30
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            signal: default_signal(),
            hook: None,
            timeout_s: default_drain_timeout(),
        }
    }
}

/// One component a host should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub role: Role,
    /// The release it comes from.
    pub version: String,
    /// Where that release is on the host (a directory holding `VERSION`
    /// and `bin/`), installed from there side by side with the others.
    pub release_dir: String,
    /// The command: `argv[0]` relative to the installed release (`bin/router`);
    /// `{config}` in any argument becomes the config file's path and
    /// `{dir}` the component's own directory.
    pub argv: Vec<String>,
    /// The config file's text, if it has one (`{dir}` in it becomes the
    /// component's own directory).
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub health: Health,
    #[serde(default)]
    pub drain: Drain,
}

/// The whole of what a host should run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub components: Vec<ComponentSpec>,
}

/// A component's state as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Started, not yet healthy.
    Starting,
    Running,
    /// Running but failing its health check (after having passed it).
    Unhealthy,
    /// Exited; waits its backoff before the next start.
    Crashed,
    /// Cannot start (its release cannot be installed, its command not run).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub role: Role,
    pub version: String,
    pub state: State,
    pub pid: Option<u32>,
    /// Starts after the first (crashes restarted).
    pub restarts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl ComponentStatus {
    pub fn healthy(&self) -> bool {
        self.state == State::Running
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub host: String,
    /// Installed releases, oldest first.
    pub releases: Vec<String>,
    pub components: Vec<ComponentStatus>,
    /// What the last drain hooks printed or why they failed, newest last
    /// (at most 20).
    #[serde(default)]
    pub events: Vec<String>,
}
