//! The staging loop's memory: what the database does not hold — which DEA
//! last named each build in flight (`staging.active`) and when, the builds
//! being handed over right now, and the loop's wake-up.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto::StagingActive;
use tokio::sync::Notify;

/// A build whose DEA has not named it in `staging.active` for this long
/// (3 of the DEA's 2 s intervals) is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(6);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The staging loop's memory (what the database does not hold).
#[derive(Debug)]
pub struct Watch {
    started: Instant,
    /// Build → the DEA that last named it (or accepted it), and when.
    seen: Mutex<HashMap<String, (String, Instant)>>,
    /// Builds being handed to a DEA right now.
    dispatching: Mutex<HashSet<String>>,
    pub(super) wake: Notify,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            started: Instant::now(),
            seen: Mutex::new(HashMap::new()),
            dispatching: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        }
    }
}

impl Watch {
    /// A new build is waiting: run a pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Marks a build as being handed over; `false` when it already is.
    pub(super) fn begin_dispatch(&self, build: &str) -> bool {
        lock(&self.dispatching).insert(build.to_string())
    }

    pub(super) fn end_dispatch(&self, build: &str) {
        lock(&self.dispatching).remove(build);
    }

    /// A DEA named its builds in flight.
    pub fn on_active(&self, msg: &StagingActive, now: Instant) {
        let mut seen = lock(&self.seen);
        for id in msg.staging_ids.iter().take(1024) {
            seen.insert(id.clone(), (msg.dea_id.clone(), now));
        }
    }

    pub(super) fn seen(&self, build: &str, dea: &str, now: Instant) {
        lock(&self.seen).insert(build.to_string(), (dea.to_string(), now));
    }

    /// Whether a build handed to `dea` went unnamed by it for too long
    /// (another DEA naming it does not count).
    pub fn lost(&self, build: &str, dea: &str, now: Instant) -> bool {
        let last = lock(&self.seen)
            .get(build)
            .filter(|(d, _)| d == dea)
            .map(|(_, t)| *t)
            .unwrap_or(self.started)
            .max(self.started);
        now.duration_since(last) > LOST_AFTER
    }

    pub(super) fn forget(&self, build: &str) {
        lock(&self.seen).remove(build);
    }

    /// Forgets every build but those in flight (so ids named on the bus
    /// for builds that do not exist, or no longer stage, are not kept).
    pub(super) fn keep_only(&self, in_flight: &HashSet<&str>) {
        lock(&self.seen).retain(|b, _| in_flight.contains(b.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_lost_when_its_dea_stops_naming_it() {
        let w = Watch::default();
        let t0 = w.started;
        // Right after a (re)start, builds are given the full interval.
        assert!(!w.lost("b", "d", t0 + LOST_AFTER));
        assert!(w.lost("b", "d", t0 + LOST_AFTER + Duration::from_millis(1)));
        w.on_active(
            &StagingActive {
                dea_id: "d".into(),
                staging_ids: vec!["b".into()],
            },
            t0 + Duration::from_secs(10),
        );
        assert!(!w.lost("b", "d", t0 + Duration::from_secs(15)));
        assert!(w.lost("b", "d", t0 + Duration::from_secs(17)));
        // Another DEA naming the build does not keep it alive.
        assert!(w.lost("b", "other", t0 + Duration::from_secs(15)));
        w.forget("b");
        assert!(w.lost("b", "d", t0 + Duration::from_secs(17)));
        // Names of builds not in flight are dropped at the next pass.
        w.on_active(
            &StagingActive {
                dea_id: "d".into(),
                staging_ids: vec!["b".into(), "forged".into()],
            },
            t0 + Duration::from_secs(20),
        );
        w.keep_only(&HashSet::from(["b"]));
        assert_eq!(lock(&w.seen).len(), 1);
        assert!(!w.lost("b", "d", t0 + Duration::from_secs(21)));
    }
}
