//! The instance state machine (docs/architecture.md §5.1): a pure table of allowed
//! transitions over `proto::InstanceState`.

use proto::InstanceState;
use InstanceState::*;

/// Whether `from → to` is an allowed transition.
pub fn can_transition(from: InstanceState, to: InstanceState) -> bool {
    match (from, to) {
        (Born, Starting) | (Starting, Running) | (Running, Evacuating) => true,
        // Any state that may still be running something can be stopped.
        (Born | Starting | Running | Evacuating, Stopping) => true,
        (Stopping, Stopped) => true,
        // Unexpected exit (or failed start / health check) of a live instance.
        (Born | Starting | Running | Evacuating, Crashed) => true,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance transition {from:?} -> {to:?}")]
pub struct InvalidTransition {
    pub from: InstanceState,
    pub to: InstanceState,
}

/// A state plus the time it was entered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifecycle {
    pub state: InstanceState,
    /// Unix seconds of the last change.
    pub since: f64,
}

impl Lifecycle {
    pub fn new(now: f64) -> Self {
        Lifecycle {
            state: Born,
            since: now,
        }
    }

    pub fn transition(&mut self, to: InstanceState, now: f64) -> Result<(), InvalidTransition> {
        if !can_transition(self.state, to) {
            return Err(InvalidTransition {
                from: self.state,
                to,
            });
        }
        self.state = to;
        self.since = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path() {
        let mut l = Lifecycle::new(1.0);
        for s in [Starting, Running, Stopping, Stopped] {
            l.transition(s, 2.0).expect("allowed");
        }
        assert_eq!(l.state, Stopped);
        assert_eq!(l.since, 2.0);
    }

    #[test]
    fn live_states_can_crash() {
        for s in [Born, Starting, Running, Evacuating] {
            assert!(can_transition(s, Crashed), "{s:?}");
        }
        for s in [Stopping, Stopped, Crashed] {
            assert!(!can_transition(s, Crashed), "{s:?}");
        }
    }

    #[test]
    fn rejects_invalid() {
        let mut l = Lifecycle::new(0.0);
        assert_eq!(
            l.transition(Running, 1.0),
            Err(InvalidTransition {
                from: Born,
                to: Running
            })
        );
        assert_eq!(l.state, Born);
        assert!(!can_transition(Stopped, Starting));
        assert!(!can_transition(Starting, Evacuating));
        assert!(can_transition(Running, Evacuating));
        assert!(!can_transition(Crashed, Running));
    }
}
