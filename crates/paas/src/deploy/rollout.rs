//! A rollout's judgement and phases, without I/O.
//!
//! After each wave the deployer asks [`judge`] whether to go on: a failed
//! canary stops the rollout at once (that is what canaries are for); any
//! other failed host counts against `failure_budget`, and one failure more
//! than the budget stops it. A stopped rollout rolls back the hosts it
//! changed ([`super::plan::plan_rollback`]); unlike BOSH, which stops and
//! leaves the hosts as they are, it never ends half on one release.

use std::fmt;

/// How one host's step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// Not healthy within `watch_time`, a drain hook that failed, an
    /// agent that could not be reached: why.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    RollBack { reason: String },
}

/// The failures counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub failed: usize,
}

/// Judges a finished wave: `results` are its hosts' outcomes.
pub fn judge(
    canary: bool,
    results: &[(String, Outcome)],
    budget: usize,
    tally: &mut Tally,
) -> Verdict {
    let failed: Vec<(&str, &str)> = results
        .iter()
        .filter_map(|(h, o)| match o {
            Outcome::Failed(why) => Some((h.as_str(), why.as_str())),
            Outcome::Healthy => None,
        })
        .collect();
    tally.failed += failed.len();
    let Some((host, why)) = failed.first() else {
        return Verdict::Continue;
    };
    if canary {
        return Verdict::RollBack {
            reason: format!("canary {host} failed: {why}"),
        };
    }
    if tally.failed > budget {
        return Verdict::RollBack {
            reason: format!(
                "{} hosts failed, more than the failure budget of {budget} (last: {host}: {why})",
                tally.failed
            ),
        };
    }
    Verdict::Continue
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Planned,
    Updating,
    RollingBack,
    /// Every host on the new release.
    Done,
    /// Every changed host back on its previous release.
    RolledBack,
    /// A rollback that could not finish: an operator must look.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    /// The last wave finished and was judged `Continue`.
    Finished,
    /// A wave was judged `RollBack`.
    Stop,
    /// The last rollback wave finished healthy.
    RolledBack,
    /// A rollback wave failed.
    RollbackFailed,
    /// The operator rolls a finished deployment back (`paas rollback`).
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTransition {
    pub from: Phase,
    pub event: Event,
}

impl fmt::Display for BadTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a deployment {:?} cannot take {:?}",
            self.from, self.event
        )
    }
}

impl std::error::Error for BadTransition {}

impl Phase {
    pub fn after(self, event: Event) -> Result<Phase, BadTransition> {
        use Event as E;
        use Phase as P;
        match (self, event) {
            (P::Planned, E::Start) => Ok(P::Updating),
            (P::Updating, E::Finished) => Ok(P::Done),
            (P::Updating, E::Stop) => Ok(P::RollingBack),
            (P::RollingBack, E::RolledBack) => Ok(P::RolledBack),
            (P::RollingBack, E::RollbackFailed) => Ok(P::Failed),
            (P::Done | P::Updating | P::Failed, E::Rollback) => Ok(P::RollingBack),
            (from, event) => Err(BadTransition { from, event }),
        }
    }

    /// Whether the deployment has ended (a new one may start).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::RolledBack | Phase::Failed)
    }

    /// Whether a deployer that restarts must carry this one on: resume an
    /// update, or finish a rollback.
    pub fn must_resume(self) -> bool {
        matches!(self, Phase::Updating | Phase::RollingBack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str) -> (String, Outcome) {
        (h.into(), Outcome::Healthy)
    }

    fn bad(h: &str) -> (String, Outcome) {
        (
            h.into(),
            Outcome::Failed("router not healthy within 30 s".into()),
        )
    }

    #[test]
    fn a_failed_canary_stops_whatever_the_budget() {
        let mut t = Tally::default();
        let v = judge(true, &[bad("c1")], 5, &mut t);
        assert_eq!(
            v,
            Verdict::RollBack {
                reason: "canary c1 failed: router not healthy within 30 s".into()
            }
        );
    }

    #[test]
    fn failures_spend_the_budget_then_stop() {
        // (results, budget, verdict is rollback, failed after)
        type Row<'a> = (&'a [(String, Outcome)], usize, bool, usize);
        let table: &[Row] = &[
            (&[ok("a"), ok("b")], 0, false, 0),
            (&[ok("a"), bad("b")], 1, false, 1),
            (&[bad("c")], 1, true, 2),
        ];
        let mut t = Tally::default();
        for (results, budget, stops, failed) in table {
            let v = judge(false, results, *budget, &mut t);
            assert_eq!(matches!(v, Verdict::RollBack { .. }), *stops, "{results:?}");
            assert_eq!(t.failed, *failed);
        }
        let mut t = Tally::default();
        let v = judge(false, &[bad("d1"), bad("d2")], 1, &mut t);
        assert!(
            matches!(&v, Verdict::RollBack { reason } if reason.starts_with("2 hosts failed, more than the failure budget of 1")),
            "{v:?}"
        );
    }

    #[test]
    fn phases_move_only_forward() {
        use Event as E;
        use Phase as P;
        let table = [
            (P::Planned, E::Start, Some(P::Updating)),
            (P::Updating, E::Finished, Some(P::Done)),
            (P::Updating, E::Stop, Some(P::RollingBack)),
            (P::RollingBack, E::RolledBack, Some(P::RolledBack)),
            (P::RollingBack, E::RollbackFailed, Some(P::Failed)),
            (P::Planned, E::Finished, None),
            (P::Done, E::Start, None),
            (P::RolledBack, E::Stop, None),
            (P::RollingBack, E::Finished, None),
            (P::Done, E::Rollback, Some(P::RollingBack)),
            (P::RolledBack, E::Rollback, None),
        ];
        for (from, event, want) in table {
            assert_eq!(from.after(event).ok(), want, "{from:?} + {event:?}");
        }
        assert!(P::Updating.must_resume() && P::RollingBack.must_resume());
        assert!(!P::Done.must_resume() && P::Done.is_final());
        assert!(!P::Updating.is_final());
    }
}
