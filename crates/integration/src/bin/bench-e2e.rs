//! Benchmark (not a test): time from `cf push` of the fixture app to its first
//! 200 through the router (median of 5), and the idle RSS of each component
//! with one app running.
//!
//! Run: `scripts/bench-e2e.sh` (builds release binaries first).

use std::time::Duration;

use anyhow::{Context, Result};
use integration::bench::{env_num, push_to_first_200};
use integration::{fixture, Platform, APPS_DOMAIN};
use testkit::rss_kib;

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let runs = env_num("RUNS", 5);
    let p = Platform::start().await?;
    p.login().await?;
    let dir = fixture("pyapp");
    let dir = dir.to_str().context("fixture path")?;
    let mut times = Vec::new();
    for i in 0..runs {
        let name = format!("bench{i}");
        let host = format!("{name}.{APPS_DOMAIN}");
        let args = ["push", name.as_str(), "-p", dir];
        let t = push_to_first_200(p.cf_ok(&args), || async {
            matches!(p.get_via_router(&host, "/").await, Ok((200, _)))
        })
        .await?;
        println!(
            "push {i}: first 200 after {:.0} ms",
            t.as_secs_f64() * 1000.0
        );
        times.push(t);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "push → first 200 through the router: median {:.0} ms over {runs} (min {:.0}, max {:.0})",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );

    // Leave one app running and let the platform idle.
    for i in 1..runs {
        p.cf_ok(&["delete", &format!("bench{i}"), "-f", "-r"])
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("idle RSS with one app running:");
    if let Some(pid) = p.nats.pid() {
        println!("  {:<18} {:>7} KiB", "nats", rss_kib(pid).unwrap_or(0));
    }
    let mut comps = vec![&p.cc, &p.router];
    comps.extend(p.deas.iter());
    comps.extend(p.hm.iter());
    for c in comps {
        if let Some(pid) = c.pid() {
            println!("  {:<18} {:>7} KiB", c.name, rss_kib(pid).unwrap_or(0));
        }
    }
    Ok(())
}
