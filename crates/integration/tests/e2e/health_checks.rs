//! Issue 16 item 4: health checks as CF defines them, with the real `cf`
//! against a real platform. A readiness check takes an instance out of the
//! router while it fails and puts it back when it passes; a liveness
//! check keeps probing a running instance, and a failure is a crash (the
//! health manager starts it again).

use std::time::Duration;

use anyhow::Result;
use integration::{wait_for, Platform};

const T: Duration = Duration::from_secs(60);

fn app_dir(manifest: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.txt"), "served\n")?;
    std::fs::write(dir.path().join("manifest.yml"), manifest)?;
    Ok(dir)
}

/// Waits until `cf logs APP --recent` has every line of `want`.
async fn logs_have(p: &Platform, app: &str, want: &[&str]) -> Result<()> {
    wait_for(&format!("{want:?} in {app}'s logs"), T, || async {
        let out = p.cf(&["logs", app, "--recent"]).await.ok()?;
        want.iter().all(|w| out.stdout.contains(w)).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_takes_an_instance_out_of_the_router_and_back() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    // Ready for 2 s, not ready for 2 s, and so on.
    let dir = app_dir(
        "applications:\n- name: ready\n  buildpack: binary\n  memory: 64M\n  \
         command: (while true; do touch ready.txt; sleep 2; rm -f ready.txt; sleep 2; done) & exec python3 -m http.server $PORT\n  \
         readiness-health-check-type: http\n  readiness-health-check-http-endpoint: /ready.txt\n  \
         readiness-health-check-interval: 1\n  health-check-invocation-timeout: 2\n",
    )?;
    let d = dir.path().to_str().unwrap_or_default().to_string();
    p.cf_ok(&["push", "-f", &format!("{d}/manifest.yml"), "-p", &d])
        .await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "ready").await?;
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    assert_eq!(web["readiness_health_check"]["type"], "http", "{web}");
    assert_eq!(
        web["readiness_health_check"]["data"]["endpoint"], "/ready.txt",
        "{web}"
    );
    assert_eq!(
        web["readiness_health_check"]["data"]["interval"], 1,
        "{web}"
    );
    assert_eq!(
        web["health_check"]["data"]["invocation_timeout"], 2,
        "{web}"
    );

    // Routed while ready, unrouted while not, routed again.
    for (what, want) in [("routed", 200), ("unrouted", 404), ("routed again", 200)] {
        wait_for(what, T, || async {
            match p.get_via_router("ready.localhost", "/index.txt").await {
                Ok((s, _)) if s == want => Some(()),
                _ => None,
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;
    }
    logs_have(
        &p,
        "ready",
        &[
            "[CELL/0] OUT Container became ready",
            "[CELL/0] ERR Container became not ready",
            "[HEALTH/0] ERR Failed to make HTTP request to '/ready.txt'",
        ],
    )
    .await?;
    // Not ready is not a crash.
    let stats = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web/stats"))
        .await?;
    assert_eq!(stats["resources"][0]["state"], "RUNNING", "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_that_stops_listening_is_crashed_and_restarted() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    // Listens for 4 s, then only sleeps: alive, but no longer healthy.
    let dir = app_dir(
        "applications:\n- name: fades\n  buildpack: binary\n  memory: 64M\n  \
         command: python3 -m http.server $PORT & sleep 4; kill $!; sleep 600\n  \
         health-check-interval: 1\n",
    )?;
    let d = dir.path().to_str().unwrap_or_default().to_string();
    p.cf_ok(&["push", "-f", &format!("{d}/manifest.yml"), "-p", &d])
        .await?;
    logs_have(
        &p,
        "fades",
        &[
            "[HEALTH/0] ERR Failed to make TCP connection to port",
            "[CELL/0] ERR Container became unhealthy",
        ],
    )
    .await?;
    // A crash, with why; the health manager starts the index again.
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "fades").await?;
    wait_for(
        "the crash event, and the index started again",
        T,
        || async {
            let ev = p
                .api_get(
                    &token,
                    &format!("/v3/audit_events?target_guids={guid}&types=app.crash"),
                )
                .await
                .ok()?;
            let reason = ev["resources"][0]["data"]["reason"].as_str()?.to_string();
            let created = p
                .cf(&["logs", "fades", "--recent"])
                .await
                .ok()?
                .stdout
                .matches("creating container for instance")
                .count();
            (reason.starts_with("Container became unhealthy: Failed to make TCP connection")
                && created >= 2)
                .then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;
    Ok(())
}
