//! Finding a lab's processes on the machine: by the directory they work
//! in (a host's components run in its state dir), by pid with a check
//! that the pid still is what was recorded.

use std::path::Path;

/// Whether a process with this pid exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // State is the field after the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Pids whose working directory or executable lies under `dir`.
pub fn pids_with_cwd_under(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let under = |link: &str| {
            std::fs::read_link(format!("/proc/{pid}/{link}"))
                .map(|p| p.starts_with(dir))
                .unwrap_or(false)
        };
        if (under("cwd") || under("exe")) && process_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is alive and its command line holds `needle` (a
/// recorded pid that was since reused by another program is not).
pub fn is_ours(pid: u32, needle: &str) -> bool {
    process_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(needle))
            .unwrap_or(false)
}

pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        unsafe {
            libc::kill(pid, sig);
        }
    }
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
