//! Benchmark (not a test): density on one DEA with the `namespaces` backend.
//! Pushes the fixture Python app, scales it to N instances (default 200) and
//! reports what the platform adds per instance beyond the app itself:
//!
//! - the DEA's own RSS growth per instance (instance bookkeeping, pipes,
//!   log buffers), from its RSS at 1 instance to its RSS at N;
//! - each instance's container-init (PID 1 of the container, the parent of
//!   the app's process) as RSS and PSS (its pages shared with the other
//!   inits counted once overall);
//! - the app's own processes, for scale.
//!
//! Run as root: `scripts/bench-density.sh` (release binaries). `INSTANCES`
//! overrides 200, `MEMORY` the per-instance quota (default 64M).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::{fixture, Platform, PlatformOptions, APPS_DOMAIN};

/// A `Key:  123 kB` field of a /proc file, in KiB.
fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|k| k.parse().ok())
        .collect()
}

/// RSS of a process and all its descendants, in KiB.
fn tree_rss(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:") + children(pid).into_iter().map(tree_rss).sum::<u64>()
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The DEA's RSS once it has settled (three equal-ish readings apart).
async fn settled_rss(pid: u32) -> u64 {
    let mut last = proc_kib(pid, "status", "VmRSS:");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = proc_kib(pid, "status", "VmRSS:");
        if now.abs_diff(last) < 64 {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench-density needs root (namespaces backend)");
    }
    let n: usize = std::env::var("INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(2);
    let memory = std::env::var("MEMORY").unwrap_or_else(|_| "64M".into());
    let mem_mb: u64 = memory
        .trim_end_matches(['M', 'm'])
        .parse()
        .context("MEMORY like 64M")?;
    let mut p = Platform::start_with(PlatformOptions {
        deas: 1,
        // Room for N instances plus a staging (1 GB by default).
        dea_config: format!(
            "backend = \"namespaces\"\nmemory_mb = {}\ndisk_mb = {}\n",
            mem_mb * n as u64 + 8192,
            256 * n as u64 + 16384
        ),
        ..Default::default()
    })
    .await?;
    let result = run(&p, n, &memory).await;
    let _ = p.cf(&["delete", "dense", "-f", "-r"]).await;
    p.shutdown();
    result
}

async fn run(p: &Platform, n: usize, memory: &str) -> Result<()> {
    let dea = p.deas[0].pid().context("dea pid")?;
    p.login().await?;
    let token = p.admin_token().await?;
    let dir = fixture("pyapp");
    let dir = dir.to_str().context("fixture path")?;
    p.cf_ok(&["push", "dense", "-p", dir, "-m", memory, "-k", "256M"])
        .await?;
    let guid = p.app_guid(&token, "dense").await?;
    p.wait_running(&token, &guid, 1, Duration::from_secs(60))
        .await?;
    let rss1 = settled_rss(dea).await;
    let avail1 = mem_available_kib();

    let t = Instant::now();
    p.cf_ok(&["scale", "dense", "-i", &n.to_string()]).await?;
    p.wait_running(&token, &guid, n, Duration::from_secs(600))
        .await?;
    let started = t.elapsed();
    let rss_n = settled_rss(dea).await;
    let avail_n = mem_available_kib();

    // The app's processes and their container inits (the app's parent).
    let apps = integration::procs::app_instance_pids(&guid);
    let inits: BTreeSet<u32> = apps.iter().filter_map(|(_, pid)| ppid(*pid)).collect();
    if inits.len() != n {
        bail!(
            "found {} container inits for {n} instances ({} app processes)",
            inits.len(),
            apps.len()
        );
    }
    let (mut init_rss, mut init_pss, mut app_rss) = (0u64, 0u64, 0u64);
    for &init in &inits {
        init_rss += proc_kib(init, "smaps_rollup", "Rss:");
        init_pss += proc_kib(init, "smaps_rollup", "Pss:");
        app_rss += children(init).into_iter().map(tree_rss).sum::<u64>();
    }
    // A request reaches the app through the router (it really serves).
    let (status, _) = p
        .get_via_router(&format!("dense.{APPS_DOMAIN}"), "/")
        .await?;

    let d = n as f64;
    let growth = (rss_n as f64 - rss1 as f64) / (d - 1.0);
    println!("density: {n} instances of the fixture Python app ({memory} each) on one DEA, namespaces backend");
    println!(
        "  scale 1 -> {n}: all RUNNING after {:.1} s; a request through the router: {status}",
        started.as_secs_f64()
    );
    println!(
        "  DEA RSS: {rss1} KB with 1 instance, {rss_n} KB with {n}: {growth:.1} KB per instance"
    );
    println!(
        "  container-init per instance: RSS {:.0} KB, PSS {:.0} KB",
        init_rss as f64 / d,
        init_pss as f64 / d
    );
    println!(
        "  the app itself per instance (python): RSS {:.0} KB",
        app_rss as f64 / d
    );
    println!(
        "  platform overhead per instance (DEA growth + init PSS): {:.0} KB (target < 1024 KB)",
        growth + init_pss as f64 / d
    );
    println!(
        "  host MemAvailable dropped by {:.0} KB per added instance (app, init, kernel: cgroups, netns, veth; noisy)",
        (avail1 as f64 - avail_n as f64) / (d - 1.0)
    );
    Ok(())
}
