//! The plan: a pure function of the manifest and what the hosts run
//! (docs/operations.md "How an upgrade proceeds").
//!
//! Role groups change in the manifest's `update.sequence`. Within a group:
//! when no host runs any of its roles yet (a first deploy, or a new group),
//! every host comes up in one wave, and the next group waits for all of
//! them to be healthy (the readiness gate); otherwise the first `canaries`
//! hosts needing a change go one at a time, then the rest `max_in_flight`
//! at a time (of the group's size). A host already on the release and
//! healthy is left alone, so planning again after an interruption resumes.
//! Components a host runs that the manifest no longer gives it are retired
//! last.

use super::manifest::{Manifest, Role};
use super::state::Actual;

/// One component changed on one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub role: Role,
    /// The version it runs now (`None`: not installed).
    pub from: Option<String>,
    pub to: String,
}

impl std::fmt::Display for Change {
    /// `router v1 -> v2` (`(new)` for a component not installed before).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            self.role,
            self.from.as_deref().unwrap_or("(new)"),
            self.to
        )
    }
}

/// The changes one host makes in one wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub host: String,
    pub changes: Vec<Change>,
}

/// Hosts changed together; the next wave starts when all are healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// Index of the role group in the sequence.
    pub group: usize,
    pub canary: bool,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No host runs anything yet.
    FirstDeploy,
    Upgrade,
    /// Everything is on the release and healthy.
    NoChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub release: String,
    pub waves: Vec<Wave>,
    /// (host, role) to stop and remove at the end.
    pub retire: Vec<(String, Role)>,
}

/// Plans the move of every host to the manifest's release.
pub fn plan(m: &Manifest, actual: &Actual) -> Plan {
    let to = m.release.version.clone();
    let mut waves = Vec::new();
    for (group, roles) in m.update.sequence.iter().enumerate() {
        // The group's hosts, in manifest order, with the group's roles each has.
        let members: Vec<(&str, Vec<Role>)> = m
            .hosts
            .iter()
            .filter_map(|h| {
                let mine: Vec<Role> = roles
                    .iter()
                    .copied()
                    .filter(|r| h.roles.contains(r))
                    .collect();
                (!mine.is_empty()).then_some((h.name.as_str(), mine))
            })
            .collect();
        let size = members.len();
        let steps: Vec<Step> = members
            .into_iter()
            .filter_map(|(host, mine)| {
                let changes: Vec<Change> = mine
                    .into_iter()
                    .filter_map(|role| match actual.component(host, role) {
                        Some(c) if c.version == to && c.healthy => None,
                        c => Some(Change {
                            role,
                            from: c.map(|c| c.version.clone()),
                            to: to.clone(),
                        }),
                    })
                    .collect();
                (!changes.is_empty()).then(|| Step {
                    host: host.to_string(),
                    changes,
                })
            })
            .collect();
        if steps.is_empty() {
            continue;
        }
        let bring_up = !roles.iter().any(|r| actual.runs(*r));
        if bring_up {
            waves.push(Wave {
                group,
                canary: false,
                steps,
            });
            continue;
        }
        let canaries = m.update.canaries.min(steps.len());
        let mut rest = steps.into_iter();
        for step in rest.by_ref().take(canaries) {
            waves.push(Wave {
                group,
                canary: true,
                steps: vec![step],
            });
        }
        let at_once = m.update.max_in_flight.of(size);
        let rest: Vec<Step> = rest.collect();
        for chunk in rest.chunks(at_once) {
            waves.push(Wave {
                group,
                canary: false,
                steps: chunk.to_vec(),
            });
        }
    }
    let mut retire = Vec::new();
    for (host, state) in &actual.hosts {
        let wanted = m.hosts.iter().find(|h| &h.name == host);
        for role in state.components.keys() {
            if !wanted.is_some_and(|h| h.roles.contains(role)) {
                retire.push((host.clone(), *role));
            }
        }
    }
    let kind = if waves.is_empty() && retire.is_empty() {
        Kind::NoChange
    } else if actual.is_empty() {
        Kind::FirstDeploy
    } else {
        Kind::Upgrade
    };
    Plan {
        kind,
        release: to,
        waves,
        retire,
    }
}

/// A change the rollout made, as its timeline records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub group: usize,
    pub canary: bool,
    pub host: String,
    pub change: Change,
}

/// The way back from a stopped rollout: every change it made, reversed
/// (`to` → `from`; a component it installed is retired), with the same
/// care: the failing group first and then the earlier ones (reverse
/// sequence order), within a group its canaries first, one at a time, then
/// `max_in_flight` hosts at a time. `done` in the order the changes were
/// made.
pub fn plan_rollback(m: &Manifest, done: &[Done]) -> (Vec<Wave>, Vec<(String, Role)>) {
    let mut waves = Vec::new();
    let mut retire = Vec::new();
    let mut groups: Vec<usize> = done.iter().map(|d| d.group).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups.into_iter().rev() {
        let mut canaries: Vec<Step> = Vec::new();
        let mut others: Vec<Step> = Vec::new();
        for d in done.iter().filter(|d| d.group == group) {
            let Some(from) = d.change.from.clone() else {
                retire.push((d.host.clone(), d.change.role));
                continue;
            };
            let back = Change {
                role: d.change.role,
                from: Some(d.change.to.clone()),
                to: from,
            };
            let list = if d.canary { &mut canaries } else { &mut others };
            match list.iter_mut().find(|s| s.host == d.host) {
                Some(s) => s.changes.push(back),
                None => list.push(Step {
                    host: d.host.clone(),
                    changes: vec![back],
                }),
            }
        }
        for step in canaries {
            waves.push(Wave {
                group,
                canary: true,
                steps: vec![step],
            });
        }
        let size = m
            .update
            .sequence
            .get(group)
            .map(|roles| {
                m.hosts
                    .iter()
                    .filter(|h| roles.iter().any(|r| h.roles.contains(r)))
                    .count()
            })
            .unwrap_or(1);
        for chunk in others.chunks(m.update.max_in_flight.of(size)) {
            waves.push(Wave {
                group,
                canary: false,
                steps: chunk.to_vec(),
            });
        }
    }
    (waves, retire)
}

/// The plan as `paas deploy --dry-run` prints it.
pub fn render(m: &Manifest, p: &Plan) -> String {
    let mut out = String::new();
    let kind = match p.kind {
        Kind::FirstDeploy => "first deploy",
        Kind::Upgrade => "upgrade",
        Kind::NoChange => "no change",
    };
    out.push_str(&format!(
        "Deployment {}: release {} ({kind}, {} hosts)\n",
        m.name,
        p.release,
        m.hosts.len()
    ));
    if p.kind == Kind::NoChange {
        out.push_str("Every component is on the release and healthy.\n");
        return out;
    }
    let mut last_group = None;
    for (i, w) in p.waves.iter().enumerate() {
        if last_group != Some(w.group) {
            let roles: Vec<&str> = m
                .update
                .sequence
                .get(w.group)
                .map(|g| g.iter().map(|r| r.as_str()).collect())
                .unwrap_or_default();
            out.push_str(&format!("group {}: {}\n", w.group + 1, roles.join(", ")));
            last_group = Some(w.group);
        }
        let steps: Vec<String> = w
            .steps
            .iter()
            .map(|s| {
                let changes: Vec<String> = s.changes.iter().map(Change::to_string).collect();
                format!("{} [{}]", s.host, changes.join(", "))
            })
            .collect();
        let tag = if w.canary { " (canary)" } else { "" };
        out.push_str(&format!("  wave {}{tag}: {}\n", i + 1, steps.join("; ")));
    }
    for (host, role) in &p.retire {
        out.push_str(&format!("retire: {role} on {host}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::{InFlight, Manifest};

    /// Six hosts: two control hosts (nats, controller, router, hm), a third
    /// NATS node that is also a DEA, and three more DEAs.
    const SIX: &str = r#"
name: prod
release: {version: v2}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: c1, address: 10.0.0.1, roles: [nats, controller, router, health_manager]}
  - {name: c2, address: 10.0.0.2, roles: [nats, controller, router, health_manager]}
  - {name: d1, address: 10.0.0.3, roles: [nats, dea]}
  - {name: d2, address: 10.0.0.4, roles: [dea]}
  - {name: d3, address: 10.0.0.5, roles: [dea]}
  - {name: d4, address: 10.0.0.6, roles: [dea]}
update: {canaries: 1, max_in_flight: 2, failure_budget: 1, watch_time: 30}
"#;

    fn six() -> Manifest {
        Manifest::parse(SIX).expect("manifest")
    }

    /// Every host running the manifest's roles at `version`.
    fn all_on(m: &Manifest, version: &str) -> Actual {
        let mut a = Actual::default();
        for h in &m.hosts {
            for r in &h.roles {
                a.set(&h.name, *r, version, true);
            }
        }
        a
    }

    /// Each wave as (group, canary, hosts).
    fn shape(p: &[Wave]) -> Vec<(usize, bool, Vec<&str>)> {
        p.iter()
            .map(|w| {
                (
                    w.group,
                    w.canary,
                    w.steps.iter().map(|s| s.host.as_str()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_first_deploy_brings_each_group_up_whole_in_dependency_order() {
        let m = six();
        let p = plan(&m, &Actual::default());
        assert_eq!(p.kind, Kind::FirstDeploy);
        assert_eq!(
            shape(&p.waves),
            vec![
                (0, false, vec!["c1", "c2", "d1"]),
                (1, false, vec!["c1", "c2"]),
                (2, false, vec!["c1", "c2"]),
                (3, false, vec!["d1", "d2", "d3", "d4"]),
            ]
        );
        // A control host's group-3 step starts both its router and its HM.
        let roles: Vec<Role> = p.waves[2].steps[0].changes.iter().map(|c| c.role).collect();
        assert_eq!(roles, vec![Role::Router, Role::HealthManager]);
        assert!(p.waves[0].steps[0].changes[0].from.is_none());
    }

    #[test]
    fn an_upgrade_goes_group_by_group_canary_first_then_in_flight() {
        let m = six();
        let p = plan(&m, &all_on(&m, "v1"));
        assert_eq!(p.kind, Kind::Upgrade);
        assert_eq!(
            shape(&p.waves),
            vec![
                (0, true, vec!["c1"]),
                (0, false, vec!["c2", "d1"]),
                (1, true, vec!["c1"]),
                (1, false, vec!["c2"]),
                (2, true, vec!["c1"]),
                (2, false, vec!["c2"]),
                (3, true, vec!["d1"]),
                (3, false, vec!["d2", "d3"]),
                (3, false, vec!["d4"]),
            ]
        );
        assert_eq!(
            p.waves[0].steps[0].changes,
            vec![Change {
                role: Role::Nats,
                from: Some("v1".into()),
                to: "v2".into()
            }]
        );
        assert!(p.retire.is_empty());
    }

    #[test]
    fn in_flight_one_and_percentages_size_the_waves() {
        for (in_flight, canaries, dea_waves) in [
            (
                InFlight::Count(1),
                1,
                vec![vec!["d1"], vec!["d2"], vec!["d3"], vec!["d4"]],
            ),
            (
                InFlight::Percent(50),
                0,
                vec![vec!["d1", "d2"], vec!["d3", "d4"]],
            ),
            (
                InFlight::Percent(100),
                2,
                vec![vec!["d1"], vec!["d2"], vec!["d3", "d4"]],
            ),
        ] {
            let mut m = six();
            m.update.max_in_flight = in_flight;
            m.update.canaries = canaries;
            let p = plan(&m, &all_on(&m, "v1"));
            let deas: Vec<Vec<&str>> = shape(&p.waves)
                .into_iter()
                .filter(|(g, _, _)| *g == 3)
                .map(|(_, _, h)| h)
                .collect();
            assert_eq!(deas, dea_waves, "{in_flight:?}, {canaries} canaries");
        }
    }

    #[test]
    fn planning_again_resumes_where_a_rollout_stopped() {
        let m = six();
        let mut a = all_on(&m, "v1");
        // NATS done everywhere, c1's controller done, c2's unhealthy on v2.
        for h in ["c1", "c2", "d1"] {
            a.set(h, Role::Nats, "v2", true);
        }
        a.set("c1", Role::Controller, "v2", true);
        a.set("c2", Role::Controller, "v2", false);
        let p = plan(&m, &a);
        let first = &p.waves[0];
        assert_eq!((first.group, first.canary), (1, true));
        assert_eq!(first.steps[0].host, "c2", "the unhealthy one is done again");
        assert_eq!(first.steps[0].changes[0].from.as_deref(), Some("v2"));
        assert!(shape(&p.waves).iter().all(|(g, _, _)| *g != 0));
        // All done: nothing to do.
        let p = plan(&m, &all_on(&m, "v2"));
        assert_eq!(p.kind, Kind::NoChange);
        assert!(p.waves.is_empty());
        assert!(render(&m, &p).contains("Every component is on the release"));
    }

    #[test]
    fn a_new_dea_host_is_added_and_a_removed_one_retired() {
        let m = six();
        let mut a = all_on(&m, "v2");
        a.hosts.remove("d4");
        a.set("old", Role::Dea, "v2", true);
        let p = plan(&m, &a);
        assert_eq!(p.kind, Kind::Upgrade);
        assert_eq!(shape(&p.waves), vec![(3, true, vec!["d4"])]);
        assert_eq!(p.retire, vec![("old".to_string(), Role::Dea)]);
    }

    fn done(group: usize, canary: bool, host: &str, role: Role, from: Option<&str>) -> Done {
        Done {
            group,
            canary,
            host: host.into(),
            change: Change {
                role,
                from: from.map(str::to_string),
                to: "v3".into(),
            },
        }
    }

    #[test]
    fn a_rollback_reverses_the_changes_failing_group_first_canary_first() {
        let m = six();
        let d = vec![
            done(0, true, "c1", Role::Nats, Some("v2")),
            done(0, false, "c2", Role::Nats, Some("v2")),
            done(0, false, "d1", Role::Nats, Some("v2")),
            done(2, true, "c1", Role::Router, Some("v2")),
            done(2, true, "c1", Role::HealthManager, Some("v2")),
        ];
        let (waves, retire) = plan_rollback(&m, &d);
        assert_eq!(
            shape(&waves),
            vec![
                (2, true, vec!["c1"]),
                (0, true, vec!["c1"]),
                (0, false, vec!["c2", "d1"]),
            ]
        );
        assert_eq!(
            waves[0].steps[0].changes,
            vec![
                Change {
                    role: Role::Router,
                    from: Some("v3".into()),
                    to: "v2".into()
                },
                Change {
                    role: Role::HealthManager,
                    from: Some("v3".into()),
                    to: "v2".into()
                },
            ]
        );
        assert!(retire.is_empty());
        // A component the rollout installed is retired, not "rolled back".
        let (waves, retire) = plan_rollback(&m, &[done(3, true, "d4", Role::Dea, None)]);
        assert!(waves.is_empty());
        assert_eq!(retire, vec![("d4".to_string(), Role::Dea)]);
    }

    #[test]
    fn the_dry_run_names_every_wave() {
        let m = six();
        let text = render(&m, &plan(&m, &all_on(&m, "v1")));
        assert!(
            text.starts_with("Deployment prod: release v2 (upgrade, 6 hosts)\n"),
            "{text}"
        );
        assert!(
            text.contains("group 1: nats\n  wave 1 (canary): c1 [nats v1 -> v2]\n"),
            "{text}"
        );
        assert!(
            text.contains("  wave 2: c2 [nats v1 -> v2]; d1 [nats v1 -> v2]\n"),
            "{text}"
        );
        assert!(text.contains("group 3: router, health_manager\n"), "{text}");
        let first = render(&m, &plan(&m, &Actual::default()));
        assert!(first.contains("(first deploy, 6 hosts)"), "{first}");
        assert!(first.contains("c1 [nats (new) -> v2]"), "{first}");
    }
}
