//! Starting container-inits in slots, and signalling them.

use super::*;

impl Inner {
    /// `container-init <rootfs> <uid> [userns] [etc=<dir>] [<ro_path>...]`.
    fn init_argv(&self, uid: u32) -> Vec<String> {
        let mut argv = vec![
            "dea".to_string(),
            "container-init".to_string(),
            self.rootfs.display().to_string(),
            uid.to_string(),
        ];
        if self.s.user_namespaces {
            argv.push("userns".to_string());
        }
        if let Some(e) = &self.etc {
            argv.push(format!("etc={}", e.display()));
        }
        argv.extend(
            self.s
                .ro_paths
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| p.display().to_string()),
        );
        argv
    }

    /// Starts a container-init in slot `n` (it builds the root file system,
    /// then waits for its process). Must run on a thread that lives as long
    /// as the backend (a runtime worker): the init gets SIGKILL when the
    /// thread that cloned it ends.
    pub(super) fn start_init(&self, n: u8) -> Result<spawn::Child> {
        let v2_group = match self.layout {
            Layout::V2 => self
                .layout
                .dirs(&self.s.tag, &cg_name(n))
                .into_iter()
                .next(),
            Layout::V1 { .. } => None,
        };
        spawn::spawn(
            &self.init_exe,
            &self.init_argv(UID_BASE + n as u32),
            &self.join_files(n),
            v2_group.as_deref(),
            &self.net.netns_path(n),
        )
    }

    /// The files the new (single-threaded) init writes `0` into to join
    /// the slot's cgroups. v1: `tasks`, which moves only the writing thread
    /// (here the whole process) and so skips the global threadgroup lock
    /// and its RCU grace period that a `cgroup.procs` write waits for
    /// (5–15 ms per spawn measured here). v2: `cgroup.procs` (only when
    /// `clone3(CLONE_INTO_CGROUP)` is refused).
    fn join_files(&self, n: u8) -> Vec<PathBuf> {
        let files = self.layout.procs_files(&self.s.tag, &cg_name(n));
        match self.layout {
            Layout::V2 => files,
            Layout::V1 { .. } => files
                .into_iter()
                .map(|f| f.with_file_name("tasks"))
                .collect(),
        }
    }
}

/// `dea-init` beside a `dea` binary (both built by `cargo build -p dea
/// --bins`): the same `container-init` entry without the rest of the DEA,
/// quicker to exec — when it is built from the same `init.rs` as this
/// code (a `cargo build --bin dea` leaves an old one behind). Falls back
/// to `exe`.
pub(super) fn small_init(exe: &Path) -> PathBuf {
    let Some(small) = exe
        .file_name()
        .is_some_and(|n| n == "dea")
        .then(|| exe.parent().map(|d| d.join("dea-init")))
        .flatten()
        .filter(|p| p.is_file())
    else {
        return exe.to_path_buf();
    };
    let theirs = std::process::Command::new(&small)
        .args(["container-init", "--fingerprint"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if theirs == init::fingerprint() {
        small
    } else {
        tracing::warn!(dea_init = %small.display(), "dea-init is from another build; using the dea binary as container-init (cargo build -p dea --bins)");
        exe.to_path_buf()
    }
}

/// Signals container inits (our own children: not reaped while listed).
pub(super) fn kill_pids(pids: &[i32], sig: i32) {
    for &p in pids.iter().filter(|&&p| p > 1) {
        // SAFETY: plain kill on a child pid we have not reaped yet.
        unsafe {
            libc::kill(p, sig);
        }
    }
}
