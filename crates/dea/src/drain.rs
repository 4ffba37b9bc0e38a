//! `dea drain [--config FILE]`: asks the DEA running on that config's state
//! dir to drain (the same as sending it SIGUSR2). The running DEA writes its
//! pid to `<state_dir>/dea.pid`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a DEA with this state dir keeps its pid.
pub fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("dea.pid")
}

/// Written at start (so `dea drain` finds the process).
pub fn write_pid_file(state_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let path = pid_file(state_dir);
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, &path)
}

/// Removed at exit, if it is still ours.
pub fn remove_pid_file(state_dir: &Path) {
    let path = pid_file(state_dir);
    if read_pid(&path) == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether the pid still runs a `dea` binary (a stale pid file may name a
/// reused pid, which SIGUSR2 would kill).
fn is_dea(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => raw
            .split(|b| *b == 0)
            .next()
            .and_then(|arg0| std::str::from_utf8(arg0).ok())
            .is_some_and(|arg0| arg0.rsplit('/').next() == Some("dea")),
        // No /proc: trust the pid file.
        Err(_) => alive(pid),
    }
}

/// `dea drain [--config FILE] [--wait SECONDS]`: SIGUSR2 to the DEA on that
/// config's state dir; with `wait`, until it exits. Returns the exit code.
pub fn command(config: Option<&Path>, wait: Option<u64>) -> u8 {
    let cfg = match crate::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dea drain: {e}");
            return 2;
        }
    };
    let path = pid_file(&cfg.state_dir);
    let Some(pid) = read_pid(&path).filter(|p| alive(*p) && is_dea(*p)) else {
        eprintln!(
            "dea drain: no running DEA found ({} missing or stale)",
            path.display()
        );
        return 1;
    };
    // SAFETY: kill(2) on a pid read from our own pid file.
    if unsafe { libc::kill(pid, libc::SIGUSR2) } != 0 {
        eprintln!("dea drain: cannot signal pid {pid}");
        return 1;
    }
    println!("Draining DEA (pid {pid})...");
    if let Some(secs) = wait {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while alive(pid) && is_dea(pid) {
            if Instant::now() > deadline {
                eprintln!("dea drain: still running after {secs}s");
                return 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("DEA drained and stopped.");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip_and_stale_pids() {
        let dir = tempfile::tempdir().expect("tmp");
        write_pid_file(dir.path()).expect("write");
        assert_eq!(
            read_pid(&pid_file(dir.path())),
            Some(std::process::id() as i32)
        );
        // The test binary is not a `dea`: a pid file naming it is stale.
        assert!(!is_dea(std::process::id() as i32));
        remove_pid_file(dir.path());
        assert!(!pid_file(dir.path()).exists());
    }
}
