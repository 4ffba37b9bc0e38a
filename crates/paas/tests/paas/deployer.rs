//! The deployer's executor on simulated hosts: a first deploy and an
//! upgrade touch every host in the sequence, bad releases (a router that
//! fails its health check, a DEA that crashes) stop at the canary and roll
//! back by themselves, the failure budget, `paas rollback`, and a deployer
//! killed mid-upgrade or mid-rollback that resumes from its timeline.

use std::time::Duration;

use paas::deploy::execute::{deploy, rollback, Ended};
use paas::deploy::manifest::{Manifest, Role};
use paas::deploy::rollout::Phase;
use paas::deploy::sim::SimHosts;
use paas::deploy::timeline::{self, Timeline};

const FOUR: &str = r#"
name: lab
release: {version: VERSION}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: h1, address: 10.0.0.1, roles: [nats, controller, router, health_manager]}
  - {name: h2, address: 10.0.0.2, roles: [nats, dea]}
  - {name: h3, address: 10.0.0.3, roles: [nats, dea]}
  - {name: h4, address: 10.0.0.4, roles: [dea]}
update: {canaries: 1, max_in_flight: 1, failure_budget: 0, watch_time: 30s}
"#;

fn manifest(version: &str) -> Manifest {
    Manifest::parse(&FOUR.replace("VERSION", version)).expect("manifest")
}

/// Every component of the manifest on `version` and healthy.
fn all_on(hosts: &SimHosts, m: &Manifest, version: &str) -> Result<(), String> {
    let w = hosts.world.lock().map_err(|e| e.to_string())?;
    for h in &m.hosts {
        for r in &h.roles {
            match w.actual.component(&h.name, *r) {
                Some(c) if c.version == version && c.healthy => {}
                other => return Err(format!("{} {r}: {other:?}", h.name)),
            }
        }
    }
    Ok(())
}

/// The hosts each step touched, in order, from `from` on.
fn touched(hosts: &SimHosts, from: usize) -> Vec<(String, Vec<Role>)> {
    let w = hosts.world.lock().expect("world");
    w.applied[from..]
        .iter()
        .map(|(h, c)| (h.clone(), c.iter().map(|c| c.role).collect()))
        .collect()
}

async fn run(m: &Manifest, hosts: &mut SimHosts, dir: &std::path::Path) -> Ended {
    let mut t = Timeline::open(dir).expect("timeline");
    deploy(m, hosts, &mut t).await.expect("deploy")
}

#[tokio::test]
async fn a_first_deploy_and_an_upgrade_touch_every_host_in_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    let v1 = manifest("v1");
    let ended = run(&v1, &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::Done);
    all_on(&hosts, &v1, "v1").expect("all on v1");

    let before = hosts.world.lock().expect("world").applied.len();
    let v2 = manifest("v2");
    let ended = run(&v2, &mut hosts, dir.path()).await;
    assert_eq!((ended.deployment, ended.phase), (2, Phase::Done));
    all_on(&hosts, &v2, "v2").expect("all on v2");
    let s = |h: &str, r: &[Role]| (h.to_string(), r.to_vec());
    assert_eq!(
        touched(&hosts, before),
        vec![
            s("h1", &[Role::Nats]),
            s("h2", &[Role::Nats]),
            s("h3", &[Role::Nats]),
            s("h1", &[Role::Controller]),
            s("h1", &[Role::Router, Role::HealthManager]),
            s("h2", &[Role::Dea]),
            s("h3", &[Role::Dea]),
            s("h4", &[Role::Dea]),
        ],
        "group by group, canary first, one host at a time"
    );
    // Nothing left to do: a third run changes nothing.
    let before = hosts.world.lock().expect("world").applied.len();
    let ended = run(&v2, &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::Done);
    assert!(touched(&hosts, before).is_empty());
}

/// Upgrades from v2 to a v3 whose `bad` role fails; the rollout stops at
/// that group's canary and every host is back on v2.
async fn bad_release_rolls_back(bad: Role, why: &str, canary: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    let v2 = manifest("v2");
    run(&v2, &mut hosts, dir.path()).await;
    hosts
        .world
        .lock()
        .expect("world")
        .bad
        .insert(("v3".into(), bad), why.into());
    let ended = run(&manifest("v3"), &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::RolledBack, "{ended:?}");
    let reason = ended.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("canary {canary} failed: {bad} v3 not healthy")),
        "{reason}"
    );
    all_on(&hosts, &v2, "v2").expect("every host back on v2");
    let events =
        timeline::render(&timeline::read_events(&dir.path().join("events.jsonl")).expect("events"));
    assert!(events.contains("#2 rolling_back: canary"), "{events}");
    assert!(events.contains("#2 rolled_back: canary"), "{events}");
    assert!(events.contains("FAILED"), "{events}");
    // The DEAs (the group after the routers) were never touched.
    if bad == Role::Router {
        let w = hosts.world.lock().expect("world");
        assert!(
            !w.applied
                .iter()
                .any(|(_, c)| c.iter().any(|c| c.to == "v3" && c.role == Role::Dea)),
            "{:?}",
            w.applied
        );
    }
}

#[tokio::test]
async fn a_router_that_fails_its_health_check_rolls_back_at_the_canary() {
    bad_release_rolls_back(Role::Router, "/health answers 503", "h1").await;
}

#[tokio::test]
async fn a_dea_that_crashes_on_start_rolls_back_at_the_canary() {
    bad_release_rolls_back(Role::Dea, "exited (exit status: 1)", "h2").await;
}

#[tokio::test]
async fn the_failure_budget_lets_one_host_fail_and_stops_at_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    let text = FOUR.replace("failure_budget: 0", "failure_budget: 1");
    let m = |v: &str| Manifest::parse(&text.replace("VERSION", v)).expect("manifest");
    run(&m("v1"), &mut hosts, dir.path()).await;
    // h4's agent does not answer: one failure, within the budget.
    hosts.world.lock().expect("world").down = vec!["h4".into()];
    let ended = run(&m("v2"), &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::Done, "{ended:?}");
    // Two hosts down: h3 fails with the NATS nodes, then with the DEAs,
    // which is one failure more than the budget; its rollback cannot reach
    // h3 either, so the deployment fails for an operator to look at.
    hosts.world.lock().expect("world").down = vec!["h3".into(), "h4".into()];
    let ended = run(&m("v3"), &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::Failed, "{ended:?}");
    let reason = ended.reason.unwrap_or_default();
    assert!(reason.contains("rollback of h3 failed"), "{reason}");
}

#[tokio::test]
async fn paas_rollback_returns_a_finished_deployment_to_the_previous_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    run(&manifest("v1"), &mut hosts, dir.path()).await;
    run(&manifest("v2"), &mut hosts, dir.path()).await;
    let mut t = Timeline::open(dir.path()).expect("timeline");
    let ended = rollback(&manifest("v2"), &mut hosts, &mut t)
        .await
        .expect("rollback")
        .expect("something to roll back");
    assert_eq!(ended.phase, Phase::RolledBack);
    all_on(&hosts, &manifest("v1"), "v1").expect("back on v1");
}

/// Runs a deploy that hangs after `after` steps and is killed there.
async fn killed_after(m: &Manifest, hosts: &SimHosts, dir: &std::path::Path, after: usize) {
    let mut hanging = SimHosts {
        world: hosts.world.clone(),
        hang_after: Some(after),
    };
    let (m, dir) = (m.clone(), dir.to_path_buf());
    let task = tokio::spawn(async move {
        let mut t = Timeline::open(&dir).expect("timeline");
        let _ = deploy(&m, &mut hanging, &mut t).await;
    });
    testkit::wait_for(
        "the deployer to reach its step",
        Duration::from_secs(10),
        || async { (hosts.world.lock().ok()?.applied.len() >= after).then_some(()) },
    )
    .await
    .expect("steps");
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn a_deployer_killed_mid_upgrade_resumes_from_its_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    run(&manifest("v1"), &mut hosts, dir.path()).await;
    let start = hosts.world.lock().expect("world").applied.len();
    let v2 = manifest("v2");
    killed_after(&v2, &hosts, dir.path(), start + 4).await;
    // A deploy of another release is refused while this one is unfinished.
    let mut t = Timeline::open(dir.path()).expect("timeline after the kill");
    let err = deploy(&manifest("v9"), &mut hosts, &mut t)
        .await
        .expect_err("unfinished");
    assert!(
        err.to_string()
            .contains("deployment #2 of release v2 is unfinished"),
        "{err}"
    );
    let ended = deploy(&v2, &mut hosts, &mut t).await.expect("resume");
    assert_eq!((ended.deployment, ended.phase), (2, Phase::Done));
    all_on(&hosts, &v2, "v2").expect("all on v2");
    // Resumed, not redone: the 8 steps of the upgrade, each host once.
    assert_eq!(touched(&hosts, start).len(), 8);
    let events = timeline::render(t.events());
    assert!(events.contains("#2 resumed release v2"), "{events}");
}

#[tokio::test]
async fn a_deployer_killed_mid_rollback_finishes_it_when_started_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = SimHosts::default();
    run(&manifest("v2"), &mut hosts, dir.path()).await;
    hosts
        .world
        .lock()
        .expect("world")
        .bad
        .insert(("v3".into(), Role::Router), "/health answers 503".into());
    let start = hosts.world.lock().expect("world").applied.len();
    // Up: nats x3, controller, router canary (fails); back: the router,
    // then one step more before the kill.
    killed_after(&manifest("v3"), &hosts, dir.path(), start + 7).await;
    let ended = run(&manifest("v3"), &mut hosts, dir.path()).await;
    assert_eq!(ended.phase, Phase::RolledBack, "{ended:?}");
    all_on(&hosts, &manifest("v2"), "v2").expect("all back on v2");
}
