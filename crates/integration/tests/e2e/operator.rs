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
    wait_for(
        "the app through the load balancer",
        Duration::from_secs(30),
        || async {
            integration::http_client()
                .get(format!("http://steady.localhost:{}/", lb.port()))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        },
    )
    .await?;

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
