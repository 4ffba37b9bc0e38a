//! Container backends behind one object-safe trait (docs/architecture.md
//! §10.1): `process` (plain child processes, for laptops and non-root runs),
//! `namespaces` (real containers, docs/containers.md) and `sim` (simulated
//! instances for tests of other components). `auto` picks
//! `namespaces` when the DEA runs as root on Linux with cgroups, `ip` and
//! `iptables`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;

use crate::error::{DeaError, Result};

pub mod namespaces;
pub mod process;
pub mod sim;

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
    /// Egress allow rules (security groups); `None`: the backend's
    /// defaults (public networks and the host's resolvers).
    pub egress: Option<Vec<proto::EgressRule>>,
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
    /// Kills whatever is left and removes the container's files (a
    /// directory that is a disk volume of its own, namespaces backend:
    /// unmounted and removed in the background, once nothing can reach it).
    fn destroy<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<()>>;
    fn stats<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>>;
    /// Kills every process of every container (DEA shutdown) and removes
    /// what the backend set up on the host.
    fn kill_all(&self);
    /// The port the app listens on inside the container (`PORT`), when it
    /// differs from the host port (the namespaces backend: 8080).
    fn app_port(&self) -> Option<u16> {
        None
    }
    /// Makes `host_port` on the DEA's host reach the container's app port.
    fn expose<'a>(&'a self, _container: &'a Container, _host_port: u16) -> BoxFut<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Replaces the egress rules of a live container (security groups
    /// changed while it runs). Backends without a network of their own
    /// ignore it.
    fn set_egress<'a>(
        &'a self,
        _container: &'a Container,
        _rules: &'a [proto::EgressRule],
    ) -> BoxFut<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Why the container's process died when the backend knows better than
    /// the exit status ("out of memory", "disk quota exceeded").
    fn exit_reason(&self, _container: &Container) -> Option<String> {
        None
    }
}

/// The backend named in the config (`process` only: `namespaces` needs the
/// config, see [`from_config`]).
pub fn by_name(name: &str) -> Result<Arc<dyn Backend>> {
    match name {
        "process" => Ok(Arc::new(process::ProcessBackend::default())),
        "sim" => Ok(Arc::new(sim::SimBackend::default())),
        other => Err(DeaError::UnknownBackend(other.to_string())),
    }
}

/// The binary with the `container-init` entry: the running executable when
/// it is `dea`, else a `dea` next to it or one directory up (a test binary
/// in `target/<profile>/deps` embedding the DEA).
fn find_dea_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == "dea") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [dir.join("dea"), dir.parent()?.join("dea")]
        .into_iter()
        .find(|p| p.is_file())
}

/// The backend chosen by the config: `auto` (default), `namespaces`,
/// `process` or `sim` (simulated instances, for tests: [`sim`]).
pub fn from_config(cfg: &crate::config::Config) -> Result<Arc<dyn Backend>> {
    let init_exe = cfg.container_init_exe.clone().or_else(find_dea_binary);
    let name = match cfg.backend.as_str() {
        "auto" if namespaces::available() && init_exe.is_some() => "namespaces",
        "auto" => "process",
        n => n,
    };
    if name == "process" && !cfg.allow_unisolated_process_backend {
        return Err(DeaError::UnisolatedBackend {
            reason: if cfg.backend == "auto" {
                "backend = \"auto\" chose it because the namespaces backend cannot run here".into()
            } else {
                "the config names it (backend = \"process\")".into()
            },
        });
    }
    if name != "namespaces" {
        return by_name(name);
    }
    let mut egress = Vec::new();
    for e in &cfg.egress_allow {
        egress.push(
            namespaces::net::Egress::parse(e)
                .ok_or_else(|| DeaError::Backend(format!("bad egress_allow entry {e:?}")))?,
        );
    }
    let host_services = match &cfg.host_services_address {
        None => None,
        Some(a) => {
            let ip: std::net::Ipv4Addr = a.parse().map_err(|_| {
                DeaError::Backend(format!("bad host_services_address {a:?} (an IPv4 address)"))
            })?;
            if ip.is_loopback() || ip.is_unspecified() || ip.octets()[..2] == [10, 254] {
                return Err(DeaError::Backend(format!(
                    "host_services_address {a} must not be loopback, 0.0.0.0 or in 10.254.0.0/16 (the containers' subnets)"
                )));
            }
            Some(namespaces::net::HostServices {
                address: ip,
                ports: cfg.host_services_ports.clone(),
            })
        }
    };
    let init_exe = init_exe.ok_or_else(|| {
        DeaError::Backend("no dea binary for container-init (set container_init_exe)".into())
    })?;
    let settings = namespaces::Settings {
        tag: namespaces::tag_for(&cfg.id, &cfg.state_dir),
        state_dir: cfg.state_dir.clone(),
        init_exe,
        warm_pool_size: cfg.warm_pool_size,
        pids_limit: cfg.pids_limit,
        user_namespaces: cfg.user_namespaces,
        egress_allow: egress,
        host_services,
        host_ip: cfg.host_ip.clone(),
        ro_paths: std::iter::once(cfg.state_dir.join("buildpacks"))
            .chain(visible_paths(
                &cfg.passthrough_env(|k| std::env::var(k).ok()),
            ))
            .collect(),
    };
    Ok(Arc::new(namespaces::NamespacesBackend::new(settings)?))
}

/// Absolute paths named in the variables handed to builds (a local wheel
/// directory in `PIP_FIND_LINKS`, a CA bundle), which staging containers
/// must see: those that exist outside what containers see anyway.
pub fn visible_paths(vars: &[(String, String)]) -> Vec<PathBuf> {
    const SEEN: &[&str] = &[
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ];
    const NEVER: &[&str] = &["/proc", "/sys", "/dev", "/run"];
    let mut out: Vec<PathBuf> = vars
        .iter()
        .flat_map(|(_, v)| v.split([' ', ',']).map(str::to_string).collect::<Vec<_>>())
        .map(|w| w.strip_prefix("file://").unwrap_or(&w).to_string())
        .map(PathBuf::from)
        .filter(|p| {
            p.is_absolute()
                && p.components().count() > 1
                && p.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::RootDir
                    )
                })
                && !SEEN.iter().chain(NEVER).any(|d| p.starts_with(d))
                && p.exists()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_named_in_build_variables() {
        let tmp = tempfile::tempdir().expect("tmp");
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir_all(&wheels).expect("mkdir");
        let vars = vec![
            (
                "PIP_FIND_LINKS".to_string(),
                format!("file://{} https://x/y /nonexistent", wheels.display()),
            ),
            (
                "PIP_CERT".into(),
                "/etc/ssl/certs/ca-certificates.crt".into(),
            ),
            ("X".into(), format!("{}/../etc", wheels.display())),
        ];
        assert_eq!(visible_paths(&vars), vec![wheels]);
    }

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

    #[test]
    fn the_process_backend_needs_the_explicit_setting() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut cfg = crate::config::Config {
            backend: "process".into(),
            state_dir: tmp.path().to_path_buf(),
            ..Default::default()
        };
        let e = from_config(&cfg).err().expect("refused").to_string();
        assert!(e.contains("allow_unisolated_process_backend = true"), "{e}");
        assert!(e.contains("backend = \"process\""), "{e}");
        cfg.allow_unisolated_process_backend = true;
        assert_eq!(from_config(&cfg).expect("allowed").name(), "process");
        // `auto` without the namespaces backend (no dea binary for
        // container-init: the fallback) is refused the same way.
        cfg.backend = "auto".into();
        cfg.allow_unisolated_process_backend = false;
        cfg.container_init_exe = None;
        if !namespaces::available() || find_dea_binary().is_none() {
            let e = from_config(&cfg).err().expect("refused").to_string();
            assert!(e.contains("allow_unisolated_process_backend"), "{e}");
        }
        cfg.backend = "sim".into();
        assert_eq!(from_config(&cfg).expect("sim").name(), "sim");
    }
}
