//! The machine's processes as the tools that start and clean up the
//! platform see them (`cf dev`, `paas lab`, the tests' guards): every pid
//! in `/proc`, whether one is alive, which work under a directory, and
//! starting one in a session of its own.

use std::path::Path;

/// Every process's pid (what `/proc` lists).
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

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

/// Live processes (other than this one) whose working directory or
/// executable lies under `dir`.
pub fn pids_with_cwd_under(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let under = |link: &str| {
                std::fs::read_link(format!("/proc/{pid}/{link}"))
                    .map(|p| p.starts_with(dir))
                    .unwrap_or(false)
            };
            under("cwd") || under("exe")
        })
        .filter(|pid| process_alive(*pid))
        .collect()
}

/// Sends `sig` to `pid` (nothing when the pid does not fit a pid_t).
pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Starts `cmd`'s process in a session of its own (setsid): it outlives
/// whoever started it, and its terminal's hang-up or Ctrl-C.
pub fn own_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid(2) is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_by_its_working_dir_and_not_itself() {
        let dir = std::env::temp_dir().join(format!("procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&dir)
            .spawn()
            .expect("sleep");
        let pid = child.id();
        assert!(all_pids().contains(&pid));
        assert!(process_alive(pid));
        assert_eq!(pids_with_cwd_under(&dir), vec![pid]);
        signal(pid, libc::SIGKILL);
        let _ = child.wait();
        assert!(!process_alive(pid));
        assert!(pids_with_cwd_under(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
