//! The NATS side: learns routes from `router.register` / `router.unregister`,
//! prunes stale ones (not while disconnected), announces `router.start` and
//! answers `router.greet`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use proto::bus::BusEvent;
use proto::{subjects, Bus, RouteRegistration, RouterStart};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::table::{Snapshot, Table};
use crate::RouterError;

pub struct Registry {
    bus: Bus,
    routes: Arc<ArcSwap<Snapshot>>,
    start: RouterStart,
    default_stale: Duration,
    metrics: Arc<Metrics>,
}

/// Shortest delay between a change and the snapshot that shows it.
const MIN_PUBLISH_DELAY: Duration = Duration::from_millis(5);
/// Longest delay, however large the table.
const MAX_PUBLISH_DELAY: Duration = Duration::from_millis(250);

impl Registry {
    pub fn new(
        bus: Bus,
        routes: Arc<ArcSwap<Snapshot>>,
        start: RouterStart,
        default_stale: Duration,
        metrics: Arc<Metrics>,
    ) -> Registry {
        Registry {
            bus,
            routes,
            start,
            default_stale,
            metrics,
        }
    }

    /// Subscribes, announces `router.start`, then runs until `stop`.
    pub async fn spawn(self, stop: watch::Receiver<bool>) -> Result<JoinHandle<()>, RouterError> {
        let register = self
            .bus
            .subscribe::<RouteRegistration>(subjects::ROUTER_REGISTER)
            .await?;
        let unregister = self
            .bus
            .subscribe::<RouteRegistration>(subjects::ROUTER_UNREGISTER)
            .await?;
        let greet = self
            .bus
            .subscribe::<serde_json::Value>(subjects::ROUTER_GREET)
            .await?;
        let events = self.bus.events();
        self.announce().await;
        Ok(tokio::spawn(
            self.run(register, unregister, greet, events, stop),
        ))
    }

    async fn announce(&self) {
        match self.bus.publish(subjects::ROUTER_START, &self.start).await {
            Ok(()) => tracing::info!(id = %self.start.id, "announced router.start"),
            Err(e) => tracing::warn!(error = %e, "cannot announce router.start"),
        }
    }

    async fn run(
        self,
        mut register: proto::bus::Subscription<RouteRegistration>,
        mut unregister: proto::bus::Subscription<RouteRegistration>,
        mut greet: proto::bus::Subscription<serde_json::Value>,
        mut events: broadcast::Receiver<BusEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut table = Table::new();
        let mut connected = true;
        self.metrics.set_nats_connected(self.bus.is_connected());
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Changes are batched: a snapshot is built at most once per `delay`
        // (which grows with the cost of building one), so that a burst of
        // registrations costs a few snapshots, not one per message.
        let flush = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush);
        let mut dirty = false;
        let mut delay = MIN_PUBLISH_DELAY;
        loop {
            tokio::select! {
                msg = register.next() => {
                    let Some(msg) = msg else { break };
                    self.metrics.record_registrations(1, 0, 0);
                    if table.register(&msg.payload, self.default_stale, Instant::now()) {
                        tracing::debug!(uris = ?msg.payload.uris, host = %msg.payload.host, port = msg.payload.port, "route registered");
                        if !dirty {
                            dirty = true;
                            flush.as_mut().reset(tokio::time::Instant::now() + delay);
                        }
                    }
                }
                msg = unregister.next() => {
                    let Some(msg) = msg else { break };
                    self.metrics.record_registrations(0, 1, 0);
                    if table.unregister(&msg.payload) {
                        tracing::info!(uris = ?msg.payload.uris, host = %msg.payload.host, port = msg.payload.port, "route unregistered");
                        if !dirty {
                            dirty = true;
                            flush.as_mut().reset(tokio::time::Instant::now() + delay);
                        }
                    }
                }
                () = &mut flush, if dirty => {
                    dirty = false;
                    let t = Instant::now();
                    self.publish(&mut table);
                    delay = (t.elapsed() * 10).clamp(MIN_PUBLISH_DELAY, MAX_PUBLISH_DELAY);
                }
                msg = greet.next() => {
                    let Some(msg) = msg else { break };
                    if let Some(reply) = msg.reply {
                        if let Err(e) = self.bus.reply(&reply, &self.start).await {
                            tracing::warn!(error = %e, "cannot answer router.greet");
                        }
                    }
                }
                ev = events.recv() => match ev {
                    Ok(BusEvent::Connected) => {
                        tracing::info!("bus reconnected: resuming pruning, announcing router.start");
                        connected = true;
                        self.metrics.set_nats_connected(true);
                        table.touch_all(Instant::now());
                        self.announce().await;
                    }
                    Ok(BusEvent::Disconnected) => {
                        tracing::warn!("bus disconnected: pruning suspended");
                        connected = false;
                        self.metrics.set_nats_connected(false);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        connected = self.bus.is_connected();
                        self.metrics.set_nats_connected(connected);
                    }
                    Err(broadcast::error::RecvError::Closed) => {}
                },
                _ = tick.tick() => {
                    if connected && self.bus.is_connected() {
                        let removed = table.prune(Instant::now());
                        if removed > 0 {
                            self.metrics.record_registrations(0, 0, removed as u64);
                            tracing::info!(removed, routes = table.len(), "pruned stale endpoints");
                            self.publish(&mut table);
                            dirty = false;
                        }
                    }
                }
                _ = stop.changed() => break,
            }
        }
        tracing::debug!("registry stopped");
    }

    fn publish(&self, table: &mut Table) {
        self.routes.store(Arc::new(table.snapshot()));
    }
}
