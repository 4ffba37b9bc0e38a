//! The test kit every crate's tests share (dev-only): a private
//! nats-server (or a cluster of three) per test, a Postgres database per
//! test, polling with deadlines, the rule for tests that need root, and
//! hostile archives.
//!
//! Nothing here is used by the platform itself.

pub mod archives;
mod nats;
mod pg;
mod root;
mod wait;

pub use nats::{write_private, NatsCluster, NatsServer, CLUSTER_NODES};
pub use pg::{PgDb, PG_ADMIN_URL};
pub use root::{in_ci, is_root, require_root, say, skip_or_fail, verdict, Verdict};
pub use wait::{wait_file, wait_for, wait_for_blocking, wait_port};

/// A free TCP port on 127.0.0.1, bound then released. Only for a process
/// that must be told its port before it starts and keep it across restarts
/// (a restarted controller); everything else binds port 0 itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The last `n` lines of a log file (empty when unreadable), for failure
/// messages.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A KiB field (`VmRSS:`, `VmHWM:` ...) of `/proc/<pid>/status`; `pid` may
/// be `self`. `None` when the process or the field is gone.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc), `None` when
/// it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmRSS:")
}

/// Every file under `dir` (recursively) with its size; none when `dir` is
/// missing.
pub fn files_under(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((p.display().to_string(), len));
        }
    }
    out
}
