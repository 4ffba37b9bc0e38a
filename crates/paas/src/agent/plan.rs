//! The agent's reconciler: a pure function of what the host should run,
//! what it runs, and the time (decide purely, act separately).

use std::time::{Duration, Instant};

use super::spec::{ComponentSpec, Desired};
use crate::deploy::manifest::Role;

/// A component the agent supervises, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// What it was started from.
    pub spec: ComponentSpec,
    /// Its process is alive.
    pub alive: bool,
    /// When a dead one may start again (its backoff).
    pub retry_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drain and stop it (or forget it, when dead).
    Stop(Role),
    /// Start it from its desired spec (installing its release first).
    Start(Role),
}

/// Stops first, in reverse dependency order (DEAs before the bus), then
/// starts in dependency order. A component runs its desired spec or is
/// replaced; a dead one starts again once its backoff has passed.
pub fn plan(desired: &Desired, running: &[Running], now: Instant) -> Vec<Action> {
    let want = |role: Role| desired.components.iter().find(|c| c.role == role);
    let mut stops: Vec<Role> = running
        .iter()
        .filter(|r| want(r.spec.role) != Some(&r.spec))
        .map(|r| r.spec.role)
        .collect();
    let mut starts: Vec<Role> = desired
        .components
        .iter()
        .filter(|d| match running.iter().find(|r| r.spec.role == d.role) {
            None => true,
            Some(r) if r.spec != **d => true,
            Some(r) => !r.alive && r.retry_at.is_none_or(|t| t <= now),
        })
        .map(|d| d.role)
        .collect();
    stops.sort_unstable_by(|a, b| b.cmp(a));
    starts.sort_unstable();
    stops
        .into_iter()
        .map(Action::Stop)
        .chain(starts.into_iter().map(Action::Start))
        .collect()
}

/// How long a component that exited (or could not start) after `restarts`
/// restarts waits before the next start: 1 s, doubling, at most 30 s.
pub fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(5)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::spec::Health;

    fn spec(role: Role, version: &str) -> ComponentSpec {
        ComponentSpec {
            role,
            version: version.into(),
            release_dir: format!("/opt/{version}"),
            argv: vec![format!("bin/{role}")],
            config: None,
            env: Default::default(),
            health: Health::Alive,
            drain: Default::default(),
        }
    }

    fn running(role: Role, version: &str, alive: bool, retry_at: Option<Instant>) -> Running {
        Running {
            spec: spec(role, version),
            alive,
            retry_at,
        }
    }

    #[test]
    fn reconcile_table() {
        use Action::{Start, Stop};
        use Role::{Dea, Nats, Router};
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let d = |list: &[(Role, &str)]| Desired {
            components: list.iter().map(|(r, v)| spec(*r, v)).collect(),
        };
        let cases: Vec<(&str, Desired, Vec<Running>, Vec<Action>)> = vec![
            ("nothing to do", d(&[]), vec![], vec![]),
            (
                "a fresh host starts in dependency order",
                d(&[(Dea, "v1"), (Nats, "v1"), (Router, "v1")]),
                vec![],
                vec![Start(Nats), Start(Router), Start(Dea)],
            ),
            (
                "steady",
                d(&[(Nats, "v1")]),
                vec![running(Nats, "v1", true, None)],
                vec![],
            ),
            (
                "a new version replaces: stop then start",
                d(&[(Router, "v2"), (Dea, "v1")]),
                vec![
                    running(Router, "v1", true, None),
                    running(Dea, "v1", true, None),
                ],
                vec![Stop(Router), Start(Router)],
            ),
            (
                "removed components stop, DEAs before the bus",
                d(&[]),
                vec![
                    running(Nats, "v1", true, None),
                    running(Dea, "v1", true, None),
                ],
                vec![Stop(Dea), Stop(Nats)],
            ),
            (
                "a crashed one waits for its backoff",
                d(&[(Router, "v1")]),
                vec![running(Router, "v1", false, Some(later))],
                vec![],
            ),
            (
                "then starts again",
                d(&[(Router, "v1")]),
                vec![running(Router, "v1", false, Some(now))],
                vec![Start(Router)],
            ),
        ];
        for (what, desired, run, want) in cases {
            assert_eq!(plan(&desired, &run, now), want, "{what}");
        }
        // A changed config with the same version is a new spec: replaced.
        let mut changed = spec(Router, "v1");
        changed.config = Some("drain_wait_s = 5".into());
        let desired = Desired {
            components: vec![changed],
        };
        assert_eq!(
            plan(&desired, &[running(Router, "v1", true, None)], now),
            vec![Stop(Router), Start(Router)]
        );
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let secs: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
