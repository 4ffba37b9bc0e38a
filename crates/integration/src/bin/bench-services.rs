//! Benchmark (issue 15): for each backend (PostgreSQL, MySQL on MariaDB,
//! Redis, RabbitMQ), RUNS (20) times: `cf create-service … --wait`, `cf
//! bind-service`, `cf restart`, until the app answers with its data (a
//! write and a read through the new credentials); median and p99. In the
//! same run, the peers: `cf restart` alone until the app answers (what a
//! binding costs besides the restart), and the broker alone (an OSB
//! provision and bind over HTTP, no platform). The broker's resident
//! memory idle and at the end.
//!
//! The platform as `cf dev start` runs it: as root, apps in containers
//! reaching the servers through the DEA's host services address (Redis
//! through the broker's AUTH guard); otherwise the `process` backend.
//! PAAS_BIN_DIR picks the binaries.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use integration::bench::env_num;
use integration::{app_host, fixture, wait_for, Component, Platform, PlatformOptions};

const BACKENDS: [&str; 4] = ["postgresql", "mysql", "redis", "rabbitmq"];

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn rss_mb(pid: Option<u32>) -> f64 {
    pid.and_then(testkit::rss_kib).unwrap_or(0) as f64 / 1024.0
}

/// Until `app` answers `path` with 200 and `want` in its body.
async fn answers(p: &Platform, path: &str, want: &str) -> Result<()> {
    wait_for("the app answers", Duration::from_secs(120), || async {
        match p.get_via_router(&app_host("bench"), path).await {
            Ok((200, body)) if body.contains(want) => Some(()),
            _ => None,
        }
    })
    .await
}

/// One OSB provision and bind straight to the broker.
async fn broker_only(url: &str, label: &str, i: usize) -> Result<f64> {
    let c = reqwest::Client::new();
    let cat: serde_json::Value = c
        .get(format!("{url}/v2/catalog"))
        .basic_auth("broker", Some("bench-broker"))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await?
        .json()
        .await?;
    let svc = cat["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == label))
        .ok_or_else(|| anyhow!("{label} not in the catalog"))?;
    let (sid, pid) = (
        svc["id"].as_str().unwrap_or_default().to_string(),
        svc["plans"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let (iid, bid) = (format!("bench-{label}-{i}"), format!("bench-b-{label}-{i}"));
    let t0 = Instant::now();
    let r = c
        .put(format!("{url}/v2/service_instances/{iid}"))
        .basic_auth("broker", Some("bench-broker"))
        .header("X-Broker-API-Version", "2.17")
        .json(&serde_json::json!({"service_id": sid, "plan_id": pid, "organization_guid": "o", "space_guid": "s"}))
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(anyhow!("provision: {}", r.status()));
    }
    let r = c
        .put(format!(
            "{url}/v2/service_instances/{iid}/service_bindings/{bid}"
        ))
        .basic_auth("broker", Some("bench-broker"))
        .header("X-Broker-API-Version", "2.17")
        .json(&serde_json::json!({"service_id": sid, "plan_id": pid}))
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(anyhow!("bind: {}", r.status()));
    }
    let took = t0.elapsed().as_secs_f64();
    for path in [
        format!("{url}/v2/service_instances/{iid}/service_bindings/{bid}?service_id={sid}&plan_id={pid}"),
        format!("{url}/v2/service_instances/{iid}?service_id={sid}&plan_id={pid}"),
    ] {
        c.delete(path)
            .basic_auth("broker", Some("bench-broker"))
            .header("X-Broker-API-Version", "2.17")
            .send()
            .await?;
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<()> {
    let runs = env_num("RUNS", 20);
    // SAFETY: geteuid has no preconditions.
    let containers = unsafe { libc::geteuid() } == 0;
    let guard = integration::free_port();
    let p = Platform::start_with(PlatformOptions {
        dea_config: if containers {
            format!("host_services_address = \"10.253.0.1\"\nhost_services_ports = [5432, 3306, {guard}, 5672]")
        } else {
            "backend = \"process\"".into()
        },
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let (broker, url) = Component::service_broker_for_containers(
        p.root(),
        "bench-broker",
        containers.then_some(("10.253.0.1", guard)),
    )
    .await?;
    println!(
        "apps {}\n",
        if containers {
            "in containers (namespaces backend), services through the host services address"
        } else {
            "on the host (process backend: not root)"
        }
    );
    p.cf_ok(&[
        "create-service-broker",
        "local",
        "broker",
        "bench-broker",
        &url,
    ])
    .await?;
    for b in BACKENDS {
        p.cf_ok(&["enable-service-access", b]).await?;
    }
    let idle = rss_mb(broker.pid());
    let path = fixture("svcapp").display().to_string();
    p.cf_ok(&["push", "bench", "-p", &path, "-m", "128M"])
        .await?;
    answers(&p, "/", "ok").await?;

    println!("{runs} runs per backend; seconds\n");
    println!(
        "{:<11} {:>8} {:>8} {:>13} {:>13} {:>9}",
        "backend", "median", "p99", "restart only", "broker only", "ratio"
    );
    let mut peak = idle;
    for label in BACKENDS {
        let (mut total, mut restart, mut direct) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let name = format!("b-{label}-{i}");
            let value = format!("v{i}");
            let t0 = Instant::now();
            p.cf_ok(&["create-service", label, "small", &name, "--wait"])
                .await?;
            p.cf_ok(&["bind-service", "bench", &name]).await?;
            p.cf_ok(&["restart", "bench"]).await?;
            answers(&p, &format!("/put?svc={label}&value={value}"), &value).await?;
            total.push(t0.elapsed().as_secs_f64());
            peak = peak.max(rss_mb(broker.pid()));
            p.cf_ok(&["unbind-service", "bench", &name]).await?;
            p.cf_ok(&["delete-service", &name, "-f", "-w"]).await?;

            let t0 = Instant::now();
            p.cf_ok(&["restart", "bench"]).await?;
            answers(&p, "/", "ok").await?;
            restart.push(t0.elapsed().as_secs_f64());
            direct.push(broker_only(&url, label, i).await?);
        }
        let (m, p99) = (pct(&mut total, 50.0), pct(&mut total, 99.0));
        let r = pct(&mut restart, 50.0);
        let d = pct(&mut direct, 50.0);
        println!(
            "{label:<11} {m:>8.2} {p99:>8.2} {r:>13.2} {d:>13.3} {:>8.2}x",
            if r > 0.0 { m / r } else { 0.0 }
        );
    }
    println!(
        "\nratio: median of create+bind+restart over the median restart alone.\nbroker RSS: {idle:.1} MB idle, {peak:.1} MB at most, {:.1} MB at the end",
        rss_mb(broker.pid())
    );
    Ok(())
}
