//! A fake backend for unit tests of the instance logic: no processes. Each
//! spawned "process" prints the configured lines and lives until `stop`,
//! `destroy` or `crash` ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::*;

#[derive(Default)]
pub struct FakeBackend {
    pub output: Vec<String>,
    pub exits: Mutex<HashMap<String, Vec<oneshot::Sender<ExitInfo>>>>,
    pub spawned: Mutex<Vec<ProcessSpec>>,
}

impl FakeBackend {
    /// Ends every process of the container with `exit`.
    pub fn crash(&self, container_id: &str, exit: ExitInfo) {
        let senders = self
            .exits
            .lock()
            .map(|mut m| m.remove(container_id))
            .ok()
            .flatten();
        for s in senders.unwrap_or_default() {
            let _ = s.send(exit);
        }
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>> {
        Box::pin(async move {
            std::fs::create_dir_all(&spec.root).map_err(|e| DeaError::io(&spec.root, e))?;
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
            let (tx, rx) = oneshot::channel();
            if let Ok(mut m) = self.exits.lock() {
                m.entry(container.id.clone()).or_default().push(tx);
            }
            if let Ok(mut s) = self.spawned.lock() {
                s.push(process);
            }
            let text = self
                .output
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>();
            let stdout: BoxRead = Box::pin(std::io::Cursor::new(text.into_bytes()));
            let wait: BoxFut<'static, Result<ExitInfo>> = Box::pin(async move {
                rx.await
                    .map_err(|_| DeaError::Backend("fake process lost".into()))
            });
            Ok(Spawned {
                pid: Some(1),
                stdout: Some(stdout),
                stderr: None,
                wait,
            })
        })
    }

    fn stop<'a>(&'a self, container: &'a Container, _grace: Duration) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            self.crash(
                &container.id,
                ExitInfo {
                    code: None,
                    signal: Some(15),
                },
            );
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            self.crash(
                &container.id,
                ExitInfo {
                    code: None,
                    signal: Some(9),
                },
            );
            let _ = std::fs::remove_dir_all(&container.root);
            Ok(())
        })
    }

    fn stats<'a>(&'a self, _container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>> {
        Box::pin(async move {
            Ok(proto::InstanceStats {
                cpu: 0.0,
                mem: 1,
                disk: 2,
                uptime: 3,
            })
        })
    }

    fn kill_all(&self) {}
}
