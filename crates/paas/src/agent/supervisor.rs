//! The agent's executor: installs releases, starts component processes,
//! restarts them with backoff, checks their health and drains them before
//! they stop. What to do is [`super::plan::plan`]'s decision.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Component as PathPart, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::plan::{backoff, plan, Action, Running};
use super::release;
use super::spec::{AgentStatus, ComponentSpec, ComponentStatus, Desired, Health, State};
use crate::deploy::manifest::Role;

/// Health checks give up after this.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// A component log larger than this is cut when it starts.
const MAX_LOG_BYTES: u64 = 16 << 20;
/// Events kept for the status.
const MAX_EVENTS: usize = 20;
/// Drain hook output kept per event.
const MAX_HOOK_OUTPUT: usize = 2048;
/// A component whose health is only "alive" counts as running after this
/// long up (one that crashes on start is never reported healthy).
pub const MIN_UPTIME: Duration = Duration::from_secs(3);

struct Proc {
    spec: ComponentSpec,
    child: Option<tokio::process::Child>,
    state: State,
    restarts: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    started_at: Instant,
}

pub struct Supervisor {
    host: String,
    state_dir: PathBuf,
    procs: BTreeMap<Role, Proc>,
    events: VecDeque<String>,
    http: reqwest::Client,
}

impl Supervisor {
    pub fn new(host: &str, state_dir: &Path) -> Supervisor {
        Supervisor {
            host: host.to_string(),
            state_dir: state_dir.to_path_buf(),
            procs: BTreeMap::new(),
            events: VecDeque::new(),
            http: reqwest::Client::builder()
                .timeout(CHECK_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// One reconcile pass: notice exits, act on the plan, check health.
    pub async fn pass(&mut self, desired: &Desired) {
        self.reap();
        let running: Vec<Running> = self
            .procs
            .values()
            .map(|p| Running {
                spec: p.spec.clone(),
                alive: p.child.is_some(),
                retry_at: p.retry_at,
            })
            .collect();
        for action in plan(desired, &running, Instant::now()) {
            match action {
                Action::Stop(role) => {
                    if let Some(p) = self.procs.remove(&role) {
                        self.drain(p).await;
                    }
                }
                Action::Start(role) => {
                    if let Some(spec) = desired.components.iter().find(|c| c.role == role) {
                        self.start(spec.clone()).await;
                    }
                }
            }
        }
        self.check_health().await;
    }

    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            host: self.host.clone(),
            releases: release::installed(&self.state_dir),
            components: self
                .procs
                .values()
                .map(|p| ComponentStatus {
                    role: p.spec.role,
                    version: p.spec.version.clone(),
                    state: p.state,
                    pid: p.child.as_ref().and_then(|c| c.id()),
                    restarts: p.restarts,
                    last_error: p.last_error.clone(),
                })
                .collect(),
            events: self.events.iter().cloned().collect(),
        }
    }

    /// Drains and stops every component (the agent is stopping).
    pub async fn stop_all(&mut self) {
        let roles: Vec<Role> = self.procs.keys().rev().copied().collect();
        for role in roles {
            if let Some(p) = self.procs.remove(&role) {
                self.drain(p).await;
            }
        }
    }

    fn event(&mut self, text: String) {
        tracing::info!(host = %self.host, "{text}");
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(text);
    }

    fn reap(&mut self) {
        let mut exits = Vec::new();
        for p in self.procs.values_mut() {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            let exited = match child.try_wait() {
                Ok(Some(status)) => Some(format!("exited ({status})")),
                Ok(None) => None,
                Err(e) => Some(format!("cannot be waited for: {e}")),
            };
            if let Some(why) = exited {
                p.child = None;
                p.state = State::Crashed;
                p.retry_at = Some(Instant::now() + backoff(p.restarts));
                exits.push(format!("{} {} {why}", p.spec.role, p.spec.version));
                p.last_error = Some(why);
            }
        }
        for e in exits {
            self.event(e);
        }
    }

    async fn start(&mut self, spec: ComponentSpec) {
        // Starting the same spec again (after a crash) counts a restart.
        let restarts = match self.procs.remove(&spec.role) {
            Some(old) if old.spec == spec => old.restarts.saturating_add(1),
            _ => 0,
        };
        let (child, state, error) = match self.spawn(&spec).await {
            Ok(child) => (Some(child), State::Starting, None),
            Err(e) => {
                self.event(format!("{} {} cannot start: {e}", spec.role, spec.version));
                (None, State::Failed, Some(e))
            }
        };
        let retry_at = child.is_none().then(|| Instant::now() + backoff(restarts));
        self.procs.insert(
            spec.role,
            Proc {
                spec,
                child,
                state,
                restarts,
                retry_at,
                last_error: error,
                started_at: Instant::now(),
            },
        );
    }

    async fn spawn(&self, spec: &ComponentSpec) -> Result<tokio::process::Child, String> {
        let (state, version, from) = (
            self.state_dir.clone(),
            spec.version.clone(),
            PathBuf::from(&spec.release_dir),
        );
        let root = tokio::task::spawn_blocking(move || release::install(&state, &version, &from))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let dir = self.state_dir.join("components").join(spec.role.as_str());
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let config = dir.join("config");
        if let Some(text) = &spec.config {
            let text = text.replace("{dir}", &dir.display().to_string());
            write_private(&config, &text)
                .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        }
        let program = in_release(&root, spec.argv.first().map(String::as_str).unwrap_or(""))?;
        let fill = |a: &String| {
            a.replace("{config}", &config.display().to_string())
                .replace("{dir}", &dir.display().to_string())
        };
        let log_path = dir.join(format!("{}.log", spec.role));
        if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
            let _ = std::fs::remove_file(&log_path);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(spec.argv.iter().skip(1).map(fill))
            .current_dir(&dir)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0);
        // SAFETY: prctl(2) is async-signal-safe; it only sets this child's
        // parent-death signal (components stop with their agent).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))
    }

    /// The drain hook, the component's signal, then SIGKILL after the
    /// timeout; whatever is left of its process group is killed.
    async fn drain(&mut self, mut p: Proc) {
        let Some(mut child) = p.child.take() else {
            return;
        };
        let what = format!("{} {}", p.spec.role, p.spec.version);
        let timeout = Duration::from_secs(p.spec.drain.timeout_s.max(1));
        if let Some(hook) = p.spec.drain.hook.clone() {
            let root = release::releases_dir(&self.state_dir).join(&p.spec.version);
            let outcome = match in_release(&root, hook.first().map(String::as_str).unwrap_or("")) {
                Ok(program) => run_hook(&program, &hook[1..], timeout).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(out) => self.event(format!("{what} drain hook done: {out}")),
                Err(e) => self.event(format!("{what} drain hook failed: {e}")),
            }
        }
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        let sig = signal_number(&p.spec.drain.signal);
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, sig);
        }
        let exited = tokio::time::timeout(timeout, child.wait()).await;
        // SAFETY: kill(2) on the child's own process group (it is its
        // leader: `process_group(0)`).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        match exited {
            Ok(Ok(status)) => self.event(format!("{what} stopped ({status})")),
            _ => {
                let _ = child.wait().await;
                self.event(format!(
                    "{what} killed: no exit within {}s",
                    timeout.as_secs()
                ));
            }
        }
    }

    async fn check_health(&mut self) {
        let http = self.http.clone();
        for p in self.procs.values_mut() {
            if p.child.is_none() {
                continue;
            }
            let ok = match &p.spec.health {
                Health::Alive => p.started_at.elapsed() >= MIN_UPTIME,
                Health::Http { url } => http
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                Health::Tcp { addr } => {
                    tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr))
                        .await
                        .is_ok_and(|r| r.is_ok())
                }
            };
            p.state = match (p.state, ok) {
                (_, true) => State::Running,
                (State::Running, false) => State::Unhealthy,
                (s, false) => s,
            };
        }
    }
}

/// A path inside the release (relative, no `..`).
fn in_release(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, PathPart::Normal(_))) {
        return Err(format!("{rel:?} is not a path inside the release"));
    }
    Ok(root.join(p))
}

pub fn signal_number(name: &str) -> i32 {
    match name {
        "INT" => libc::SIGINT,
        "USR2" => libc::SIGUSR2,
        "QUIT" => libc::SIGQUIT,
        _ => libc::SIGTERM,
    }
}

async fn run_hook(program: &Path, args: &[String], timeout: Duration) -> Result<String, String> {
    let out = tokio::time::timeout(
        timeout,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("no exit within {}s", timeout.as_secs()))?
    .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let text: String = text.trim().chars().take(MAX_HOOK_OUTPUT).collect();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{} ({text})", out.status))
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
