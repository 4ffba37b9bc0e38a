//! Process helpers for clean-up guards: signals, liveness, and finding
//! processes by working directory.

use std::path::Path;

pub use proto::procs::{pids_with_cwd_under, process_alive, signal};

/// SIGKILLs every process working under `dir`.
pub fn kill_all_under(dir: &Path) {
    for pid in pids_with_cwd_under(dir) {
        signal(pid, libc::SIGKILL);
    }
}

/// Pids whose command line mentions `needle` (e.g. a state dir path).
pub fn pids_with_cmdline_containing(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let me = std::process::id();
    for pid in proto::procs::all_pids() {
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && process_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Host pids of an app's instance processes with their `CF_INSTANCE_INDEX`,
/// found by environment (`VCAP_APPLICATION` naming the app's guid), so that
/// it works on every backend, including apps in their own PID namespace
/// (whose own pid means nothing on the host). Container inits are skipped.
pub fn app_instance_pids(app_guid: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for pid in proto::procs::all_pids() {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let env = String::from_utf8_lossy(&raw);
        let mut index = None;
        let mut ours = false;
        for kv in env.split('\0') {
            if let Some(i) = kv.strip_prefix("CF_INSTANCE_INDEX=") {
                index = i.parse::<u32>().ok();
            }
            if kv.starts_with("VCAP_APPLICATION=") && kv.contains(app_guid) {
                ours = true;
            }
        }
        let init = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("container-init"))
            .unwrap_or(false);
        if let (true, Some(i), false) = (ours, index, init) {
            if process_alive(pid) {
                out.push((i, pid));
            }
        }
    }
    out.sort_unstable();
    out
}

/// CPU time (user + system) process `pid` has used, in clock ticks
/// (fields 14 and 15 of /proc/<pid>/stat); `None` when it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces: fields start after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
