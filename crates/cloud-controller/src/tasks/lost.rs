//! Which running tasks are lost (pure): a task whose DEA has not listed
//! it (in `DeaAdvertise::app_id_to_count`, or at all, when the DEA stopped
//! advertising) for `LOST_AFTER` in a row. A task that just ended is
//! missing from adverts for the moment its exit report takes to arrive,
//! hence the delay; a controller that just started sees every DEA as
//! silent until the first adverts, also well within it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a running task may be missing from its DEA's adverts.
pub const LOST_AFTER: Duration = Duration::from_secs(15);

/// What the DEA a task was placed on says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Its latest advert lists the task.
    Listed,
    /// Its latest advert does not list the task.
    Missing,
    /// No fresh advert from it.
    Silent,
}

/// Updates `missing_since` (task guid → first time missing) for the
/// running tasks `seen`, and returns the lost ones with why.
pub fn lost(
    seen: &[(String, Seen)],
    missing_since: &mut HashMap<String, Instant>,
    now: Instant,
) -> Vec<(String, &'static str)> {
    missing_since.retain(|guid, _| seen.iter().any(|(g, _)| g == guid));
    let mut out = Vec::new();
    for (guid, s) in seen {
        if *s == Seen::Listed {
            missing_since.remove(guid);
            continue;
        }
        let since = *missing_since.entry(guid.clone()).or_insert(now);
        if now.duration_since(since) >= LOST_AFTER {
            out.push((
                guid.clone(),
                match s {
                    Seen::Silent => "Cell lost: the DEA running the task stopped answering",
                    _ => "Task lost: its DEA no longer runs it",
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_lost_only_after_missing_long_enough() {
        let t0 = Instant::now();
        let mut m = HashMap::new();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let table: &[(u64, Seen, usize)] = &[
            (0, Seen::Silent, 0),   // just started: no verdict
            (5, Seen::Listed, 0),   // the first advert lists it: clock reset
            (6, Seen::Missing, 0),  // missing from now on
            (20, Seen::Missing, 0), // 14 s: not yet
            (21, Seen::Missing, 1), // 15 s: lost
        ];
        for (s, seen, n) in table {
            let got = lost(&[("t".into(), *seen)], &mut m, at(*s));
            assert_eq!(got.len(), *n, "at {s} s with {seen:?}");
        }
        let got = lost(&[("t".into(), Seen::Silent)], &mut m, at(22));
        assert_eq!(
            got[0].1,
            "Cell lost: the DEA running the task stopped answering"
        );
    }

    #[test]
    fn ended_tasks_are_forgotten() {
        let t0 = Instant::now();
        let mut m = HashMap::new();
        lost(&[("a".into(), Seen::Missing)], &mut m, t0);
        assert!(m.contains_key("a"));
        lost(&[], &mut m, t0);
        assert!(m.is_empty());
    }
}
