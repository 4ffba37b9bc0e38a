//! The `namespaces` backend (docs/containers.md): each process runs under
//! its own PID 1 (`dea container-init`) in new mount, PID, UTS and IPC
//! namespaces, in the container's network namespace and cgroup, as an
//! unprivileged uid with no capabilities and `no_new_privs`, on a read-only
//! stack with a private writable `/home/vcap` (the container's directory).
//!
//! A container is a *slot* `n` (2..=254): cgroup `paas-<tag>/c<n>`, netns
//! `paas-<tag>-<n>` with `10.254.<k>.<n>`, uid `10000 + n`. A warm pool keeps
//! slots ready (network and cgroups set up) so a start only applies limits,
//! mounts and execs. `<tag>` is derived from the DEA id and state dir, so a
//! DEA restarted on the same state dir finds and removes its leftovers.

pub mod cgroup;
pub mod init;
pub mod net;
pub mod spawn;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use super::*;
use cgroup::{Layout, Limits};
use net::{Egress, Net};

/// Inside a container.
pub const HOME: &str = "/home/vcap";
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const UID_BASE: u32 = 10_000;
/// `<state_dir>/namespaces.tag`: the tag of the DEA's host objects.
pub const TAG_FILE: &str = "namespaces.tag";
const DISK_CHECK: Duration = Duration::from_secs(2);

/// Settings of the backend (from the DEA config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tag: String,
    pub state_dir: PathBuf,
    /// The binary with the `container-init` entry (the DEA itself).
    pub init_exe: PathBuf,
    pub warm_pool_size: usize,
    pub pids_limit: u64,
    pub egress_allow: Vec<Egress>,
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
    root && Layout::detect().is_some() && has("ip") && has("iptables")
}

#[derive(Debug)]
struct Slot {
    n: u8,
}

#[derive(Debug)]
struct Live {
    slot: u8,
    root: PathBuf,
    disk_bytes: u64,
    inits: Vec<i32>,
    exposed: Option<(u16, std::net::TcpListener)>,
    cpu_sample: Option<(u64, Instant)>,
    disk_exceeded: bool,
    /// OOM kills counted by the (possibly recycled) cgroup before this
    /// container.
    oom_base: u64,
}

struct Inner {
    s: Settings,
    layout: Layout,
    net: Net,
    rootfs: PathBuf,
    /// The stack's /etc: a copy of the host's subset, made at start.
    etc: Option<PathBuf>,
    free: Mutex<BTreeSet<u8>>,
    pool: Mutex<Vec<Slot>>,
    live: Mutex<HashMap<String, Live>>,
    refill: Arc<tokio::sync::Notify>,
    /// Background teardowns under way.
    pending: std::sync::atomic::AtomicUsize,
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
    fn take_number(&self) -> Result<u8> {
        let mut f = lock(&self.free);
        let n = *f
            .iter()
            .next()
            .ok_or_else(|| DeaError::Backend("no free container slot".into()))?;
        f.remove(&n);
        Ok(n)
    }

    /// Creates a slot: cgroup and network (blocking).
    fn make_slot(&self) -> Result<Slot> {
        let n = self.take_number()?;
        let r = self
            .layout
            .create(&self.s.tag, &cg_name(n))
            .map_err(|e| DeaError::Backend(format!("cgroup: {e}")))
            .and_then(|_| self.net.create_slot(n));
        match r {
            Ok(()) => Ok(Slot { n }),
            Err(e) => {
                self.destroy_slot(n);
                Err(e)
            }
        }
    }

    fn destroy_slot(&self, n: u8) {
        self.layout.destroy(&self.s.tag, &cg_name(n));
        self.net.destroy_slot(n);
        lock(&self.free).insert(n);
    }

    fn pool_has_room(&self) -> bool {
        lock(&self.pool).len() < self.s.warm_pool_size
    }

    /// A slot whose processes are gone: back to the pool when it has room
    /// (its netns and cgroup are reused as they are; limits are set again
    /// on the next create), else torn down.
    fn release_slot(&self, n: u8) {
        if !self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            let mut pool = lock(&self.pool);
            if pool.len() < self.s.warm_pool_size {
                pool.push(Slot { n });
                return;
            }
        }
        self.destroy_slot(n);
    }

    fn slot_for_create(&self) -> Result<Slot> {
        let pooled = lock(&self.pool).pop();
        self.refill.notify_one();
        match pooled {
            Some(s) => Ok(s),
            None => self.make_slot(),
        }
    }

    /// Tears everything down (DEA shutdown).
    fn teardown(&self) {
        self.shut.store(true, std::sync::atomic::Ordering::SeqCst);
        let live: Vec<(String, Live)> = lock(&self.live).drain().collect();
        for (_, l) in live {
            self.layout.kill_all(&self.s.tag, &cg_name(l.slot));
        }
        self.layout.destroy_all(&self.s.tag);
        net::cleanup(&self.s.tag);
        lock(&self.pool).clear();
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
                NamespacesBackend::cleanup_tag(&dead);
            }
        }
        layout.destroy_all(&s.tag);
        let net = Net::init(&s.tag, &s.egress_allow)?;
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
        tracing::info!(tag = %s.tag, subnet = %net.subnet(), cgroups = ?layout, pool = s.warm_pool_size, "namespaces backend ready");
        let inner = Arc::new(Inner {
            layout,
            net,
            rootfs,
            etc,
            free: Mutex::new((2..=254).collect()),
            pool: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            refill: Arc::new(tokio::sync::Notify::new()),
            pending: std::sync::atomic::AtomicUsize::new(0),
            shut: std::sync::atomic::AtomicBool::new(false),
            s,
        });
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            h.spawn(refiller(weak.clone(), inner.refill.clone()));
            h.spawn(disk_watch(weak));
            inner.refill.notify_one();
        }
        Ok(NamespacesBackend { inner })
    }

    pub fn tag(&self) -> &str {
        &self.inner.s.tag
    }

    /// Slots ready in the pool.
    pub fn pool_len(&self) -> usize {
        lock(&self.inner.pool).len()
    }

    /// Waits (bounded) until the pool is full and no teardown is pending.
    pub async fn pool_filled(&self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while self.pool_len() < self.inner.s.warm_pool_size
            || self.inner.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
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
    pub fn cleanup_tag(tag: &str) {
        if let Some(l) = Layout::detect() {
            l.destroy_all(tag);
        }
        net::cleanup(tag);
    }

    /// Everything named with this backend's tag that still exists.
    pub fn leftovers(tag: &str) -> Vec<String> {
        let mut v = net::leftovers(tag);
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

async fn refiller(weak: std::sync::Weak<Inner>, refill: Arc<tokio::sync::Notify>) {
    loop {
        let notified = refill.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        loop {
            let Some(inner) = weak.upgrade() else { return };
            if inner.shut.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if lock(&inner.pool).len() >= inner.s.warm_pool_size {
                break;
            }
            let i = inner.clone();
            match tokio::task::spawn_blocking(move || i.make_slot()).await {
                Ok(Ok(slot)) => {
                    if inner.shut.load(std::sync::atomic::Ordering::SeqCst) {
                        inner.destroy_slot(slot.n);
                        return;
                    }
                    lock(&inner.pool).push(slot)
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot fill the warm pool");
                    break;
                }
                Err(_) => return,
            }
        }
        notified.await;
    }
}

/// Measures the writable area of each running container and kills those
/// over their disk quota.
async fn disk_watch(weak: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(DISK_CHECK).await;
        let Some(inner) = weak.upgrade() else { return };
        let list: Vec<(String, PathBuf, u64, u8)> = lock(&inner.live)
            .iter()
            .filter(|(_, l)| !l.inits.is_empty() && l.disk_bytes > 0)
            .map(|(id, l)| (id.clone(), l.root.clone(), l.disk_bytes, l.slot))
            .collect();
        for (id, root, quota, slot) in list {
            let used = tokio::task::spawn_blocking(move || super::process::dir_size(&root))
                .await
                .unwrap_or(0);
            if used > quota {
                tracing::warn!(container = %id, used, quota, "disk quota exceeded, killing");
                if let Some(l) = lock(&inner.live).get_mut(&id) {
                    l.disk_exceeded = true;
                }
                let i = inner.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    i.layout.kill_all(&i.s.tag, &cg_name(slot))
                })
                .await;
            }
        }
    }
}

/// Signals container inits (our own children: not reaped while listed).
fn kill_pids(pids: &[i32], sig: i32) {
    for &p in pids.iter().filter(|&&p| p > 1) {
        // SAFETY: plain kill on a child pid we have not reaped yet.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

/// Copies the host's /etc subset (`init::ETC_ENTRIES`) into `dir`, keeping
/// symlinks as symlinks and leaving out `private` directories (keys).
fn prepare_etc(dir: &Path) -> std::io::Result<()> {
    fn copy(src: &Path, dst: &Path) -> std::io::Result<()> {
        let md = src.symlink_metadata()?;
        if md.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)
        } else if md.is_dir() {
            std::fs::create_dir_all(dst)?;
            for e in std::fs::read_dir(src)?.flatten() {
                if e.file_name() != "private" {
                    copy(&e.path(), &dst.join(e.file_name()))?;
                }
            }
            Ok(())
        } else {
            std::fs::copy(src, dst).map(|_| ())
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)?;
    for e in init::ETC_ENTRIES {
        let src = Path::new("/etc").join(e);
        if src.symlink_metadata().is_ok() {
            copy(&src, &dir.join(e))?;
        }
    }
    Ok(())
}

/// `lchown -R` to the container's uid (files the DEA extracted as root).
fn chown_tree(root: &Path, uid: u32) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = p.symlink_metadata() else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if md.uid() != uid {
            let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(uid));
        }
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}

/// Host paths under the container's directory, as seen inside.
fn inside(s: &str, root: &str) -> String {
    if root.is_empty() {
        return s.to_string();
    }
    s.replace(root, HOME)
}

fn parse_status(text: &str) -> Option<ExitInfo> {
    let (k, v) = text.trim().split_once(' ')?;
    let n: i32 = v.trim().parse().ok()?;
    match k {
        "exit" => Some(ExitInfo {
            code: Some(n),
            signal: None,
        }),
        "signal" => Some(ExitInfo {
            code: None,
            signal: Some(n),
        }),
        _ => None,
    }
}

fn from_wait_status(st: i32) -> ExitInfo {
    if libc::WIFEXITED(st) {
        ExitInfo {
            code: Some(libc::WEXITSTATUS(st)),
            signal: None,
        }
    } else {
        ExitInfo {
            code: None,
            signal: libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st)),
        }
    }
}

async fn wait_child(
    inner: Arc<Inner>,
    id: String,
    pid: i32,
    pidfd: OwnedFd,
    status: OwnedFd,
) -> Result<ExitInfo> {
    // SAFETY: the AsyncFd owns the pidfd and nothing else closes it.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| DeaError::Backend(format!("pidfd: {e}")))?;
    let st = loop {
        let mut guard = afd
            .readable()
            .await
            .map_err(|e| DeaError::Backend(format!("pidfd: {e}")))?;
        if let Some(st) = spawn::reap(pid) {
            break st;
        }
        guard.clear_ready();
    };
    if let Some(l) = lock(&inner.live).get_mut(&id) {
        l.inits.retain(|&p| p != pid);
    }
    let mut text = String::new();
    let _ = std::fs::File::from(status).read_to_string(&mut text);
    Ok(text
        .lines()
        .rev()
        .find_map(parse_status)
        .unwrap_or_else(|| {
            if !text.trim().is_empty() {
                tracing::warn!(container = %id, report = %text.trim(), "container-init failed");
            }
            from_wait_status(st)
        }))
}

impl Backend for NamespacesBackend {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let root = spec.root.clone();
            let (slot, oom_base) = tokio::task::spawn_blocking(move || -> Result<(Slot, u64)> {
                std::fs::create_dir_all(&root).map_err(|e| DeaError::io(&root, e))?;
                let slot = inner.slot_for_create()?;
                let l = Limits::for_memory(spec.memory_mb, inner.s.pids_limit);
                if let Err(e) = inner.layout.set_limits(&inner.s.tag, &cg_name(slot.n), &l) {
                    inner.destroy_slot(slot.n);
                    return Err(DeaError::Backend(format!("cgroup limits: {e}")));
                }
                let uid = UID_BASE + slot.n as u32;
                let _ = std::os::unix::fs::lchown(&root, Some(uid), Some(uid));
                let oom_base = inner.layout.oom_kills(&inner.s.tag, &cg_name(slot.n));
                Ok((slot, oom_base))
            })
            .await
            .map_err(|e| DeaError::Backend(format!("create task: {e}")))??;
            lock(&self.inner.live).insert(
                spec.id.clone(),
                Live {
                    slot: slot.n,
                    root: spec.root.clone(),
                    disk_bytes: spec.disk_mb.saturating_mul(1024 * 1024),
                    inits: Vec::new(),
                    exposed: None,
                    cpu_sample: None,
                    disk_exceeded: false,
                    oom_base,
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
            let slot = lock(&inner.live)
                .get(&container.id)
                .map(|l| l.slot)
                .ok_or_else(|| DeaError::Backend(format!("no container {}", container.id)))?;
            let uid = UID_BASE + slot as u32;
            let root = container.root.clone();
            tokio::task::spawn_blocking(move || chown_tree(&root, uid))
                .await
                .map_err(|e| DeaError::Backend(format!("chown task: {e}")))?;
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
            let hostname: String = container.id.chars().take(63).collect();
            let mut argv = vec![
                "dea".to_string(),
                "container-init".to_string(),
                hostname,
                uid.to_string(),
                inner.rootfs.display().to_string(),
                host_root.clone(),
                inside(&process.cwd.display().to_string(), &host_root),
            ];
            if let Some(e) = &inner.etc {
                argv.push(format!("etc={}", e.display()));
            }
            argv.extend(
                inner
                    .s
                    .ro_paths
                    .iter()
                    .filter(|p| p.is_dir())
                    .map(|p| p.display().to_string()),
            );
            argv.extend([
                "--".to_string(),
                "bash".to_string(),
                "-c".to_string(),
                inside(&process.script, &host_root),
            ]);
            let child = spawn::spawn(
                &inner.s.init_exe,
                &argv,
                &env,
                &inner.layout.procs_files(&inner.s.tag, &cg_name(slot)),
                &inner.net.netns_path(slot),
            )?;
            let pid = child.pid;
            if let Some(l) = lock(&inner.live).get_mut(&container.id) {
                l.inits.push(pid);
            }
            let rd = |fd: OwnedFd| -> Result<BoxRead> {
                tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                    .map(|r| Box::pin(r) as BoxRead)
                    .map_err(|e| DeaError::Backend(format!("pipe: {e}")))
            };
            let stdout = rd(child.stdout)?;
            let stderr = rd(child.stderr)?;
            let wait = Box::pin(wait_child(
                inner.clone(),
                container.id.clone(),
                pid,
                child.pidfd,
                child.status,
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
            let Some((inits, slot)) = lock(&inner.live)
                .get(&container.id)
                .map(|l| (l.inits.clone(), l.slot))
            else {
                return Ok(());
            };
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
                if let Some(l) = &live {
                    // PID 1 first: the kernel then kills its whole PID
                    // namespace at once (a fork bomb cannot outrun it).
                    kill_pids(&l.inits, libc::SIGKILL);
                    inner.layout.kill_all(&inner.s.tag, &cg_name(l.slot));
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
            let slot = lock(&inner.live)
                .get(&container.id)
                .map(|l| l.slot)
                .ok_or_else(|| DeaError::Backend(format!("no container {}", container.id)))?;
            let root = container.root.clone();
            let i = inner.clone();
            let (mem, ns, disk) = tokio::task::spawn_blocking(move || {
                let name = cg_name(slot);
                (
                    i.layout.memory_usage(&i.s.tag, &name),
                    i.layout.cpu_usage_ns(&i.s.tag, &name),
                    super::process::dir_size(&root),
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
            let slot = lock(&inner.live)
                .get(&container.id)
                .map(|l| l.slot)
                .ok_or_else(|| DeaError::Backend(format!("no container {}", container.id)))?;
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
    fn paths_and_statuses() {
        assert_eq!(
            inside("cd /s/i/abc/app && x /s/i/abc/cache", "/s/i/abc"),
            "cd /home/vcap/app && x /home/vcap/cache"
        );
        assert_eq!(parse_status("exit 3\n").map(|e| e.code), Some(Some(3)));
        assert_eq!(parse_status("signal 9").map(|e| e.signal), Some(Some(9)));
        assert_eq!(parse_status("error x"), None);
        let t = tag_for("dea-0", Path::new("/tmp/a"));
        assert_eq!(t.len(), 6);
        assert_ne!(t, tag_for("dea-0", Path::new("/tmp/b")));
    }
}
