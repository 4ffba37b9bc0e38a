//! A simulated DEA in-process: the real agent (bus, placement, staging,
//! heartbeats, routes) on the [`sim`](crate::backend::sim) backend, with a
//! state dir of its own. Tests of the controller, the health manager and
//! the whole platform start as many as they like, without root (in the
//! spirit of omicron's simulated sled agent).

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;

/// A running simulated DEA on a runtime of its own (so that killing it
/// ends every task it spawned); stopped gracefully by [`SimDea::stop`],
/// killed by [`SimDea::kill`] or on drop.
pub struct SimDea {
    pub id: String,
    pub zone: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<crate::error::Result<()>>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl SimDea {
    /// Starts DEA `id` in `zone` on the bus at `nats_url`, and waits until
    /// it is ready (it has advertised itself).
    pub async fn start(nats_url: &str, id: &str, zone: &str) -> crate::error::Result<SimDea> {
        Self::start_with(nats_url, id, zone, |_| {}).await
    }

    /// As [`start`](Self::start), with the config adjusted by `tune`.
    pub async fn start_with(
        nats_url: &str,
        id: &str,
        zone: &str,
        tune: impl FnOnce(&mut Config),
    ) -> crate::error::Result<SimDea> {
        let dir = tempfile::Builder::new()
            .prefix("sim-dea-")
            .tempdir()
            .map_err(|e| crate::error::DeaError::io(std::path::Path::new("/tmp"), e))?;
        let ready = dir.path().join("ready");
        let mut cfg = Config {
            nats_url: nats_url.to_string(),
            id: id.to_string(),
            zone: zone.to_string(),
            state_dir: dir.path().join("state"),
            backend: "sim".into(),
            addr_file: Some(ready.clone()),
            heartbeat_interval_s: 1,
            advertise_interval_s: 1,
            stop_grace_s: 1,
            // The controller's signed URLs come from whatever address its
            // tests give it.
            allow_any_blob_url: true,
            ..Config::default()
        };
        tune(&mut cfg);
        let (tx, rx) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("sim-{id}"))
            .enable_all()
            .build()
            .map_err(|e| crate::error::DeaError::Backend(format!("runtime: {e}")))?;
        let task = rt.spawn(crate::agent::run(cfg, async {
            let _ = rx.await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            if task.is_finished() {
                rt.shutdown_background();
                return match task.await {
                    Ok(Err(e)) => Err(e),
                    _ => Err(crate::error::DeaError::Backend(format!(
                        "simulated DEA {id} ended before it was ready"
                    ))),
                };
            }
            if tokio::time::Instant::now() > deadline {
                rt.shutdown_background();
                return Err(crate::error::DeaError::Backend(format!(
                    "simulated DEA {id} not ready after 20 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(SimDea {
            id: id.to_string(),
            zone: zone.to_string(),
            stop: Some(tx),
            task: Some(task),
            rt: Some(rt),
            _dir: dir,
        })
    }

    /// Shuts the DEA down as SIGTERM would: instances stopped,
    /// `dea.shutdown` published.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }

    /// The DEA vanishes at once (as with SIGKILL): every task it runs ends,
    /// with no goodbye on the bus; its heartbeats just stop.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for SimDea {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
