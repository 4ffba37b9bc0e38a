//! Benchmark (not a test) of resource matching (issue 14): after a fresh
//! `cf dev start`, `RUNS` (1) times: a new 50 MB app (the pyapp fixture
//! plus 5 files of 10 MB from /dev/urandom, new bytes each run, so the
//! first push matches nothing) pushed, then pushed again unchanged. For
//! each push: the wall time of `cf push` (upload, staging, start) and the
//! bytes of the zip the controller received (its `audit.app.package.upload`
//! event, `bits_bytes`); the ratio first / second.
//!
//! Run: `scripts/bench-push-resources.sh` (release binaries, its own
//! `CF_HOME`, a free router port; the platform is stopped at the end).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use integration::bench::{env_num, median};
use integration::{admin_token_from, fixture, free_port, http_client};

const MB: u64 = 1 << 20;

async fn cf(home: &Path, args: &[&str]) -> Result<String> {
    integration::bench::cf_text(home, args).await
}

fn big_app(dir: &Path) -> Result<()> {
    for f in ["app.py", "requirements.txt"] {
        std::fs::copy(fixture("pyapp").join(f), dir.join(f)).context(f)?;
    }
    std::fs::create_dir_all(dir.join("data"))?;
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    for i in 0..5 {
        let mut buf = Vec::new();
        (&mut urandom).take(10 * MB).read_to_end(&mut buf)?;
        std::fs::write(dir.join(format!("data/blob{i}.bin")), &buf)?;
    }
    Ok(())
}

/// `bits_bytes` of the app's package uploads, oldest first.
async fn uploaded(port: u16, app: &str) -> Result<Vec<u64>> {
    let base = format!("http://api.sys.localhost:{port}");
    let c = http_client();
    let token = admin_token_from(&c, &base).await?;
    let get = |path: String| {
        let (c, token) = (c.clone(), token.clone());
        async move {
            Ok::<serde_json::Value, anyhow::Error>(
                c.get(path).bearer_auth(token).send().await?.json().await?,
            )
        }
    };
    let apps = get(format!("{base}/v3/apps?names={app}")).await?;
    let guid = apps["resources"][0]["guid"].as_str().context("app guid")?;
    let v = get(format!(
        "{base}/v3/audit_events?types=audit.app.package.upload&target_guids={guid}"
    ))
    .await?;
    Ok(v["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["data"]["bits_bytes"].as_u64())
        .collect())
}

async fn run(home: &Path, port: u16, runs: usize) -> Result<()> {
    let api = format!("http://api.sys.localhost:{port}");
    cf(
        home,
        &[
            "login", "-a", &api, "-u", "admin", "-p", "admin", "-o", "dev", "-s", "dev",
        ],
    )
    .await?;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let dir = tempfile::tempdir()?;
        big_app(dir.path())?;
        let path = dir.path().to_str().context("path")?;
        let name = format!("big{i}");
        let mut secs = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            cf(home, &["push", &name, "-p", path]).await?;
            secs.push(t.elapsed().as_secs_f64());
        }
        let bytes = uploaded(port, &name).await?;
        if bytes.len() != 2 {
            bail!("{name}: expected two package uploads, got {bytes:?}");
        }
        println!(
            "50 MB app {i}: first push {:.2} s ({:.1} MB uploaded), second push {:.2} s ({} bytes uploaded)",
            secs[0],
            bytes[0] as f64 / MB as f64,
            secs[1],
            bytes[1]
        );
        first.push((secs[0], bytes[0]));
        second.push((secs[1], bytes[1]));
    }
    let t1 = median(&first.iter().map(|f| f.0).collect::<Vec<_>>());
    let t2 = median(&second.iter().map(|f| f.0).collect::<Vec<_>>());
    let b1 = median(&first.iter().map(|f| f.1).collect::<Vec<_>>());
    let b2 = median(&second.iter().map(|f| f.1).collect::<Vec<_>>());
    println!(
        "50 MB app (5 random files), medians of {runs}: first push {t1:.2} s, {b1} bytes uploaded; unchanged second push {t2:.2} s, {b2} bytes uploaded; time ratio {:.2}x, bytes ratio {:.0}x",
        t1 / t2,
        b1 as f64 / b2.max(1) as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let runs = env_num("RUNS", 1);
    let tmp = tempfile::Builder::new()
        .prefix("paas-bench-resources-")
        .tempdir()?;
    let home = tmp.path().join("home");
    let port = free_port();
    std::fs::create_dir_all(&home)?;
    let state = tmp.path().join("dev");
    let state_s = state.to_str().context("non-UTF-8 path")?;
    cf(
        &home,
        &[
            "dev",
            "start",
            "--dir",
            state_s,
            "--router-port",
            &port.to_string(),
        ],
    )
    .await?;
    let r = run(&home, port, runs).await;
    if let Err(e) = cf(&home, &["dev", "stop", "--dir", state_s]).await {
        eprintln!("cf dev stop: {e}");
    }
    r
}
