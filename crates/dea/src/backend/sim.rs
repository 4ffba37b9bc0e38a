//! The `sim` backend: a simulated DEA's containers (`backend = "sim"`), so
//! that tests of the controller, the health manager and the whole platform
//! can run many DEAs without root and without app processes.
//!
//! - Builds run for real as plain host processes (the `process` backend):
//!   a push makes a real droplet.
//! - App instances (processes whose environment names `CF_INSTANCE_GUID`)
//!   run no process: the backend prints the configured `output` lines, and
//!   when the environment has a `PORT`, answers HTTP on 127.0.0.1:`PORT`
//!   with `200 sim <CF_INSTANCE_GUID> <CF_INSTANCE_INDEX>`, so health checks
//!   and the router see a live app. An instance lives until `stop`,
//!   `destroy` or [`SimBackend::crash`] ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::process::ProcessBackend;
use super::*;

#[derive(Default)]
pub struct SimBackend {
    /// Lines every simulated instance prints on stdout.
    pub output: Vec<String>,
    /// The exits of the simulated processes, by container id.
    exits: Mutex<HashMap<String, Vec<oneshot::Sender<ExitInfo>>>>,
    /// Every simulated process started, in order.
    pub spawned: Mutex<Vec<ProcessSpec>>,
    /// Builds and anything else that is not an app instance.
    builds: ProcessBackend,
}

impl SimBackend {
    /// A backend whose instances print `output` on stdout.
    pub fn with_output(output: Vec<String>) -> SimBackend {
        SimBackend {
            output,
            ..Default::default()
        }
    }

    /// Ends every simulated process of the container with `exit`, as if the
    /// app had crashed (or been killed).
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

    /// The ids of the containers with a simulated process alive.
    pub fn live(&self) -> Vec<String> {
        self.exits
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn simulate(&self, container: &Container, process: ProcessSpec) -> Spawned {
        let (tx, rx) = oneshot::channel();
        let var = |k: &str| {
            process
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        let body = format!(
            "sim {} {}\n",
            var("CF_INSTANCE_GUID").unwrap_or_default(),
            var("CF_INSTANCE_INDEX").unwrap_or_default()
        );
        let port = var("PORT").and_then(|p| p.parse::<u16>().ok());
        let server = port.map(|p| tokio::spawn(serve(p, body)));
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
            let exit = rx
                .await
                .map_err(|_| DeaError::Backend("simulated process lost".into()));
            if let Some(s) = server {
                s.abort();
            }
            exit
        });
        Spawned {
            pid: None,
            stdout: Some(stdout),
            stderr: None,
            wait,
        }
    }
}

/// The simulated app: answers every request on 127.0.0.1:`port` with 200
/// and `body`, one request per connection.
async fn serve(port: u16, body: String) {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, error = %e, "sim: cannot listen");
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    while let Ok((mut conn, _)) = listener.accept().await {
        let response = response.clone();
        tokio::spawn(async move {
            // The request head, bounded; its content does not matter.
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

fn is_instance(process: &ProcessSpec) -> bool {
    process.env.iter().any(|(k, _)| k == "CF_INSTANCE_GUID")
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, Result<Container>> {
        self.builds.create(spec)
    }

    fn spawn<'a>(
        &'a self,
        container: &'a Container,
        process: ProcessSpec,
    ) -> BoxFut<'a, Result<Spawned>> {
        if !is_instance(&process) {
            return self.builds.spawn(container, process);
        }
        Box::pin(async move { Ok(self.simulate(container, process)) })
    }

    fn stop<'a>(&'a self, container: &'a Container, grace: Duration) -> BoxFut<'a, Result<()>> {
        Box::pin(async move {
            self.crash(
                &container.id,
                ExitInfo {
                    code: None,
                    signal: Some(15),
                },
            );
            self.builds.stop(container, grace).await
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
            self.builds.destroy(container).await
        })
    }

    fn stats<'a>(&'a self, container: &'a Container) -> BoxFut<'a, Result<proto::InstanceStats>> {
        Box::pin(async move {
            Ok(proto::InstanceStats {
                cpu: 0.0,
                mem: 1,
                disk: 2,
                uptime: container.created.elapsed().as_secs(),
            })
        })
    }

    fn kill_all(&self) {
        let ids = self.live();
        for id in ids {
            self.crash(
                &id,
                ExitInfo {
                    code: None,
                    signal: Some(9),
                },
            );
        }
        self.builds.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_instance_answers_http_until_stopped() {
        let dir = tempfile::tempdir().expect("tmp");
        let sim = SimBackend::default();
        let c = sim
            .create(ContainerSpec {
                id: "i1".into(),
                root: dir.path().join("i1"),
                memory_mb: 64,
                disk_mb: 64,
                egress: None,
            })
            .await
            .expect("create");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let sp = sim
            .spawn(
                &c,
                ProcessSpec {
                    script: "never run".into(),
                    env: vec![
                        ("PORT".into(), port.to_string()),
                        ("CF_INSTANCE_GUID".into(), "g1".into()),
                        ("CF_INSTANCE_INDEX".into(), "0".into()),
                    ],
                    cwd: dir.path().into(),
                },
            )
            .await
            .expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let answer = loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .expect("write");
                let mut out = String::new();
                s.read_to_string(&mut out).await.expect("read");
                break out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sim instance never listened"
            );
            tokio::task::yield_now().await;
        };
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("sim g1 0\n"), "{answer}");
        sim.stop(&c, Duration::ZERO).await.expect("stop");
        let exit = sp.wait.await.expect("exit");
        assert_eq!(exit.signal, Some(15));
        assert!(sim.live().is_empty());
    }

    #[tokio::test]
    async fn builds_run_for_real() {
        let dir = tempfile::tempdir().expect("tmp");
        let sim = SimBackend::default();
        let c = sim
            .create(ContainerSpec {
                id: "s1".into(),
                root: dir.path().join("s1"),
                memory_mb: 64,
                disk_mb: 64,
                egress: None,
            })
            .await
            .expect("create");
        let sp = sim
            .spawn(
                &c,
                ProcessSpec {
                    script: "exit 3".into(),
                    env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                    cwd: dir.path().into(),
                },
            )
            .await
            .expect("spawn");
        assert_eq!(sp.wait.await.expect("exit").code, Some(3));
        assert!(sim.spawned.lock().expect("lock").is_empty());
    }
}
