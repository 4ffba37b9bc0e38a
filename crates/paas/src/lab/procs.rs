//! Finding a lab's processes on the machine: by the directory they work
//! in (a host's components run in its state dir), by pid with a check
//! that the pid still is what was recorded.

use std::path::Path;

pub use proto::procs::{pids_with_cwd_under, process_alive, signal};

/// Whether `pid` is alive and its command line holds `needle` (a
/// recorded pid that was since reused by another program is not).
pub fn is_ours(pid: u32, needle: &str) -> bool {
    process_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(needle))
            .unwrap_or(false)
}

/// The namespace tags of the containers a DEA state dir names (what
/// `dea container-cleanup` takes).
pub fn container_tags(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("namespaces.tag")).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}
