//! The `namespaces` backend (docs/containers.md): each process runs under
//! its own PID 1 (`dea container-init`) in new mount, PID, UTS and IPC
//! namespaces, in the container's network namespace and cgroup, as an
//! unprivileged uid (`vcap` of a user namespace of its own where the
//! kernel allows, the slot's host uid) with no capabilities, `no_new_privs` and a seccomp
//! filter (`seccomp`), on a read-only stack with a private writable
//! `/home/vcap` (the container's directory) and a `/proc` with the host's
//! parts masked.
//!
//! A container is a *slot* `n` (2..=254): cgroup `paas-<tag>/c<n>`, netns
//! `paas-<tag>-<n>` with `10.254.<k>.<n>`, uid `10000 + n`. A warm pool keeps
//! slots ready: network and cgroups set up and a container-init already
//! started in them with its root file system built, waiting for its process;
//! a start then only applies limits, hands the process and the container's
//! directory to that init and lets it fork. `<tag>` is derived from the DEA
//! id and state dir, so a DEA restarted on the same state dir finds and
//! removes its leftovers.
//!
//! Here: the backend and its public API. By job: `pool` (slots and the
//! warm pool), `refill` (keeps the pool full), `inits` (starting
//! container-inits), `volumes` (disk limits that fail writes), `disk`
//! (the disk watch where no volume is possible), `etc_files` (the
//! stack's /etc), `pidfd` (waiting for a process and its exit status).

pub mod cgroup;
pub mod init;
pub mod net;
pub mod netlink;
pub mod seccomp;
pub mod spawn;

mod disk;
mod etc_files;
mod inits;
mod pidfd;
mod pool;
mod refill;
mod volumes;

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::*;
use cgroup::{Layout, Limits};
use disk::disk_watch;
use etc_files::prepare_etc;
use inits::{kill_pids, small_init};
use net::{Egress, Net};
use pidfd::wait_child;
use pool::{finish_create, Slot, Taken};
use refill::refiller;

/// Inside a container.
pub const HOME: &str = "/home/vcap";
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const UID_BASE: u32 = 10_000;
/// `<state_dir>/namespaces.tag`: the tag of the DEA's host objects.
pub const TAG_FILE: &str = "namespaces.tag";

/// Settings of the backend (from the DEA config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tag: String,
    pub state_dir: PathBuf,
    /// The binary with the `container-init` entry (the DEA itself).
    pub init_exe: PathBuf,
    pub warm_pool_size: usize,
    pub pids_limit: u64,
    /// Each container's processes in a user namespace of their own
    /// (where the kernel allows; `init.rs`).
    pub user_namespaces: bool,
    pub egress_allow: Vec<Egress>,
    /// Servers on the host's loopback containers may reach (`net.rs`).
    pub host_services: Option<net::HostServices>,
    /// Where host ports are reserved (the DEA's `host_ip`).
    pub host_ip: String,
    /// Host directories visible read-only at the same path (buildpacks).
    pub ro_paths: Vec<PathBuf>,
}

/// A stable short tag for names: hash of the DEA id and state dir.
pub fn tag_for(id: &str, state_dir: &Path) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{id}\0{}", state_dir.display()));
    hex::encode(&h[..3])
}

/// Whether this machine can run the backend: root on Linux with cgroups,
/// `ip` and `iptables`.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let has = |c: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(c).is_file()))
            || ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(c).is_file())
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    root && kernel_at_least(&kernel, MIN_KERNEL)
        && Layout::detect().is_some()
        && has("ip")
        && has("iptables")
}

/// The oldest kernel the backend runs on: `open_tree`/`move_mount` (5.2) and
/// `mount_setattr` (5.12) attach the app's directories in pooled inits.
pub const MIN_KERNEL: (u32, u32) = (5, 12);

/// Whether a `uname -r` release like `6.1.0-56-amd64` is at least `min`.
pub fn kernel_at_least(release: &str, min: (u32, u32)) -> bool {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(a), Some(b)) => (a, b) >= min,
        _ => false,
    }
}

#[derive(Debug)]
struct Live {
    slot: u8,
    root: PathBuf,
    disk_bytes: u64,
    /// Whether `root` is its own volume of `disk_bytes` (writes past it
    /// fail); else the disk watch measures it.
    volume: bool,
    inits: Vec<i32>,
    /// A container-init started for the next process (from the pool or
    /// at create), not yet given its process.
    ready: Option<spawn::Child>,
    exposed: Option<(u16, std::net::TcpListener)>,
    cpu_sample: Option<(u64, Instant)>,
    disk_exceeded: bool,
    /// OOM kills counted by the (possibly recycled) cgroup before this
    /// container.
    oom_base: u64,
    /// Whether a process of the container was started (its directory is
    /// the container user's from then on).
    handed_over: bool,
}

struct Inner {
    s: Settings,
    layout: Layout,
    net: Net,
    rootfs: PathBuf,
    /// What containers' PID 1 execs: `dea-init` next to `s.init_exe` when
    /// there is one (a small binary), else `s.init_exe` itself.
    init_exe: PathBuf,
    /// The stack's /etc: a copy of the host's subset, made at start.
    etc: Option<PathBuf>,
    free: Mutex<BTreeSet<u8>>,
    pool: Mutex<Vec<Slot>>,
    live: Mutex<HashMap<String, Live>>,
    refill: Arc<tokio::sync::Notify>,
    volumes: volumes::Volumes,
    /// Egress rules of a container created without any: public networks
    /// and the resolvers of the containers' resolv.conf.
    default_egress: Vec<proto::EgressRule>,
    /// The rules of the latest container (new pool slots get them ready).
    last_egress: Mutex<Vec<proto::EgressRule>>,
    /// Background teardowns under way.
    pending: std::sync::atomic::AtomicUsize,
    /// Pool slots taken out by the refiller while it starts their init.
    refilling: std::sync::atomic::AtomicUsize,
    /// Held while a slot's cgroups or network are being created, and by
    /// the shutdown.
    building: Mutex<()>,
    shut: std::sync::atomic::AtomicBool,
}

pub struct NamespacesBackend {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn cg_name(n: u8) -> String {
    format!("c{n}")
}

impl Inner {
    /// The network slot of a live container.
    fn slot_of(&self, id: &str) -> Result<u8> {
        lock(&self.live)
            .get(id)
            .map(|l| l.slot)
            .ok_or_else(|| DeaError::Backend(format!("no container {id}")))
    }

    /// The container's directory (owned by its uid; its own volume of
    /// `disk_mb` when possible) and limits on slot `n`; returns the OOM
    /// kills counted so far and whether the directory is a volume.
    fn prepare(&self, root: &Path, memory_mb: u64, disk_mb: u64, n: u8) -> Result<(u64, bool)> {
        let volume = match self.volumes.attach(root, disk_mb) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "no disk volume; the disk watch measures this container");
                false
            }
        };
        let limits = std::fs::create_dir_all(root)
            .map_err(|e| DeaError::io(root, e))
            .and_then(|()| {
                let l = Limits::for_memory(memory_mb, self.s.pids_limit);
                self.layout
                    .set_limits(&self.s.tag, &cg_name(n), &l)
                    .map_err(|e| DeaError::Backend(format!("cgroup limits: {e}")))
            });
        if let Err(e) = limits {
            if volume {
                volumes::unmount(root);
            }
            return Err(e);
        }
        let uid = UID_BASE + n as u32;
        let _ = std::os::unix::fs::lchown(root, Some(uid), Some(uid));
        Ok((self.layout.oom_kills(&self.s.tag, &cg_name(n)), volume))
    }

    /// Tears everything down (DEA shutdown).
    fn teardown(&self) {
        self.shut.store(true, std::sync::atomic::Ordering::SeqCst);
        // No slot is being built from here on (a refill on a blocking
        // thread would otherwise recreate a cgroup or a veth behind us).
        let _building = lock(&self.building);
        let live: Vec<(String, Live)> = lock(&self.live).drain().collect();
        for (_, mut l) in live {
            kill_pids(&l.inits, libc::SIGKILL);
            if let Some(c) = l.ready.take() {
                spawn::discard(c);
            }
            self.layout.kill_all(&self.s.tag, &cg_name(l.slot));
        }
        let pool: Vec<Slot> = lock(&self.pool).drain(..).collect();
        for s in pool {
            if let Some(c) = s.init {
                spawn::discard(c);
            }
        }
        self.volumes.discard_ready();
        volumes::cleanup(&self.s.tag);
        self.layout.destroy_all(&self.s.tag);
        net::cleanup(&self.s.tag);
        net::restore_host_settings();
    }
}

impl NamespacesBackend {
    /// Removes the leftovers of a previous run with the same tag, then sets
    /// up cgroups, the bridge and the chains, and starts the pool refiller.
    pub fn new(s: Settings) -> Result<NamespacesBackend> {
        let layout = Layout::detect()
            .ok_or_else(|| DeaError::Backend("no usable cgroup hierarchy".into()))?;
        // Leftovers of DEAs on this host that died without cleaning up
        // (their subnet claim names a dead pid), then our own; under the
        // host lock until our own claim names this process.
        let host_lock = net::HostLock::acquire();
        for dead in net::dead_owners() {
            if dead != s.tag {
                tracing::info!(tag = %dead, "removing the leftovers of a dead DEA");
                remove_tag(&dead);
            }
        }
        layout.destroy_all(&s.tag);
        let net = Net::init(&s.tag, &s.egress_allow, s.host_services.clone())?;
        drop(host_lock);
        layout
            .init_parent(&s.tag)
            .map_err(|e| DeaError::Backend(format!("cgroup parent: {e}")))?;
        // Tells tools (and the test harness) what to clean after a crash:
        // `dea container-cleanup $(cat <state_dir>/namespaces.tag)`.
        let tag_file = s.state_dir.join(TAG_FILE);
        std::fs::write(&tag_file, format!("{}\n", s.tag))
            .map_err(|e| DeaError::io(&tag_file, e))?;
        let etc = s.state_dir.join("stack-etc");
        let etc = match prepare_etc(&etc) {
            Ok(()) => Some(etc),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare the /etc subset; binding host files");
                None
            }
        };
        let rootfs = s.state_dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| DeaError::io(&rootfs, e))?;
        let resolv = etc
            .as_ref()
            .map(|e| e.join("resolv.conf"))
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"));
        let resolvers =
            proto::egress::nameservers(&std::fs::read_to_string(&resolv).unwrap_or_default());
        let mut default_egress = proto::egress::public_networks();
        default_egress.extend(proto::egress::dns(&resolvers));
        tracing::info!(tag = %s.tag, subnet = %net.subnet(), cgroups = ?layout, pool = s.warm_pool_size, resolvers = ?resolvers, "namespaces backend ready");
        let init_exe = small_init(&s.init_exe);
        let volumes = volumes::Volumes::new(&s.state_dir, &s.tag, s.warm_pool_size);
        let inner = Arc::new(Inner {
            volumes,
            init_exe,
            layout,
            net,
            rootfs,
            etc,
            free: Mutex::new((2..=254).collect()),
            last_egress: Mutex::new(default_egress.clone()),
            default_egress,
            pool: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            refill: Arc::new(tokio::sync::Notify::new()),
            pending: std::sync::atomic::AtomicUsize::new(0),
            refilling: std::sync::atomic::AtomicUsize::new(0),
            building: Mutex::new(()),
            shut: std::sync::atomic::AtomicBool::new(false),
            s,
        });
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            h.spawn(refiller(weak.clone(), inner.refill.clone()));
            h.spawn(volumes::filler(weak.clone(), inner.volumes.fill.clone()));
            h.spawn(disk_watch(weak));
            inner.refill.notify_one();
            inner.volumes.fill.notify_one();
        }
        Ok(NamespacesBackend { inner })
    }

    pub fn tag(&self) -> &str {
        &self.inner.s.tag
    }

    /// Slots ready in the pool (with their container-init started).
    pub fn pool_len(&self) -> usize {
        lock(&self.inner.pool)
            .iter()
            .filter(|s| s.init.is_some())
            .count()
    }

    /// Waits (bounded) until the pool (slots and disk volumes) is full and
    /// no teardown is pending.
    pub async fn pool_filled(&self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while self.pool_len() < self.inner.s.warm_pool_size
            || !self.inner.volumes.is_full()
            || self.inner.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
            || self
                .inner
                .refilling
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0
        {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The container's address (for tests and diagnostics).
    pub fn container_ip(&self, id: &str) -> Option<std::net::Ipv4Addr> {
        lock(&self.inner.live)
            .get(id)
            .map(|l| self.inner.net.ip(l.slot))
    }

    /// Removes everything named with `tag` (processes, cgroups, network,
    /// rules): what a crashed DEA or a failed test left behind.
    /// `ip_forward` goes back to its value before the DEAs when no live
    /// DEA is left on the host.
    pub fn cleanup_tag(tag: &str) {
        remove_tag(tag);
        net::restore_host_settings();
    }

    /// Everything named with this backend's tag that still exists.
    pub fn leftovers(tag: &str) -> Vec<String> {
        let mut v = net::leftovers(tag);
        v.extend(volumes::leftovers(tag));
        if let Some(l) = Layout::detect() {
            for d in l.parent_dirs(tag) {
                if d.exists() {
                    v.push(format!("cgroup {}", d.display()));
                }
            }
        }
        v
    }
}

/// Detaches what a previous run left mounted under the DEA's state dir
/// (its containers' disk volumes), so the directories can be removed.
pub fn unmount_leftovers(state_dir: &Path) {
    volumes::unmount_under(state_dir);
}

/// Removes everything named with `tag` (under the host lock when called
/// from [`NamespacesBackend::new`]).
fn remove_tag(tag: &str) {
    volumes::cleanup(tag);
    if let Some(l) = Layout::detect() {
        l.destroy_all(tag);
    }
    net::cleanup(tag);
}

/// Host paths under the container's directory, as seen inside.
fn inside(s: &str, root: &str) -> String {
    if root.is_empty() {
        return s.to_string();
    }
    s.replace(root, HOME)
}

impl Backend for NamespacesBackend {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let root = spec.root.clone();
            let (memory_mb, disk_mb) = (spec.memory_mb, spec.disk_mb);
            // A ready slot from the pool and a ready volume (or none
            // needed): only a few writes to cgroup files, a bind mount and
            // one mkdir, done here (no hop to a blocking thread). Else a
            // pooled slot without init, a new slot or a new volume, on a
            // blocking thread (a new network namespace takes ~1 ms, a new
            // volume ~30 ms).
            let quick = disk_mb == 0 || root.exists() || inner.volumes.has_ready(disk_mb);
            let ready = if quick { inner.take_ready() } else { None };
            let (taken, prepared) = match ready {
                Some(slot) => {
                    let r = inner.prepare(&root, memory_mb, disk_mb, slot.n);
                    (Taken::Pooled(slot), r)
                }
                None => {
                    tokio::task::spawn_blocking(move || -> Result<(Taken, Result<(u64, bool)>)> {
                        let taken = inner.slot_for_create()?;
                        let r = inner.prepare(&root, memory_mb, disk_mb, taken.n());
                        Ok((taken, r))
                    })
                    .await
                    .map_err(|e| DeaError::Backend(format!("create task: {e}")))??
                }
            };
            let (oom_base, volume) = match prepared {
                Ok(b) => b,
                Err(e) => {
                    let i = self.inner.clone();
                    let _ = tokio::task::spawn_blocking(move || i.abandon(taken)).await;
                    return Err(e);
                }
            };
            let n = taken.n();
            // Not from the pool: start its container-init now (here, on a
            // runtime worker), so that it builds the root file system while
            // the network is finished and the caller prepares the files.
            let (init, pending) = match taken {
                Taken::Pooled(s) => (s.init, None),
                Taken::New(_, p) => (None, Some(p)),
            };
            let init = match (init, pending) {
                // Warm: nothing left to do.
                (Some(c), None) => Ok(c),
                (init, pending) => {
                    let init = match init {
                        Some(c) => Ok(c),
                        None => self.inner.start_init(n),
                    };
                    let inner = self.inner.clone();
                    finish_create(inner, n, init, pending).await
                }
            };
            let init = match init {
                Ok(c) => c,
                Err(e) => {
                    if volume {
                        volumes::unmount(&spec.root);
                    }
                    return Err(e);
                }
            };
            let rules = spec
                .egress
                .clone()
                .unwrap_or_else(|| self.inner.default_egress.clone());
            if !self.inner.net.egress_is(n, &rules) {
                let i = self.inner.clone();
                let r = rules.clone();
                let applied = tokio::task::spawn_blocking(move || i.net.apply_egress(n, &r))
                    .await
                    .map_err(|e| DeaError::Backend(format!("egress task: {e}")))
                    .and_then(|r| r);
                if let Err(e) = applied {
                    let i = self.inner.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        spawn::discard(init);
                        i.destroy_slot(n);
                    })
                    .await;
                    if volume {
                        volumes::unmount(&spec.root);
                    }
                    return Err(e);
                }
            }
            *lock(&self.inner.last_egress) = rules;
            lock(&self.inner.live).insert(
                spec.id.clone(),
                Live {
                    slot: n,
                    root: spec.root.clone(),
                    disk_bytes: spec.disk_mb.saturating_mul(1024 * 1024),
                    volume,
                    inits: Vec::new(),
                    ready: Some(init),
                    exposed: None,
                    cpu_sample: None,
                    disk_exceeded: false,
                    oom_base,
                    handed_over: false,
                },
            );
            Ok(Container {
                id: spec.id,
                root: spec.root,
                created: Instant::now(),
            })
        })
    }

    fn spawn<'a>(
        &'a self,
        container: &'a Container,
        process: ProcessSpec,
    ) -> BoxFut<'a, Result<Spawned>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let (slot, ready, handed_over) = lock(&inner.live)
                .get_mut(&container.id)
                .map(|l| {
                    (
                        l.slot,
                        l.ready.take(),
                        std::mem::replace(&mut l.handed_over, true),
                    )
                })
                .ok_or_else(|| DeaError::Backend(format!("no container {}", container.id)))?;
            // The container's first process gets the init started at create
            // (or taken from the pool); later ones (staging steps) a new one.
            let child = match ready {
                Some(c) => c,
                None => inner.start_init(slot)?,
            };
            let uid = UID_BASE + slot as u32;
            let host_root = container.root.display().to_string();
            let env: Vec<(String, String)> = process
                .env
                .iter()
                .map(|(k, v)| {
                    if k == "PATH" {
                        (k.clone(), PATH.to_string())
                    } else {
                        (k.clone(), inside(v, &host_root))
                    }
                })
                .collect();
            let script = inside(&process.script, &host_root);
            let spec = init::Spec {
                hostname: container.id.chars().take(63).collect(),
                uid,
                cwd: inside(&process.cwd.display().to_string(), &host_root),
                direct: init::plain_exec(&script).unwrap_or_default(),
                script,
                env,
            };
            let root = container.root.clone();
            let r = tokio::task::spawn_blocking(move || {
                // What the DEA laid out becomes the container user's, once,
                // before anything of the container ran: from then on the
                // tree is the container's and the host does not walk it.
                let owned = if handed_over {
                    Ok(())
                } else {
                    crate::safefs::chown_tree(&root, uid)
                        .map_err(|e| DeaError::Backend(format!("{}: {e}", root.display())))
                };
                let sent = owned.and_then(|()| {
                    spawn::send_process(&child.control, &init::encode_spec(&spec), &root, uid)
                });
                match sent {
                    Ok(()) => Ok(child),
                    Err(e) => {
                        spawn::discard(child);
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|e| DeaError::Backend(format!("spawn task: {e}")))?;
            let child = r?;
            let pid = child.pid;
            if let Some(l) = lock(&inner.live).get_mut(&container.id) {
                l.inits.push(pid);
            }
            let rd = |fd: OwnedFd| -> Result<BoxRead> {
                tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                    .map(|r| Box::pin(r) as BoxRead)
                    .map_err(|e| DeaError::Backend(format!("pipe: {e}")))
            };
            let spawn::Child {
                pidfd,
                stdout,
                stderr,
                status,
                control,
                ..
            } = child;
            drop(control);
            let stdout = rd(stdout)?;
            let stderr = rd(stderr)?;
            let wait = Box::pin(wait_child(
                inner.clone(),
                container.id.clone(),
                pid,
                pidfd,
                status,
            ));
            Ok(Spawned {
                pid: Some(pid as u32),
                stdout: Some(stdout),
                stderr: Some(stderr),
                wait,
            })
        })
    }

    fn stop<'a>(&'a self, container: &'a Container, grace: Duration) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            let inner = &self.inner;
            let Some((inits, slot, ready)) = lock(&inner.live)
                .get_mut(&container.id)
                .map(|l| (l.inits.clone(), l.slot, l.ready.take()))
            else {
                return Ok(());
            };
            // An init still waiting for its process goes at once.
            if let Some(c) = ready {
                let _ = tokio::task::spawn_blocking(move || spawn::discard(c)).await;
            }
            kill_pids(&inits, libc::SIGTERM);
            let name = cg_name(slot);
            let end = tokio::time::Instant::now() + grace;
            while !inner.layout.pids(&inner.s.tag, &name).is_empty() {
                if tokio::time::Instant::now() >= end {
                    tracing::info!(container = %container.id, "grace period over, killing");
                    kill_pids(&inits, libc::SIGKILL);
                    let i = inner.clone();
                    let _ = tokio::task::spawn_blocking(move || i.layout.kill_all(&i.s.tag, &name))
                        .await;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            let live = lock(&self.inner.live).remove(&container.id);
            let inner = self.inner.clone();
            let root = container.root.clone();
            // Synchronous part: no process survives, the files are gone.
            let (live, removed) = tokio::task::spawn_blocking(move || {
                let mut live = live;
                if let Some(l) = &mut live {
                    // PID 1 first: the kernel then kills its whole PID
                    // namespace at once (a fork bomb cannot outrun it).
                    kill_pids(&l.inits, libc::SIGKILL);
                    if let Some(c) = l.ready.take() {
                        spawn::discard(c);
                    }
                    inner.layout.kill_all(&inner.s.tag, &cg_name(l.slot));
                }
                // A volume goes whole, in the background (below): its last
                // unmount tears the file system and the loop device down
                // (~3 ms), and no process is left to reach its files.
                if live.as_ref().is_some_and(|l| l.volume) {
                    return (live, Ok(()));
                }
                let removed = match std::fs::remove_dir_all(&root) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(DeaError::io(&root, e)),
                };
                (live, removed)
            })
            .await
            .map_err(|e| DeaError::Backend(format!("destroy task: {e}")))?;
            // The rest (DNAT rules, the reserved port, the slot: back to the
            // pool or torn down) happens in the background.
            if let Some(l) = live {
                let inner = self.inner.clone();
                if l.volume {
                    let root = container.root.clone();
                    inner
                        .pending
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let i = inner.clone();
                    tokio::task::spawn_blocking(move || {
                        volumes::unmount(&root);
                        let _ = std::fs::remove_dir(&root);
                        i.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    });
                }
                if l.exposed.is_none() && inner.pool_has_room() {
                    inner.release_slot(l.slot);
                } else {
                    inner
                        .pending
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::spawn_blocking(move || {
                        if let Some((port, listener)) = l.exposed {
                            inner.net.unexpose(l.slot, port);
                            drop(listener);
                        }
                        inner.release_slot(l.slot);
                        inner
                            .pending
                            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    });
                }
            }
            removed
        })
    }

    fn stats<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let slot = inner.slot_of(&container.id)?;
            let root = container.root.clone();
            let i = inner.clone();
            let (mem, ns, disk) = tokio::task::spawn_blocking(move || {
                let name = cg_name(slot);
                (
                    i.layout.memory_usage(&i.s.tag, &name),
                    i.layout.cpu_usage_ns(&i.s.tag, &name),
                    crate::safefs::dir_size(&root),
                )
            })
            .await
            .map_err(|e| DeaError::Backend(format!("stats task: {e}")))?;
            let now = Instant::now();
            let uptime = now.duration_since(container.created);
            let mut cpu = ns as f64 / 1e9 / uptime.as_secs_f64().max(0.001);
            if let Some(l) = lock(&inner.live).get_mut(&container.id) {
                if let Some((prev, at)) = l.cpu_sample {
                    let dt = now.duration_since(at).as_secs_f64();
                    if dt > 0.05 {
                        cpu = ns.saturating_sub(prev) as f64 / 1e9 / dt;
                    }
                }
                l.cpu_sample = Some((ns, now));
            }
            Ok(proto::InstanceStats {
                cpu,
                mem,
                disk,
                uptime: uptime.as_secs(),
            })
        })
    }

    fn kill_all(&self) {
        self.inner.teardown();
    }

    fn app_port(&self) -> Option<u16> {
        Some(net::CONTAINER_PORT)
    }

    fn expose<'a>(&'a self, container: &'a Container, host_port: u16) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let slot = inner.slot_of(&container.id)?;
            // Hold the port so that nothing else on the host gets it.
            let listener = std::net::TcpListener::bind((inner.s.host_ip.as_str(), host_port))
                .map_err(|e| DeaError::Backend(format!("cannot reserve port {host_port}: {e}")))?;
            let i = inner.clone();
            tokio::task::spawn_blocking(move || i.net.expose(slot, host_port))
                .await
                .map_err(|e| DeaError::Backend(format!("expose task: {e}")))??;
            let mut live = lock(&inner.live);
            match live.get_mut(&container.id) {
                Some(l) => l.exposed = Some((host_port, listener)),
                None => {
                    drop(live);
                    inner.net.unexpose(slot, host_port);
                }
            }
            Ok(())
        })
    }

    fn set_egress<'a>(
        &'a self,
        container: &'a Container,
        rules: &'a [proto::EgressRule],
    ) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let slot = inner.slot_of(&container.id)?;
            let rules = rules.to_vec();
            tokio::task::spawn_blocking(move || inner.net.apply_egress(slot, &rules))
                .await
                .map_err(|e| DeaError::Backend(format!("egress task: {e}")))?
        })
    }

    fn exit_reason(&self, container: &Container) -> Option<String> {
        let inner = &self.inner;
        let live = lock(&inner.live);
        let l = live.get(&container.id)?;
        if l.disk_exceeded {
            return Some("disk quota exceeded".into());
        }
        (inner.layout.oom_kills(&inner.s.tag, &cg_name(l.slot)) > l.oom_base)
            .then(|| "out of memory".to_string())
    }
}

impl Drop for Inner {
    /// Containers' inits that never got a process (pooled, or created and
    /// not spawned) are our children: kill and reap them.
    fn drop(&mut self) {
        let pool: Vec<Slot> = lock(&self.pool).drain(..).collect();
        let ready = lock(&self.live)
            .values_mut()
            .filter_map(|l| l.ready.take())
            .collect::<Vec<_>>();
        for c in pool.into_iter().filter_map(|s| s.init).chain(ready) {
            spawn::discard(c);
        }
        self.volumes.discard_ready();
    }
}

impl Drop for NamespacesBackend {
    fn drop(&mut self) {
        self.inner
            .shut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.refill.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert!(kernel_at_least("6.1.0-56-amd64\n", MIN_KERNEL));
        assert!(kernel_at_least("5.12.0", MIN_KERNEL));
        assert!(kernel_at_least("6.18.44-fc-v445", MIN_KERNEL));
        assert!(!kernel_at_least("5.10.0-28-amd64", MIN_KERNEL));
        assert!(!kernel_at_least("4.19.0", MIN_KERNEL));
        assert!(!kernel_at_least("", MIN_KERNEL));
        assert!(!kernel_at_least("garbage", MIN_KERNEL));
    }

    #[test]
    fn paths_and_tags() {
        assert_eq!(
            inside("cd /s/i/abc/app && x /s/i/abc/cache", "/s/i/abc"),
            "cd /home/vcap/app && x /home/vcap/cache"
        );
        let t = tag_for("dea-0", Path::new("/tmp/a"));
        assert_eq!(t.len(), 6);
        assert_ne!(t, tag_for("dea-0", Path::new("/tmp/b")));
    }

    /// `dea-init` (or `dea`) built next to this test binary
    /// (`target/<profile>/deps/`).
    fn built_init() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?.parent()?;
        ["dea-init", "dea"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    }

    async fn run(b: &NamespacesBackend, c: &Container, script: &str) -> (String, i32) {
        use tokio::io::AsyncReadExt;
        let sp = b
            .spawn(
                c,
                ProcessSpec {
                    script: script.into(),
                    env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                    cwd: c.root.join("app"),
                },
            )
            .await
            .expect("spawn");
        let (mut out, mut err) = (String::new(), String::new());
        let mut so = sp.stdout.expect("stdout");
        let mut se = sp.stderr.expect("stderr");
        let (a, e) = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
        a.expect("stdout");
        e.expect("stderr");
        let exit = sp.wait.await.expect("wait");
        (format!("{out}{err}"), exit.status())
    }

    /// Root only: a pooled init runs a plain `exec CMD` without bash, with
    /// the environment bash would give and every privilege dropped; later
    /// processes of the container get new inits; shell syntax goes through
    /// bash; nothing is left afterwards.
    #[tokio::test]
    async fn pooled_inits_and_direct_exec() {
        if !testkit::require_root(
            "pooled_inits_and_direct_exec",
            &[("cgroups, ip and iptables", available())],
        ) {
            return;
        }
        let Some(init_exe) = built_init() else {
            testkit::skip_or_fail(
                "pooled_inits_and_direct_exec",
                "needs the dea binary (cargo build -p dea --bins)",
            );
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let tag = tag_for("unit-test", tmp.path());
        struct Cleanup(String);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                NamespacesBackend::cleanup_tag(&self.0);
            }
        }
        let _guard = Cleanup(tag.clone());
        let b = NamespacesBackend::new(Settings {
            tag: tag.clone(),
            state_dir: tmp.path().to_path_buf(),
            init_exe,
            warm_pool_size: 1,
            pids_limit: 64,
            user_namespaces: false,
            egress_allow: vec![],
            host_services: None,
            host_ip: "127.0.0.1".into(),
            ro_paths: vec![],
        })
        .expect("backend");
        assert!(b.pool_filled(Duration::from_secs(10)).await, "pool fills");
        let c = b
            .create(ContainerSpec {
                id: "unit1".into(),
                root: tmp.path().join("unit1"),
                memory_mb: 64,
                disk_mb: 64,
                egress: None,
            })
            .await
            .expect("create");
        std::fs::create_dir_all(c.root.join("app")).expect("app dir");
        let (out, st) = run(&b, &c, "exec env").await;
        assert_eq!(st, 0, "{out}");
        assert!(out.contains("PWD=/home/vcap/app\n"), "{out}");
        assert!(out.contains("SHLVL=0\n"), "{out}");
        let (out, st) = run(&b, &c, "exec cat /proc/self/status").await;
        assert_eq!(st, 0, "{out}");
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        assert!(field("Uid:").starts_with("100"), "{out}");
        assert_eq!(field("NoNewPrivs:"), "1", "{out}");
        assert_eq!(field("Seccomp:"), "2", "filtered: {out}");
        let filters = if cfg!(target_arch = "x86_64") {
            "3"
        } else {
            "2"
        };
        assert_eq!(field("Seccomp_filters:"), filters, "{out}");
        assert_eq!(field("CapBnd:"), "0000000000000000", "{out}");
        assert_eq!(field("CapEff:"), "0000000000000000", "{out}");
        assert_eq!(field("PPid:"), "1", "PID 1 is its parent: {out}");
        let (out, st) = run(&b, &c, "exec no-such-command-here").await;
        assert_eq!(st, 127, "bash's answer: {out}");
        assert!(out.contains("not found"), "{out}");
        let (out, st) = run(&b, &c, "exec ./missing").await;
        assert_eq!(st, 127, "bash's answer: {out}");
        assert!(out.contains("No such file"), "{out}");
        let (out, st) = run(&b, &c, "echo $((6 * 7)) $(hostname); exit 5").await;
        assert_eq!((out.trim(), st), ("42 unit1", 5));
        b.destroy(&c).await.expect("destroy");
        assert!(b.pool_filled(Duration::from_secs(10)).await, "refilled");
        b.kill_all();
        let left = NamespacesBackend::leftovers(&tag);
        assert!(left.is_empty(), "leftovers: {left:?}");
    }
}
