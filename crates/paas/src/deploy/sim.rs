//! Simulated hosts for the deployer (the omicron simulated sled agent's
//! idea): versions change at once, and the test says which versions of
//! which roles fail, so that rollouts, rollbacks and resumes are tested
//! without processes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::execute::Hosts;
use super::manifest::Role;
use super::plan::Change;
use super::rollout::Outcome;
use super::state::Actual;

#[derive(Debug, Default)]
pub struct World {
    pub actual: Actual,
    /// (version, role) that never become healthy, and why.
    pub bad: BTreeMap<(String, Role), String>,
    /// Every step applied: (host, changes).
    pub applied: Vec<(String, Vec<Change>)>,
    /// Hosts that do not answer.
    pub down: Vec<String>,
}

/// Hosts whose state lives in a shared [`World`] (it outlives a deployer).
#[derive(Debug, Clone, Default)]
pub struct SimHosts {
    pub world: Arc<Mutex<World>>,
    /// Steps applied before `apply` hangs for ever (a deployer killed
    /// mid-step); `None`: never.
    pub hang_after: Option<usize>,
}

impl SimHosts {
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        match self.world.lock() {
            Ok(mut w) => f(&mut w),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

impl Hosts for SimHosts {
    async fn actual(&mut self) -> Result<Actual, String> {
        Ok(self.with(|w| w.actual.clone()))
    }

    async fn apply(&self, host: &str, changes: &[Change], watch: Duration) -> (Outcome, String) {
        let applied = self.with(|w| w.applied.len());
        if self.hang_after.is_some_and(|n| applied >= n) {
            std::future::pending::<()>().await;
        }
        self.with(|w| {
            w.applied.push((host.to_string(), changes.to_vec()));
            if w.down.iter().any(|h| h == host) {
                return (
                    Outcome::Failed(format!("agent of {host} does not answer")),
                    String::new(),
                );
            }
            let mut failed = None;
            for c in changes {
                let why = w.bad.get(&(c.to.clone(), c.role)).cloned();
                w.actual.set(host, c.role, &c.to, why.is_none());
                if let Some(why) = why {
                    failed.get_or_insert(format!(
                        "{} {} not healthy within {}s: {why}",
                        c.role,
                        c.to,
                        watch.as_secs()
                    ));
                }
            }
            match failed {
                Some(f) => (Outcome::Failed(f), String::new()),
                None => (Outcome::Healthy, String::new()),
            }
        })
    }

    async fn retire(&mut self, host: &str, role: Role) -> Result<(), String> {
        self.with(|w| {
            if let Some(h) = w.actual.hosts.get_mut(host) {
                h.components.remove(&role);
            }
        });
        Ok(())
    }
}
