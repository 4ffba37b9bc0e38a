//! Benchmark (issue 16): with a steady client (2 connections) through the
//! router the whole time, counting every answer that is not 2xx:
//! - the time to roll INSTANCES (10) instances of the `verapp` fixture with
//!   `cf restart --strategy rolling --max-in-flight N`, N = 1, 3 and 10,
//!   and, in the same run, the peer: a plain `cf restart` (what a new
//!   version cost before deployments);
//! - the time from a crashing version's deployment (`POST /v3/deployments`
//!   of a staged droplet that exits 1) to the app fully back on the
//!   previous revision (the deployment FINALIZED/CANCELED and every
//!   endpoint in the router the old version's).
//!
//! Median of RUNS (5) each, with the failed requests of each run.
//!
//! The platform as `cf dev start` runs it: as root, apps in containers
//! (namespaces backend); otherwise the `process` backend. PAAS_BIN_DIR
//! picks the binaries.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use integration::bench::{env_num, median};
use integration::steady::Steady;
use integration::{fixture, wait_for, Platform, PlatformOptions};
use serde_json::{json, Value};

const HOST: &str = "bench.localhost";

fn app_dir(version: &str, instances: usize) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        fixture("verapp").join("server.py"),
        dir.path().join("server.py"),
    )?;
    std::fs::write(dir.path().join("version.txt"), format!("{version}\n"))?;
    std::fs::write(
        dir.path().join("manifest.yml"),
        format!("applications:\n- name: bench\n  buildpack: binary\n  memory: 64M\n  instances: {instances}\n  command: python3 server.py\n"),
    )?;
    Ok(dir)
}

async fn push(p: &Platform, d: &tempfile::TempDir, extra: &[&str]) -> Result<()> {
    let dir = d.path().to_str().unwrap_or_default().to_string();
    let manifest = format!("{dir}/manifest.yml");
    let mut args = vec!["push", "-f", &manifest, "-p", &dir];
    args.extend_from_slice(extra);
    let out = p.cf(&args).await?;
    if out.status != 0 && extra.is_empty() {
        return Err(anyhow!("push failed: {out:?}"));
    }
    Ok(())
}

/// Until the router has exactly `n` endpoints for the app and 20 answers
/// in a row are `version`.
async fn only(p: &Platform, n: usize, version: &str) -> Result<()> {
    wait_for(
        &format!("{n} endpoints of {version}"),
        Duration::from_secs(300),
        || async {
            let url = format!("http://{}/routes", p.router_admin_addr);
            let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            if v.get(HOST).and_then(Value::as_array).map_or(0, Vec::len) != n {
                return None;
            }
            for _ in 0..20 {
                match p.get_via_router(HOST, "/").await.ok()? {
                    (200, b) if b.trim() == version => {}
                    _ => return None,
                }
            }
            Some(())
        },
    )
    .await
}

fn line(what: &str, secs: &[f64], failed: &[u64]) -> f64 {
    let m = median(secs);
    println!(
        "{what:<44} median {m:7.2} s   runs {:?}   failed requests per run {failed:?}",
        secs.iter()
            .map(|s| (s * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    m
}

#[tokio::main]
async fn main() -> Result<()> {
    let runs = env_num("RUNS", 5);
    let n = env_num("INSTANCES", 10);
    // SAFETY: geteuid has no preconditions.
    let containers = unsafe { libc::geteuid() } == 0;
    let p = Platform::start_with(PlatformOptions {
        dea_config: if containers {
            String::new()
        } else {
            "backend = \"process\"".into()
        },
        ..Default::default()
    })
    .await?;
    p.login().await?;
    println!(
        "{n} instances of the verapp fixture, {}; median of {runs}\n",
        if containers {
            "in containers (namespaces backend)"
        } else {
            "on the host (process backend: not root)"
        }
    );
    let token = p.admin_token().await?;
    // The crashing droplet first (staged, never started), then the good
    // version running.
    push(&p, &app_dir("crash", n)?, &["--no-start"]).await?;
    let guid = p.app_guid(&token, "bench").await?;
    let crash = p
        .api_get(
            &token,
            &format!("/v3/apps/{guid}/droplets?per_page=1&order_by=-created_at"),
        )
        .await?;
    let crash_droplet = match crash["resources"][0]["guid"].as_str() {
        Some(g) => g.to_string(),
        None => {
            // `--no-start` does not stage: stage it by hand.
            let pkg = p
                .api_get(&token, &format!("/v3/apps/{guid}/packages"))
                .await?;
            let pkg = pkg["resources"][0]["guid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (_, b) = p
                .api_call(
                    &token,
                    reqwest::Method::POST,
                    "/v3/builds",
                    Some(json!({"package": {"guid": pkg}})),
                )
                .await?;
            let build = b["guid"].as_str().unwrap_or_default().to_string();
            wait_for("the crash build", Duration::from_secs(300), || async {
                let b = p
                    .api_get(&token, &format!("/v3/builds/{build}"))
                    .await
                    .ok()?;
                b["droplet"]["guid"].as_str().map(str::to_string)
            })
            .await?
        }
    };
    push(&p, &app_dir("good", n)?, &[]).await?;
    only(&p, n, "good").await?;
    let steady = Steady::start(p.router_addr, HOST, "/", 2);

    let mut peer = (Vec::new(), Vec::new());
    let mut rolls: Vec<(usize, Vec<f64>, Vec<u64>)> = Vec::new();
    for mif in [1usize, 3, 10] {
        let (mut secs, mut failed) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let before = steady.tally().failed;
            let t0 = Instant::now();
            let m = mif.to_string();
            let out = p
                .cf(&[
                    "restart",
                    "bench",
                    "--strategy",
                    "rolling",
                    "--max-in-flight",
                    &m,
                ])
                .await?;
            if out.status != 0 {
                return Err(anyhow!(
                    "rolling restart failed: {out:?}\n{}",
                    p.logs_tail()
                ));
            }
            secs.push(t0.elapsed().as_secs_f64());
            only(&p, n, "good").await?;
            failed.push(steady.tally().failed - before);
        }
        rolls.push((mif, secs, failed));
        // The peer, interleaved: a plain restart until every instance runs.
        let before = steady.tally().failed;
        let t0 = Instant::now();
        p.cf_ok(&["restart", "bench"]).await?;
        peer.0.push(t0.elapsed().as_secs_f64());
        only(&p, n, "good").await?;
        peer.1.push(steady.tally().failed - before);
    }
    let (mut back, mut back_failed) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let before = steady.tally().failed;
        let t0 = Instant::now();
        let (s, d) = p
            .api_call(
                &token,
                reqwest::Method::POST,
                "/v3/deployments",
                Some(json!({"droplet": {"guid": crash_droplet}, "relationships": {"app": {"data": {"guid": guid}}}})),
            )
            .await?;
        if s != 201 {
            return Err(anyhow!("deployment: {s} {d}"));
        }
        let dg = d["guid"].as_str().unwrap_or_default().to_string();
        let end = wait_for("the rollback", Duration::from_secs(600), || async {
            let d = p
                .api_get(&token, &format!("/v3/deployments/{dg}"))
                .await
                .ok()?;
            (d["status"]["value"] == "FINALIZED").then_some(d)
        })
        .await?;
        if end["status"]["reason"] != "CANCELED" {
            return Err(anyhow!("not rolled back: {end}"));
        }
        only(&p, n, "good").await?;
        back.push(t0.elapsed().as_secs_f64());
        back_failed.push(steady.tally().failed - before);
    }
    let t = steady.stop().await;

    println!("rolling restart of {n} instances (cf restart --strategy rolling):");
    let mut medians = Vec::new();
    for (mif, secs, failed) in &rolls {
        medians.push((*mif, line(&format!("  max in flight {mif}"), secs, failed)));
    }
    let pm = line("  peer: plain cf restart (all at once)", &peer.0, &peer.1);
    for (mif, m) in medians {
        println!(
            "  ratio rolling (max in flight {mif}) / plain restart: {:.2}",
            m / pm.max(0.001)
        );
    }
    println!();
    line(
        "crashing version → fully back on the previous",
        &back,
        &back_failed,
    );
    println!(
        "\nsteady client: {} requests answered, {} failed{}",
        t.ok,
        t.failed,
        if t.samples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {:?})", t.samples)
        }
    );
    Ok(())
}
