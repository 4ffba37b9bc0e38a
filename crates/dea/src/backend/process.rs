//! The `process` backend: plain child processes on a host port.
//!
//! Each process runs `bash -c <script>` in its own session and process group
//! (`setsid`), so `stop` signals the whole group: SIGTERM, then SIGKILL after
//! the grace period. Processes must not outlive the DEA: `kill_all` runs on
//! shutdown, and every child gets `PR_SET_PDEATHSIG(SIGKILL)`. PDEATHSIG fires
//! when the *thread* that forked the child exits; children are spawned from
//! tokio's runtime worker threads, which live as long as the runtime (that is,
//! the DEA), so the signal effectively fires when the DEA dies. The
//! limitation: only the group leader (bash, which execs a simple start
//! command, so usually the app itself) gets the signal, not processes the app
//! forked itself; those are killed by `kill_all` on an orderly shutdown.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

#[derive(Debug, Default)]
struct Tracked {
    pgids: Vec<i32>,
    /// Last CPU sample: (ticks, when).
    cpu_sample: Option<(u64, Instant)>,
}

#[derive(Debug, Default)]
pub struct ProcessBackend {
    containers: Mutex<HashMap<String, Tracked>>,
}

impl ProcessBackend {
    /// The container's live process groups. Groups found empty are
    /// forgotten, so that a recycled pid is never signalled later (a pid is
    /// not reused while its group still has members).
    fn pgids(&self, id: &str) -> Vec<i32> {
        let Ok(mut m) = self.containers.lock() else {
            return Vec::new();
        };
        let Some(t) = m.get_mut(id) else {
            return Vec::new();
        };
        t.pgids.retain(|&p| group_alive(p));
        t.pgids.clone()
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: plain syscall; pgid > 1 is checked so we never signal init or -1.
    if pgid > 1 {
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

async fn wait_gone(pgids: &[i32], deadline: tokio::time::Instant) -> bool {
    loop {
        if !pgids.iter().any(|&p| group_alive(p)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&spec.root)
                .await
                .map_err(|e| DeaError::io(&spec.root, e))?;
            if let Ok(mut m) = self.containers.lock() {
                m.insert(spec.id.clone(), Tracked::default());
            }
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
            let mut cmd = tokio::process::Command::new("bash");
            cmd.arg("-c")
                .arg(&process.script)
                .env_clear()
                .envs(process.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .current_dir(&process.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // SAFETY: only async-signal-safe calls between fork and exec.
            let parent = std::process::id() as libc::pid_t;
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    );
                    if libc::getppid() != parent {
                        libc::_exit(137);
                    }
                    Ok(())
                });
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| DeaError::Backend(format!("cannot spawn bash: {e}")))?;
            let pid = child.id();
            if let Some(p) = pid {
                if let Ok(mut m) = self.containers.lock() {
                    m.entry(container.id.clone())
                        .or_default()
                        .pgids
                        .push(p as i32);
                }
            }
            let stdout = child.stdout.take().map(|s| Box::pin(s) as BoxRead);
            let stderr = child.stderr.take().map(|s| Box::pin(s) as BoxRead);
            let wait: BoxFut<'static, Result<ExitInfo>> = Box::pin(async move {
                let st = child
                    .wait()
                    .await
                    .map_err(|e| DeaError::Backend(format!("wait: {e}")))?;
                Ok(ExitInfo {
                    code: st.code(),
                    signal: st.signal(),
                })
            });
            Ok(Spawned {
                pid,
                stdout,
                stderr,
                wait,
            })
        })
    }

    fn stop<'a>(&'a self, container: &'a Container, grace: Duration) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            let pgids = self.pgids(&container.id);
            for &p in &pgids {
                signal_group(p, libc::SIGTERM);
            }
            let now = tokio::time::Instant::now();
            if !wait_gone(&pgids, now + grace).await {
                tracing::info!(container = %container.id, "grace period over, sending SIGKILL");
                for &p in &pgids {
                    signal_group(p, libc::SIGKILL);
                }
                wait_gone(&pgids, tokio::time::Instant::now() + Duration::from_secs(5)).await;
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            for p in self.pgids(&container.id) {
                signal_group(p, libc::SIGKILL);
            }
            if let Ok(mut m) = self.containers.lock() {
                m.remove(&container.id);
            }
            match tokio::fs::remove_dir_all(&container.root).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(DeaError::io(&container.root, e)),
            }
        })
    }

    fn stats<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>> {
        Box::pin(async move {
            let pgids = self.pgids(&container.id);
            let root = container.root.clone();
            let (mem, ticks, disk) = tokio::task::spawn_blocking(move || {
                let (mem, ticks) = proc_usage(&pgids);
                (mem, ticks, crate::safefs::dir_size(&root))
            })
            .await
            .map_err(|e| DeaError::Backend(format!("stats task: {e}")))?;
            let now = Instant::now();
            let hz = clock_ticks();
            let uptime = now.duration_since(container.created);
            let mut cpu = ticks as f64 / hz / uptime.as_secs_f64().max(0.001);
            if let Ok(mut m) = self.containers.lock() {
                if let Some(t) = m.get_mut(&container.id) {
                    if let Some((prev, at)) = t.cpu_sample {
                        let dt = now.duration_since(at).as_secs_f64();
                        if dt > 0.05 {
                            cpu = ticks.saturating_sub(prev) as f64 / hz / dt;
                        }
                    }
                    t.cpu_sample = Some((ticks, now));
                }
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
        if let Ok(m) = self.containers.lock() {
            for t in m.values() {
                for &p in &t.pgids {
                    signal_group(p, libc::SIGKILL);
                }
            }
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Parses `/proc/<pid>/stat` into (pgrp, utime+stime ticks, rss pages).
pub(crate) fn parse_stat(text: &str) -> Option<(i32, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss: u64 = f.get(21)?.parse().ok()?;
    Some((pgrp, utime + stime, rss))
}

/// Resident bytes and CPU ticks of every process in the given groups.
fn proc_usage(pgids: &[i32]) -> (u64, u64) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let (mut mem, mut ticks) = (0, 0);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        if let Some((pgrp, t, rss)) = parse_stat(&text) {
            if pgids.contains(&pgrp) {
                mem += rss * page;
                ticks += t;
            }
        }
    }
    (mem, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let s = "123 (my (odd) app) S 1 123 123 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 500 1000000 250 18446744073709551615";
        assert_eq!(parse_stat(s), Some((123, 10, 250)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[tokio::test]
    async fn runs_and_stops_a_process_group() {
        let tmp = tempfile::tempdir().expect("tmp");
        let b = ProcessBackend::default();
        let c = b
            .create(ContainerSpec {
                id: "c1".into(),
                root: tmp.path().join("c1"),
                memory_mb: 64,
                disk_mb: 64,
                egress: None,
            })
            .await
            .expect("create");
        let spec = ProcessSpec {
            script: "echo hello; sleep 30 & exec sleep 30".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: c.root.clone(),
        };
        let sp = b.spawn(&c, spec).await.expect("spawn");
        let wait = tokio::spawn(sp.wait);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let st = b.stats(&c).await.expect("stats");
        assert!(st.mem > 0, "{st:?}");
        b.stop(&c, Duration::from_secs(5)).await.expect("stop");
        let exit = wait.await.expect("join").expect("wait");
        assert_eq!(exit.signal, Some(libc::SIGTERM));
        assert!(b.pgids("c1").is_empty());
        b.destroy(&c).await.expect("destroy");
        assert!(!c.root.exists());
    }
}
