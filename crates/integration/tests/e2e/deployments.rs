//! Issue 16: deploys that never take the site down. Each test pushes a
//! versioned app with the real `cf`, keeps a steady client (and, where
//! said, 5 s requests) going through the router for the whole test, and
//! counts every answer that is not 2xx.

use std::time::Duration;

use anyhow::{anyhow, Result};
use integration::steady::{Steady, Tally};
use integration::{wait_for, CfOutput, Platform};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// An app directory of the `verapp` fixture (a threaded server answering
/// its version; `/slow` takes 5 s; `/missing` is 404; the version `crash`
/// exits 1): `version` served, `extra` manifest lines for web.
fn app_dir(name: &str, version: &str, extra: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        integration::fixture("verapp").join("server.py"),
        dir.path().join("server.py"),
    )?;
    std::fs::write(dir.path().join("version.txt"), format!("{version}\n"))?;
    std::fs::write(
        dir.path().join("manifest.yml"),
        format!(
            "applications:\n- name: {name}\n  buildpack: binary\n  memory: 64M\n  instances: 4\n  command: python3 server.py\n{extra}"
        ),
    )?;
    Ok(dir)
}

fn path(d: &tempfile::TempDir) -> String {
    d.path().to_str().unwrap_or_default().to_string()
}

async fn push(p: &Platform, d: &tempfile::TempDir, flags: &[&str]) -> Result<CfOutput> {
    let dir = path(d);
    let manifest = format!("{dir}/manifest.yml");
    let mut args = vec!["push", "-f", &manifest, "-p", &dir];
    args.extend_from_slice(flags);
    p.cf(&args).await
}

/// The app's deployments, oldest first.
async fn deployments(p: &Platform, token: &str, guid: &str) -> Result<Vec<Value>> {
    let v = p
        .api_get(
            token,
            &format!("/v3/deployments?app_guids={guid}&per_page=100"),
        )
        .await?;
    Ok(v["resources"].as_array().cloned().unwrap_or_default())
}

/// How many endpoints the router has for `host`.
async fn endpoints(p: &Platform, host: &str) -> Option<usize> {
    let url = format!("http://{}/routes", p.router_admin_addr);
    let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    Some(v.get(host).and_then(Value::as_array).map_or(0, Vec::len))
}

/// Waits until the router has exactly `n` endpoints for `host` and 20
/// requests in a row answer `version` (the old instances are gone).
async fn only(p: &Platform, host: &str, n: usize, version: &str) -> Result<()> {
    wait_for(
        &format!("{host}: {n} endpoints all {version}"),
        T,
        || async {
            if endpoints(p, host).await? != n {
                return None;
            }
            for _ in 0..20 {
                let (s, body) = p.get_via_router(host, "/").await.ok()?;
                if s != 200 || body.trim() != version {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))
}

fn no_failures(what: &str, t: &Tally) {
    assert!(t.ok > 0, "{what}: no request answered: {t:?}");
    assert_eq!(t.failed, 0, "{what}: failed requests: {t:?}");
}

async fn started(p: &Platform, name: &str, version: &str) -> Result<(String, String)> {
    let d = app_dir(name, version, "")?;
    let out = push(p, &d, &[]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, name).await?;
    only(p, &format!("{name}.localhost"), 4, version).await?;
    Ok((token, guid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_pushes_and_a_rollback_fail_no_request() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let host = "roll.localhost";
    let (token, guid) = started(&p, "roll", "v1").await?;
    let steady = Steady::start(p.router_addr, host, "/", 2);
    // Requests of 5 s, in flight on old instances when they are replaced.
    let slow = Steady::start(p.router_addr, host, "/slow", 4);

    // v2 over v1, one at a time.
    let v2 = app_dir("roll", "v2", "")?;
    let out = push(&p, &v2, &["--strategy", "rolling"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    assert!(out.stdout.contains("Waiting for app to deploy"), "{out:?}");
    assert!(
        out.stdout.contains("new instances running") && out.stdout.contains("old instance"),
        "no progress line: {out:?}"
    );
    only(&p, host, 4, "v2").await?;
    let ds = deployments(&p, &token, &guid).await?;
    let last = ds.last().cloned().unwrap_or_default();
    assert_eq!(last["status"]["value"], "FINALIZED", "{last}");
    assert_eq!(last["status"]["reason"], "DEPLOYED", "{last}");
    assert_eq!(last["strategy"], "rolling", "{last}");
    assert_eq!(last["options"]["max_in_flight"], 1, "{last}");
    no_failures("v1 → v2", &steady.tally());

    // v3 over v2, two at a time.
    let v3 = app_dir("roll", "v3", "")?;
    let out = push(&p, &v3, &["--strategy", "rolling", "--max-in-flight", "2"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v3").await?;
    let last = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(last["status"]["reason"], "DEPLOYED", "{last}");
    assert_eq!(last["options"]["max_in_flight"], 2, "{last}");

    // Back to revision 1 (v1's droplet).
    let out = p.cf(&["rollback", "roll", "--version", "1", "-f"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v1").await?;
    let revs = p.cf_ok(&["revisions", "roll"]).await?;
    assert!(
        revs.stdout.contains("Rolled back to revision 1."),
        "{revs:?}"
    );

    // A rolling restage stages the newest package (v3's, as CF does) into
    // a new droplet: no failure either.
    let out = p.cf(&["restage", "roll", "--strategy", "rolling"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v3").await?;

    let t = steady.stop().await;
    no_failures("rolling pushes and rollback", &t);
    for v in ["v1", "v2", "v3"] {
        assert!(t.bodies.contains_key(v), "{v} never served: {t:?}");
    }
    assert_eq!(t.last, "v3", "{t:?}");
    let t = slow.stop().await;
    no_failures("5 s requests", &t);
    Ok(())
}

/// A new version that crashes, one that fails its http health check and
/// one that never becomes ready: each push exits non-zero, the deployment
/// ends CANCELED with the reason, and the app serves the old version
/// throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_roll_back_by_themselves() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let host = "bad.localhost";
    let (token, guid) = started(&p, "bad", "v2").await?;
    let steady = Steady::start(p.router_addr, host, "/", 2);

    let cases = [
        ("crash", "", "new instances crashed; last exit status 1"),
        (
            "v4-unhealthy",
            "  health-check-type: http\n  health-check-http-endpoint: /missing\n  timeout: 4\n",
            // Its health check times out after 4 s: crashes, or no
            // progress within 12 s, whichever comes first.
            "rolled back: ",
        ),
        (
            "v5-never-ready",
            "  health-check-type: port\n  readiness-health-check-type: http\n  readiness-health-check-http-endpoint: /missing\n  readiness-health-check-interval: 1\n  timeout: 4\n",
            "no new instance became healthy within 12s",
        ),
    ];
    for (version, extra, why) in cases {
        let d = app_dir("bad", version, extra)?;
        let out = push(&p, &d, &["--strategy", "rolling"]).await?;
        assert_ne!(out.status, 0, "{version}: {out:?}");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains("rolled back"), "{version}: {out:?}");
        let last = deployments(&p, &token, &guid)
            .await?
            .pop()
            .unwrap_or_default();
        assert_eq!(last["status"]["value"], "FINALIZED", "{version}: {last}");
        assert_eq!(last["status"]["reason"], "CANCELED", "{version}: {last}");
        let error = last["status"]["details"]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains(why), "{version}: {error}");
        only(&p, host, 4, "v2").await?;
    }
    let events = p
        .api_get(
            &token,
            &format!("/v3/audit_events?target_guids={guid}&types=audit.app.deployment.rollback"),
        )
        .await?;
    assert_eq!(
        events["resources"].as_array().map_or(0, Vec::len),
        3,
        "{events}"
    );
    // `cf revisions` tells the story: each bad droplet deployed, then
    // rolled back, the deployed one a rollback.
    let revs = p.cf_ok(&["revisions", "bad"]).await?;
    assert!(revs.stdout.contains("New droplet deployed."), "{revs:?}");
    assert_eq!(
        revs.stdout.matches("Rolled back to revision").count(),
        3,
        "{revs:?}"
    );
    let deployed = revs
        .stdout
        .lines()
        .find(|l| l.contains("(deployed)"))
        .unwrap_or_default();
    assert!(deployed.contains("Rolled back to revision"), "{revs:?}");

    let t = steady.stop().await;
    no_failures("bad versions", &t);
    assert_eq!(t.bodies.keys().collect::<Vec<_>>(), vec!["v2"], "{t:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_pause_continue_and_cancel() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let host = "can.localhost";
    let (token, guid) = started(&p, "can", "v1").await?;
    let steady = Steady::start(p.router_addr, host, "/", 2);

    let v2 = app_dir("can", "v2", "")?;
    let out = push(
        &p,
        &v2,
        &["--strategy", "canary", "--instance-steps", "25,50"],
    )
    .await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    assert!(out.stdout.contains("cf continue-deployment can"), "{out:?}");
    let d = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(d["status"]["reason"], "PAUSED", "{d}");
    assert_eq!(d["status"]["canary"]["steps"]["current"], 1, "{d}");
    assert_eq!(d["status"]["details"]["instances"]["new_running"], 1, "{d}");
    // Scaling web waits for the deployment.
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    let (status, body) = p
        .api_call(
            &token,
            reqwest::Method::POST,
            &format!(
                "/v3/processes/{}/actions/scale",
                web["guid"].as_str().unwrap_or_default()
            ),
            Some(serde_json::json!({"instances": 5})),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["errors"][0]["detail"], "Cannot scale this process while a deployment is in flight.",
        "{body}"
    );
    // Both versions serve while paused.
    wait_for("v1 and v2 both served", T, || async {
        let t = steady.tally();
        (t.bodies.contains_key("v1") && t.bodies.contains_key("v2")).then_some(())
    })
    .await?;

    let out = p.cf(&["continue-deployment", "can"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    let d = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(d["status"]["reason"], "PAUSED", "{d}");
    assert_eq!(d["status"]["canary"]["steps"]["current"], 2, "{d}");
    assert_eq!(d["status"]["details"]["instances"]["new_running"], 2, "{d}");
    let out = p.cf(&["continue-deployment", "can"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v2").await?;
    let d = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(d["status"]["reason"], "DEPLOYED", "{d}");

    // A canary cancelled at its pause: back to v2.
    let v3 = app_dir("can", "v3", "")?;
    let out = push(&p, &v3, &["--strategy", "canary"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    let out = p.cf(&["cancel-deployment", "can"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v2").await?;
    let d = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(d["status"]["reason"], "CANCELED", "{d}");
    assert!(d["status"]["details"]["error"].is_null(), "{d}");
    let out = p.cf(&["cancel-deployment", "can"]).await?;
    assert_ne!(out.status, 0, "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("No active deployment found for app."),
        "{out:?}"
    );

    // A new deployment supersedes a paused canary: both old versions
    // keep serving until the new one has taken over.
    let v4 = app_dir("can", "v4", "")?;
    let out = push(&p, &v4, &["--strategy", "canary"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    let v5 = app_dir("can", "v5", "")?;
    let out = push(&p, &v5, &["--strategy", "rolling", "--max-in-flight", "2"]).await?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "v5").await?;
    let ds = deployments(&p, &token, &guid).await?;
    let reasons: Vec<&str> = ds
        .iter()
        .rev()
        .take(2)
        .map(|d| d["status"]["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons, vec!["DEPLOYED", "SUPERSEDED"], "{ds:?}");

    let t = steady.stop().await;
    no_failures("canary", &t);
    for v in ["v3", "v4"] {
        assert!(
            t.bodies.contains_key(v),
            "the canary {v} never served: {t:?}"
        );
    }
    Ok(())
}

/// The health manager and a running deployment agree: an old instance
/// that crashes during the rollout is restarted in the old version and
/// never counted against the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_instance_crashing_mid_rollout_is_restarted_not_counted() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let host = "agree.localhost";
    let (token, guid) = started(&p, "agree", "v1").await?;
    // New instances take 8 s to listen: the rollout lasts long enough,
    // and the HM (which holds off a unit for two heartbeat intervals
    // after its count changed) has time to act between steps.
    let v2 = app_dir("agree", "slow-v2", "")?;
    let killer = async {
        wait_for("the deployment to start", T, || async {
            let ds = deployments(&p, &token, &guid).await.ok()?;
            ds.iter()
                .any(|d| d["status"]["value"] == "ACTIVE")
                .then_some(())
        })
        .await?;
        // Kill one old (v1) instance: a request that reaches a v1 instance
        // on /exit/v1 ends it (a new one answers 200).
        wait_for("a v1 instance to die", T, || async {
            match p.get_via_router(host, "/exit/v1").await {
                Ok((200, _)) => None,
                _ => Some(()),
            }
        })
        .await?;
        p.wait_recent_logs("agree", "(reason: crashed)", T).await?;
        anyhow::Ok(())
    };
    let (out, killed) = tokio::join!(push(&p, &v2, &["--strategy", "rolling"]), killer);
    killed.map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))?;
    let out = out?;
    assert_eq!(out.status, 0, "{out:?}\n{}", p.logs_tail());
    only(&p, host, 4, "slow-v2").await?;
    let d = deployments(&p, &token, &guid)
        .await?
        .pop()
        .unwrap_or_default();
    assert_eq!(d["status"]["reason"], "DEPLOYED", "{d}");
    assert_eq!(d["status"]["details"]["failures"], 0, "{d}");
    let crashes = p
        .api_get(
            &token,
            &format!("/v3/audit_events?target_guids={guid}&types=app.crash"),
        )
        .await?;
    let crashes = crashes["resources"].as_array().cloned().unwrap_or_default();
    assert!(
        crashes.iter().any(|e| e["data"]["exit_status"] == 3),
        "the old instance's crash is recorded: {crashes:?}"
    );
    Ok(())
}
