//! The HM's loop, apart from NATS and HTTP: it reads [`Input`]s from an
//! [`Inputs`] source, plans every pass, and acts through [`Effects`].
//! Production wires both to the bus, the desired-state fetcher and the leader
//! lock (`lib.rs`, `executor.rs`); tests drive them with channels under a
//! paused tokio clock.
//!
//! Every time the loop hands to `state` and the planner is its own
//! monotonic [`Clock`] at receipt: when a heartbeat, exit or desired copy
//! arrived, never a time written by the DEA or the controller.

use std::future::Future;
use std::time::Duration;

use proto::{DropletExited, Heartbeat};

use crate::clock::Clock;
use crate::config::Config;
use crate::desired::{Desired, Fetched};
use crate::planner::{plan, Action};
use crate::state::{Actual, CrashHistory};

/// What the loop hears.
#[derive(Debug, Clone)]
pub enum Input {
    Heartbeat(Heartbeat),
    Exit(DropletExited),
    /// A good copy of the desired state.
    Desired(Fetched),
    /// The bus went down: the view is stale.
    BusDown,
    /// The bus is (back) up: listen a while before acting.
    BusUp,
    /// Bus events were missed: listen afresh (and stay cold if it is down).
    BusLagged {
        connected: bool,
    },
}

/// Where inputs come from.
pub trait Inputs {
    /// The next input; `None` once a source has ended (the loop stops).
    /// Must be cancel-safe (it is raced against the pass timer).
    fn next(&mut self) -> impl Future<Output = Option<Input>> + Send;
}

/// What the loop does to the world.
pub trait Effects {
    /// Whether this HM may act this pass (renews or takes the leader lock).
    fn leading(&mut self) -> impl Future<Output = bool> + Send;
    /// Carries out a pass's actions; records the starts issued in `history`.
    fn execute(
        &mut self,
        actions: &[Action],
        history: &mut CrashHistory,
        now: f64,
    ) -> impl Future<Output = ()> + Send;
    /// The loop is stopping (release the lock, flush).
    fn stop(&mut self) -> impl Future<Output = ()> + Send;
}

/// Runs the loop until `inputs` ends or `shutdown` resolves. The pass timer
/// and `clock` are tokio's, so a paused test clock drives both.
pub async fn run_loop(
    config: &Config,
    clock: Clock,
    inputs: &mut impl Inputs,
    effects: &mut impl Effects,
    shutdown: impl Future<Output = ()>,
) {
    let mut actual = Actual::new(clock.now());
    let mut history = CrashHistory::new();
    let mut desired = Desired::default();
    let mut pass = tokio::time::interval(Duration::from_millis(config.pass_interval_ms.max(50)));
    pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            input = inputs.next() => {
                let Some(input) = input else { break };
                let now = clock.now();
                match input {
                    Input::Heartbeat(hb) => {
                        for i in &hb.instances {
                            history.settle_start(i);
                        }
                        actual.apply_heartbeat(hb, now);
                        // Crashes seen only in heartbeats (a missed exit message) count too.
                        let crashed: Vec<_> = actual.crashed().map(|i| (i.app_id.clone(), i.index, i.instance_id.clone())).collect();
                        for (app_id, index, id) in crashed {
                            if history.record_crash(&app_id, index, &id, now, config.crash_reset_s) {
                                tracing::info!(app_id = %app_id, index, instance_id = %id, "crash seen in heartbeat");
                            }
                        }
                    }
                    Input::Exit(exit) => {
                        actual.apply_exit(&exit, now);
                        if history.observe_exit(&exit, now, config.crash_reset_s) {
                            tracing::info!(app_id = %exit.app_id, index = exit.index, instance_id = %exit.instance_id, "instance crashed");
                        }
                    }
                    Input::Desired(fetched) => desired = desired.update(fetched, &clock),
                    Input::BusDown => {
                        tracing::warn!("bus down: not acting until it is back and every DEA heard again");
                        actual.bus_down();
                    }
                    Input::BusUp => {
                        tracing::info!(wait_s = config.dea_timeout_s(), "bus back: listening before acting");
                        actual.bus_up(now);
                    }
                    Input::BusLagged { connected } => {
                        actual.bus_up(now);
                        if !connected {
                            actual.bus_down();
                        }
                    }
                }
            }
            _ = pass.tick() => {
                let leading = effects.leading().await;
                let now = clock.now();
                if leading {
                    let actions = plan(&desired, &actual, &history, config, now);
                    if !actions.is_empty() {
                        effects.execute(&actions, &mut history, now).await;
                    }
                }
                actual.gc(now, config.dea_timeout_s());
                history.gc(now, config.crash_reset_s, config.start_timeout_s);
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("health manager stopping");
    effects.stop().await;
}
