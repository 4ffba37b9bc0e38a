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
    /// Carries out a pass's actions (`desired`: the copy they were planned
    /// from); records the starts issued in `history`.
    fn execute(
        &mut self,
        actions: &[Action],
        desired: &Desired,
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
                        effects.execute(&actions, &desired, &mut history, now).await;
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

#[cfg(test)]
mod tests {
    //! The loop under a paused tokio clock, fed through channels: DEAs whose
    //! clocks are 10 minutes ahead of or behind true time (their `since`
    //! values ±600 s off), the controller's copies every 2 s, time moved with
    //! `tokio::time::advance`; what the executor is asked to do is recorded
    //! with the HM time it was asked.

    use super::*;
    use proto::desired::DesiredApp;
    use proto::{InstanceHeartbeat, InstanceState};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use crate::planner::reason;

    /// True Unix time when the HM starts.
    const WALL: f64 = 1_700_000_000.0;

    struct ChannelInputs(mpsc::UnboundedReceiver<Input>);

    impl Inputs for ChannelInputs {
        async fn next(&mut self) -> Option<Input> {
            self.0.recv().await
        }
    }

    /// Always leading; records each action with the HM time, and the starts
    /// in the history as the NATS executor does once published.
    struct Recorder(mpsc::UnboundedSender<(f64, Action)>);

    impl Effects for Recorder {
        async fn leading(&mut self) -> bool {
            true
        }

        async fn execute(
            &mut self,
            actions: &[Action],
            _desired: &Desired,
            history: &mut CrashHistory,
            now: f64,
        ) {
            for a in actions {
                if let Action::Start {
                    app_id,
                    version,
                    indices,
                    ..
                } = a
                {
                    for &i in indices {
                        history.note_start(app_id, version, i, now);
                    }
                }
                let _ = self.0.send((now, a.clone()));
            }
        }

        async fn stop(&mut self) {}
    }

    /// A DEA: its clock's offset from true time and its instances
    /// (id, index, HM time it was started).
    struct Dea {
        id: &'static str,
        offset: f64,
        instances: Vec<(&'static str, u32, f64)>,
        /// Last HM time it heartbeats (then it is lost).
        until: f64,
    }

    impl Dea {
        fn heartbeat(&self, t: f64) -> Option<Input> {
            (t <= self.until).then(|| {
                Input::Heartbeat(Heartbeat {
                    dea_id: self.id.into(),
                    instances: self
                        .instances
                        .iter()
                        .filter(|(_, _, started)| *started <= t)
                        .map(|&(id, index, started)| InstanceHeartbeat {
                            app_id: "a".into(),
                            version: "v1".into(),
                            index,
                            instance_id: id.into(),
                            state: InstanceState::Running,
                            // The DEA's own clock.
                            since: WALL + self.offset + started,
                        })
                        .collect(),
                })
            })
        }
    }

    fn copy(instances: u32, updated_at: &str, started_ago: Duration) -> Input {
        let done = Instant::now();
        Input::Desired(Fetched {
            apps: vec![DesiredApp {
                app_id: "a".into(),
                name: "a".into(),
                version: "v1".into(),
                instances,
                state: "STARTED".into(),
                updated_at: updated_at.into(),
                log_guid: None,
            }],
            started: done - started_ago,
            done,
        })
    }

    /// Lets the loop take everything sent so far.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// Runs the loop for `secs` HM seconds: every 2 s each DEA heartbeats and
    /// a desired copy arrives (`desired(t)`, sent after the heartbeats);
    /// returns what the executor was asked to do.
    async fn drive(
        deas: &[Dea],
        desired: impl Fn(f64) -> Option<Input>,
        secs: u32,
    ) -> Vec<(f64, Action)> {
        let config = Config {
            leader_lock: false,
            pass_interval_ms: 1000,
            heartbeat_interval_s: 2.0,
            desired_refresh_ms: 2000,
            ..Config::default()
        };
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let clock = Clock::start();
        let hm = tokio::spawn(async move {
            let mut inputs = ChannelInputs(in_rx);
            let mut effects = Recorder(out_tx);
            run_loop(
                &config,
                clock,
                &mut inputs,
                &mut effects,
                std::future::pending(),
            )
            .await;
        });
        for s in 0..=secs {
            let t = f64::from(s);
            assert_eq!(clock.now(), t);
            if s % 2 == 0 {
                for d in deas {
                    if let Some(hb) = d.heartbeat(t) {
                        in_tx.send(hb).expect("loop running");
                    }
                }
            }
            if let Some(c) = desired(t) {
                in_tx.send(c).expect("loop running");
            }
            settle().await;
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        drop(in_tx);
        hm.await.expect("loop ends with its inputs");
        let mut got = Vec::new();
        while let Ok(a) = out_rx.try_recv() {
            got.push(a);
        }
        got
    }

    fn two_deas(until: [f64; 2]) -> [Dea; 2] {
        [
            Dea {
                id: "ahead",
                offset: 600.0,
                instances: vec![("a0", 0, -100.0)],
                until: until[0],
            },
            Dea {
                id: "behind",
                offset: -600.0,
                // a2: started by the controller at 20 s (scale-up to 3).
                instances: vec![("a1", 1, -100.0), ("a2", 2, 20.0)],
                until: until[1],
            },
        ]
    }

    /// The controller: 2 instances until it scales to 3 at 19.5 s. The copy
    /// that arrives at 20 s was fetched from 19.4 s, before the scale-up and
    /// before the HM heard of a2; the next one shows 3.
    fn controller(t: f64) -> Option<Input> {
        let old = "2020-01-01T00:00:00Z";
        let new = "2020-01-02T00:00:00Z";
        match t as u32 {
            s if s % 2 == 1 => None,
            s if s < 20 => Some(copy(2, old, Duration::ZERO)),
            20 => Some(copy(2, old, Duration::from_millis(600))),
            _ => Some(copy(3, new, Duration::ZERO)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn skewed_deas_healthy_instances_are_neither_stopped_nor_replaced() {
        let got = drive(&two_deas([f64::MAX, f64::MAX]), controller, 60).await;
        assert_eq!(
            got,
            vec![],
            "a0 (DEA 10 min ahead), a1 and a2 (10 min behind) left alone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_dea_ten_minutes_ahead_is_detected_after_dea_timeout() {
        // "ahead" heartbeats last at 30 s; dea_timeout is 6 s: at the 36 s
        // pass it is still alive, at the 37 s pass it is gone.
        let got = drive(&two_deas([30.0, f64::MAX]), controller, 40).await;
        assert_eq!(
            got,
            vec![(
                37.0,
                Action::Start {
                    app_id: "a".into(),
                    version: "v1".into(),
                    indices: vec![0],
                    reason: reason::MISSING.into(),
                }
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_dea_ten_minutes_behind_is_detected_after_dea_timeout() {
        let got = drive(&two_deas([f64::MAX, 30.0]), controller, 40).await;
        assert_eq!(
            got,
            vec![(
                37.0,
                Action::Start {
                    app_id: "a".into(),
                    version: "v1".into(),
                    indices: vec![1, 2],
                    reason: reason::MISSING.into(),
                }
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_instance_on_a_dea_ten_minutes_ahead_is_still_stopped() {
        // The controller wants 1 instance; "ahead" runs 2 (its a1 looks 10
        // minutes newer than any copy by its own clock): the extra one is
        // stopped once the HM is warm and the app settled.
        let deas = [Dea {
            id: "ahead",
            offset: 600.0,
            instances: vec![("a0", 0, -100.0), ("a1", 1, -50.0)],
            until: f64::MAX,
        }];
        let one = |t: f64| {
            (t as u32)
                .is_multiple_of(2)
                .then(|| copy(1, "2020-01-01T00:00:00Z", Duration::ZERO))
        };
        let got = drive(&deas, one, 8).await;
        let stop = Action::Stop {
            app_id: "a".into(),
            version: Some("v1".into()),
            instance_ids: vec!["a1".into()],
            reason: reason::EXTRA.into(),
        };
        // Asked at the first warm pass, and every pass after while the DEA
        // (not simulated here) still reports it.
        assert_eq!(got.first(), Some(&(6.0, stop.clone())));
        assert!(got.iter().all(|(_, a)| *a == stop), "{got:?}");
    }
}
