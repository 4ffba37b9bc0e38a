//! Benchmark (not a test) of what a newcomer gets after `cf dev start` on a
//! fresh state directory, default configuration:
//!
//! 1. `PUSHES` (20) consecutive `cf push` of the small fixture app
//!    (`fixtures/pyapp`, fresh names): time from the push to the first 200
//!    through the router — every push, the median and the maximum (goal:
//!    median ≤ 500 ms, maximum ≤ 1 s), with the peer measured after each
//!    push: the same app started directly on this host, to its first 200;
//! 2. `RUNS` (5) times: the Python fixture with dependencies from PyPI
//!    (`fixtures/pydeps`, flask and pg8000) pushed as a new app, then
//!    restaged: the staging time of each build (the controller's build
//!    record, created → staged), medians.
//!
//! Run: `scripts/bench-push.sh` (release binaries, its own `CF_HOME`, a free
//! router port; the platform is stopped at the end).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::bench::{env_num, median, push_to_first_200};
use integration::{admin_token_from, fixture, free_port, http_client, wait_for, APPS_DOMAIN};

struct Dev {
    home: PathBuf,
    port: u16,
}

impl Dev {
    async fn cf(&self, args: &[&str]) -> Result<String> {
        integration::bench::cf_text(&self.home, args).await
    }

    async fn get(&self, app: &str, path: &str) -> Option<(u16, String)> {
        let url = format!("http://{app}.{APPS_DOMAIN}:{}{path}", self.port);
        let r = http_client().get(url).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    /// An API call through the router (admin's password grant).
    async fn api(&self, path: &str) -> Result<serde_json::Value> {
        let base = format!("http://api.sys.localhost:{}", self.port);
        let c = http_client();
        let token = admin_token_from(&c, &base).await?;
        Ok(c.get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// The app's builds' staging times (seconds), oldest first.
    async fn staging_times(&self, app: &str) -> Result<Vec<f64>> {
        let apps = self.api(&format!("/v3/apps?names={app}")).await?;
        let guid = apps["resources"][0]["guid"]
            .as_str()
            .context("app guid")?
            .to_string();
        let v = self.api(&format!("/v3/apps/{guid}/builds")).await?;
        let mut out = Vec::new();
        for b in v["resources"].as_array().cloned().unwrap_or_default() {
            let t = |k: &str| -> Result<chrono::DateTime<chrono::FixedOffset>> {
                Ok(chrono::DateTime::parse_from_rfc3339(
                    b[k].as_str().context("timestamp")?,
                )?)
            };
            out.push((t("updated_at")? - t("created_at")?).num_milliseconds() as f64 / 1000.0);
        }
        Ok(out)
    }
}

/// The peer: the same app started directly on this host (`python3 app.py`
/// on a free port, no platform), time to its first 200.
async fn cold_start(dir: &Path) -> Result<f64> {
    let port = free_port();
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new("python3")
        .arg("app.py")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/");
    let c = reqwest::Client::new();
    let ms = loop {
        if let Ok(r) = c.get(&url).send().await {
            if r.status().as_u16() == 200 {
                break t0.elapsed().as_secs_f64() * 1000.0;
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the app did not answer directly within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = child.kill().await;
    Ok(ms)
}

async fn run(dev: &Dev, pushes: usize, runs: usize) -> Result<()> {
    dev.cf(&[
        "login",
        "-a",
        &format!("http://api.sys.localhost:{}", dev.port),
        "-u",
        "admin",
        "-p",
        "admin",
        "-o",
        "dev",
        "-s",
        "dev",
    ])
    .await?;
    let pyapp_dir = fixture("pyapp");
    let pyapp = pyapp_dir.to_str().context("path")?;
    let mut times = Vec::new();
    let mut cold = Vec::new();
    for i in 0..pushes {
        let name = format!("small{i}");
        let args = ["push", name.as_str(), "-p", pyapp];
        let t = push_to_first_200(dev.cf(&args), || async {
            matches!(dev.get(&name, "/").await, Some((200, _)))
        })
        .await?;
        let ms = t.as_secs_f64() * 1000.0;
        let direct = cold_start(&pyapp_dir).await?;
        println!("push {i:2}: first 200 after {ms:.0} ms (peer: the app started directly, {direct:.0} ms)");
        times.push(ms);
        cold.push(direct);
    }
    println!(
        "peer, the same app started directly on this host (no platform): first 200 median {:.0} ms; push / direct start: {:.1}x",
        median(&cold),
        median(&times) / median(&cold)
    );
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "small app, {pushes} pushes after a fresh `cf dev start`: first 200 through the router: median {:.0} ms, max {max:.0} ms (goal: median <= 500, max <= 1000: {})",
        median(&times),
        if median(&times) <= 500.0 && max <= 1000.0 { "met" } else { "not met" }
    );

    let pydeps = fixture("pydeps");
    let pydeps = pydeps.to_str().context("path")?;
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("deps{i}");
        dev.cf(&["push", &name, "-p", pydeps, "-m", "256M"]).await?;
        dev.cf(&["restage", &name]).await?;
        wait_for("the restaged app", Duration::from_secs(120), || async {
            matches!(dev.get(&name, "/").await, Some((200, _))).then_some(())
        })
        .await?;
        let t = dev.staging_times(&name).await?;
        if t.len() < 2 {
            bail!("{name}: expected two builds, got {t:?}");
        }
        println!(
            "python with dependencies {i}: first push staged in {:.2} s, restage in {:.2} s",
            t[0], t[1]
        );
        first.push(t[0]);
        again.push(t[1]);
    }
    println!(
        "python fixture with dependencies (flask, pg8000 from PyPI): staging median {:.2} s on the first push, {:.2} s on restage ({:.1}x faster)",
        median(&first),
        median(&again),
        median(&first) / median(&again)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let pushes = env_num("PUSHES", 20);
    let runs = env_num("RUNS", 5);
    let tmp = tempfile::Builder::new()
        .prefix("paas-bench-push-")
        .tempdir()?;
    let dev = Dev {
        home: tmp.path().join("home"),
        port: free_port(),
    };
    std::fs::create_dir_all(&dev.home)?;
    let state = tmp.path().join("dev");
    let started = Instant::now();
    dev.cf(&[
        "dev",
        "start",
        "--dir",
        path(&state)?,
        "--router-port",
        &dev.port.to_string(),
    ])
    .await?;
    println!(
        "cf dev start (fresh state dir, default configuration): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let r = run(&dev, pushes, runs).await;
    if let Err(e) = dev.cf(&["dev", "stop", "--dir", path(&state)?]).await {
        eprintln!("cf dev stop: {e}");
    }
    r
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}
