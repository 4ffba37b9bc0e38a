//! Blob garbage collection (docs/architecture.md §6.8): disk use follows
//! live apps.
//!
//! A pass (every `blob_gc_interval_s`, and once at start-up):
//!
//! 1. expires each app's READY packages and STAGED droplets beyond the
//!    newest `max_packages_per_app` / `max_droplets_per_app` (CF's
//!    `max_valid_packages_stored` / `max_staged_droplets_stored`, 5), never
//!    the current droplet, its package or a package being staged: their
//!    rows are deleted, so their blobs are no longer referenced;
//! 2. lists the blobstore's files with their mtimes, *then* asks the
//!    database what it references (a blob committed after the listing is
//!    young, so the order cannot lose one);
//! 3. removes what the planners choose: blobs no row names, build caches of
//!    deleted apps, stale temp files, and resource-cache files beyond the
//!    pool's age and size bounds (least recently used first). Nothing
//!    younger than `blob_gc_grace_s` (by mtime) is ever removed: a blob
//!    uploaded or staged moments ago, whose row is not written yet, stays.
//!    Each removal re-checks the file's age while no commit is in progress
//!    ([`BlobStore::remove_if_idle`]).
//!
//! The planners are pure functions (tested by tables below); the executor
//! lists, asks the store and deletes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::blobstore::{
    self, age, BlobStore, SharedBlobs, BLOBS_DIR, CACHE_DIR, RESOURCES_DIR, TMP_DIR,
};
use crate::config::Config;
use crate::context::Ctx;
use crate::store::{BlobVersion, Store, StoreError};

/// A file of the blobstore as listed: its name in its directory, size and
/// mtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// What the collector keeps (from the controller's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Nothing younger than this (by mtime) is removed.
    pub grace: Duration,
    /// READY packages / STAGED droplets kept per app (0 = all).
    pub keep_packages: usize,
    pub keep_droplets: usize,
    /// Resource-cache files unused for longer go (`None`: no age bound).
    pub resource_max_age: Option<Duration>,
    /// Resource-cache bytes kept at most (`None`: no size bound).
    pub resource_max_bytes: Option<u64>,
}

impl Policy {
    pub fn from_config(cfg: &Config) -> Policy {
        Policy {
            grace: Duration::from_secs(cfg.blob_gc_grace_s),
            keep_packages: cfg.max_packages_per_app,
            keep_droplets: cfg.max_droplets_per_app,
            resource_max_age: (cfg.resource_pool_max_age_s > 0)
                .then(|| Duration::from_secs(cfg.resource_pool_max_age_s)),
            resource_max_bytes: (cfg.resource_pool_max_mb > 0)
                .then(|| cfg.resource_pool_max_mb.saturating_mul(1024 * 1024)),
        }
    }
}

/// Files and bytes removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub files: usize,
    pub bytes: u64,
}

impl Removed {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Rows of old packages and droplets deleted.
    pub packages_expired: usize,
    pub droplets_expired: usize,
    /// Content-addressed blobs no row names.
    pub blobs: Removed,
    /// Build caches of deleted apps.
    pub caches: Removed,
    /// Temp files left by interrupted uploads.
    pub tmp: Removed,
    /// Resource-cache files beyond its bounds.
    pub resources: Removed,
    /// What went from the shared blobstore (blobs, caches and resource
    /// files together), by the lease holder's pass.
    pub shared: Removed,
    /// Whether this pass held the `blob-gc` lease (or needed none) and so
    /// expired old versions and swept the shared blobstore.
    pub led: bool,
}

impl Report {
    pub fn files(&self) -> usize {
        self.blobs.files
            + self.caches.files
            + self.tmp.files
            + self.resources.files
            + self.shared.files
    }

    pub fn bytes(&self) -> u64 {
        [
            self.blobs,
            self.caches,
            self.tmp,
            self.resources,
            self.shared,
        ]
        .iter()
        .fold(0u64, |a, r| a.saturating_add(r.bytes))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot list {path}: {source}")]
    List {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: String,
        #[source]
        source: blobstore::BlobError,
    },
    #[error("blob gc task: {0}")]
    Task(String),
    #[error(transparent)]
    Shared(#[from] blobstore::SharedError),
}

/// The lease under which one controller at a time expires old versions
/// and sweeps the shared blobstore.
pub const LEASE: &str = "blob-gc";

// ---- planners (pure) ------------------------------------------------------

/// The files whose key (`key(name)`; `None`: not a file of this kind, kept)
/// is not in `referenced` and that are at least `grace` old at `now`.
pub fn plan_unreferenced<'a>(
    files: &'a [FileInfo],
    referenced: &HashSet<String>,
    key: impl Fn(&str) -> Option<String>,
    now: SystemTime,
    grace: Duration,
) -> Vec<&'a FileInfo> {
    files
        .iter()
        .filter(|f| age(f.modified, now) >= grace)
        .filter(|f| key(&f.name).is_some_and(|k| !referenced.contains(&k)))
        .collect()
}

/// A blob's key: its name when it is a sha256 (64 hex digits, lower case).
pub fn blob_key(name: &str) -> Option<String> {
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| name.to_ascii_lowercase())
}

/// A build cache's key: the app guid of `<guid>.tgz`.
pub fn cache_key(name: &str) -> Option<String> {
    name.strip_suffix(".tgz")
        .filter(|g| !g.is_empty())
        .map(str::to_string)
}

/// A bounded cache (the resource pool): the files older than `max_age`,
/// then, least recently modified first, as many as it takes to bring the
/// total within `max_bytes`. Nothing younger than `grace` goes, even when
/// the cache stays above its size.
pub fn plan_bounded(
    files: &[FileInfo],
    now: SystemTime,
    grace: Duration,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
) -> Vec<&FileInfo> {
    let mut by_age: Vec<&FileInfo> = files.iter().collect();
    // Oldest first; ties by name, so that plans are stable.
    by_age.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
    let mut total: u64 = files.iter().fold(0, |t, f| t.saturating_add(f.size));
    let mut out = Vec::new();
    for f in by_age {
        let old = age(f.modified, now);
        if old < grace {
            continue;
        }
        let too_old = max_age.is_some_and(|m| old > m);
        let too_big = max_bytes.is_some_and(|m| total > m);
        if too_old || too_big {
            total = total.saturating_sub(f.size);
            out.push(f);
        }
    }
    out
}

/// The versions (packages or droplets of one kind) that expire: per app,
/// all but the newest `keep` by creation (ties by guid), never one in
/// `protected`. `keep` 0 keeps all.
pub fn plan_expired(
    versions: &[BlobVersion],
    keep: usize,
    protected: &HashSet<String>,
) -> Vec<String> {
    if keep == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&BlobVersion> = versions.iter().collect();
    // Per app, newest first.
    sorted.sort_by(|a, b| {
        a.app_guid
            .cmp(&b.app_guid)
            .then(b.created_at.cmp(&a.created_at))
            .then(b.guid.cmp(&a.guid))
    });
    let mut out = Vec::new();
    let mut app: Option<&str> = None;
    let mut seen = 0usize;
    for v in sorted {
        if app != Some(v.app_guid.as_str()) {
            app = Some(v.app_guid.as_str());
            seen = 0;
        }
        seen += 1;
        if seen > keep && !protected.contains(&v.guid) {
            out.push(v.guid.clone());
        }
    }
    out
}

// ---- executor -------------------------------------------------------------

/// One pass with the controller's config, as one of possibly several
/// controllers: the shared work under the [`LEASE`].
pub async fn run_once(ctx: &Ctx) -> Result<Report, GcError> {
    let ttl_s = i64::try_from(ctx.cfg.blob_gc_interval_s.max(60)).unwrap_or(i64::MAX);
    let lease = Lease {
        holder: &ctx.id,
        ttl_s,
    };
    collect_as(
        &ctx.store,
        &ctx.blobs,
        &Policy::from_config(&ctx.cfg),
        Some(lease),
    )
    .await
}

/// Who asks for the [`LEASE`], and for how long (a pass's interval: the
/// holder keeps it from one pass to the next; when it is gone another
/// controller's next pass takes over).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub holder: &'a str,
    pub ttl_s: i64,
}

/// One pass as the only controller (no lease asked for).
pub async fn collect(store: &Store, blobs: &BlobStore, policy: &Policy) -> Result<Report, GcError> {
    collect_as(store, blobs, policy, None).await
}

/// One pass: expire old versions and sweep the shared blobstore (when
/// holding `lease`, or with none), then list, ask the store and remove
/// local files. Removing is safe in any number of controllers at once
/// (every removal re-checks the age); the lease only spares the database
/// N copies of the same work.
pub async fn collect_as(
    store: &Store,
    blobs: &BlobStore,
    policy: &Policy,
    lease: Option<Lease<'_>>,
) -> Result<Report, GcError> {
    let led = match lease {
        None => true,
        Some(l) => store
            .acquire_lease(LEASE, l.holder, chrono::Utc::now().timestamp(), l.ttl_s)
            .await?
            .is_some(),
    };
    let mut report = Report {
        led,
        ..Report::default()
    };
    if report.led {
        expire_versions(store, policy, &mut report).await?;
        if let Some(shared) = blobs.shared() {
            report.shared = sweep_shared(store, shared, policy).await?;
        }
    }
    local_pass(store, blobs, policy, &mut report).await?;
    if report.files() > 0 || report.packages_expired > 0 || report.droplets_expired > 0 {
        tracing::info!(
            packages_expired = report.packages_expired,
            droplets_expired = report.droplets_expired,
            blobs = report.blobs.files,
            blob_bytes = report.blobs.bytes,
            caches = report.caches.files,
            cache_bytes = report.caches.bytes,
            tmp = report.tmp.files,
            tmp_bytes = report.tmp.bytes,
            resources = report.resources.files,
            resource_bytes = report.resources.bytes,
            shared = report.shared.files,
            shared_bytes = report.shared.bytes,
            bytes = report.bytes(),
            "blob gc removed unreferenced files"
        );
    } else {
        tracing::debug!("blob gc: nothing to remove");
    }
    Ok(report)
}

/// Deletes the rows of each app's packages and droplets beyond the newest
/// kept (their blobs go once nothing names them).
async fn expire_versions(
    store: &Store,
    policy: &Policy,
    report: &mut Report,
) -> Result<(), GcError> {
    let versions = store.blob_versions().await?;
    for guid in plan_expired(
        &versions.droplets,
        policy.keep_droplets,
        &versions.protected,
    ) {
        if store.delete_expired_droplet(&guid).await? {
            tracing::debug!(droplet = %guid, "old droplet expired");
            report.droplets_expired += 1;
        }
    }
    for guid in plan_expired(
        &versions.packages,
        policy.keep_packages,
        &versions.protected,
    ) {
        if store.delete_expired_package(&guid).await? {
            tracing::debug!(package = %guid, "old package expired");
            report.packages_expired += 1;
        }
    }
    Ok(())
}

/// The shared blobstore's objects as files of a directory (`dir/` keys,
/// named by what follows; `touched_at` as their mtime).
async fn list_shared(shared: &SharedBlobs, dir: &str) -> Result<Vec<FileInfo>, GcError> {
    let prefix = format!("{dir}/");
    Ok(shared
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|e| {
            let name = e.key.strip_prefix(&prefix)?.to_string();
            let secs = u64::try_from(e.touched_at).unwrap_or(0);
            Some(FileInfo {
                name,
                size: e.size,
                modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            })
        })
        .collect())
}

/// The shared blobstore's pass, with the planners of the local one:
/// unreferenced blobs, caches of deleted apps, resource files beyond the
/// pool's bounds. Listed before the database is asked.
async fn sweep_shared(
    store: &Store,
    shared: &SharedBlobs,
    policy: &Policy,
) -> Result<Removed, GcError> {
    let blob_files = list_shared(shared, BLOBS_DIR).await?;
    let cache_files = list_shared(shared, CACHE_DIR).await?;
    let resource_files = list_shared(shared, RESOURCES_DIR).await?;
    let referenced = store.referenced_blobs().await?;
    let apps = store.app_guids().await?;
    let now = SystemTime::now();
    let mut doomed: Vec<(&str, &FileInfo)> = Vec::new();
    for f in plan_unreferenced(&blob_files, &referenced, blob_key, now, policy.grace) {
        doomed.push((BLOBS_DIR, f));
    }
    for f in plan_unreferenced(&cache_files, &apps, cache_key, now, policy.grace) {
        doomed.push((CACHE_DIR, f));
    }
    for f in plan_bounded(
        &resource_files,
        now,
        policy.grace,
        policy.resource_max_age,
        policy.resource_max_bytes,
    ) {
        doomed.push((RESOURCES_DIR, f));
    }
    let before = chrono::Utc::now()
        .timestamp()
        .saturating_sub(i64::try_from(policy.grace.as_secs()).unwrap_or(i64::MAX));
    let mut removed = Removed::default();
    for (dir, f) in doomed {
        let key = format!("{dir}/{}", f.name);
        if let Some(bytes) = shared.remove_if_idle(&key, before).await? {
            tracing::debug!(key = %key, bytes, "blob gc removed a shared object");
            removed.add(bytes);
        }
    }
    Ok(removed)
}

/// This controller's own files: listed, then the database asked, then the
/// planners' choice removed.
async fn local_pass(
    store: &Store,
    blobs: &BlobStore,
    policy: &Policy,
    report: &mut Report,
) -> Result<(), GcError> {
    // Listed before the database is asked (see the module's comment).
    let blob_files = list(blobs.dir(BLOBS_DIR)).await?;
    let cache_files = list(blobs.dir(CACHE_DIR)).await?;
    let tmp_files = list(blobs.dir(TMP_DIR)).await?;
    let resource_files = list(blobs.dir(RESOURCES_DIR)).await?;
    let referenced = store.referenced_blobs().await?;
    let apps = store.app_guids().await?;
    let now = SystemTime::now();

    let doomed = plan_unreferenced(&blob_files, &referenced, blob_key, now, policy.grace);
    report.blobs = remove(blobs, BLOBS_DIR, &doomed, policy.grace).await?;
    let doomed = plan_unreferenced(&cache_files, &apps, cache_key, now, policy.grace);
    report.caches = remove(blobs, CACHE_DIR, &doomed, policy.grace).await?;
    let none = HashSet::new();
    let doomed = plan_unreferenced(
        &tmp_files,
        &none,
        |n| Some(n.to_string()),
        now,
        policy.grace,
    );
    report.tmp = remove(blobs, TMP_DIR, &doomed, policy.grace).await?;
    let doomed = plan_bounded(
        &resource_files,
        now,
        policy.grace,
        policy.resource_max_age,
        policy.resource_max_bytes,
    );
    report.resources = remove(blobs, RESOURCES_DIR, &doomed, policy.grace).await?;
    Ok(())
}

/// The regular files of a directory with their sizes and mtimes (a file
/// gone meanwhile is skipped).
async fn list(dir: PathBuf) -> Result<Vec<FileInfo>, GcError> {
    let shown = dir.display().to_string();
    tokio::task::spawn_blocking(move || list_blocking(&dir))
        .await
        .map_err(|e| GcError::Task(e.to_string()))?
        .map_err(|source| GcError::List {
            path: shown,
            source,
        })
}

fn list_blocking(dir: &Path) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        out.push(FileInfo {
            name,
            size: meta.len(),
            modified: meta.modified()?,
        });
    }
    Ok(out)
}

async fn remove(
    blobs: &BlobStore,
    dir: &str,
    doomed: &[&FileInfo],
    grace: Duration,
) -> Result<Removed, GcError> {
    let mut removed = Removed::default();
    for f in doomed {
        let path = blobs.dir(dir).join(&f.name);
        match blobs.remove_if_idle(&path, grace).await {
            Ok(Some(bytes)) => {
                tracing::debug!(dir, file = %f.name, bytes, "blob gc removed");
                removed.add(bytes);
            }
            Ok(None) => {}
            Err(source) => {
                return Err(GcError::Remove {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok(removed)
}

/// Removes a deleted app's build cache at once (the periodic pass would
/// too, after the grace period); a failure is logged.
pub async fn remove_app_cache(ctx: &Ctx, app_guid: &str) {
    match ctx.blobs.remove_cache(app_guid).await {
        Ok(Some(bytes)) => tracing::info!(app_id = %app_guid, bytes, "build cache removed"),
        Ok(None) => {}
        Err(e) => tracing::warn!(app_id = %app_guid, error = %e, "cannot remove build cache"),
    }
}

/// Runs a pass now and then every `blob_gc_interval_s` (none when 0);
/// a failed pass is logged and the next one tries again.
pub fn spawn(ctx: Ctx) -> Option<tokio::task::JoinHandle<()>> {
    let every = Duration::from_secs(ctx.cfg.blob_gc_interval_s);
    if every.is_zero() {
        tracing::info!("blob gc is off (blob_gc_interval_s = 0)");
        return None;
    }
    Some(tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            if let Err(e) = run_once(&ctx).await {
                tracing::warn!(error = %e, "blob gc pass failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn file(name: &str, size: u64, age: Duration) -> FileInfo {
        FileInfo {
            name: name.into(),
            size,
            modified: now() - age,
        }
    }

    fn names(v: Vec<&FileInfo>) -> Vec<String> {
        v.into_iter().map(|f| f.name.clone()).collect()
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn unreferenced_blobs_older_than_the_grace_go() {
        let (a, b, c, d) = (sha('a'), sha('b'), sha('c'), sha('d'));
        let in_future = FileInfo {
            name: sha('e'),
            size: 1,
            modified: now() + MIN,
        };
        let files = vec![
            file(&a, 1, 60 * MIN),          // referenced: stays
            file(&b, 1, 60 * MIN),          // unreferenced, old: goes
            file(&c, 1, 9 * MIN),           // unreferenced, within the grace: stays
            file(&d, 1, 10 * MIN),          // exactly the grace: goes
            in_future,                      // clock skew: age 0, stays
            file("not-a-sha", 1, 60 * MIN), // not a blob name: left alone
            file(&sha('A'), 1, 60 * MIN),   // upper case, referenced as lower
        ];
        let referenced: HashSet<String> = [a.clone()].into();
        let table: Vec<(Duration, Vec<String>)> = vec![
            (10 * MIN, vec![b.clone(), d.clone()]),
            (
                Duration::ZERO,
                vec![b.clone(), c.clone(), d.clone(), sha('e')],
            ),
            (61 * MIN, vec![]),
        ];
        for (grace, want) in table {
            let got = names(plan_unreferenced(
                &files,
                &referenced,
                blob_key,
                now(),
                grace,
            ));
            assert_eq!(got, want, "grace {grace:?}");
        }
    }

    #[test]
    fn build_caches_of_deleted_apps_go() {
        let files = vec![
            file("live-app.tgz", 5, 60 * MIN),
            file("gone-app.tgz", 5, 60 * MIN),
            file("gone-young.tgz", 5, MIN),
            file("stray", 5, 60 * MIN),
        ];
        let apps: HashSet<String> = ["live-app".to_string()].into();
        let got = names(plan_unreferenced(&files, &apps, cache_key, now(), 10 * MIN));
        assert_eq!(got, vec!["gone-app.tgz"]);
        assert_eq!(cache_key(".tgz"), None);
        assert_eq!(blob_key(&sha('g')), None, "not hex");
    }

    #[test]
    fn bounded_cache_drops_the_old_then_the_least_recent() {
        let files = vec![
            file("old", 10, 100 * MIN),
            file("mid", 10, 50 * MIN),
            file("new", 10, 20 * MIN),
            file("fresh", 10, MIN),
        ];
        type Row = (Option<Duration>, Option<u64>, &'static [&'static str]);
        let table: &[Row] = &[
            // No bounds: nothing goes.
            (None, None, &[]),
            // Age only.
            (Some(60 * MIN), None, &["old"]),
            (Some(30 * MIN), None, &["old", "mid"]),
            // Size only: least recently modified first, until within.
            (None, Some(40), &[]),
            (None, Some(30), &["old"]),
            (None, Some(15), &["old", "mid", "new"]),
            // Never within the grace period, even above the size.
            (None, Some(0), &["old", "mid", "new"]),
            // Both.
            (Some(60 * MIN), Some(25), &["old", "mid"]),
        ];
        for (max_age, max_bytes, want) in table {
            let got = names(plan_bounded(&files, now(), 10 * MIN, *max_age, *max_bytes));
            assert_eq!(got, *want, "max_age {max_age:?} max_bytes {max_bytes:?}");
        }
    }

    #[test]
    fn versions_beyond_the_newest_few_expire() {
        let v = |app: &str, guid: &str, t: &str| BlobVersion {
            app_guid: app.into(),
            guid: guid.into(),
            created_at: t.into(),
        };
        let versions = vec![
            v("a", "a1", "2026-01-01T00:00:01Z"),
            v("a", "a2", "2026-01-01T00:00:02Z"),
            v("a", "a3", "2026-01-01T00:00:03Z"),
            v("a", "a4", "2026-01-01T00:00:04Z"),
            v("b", "b1", "2026-01-01T00:00:01Z"),
        ];
        let none = HashSet::new();
        let current: HashSet<String> = ["a1".to_string()].into();
        type Row<'a> = (usize, &'a HashSet<String>, &'static [&'static str]);
        let table: &[Row] = &[
            (0, &none, &[]),
            (5, &none, &[]),
            (4, &none, &[]),
            (2, &none, &["a2", "a1"]),
            (1, &none, &["a3", "a2", "a1"]),
            // The current droplet (or a package in use) stays, and does
            // not make room for another.
            (2, &current, &["a2"]),
        ];
        for (keep, protected, want) in table {
            let got = plan_expired(&versions, *keep, protected);
            assert_eq!(got, *want, "keep {keep} protected {protected:?}");
        }
    }

    #[test]
    fn policy_from_config() {
        let cfg = Config::default();
        let p = Policy::from_config(&cfg);
        assert_eq!(p.grace, Duration::from_secs(3600));
        assert_eq!((p.keep_packages, p.keep_droplets), (5, 5));
        let cfg = Config {
            resource_pool_max_mb: 0,
            resource_pool_max_age_s: 0,
            ..Config::default()
        };
        let p = Policy::from_config(&cfg);
        assert_eq!((p.resource_max_age, p.resource_max_bytes), (None, None));
    }
}
