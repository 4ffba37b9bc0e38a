//! Benchmark: login floods against the controller binary, LOGINS (600)
//! wrong-password logins, CONCURRENCY (200) at a time, each with its own
//! X-Forwarded-For address (an attacker with many addresses):
//!
//! - `known`: all for the user `admin` (the case that took a controller to
//!   11.6 GB);
//! - `unknown`: each for a made-up user name (neither lockout stops these:
//!   each costs a password check, as a known name does).
//!
//! For each: the controller's resident memory before, at its peak
//! (sampled every 20 ms) and 5 s after, the answers by status and the time
//! taken.
//!
//! PAAS_BIN_DIR picks the binaries (another build, for a before/after).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use integration::bench::env_num;
use integration::{bin, NatsServer};

fn rss_kib(pid: u32) -> u64 {
    testkit::rss_kib(pid).unwrap_or(0)
}

async fn login(c: &reqwest::Client, base: &str, user: &str, pw: &str, xff: &str) -> u16 {
    c.post(format!("{base}/oauth/token"))
        .basic_auth("cf", Some(""))
        .header("x-forwarded-for", xff)
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", pw),
        ])
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// One flood against a fresh controller; its figures.
async fn flood(kind: &str, total: usize, concurrency: usize) -> Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::Builder::new().prefix("bench-login-").tempdir()?;
    let addr_file = dir.path().join("cc.addr");
    let conf = dir.path().join("cc.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1:0\"\naddr_file = \"{}\"\ninternal_listen = \"127.0.0.1:0\"\ninternal_api_token = \"bench\"\nnats_url = \"{}\"\ndata_dir = \"{}\"\n",
            addr_file.display(),
            nats.url,
            dir.path().join("cc").display()
        ),
    )?;
    let mut cc = std::process::Command::new(bin("cloud-controller")?)
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cloud-controller")?;
    let pid = cc.id();
    let addr = testkit::wait_file(&addr_file, Duration::from_secs(30)).await?;
    let base = format!("http://{addr}");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(concurrency)
        .build()?;
    testkit::wait_for("the controller", Duration::from_secs(30), || async {
        (login(&c, &base, "admin", "admin", "127.0.0.1").await == 200).then_some(())
    })
    .await?;
    let before = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let t0 = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..total {
        let permit = permits.clone().acquire_owned().await?;
        let (c, base) = (c.clone(), base.clone());
        let user = match kind {
            "known" => "admin".to_string(),
            _ => format!("nobody{i}"),
        };
        set.spawn(async move {
            let xff = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let s = login(&c, &base, &user, "wrong", &xff).await;
            drop(permit);
            s
        });
    }
    let mut by_status = std::collections::BTreeMap::new();
    while let Some(s) = set.join_next().await {
        *by_status.entry(s.unwrap_or(0)).or_insert(0usize) += 1;
    }
    let took = t0.elapsed();
    // Memory kept after the flood (a benchmark may wait).
    tokio::time::sleep(Duration::from_secs(5)).await;
    sampler.abort();
    let after = rss_kib(pid);
    let _ = cc.kill();
    let _ = cc.wait();

    let mb = |k: u64| k as f64 / 1024.0;
    println!(
        "{kind} user: answers by status {by_status:?} in {:.1} s",
        took.as_secs_f64()
    );
    println!(
        "  controller RSS: before {:.0} MB, peak {:.0} MB, 5 s after {:.0} MB",
        mb(before),
        mb(peak.load(Ordering::Relaxed)),
        mb(after)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let total = env_num("LOGINS", 600);
    let concurrency = env_num("CONCURRENCY", 200);
    println!("login floods: {total} wrong-password logins, {concurrency} at a time");
    for kind in ["known", "unknown"] {
        flood(kind, total, concurrency).await?;
    }
    Ok(())
}
