//! The builds this DEA accepted, as long-running work: answered at once,
//! staged in the background, named in `staging.active` until their result
//! is recorded, stopped on `staging.<id>.stop` (or at their own timeout),
//! and their result sent again and again until a controller records it (a
//! controller restarted meanwhile loses nothing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto::{StagingAccepted, StagingErrorId, StagingFailure, StagingRequest, StagingResult};
use tokio::sync::{oneshot, Notify};

use super::Stager;
use crate::backend::BoxFut;

/// Sends a result to a controller; `true` once one recorded it.
pub type Deliver = Arc<dyn Fn(StagingResult) -> BoxFut<'static, bool> + Send + Sync>;

/// Most builds a DEA holds at once (building, or waiting for a controller
/// to record their result): more are refused.
pub const MAX_BUILDS: usize = 64;

/// How long a result is offered before the DEA gives up on it.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(3600);
/// The longest pause between two offers of a result.
const DELIVERY_BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Entry {
    memory_mb: u64,
    disk_mb: u64,
    /// Still building (holds its memory and disk).
    building: bool,
    stop: Option<oneshot::Sender<StagingFailure>>,
}

struct Inner {
    stager: Stager,
    deliver: Deliver,
    entries: Mutex<HashMap<String, Entry>>,
    changed: Notify,
    shutting: AtomicBool,
    /// Ends the delivery of results at shutdown.
    gone: Notify,
}

#[derive(Clone)]
pub struct Stagings {
    inner: Arc<Inner>,
}

/// What the builds in flight hold, for the DEA's adverts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// Every build not yet recorded by a controller.
    pub ids: Vec<String>,
}

impl Stagings {
    pub fn new(stager: Stager, deliver: Deliver) -> Stagings {
        Stagings {
            inner: Arc::new(Inner {
                stager,
                deliver,
                entries: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                shutting: AtomicBool::new(false),
                gone: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dea_id(&self) -> &str {
        &self.inner.stager.dea_id
    }

    /// Resolves when a build was accepted or released its resources.
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }

    /// Takes a build (answering at once) and stages it in the background,
    /// or refuses it when the DEA's free (memory, disk) in MB, `free`, is
    /// less than it asks or [`MAX_BUILDS`] are held. The same build asked
    /// again is the same build.
    pub fn accept(&self, req: StagingRequest, free: (u64, u64)) -> StagingAccepted {
        let accepted = |error: Option<StagingFailure>| StagingAccepted {
            staging_id: req.staging_id.clone(),
            dea_id: self.dea_id().to_string(),
            error,
        };
        if self.inner.shutting.load(Ordering::SeqCst) {
            return accepted(Some(StagingFailure::new(
                StagingErrorId::StagingError,
                format!("the DEA {} is shutting down", self.dea_id()),
            )));
        }
        if req.staging_id.is_empty() || req.staging_id.len() > 128 {
            return accepted(Some(StagingFailure::new(
                StagingErrorId::StagingError,
                "a staging request needs a staging_id of at most 128 characters",
            )));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut entries = self.lock();
            if entries.contains_key(&req.staging_id) {
                return accepted(None);
            }
            if entries.len() >= MAX_BUILDS {
                return accepted(Some(StagingFailure::new(
                    StagingErrorId::StagingError,
                    format!(
                        "the DEA {} holds {MAX_BUILDS} builds already",
                        self.dea_id()
                    ),
                )));
            }
            if req.memory_mb > free.0 || req.disk_mb > free.1 {
                return accepted(Some(StagingFailure::new(
                    StagingErrorId::InsufficientResources,
                    format!(
                        "the build needs {}M of memory and {}M of disk; the DEA {} has {}M and {}M free",
                        req.memory_mb, req.disk_mb, self.dea_id(), free.0, free.1
                    ),
                )));
            }
            entries.insert(
                req.staging_id.clone(),
                Entry {
                    memory_mb: req.memory_mb,
                    disk_mb: req.disk_mb,
                    building: true,
                    stop: Some(tx),
                },
            );
        }
        self.inner.changed.notify_waiters();
        tracing::info!(staging_id = %req.staging_id, app_id = %req.app_id, "staging accepted");
        let reply = accepted(None);
        let me = self.clone();
        tokio::spawn(async move { me.run(req, rx).await });
        reply
    }

    async fn run(&self, req: StagingRequest, stop: oneshot::Receiver<StagingFailure>) {
        let id = req.staging_id.clone();
        let dea = self.dea_id().to_string();
        let stop = async move {
            stop.await.unwrap_or_else(|_| {
                StagingFailure::new(
                    StagingErrorId::StagingError,
                    format!("staging on DEA {dea} stopped"),
                )
            })
        };
        let stager = self.inner.stager.clone();
        // A task of its own, so that even a panic gets a result.
        let result = tokio::spawn(async move { stager.run(req, stop).await })
            .await
            .unwrap_or_else(|_| {
                StagingResult::failed(
                    &id,
                    self.dea_id(),
                    StagingFailure::new(
                        StagingErrorId::StagingError,
                        "staging failed: internal error",
                    ),
                )
            });
        if let Some(e) = self.lock().get_mut(&id) {
            e.building = false;
            e.stop = None;
        }
        self.inner.changed.notify_waiters();
        self.deliver(result).await;
        self.lock().remove(&id);
        self.inner.changed.notify_waiters();
    }

    /// Offers the result until a controller records it, the delivery
    /// window passes, or the DEA shuts down (after one last offer).
    async fn deliver(&self, result: StagingResult) {
        let end = tokio::time::Instant::now() + DELIVERY_WINDOW;
        let mut pause = Duration::from_millis(250);
        loop {
            if (self.inner.deliver)(result.clone()).await {
                tracing::info!(staging_id = %result.staging_id, failed = result.error.is_some(), "staging result recorded");
                return;
            }
            if self.inner.shutting.load(Ordering::SeqCst) || tokio::time::Instant::now() >= end {
                tracing::warn!(staging_id = %result.staging_id, "staging result not recorded by any controller; giving up");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.inner.gone.notified() => {}
            }
            pause = (pause * 2).min(DELIVERY_BACKOFF_MAX);
        }
    }

    /// Stops a build (the controller gave up on it); its result says why.
    pub fn stop(&self, staging_id: &str, reason: StagingFailure) {
        let tx = self.lock().get_mut(staging_id).and_then(|e| e.stop.take());
        match tx {
            Some(tx) => {
                tracing::info!(staging_id, reason = %reason, "stopping staging");
                let _ = tx.send(reason);
            }
            None => tracing::debug!(staging_id, "no such staging to stop"),
        }
    }

    /// What the builds in flight hold.
    pub fn load(&self) -> Load {
        let entries = self.lock();
        let mut l = Load::default();
        for (id, e) in entries.iter() {
            if e.building {
                l.memory_mb = l.memory_mb.saturating_add(e.memory_mb);
                l.disk_mb = l.disk_mb.saturating_add(e.disk_mb);
            }
            l.ids.push(id.clone());
        }
        l.ids.sort();
        l
    }

    /// Stops every build (their results say the DEA shut down) and waits,
    /// at most `within`, for the results to be offered once.
    pub async fn shutdown(&self, within: Duration) {
        self.inner.shutting.store(true, Ordering::SeqCst);
        let reason = StagingFailure::new(
            StagingErrorId::StagingError,
            format!(
                "the DEA {} shut down during staging; push again to stage elsewhere",
                self.dea_id()
            ),
        );
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            self.stop(&id, reason.clone());
        }
        self.inner.gone.notify_waiters();
        let end = tokio::time::Instant::now() + within;
        while !self.lock().is_empty() && tokio::time::Instant::now() < end {
            tokio::select! {
                _ = self.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            self.inner.gone.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stagings whose results are never recorded (they stay held).
    fn stagings(state: &std::path::Path) -> Stagings {
        crate::agent::prepare_state_dir(state).expect("prepare");
        let (outbox, _rx) = crate::outbox::Outbox::channel();
        let stager = Stager {
            backend: crate::backend::by_name("process").expect("backend"),
            outbox,
            http: crate::config::Config::default()
                .http_client()
                .expect("http client"),
            state_dir: state.to_path_buf(),
            dea_id: "dea-t".into(),
            passthrough: vec![],
            limits: proto::archive::ArchiveLimits::default(),
            slots: crate::staging::Slots::new(2),
        };
        let never: Deliver = Arc::new(|_| Box::pin(std::future::pending()));
        Stagings::new(stager, never)
    }

    fn request(id: &str) -> StagingRequest {
        serde_json::from_value(serde_json::json!({
            "staging_id": id, "app_id": "a", "stack": "host", "memory_mb": 1024,
            "disk_mb": 2048, "package_uri": "http://127.0.0.1:1/package",
            "droplet_upload_uri": "http://127.0.0.1:1/droplet"
        }))
        .expect("request")
    }

    #[tokio::test]
    async fn builds_are_refused_without_room_and_beyond_the_cap() {
        let tmp = tempfile::tempdir().expect("tmp");
        let st = stagings(tmp.path());
        let room = (4096, 8192);

        let no_room = st.accept(request("big"), (1000, 8192));
        let e = no_room.error.expect("refused");
        assert_eq!(e.id, StagingErrorId::InsufficientResources);
        assert_eq!(
            e.message,
            "the build needs 1024M of memory and 2048M of disk; the DEA dea-t has 1000M and 8192M free"
        );
        assert!(st.load().ids.is_empty(), "nothing held for a refused build");

        assert_eq!(st.accept(request("b0"), room).error, None);
        // The same build asked again is the same build, whatever the room.
        assert_eq!(st.accept(request("b0"), (0, 0)).error, None);
        assert_eq!(st.load().ids, vec!["b0".to_string()]);

        for i in 1..MAX_BUILDS {
            assert_eq!(st.accept(request(&format!("b{i}")), room).error, None);
        }
        let full = st.accept(request("one-more"), room);
        let e = full.error.expect("refused");
        assert_eq!(e.id, StagingErrorId::StagingError);
        assert!(e.message.contains("holds 64 builds"), "{e}");
        assert_eq!(st.load().ids.len(), MAX_BUILDS);
    }
}
