//! A steady client: requests to one app through the router without pause
//! while something else happens (a deployment, a rollback), counting
//! every answer that is not 2xx and every connection error. Deployment
//! tests and benchmarks read its tally.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the client saw.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first few failures, for the assertion message.
    pub samples: Vec<String>,
    /// Body (trimmed, first 40 chars) → how many 2xx answers had it.
    pub bodies: BTreeMap<String, u64>,
    /// The body of the last 2xx answer.
    pub last: String,
}

/// Runs until [`Steady::stop`]; several connections at once.
pub struct Steady {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Steady {
    /// `clients` loops of GET `http://host:<router port><path>`, each on
    /// its own keep-alive connection.
    pub fn start(router: SocketAddr, host: &str, path: &str, clients: usize) -> Steady {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let url = format!("http://{host}:{}{path}", router.port());
        let tasks = (0..clients.max(1))
            .map(|_| {
                let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
                tokio::spawn(async move {
                    let c = crate::http_client();
                    while !stop.load(Ordering::Relaxed) {
                        let r = match c.get(&url).send().await {
                            Ok(r) if r.status().is_success() => {
                                r.text().await.map_err(|e| format!("body: {e}"))
                            }
                            Ok(r) => Err(format!("status {}", r.status())),
                            Err(e) => Err(format!("error: {e}")),
                        };
                        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                        match r {
                            Ok(body) => {
                                t.ok += 1;
                                let key: String = body.trim().chars().take(40).collect();
                                *t.bodies.entry(key.clone()).or_default() += 1;
                                t.last = key;
                            }
                            Err(e) => {
                                t.failed += 1;
                                if t.samples.len() < 10 {
                                    t.samples.push(e);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Steady { stop, tally, tasks }
    }

    /// The tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the clients and returns the tally.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.tally()
    }
}

impl Drop for Steady {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}
