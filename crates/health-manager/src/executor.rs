//! Carries out the planner's actions: `health.start` / `health.stop` to the
//! controller, plus an HM line in the app's log.

use proto::{subjects, Bus, HealthStart, HealthStop, LogMessage, LogSource, LogStream};

use crate::desired::Desired;
use crate::driver::Effects;
use crate::leader::{LeaderLock, Outcome};
use crate::planner::Action;
use crate::state::CrashHistory;

/// The loop's effects in production: the leader lock (none = always act)
/// and [`execute`] on the bus.
pub struct NatsEffects {
    bus: Bus,
    lock: Option<LeaderLock>,
}

impl NatsEffects {
    pub fn new(bus: Bus, lock: Option<LeaderLock>) -> NatsEffects {
        NatsEffects { bus, lock }
    }
}

impl Effects for NatsEffects {
    async fn leading(&mut self) -> bool {
        match self.lock.as_mut() {
            Some(l) => l.tick().await == Outcome::Leading,
            None => true,
        }
    }

    async fn execute(
        &mut self,
        actions: &[Action],
        desired: &Desired,
        history: &mut CrashHistory,
        now: f64,
    ) {
        execute(&self.bus, actions, desired, history, now).await;
    }

    async fn stop(&mut self) {
        if let Some(l) = self.lock.as_mut() {
            l.release().await;
        }
        let _ = self.bus.flush().await;
    }
}

/// Publishes every action and remembers the starts issued (`now`: the HM's
/// monotonic clock); the HM line goes to the log of the process's app.
pub async fn execute(
    bus: &Bus,
    actions: &[Action],
    desired: &Desired,
    history: &mut CrashHistory,
    now: f64,
) {
    for action in actions {
        let (result, line) = match action {
            Action::Start {
                app_id,
                version,
                indices,
                reason,
            } => {
                tracing::info!(app_id = %app_id, version = %version, indices = ?indices, reason = %reason, "requesting start");
                let msg = HealthStart {
                    app_id: app_id.clone(),
                    version: version.clone(),
                    indices: indices.clone(),
                    reason: reason.clone(),
                };
                let result = bus.publish(subjects::HEALTH_START, &msg).await;
                if result.is_ok() {
                    for &i in indices {
                        history.note_start(app_id, version, i, now);
                    }
                }
                (
                    result,
                    format!("Requesting start of instance(s) {indices:?} (reason: {reason})"),
                )
            }
            Action::Stop {
                app_id,
                version,
                instance_ids,
                reason,
            } => {
                tracing::info!(app_id = %app_id, version = ?version, instance_ids = ?instance_ids, reason = %reason, "requesting stop");
                let msg = HealthStop {
                    app_id: app_id.clone(),
                    version: version.clone(),
                    instance_ids: instance_ids.clone(),
                    reason: reason.clone(),
                };
                let result = bus.publish(subjects::HEALTH_STOP, &msg).await;
                (
                    result,
                    format!(
                        "Requesting stop of {} instance(s) (reason: {reason})",
                        instance_ids.len()
                    ),
                )
            }
        };
        match result {
            Ok(()) => {
                let owner = desired.log_guid(action.app_id());
                let log = LogMessage::new(owner, LogSource::Hm, None, LogStream::Stdout, line);
                if let Err(e) = bus.publish(subjects::logs(owner), &log).await {
                    tracing::debug!(error = %e, "cannot publish HM log line");
                }
            }
            Err(e) => {
                tracing::warn!(app_id = %action.app_id(), error = %e, "cannot publish action")
            }
        }
    }
}
