//! The deployment timeline: every step a deployer takes, appended to
//! `events.jsonl` in the deployment's state dir and synced before the step
//! after it, so that it survives a deployer that is killed (`paas events`
//! prints it; a restarted deployer resumes from it). One deployer at a
//! time holds the state dir's lock.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::Role;
use super::plan::{Change, Done};
use super::rollout::Phase;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum What {
    /// A deployment began: its release, and whether it resumes one the
    /// timeline left unfinished.
    Started {
        release: String,
        resumed: bool,
    },
    Wave {
        n: usize,
        group: usize,
        canary: bool,
        rollback: bool,
    },
    /// A host's step about to be applied (recorded first: a deployer
    /// killed during the step still knows the host may have changed).
    Applying {
        host: String,
        group: usize,
        canary: bool,
        rollback: bool,
        changes: Vec<Change>,
    },
    /// One host's step: its changes, how it went, what the agent said.
    Step {
        host: String,
        group: usize,
        canary: bool,
        rollback: bool,
        changes: Vec<Change>,
        ok: bool,
        output: String,
    },
    Retired {
        host: String,
        role: Role,
    },
    Phase {
        phase: Phase,
        #[serde(default)]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds with milliseconds (`1796640168.940`).
    pub at: String,
    /// The deployment's number in this timeline (1, 2, ...).
    pub deployment: u64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("deployment state {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("another deployer is running this deployment (it holds {path})")]
    Busy { path: String },
}

/// The timeline of one deployment's state dir, locked for this process.
pub struct Timeline {
    path: PathBuf,
    file: File,
    events: Vec<Event>,
    _lock: File,
}

/// The newest deployment in a timeline, as a restarted deployer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Last {
    pub deployment: u64,
    pub release: String,
    pub phase: Phase,
    /// Changes it made (in order), before any rollback.
    pub done: Vec<Done>,
    /// Changes its rollback made.
    pub undone: Vec<Done>,
}

impl Timeline {
    /// Opens (creating) `dir`'s timeline and takes its lock; refuses when
    /// another deployer holds it.
    pub fn open(dir: &Path) -> Result<Timeline, TimelineError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TimelineError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // SAFETY: flock(2) on a descriptor this function owns.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(TimelineError::Busy {
                path: lock_path.display().to_string(),
            });
        }
        let path = dir.join("events.jsonl");
        let events = read_events(&path).map_err(io(&path))?;
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // A torn last line (a deployer killed mid-write) is ended, so the
        // next event starts a line of its own.
        let torn = std::fs::read(&path)
            .map(|b| b.last().is_some_and(|c| *c != b'\n'))
            .unwrap_or(false);
        if torn {
            file.write_all(b"\n").map_err(io(&path))?;
        }
        Ok(Timeline {
            path,
            file,
            events,
            _lock: lock,
        })
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Appends an event and syncs it.
    pub fn record(&mut self, deployment: u64, what: What) -> Result<(), TimelineError> {
        let e = Event {
            at: chrono_now(),
            deployment,
            what,
        };
        let mut line = serde_json::to_string(&e).map_err(|e| TimelineError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        let io = |source| TimelineError::Io {
            path: self.path.display().to_string(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.events.push(e);
        Ok(())
    }

    /// The newest deployment, if any.
    pub fn last(&self) -> Option<Last> {
        last(&self.events)
    }
}

/// The newest deployment of a list of events.
pub fn last(events: &[Event]) -> Option<Last> {
    let n = events.iter().map(|e| e.deployment).max()?;
    let mut out = Last {
        deployment: n,
        release: String::new(),
        phase: Phase::Planned,
        done: Vec::new(),
        undone: Vec::new(),
    };
    for e in events.iter().filter(|e| e.deployment == n) {
        match &e.what {
            What::Started { release, .. } => {
                out.release = release.clone();
                out.phase = Phase::Updating;
            }
            What::Phase { phase, .. } => out.phase = *phase,
            // Forward, a step counts once it may have changed its host
            // (it is rolled back even if the deployer died during it);
            // backward, once it is known to have worked (else it is
            // reverted again).
            What::Applying {
                host,
                group,
                canary,
                rollback: false,
                changes,
            } => push(&mut out.done, host, *group, *canary, changes),
            What::Step {
                host,
                group,
                canary,
                rollback: true,
                changes,
                ok: true,
                ..
            } => push(&mut out.undone, host, *group, *canary, changes),
            _ => {}
        }
    }
    Some(out)
}

fn push(list: &mut Vec<Done>, host: &str, group: usize, canary: bool, changes: &[Change]) {
    for c in changes {
        list.push(Done {
            group,
            canary,
            host: host.to_string(),
            change: c.clone(),
        });
    }
}

/// Reads a timeline file (none: empty); a torn last line (a deployer
/// killed mid-write) is skipped.
pub fn read_events(path: &Path) -> std::io::Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(e) = serde_json::from_str::<Event>(&line) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The timeline as `paas events` prints it.
pub fn render(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let text = match &e.what {
            What::Started { release, resumed } => format!(
                "{} release {release}",
                if *resumed { "resumed" } else { "started" }
            ),
            What::Wave {
                n,
                group,
                canary,
                rollback,
            } => format!(
                "{}wave {n} (group {}{})",
                if *rollback { "rollback " } else { "" },
                group + 1,
                if *canary { ", canary" } else { "" }
            ),
            What::Step {
                host,
                changes,
                ok,
                output,
                ..
            } => {
                let ch: Vec<String> = changes.iter().map(Change::to_string).collect();
                format!(
                    "  {host}: {} {}{}",
                    ch.join(", "),
                    if *ok { "ok" } else { "FAILED" },
                    if output.is_empty() {
                        String::new()
                    } else {
                        format!(": {output}")
                    }
                )
            }
            What::Applying { host, .. } => format!("  {host}: applying"),
            What::Retired { host, role } => format!("  {host}: {role} retired"),
            What::Phase { phase, reason } => format!(
                "{}{}",
                serde_json::to_value(phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        };
        out.push_str(&format!("{} #{} {text}\n", e.at, e.deployment));
    }
    out
}

fn chrono_now() -> String {
    // Seconds since the epoch are enough to order and read a timeline;
    // the platform's crates keep chrono out of this tool.
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_deployer_at_a_time_and_the_record_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Timeline::open(dir.path()).expect("open");
        assert!(matches!(
            Timeline::open(dir.path()),
            Err(TimelineError::Busy { .. })
        ));
        t.record(
            1,
            What::Started {
                release: "v2".into(),
                resumed: false,
            },
        )
        .expect("record");
        t.record(
            1,
            What::Applying {
                host: "h1".into(),
                group: 0,
                canary: true,
                rollback: false,
                changes: vec![Change {
                    role: Role::Nats,
                    from: Some("v1".into()),
                    to: "v2".into(),
                }],
            },
        )
        .expect("record");
        drop(t);
        // A torn line from a killed deployer is skipped.
        let mut f = File::options()
            .append(true)
            .open(dir.path().join("events.jsonl"))
            .expect("open");
        f.write_all(b"{\"at\": \"1\", \"deployment\": 1, \"ki")
            .expect("write");
        let mut t = Timeline::open(dir.path()).expect("reopen after the first let go");
        t.record(
            1,
            What::Phase {
                phase: Phase::Updating,
                reason: None,
            },
        )
        .expect("record after a torn line");
        let t = {
            drop(t);
            Timeline::open(dir.path()).expect("reopen")
        };
        assert_eq!(t.events().len(), 3, "the torn line alone is lost");
        let last = t.last().expect("last");
        assert_eq!(last.phase, Phase::Updating);
        assert_eq!(last.release, "v2");
        assert_eq!(last.done.len(), 1);
        assert_eq!(last.done[0].host, "h1");
        assert!(render(t.events()).contains("#1 started release v2\n"));
    }
}
