//! Benchmark (issue 17): the time for `paas deploy` to upgrade a 6-host
//! platform (every component of every host to a new release, canary first,
//! max in flight 1 and 2) and for an automatic rollback (a release whose
//! DEA crashes on start: the canary fails and every host it changed goes
//! back), with a steady client (4 keep-alive connections) through HAProxy
//! in front of the two routers the whole time, counting every failed
//! request. Median of RUNS (3) each. Peer, in the same run: the time the
//! same lab takes to bring the platform up from nothing (the first deploy).
//!
//! As root (DEAs run namespaces containers); the hosts are network
//! namespaces on a bridge, an agent in each (`integration::lab`).
//! PAAS_BIN_DIR picks the binaries.

use std::time::Instant;

use anyhow::{bail, Result};
use integration::bench::{env_num, median};
use integration::lab::{HostDef, Lab};
use integration::steady::Steady;

const SIX: [HostDef; 6] = [
    ("h1", &["nats", "controller", "router", "health_manager"]),
    ("h2", &["nats", "router", "dea"]),
    ("h3", &["nats", "dea"]),
    ("h4", &["dea"]),
    ("h5", &["dea"]),
    ("h6", &["dea"]),
];

struct Run {
    upgrade_s: f64,
    upgrade_failed: u64,
    upgrade_ok: u64,
    rollback_s: f64,
    rollback_failed: u64,
}

async fn series(in_flight: usize, runs: usize) -> Result<(f64, Vec<Run>)> {
    let mut releases: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    for i in 1..=runs + 1 {
        releases.push((format!("v{i}"), vec![]));
        releases.push((format!("bad{i}"), vec![("dea", "exit 1")]));
    }
    let refs: Vec<(&str, &[(&str, &str)])> = releases
        .iter()
        .map(|(v, o)| (v.as_str(), o.as_slice()))
        .collect();
    let mut lab = Lab::start(&SIX, &refs).await?;
    lab.text = lab
        .text
        .replace("max_in_flight: 1", &format!("max_in_flight: {in_flight}"));
    let t = Instant::now();
    lab.deploy_ok("v1").await?;
    let first = t.elapsed().as_secs_f64();
    lab.push("bench").await?;
    let lb = lab.lb;
    lab.wait_through_lb("bench.localhost").await?;
    let mut out = Vec::new();
    for i in 1..=runs {
        let steady = Steady::start(lb, "bench.localhost", "/", 4);
        let t = Instant::now();
        lab.deploy_ok(&format!("v{}", i + 1)).await?;
        let upgrade_s = t.elapsed().as_secs_f64();
        let up = steady.stop().await;

        let steady = Steady::start(lb, "bench.localhost", "/", 4);
        let t = Instant::now();
        let (code, _, err) = lab.deploy(&format!("bad{i}")).await?;
        let rollback_s = t.elapsed().as_secs_f64();
        let back = steady.stop().await;
        if code != 1 || !err.contains("rolled_back") {
            bail!("bad{i} did not roll back (exit {code}): {err}");
        }
        println!(
            "max in flight {in_flight}, run {i}: upgrade {upgrade_s:.1} s ({} ok, {} failed), rollback {rollback_s:.1} s ({} ok, {} failed)",
            up.ok, up.failed, back.ok, back.failed
        );
        out.push(Run {
            upgrade_s,
            upgrade_failed: up.failed,
            upgrade_ok: up.ok,
            rollback_s,
            rollback_failed: back.failed,
        });
    }
    Ok((first, out))
}

fn list(v: impl Iterator<Item = String>) -> String {
    v.collect::<Vec<_>>().join(", ")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let runs = env_num("RUNS", 3);
    println!("| what | median | runs | failed requests per run |");
    println!("|---|---|---|---|");
    let mut firsts = Vec::new();
    let mut rows = Vec::new();
    for in_flight in [1, 2] {
        let (first, results) = series(in_flight, runs).await?;
        firsts.push(first);
        let up: Vec<f64> = results.iter().map(|r| r.upgrade_s).collect();
        let back: Vec<f64> = results.iter().map(|r| r.rollback_s).collect();
        rows.push(format!(
            "| upgrade of 6 hosts, max in flight {in_flight} | {:.1} s | {} | {} (of {}) |",
            median(&up),
            list(up.iter().map(|s| format!("{s:.1}"))),
            list(results.iter().map(|r| r.upgrade_failed.to_string())),
            list(results.iter().map(|r| r.upgrade_ok.to_string())),
        ));
        rows.push(format!(
            "| automatic rollback (DEA canary crashes), max in flight {in_flight} | {:.1} s | {} | {} |",
            median(&back),
            list(back.iter().map(|s| format!("{s:.1}"))),
            list(results.iter().map(|r| r.rollback_failed.to_string())),
        ));
    }
    rows.push(format!(
        "| peer: first deploy of the 6 hosts from nothing | {:.1} s | {} | - |",
        median(&firsts),
        list(firsts.iter().map(|s| format!("{s:.1}")))
    ));
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
