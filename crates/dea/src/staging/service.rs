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

    /// Takes a build (answering at once) and stages it in the background.
    /// The same build asked again is the same build.
    pub fn accept(&self, req: StagingRequest) -> StagingAccepted {
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
