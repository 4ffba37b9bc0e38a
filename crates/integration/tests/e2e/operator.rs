//! The operator's path (issue 17): `paas deploy` brings the whole platform
//! up on four simulated hosts, each a host agent on a loopback address of
//! its own (127.0.0.1-4) with its own state dir, from release directories;
//! `cf push` works through it, the instances spread over the DEA hosts,
//! upgrades and rollbacks go host by host. Not yet network namespaces: the
//! hosts share the machine's network stack.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use integration::lab::{Lab, ONE_ROUTER, TWO_ROUTERS};
use integration::steady::Steady;
use integration::wait_for;

#[tokio::test]
async fn paas_deploys_upgrades_and_rolls_back_the_platform_on_four_hosts() -> Result<()> {
    if !testkit::require_root("paas_deploys_the_platform", &[]) {
        return Ok(());
    }
    let lab = Lab::start(
        &ONE_ROUTER,
        &[
            ("v1", &[]),
            ("v2", &[]),
            ("v3", &[("router", "exec sleep 3600")]),
        ],
    )
    .await?;

    // A first deploy on four empty hosts.
    let out = lab.deploy_ok("v1").await?;
    assert!(out.contains("Deployment #1: done"), "{out}");
    let (code, status, err) = lab.paas(&["status"]).await?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(status.matches("running").count(), 9, "{status}");

    // cf push through the deployed router; instances on the DEA hosts.
    let spread = lab.push("opapp").await?;
    let distinct: BTreeSet<&String> = spread.iter().collect();
    assert!(
        distinct.len() >= 2,
        "instances spread over the DEA hosts: {spread:?}"
    );
    assert!(!distinct.contains(&"127.0.0.1".to_string()), "{spread:?}");
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("http://127.0.0.1:{}/", lab.router_port))
            .header("host", "opapp.localhost")
            .timeout(Duration::from_secs(5))
            .send()
    };
    assert_eq!(get().await?.status().as_u16(), 200);

    // An upgrade to v2 touches every host in the sequence.
    let out = lab.deploy_ok("v2").await?;
    assert!(out.contains("Deployment #2: done"), "{out}");
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert_eq!(status.matches(" v2 ").count(), 9, "{status}");
    assert_eq!(status.matches("running").count(), 9, "{status}");
    wait_for(
        "the app after the upgrade",
        Duration::from_secs(60),
        || async { get().await.ok().filter(|r| r.status().as_u16() == 200) },
    )
    .await?;

    // A v3 whose router never answers its health check: the canary fails,
    // the rollout stops and rolls back, every component on v2 again.
    let (code, out, err) = lab.deploy("v3").await?;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "Deployment #3: rolled_back (canary h1 failed: router v3 not healthy within 60s"
        ),
        "{err}"
    );
    // Healthy on v2, which the manifest (v3) calls outdated.
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert_eq!(status.matches(" v2 ").count(), 9, "{status}");
    assert_eq!(status.matches("outdated").count(), 9, "{status}");
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert!(
        events.contains("#3 rolling_back: canary h1 failed"),
        "{events}"
    );
    assert!(events.contains("#3 rolled_back"), "{events}");
    wait_for(
        "the app after the rollback",
        Duration::from_secs(60),
        || async { get().await.ok().filter(|r| r.status().as_u16() == 200) },
    )
    .await?;
    Ok(())
}

/// Through HAProxy in front of two routers, a steady client sees no failed
/// request while every host moves to v2, nor while a v3 whose DEA crashes
/// on start fails at its canary and rolls back.
#[tokio::test]
async fn an_upgrade_and_a_rollback_behind_a_load_balancer_fail_no_request() -> Result<()> {
    if !testkit::require_root("an_upgrade_behind_a_load_balancer", &[]) {
        return Ok(());
    }
    let mut lab = Lab::start(
        &TWO_ROUTERS,
        &[("v1", &[]), ("v2", &[]), ("v3", &[("dea", "exit 1")])],
    )
    .await?;
    lab.deploy_ok("v1").await?;
    lab.push("steady").await?;
    let lb = lab.start_lb()?;
    lab.wait_through_lb(lb, "steady.localhost").await?;

    let steady = Steady::start(lb, "steady.localhost", "/", 4);
    let out = lab.deploy_ok("v2").await?;
    assert!(out.contains("Deployment #2: done"), "{out}");
    let upgrade = steady.stop().await;
    assert_eq!(
        upgrade.failed, 0,
        "failed requests during the upgrade: {:?}\n{out}",
        upgrade.samples
    );
    assert!(upgrade.ok > 100, "{upgrade:?}");
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert_eq!(status.matches(" v2 ").count(), 10, "{status}");

    let steady = Steady::start(lb, "steady.localhost", "/", 4);
    let (code, out, err) = lab.deploy("v3").await?;
    let rollback = steady.stop().await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("Deployment #3: rolled_back (canary h2 failed: dea v3 not healthy"),
        "{err}"
    );
    assert_eq!(
        rollback.failed, 0,
        "failed requests during the rollback: {:?}\n{err}",
        rollback.samples
    );
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert_eq!(status.matches(" v2 ").count(), 10, "{status}");
    assert_eq!(status.matches("outdated").count(), 10, "{status}");
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert!(events.contains("dea v2 -> v3 FAILED"), "{events}");
    assert!(
        events.contains("#3 rolled_back: canary h2 failed"),
        "{events}"
    );
    testkit::say(&format!(
        "operator: upgrade {} requests, {} failed; rollback {} requests, {} failed",
        upgrade.ok, upgrade.failed, rollback.ok, rollback.failed
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
    let mut lab = Lab::start(&TWO_ROUTERS, &[("v1", &[]), ("v2", &[])]).await?;
    lab.deploy_ok("v1").await?;
    lab.push("resumed").await?;
    let lb = lab.start_lb()?;
    lab.wait_through_lb(lb, "resumed.localhost").await?;
    let steady = Steady::start(lb, "resumed.localhost", "/", 4);

    // Killed once the controller's step has been recorded (the NATS nodes
    // done, the routers and DEAs not yet).
    let mut deployer = lab.spawn_deploy("v2")?;
    let events = lab.root.join(".paas/lab/events.jsonl");
    wait_for(
        "the controller's step",
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
    assert_eq!(tally.failed, 0, "{:?}", tally.samples);
    let (_, status, _) = lab.paas(&["status"]).await?;
    assert_eq!(status.matches(" v2 ").count(), 10, "{status}");
    assert_eq!(status.matches("running").count(), 10, "{status}");
    // The NATS nodes, done before the kill, were not done again.
    let (_, events, _) = lab.paas(&["events"]).await?;
    assert_eq!(events.matches("nats v1 -> v2 ok").count(), 3, "{events}");
    Ok(())
}

/// A lost DEA host (its agent, components and containers killed): the
/// health manager starts its instances on the other DEA hosts, and all
/// three run again within 10 s of the kill.
#[tokio::test]
async fn a_lost_dea_host_has_its_instances_started_elsewhere_within_ten_seconds() -> Result<()> {
    if !testkit::require_root("a_lost_dea_host", &[]) {
        return Ok(());
    }
    let mut lab = Lab::start(&ONE_ROUTER, &[("v1", &[])]).await?;
    lab.deploy_ok("v1").await?;
    let spread = lab.push("survivor").await?;
    // The DEA host with the most instances goes.
    let (name, addr) = ONE_ROUTER
        .iter()
        .filter(|(_, _, roles)| roles.contains("dea"))
        .map(|(n, a, _)| (*n, *a))
        .max_by_key(|(_, a)| spread.iter().filter(|h| h.as_str() == *a).count())
        .unwrap_or(("h2", "127.0.0.2"));
    let lost = spread.iter().filter(|h| h.as_str() == addr).count();
    assert!(lost > 0, "{spread:?}");
    let t = std::time::Instant::now();
    lab.kill_host(name);
    let elsewhere = wait_for(
        "three instances running off the lost host",
        Duration::from_secs(10),
        || async {
            let now = lab.instance_hosts("survivor").await.ok()?;
            (now.len() == 3 && now.iter().all(|h| h != addr)).then_some(now)
        },
    )
    .await?;
    testkit::say(&format!(
        "lost host {name}: {lost} instances running elsewhere ({elsewhere:?}) {:.1} s after the kill",
        t.elapsed().as_secs_f64()
    ));
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/", lab.router_port))
        .header("host", "survivor.localhost")
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    Ok(())
}
