//! The droplet cache's sweeper (docs/architecture.md §10.6): droplets are
//! cached under `<state_dir>/droplets/<sha256>.tgz` by the instance start
//! (`Agent::fetch_droplet`); this removes those no instance uses once they
//! are old or the cache is too big, so that disk use follows the live
//! instances.
//!
//! - A droplet of an instance on record (any state: starting, running,
//!   stopping, crashed and still listed) is never removed, and its mtime is
//!   refreshed at each sweep, so mtime means "last used" (LRU).
//! - Nothing younger than `droplet_cache_grace_s` is removed.
//! - An unused droplet goes once unused for `droplet_cache_max_age_s`; then,
//!   least recently used first, unused droplets go while the cache holds
//!   more than `droplet_cache_max_mb`.
//! - `tmp-*` files (downloads a crash interrupted) go after the grace.
//!
//! Removal happens with the instance registry locked
//! ([`Agent::with_droplets_in_use`]): a start records its instance (and
//! droplet) before it looks in the cache, so a droplet is either seen in use
//! here or moved away before the start looks (and then downloaded again).
//! The doomed files are renamed under the lock and deleted after it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::instances::Agent;

/// Prefix of partial downloads (`fetch_droplet`) and of files being removed.
const TMP_PREFIX: &str = "tmp-";
/// An in-use droplet's mtime is refreshed when older than this.
const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// What a file of the cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `<sha256>.tgz`: a droplet (the sha256 in lower case).
    Droplet(String),
    /// `tmp-*`: an unfinished download.
    Partial,
}

/// A file of the cache as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub modified: SystemTime,
}

/// The cache's bounds (from the DEA's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub grace: Duration,
    /// `None`: no age bound.
    pub max_age: Option<Duration>,
    /// `None`: no size bound.
    pub max_bytes: Option<u64>,
}

impl CachePolicy {
    pub fn from_config(cfg: &Config) -> CachePolicy {
        CachePolicy {
            grace: Duration::from_secs(cfg.droplet_cache_grace_s),
            max_age: (cfg.droplet_cache_max_age_s > 0)
                .then(|| Duration::from_secs(cfg.droplet_cache_max_age_s)),
            max_bytes: (cfg.droplet_cache_max_mb > 0)
                .then(|| cfg.droplet_cache_max_mb.saturating_mul(1024 * 1024)),
        }
    }
}

/// What a sweep removed, and what the cache holds after it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub removed: usize,
    pub removed_bytes: u64,
    pub kept: usize,
    pub kept_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("droplet cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("droplet cache sweep task: {0}")]
    Task(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A cache file's kind by its name; `None`: not the cache's (left alone).
pub fn classify(name: &str) -> Option<Kind> {
    if name.starts_with(TMP_PREFIX) {
        return Some(Kind::Partial);
    }
    let sha = name.strip_suffix(".tgz")?;
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Kind::Droplet(sha.to_ascii_lowercase()))
}

fn age(modified: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(modified).unwrap_or_default()
}

/// Pure: the files to remove. Partial downloads older than the grace;
/// droplets not in `in_use` and older than the grace that are unused
/// beyond `max_age`, then, least recently used first, while the cache (in
/// use or not) is above `max_bytes`.
pub fn plan<'a>(
    files: &'a [Cached],
    in_use: &HashSet<String>,
    now: SystemTime,
    policy: &CachePolicy,
) -> Vec<&'a Cached> {
    let mut out: Vec<&Cached> = files
        .iter()
        .filter(|f| f.kind == Kind::Partial && age(f.modified, now) >= policy.grace)
        .collect();
    let mut total: u64 = files
        .iter()
        .filter(|f| matches!(f.kind, Kind::Droplet(_)))
        .fold(0, |t, f| t.saturating_add(f.size));
    let mut unused: Vec<&Cached> = files
        .iter()
        .filter(|f| matches!(&f.kind, Kind::Droplet(sha) if !in_use.contains(sha)))
        .filter(|f| age(f.modified, now) >= policy.grace)
        .collect();
    unused.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
    for f in unused {
        let too_old = policy.max_age.is_some_and(|m| age(f.modified, now) > m);
        let too_big = policy.max_bytes.is_some_and(|m| total > m);
        if too_old || too_big {
            total = total.saturating_sub(f.size);
            out.push(f);
        }
    }
    out
}

/// Lists the cache; refreshes the mtime of droplets in `in_use` first.
fn list(dir: &Path, in_use: &HashSet<String>) -> Result<Vec<Cached>, SweepError> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(kind) = classify(&name) else {
            continue;
        };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        let mut modified = meta.modified().map_err(io(&path))?;
        if matches!(&kind, Kind::Droplet(sha) if in_use.contains(sha))
            && age(modified, now) > REFRESH_AFTER
        {
            let touched = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(now));
            match touched {
                Ok(()) => modified = now,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot refresh a cached droplet's mtime")
                }
            }
        }
        out.push(Cached {
            name,
            kind,
            size: meta.len(),
            modified,
        });
    }
    Ok(out)
}

/// One sweep of the agent's droplet cache. Blocking.
pub fn sweep_blocking(agent: &Agent) -> Result<SweepReport, SweepError> {
    let dir = agent.cfg.state_dir.join("droplets");
    let policy = CachePolicy::from_config(&agent.cfg);
    let in_use = agent.with_droplets_in_use(|s| s.clone());
    let files = list(&dir, &in_use)?;
    // Decide and move away with the registry locked (see the module's
    // comment); delete after.
    let doomed: Vec<(PathBuf, u64, bool)> = agent.with_droplets_in_use(|in_use| {
        let mut moved = Vec::new();
        for f in plan(&files, in_use, SystemTime::now(), &policy) {
            let from = dir.join(&f.name);
            let (to, droplet) = match f.kind {
                Kind::Partial => (from.clone(), false),
                Kind::Droplet(_) => {
                    let to = dir.join(format!("{TMP_PREFIX}gc-{}", uuid::Uuid::new_v4().simple()));
                    match std::fs::rename(&from, &to) {
                        Ok(()) => (to, true),
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                tracing::warn!(file = %from.display(), error = %e, "cannot remove a cached droplet");
                            }
                            continue;
                        }
                    }
                }
            };
            moved.push((to, f.size, droplet));
        }
        moved
    });
    let mut report = SweepReport::default();
    for f in files.iter().filter(|f| matches!(f.kind, Kind::Droplet(_))) {
        report.kept += 1;
        report.kept_bytes = report.kept_bytes.saturating_add(f.size);
    }
    for (path, size, droplet) in doomed {
        if droplet {
            // Out of the cache already (renamed).
            report.kept = report.kept.saturating_sub(1);
            report.kept_bytes = report.kept_bytes.saturating_sub(size);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                report.removed += 1;
                report.removed_bytes = report.removed_bytes.saturating_add(size);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    if report.removed > 0 {
        tracing::info!(
            removed = report.removed,
            removed_bytes = report.removed_bytes,
            kept = report.kept,
            kept_bytes = report.kept_bytes,
            "droplet cache swept"
        );
    } else {
        tracing::debug!(
            kept = report.kept,
            kept_bytes = report.kept_bytes,
            "droplet cache: nothing to remove"
        );
    }
    Ok(report)
}

/// One sweep, on a blocking thread.
pub async fn sweep(agent: &Arc<Agent>) -> Result<SweepReport, SweepError> {
    let a = agent.clone();
    tokio::task::spawn_blocking(move || sweep_blocking(&a))
        .await
        .map_err(|e| SweepError::Task(e.to_string()))?
}

/// Sweeps now and every `droplet_cache_sweep_interval_s` (none when 0); a
/// failed sweep is logged and the next one tries again.
pub fn spawn(agent: Arc<Agent>) -> Option<tokio::task::JoinHandle<()>> {
    let every = Duration::from_secs(agent.cfg.droplet_cache_sweep_interval_s);
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            if let Err(e) = sweep(&agent).await {
                tracing::warn!(error = %e, "droplet cache sweep failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::SimBackend;
    use crate::outbox::Outbox;
    use proto::InstanceState;

    const MIN: Duration = Duration::from_secs(60);
    const MB: u64 = 1024 * 1024;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000)
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn droplet(c: char, size: u64, age: Duration) -> Cached {
        Cached {
            name: format!("{}.tgz", sha(c)),
            kind: Kind::Droplet(sha(c)),
            size,
            modified: now() - age,
        }
    }

    fn partial(name: &str, age: Duration) -> Cached {
        Cached {
            name: name.into(),
            kind: Kind::Partial,
            size: 1,
            modified: now() - age,
        }
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            classify(&format!("{}.tgz", sha('A'))),
            Some(Kind::Droplet(sha('a')))
        );
        assert_eq!(classify("tmp-123"), Some(Kind::Partial));
        for other in ["abc.tgz", &sha('a'), &format!("{}.tgz", sha('z')), "x"] {
            assert_eq!(classify(other), None, "{other}");
        }
    }

    #[test]
    fn plan_keeps_what_is_used_young_or_within_bounds() {
        let files = vec![
            droplet('a', 100 * MB, 48 * 60 * MIN), // in use, very old
            droplet('b', 100 * MB, 48 * 60 * MIN), // unused, very old
            droplet('c', 100 * MB, 60 * MIN),      // unused, an hour
            droplet('d', 100 * MB, 30 * MIN),      // unused, half an hour
            droplet('e', 100 * MB, MIN),           // unused, within the grace
            partial("tmp-old", 60 * MIN),
            partial("tmp-new", MIN),
        ];
        let in_use: HashSet<String> = [sha('a')].into();
        let name = |c: char| format!("{}.tgz", sha(c));
        let policy = |max_age_min: Option<u64>, max_mb: Option<u64>| CachePolicy {
            grace: 10 * MIN,
            max_age: max_age_min.map(|m| Duration::from_secs(m * 60)),
            max_bytes: max_mb.map(|m| m * MB),
        };
        let table: Vec<(CachePolicy, Vec<String>)> = vec![
            // No bounds: only stale partial downloads go.
            (policy(None, None), vec!["tmp-old".into()]),
            // A day's age bound: the old unused droplet.
            (
                policy(Some(24 * 60), None),
                vec!["tmp-old".into(), name('b')],
            ),
            (
                policy(Some(45), None),
                vec!["tmp-old".into(), name('b'), name('c')],
            ),
            // 500 MB held, 350 allowed: the least recently used two go.
            (
                policy(None, Some(350)),
                vec!["tmp-old".into(), name('b'), name('c')],
            ),
            // Nothing may go that is in use or within the grace, even
            // when the cache stays above its size.
            (
                policy(None, Some(0)),
                vec!["tmp-old".into(), name('b'), name('c'), name('d')],
            ),
            (
                policy(Some(24 * 60), Some(1000)),
                vec!["tmp-old".into(), name('b')],
            ),
        ];
        for (p, want) in table {
            let got: Vec<String> = plan(&files, &in_use, now(), &p)
                .into_iter()
                .map(|f| f.name.clone())
                .collect();
            assert_eq!(got, want, "{p:?}");
        }
    }

    fn set_age(path: &Path, age: Duration) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now() - age))
            .expect("set mtime");
    }

    /// A real agent (sim backend) with an instance running from droplet A:
    /// the sweep removes old unused droplet B and a stale partial download,
    /// keeps A (in use, however old) and a fresh unused droplet C.
    #[tokio::test]
    async fn sweep_removes_unused_old_droplets_and_keeps_those_in_use() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cfg = Config {
            id: "dea-1".into(),
            state_dir: tmp.path().to_path_buf(),
            memory_mb: 1000,
            droplet_cache_grace_s: 600,
            droplet_cache_max_age_s: 3600,
            ..Config::default()
        };
        let dir = tmp.path().join("droplets");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let app = tmp.path().join("src");
        std::fs::create_dir_all(&app).expect("mkdir");
        std::fs::write(app.join("run.sh"), "echo hi").expect("write");
        let tgz =
            crate::archive::tar_gz(Vec::new(), &[("app", &app)], &[("staging_info.yml", b"{}")])
                .expect("tar");
        let a = crate::http::sha256_hex(&tgz);
        let a_path = dir.join(format!("{a}.tgz"));
        std::fs::write(&a_path, &tgz).expect("write");
        let b_path = dir.join(format!("{}.tgz", sha('b')));
        let c_path = dir.join(format!("{}.tgz", sha('c')));
        let partial = dir.join("tmp-0123");
        let stranger = dir.join("notes.txt");
        for p in [&b_path, &c_path, &partial, &stranger] {
            std::fs::write(p, b"droplet bytes").expect("write");
        }

        let (outbox, _rx) = Outbox::channel();
        let agent = Agent::new(cfg, Arc::new(SimBackend::default()), outbox);
        let req: proto::StartRequest = serde_json::from_value(serde_json::json!({
            "app_id": "app-1", "app_name": "web", "version": "v1", "index": 0,
            "droplet_uri": "http://127.0.0.1:9/unused", "droplet_sha256": a,
            "uris": [], "limits": {"memory_mb": 256, "disk_mb": 100, "fds": 10},
            "health_check": {"type": "process", "timeout_s": 5},
            "start_command": "./run.sh", "stack": "host"
        }))
        .expect("req");
        let id = agent.start(req);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while agent.state_of(&id) != Some(InstanceState::Running) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance is {:?}",
                agent.state_of(&id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Everything old but C (younger than the grace period).
        for p in [&a_path, &b_path, &partial, &stranger] {
            set_age(p, Duration::from_secs(2 * 3600));
        }
        set_age(&c_path, MIN);

        let report = sweep(&agent).await.expect("sweep");
        assert!(a_path.exists(), "the running instance's droplet stays");
        assert!(!b_path.exists(), "the old unused droplet goes");
        assert!(c_path.exists(), "a droplet within the grace period stays");
        assert!(!partial.exists(), "a stale partial download goes");
        assert!(stranger.exists(), "files not the cache's are left alone");
        assert_eq!((report.removed, report.kept), (2, 2), "{report:?}");
        // In use: its mtime was refreshed (least recently used = unused).
        let a_age = std::fs::metadata(&a_path)
            .and_then(|m| m.modified())
            .map(|m| age(m, SystemTime::now()))
            .expect("mtime");
        assert!(a_age < MIN, "{a_age:?}");
        // Nothing left to do.
        let again = sweep(&agent).await.expect("sweep");
        assert_eq!((again.removed, again.kept), (0, 2), "{again:?}");
        agent.shutdown().await;
    }
}
