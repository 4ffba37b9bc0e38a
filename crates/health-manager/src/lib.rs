//! The health manager: compares desired state (controller) with actual state
//! (DEA heartbeats and exits) and asks the controller to start or stop
//! instances (docs/architecture.md §13).
//!
//! Layout: [`state`] (actual state, crash history), [`desired`] (fetching),
//! [`planner`] (pure decisions), [`executor`] (publishing), [`leader`] (the
//! JetStream KV lock that lets only one of several HMs act), [`driver`] (the
//! loop, fed through the [`Inputs`] / [`Effects`] seam), [`clock`] (the
//! HM's monotonic clock, the only one liveness and freshness are measured
//! with). Every HM keeps its views current; only the leader executes plans.

pub mod clock;
pub mod config;
pub mod desired;
pub mod driver;
pub mod executor;
pub mod leader;
pub mod planner;
pub mod state;

use std::future::Future;
use std::time::Duration;

use proto::bus::{BusEvent, Subscription};
use proto::{subjects, Bus, DropletExited, Heartbeat};
use tokio::sync::{broadcast, watch};

pub use config::Config;
pub use driver::{Effects, Input, Inputs};
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
    tx: watch::Sender<Option<desired::Fetched>>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match fetcher.fetch().await {
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

/// The loop's inputs in production: the bus's heartbeat and exit
/// subscriptions, its connection events and the desired-state fetcher.
struct NatsInputs {
    bus: Bus,
    heartbeats: Subscription<Heartbeat>,
    exits: Subscription<DropletExited>,
    desired: watch::Receiver<Option<desired::Fetched>>,
    bus_events: broadcast::Receiver<BusEvent>,
}

impl Inputs for NatsInputs {
    async fn next(&mut self) -> Option<Input> {
        loop {
            tokio::select! {
                msg = self.heartbeats.next() => return msg.map(|m| Input::Heartbeat(m.payload)),
                msg = self.exits.next() => return msg.map(|m| Input::Exit(m.payload)),
                changed = self.desired.changed() => {
                    changed.ok()?;
                    if let Some(d) = self.desired.borrow_and_update().clone() {
                        return Some(Input::Desired(d));
                    }
                }
                ev = self.bus_events.recv() => match ev {
                    Ok(BusEvent::Disconnected) => return Some(Input::BusDown),
                    Ok(BusEvent::Connected) => return Some(Input::BusUp),
                    // Missed events: be safe, start listening afresh.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(Input::BusLagged {
                            connected: self.bus.is_connected(),
                        })
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.bus_events = self.bus.events();
                    }
                },
            }
        }
    }
}

/// Runs the health manager until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), HmError> {
    if config.internal_api_token.is_empty() {
        return Err(HmError::Config(
            "internal_api_token is not set: use the controller's internal API token".into(),
        ));
    }
    let clock = clock::Clock::start();
    let bus = Bus::connect_with(&config.nats_url, &config.bus, "health-manager").await?;
    let heartbeats = bus.subscribe::<Heartbeat>(subjects::DEA_HEARTBEAT).await?;
    let exits = bus
        .subscribe::<DropletExited>(subjects::DROPLET_EXITED)
        .await?;
    bus.flush().await?;

    let (desired_tx, desired_rx) = watch::channel(None);
    let fetcher = desired::Fetcher::new(
        &config.cc_url,
        &config.internal_api_token,
        config.tls_ca_file.as_deref(),
    )?;
    spawn_desired_fetcher(
        fetcher,
        Duration::from_millis(config.desired_refresh_ms.max(100)),
        desired_tx,
    );

    let bus_events = bus.events();
    let lock = config.leader_lock.then(|| {
        leader::LeaderLock::new(
            bus.client().clone(),
            &config.leader_bucket,
            &config.id,
            Duration::from_secs_f64(config.leader_ttl_s.max(0.5)),
            config.leader_replicas,
        )
    });
    if config.leader_ttl_s * 1000.0 <= config.pass_interval_ms as f64 {
        tracing::warn!(
            leader_ttl_s = config.leader_ttl_s,
            pass_interval_ms = config.pass_interval_ms,
            "leader_ttl_s should exceed the pass interval (the lock is renewed every pass)"
        );
    }

    if let Some(path) = &config.addr_file {
        write_ready(path)?;
    }
    tracing::info!(id = %config.id, nats = %config.nats_url, cc = %config.cc_url, leader_lock = config.leader_lock, "health manager running");

    let mut inputs = NatsInputs {
        bus: bus.clone(),
        heartbeats,
        exits,
        desired: desired_rx,
        bus_events,
    };
    let mut effects = executor::NatsEffects::new(bus, lock);
    driver::run_loop(&config, clock, &mut inputs, &mut effects, shutdown).await;
    Ok(())
}
