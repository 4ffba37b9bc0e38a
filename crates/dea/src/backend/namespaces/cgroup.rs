//! cgroups v1 and v2: one group per container under `paas-<tag>/`, with
//! memory (+swap), pids and cpu limits, usage, OOM events and cleanup.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy at `/sys/fs/cgroup`.
    V2,
    /// One directory per controller: memory, pids, cpu, cpuacct.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        cpuacct: PathBuf,
    },
}

/// The limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpu_shares: u64,
}

impl Limits {
    /// CPU shares proportional to memory: 1024 shares per GiB, within the
    /// kernel's range.
    pub fn for_memory(memory_mb: u64, pids: u64) -> Limits {
        Limits {
            memory_bytes: memory_mb.max(4) * 1024 * 1024,
            pids,
            cpu_shares: memory_mb.clamp(2, 262_144),
        }
    }

    /// cgroup v2 `cpu.weight` (1..10000, 100 = 1 GiB).
    pub fn cpu_weight(&self) -> u64 {
        (self.cpu_shares * 100 / 1024).clamp(1, 10_000)
    }
}

impl Layout {
    pub fn detect() -> Option<Layout> {
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            return Some(Layout::V2);
        }
        let dir = |n: &str| {
            let p = Path::new(ROOT).join(n);
            p.join("cgroup.procs").exists().then_some(p)
        };
        Some(Layout::V1 {
            memory: dir("memory")?,
            pids: dir("pids")?,
            cpu: dir("cpu")?,
            cpuacct: dir("cpuacct").or_else(|| dir("cpu"))?,
        })
    }

    /// The controller roots (deduplicated: cpu and cpuacct may be one).
    fn roots(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2 => vec![PathBuf::from(ROOT)],
            Layout::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => {
                let mut v: Vec<PathBuf> = Vec::new();
                for p in [memory, pids, cpu, cpuacct] {
                    let c = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                    if !v.contains(&c) {
                        v.push(c);
                    }
                }
                v
            }
        }
    }

    /// `paas-<tag>` under every root.
    pub fn parent_dirs(&self, tag: &str) -> Vec<PathBuf> {
        self.roots()
            .into_iter()
            .map(|r| r.join(format!("paas-{tag}")))
            .collect()
    }

    /// Creates the DEA's parent groups (v2: enabling the controllers for
    /// the containers' groups, in the root and in the parent; memory and
    /// pids are required, cpu is not).
    pub fn init_parent(&self, tag: &str) -> std::io::Result<()> {
        for d in self.parent_dirs(tag) {
            mkdir(&d)?;
        }
        if *self == Layout::V2 {
            let root = Path::new(ROOT);
            for d in self.parent_dirs(tag) {
                for c in V2_REQUIRED.iter().chain(V2_OPTIONAL) {
                    // The root may have it already, or not be ours to change.
                    let _ = enable(root, c);
                    match enable(&d, c) {
                        Ok(()) => {}
                        Err(e) if V2_REQUIRED.contains(c) => {
                            let msg = format!(
                                "cannot enable the {c} controller in {}: {e} (it must be in \
                                 {ROOT}/cgroup.controllers; a non-root group holding processes \
                                 cannot pass controllers on)",
                                d.display()
                            );
                            return Err(std::io::Error::new(e.kind(), msg));
                        }
                        Err(e) => {
                            tracing::warn!(controller = c, error = %e, "no such cgroup v2 limit")
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The container's group under every root.
    pub fn dirs(&self, tag: &str, name: &str) -> Vec<PathBuf> {
        self.parent_dirs(tag)
            .into_iter()
            .map(|p| p.join(name))
            .collect()
    }

    pub fn create(&self, tag: &str, name: &str) -> std::io::Result<Vec<PathBuf>> {
        let dirs = self.dirs(tag, name);
        for d in &dirs {
            mkdir(d)?;
        }
        Ok(dirs)
    }

    fn memory_dir(&self, tag: &str, name: &str) -> PathBuf {
        match self {
            Layout::V2 => Path::new(ROOT).join(format!("paas-{tag}")).join(name),
            Layout::V1 { memory, .. } => memory.join(format!("paas-{tag}")).join(name),
        }
    }

    pub fn set_limits(&self, tag: &str, name: &str, l: &Limits) -> std::io::Result<()> {
        let g = |root: &PathBuf| root.join(format!("paas-{tag}")).join(name);
        match self {
            Layout::V2 => {
                let d = Path::new(ROOT).join(format!("paas-{tag}")).join(name);
                std::fs::write(d.join("memory.max"), l.memory_bytes.to_string())?;
                let _ = std::fs::write(d.join("memory.swap.max"), "0");
                std::fs::write(d.join("pids.max"), l.pids.to_string())?;
                let _ = std::fs::write(d.join("cpu.weight"), l.cpu_weight().to_string());
            }
            Layout::V1 {
                memory, pids, cpu, ..
            } => {
                let m = g(memory);
                // memsw must stay >= limit: lower memsw last when shrinking,
                // raise it first when growing; try both orders.
                let sw = m.join("memory.memsw.limit_in_bytes");
                let has_sw = sw.exists();
                if has_sw {
                    let _ = std::fs::write(&sw, l.memory_bytes.to_string());
                }
                std::fs::write(m.join("memory.limit_in_bytes"), l.memory_bytes.to_string())?;
                if has_sw {
                    std::fs::write(&sw, l.memory_bytes.to_string())?;
                } else {
                    let _ = std::fs::write(m.join("memory.swappiness"), "0");
                }
                std::fs::write(g(pids).join("pids.max"), l.pids.to_string())?;
                let _ = std::fs::write(g(cpu).join("cpu.shares"), l.cpu_shares.to_string());
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes itself into.
    pub fn procs_files(&self, tag: &str, name: &str) -> Vec<PathBuf> {
        self.dirs(tag, name)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Bytes of memory in use.
    pub fn memory_usage(&self, tag: &str, name: &str) -> u64 {
        let d = self.memory_dir(tag, name);
        let f = match self {
            Layout::V2 => "memory.current",
            Layout::V1 { .. } => "memory.usage_in_bytes",
        };
        read_u64(&d.join(f)).unwrap_or(0)
    }

    /// CPU time used, in nanoseconds.
    pub fn cpu_usage_ns(&self, tag: &str, name: &str) -> u64 {
        match self {
            Layout::V2 => {
                let d = Path::new(ROOT).join(format!("paas-{tag}")).join(name);
                std::fs::read_to_string(d.join("cpu.stat"))
                    .ok()
                    .and_then(|t| keyed(&t, "usage_usec"))
                    .map(|u| u * 1000)
                    .unwrap_or(0)
            }
            Layout::V1 { cpuacct, .. } => read_u64(
                &cpuacct
                    .join(format!("paas-{tag}"))
                    .join(name)
                    .join("cpuacct.usage"),
            )
            .unwrap_or(0),
        }
    }

    /// How many times the OOM killer killed a process of the group.
    pub fn oom_kills(&self, tag: &str, name: &str) -> u64 {
        let d = self.memory_dir(tag, name);
        let (file, key) = match self {
            Layout::V2 => ("memory.events", "oom_kill"),
            Layout::V1 { .. } => ("memory.oom_control", "oom_kill"),
        };
        std::fs::read_to_string(d.join(file))
            .ok()
            .and_then(|t| keyed(&t, key))
            .unwrap_or(0)
    }

    /// Pids of every process in the group.
    pub fn pids(&self, tag: &str, name: &str) -> Vec<i32> {
        let mut v = Vec::new();
        for f in self.procs_files(tag, name) {
            if let Ok(t) = std::fs::read_to_string(f) {
                v.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// SIGKILLs every process of the group until it is empty (bounded).
    /// v2 first writes `cgroup.kill` (Linux 5.14+): one atomic kill that a
    /// fork bomb cannot outrun.
    pub fn kill_all(&self, tag: &str, name: &str) {
        if *self == Layout::V2 {
            let kill = self.memory_dir(tag, name).join("cgroup.kill");
            if kill.exists() {
                let _ = std::fs::write(kill, "1");
            }
        }
        for _ in 0..200 {
            let pids = self.pids(tag, name);
            if pids.is_empty() {
                return;
            }
            for p in pids {
                if p > 1 {
                    // SAFETY: plain kill on a pid read from the group.
                    unsafe {
                        libc::kill(p, libc::SIGKILL);
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Kills the group's processes and removes the group.
    pub fn destroy(&self, tag: &str, name: &str) {
        self.kill_all(tag, name);
        for d in self.dirs(tag, name) {
            rmdir_retry(&d);
        }
    }

    /// Removes the DEA's whole subtree (every container group, then the
    /// parents), killing what runs there.
    pub fn destroy_all(&self, tag: &str) {
        for parent in self.parent_dirs(tag) {
            if let Ok(rd) = std::fs::read_dir(&parent) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let name = e.file_name().to_string_lossy().to_string();
                        self.destroy(tag, &name);
                    }
                }
            }
        }
        for parent in self.parent_dirs(tag) {
            rmdir_retry(&parent);
        }
    }
}

/// cgroup v2 controllers the containers' groups need, and would like.
const V2_REQUIRED: &[&str] = &["memory", "pids"];
const V2_OPTIONAL: &[&str] = &["cpu"];

/// Enables controller `c` for the children of `dir` (v2), unless it is.
fn enable(dir: &Path, c: &str) -> std::io::Result<()> {
    let f = dir.join("cgroup.subtree_control");
    let on = std::fs::read_to_string(&f)?;
    if on.split_whitespace().any(|x| x == c) {
        return Ok(());
    }
    std::fs::write(&f, format!("+{c}"))
}

fn mkdir(d: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

fn rmdir_retry(d: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir(d) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    tracing::warn!(dir = %d.display(), "cannot remove cgroup");
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The value of `key` in a `key value` per line file.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_keyed_files() {
        let l = Limits::for_memory(256, 512);
        assert_eq!(l.memory_bytes, 256 << 20);
        assert_eq!(l.cpu_shares, 256);
        assert_eq!(l.cpu_weight(), 25);
        assert_eq!(Limits::for_memory(1024, 1).cpu_weight(), 100);
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(t, "oom_kill"), Some(3));
        assert_eq!(keyed(t, "nope"), None);
    }
}
