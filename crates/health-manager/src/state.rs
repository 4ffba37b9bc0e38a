//! What the HM knows: the actual state (heartbeats and exits) and its own
//! memory (crash history, starts it asked for). Pure data, time passed in as
//! seconds of the HM's monotonic clock ([`crate::clock::Clock`]): every time
//! here is when the HM itself received or did something, never a time another
//! host wrote (a DEA's `since` is kept for ordering one DEA's own instances and
//! for display only).

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use proto::{DropletExited, ExitReason, Heartbeat, InstanceHeartbeat, InstanceState};

/// The latest heartbeat of one DEA.
#[derive(Debug, Clone)]
pub struct DeaView {
    /// HM clock: when the HM received it.
    pub received_at: f64,
    pub instances: Vec<InstanceHeartbeat>,
}

/// A live instance as the HM sees it: what its DEA reported, plus when the HM
/// first heard of it (HM clock).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub dea_id: &'a str,
    /// HM clock: receipt of the first heartbeat naming the instance.
    pub first_seen: f64,
    pub instance: &'a InstanceHeartbeat,
}

impl Deref for Seen<'_> {
    type Target = InstanceHeartbeat;
    fn deref(&self) -> &InstanceHeartbeat {
        self.instance
    }
}

/// Actual state from `dea.heartbeat` and `droplet.exited`.
#[derive(Debug, Clone)]
pub struct Actual {
    /// When the HM started listening, or last reconnected to NATS (it acts
    /// only once warm: every live DEA has heartbeated since).
    pub listening_since: f64,
    /// False while the bus is down: nothing heard, nothing trusted.
    pub connected: bool,
    deas: BTreeMap<String, DeaView>,
    /// instance id → when its exit was received; overrides heartbeats received before.
    exited: HashMap<String, f64>,
    /// instance id → when the first heartbeat naming it was received.
    first_seen: HashMap<String, f64>,
}

impl Actual {
    pub fn new(listening_since: f64) -> Actual {
        Actual {
            listening_since,
            connected: true,
            deas: BTreeMap::new(),
            exited: HashMap::new(),
            first_seen: HashMap::new(),
        }
    }

    /// Replaces that DEA's view (`now`: when the HM received it).
    pub fn apply_heartbeat(&mut self, hb: Heartbeat, now: f64) {
        for i in &hb.instances {
            self.first_seen.entry(i.instance_id.clone()).or_insert(now);
        }
        self.deas.insert(
            hb.dea_id,
            DeaView {
                received_at: now,
                instances: hb.instances,
            },
        );
    }

    /// The bus went down: the view is stale until it is back and warm again.
    pub fn bus_down(&mut self) {
        self.connected = false;
    }

    /// The bus is back: listen for a while (3 heartbeat intervals) before
    /// trusting the view again, since DEAs were not heard while it was down.
    pub fn bus_up(&mut self, now: f64) {
        self.connected = true;
        self.listening_since = now;
    }

    /// Marks the instance as gone at once (its next heartbeat confirms).
    pub fn apply_exit(&mut self, exit: &DropletExited, now: f64) {
        self.exited.insert(exit.instance_id.clone(), now);
    }

    /// When the HM received the first heartbeat naming that instance.
    pub fn first_seen(&self, instance_id: &str) -> Option<f64> {
        self.first_seen.get(instance_id).copied()
    }

    /// Live instances (BORN, STARTING, RUNNING, EVACUATING) on DEAs heard from
    /// within `dea_timeout_s`, minus those that exited since their DEA's last heartbeat.
    pub fn live(&self, now: f64, dea_timeout_s: f64) -> Vec<Seen<'_>> {
        self.deas
            .iter()
            .filter(|(_, d)| now - d.received_at <= dea_timeout_s)
            .flat_map(|(dea_id, d)| {
                d.instances
                    .iter()
                    .filter(move |i| {
                        i.state.is_live()
                            && self
                                .exited
                                .get(&i.instance_id)
                                .is_none_or(|&t| t < d.received_at)
                    })
                    .map(move |i| Seen {
                        dea_id,
                        first_seen: self
                            .first_seen
                            .get(&i.instance_id)
                            .copied()
                            .unwrap_or(d.received_at),
                        instance: i,
                    })
            })
            .collect()
    }

    /// Every instance reported CRASHED by a current heartbeat.
    pub fn crashed(&self) -> impl Iterator<Item = &InstanceHeartbeat> {
        self.deas
            .values()
            .flat_map(|d| d.instances.iter())
            .filter(|i| i.state == InstanceState::Crashed)
    }

    /// Forgets DEAs gone for long, old exit marks, and when instances no
    /// longer reported were first seen.
    pub fn gc(&mut self, now: f64, dea_timeout_s: f64) {
        self.deas
            .retain(|_, d| now - d.received_at <= 10.0 * dea_timeout_s.max(1.0));
        self.exited.retain(|_, t| now - *t <= 120.0);
        let reported: std::collections::HashSet<&str> = self
            .deas
            .values()
            .flat_map(|d| d.instances.iter().map(|i| i.instance_id.as_str()))
            .collect();
        self.first_seen
            .retain(|id, _| reported.contains(id.as_str()));
    }

    pub fn dea_count(&self) -> usize {
        self.deas.len()
    }
}

/// Crashes of one (app, index).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrashRecord {
    pub count: u32,
    pub last_crash: f64,
}

/// The HM's memory: crash counts per (app, index) and the starts it issued.
#[derive(Debug, Clone, Default)]
pub struct CrashHistory {
    crashes: HashMap<(String, u32), CrashRecord>,
    /// Crashed instance ids already counted (exit message and heartbeat both report them).
    counted: HashMap<String, f64>,
    /// (app, index, version) → when a start was issued.
    pending: HashMap<(String, u32, String), f64>,
}

impl CrashHistory {
    pub fn new() -> CrashHistory {
        CrashHistory::default()
    }

    /// Counts a crash of `instance_id` once; clears pending starts of that index.
    /// Returns whether it was new.
    pub fn record_crash(
        &mut self,
        app_id: &str,
        index: u32,
        instance_id: &str,
        now: f64,
        reset_s: f64,
    ) -> bool {
        if self.counted.contains_key(instance_id) {
            return false;
        }
        self.counted.insert(instance_id.to_string(), now);
        let rec = self
            .crashes
            .entry((app_id.to_string(), index))
            .or_insert(CrashRecord {
                count: 0,
                last_crash: now,
            });
        if now - rec.last_crash > reset_s {
            rec.count = 0;
        }
        rec.count += 1;
        rec.last_crash = now;
        self.pending
            .retain(|(a, i, _), _| !(a == app_id && *i == index));
        true
    }

    /// Counts an exit message if it is a crash.
    pub fn observe_exit(&mut self, exit: &DropletExited, now: f64, reset_s: f64) -> bool {
        exit.reason == ExitReason::Crashed
            && self.record_crash(&exit.app_id, exit.index, &exit.instance_id, now, reset_s)
    }

    /// The crash record of an index, unless it expired (`reset_s` without crashes).
    pub fn crashes(&self, app_id: &str, index: u32, now: f64, reset_s: f64) -> Option<CrashRecord> {
        self.crashes
            .get(&(app_id.to_string(), index))
            .filter(|r| now - r.last_crash <= reset_s)
            .copied()
    }

    pub fn note_start(&mut self, app_id: &str, version: &str, index: u32, now: f64) {
        self.pending
            .insert((app_id.to_string(), index, version.to_string()), now);
    }

    /// A heartbeat shows (app, index, version) BORN, STARTING or RUNNING: a
    /// start issued for it has landed (EVACUATING instances do not count:
    /// they are what the start replaces).
    pub fn settle_start(&mut self, i: &InstanceHeartbeat) {
        if matches!(
            i.state,
            InstanceState::Born | InstanceState::Starting | InstanceState::Running
        ) {
            self.pending
                .remove(&(i.app_id.clone(), i.index, i.version.clone()));
        }
    }

    /// When a start of that (app, index, version) was issued, if any.
    pub fn pending_start(&self, app_id: &str, index: u32, version: &str) -> Option<f64> {
        self.pending
            .get(&(app_id.to_string(), index, version.to_string()))
            .copied()
    }

    /// Drops expired records.
    pub fn gc(&mut self, now: f64, reset_s: f64, start_timeout_s: f64) {
        self.crashes.retain(|_, r| now - r.last_crash <= reset_s);
        self.counted.retain(|_, t| now - *t <= 600.0);
        self.pending.retain(|_, t| now - *t <= start_timeout_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, index: u32, state: InstanceState) -> InstanceHeartbeat {
        InstanceHeartbeat {
            app_id: "a".into(),
            version: "v".into(),
            index,
            instance_id: id.into(),
            state,
            since: 0.0,
        }
    }

    fn exit(id: &str, reason: ExitReason) -> DropletExited {
        DropletExited {
            app_id: "a".into(),
            version: "v".into(),
            index: 0,
            instance_id: id.into(),
            reason,
            exit_status: Some(1),
            exit_description: String::new(),
            crash_timestamp: 0.0,
        }
    }

    #[test]
    fn heartbeats_replace_views_and_silent_deas_vanish() {
        let mut a = Actual::new(0.0);
        a.apply_heartbeat(
            Heartbeat {
                dea_id: "d1".into(),
                instances: vec![
                    inst("i1", 0, InstanceState::Running),
                    inst("i2", 1, InstanceState::Crashed),
                ],
            },
            10.0,
        );
        a.apply_heartbeat(
            Heartbeat {
                dea_id: "d2".into(),
                instances: vec![inst("i3", 2, InstanceState::Starting)],
            },
            12.0,
        );
        let ids = |a: &Actual, now| {
            a.live(now, 6.0)
                .iter()
                .map(|i| i.instance_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a, 12.0), vec!["i1", "i3"]);
        assert_eq!(a.crashed().count(), 1);
        // d1 silent for more than 3 intervals.
        assert_eq!(ids(&a, 16.5), vec!["i3"]);
        // A new heartbeat replaces the whole list.
        a.apply_heartbeat(
            Heartbeat {
                dea_id: "d2".into(),
                instances: vec![],
            },
            13.0,
        );
        assert!(ids(&a, 13.0) == vec!["i1"]);
        a.gc(1000.0, 6.0);
        assert_eq!(a.dea_count(), 0);
    }

    #[test]
    fn exit_hides_instance_until_next_heartbeat() {
        let mut a = Actual::new(0.0);
        a.apply_heartbeat(
            Heartbeat {
                dea_id: "d".into(),
                instances: vec![inst("i1", 0, InstanceState::Running)],
            },
            10.0,
        );
        a.apply_exit(&exit("i1", ExitReason::Crashed), 11.0);
        assert!(a.live(11.0, 6.0).is_empty());
        // A later heartbeat that still lists it live wins (e.g. a restart with the same id).
        a.apply_heartbeat(
            Heartbeat {
                dea_id: "d".into(),
                instances: vec![inst("i1", 0, InstanceState::Running)],
            },
            12.0,
        );
        assert_eq!(a.live(12.0, 6.0).len(), 1);
    }

    #[test]
    fn crashes_counted_once_expire_and_clear_pending() {
        let mut h = CrashHistory::new();
        h.note_start("a", "v", 0, 5.0);
        assert_eq!(h.pending_start("a", 0, "v"), Some(5.0));
        assert!(h.observe_exit(&exit("i1", ExitReason::Crashed), 10.0, 100.0));
        assert!(
            !h.record_crash("a", 0, "i1", 11.0, 100.0),
            "same instance twice"
        );
        assert!(!h.observe_exit(&exit("i2", ExitReason::Stopped), 11.0, 100.0));
        assert_eq!(h.pending_start("a", 0, "v"), None);
        assert!(h.record_crash("a", 0, "i3", 20.0, 100.0));
        assert_eq!(
            h.crashes("a", 0, 20.0, 100.0),
            Some(CrashRecord {
                count: 2,
                last_crash: 20.0
            })
        );
        assert_eq!(h.crashes("a", 0, 121.0, 100.0), None);
        // After a quiet period the count starts over.
        assert!(h.record_crash("a", 0, "i4", 200.0, 100.0));
        assert_eq!(h.crashes("a", 0, 200.0, 100.0).map(|r| r.count), Some(1));
        h.note_start("a", "v", 1, 200.0);
        h.gc(261.0, 100.0, 60.0);
        assert_eq!(h.pending_start("a", 1, "v"), None);
    }

    #[test]
    fn starts_settle_when_seen_live_but_not_evacuating() {
        let mut h = CrashHistory::new();
        h.note_start("a", "v", 0, 5.0);
        h.settle_start(&inst("x", 0, InstanceState::Evacuating));
        h.settle_start(&inst("y", 0, InstanceState::Crashed));
        assert_eq!(h.pending_start("a", 0, "v"), Some(5.0));
        h.settle_start(&inst("z", 0, InstanceState::Born));
        assert_eq!(h.pending_start("a", 0, "v"), None);
    }

    #[test]
    fn bus_outage_makes_the_view_cold() {
        let mut a = Actual::new(0.0);
        assert!(a.connected);
        a.bus_down();
        assert!(!a.connected);
        a.bus_up(50.0);
        assert!(a.connected);
        assert_eq!(a.listening_since, 50.0);
    }
    /// A DEA's clock 10 minutes ahead, behind or right: liveness and
    /// first sightings are the HM's receipt times, whatever `since` says.
    #[test]
    fn liveness_and_first_sightings_ignore_the_dea_clock() {
        const WALL: f64 = 1_700_000_000.0;
        for offset in [600.0, -600.0, 0.0] {
            let mut a = Actual::new(0.0);
            let beat = |a: &mut Actual, ids: &[&str], at: f64| {
                let instances = ids
                    .iter()
                    .map(|id| InstanceHeartbeat {
                        since: WALL + offset + at,
                        ..inst(id, 0, InstanceState::Running)
                    })
                    .collect();
                a.apply_heartbeat(
                    Heartbeat {
                        dea_id: "d".into(),
                        instances,
                    },
                    at,
                );
            };
            beat(&mut a, &["i1"], 10.0);
            beat(&mut a, &["i1", "i2"], 12.0);
            assert_eq!(a.first_seen("i1"), Some(10.0), "offset {offset}");
            assert_eq!(a.first_seen("i2"), Some(12.0), "offset {offset}");
            let firsts = |a: &Actual, now| {
                a.live(now, 6.0)
                    .iter()
                    .map(|s| (s.instance_id.clone(), s.first_seen))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                firsts(&a, 18.0),
                vec![("i1".to_string(), 10.0), ("i2".to_string(), 12.0)],
                "offset {offset}: heard 6 s ago"
            );
            assert!(firsts(&a, 18.5).is_empty(), "offset {offset}: lost");
            // i1 no longer reported: its first sighting is forgotten.
            beat(&mut a, &["i2"], 20.0);
            a.gc(20.0, 6.0);
            assert_eq!(a.first_seen("i1"), None, "offset {offset}");
            assert_eq!(a.first_seen("i2"), Some(12.0), "offset {offset}");
        }
    }
}
