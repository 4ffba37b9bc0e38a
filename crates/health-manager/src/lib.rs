//! The health manager: compares desired state (controller) with actual state
//! (DEA heartbeats and exits) and asks the controller to start or stop
//! instances (ARCHITECTURE §7).
//!
//! Layout: [`state`] (actual state, crash history), [`desired`] (fetching),
//! [`planner`] (pure decisions), [`executor`] (publishing), [`leader`] (the
//! JetStream KV lock that lets only one of several HMs act). Every HM keeps
//! its views current; only the leader executes plans.

pub mod config;
pub mod desired;
pub mod executor;
pub mod leader;
pub mod planner;
pub mod state;

use std::future::Future;
use std::time::Duration;

use proto::{subjects, Bus, DropletExited, Heartbeat};
use tokio::sync::watch;

pub use config::Config;
pub use planner::{plan, Action};

#[derive(Debug, thiserror::Error)]
pub enum HmError {
    #[error(transparent)]
    Bus(#[from] proto::BusError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad config: {0}")]
    Config(String),
    #[error("desired state: {0}")]
    Desired(String),
}

fn write_ready(path: &std::path::Path) -> Result<(), HmError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, "ready\n")
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| HmError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
}

/// Fetches desired state every `desired_refresh_ms`, publishing each good copy.
fn spawn_desired_fetcher(
    fetcher: desired::Fetcher,
    every: Duration,
    tx: watch::Sender<Option<desired::Desired>>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match fetcher.fetch(proto::now_unix()).await {
                Ok(d) => {
                    if failing {
                        tracing::info!(apps = d.apps.len(), "desired state available again");
                    }
                    failing = false;
                    if tx.send(Some(d)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot fetch desired state");
                    }
                    failing = true;
                }
            }
        }
    });
}

/// Runs the health manager until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), HmError> {
    let bus = Bus::connect(&config.nats_url, "health-manager").await?;
    let mut heartbeats = bus.subscribe::<Heartbeat>(subjects::DEA_HEARTBEAT).await?;
    let mut exits = bus
        .subscribe::<DropletExited>(subjects::DROPLET_EXITED)
        .await?;
    bus.flush().await?;

    let (desired_tx, mut desired_rx) = watch::channel(None);
    let fetcher = desired::Fetcher::new(&config.cc_url, &config.internal_api_token)?;
    spawn_desired_fetcher(
        fetcher,
        Duration::from_millis(config.desired_refresh_ms.max(100)),
        desired_tx,
    );

    let mut bus_events = bus.events();
    let mut lock = config.leader_lock.then(|| {
        leader::LeaderLock::new(
            bus.client().clone(),
            &config.leader_bucket,
            &config.id,
            Duration::from_secs_f64(config.leader_ttl_s.max(0.5)),
        )
    });
    if config.leader_ttl_s * 1000.0 <= config.pass_interval_ms as f64 {
        tracing::warn!(
            leader_ttl_s = config.leader_ttl_s,
            pass_interval_ms = config.pass_interval_ms,
            "leader_ttl_s should exceed the pass interval (the lock is renewed every pass)"
        );
    }

    let mut actual = state::Actual::new(proto::now_unix());
    let mut history = state::CrashHistory::new();
    let mut desired = desired::Desired::default();
    let mut pass = tokio::time::interval(Duration::from_millis(config.pass_interval_ms.max(50)));
    pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    if let Some(path) = &config.addr_file {
        write_ready(path)?;
    }
    tracing::info!(id = %config.id, nats = %config.nats_url, cc = %config.cc_url, leader_lock = config.leader_lock, "health manager running");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            msg = heartbeats.next() => {
                let Some(msg) = msg else { break };
                let now = proto::now_unix();
                for i in &msg.payload.instances {
                    history.settle_start(i);
                }
                actual.apply_heartbeat(msg.payload, now);
                // Crashes seen only in heartbeats (a missed exit message) count too.
                let crashed: Vec<_> = actual.crashed().map(|i| (i.app_id.clone(), i.index, i.instance_id.clone())).collect();
                for (app_id, index, id) in crashed {
                    if history.record_crash(&app_id, index, &id, now, config.crash_reset_s) {
                        tracing::info!(app_id = %app_id, index, instance_id = %id, "crash seen in heartbeat");
                    }
                }
            }
            msg = exits.next() => {
                let Some(msg) = msg else { break };
                let now = proto::now_unix();
                let exit = msg.payload;
                actual.apply_exit(&exit, now);
                if history.observe_exit(&exit, now, config.crash_reset_s) {
                    tracing::info!(app_id = %exit.app_id, index = exit.index, instance_id = %exit.instance_id, "instance crashed");
                }
            }
            changed = desired_rx.changed() => {
                if changed.is_err() { break; }
                if let Some(d) = desired_rx.borrow_and_update().clone() {
                    desired = d;
                }
            }
            ev = bus_events.recv() => match ev {
                Ok(proto::bus::BusEvent::Disconnected) => {
                    tracing::warn!("bus down: not acting until it is back and every DEA heard again");
                    actual.bus_down();
                }
                Ok(proto::bus::BusEvent::Connected) => {
                    tracing::info!(wait_s = config.dea_timeout_s(), "bus back: listening before acting");
                    actual.bus_up(proto::now_unix());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed events: be safe, start listening afresh.
                    actual.bus_up(proto::now_unix());
                    if !bus.is_connected() {
                        actual.bus_down();
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    bus_events = bus.events();
                }
            },
            _ = pass.tick() => {
                let leading = match lock.as_mut() {
                    Some(l) => l.tick().await == leader::Outcome::Leading,
                    None => true,
                };
                let now = proto::now_unix();
                if leading {
                    let actions = plan(&desired, &actual, &history, &config, now);
                    if !actions.is_empty() {
                        executor::execute(&bus, &actions, &mut history, now).await;
                    }
                }
                actual.gc(now, config.dea_timeout_s());
                history.gc(now, config.crash_reset_s, config.start_timeout_s);
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("health manager stopping");
    if let Some(l) = lock.as_mut() {
        l.release().await;
    }
    let _ = bus.flush().await;
    Ok(())
}
