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

use crate::authority::{Authority, Gate, MIN_REFRESH};
use crate::metrics::Metrics;
use crate::table::{Snapshot, Table};
use crate::RouterError;

pub struct Registry {
    bus: Bus,
    routes: Arc<ArcSwap<Snapshot>>,
    start: RouterStart,
    default_stale: Duration,
    metrics: Arc<Metrics>,
    authority: Option<Authority>,
}

/// Assignments are re-read at least this often (a route unmapped stops
/// being admitted).
const ASSIGNMENTS_MAX_AGE: Duration = Duration::from_secs(30);

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
            authority: None,
        }
    }

    /// Admit only registrations of routes the controller assigned to the
    /// registering app (docs/router.md "Route authority").
    pub fn with_authority(mut self, authority: Option<Authority>) -> Registry {
        self.authority = authority;
        self
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
        // The route authority: fetches run in their own task and come back
        // on `fetched`; one at a time, at most every MIN_REFRESH on demand.
        let mut gate = self.authority.as_ref().map(|_| Gate::default());
        let (fetched_tx, mut fetched) =
            tokio::sync::mpsc::channel::<Result<proto::assignments::RouteAssignments, String>>(1);
        // `asked`: when the fetch under way started; `wanted`: a fetch is
        // due (deferred while one runs or the last is under MIN_REFRESH old).
        let mut asked: Option<Instant> = None;
        let mut last_fetch: Option<Instant> = None;
        let mut wanted = false;
        let mut refresh = tokio::time::interval(ASSIGNMENTS_MAX_AGE);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deferred = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(deferred);
        let fetch = |asked: &mut Option<Instant>, last: &mut Option<Instant>| {
            if let Some(a) = &self.authority {
                let now = Instant::now();
                *asked = Some(now);
                *last = Some(now);
                let (a, tx) = (a.clone(), fetched_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(a.fetch().await).await;
                });
            }
        };
        loop {
            tokio::select! {
                msg = register.next() => {
                    let Some(msg) = msg else { break };
                    self.metrics.record_registrations(1, 0, 0);
                    let admitted = match gate.as_mut() {
                        None => Some(msg.payload),
                        Some(g) => {
                            let (now, want) = g.check(&msg.payload, Instant::now());
                            if want && !wanted {
                                wanted = true;
                                let at = last_fetch.map_or(Instant::now(), |t| t + MIN_REFRESH);
                                deferred.as_mut().reset(tokio::time::Instant::from_std(at));
                            }
                            now
                        }
                    };
                    let Some(reg) = admitted else { continue };
                    if table.register(&reg, self.default_stale, Instant::now()) {
                        tracing::debug!(uris = ?reg.uris, host = %reg.host, port = reg.port, "route registered");
                        if !dirty {
                            dirty = true;
                            flush.as_mut().reset(tokio::time::Instant::now() + delay);
                        }
                    }
                }
                msg = unregister.next() => {
                    let Some(msg) = msg else { break };
                    self.metrics.record_registrations(0, 1, 0);
                    let admitted = match &gate {
                        None => Some(msg.payload),
                        Some(g) => g.may_unregister(&msg.payload),
                    };
                    let Some(reg) = admitted else { continue };
                    if table.unregister(&reg) {
                        tracing::info!(uris = ?reg.uris, host = %reg.host, port = reg.port, "route unregistered");
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
                () = &mut deferred, if wanted && asked.is_none() => {
                    wanted = false;
                    fetch(&mut asked, &mut last_fetch);
                }
                r = fetched.recv() => {
                    let started = asked.take().unwrap_or_else(Instant::now);
                    let Some(g) = gate.as_mut() else { continue };
                    match r {
                        Some(Ok(a)) => {
                            let before = g.refused;
                            let now = Instant::now();
                            let mut changed = false;
                            let (admitted, again) = g.refreshed(a, started);
                            for reg in admitted {
                                changed |= table.register(&reg, self.default_stale, now);
                            }
                            if again && !wanted {
                                wanted = true;
                                deferred.as_mut().reset(tokio::time::Instant::from_std(now + MIN_REFRESH));
                            }
                            if g.refused > before {
                                tracing::warn!(refused = g.refused - before, "registrations refused: routes not assigned to the registering app");
                            }
                            if changed && !dirty {
                                dirty = true;
                                flush.as_mut().reset(tokio::time::Instant::now() + delay);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, pending = g.pending(), "cannot read route assignments");
                            if !wanted && g.pending() > 0 {
                                wanted = true;
                                deferred.as_mut().reset(tokio::time::Instant::now() + MIN_REFRESH);
                            }
                        }
                        None => {}
                    }
                }
                _ = refresh.tick(), if gate.is_some() && asked.is_none() => fetch(&mut asked, &mut last_fetch),
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
