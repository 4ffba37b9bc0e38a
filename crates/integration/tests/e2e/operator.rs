//! The operator's path (issue 17): `paas deploy` brings the whole platform
//! up on simulated hosts, each a network namespace of its own on a bridge
//! with its own address, state dir and host agent (`integration::lab`);
//! `cf push` works through HAProxy in front of the routers; upgrades and
//! rollbacks go host by host; lost hosts, a lost NATS node and controller
//! and a partition leave the apps serving. A steady client counts every
//! failed request through the load balancer in each scenario.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use integration::lab::{HostDef, Lab, FOUR_HOSTS};
use integration::steady::{Steady, Tally};
use integration::wait_for;

/// Components on [`FOUR_HOSTS`]: 4 + 4 + 2 + 1.
const FOUR_HOSTS_COMPONENTS: usize = 11;

/// Five hosts: [`FOUR_HOSTS`] and a third DEA host.
const FIVE_HOSTS: [HostDef; 5] = [
    FOUR_HOSTS[0],
    FOUR_HOSTS[1],
    FOUR_HOSTS[2],
    FOUR_HOSTS[3],
    ("h5", &["dea"]),
];

/// `paas status`: every component of the four hosts on `version` and
/// `state` (`running`, or `outdated` when the manifest names another).
async fn assert_all(lab: &Lab, version: &str, state: &str) -> Result<()> {
    let (code, status, err) = lab.paas(&["status"]).await?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        status.matches(&format!(" {version} ")).count(),
        FOUR_HOSTS_COMPONENTS,
        "{status}"
    );
    assert_eq!(
        status.matches(state).count(),
        FOUR_HOSTS_COMPONENTS,
        "{status}"
    );
    Ok(())
}

/// `app`'s live instances when there are three, one per index, none on
/// host address `off`, and the API shows all three RUNNING off it too.
async fn one_per_index(
    lab: &Lab,
    app: &str,
    off: Option<&str>,
) -> Option<BTreeSet<(String, String, String)>> {
    let now = lab.live_instances(app);
    let indexes: BTreeSet<&String> = now.iter().map(|(_, i, _)| i).collect();
    let running = lab.instance_hosts(app).await.ok()?;
    let away = |h: &String| off.is_none_or(|o| h != o);
    (now.len() == 3
        && indexes.len() == 3
        && now.iter().all(|(h, ..)| away(h))
        && running.len() == 3
        && running.iter().all(away))
    .then_some(now)
}

fn no_failures(what: &str, t: &Tally, output: &str) {
    assert_eq!(
        t.failed, 0,
        "failed requests during {what}: {:?}\n{output}",
        t.samples
    );
}

/// v1 on four empty hosts, `cf push` through it with the instances on the
/// DEA hosts, an upgrade to v2, then a v3 whose router never answers its
/// health check and a v4 whose DEA crashes on start: each canary fails,
/// the rollout stops and rolls back, every component on v2 again. A
/// steady client through the load balancer sees no failed request from
/// the upgrade on.
#[tokio::test]
async fn paas_deploys_upgrades_and_rolls_back_the_platform_on_four_hosts() -> Result<()> {
    if !testkit::require_root("paas_deploys_the_platform", &[]) {
        return Ok(());
    }
    let lab = Lab::start(
        &FOUR_HOSTS,
        &[
            ("v1", &[]),
            ("v2", &[]),
            ("v3", &[("router", "exec sleep 3600")]),
            ("v4", &[("dea", "exit 1")]),
        ],
    )
    .await?;

    // A first deploy on four empty hosts.
    let out = lab.deploy_ok("v1").await?;
    assert!(out.contains("Deployment #1: done"), "{out}");
    assert_all(&lab, "v1", "running").await?;

    // cf push through the load balancer; instances on both DEA hosts.
    let spread = lab.push("opapp").await?;
    let distinct: BTreeSet<&String> = spread.iter().collect();
    let deas: BTreeSet<String> = [lab.addr("h3"), lab.addr("h4")].into();
    assert_eq!(
        distinct.len(),
        2,
        "instances spread over the DEA hosts: {spread:?}"
    );
    assert!(distinct.iter().all(|h| deas.contains(*h)), "{spread:?}");
    lab.wait_through_lb("opapp.localhost").await?;
    let steady = Steady::start(lab.lb, "opapp.localhost", "/", 4);

    // An upgrade to v2 touches every host in the sequence.
    let out = lab.deploy_ok("v2").await?;
    assert!(out.contains("Deployment #2: done"), "{out}");
    let upgrade = steady.tally();
    no_failures("the upgrade", &upgrade, &out);
    assert_all(&lab, "v2", "running").await?;

    // v3: the canary router never healthy.
    let (code, out, err) = lab.deploy("v3").await?;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "Deployment #3: rolled_back (canary h1 failed: router v3 not healthy within 30s"
        ),
        "{err}"
    );
    no_failures("the router rollback", &steady.tally(), &err);
    // Healthy on v2, which the manifest (v3) calls outdated.
    assert_all(&lab, "v2", "outdated").await?;
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert!(
        events.contains("#3 rolling_back: canary h1 failed"),
        "{events}"
    );
    assert!(events.contains("#3 rolled_back"), "{events}");

    // v4: the canary DEA crashes on start.
    let (code, out, err) = lab.deploy("v4").await?;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("Deployment #4: rolled_back (canary h3 failed: dea v4 not healthy"),
        "{err}"
    );
    let all = steady.stop().await;
    no_failures("the DEA rollback", &all, &err);
    assert!(all.ok > 100, "{all:?}");
    assert_all(&lab, "v2", "outdated").await?;
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert!(events.contains("dea v2 -> v4 FAILED"), "{events}");
    assert!(
        events.contains("#4 rolled_back: canary h3 failed"),
        "{events}"
    );
    testkit::say(&format!(
        "operator: upgrade {} requests, {} failed; upgrade and both rollbacks {} requests, {} failed",
        upgrade.ok, upgrade.failed, all.ok, all.failed
    ));
    Ok(())
}

/// The deployer killed (SIGKILL) in the middle of an upgrade and started
/// again: it resumes from its timeline, every component ends on v2,
/// nothing is done twice that was done, and no request fails meanwhile.
#[tokio::test]
async fn a_deployer_killed_mid_upgrade_resumes_and_leaves_nothing_half_done() -> Result<()> {
    if !testkit::require_root("a_deployer_killed_mid_upgrade", &[]) {
        return Ok(());
    }
    let lab = Lab::start(&FOUR_HOSTS, &[("v1", &[]), ("v2", &[])]).await?;
    lab.deploy_ok("v1").await?;
    lab.push("resumed").await?;
    lab.wait_through_lb("resumed.localhost").await?;
    let steady = Steady::start(lab.lb, "resumed.localhost", "/", 4);

    // Killed once the controllers' step has been recorded (the NATS nodes
    // done, the routers and DEAs not yet).
    let mut deployer = lab.spawn_deploy("v2")?;
    let events = lab.root.join(".paas/lab/events.jsonl");
    wait_for(
        "the controllers' step",
        Duration::from_secs(120),
        || async {
            let text = std::fs::read_to_string(&events).ok()?;
            text.lines()
                .any(|l| {
                    l.contains("\"deployment\":2")
                        && l.contains("\"applying\"")
                        && l.contains("\"controller\"")
                })
                .then_some(())
        },
    )
    .await?;
    deployer.kill().await?;
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert!(status.contains(" v1 "), "half done when killed: {status}");

    let out = lab.deploy_ok("v2").await?;
    assert!(out.contains("resumed release v2"), "{out}");
    assert!(out.contains("Deployment #2: done"), "{out}");
    let tally = steady.stop().await;
    no_failures("the resumed upgrade", &tally, &out);
    assert_all(&lab, "v2", "running").await?;
    // The NATS nodes, done before the kill, were not done again.
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert_eq!(events.matches("nats v1 -> v2 ok").count(), 3, "{events}");
    Ok(())
}

/// On five hosts, one after the other, with steady clients on the app and
/// the API through the load balancer:
/// - a control-plane host lost (a NATS node, a controller, a router and a
///   health manager): the API and the app keep answering and no instance
///   restarts;
/// - a DEA host cut off for 30 s: its instances start elsewhere; once it
///   is back, the duplicates are stopped (three instances, one per index);
/// - a DEA host lost: its instances run again elsewhere within 10 s.
#[tokio::test]
async fn lost_hosts_and_a_partition_leave_the_apps_and_the_api_answering() -> Result<()> {
    if !testkit::require_root("lost_hosts_and_a_partition", &[]) {
        return Ok(());
    }
    let mut lab = Lab::start(&FIVE_HOSTS, &[("v1", &[])]).await?;
    lab.deploy_ok("v1").await?;
    lab.push("survivor").await?;
    lab.wait_through_lb("survivor.localhost").await?;
    let app = Steady::start(lab.lb, "survivor.localhost", "/", 2);
    let api = Steady::start(lab.lb, "api.sys.localhost", "/", 1);

    // h2 lost: nothing on the DEAs moves.
    let before = lab.live_instances("survivor");
    assert_eq!(before.len(), 3, "{before:?}");
    lab.kill_host("h2");
    // Watched for longer than the health manager takes to call a DEA lost
    // (3 heartbeats, 6 s) and a leader lock to expire (3 s), twice over.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(18) {
        let now = lab.live_instances("survivor");
        assert_eq!(now, before, "instances changed after h2 was lost");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (app_t, api_t) = (app.tally(), api.tally());
    no_failures("h2 lost (app)", &app_t, &lab.logs());
    no_failures("h2 lost (API)", &api_t, &lab.logs());
    assert!(api_t.ok > 10, "{api_t:?}");

    // The DEA host (not h3, see below) with the most instances cut off for
    // 30 s.
    let busiest = |live: &BTreeSet<(String, String, String)>| {
        ["h4", "h5"]
            .into_iter()
            .map(|n| (n, lab.addr(n)))
            .max_by_key(|(_, a)| live.iter().filter(|(h, ..)| h == a).count())
            .unwrap_or(("h5", lab.addr("h5")))
    };
    let (cut_name, cut) = busiest(&before);
    let on_cut = before.iter().filter(|(h, ..)| *h == cut).count();
    assert!(on_cut > 0, "{before:?}");
    let t = Instant::now();
    lab.net.set_link(cut_name, false)?;
    let replaced = wait_for(
        "three instances running off the cut host",
        Duration::from_secs(25),
        || async {
            let now = lab.instance_hosts("survivor").await.ok()?;
            (now.len() == 3 && now.iter().all(|h| *h != cut)).then_some(t.elapsed())
        },
    )
    .await;
    // The partition lasts 30 s, whatever happened meanwhile.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(t.elapsed())).await;
    // The cut host still runs its instances, beside their replacements.
    let during = lab.live_instances("survivor");
    lab.net.set_link(cut_name, true)?;
    let replaced = replaced?;
    assert_eq!(during.len(), 3 + on_cut, "{during:?}");
    // Back: one instance per index, the duplicates stopped.
    let settled = wait_for("the duplicates stopped", Duration::from_secs(60), || {
        one_per_index(&lab, "survivor", None)
    })
    .await?;
    testkit::say(&format!(
        "partition: {on_cut} instances on the cut host {cut_name}, 3 running elsewhere after {:.1} s; {} live at its return; after: {settled:?}",
        replaced.as_secs_f64(),
        during.len()
    ));

    // A DEA host lost (not h3: with h2 gone, its NATS node is needed for a
    // quorum): the one of h4 and h5 with the most instances.
    let (name, addr) = busiest(&settled);
    let lost = settled.iter().filter(|(h, ..)| *h == addr).count();
    assert!(lost > 0, "{settled:?}");
    let t = Instant::now();
    lab.kill_host(name);
    // New instances for the lost host's indexes, running (the API says so)
    // on the other hosts.
    let elsewhere = wait_for(
        "three instances running off the lost host",
        Duration::from_secs(10),
        || one_per_index(&lab, "survivor", Some(&addr)),
    )
    .await;
    let elsewhere = match elsewhere {
        Ok(e) => e,
        Err(e) => {
            let now = lab.instance_hosts("survivor").await;
            panic!(
                "{e}: {name} ({addr}) had {lost} of {settled:?}; now {now:?}; live {:?}\n{}",
                lab.live_instances("survivor"),
                lab.logs()
            );
        }
    };
    let lost_after = t.elapsed();
    lab.wait_through_lb("survivor.localhost").await?;
    let (app_t, api_t) = (app.stop().await, api.stop().await);
    testkit::say(&format!(
        "lost host {name}: {lost} instances running elsewhere ({elsewhere:?}) {:.1} s after the kill; \
         app {} requests, {} failed; API {} requests, {} failed",
        lost_after.as_secs_f64(),
        app_t.ok,
        app_t.failed,
        api_t.ok,
        api_t.failed
    ));
    Ok(())
}
