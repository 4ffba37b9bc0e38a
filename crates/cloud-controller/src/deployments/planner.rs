//! The deployment updater's decisions, without I/O: a pure function of
//! (the deployment's spec and progress, the instances seen, now) → the
//! new progress and the actions to take (docs/architecture.md §5.12).
//!
//! - Serving capacity never drops: an old instance is stopped only for a
//!   new one that has been RUNNING, ready (routed) and up for
//!   `MIN_HEALTHY_S`.
//! - At most `max_in_flight` new instances are starting at once.
//! - A canary step stops at its share of new instances (PAUSED) until
//!   `continue`.
//! - The failure policy CF lacks: when new instances crashed
//!   `failure_budget` times, or no new instance became healthy within
//!   `progress_deadline_s`, the deployment rolls itself back (CANCELING):
//!   the old instances come back first, then the new ones stop.

use proto::InstanceState;

use crate::store::deployments::{CANCELING, DEPLOYING, PAUSED};

/// A new instance counts as healthy once it has been RUNNING and ready
/// this long (routers have its route).
pub const MIN_HEALTHY_S: f64 = 1.0;

/// What does not change while a deployment runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub target: u32,
    pub max_in_flight: u32,
    /// New instances wanted at each step, ascending, the last = `target`
    /// ([`step_targets`]).
    pub steps: Vec<u32>,
    pub failure_budget: u32,
    pub progress_deadline_s: f64,
}

/// What the updater changes (stored in the deployment's row).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// DEPLOYING, PAUSED or CANCELING.
    pub reason: String,
    pub error: Option<String>,
    /// Index into `Spec::steps`.
    pub step: u32,
    /// New indices desired (0..new_instances).
    pub new_instances: u32,
    /// Old indices desired (0..old_instances).
    pub old_instances: u32,
    pub healthy: u32,
    pub failures: u32,
    /// Unix seconds: the last time a new instance became healthy (or the
    /// deployment started, continued or began canceling).
    pub last_progress_at: f64,
    pub last_healthy_at: Option<f64>,
}

/// One instance as a DEA reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub index: u32,
    pub state: InstanceState,
    pub ready: bool,
    /// Unix seconds of its last state change.
    pub since: f64,
}

/// What the updater saw in this pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Instances of the new version.
    pub new: Vec<Seen>,
    /// Instances of the old version.
    pub old: Vec<Seen>,
    /// Crashes of new instances since the deployment began.
    pub crashes: u32,
    /// How the last of them ended ("exit status 1", "health check ...").
    pub last_crash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start these indices of the new version.
    StartNew(Vec<u32>),
    /// Stop these indices of the old version (gracefully).
    StopOld(Vec<u32>),
    /// Start these indices of the old version (a rollback restores them).
    StartOld(Vec<u32>),
    /// Done: every new instance serves, no old one is desired.
    Finish,
    /// Rolled back: the old version serves again; stop the new one.
    Cancel,
}

/// The new instances wanted at each step: canary steps (weights in
/// percent of `target`, at least one instance each; a canary without
/// steps has one step of one instance, as CF's), then all of them.
pub fn step_targets(target: u32, canary: bool, weights: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    if canary {
        if weights.is_empty() {
            out.push(1.min(target));
        }
        for w in weights {
            let n = (u64::from(target) * u64::from(*w)).div_ceil(100);
            let n = u32::try_from(n).unwrap_or(target).clamp(1, target.max(1));
            if out.last() != Some(&n) && n < target {
                out.push(n);
            }
        }
    }
    out.retain(|n| *n < target);
    out.push(target);
    out
}

fn healthy(seen: &[Seen], below: u32, now: f64) -> u32 {
    let n = seen
        .iter()
        .filter(|s| {
            s.index < below
                && s.state == InstanceState::Running
                && s.ready
                && now - s.since >= MIN_HEALTHY_S
        })
        .map(|s| s.index)
        .collect::<std::collections::BTreeSet<u32>>()
        .len();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn running(seen: &[Seen], below: u32) -> u32 {
    let n = seen
        .iter()
        .filter(|s| s.index < below && s.state == InstanceState::Running)
        .map(|s| s.index)
        .collect::<std::collections::BTreeSet<u32>>()
        .len();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One pass of the updater.
pub fn plan(spec: &Spec, prev: &Progress, seen: &Observed, now: f64) -> (Progress, Vec<Action>) {
    let mut p = prev.clone();
    let mut actions = Vec::new();
    if p.reason == DEPLOYING || p.reason == PAUSED {
        let h = healthy(&seen.new, p.new_instances, now);
        if h > p.healthy {
            p.last_progress_at = now;
            p.last_healthy_at = Some(now);
        }
        p.healthy = h;
        p.failures = seen.crashes;
        let pending = p.new_instances > h;
        if p.failures >= spec.failure_budget.max(1) {
            let last = seen
                .last_crash
                .as_ref()
                .map(|c| format!("; last {c}"))
                .unwrap_or_default();
            p.error = Some(format!(
                "rolled back: {} new instance{} crashed{last}",
                p.failures,
                if p.failures == 1 { "" } else { "s" }
            ));
        } else if p.reason == DEPLOYING
            && pending
            && now - p.last_progress_at > spec.progress_deadline_s
        {
            p.error = Some(format!(
                "rolled back: no new instance became healthy within {}s",
                spec.progress_deadline_s.round()
            ));
        }
        if p.error.is_some() {
            p.reason = CANCELING.into();
            p.last_progress_at = now;
        }
    }
    if p.reason == DEPLOYING {
        let last = spec.steps.len().saturating_sub(1);
        let step_target = spec
            .steps
            .get(usize::try_from(p.step).unwrap_or(usize::MAX).min(last))
            .copied()
            .unwrap_or(spec.target);
        // Old instances beyond what the healthy new ones replace.
        let old_wanted = spec.target.saturating_sub(p.healthy.min(spec.target));
        if old_wanted < p.old_instances {
            actions.push(Action::StopOld(
                (old_wanted..p.old_instances).rev().collect(),
            ));
            p.old_instances = old_wanted;
        }
        // New instances: up to the step's share, `max_in_flight` starting.
        let new_wanted = step_target.min(p.healthy.saturating_add(spec.max_in_flight.max(1)));
        if new_wanted > p.new_instances {
            if p.new_instances <= p.healthy {
                // Nothing was pending: the clock of this batch starts now.
                p.last_progress_at = now;
            }
            actions.push(Action::StartNew((p.new_instances..new_wanted).collect()));
            p.new_instances = new_wanted;
        }
        if p.healthy >= step_target && p.old_instances <= spec.target - step_target {
            if step_target >= spec.target {
                actions.push(Action::Finish);
            } else {
                p.reason = PAUSED.into();
            }
        }
    } else if p.reason == CANCELING {
        // The old capacity first, then the new instances go.
        if p.old_instances < spec.target {
            actions.push(Action::StartOld((p.old_instances..spec.target).collect()));
            p.old_instances = spec.target;
        }
        let back = running(&seen.old, spec.target) >= spec.target;
        if back || now - p.last_progress_at > spec.progress_deadline_s {
            actions.push(Action::Cancel);
        }
    }
    (p, actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    const NOW: f64 = 1000.0;

    fn spec(target: u32, mif: u32, steps: Vec<u32>) -> Spec {
        Spec {
            target,
            max_in_flight: mif,
            steps,
            failure_budget: 3,
            progress_deadline_s: 60.0,
        }
    }

    fn start(target: u32) -> Progress {
        Progress {
            reason: DEPLOYING.into(),
            error: None,
            step: 0,
            new_instances: 0,
            old_instances: target,
            healthy: 0,
            failures: 0,
            last_progress_at: NOW,
            last_healthy_at: None,
        }
    }

    fn inst(index: u32, state: InstanceState, since: f64) -> Seen {
        Seen {
            index,
            state,
            ready: true,
            since,
        }
    }

    fn running_new(n: u32) -> Observed {
        Observed {
            new: (0..n).map(|i| inst(i, Running, NOW - 5.0)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn step_targets_cover_canary_and_rolling() {
        assert_eq!(step_targets(4, false, &[]), vec![4]);
        assert_eq!(step_targets(4, true, &[]), vec![1, 4]);
        assert_eq!(step_targets(4, true, &[25, 50]), vec![1, 2, 4]);
        assert_eq!(step_targets(4, true, &[10, 50, 100]), vec![1, 2, 4]);
        assert_eq!(step_targets(1, true, &[25]), vec![1]);
        assert_eq!(step_targets(10, true, &[10, 50]), vec![1, 5, 10]);
    }

    #[test]
    fn rolling_one_at_a_time_never_lowers_capacity() {
        let s = spec(4, 1, vec![4]);
        // Pass 1: one new instance starts; nothing old stops.
        let (p, a) = plan(&s, &start(4), &Observed::default(), NOW);
        assert_eq!(a, vec![Action::StartNew(vec![0])]);
        assert_eq!((p.new_instances, p.old_instances), (1, 4));
        // Starting, or running for less than MIN_HEALTHY_S: wait.
        let young = Observed {
            new: vec![inst(0, Running, NOW - 0.5)],
            ..Default::default()
        };
        let (p2, a) = plan(&s, &p, &young, NOW);
        assert!(a.is_empty());
        assert_eq!(p2, p);
        // Healthy: one old stops (the highest index), the next new starts.
        let (p3, a) = plan(&s, &p, &running_new(1), NOW + 1.0);
        assert_eq!(a, vec![Action::StopOld(vec![3]), Action::StartNew(vec![1])]);
        assert_eq!((p3.new_instances, p3.old_instances, p3.healthy), (2, 3, 1));
        assert_eq!(p3.last_healthy_at, Some(NOW + 1.0));
        // All four healthy: the last old stops and the deployment ends.
        let p4 = Progress {
            new_instances: 4,
            old_instances: 1,
            healthy: 3,
            ..p3
        };
        let (p5, a) = plan(&s, &p4, &running_new(4), NOW + 2.0);
        assert_eq!(a, vec![Action::StopOld(vec![0]), Action::Finish]);
        assert_eq!(p5.old_instances, 0);
    }

    #[test]
    fn max_in_flight_batches() {
        let s = spec(4, 2, vec![4]);
        let (p, a) = plan(&s, &start(4), &Observed::default(), NOW);
        assert_eq!(a, vec![Action::StartNew(vec![0, 1])]);
        let (p, a) = plan(&s, &p, &running_new(2), NOW + 1.0);
        assert_eq!(
            a,
            vec![Action::StopOld(vec![3, 2]), Action::StartNew(vec![2, 3])]
        );
        assert_eq!((p.new_instances, p.old_instances), (4, 2));
        // max in flight beyond the target: everything at once.
        let s = spec(3, 10, vec![3]);
        let (_, a) = plan(&s, &start(3), &Observed::default(), NOW);
        assert_eq!(a, vec![Action::StartNew(vec![0, 1, 2])]);
    }

    #[test]
    fn a_not_ready_instance_is_not_healthy() {
        let s = spec(2, 1, vec![2]);
        let p = Progress {
            new_instances: 1,
            ..start(2)
        };
        let seen = Observed {
            new: vec![Seen {
                ready: false,
                ..inst(0, Running, NOW - 30.0)
            }],
            ..Default::default()
        };
        let (p2, a) = plan(&s, &p, &seen, NOW + 10.0);
        assert!(a.is_empty());
        assert_eq!(p2.healthy, 0);
        // ...until the progress deadline: rolled back.
        let (p3, a) = plan(&s, &p, &seen, NOW + 61.0);
        assert_eq!(p3.reason, CANCELING);
        assert_eq!(
            p3.error.as_deref(),
            Some("rolled back: no new instance became healthy within 60s")
        );
        assert_eq!(a, vec![]);
    }

    #[test]
    fn crashes_spend_the_budget_and_roll_back() {
        let s = spec(2, 1, vec![2]);
        let p = Progress {
            new_instances: 1,
            ..start(2)
        };
        let two = Observed {
            new: vec![inst(0, Crashed, NOW)],
            crashes: 2,
            last_crash: Some("exit status 1".into()),
            ..Default::default()
        };
        let (p2, a) = plan(&s, &p, &two, NOW + 1.0);
        assert!(a.is_empty());
        assert_eq!((p2.reason.as_str(), p2.failures), (DEPLOYING, 2));
        let three = Observed { crashes: 3, ..two };
        let (p3, a) = plan(&s, &p2, &three, NOW + 2.0);
        assert_eq!(p3.reason, CANCELING);
        assert_eq!(
            p3.error.as_deref(),
            Some("rolled back: 3 new instances crashed; last exit status 1")
        );
        // The old capacity is already whole (2): nothing to start; old
        // instances run, so the new ones stop and it ends.
        assert_eq!(a, vec![]);
        let old_back = Observed {
            old: vec![inst(0, Running, NOW - 100.0), inst(1, Running, NOW - 100.0)],
            ..three
        };
        let (_, a) = plan(&s, &p3, &old_back, NOW + 3.0);
        assert_eq!(a, vec![Action::Cancel]);
    }

    #[test]
    fn canceling_restores_old_capacity_before_stopping_new() {
        let s = spec(4, 1, vec![1, 2, 4]);
        let p = Progress {
            reason: CANCELING.into(),
            new_instances: 2,
            old_instances: 2,
            healthy: 2,
            ..start(4)
        };
        let seen = Observed {
            new: (0..2).map(|i| inst(i, Running, NOW - 9.0)).collect(),
            old: (0..2).map(|i| inst(i, Running, NOW - 99.0)).collect(),
            ..Default::default()
        };
        let (p2, a) = plan(&s, &p, &seen, NOW);
        assert_eq!(a, vec![Action::StartOld(vec![2, 3])]);
        assert_eq!(p2.old_instances, 4);
        // Until all four old run, the new keep serving.
        let (_, a) = plan(&s, &p2, &seen, NOW + 1.0);
        assert!(a.is_empty());
        let all_old = Observed {
            old: (0..4).map(|i| inst(i, Running, NOW)).collect(),
            ..seen.clone()
        };
        let (_, a) = plan(&s, &p2, &all_old, NOW + 2.0);
        assert_eq!(a, vec![Action::Cancel]);
        // An old version that cannot come back does not wedge it.
        let (_, a) = plan(&s, &p2, &seen, NOW + 61.0);
        assert_eq!(a, vec![Action::Cancel]);
    }

    #[test]
    fn canary_pauses_at_each_step() {
        let s = spec(4, 1, step_targets(4, true, &[25, 50]));
        let (p, a) = plan(&s, &start(4), &Observed::default(), NOW);
        assert_eq!(a, vec![Action::StartNew(vec![0])]);
        let (p, a) = plan(&s, &p, &running_new(1), NOW + 1.0);
        assert_eq!(a, vec![Action::StopOld(vec![3])]);
        assert_eq!(
            (p.reason.as_str(), p.new_instances, p.old_instances),
            (PAUSED, 1, 3)
        );
        // Paused: nothing more happens, even long after.
        let (p2, a) = plan(&s, &p, &running_new(1), NOW + 500.0);
        assert!(a.is_empty());
        assert_eq!(p2.reason, PAUSED);
        // continue (the API moves to the next step).
        let p = Progress {
            reason: DEPLOYING.into(),
            step: 1,
            ..p2
        };
        let (p, a) = plan(&s, &p, &running_new(1), NOW + 501.0);
        assert_eq!(a, vec![Action::StartNew(vec![1])]);
        let (p, a) = plan(&s, &p, &running_new(2), NOW + 502.0);
        assert_eq!(a, vec![Action::StopOld(vec![2])]);
        assert_eq!(p.reason, PAUSED);
        // A crash while paused still counts against the budget.
        let crashed = Observed {
            crashes: 3,
            ..running_new(2)
        };
        let (p3, _) = plan(&s, &p, &crashed, NOW + 503.0);
        assert_eq!(p3.reason, CANCELING);
    }

    #[test]
    fn the_deadline_counts_from_the_last_progress() {
        let s = spec(3, 1, vec![3]);
        let p = Progress {
            new_instances: 2,
            old_instances: 2,
            healthy: 1,
            last_progress_at: NOW,
            ..start(3)
        };
        let seen = Observed {
            new: vec![inst(0, Running, NOW - 10.0), inst(1, Starting, NOW)],
            ..Default::default()
        };
        let (p2, a) = plan(&s, &p, &seen, NOW + 59.0);
        assert!(a.is_empty());
        assert_eq!(p2.reason, DEPLOYING);
        let (p3, _) = plan(&s, &p, &seen, NOW + 61.0);
        assert_eq!(p3.reason, CANCELING);
    }
}
