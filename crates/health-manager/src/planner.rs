//! The pure planner: compares desired and actual state and decides what to
//! start and stop. No I/O; time passed in (seconds of the HM's monotonic
//! clock, [`crate::clock::Clock`], like every time in `desired` and `state`).
//! Timestamps other hosts wrote are never compared with it: a DEA's `since`
//! only orders instances of that one DEA.

use std::collections::{BTreeMap, BTreeSet};

use proto::InstanceState;

use crate::config::Config;
use crate::desired::Desired;
use crate::state::{Actual, CrashHistory, Seen};

/// What the executor should ask the controller to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Start {
        app_id: String,
        version: String,
        indices: Vec<u32>,
        reason: String,
    },
    Stop {
        app_id: String,
        version: Option<String>,
        instance_ids: Vec<String>,
        reason: String,
    },
}

impl Action {
    pub fn app_id(&self) -> &str {
        match self {
            Action::Start { app_id, .. } | Action::Stop { app_id, .. } => app_id,
        }
    }
}

pub mod reason {
    pub const MISSING: &str = "missing";
    pub const CRASHED: &str = "crashed";
    pub const EXTRA: &str = "extra";
    pub const OLD_VERSION: &str = "old version";
    pub const DUPLICATE: &str = "duplicate";
    pub const NOT_DESIRED: &str = "app not desired";
    pub const APP_STOPPED: &str = "app stopped";
    pub const EVACUATING: &str = "evacuating";
}

/// Delay before restarting an index that crashed `count` times.
pub fn crash_backoff_s(count: u32, cfg: &Config) -> f64 {
    if count <= cfg.crash_immediate_restarts {
        return 0.0;
    }
    let doublings = (count - cfg.crash_immediate_restarts - 1).min(30);
    (cfg.crash_backoff_initial_s * f64::from(1u32 << doublings)).min(cfg.crash_backoff_max_s)
}

/// Preference when several instances share an index (lower is kept).
fn keep_rank(state: InstanceState) -> u8 {
    match state {
        InstanceState::Running => 0,
        InstanceState::Starting => 1,
        InstanceState::Born => 2,
        _ => 3,
    }
}

/// Whether both views are trustworthy right now: the desired copy is recent,
/// the bus is up, and the HM has listened for 3 heartbeat intervals since it
/// started or reconnected (so every live DEA has been heard).
pub fn can_act(desired: &Desired, actual: &Actual, cfg: &Config, now: f64) -> bool {
    let fresh = desired
        .fetched_at
        .is_some_and(|t| now - t <= cfg.desired_max_age_s());
    let warm = actual.connected && now - actual.listening_since >= cfg.dea_timeout_s();
    fresh && warm
}

/// Which of several instances at one index to keep (lowest first): RUNNING,
/// then STARTING, then BORN; then the one the HM heard of first; among those
/// first named in the same heartbeat, the oldest by its DEA's `since`.
fn keep_order(a: &Seen<'_>, b: &Seen<'_>) -> std::cmp::Ordering {
    keep_rank(a.state)
        .cmp(&keep_rank(b.state))
        .then_with(|| a.first_seen.total_cmp(&b.first_seen))
        // `since` is only comparable within one DEA's clock.
        .then_with(|| a.dea_id.cmp(b.dea_id))
        .then_with(|| a.since.total_cmp(&b.since))
        .then_with(|| a.instance_id.cmp(&b.instance_id))
}

/// Decides the actions of one pass.
///
/// Rules, per app (skipped while the controller itself changed it within two
/// heartbeat intervals, as the HM saw it: see [`Desired::changed_at`]):
/// - app not desired or STOPPED → stop its instances;
/// - instance of another version → stop (`old version`);
/// - index ≥ desired instances → stop (`extra`);
/// - several BORN/STARTING/RUNNING instances at one index → keep one
///   (RUNNING, then STARTING, then BORN; the oldest: see [`keep_order`]),
///   stop the rest;
/// - an index whose only instances are EVACUATING → start a replacement
///   (its DEA stops the old one once the replacement runs);
/// - an index with no live instance → start (`missing`), or after a crash,
///   restart after the crash backoff (`crashed`);
/// - a start already issued and not yet seen is not repeated for
///   `start_timeout_s`; at most `max_starts_per_pass` starts per pass.
///
/// Only instances the HM heard of before the desired copy's fetch started
/// are stopped. `now` and every time in the views are the HM's monotonic
/// clock.
pub fn plan(
    desired: &Desired,
    actual: &Actual,
    history: &CrashHistory,
    cfg: &Config,
    now: f64,
) -> Vec<Action> {
    let Some(fetched_at) = desired.fetched_at else {
        return Vec::new();
    };
    if !can_act(desired, actual, cfg, now) {
        return Vec::new();
    }
    // Only instances the HM heard of before the desired copy's fetch started
    // are stopped: newer ones may be the controller's own recent work. Both
    // times are the HM's receipt times (a DEA's `since` is its own clock).
    let known = |i: &Seen<'_>| i.first_seen < fetched_at;
    let settle = 2.0 * cfg.heartbeat_interval_s;

    let mut by_app: BTreeMap<&str, Vec<Seen<'_>>> = BTreeMap::new();
    for i in actual.live(now, cfg.dea_timeout_s()) {
        by_app
            .entry(i.instance.app_id.as_str())
            .or_default()
            .push(i);
    }
    let app_ids: BTreeSet<&str> = by_app
        .keys()
        .copied()
        .chain(desired.apps.keys().map(String::as_str))
        .collect();

    let mut actions = Vec::new();
    let mut starts_left = cfg.max_starts_per_pass;
    for app_id in app_ids {
        let live = by_app.get(app_id).map(Vec::as_slice).unwrap_or(&[]);
        let app = desired.apps.get(app_id);
        if desired.changed_at(app_id).is_some_and(|t| t > now - settle) {
            continue; // the controller is still acting on it
        }
        let Some(app) = app.filter(|a| a.state == "STARTED") else {
            let ids: Vec<String> = live
                .iter()
                .filter(|i| known(i))
                .map(|i| i.instance_id.clone())
                .collect();
            if !ids.is_empty() {
                let why = if app.is_some() {
                    reason::APP_STOPPED
                } else {
                    reason::NOT_DESIRED
                };
                actions.push(stop(app_id, None, ids, why));
            }
            continue;
        };

        let (mut old, mut extra, mut dups) = (Vec::new(), Vec::new(), Vec::new());
        let mut at_index: BTreeMap<u32, Vec<Seen<'_>>> = BTreeMap::new();
        let mut evacuating: BTreeSet<u32> = BTreeSet::new();
        for i in live {
            if i.version != app.version {
                if known(i) {
                    old.push(i.instance_id.clone());
                }
            } else if i.index >= app.instances {
                if known(i) {
                    extra.push(i.instance_id.clone());
                }
            } else if i.state == InstanceState::Evacuating {
                evacuating.insert(i.index);
            } else {
                at_index.entry(i.index).or_default().push(*i);
            }
        }
        for insts in at_index.values_mut().filter(|v| v.len() > 1) {
            insts.sort_by(keep_order);
            dups.extend(
                insts
                    .iter()
                    .skip(1)
                    .filter(|i| known(i))
                    .map(|i| i.instance_id.clone()),
            );
        }

        let (mut missing, mut crashed, mut replace) = (Vec::new(), Vec::new(), Vec::new());
        for index in (0..app.instances).filter(|i| !at_index.contains_key(i)) {
            if starts_left == 0 {
                break;
            }
            if history
                .pending_start(app_id, index, &app.version)
                .is_some_and(|t| now - t < cfg.start_timeout_s)
            {
                continue;
            }
            if evacuating.contains(&index) {
                replace.push(index);
            } else {
                match history.crashes(app_id, index, now, cfg.crash_reset_s) {
                    Some(r) if now < r.last_crash + crash_backoff_s(r.count, cfg) => continue,
                    Some(_) => crashed.push(index),
                    None => missing.push(index),
                }
            }
            starts_left -= 1;
        }

        for (indices, why) in [
            (missing, reason::MISSING),
            (crashed, reason::CRASHED),
            (replace, reason::EVACUATING),
        ] {
            if !indices.is_empty() {
                actions.push(Action::Start {
                    app_id: app_id.to_string(),
                    version: app.version.clone(),
                    indices,
                    reason: why.to_string(),
                });
            }
        }
        for (ids, version, why) in [
            (old, None, reason::OLD_VERSION),
            (extra, Some(app.version.clone()), reason::EXTRA),
            (dups, Some(app.version.clone()), reason::DUPLICATE),
        ] {
            if !ids.is_empty() {
                actions.push(stop(app_id, version, ids, why));
            }
        }
    }
    actions
}

fn stop(app_id: &str, version: Option<String>, instance_ids: Vec<String>, why: &str) -> Action {
    Action::Stop {
        app_id: app_id.to_string(),
        version,
        instance_ids,
        reason: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::desired::DesiredApp;
    use proto::{Heartbeat, InstanceHeartbeat};
    use InstanceState::*;

    const NOW: f64 = 1000.0;
    const OLD: &str = "1970-01-01T00:00:00Z";

    fn cfg() -> Config {
        Config {
            max_starts_per_pass: 50,
            ..Config::default()
        }
    }

    fn app(id: &str, version: &str, instances: u32, state: &str) -> DesiredApp {
        DesiredApp {
            app_id: id.into(),
            name: id.into(),
            version: version.into(),
            instances,
            state: state.into(),
            updated_at: OLD.into(),
            log_guid: None,
        }
    }

    /// (app, version, index, instance id, state, since)
    type I = (
        &'static str,
        &'static str,
        u32,
        &'static str,
        InstanceState,
        f64,
    );

    /// A heartbeat of `dea` whose clock is `offset` s off the HM's: the
    /// `since` it reports is the fixture's `since` (HM time) plus `offset`.
    fn heartbeat<'a>(dea: &str, instances: impl Iterator<Item = &'a I>, offset: f64) -> Heartbeat {
        Heartbeat {
            dea_id: dea.into(),
            instances: instances
                .map(
                    |&(app_id, version, index, id, state, since)| InstanceHeartbeat {
                        app_id: app_id.into(),
                        version: version.into(),
                        index,
                        instance_id: id.into(),
                        state,
                        since: since + offset,
                    },
                )
                .collect(),
        }
    }

    /// One DEA's instances as the HM heard them: each instance is first named
    /// in a heartbeat received at its `since` (HM time; at `received_at` at the
    /// latest), the DEA's last heartbeat arrives at `received_at`. The DEA's
    /// clock is `offset` s off the HM's.
    fn actual_skewed(instances: &[I], received_at: f64, offset: f64) -> Actual {
        let heard = |i: &I| i.5.min(received_at);
        let mut times: Vec<f64> = instances.iter().map(heard).collect();
        times.push(received_at);
        times.sort_by(f64::total_cmp);
        times.dedup();
        let mut a = Actual::new(0.0);
        for t in times {
            let named = instances.iter().filter(|i| heard(i) <= t);
            a.apply_heartbeat(heartbeat("dea", named, offset), t);
        }
        a
    }

    fn actual(instances: &[I], received_at: f64) -> Actual {
        actual_skewed(instances, received_at, 0.0)
    }

    fn start(app: &str, version: &str, indices: &[u32], why: &str) -> Action {
        Action::Start {
            app_id: app.into(),
            version: version.into(),
            indices: indices.to_vec(),
            reason: why.into(),
        }
    }

    fn stop_(app: &str, version: Option<&str>, ids: &[&str], why: &str) -> Action {
        Action::Stop {
            app_id: app.into(),
            version: version.map(str::to_string),
            instance_ids: ids.iter().map(|s| s.to_string()).collect(),
            reason: why.into(),
        }
    }

    fn run(
        apps: Vec<DesiredApp>,
        instances: &[I],
        history: &CrashHistory,
        now: f64,
    ) -> Vec<Action> {
        run_skewed(apps, instances, history, now, 0.0)
    }

    /// `run` with the DEA's clock `offset` s off the HM's.
    fn run_skewed(
        apps: Vec<DesiredApp>,
        instances: &[I],
        history: &CrashHistory,
        now: f64,
        offset: f64,
    ) -> Vec<Action> {
        // Both views fresh at `now`.
        let desired = Desired::new(apps, now);
        let actual = actual_skewed(instances, now, offset);
        plan(&desired, &actual, history, &cfg(), now)
    }

    struct Case {
        name: &'static str,
        apps: Vec<DesiredApp>,
        instances: Vec<I>,
        expect: Vec<Action>,
    }

    #[test]
    fn table() {
        for c in table_cases() {
            let got = run(c.apps, &c.instances, &CrashHistory::new(), NOW);
            assert_eq!(got, c.expect, "case: {}", c.name);
        }
    }

    /// The rules of `table` and `table_with_history` with the DEA's clock
    /// 10 minutes ahead of the HM's and 10 minutes behind: the same
    /// decisions (its `since` values are its own clock, never compared with
    /// the HM's).
    #[test]
    fn tables_with_the_dea_clock_ten_minutes_off() {
        for offset in [600.0, -600.0] {
            for c in table_cases() {
                let got = run_skewed(c.apps, &c.instances, &CrashHistory::new(), NOW, offset);
                assert_eq!(got, c.expect, "offset {offset}, case: {}", c.name);
            }
            let h = table_history();
            for c in history_cases() {
                let got = run_skewed(
                    vec![app("a", "v1", 5, "STARTED")],
                    &c.instances,
                    &h,
                    NOW + c.at,
                    offset,
                );
                assert_eq!(got, c.expect, "offset {offset}, case: {}", c.name);
            }
        }
    }

    fn table_cases() -> Vec<Case> {
        vec![
            Case {
                name: "converged: nothing to do",
                apps: vec![app("a", "v1", 2, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Running, 1.0),
                    ("a", "v1", 1, "i1", Starting, 1.0),
                ],
                expect: vec![],
            },
            Case {
                name: "missing index",
                apps: vec![app("a", "v1", 3, "STARTED")],
                instances: vec![("a", "v1", 1, "i1", Running, 1.0)],
                expect: vec![start("a", "v1", &[0, 2], reason::MISSING)],
            },
            Case {
                name: "nothing running",
                apps: vec![app("a", "v1", 2, "STARTED"), app("b", "v9", 1, "STARTED")],
                instances: vec![],
                expect: vec![
                    start("a", "v1", &[0, 1], reason::MISSING),
                    start("b", "v9", &[0], reason::MISSING),
                ],
            },
            Case {
                name: "crashed / stopped instances do not count",
                apps: vec![app("a", "v1", 2, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Crashed, 1.0),
                    ("a", "v1", 1, "i1", Stopping, 1.0),
                ],
                expect: vec![start("a", "v1", &[0, 1], reason::MISSING)],
            },
            Case {
                name: "born and starting count as live",
                apps: vec![app("a", "v1", 2, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Born, 1.0),
                    ("a", "v1", 1, "i1", Starting, 1.0),
                ],
                expect: vec![],
            },
            Case {
                name: "evacuating alone: replacement started first, old one left to its DEA",
                apps: vec![app("a", "v1", 3, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Running, 1.0),
                    ("a", "v1", 1, "e1", Evacuating, 1.0),
                    ("a", "v1", 2, "e2", Evacuating, 1.0),
                ],
                expect: vec![start("a", "v1", &[1, 2], reason::EVACUATING)],
            },
            Case {
                name: "evacuating with its replacement starting or running: nothing",
                apps: vec![app("a", "v1", 2, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "e0", Evacuating, 1.0),
                    ("a", "v1", 0, "r0", Starting, 2.0),
                    ("a", "v1", 1, "e1", Evacuating, 1.0),
                    ("a", "v1", 1, "r1", Running, 2.0),
                ],
                expect: vec![],
            },
            Case {
                name: "evacuating at an extra index or old version: stopped, not replaced",
                apps: vec![app("a", "v2", 1, "STARTED")],
                instances: vec![
                    ("a", "v2", 0, "r0", Running, 1.0),
                    ("a", "v2", 1, "e1", Evacuating, 1.0),
                    ("a", "v1", 0, "e0", Evacuating, 1.0),
                ],
                expect: vec![
                    stop_("a", None, &["e0"], reason::OLD_VERSION),
                    stop_("a", Some("v2"), &["e1"], reason::EXTRA),
                ],
            },
            Case {
                name: "evacuating instances of an undesired app are stopped",
                apps: vec![],
                instances: vec![("gone", "v1", 0, "e0", Evacuating, 1.0)],
                expect: vec![stop_("gone", None, &["e0"], reason::NOT_DESIRED)],
            },
            Case {
                name: "duplicates next to an evacuating one: keep one live, ignore evacuating",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "e", Evacuating, 0.5),
                    ("a", "v1", 0, "r1", Running, 2.0),
                    ("a", "v1", 0, "r2", Running, 3.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["r2"], reason::DUPLICATE)],
            },
            Case {
                name: "duplicates: keep born over nothing, starting over born",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "b", Born, 1.0),
                    ("a", "v1", 0, "s", Starting, 2.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["b"], reason::DUPLICATE)],
            },
            Case {
                name: "several apps at once, each with its own rule",
                apps: vec![
                    app("a", "v1", 2, "STARTED"),
                    app("b", "v2", 1, "STARTED"),
                    app("c", "v1", 1, "STOPPED"),
                    app("d", "v1", 1, "STARTED"),
                ],
                instances: vec![
                    ("a", "v1", 0, "a0", Running, 1.0),
                    ("b", "v1", 0, "b0", Running, 1.0),
                    ("c", "v1", 0, "c0", Running, 1.0),
                    ("d", "v1", 0, "d0", Evacuating, 1.0),
                    ("x", "v1", 0, "x0", Running, 1.0),
                ],
                expect: vec![
                    start("a", "v1", &[1], reason::MISSING),
                    start("b", "v2", &[0], reason::MISSING),
                    stop_("b", None, &["b0"], reason::OLD_VERSION),
                    stop_("c", None, &["c0"], reason::APP_STOPPED),
                    start("d", "v1", &[0], reason::EVACUATING),
                    stop_("x", None, &["x0"], reason::NOT_DESIRED),
                ],
            },
            Case {
                name: "extra index",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Running, 1.0),
                    ("a", "v1", 1, "i1", Running, 1.0),
                    ("a", "v1", 5, "i5", Starting, 1.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["i1", "i5"], reason::EXTRA)],
            },
            Case {
                name: "old version stopped and replaced",
                apps: vec![app("a", "v2", 1, "STARTED")],
                instances: vec![("a", "v1", 0, "old", Running, 1.0)],
                expect: vec![
                    start("a", "v2", &[0], reason::MISSING),
                    stop_("a", None, &["old"], reason::OLD_VERSION),
                ],
            },
            Case {
                name: "duplicates: keep running over starting",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "s", Starting, 1.0),
                    ("a", "v1", 0, "r", Running, 5.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["s"], reason::DUPLICATE)],
            },
            Case {
                name: "duplicates: keep the oldest running",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "young", Running, 9.0),
                    ("a", "v1", 0, "old", Running, 2.0),
                    ("a", "v1", 0, "mid", Running, 5.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["mid", "young"], reason::DUPLICATE)],
            },
            Case {
                name: "app not desired",
                apps: vec![],
                instances: vec![
                    ("ghost", "v1", 0, "g0", Running, 1.0),
                    ("ghost", "v1", 1, "g1", Crashed, 1.0),
                ],
                expect: vec![stop_("ghost", None, &["g0"], reason::NOT_DESIRED)],
            },
            Case {
                name: "stopped app with leftovers",
                apps: vec![app("a", "v1", 2, "STOPPED")],
                instances: vec![("a", "v1", 0, "i0", Running, 1.0)],
                expect: vec![stop_("a", None, &["i0"], reason::APP_STOPPED)],
            },
            Case {
                name: "stopped app without instances",
                apps: vec![app("a", "v1", 2, "STOPPED")],
                instances: vec![],
                expect: vec![],
            },
            Case {
                name: "instances newer than the desired copy are not stopped",
                apps: vec![app("a", "v1", 1, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "i0", Running, 1.0),
                    ("a", "v1", 1, "new-extra", Starting, NOW + 0.5),
                    ("a", "v0", 0, "new-old", Running, NOW + 0.5),
                    ("b", "v1", 0, "new-undesired", Running, NOW + 0.5),
                ],
                expect: vec![],
            },
            Case {
                name: "zero instances wanted",
                apps: vec![app("a", "v1", 0, "STARTED")],
                instances: vec![("a", "v1", 0, "i0", Running, 1.0)],
                expect: vec![stop_("a", Some("v1"), &["i0"], reason::EXTRA)],
            },
            Case {
                name: "everything at once",
                apps: vec![app("a", "v2", 2, "STARTED")],
                instances: vec![
                    ("a", "v1", 0, "old0", Running, 1.0),
                    ("a", "v2", 1, "d1", Running, 3.0),
                    ("a", "v2", 1, "d2", Running, 2.0),
                    ("a", "v2", 2, "x", Running, 1.0),
                ],
                expect: vec![
                    start("a", "v2", &[0], reason::MISSING),
                    stop_("a", None, &["old0"], reason::OLD_VERSION),
                    stop_("a", Some("v2"), &["x"], reason::EXTRA),
                    stop_("a", Some("v2"), &["d1"], reason::DUPLICATE),
                ],
            },
        ]
    }

    /// Crash history: index 0 crashed 3 times (immediate restarts used up
    /// on the next one), index 1 crashed 4 times 10 s ago (30 s backoff),
    /// index 2 crashed once long ago (expired). A start of index 3 was
    /// issued 2 s ago (pending), of index 4 10 s ago (timed out).
    fn table_history() -> CrashHistory {
        let mut h = CrashHistory::new();
        crashed_times(&mut h, 0, 3, NOW - 1.0);
        crashed_times(&mut h, 1, 4, NOW - 10.0);
        crashed_times(&mut h, 2, 1, NOW - cfg().crash_reset_s - 5.0);
        h.note_start("a", "v1", 3, NOW - 2.0);
        h.note_start("a", "v1", 4, NOW - 10.0);
        h
    }

    struct HistoryCase {
        name: &'static str,
        at: f64,
        instances: Vec<I>,
        expect: Vec<Action>,
    }

    /// Rules that depend on the HM's memory (crashes, issued starts) and on
    /// time, combined: every case runs at `NOW + at` with the same history.
    #[test]
    fn table_with_history() {
        let h = table_history();
        for c in history_cases() {
            let got = run(
                vec![app("a", "v1", 5, "STARTED")],
                &c.instances,
                &h,
                NOW + c.at,
            );
            assert_eq!(got, c.expect, "case: {}", c.name);
        }
    }

    fn history_cases() -> Vec<HistoryCase> {
        vec![
            HistoryCase {
                name: "nothing live: crashed restarts, backoff waits, expired is missing, pending waits",
                at: 0.0,
                instances: vec![],
                expect: vec![
                    start("a", "v1", &[2, 4], reason::MISSING),
                    start("a", "v1", &[0], reason::CRASHED),
                ],
            },
            HistoryCase {
                name: "after the backoff and the start timeout",
                at: 21.0,
                instances: vec![],
                expect: vec![
                    start("a", "v1", &[2, 3, 4], reason::MISSING),
                    start("a", "v1", &[0, 1], reason::CRASHED),
                ],
            },
            HistoryCase {
                name: "evacuating index ignores its crash backoff",
                at: 0.0,
                instances: vec![
                    ("a", "v1", 0, "r0", Running, 1.0),
                    ("a", "v1", 1, "e1", Evacuating, 1.0),
                    ("a", "v1", 2, "r2", Running, 1.0),
                    ("a", "v1", 3, "e3", Evacuating, 1.0),
                    ("a", "v1", 4, "r4", Running, 1.0),
                ],
                expect: vec![start("a", "v1", &[1], reason::EVACUATING)],
            },
            HistoryCase {
                name: "a live instance at a crashed index: no restart, duplicates still stopped",
                at: 0.0,
                instances: vec![
                    ("a", "v1", 0, "r0", Running, 1.0),
                    ("a", "v1", 0, "r0b", Running, 2.0),
                    ("a", "v1", 1, "r1", Starting, 1.0),
                    ("a", "v1", 2, "r2", Running, 1.0),
                    ("a", "v1", 3, "r3", Running, 1.0),
                    ("a", "v1", 4, "r4", Running, 1.0),
                    ("a", "v1", 5, "x5", Crashed, 1.0),
                ],
                expect: vec![stop_("a", Some("v1"), &["r0b"], reason::DUPLICATE)],
            },
        ]
    }

    #[test]
    fn nothing_while_the_bus_is_down_or_just_back() {
        let desired = Desired::new(vec![app("a", "v1", 1, "STARTED")], NOW);
        let mut a = actual(&[], NOW);
        a.bus_down();
        let h = CrashHistory::new();
        assert!(plan(&desired, &a, &h, &cfg(), NOW).is_empty());
        a.bus_up(NOW - 1.0);
        assert!(plan(&desired, &a, &h, &cfg(), NOW).is_empty());
        assert_eq!(
            plan(&desired, &a, &h, &cfg(), NOW + 5.0).len(),
            1,
            "acts once warm again"
        );
    }

    #[test]
    fn evacuation_replacements_count_against_the_cap() {
        let desired = Desired::new(vec![app("a", "v1", 3, "STARTED")], NOW);
        let c = Config {
            max_starts_per_pass: 2,
            ..cfg()
        };
        let a = actual(
            &[
                ("a", "v1", 0, "e0", Evacuating, 1.0),
                ("a", "v1", 1, "e1", Evacuating, 1.0),
                ("a", "v1", 2, "e2", Evacuating, 1.0),
            ],
            NOW,
        );
        assert_eq!(
            plan(&desired, &a, &CrashHistory::new(), &c, NOW),
            vec![start("a", "v1", &[0, 1], reason::EVACUATING)]
        );
    }

    #[test]
    fn recently_updated_apps_are_left_to_the_controller() {
        // The HM saw the app change 3 s before NOW; 2 intervals = 4 s. (Its
        // `updated_at`, the controller's clock, says nothing: long ago.)
        let run = |apps: Vec<DesiredApp>, instances: &[I], h: &CrashHistory, now: f64| {
            let mut desired = Desired::new(apps, now);
            desired.changed_at.insert("a".into(), NOW - 3.0);
            plan(&desired, &actual(instances, now), h, &cfg(), now)
        };
        let mut a = app("a", "v1", 2, "STARTED");
        assert!(run(vec![a.clone()], &[], &CrashHistory::new(), NOW).is_empty());
        // Also for stops.
        a.state = "STOPPED".into();
        assert!(run(
            vec![a.clone()],
            &[("a", "v1", 0, "i", Running, 1.0)],
            &CrashHistory::new(),
            NOW
        )
        .is_empty());
        // Once settled, act.
        assert_eq!(
            run(
                vec![a],
                &[("a", "v1", 0, "i", Running, 1.0)],
                &CrashHistory::new(),
                NOW + 2.0
            )
            .len(),
            1
        );
    }

    #[test]
    fn acts_only_on_fresh_desired_and_warm_actual() {
        let c = cfg();
        let apps = vec![app("a", "v1", 1, "STARTED")];
        let h = CrashHistory::new();
        // Never fetched.
        assert!(plan(&Desired::default(), &actual(&[], NOW), &h, &c, NOW).is_empty());
        // Fetched 7 s ago with a 2 s refresh: stale.
        assert!(plan(
            &Desired::new(apps.clone(), NOW - 7.0),
            &actual(&[], NOW),
            &h,
            &c,
            NOW
        )
        .is_empty());
        assert_eq!(
            plan(
                &Desired::new(apps.clone(), NOW - 5.0),
                &actual(&[], NOW),
                &h,
                &c,
                NOW
            )
            .len(),
            1
        );
        // Listening for less than 3 heartbeat intervals: not warm.
        let mut cold = actual(&[], NOW);
        cold.listening_since = NOW - 5.0;
        assert!(plan(&Desired::new(apps.clone(), NOW), &cold, &h, &c, NOW).is_empty());
        cold.listening_since = NOW - 6.0;
        assert_eq!(plan(&Desired::new(apps, NOW), &cold, &h, &c, NOW).len(), 1);
    }

    #[test]
    fn silent_dea_means_missing_instances() {
        let apps = vec![app("a", "v1", 1, "STARTED")];
        let desired = Desired::new(apps, NOW + 10.0);
        let a = actual(&[("a", "v1", 0, "i0", Running, 1.0)], NOW);
        assert!(plan(&desired, &a, &CrashHistory::new(), &cfg(), NOW + 6.0).is_empty());
        assert_eq!(
            plan(&desired, &a, &CrashHistory::new(), &cfg(), NOW + 6.5),
            vec![start("a", "v1", &[0], reason::MISSING)]
        );
    }

    #[test]
    fn crash_exit_restarts_at_once_without_a_heartbeat() {
        let desired = Desired::new(vec![app("a", "v1", 1, "STARTED")], NOW);
        let mut a = actual(&[("a", "v1", 0, "i0", Running, 1.0)], NOW);
        let mut h = CrashHistory::new();
        let exit = proto::DropletExited {
            app_id: "a".into(),
            version: "v1".into(),
            index: 0,
            instance_id: "i0".into(),
            reason: proto::ExitReason::Crashed,
            exit_status: Some(1),
            exit_description: "boom".into(),
            crash_timestamp: NOW,
        };
        a.apply_exit(&exit, NOW + 0.1);
        h.observe_exit(&exit, NOW + 0.1, cfg().crash_reset_s);
        assert_eq!(
            plan(&desired, &a, &h, &cfg(), NOW + 0.2),
            vec![start("a", "v1", &[0], reason::CRASHED)]
        );
    }

    fn crashed_times(h: &mut CrashHistory, index: u32, n: u32, at: f64) {
        for k in 0..n {
            h.record_crash(
                "a",
                index,
                &format!("c{index}-{k}-{at}"),
                at,
                cfg().crash_reset_s,
            );
        }
    }

    #[test]
    fn crash_backoff_schedule() {
        let c = cfg();
        let delays: Vec<f64> = (1..=12).map(|n| crash_backoff_s(n, &c)).collect();
        assert_eq!(
            delays,
            vec![0.0, 0.0, 0.0, 30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 960.0, 960.0, 960.0]
        );
        assert_eq!(crash_backoff_s(u32::MAX, &c), 960.0);
        let tuned = Config {
            crash_immediate_restarts: 1,
            crash_backoff_initial_s: 5.0,
            crash_backoff_max_s: 12.0,
            ..cfg()
        };
        assert_eq!(
            (1..=4)
                .map(|n| crash_backoff_s(n, &tuned))
                .collect::<Vec<_>>(),
            vec![0.0, 5.0, 10.0, 12.0]
        );
    }

    #[test]
    fn crashed_index_waits_for_its_backoff() {
        let apps = || vec![app("a", "v1", 3, "STARTED")];
        let mut h = CrashHistory::new();
        crashed_times(&mut h, 0, 3, NOW - 1.0); // 3 crashes: immediate
        crashed_times(&mut h, 1, 4, NOW - 10.0); // 4 crashes: wait 30 s
        crashed_times(&mut h, 2, 6, NOW - 99.0); // 6 crashes: wait 120 s
        assert_eq!(
            run(apps(), &[], &h, NOW),
            vec![start("a", "v1", &[0], reason::CRASHED)]
        );
        assert_eq!(
            run(apps(), &[], &h, NOW + 20.0),
            vec![start("a", "v1", &[0, 1], reason::CRASHED)]
        );
        assert_eq!(
            run(apps(), &[], &h, NOW + 21.0),
            vec![start("a", "v1", &[0, 1, 2], reason::CRASHED)]
        );
    }

    #[test]
    fn crash_counts_expire_after_a_quiet_period() {
        let mut h = CrashHistory::new();
        crashed_times(&mut h, 0, 10, NOW - cfg().crash_reset_s - 1.0);
        assert_eq!(
            run(vec![app("a", "v1", 1, "STARTED")], &[], &h, NOW),
            vec![start("a", "v1", &[0], reason::MISSING)]
        );
    }

    #[test]
    fn issued_starts_are_not_repeated_until_timeout_or_crash() {
        let apps = || vec![app("a", "v1", 2, "STARTED")];
        let mut h = CrashHistory::new();
        h.note_start("a", "v1", 0, NOW - 1.0);
        h.note_start("a", "v1", 1, NOW - cfg().start_timeout_s - 1.0);
        h.note_start("a", "v0", 1, NOW - 1.0); // other version: irrelevant
        assert_eq!(
            run(apps(), &[], &h, NOW),
            vec![start("a", "v1", &[1], reason::MISSING)]
        );
        // A crash of index 0 clears its pending start.
        h.record_crash("a", 0, "c", NOW, cfg().crash_reset_s);
        h.note_start("a", "v1", 1, NOW);
        assert_eq!(
            run(apps(), &[], &h, NOW),
            vec![start("a", "v1", &[0], reason::CRASHED)]
        );
    }

    #[test]
    fn starts_per_pass_are_capped() {
        let desired = Desired::new(
            vec![app("a", "v1", 3, "STARTED"), app("b", "v1", 3, "STARTED")],
            NOW,
        );
        let c = Config {
            max_starts_per_pass: 4,
            ..cfg()
        };
        let got = plan(&desired, &actual(&[], NOW), &CrashHistory::new(), &c, NOW);
        assert_eq!(
            got,
            vec![
                start("a", "v1", &[0, 1, 2], reason::MISSING),
                start("b", "v1", &[0], reason::MISSING)
            ]
        );
        // Stops are not capped.
        let c = Config {
            max_starts_per_pass: 0,
            ..cfg()
        };
        let got = plan(
            &desired,
            &actual(&[("b", "v0", 0, "o", Running, 1.0)], NOW),
            &CrashHistory::new(),
            &c,
            NOW,
        );
        assert_eq!(got, vec![stop_("b", None, &["o"], reason::OLD_VERSION)]);
    }
    /// Two DEAs, one 10 minutes ahead of true time and one 10 minutes
    /// behind, whose `since` values are Unix seconds on their own clocks
    /// while the HM's clock counts from its start: healthy instances on both
    /// are left alone, one the controller started after the desired copy was
    /// fetched is not taken for an extra, stale ones are stopped, and
    /// whichever DEA goes silent is detected after `dea_timeout`.
    #[test]
    fn deas_ten_minutes_ahead_and_behind() {
        const WALL: f64 = 1_700_000_000.0; // true Unix time at HM time 0
                                           // (dea, clock offset, instances with the HM time they appeared)
        let deas: [(&str, f64, Vec<I>); 2] = [
            (
                "ahead",
                600.0,
                vec![
                    ("a", "v1", 0, "a0", Running, 100.0),
                    ("a", "v0", 0, "old", Running, 50.0),
                    ("a", "v1", 5, "x5", Running, 100.0),
                ],
            ),
            (
                "behind",
                -600.0,
                vec![
                    ("a", "v1", 1, "a1", Running, 100.0),
                    // Started by the controller after the copy below was fetched.
                    ("a", "v1", 2, "a2", Starting, NOW - 0.5),
                ],
            ),
        ];
        let beat = |a: &mut Actual, dea: usize, t: f64| {
            let (id, offset, insts) = &deas[dea];
            let named = insts.iter().filter(|i| i.5 <= t);
            a.apply_heartbeat(heartbeat(id, named, WALL + offset), t);
        };
        for lost in [0, 1] {
            let mut a = Actual::new(0.0);
            // Every DEA heartbeats every 2 s from HM time 40 to NOW.
            let mut t = 40.0;
            while t <= NOW {
                beat(&mut a, 0, t);
                beat(&mut a, 1, t);
                t += 2.0;
            }
            let h = CrashHistory::new();
            let copy = Desired::new(vec![app("a", "v1", 2, "STARTED")], NOW - 1.0);
            assert_eq!(
                plan(&copy, &a, &h, &cfg(), NOW),
                vec![
                    stop_("a", None, &["old"], reason::OLD_VERSION),
                    stop_("a", Some("v1"), &["x5"], reason::EXTRA),
                ],
                "lost {lost}: a0, a1 (healthy) and a2 (newer than the copy) kept"
            );
            // The controller's next copy has 3 instances; one DEA goes silent.
            let copy = Desired::new(vec![app("a", "v1", 3, "STARTED")], NOW + 5.0);
            let mut t = NOW + 2.0;
            while t <= NOW + 10.0 {
                beat(&mut a, 1 - lost, t);
                t += 2.0;
            }
            let gone = ["a0", "a1 and a2"][lost];
            let indices: &[u32] = [&[0][..], &[1, 2][..]][lost];
            let stops = vec![
                stop_("a", None, &["old"], reason::OLD_VERSION),
                stop_("a", Some("v1"), &["x5"], reason::EXTRA),
            ];
            let got = plan(&copy, &a, &h, &cfg(), NOW + 6.0);
            assert_eq!(got, stops, "lost {lost}: {gone}'s DEA heard 6 s ago");
            let got = plan(&copy, &a, &h, &cfg(), NOW + 6.5);
            let mut want = vec![start("a", "v1", indices, reason::MISSING)];
            if lost == 1 {
                want.extend(stops);
            }
            assert_eq!(got, want, "lost {lost}: {gone}'s DEA silent for 6.5 s");
        }
    }
}
