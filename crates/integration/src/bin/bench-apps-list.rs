//! Benchmark: the cost of authorization on the hottest read, `GET
//! /v3/apps` (first page, 50 per page), against the controller binary on
//! its default SQLite store, with 1 and with APPS (1000) apps across SPACES
//! (50) spaces: for the admin (sees everything) and, where the build has
//! users and roles, for a developer of one space (sees 1/SPACES of them,
//! filtered and counted in SQL). Medians (and p90) of RUNS (20) requests
//! after 3 warm-ups.
//!
//! PAAS_BIN_DIR picks the binaries (another build, for a before/after); a
//! build without `/Users` gets the admin rows only.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::bench::{env_num, median};
use integration::{bin, token_from, NatsServer};
use serde_json::{json, Value};

struct Cc {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
    _nats: NatsServer,
}

impl Drop for Cc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> Result<Cc> {
    let nats = NatsServer::start()?;
    let dir = tempfile::Builder::new().prefix("bench-apps-").tempdir()?;
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
    let child = std::process::Command::new(bin("cloud-controller")?)
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cloud-controller")?;
    let addr = testkit::wait_file(&addr_file, Duration::from_secs(30)).await?;
    Ok(Cc {
        child,
        base: format!("http://{addr}"),
        _dir: dir,
        _nats: nats,
    })
}

async fn call(
    c: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut r = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// `n` apps over `spaces` spaces of org `dev`; the spaces' guids.
async fn seed(
    c: &reqwest::Client,
    base: &str,
    admin: &str,
    n: usize,
    spaces: usize,
) -> Result<Vec<String>> {
    let (_, orgs) = call(
        c,
        admin,
        reqwest::Method::GET,
        &format!("{base}/v3/organizations?names=dev"),
        None,
    )
    .await?;
    let org = orgs["resources"][0]["guid"]
        .as_str()
        .context("org dev")?
        .to_string();
    let mut guids = Vec::new();
    for i in 0..spaces {
        let (s, v) = call(c, admin, reqwest::Method::POST, &format!("{base}/v3/spaces"), Some(json!({"name": format!("bench-{i}"), "relationships": {"organization": {"data": {"guid": org}}}}))).await?;
        if s != 201 {
            bail!("space: {s} {v}");
        }
        guids.push(v["guid"].as_str().context("space guid")?.to_string());
    }
    for i in 0..n {
        let space = &guids[i % spaces];
        let (s, v) = call(c, admin, reqwest::Method::POST, &format!("{base}/v3/apps"), Some(json!({"name": format!("app-{i}"), "relationships": {"space": {"data": {"guid": space}}}}))).await?;
        if s != 201 {
            bail!("app: {s} {v}");
        }
    }
    Ok(guids)
}

/// A developer of `space` (when the build has users and roles).
async fn developer(
    c: &reqwest::Client,
    base: &str,
    admin: &str,
    space: &str,
) -> Result<Option<String>> {
    let (s, _) = call(
        c,
        admin,
        reqwest::Method::POST,
        &format!("{base}/Users"),
        Some(json!({"userName": "dev", "password": "pw"})),
    )
    .await?;
    if s != 201 {
        return Ok(None);
    }
    let (_, orgs) = call(
        c,
        admin,
        reqwest::Method::GET,
        &format!("{base}/v3/organizations?names=dev"),
        None,
    )
    .await?;
    let org = orgs["resources"][0]["guid"]
        .as_str()
        .context("org")?
        .to_string();
    for (t, rel) in [
        (
            "organization_user",
            json!({"organization": {"data": {"guid": org}}}),
        ),
        (
            "space_developer",
            json!({"space": {"data": {"guid": space}}}),
        ),
    ] {
        let mut r = rel.clone();
        r["user"] = json!({"data": {"username": "dev", "origin": "uaa"}});
        let (s, v) = call(
            c,
            admin,
            reqwest::Method::POST,
            &format!("{base}/v3/roles"),
            Some(json!({"type": t, "relationships": r})),
        )
        .await?;
        if s != 201 {
            bail!("role: {s} {v}");
        }
    }
    Ok(Some(token_from(c, base, "dev", "pw").await?))
}

/// Median and p90 of `runs` GET /v3/apps, and the count the page reports.
async fn measure(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    runs: usize,
) -> Result<(f64, f64, u64)> {
    let url = format!("{base}/v3/apps");
    let mut total = 0;
    for _ in 0..3 {
        call(c, token, reqwest::Method::GET, &url, None).await?;
    }
    let mut ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (s, v) = call(c, token, reqwest::Method::GET, &url, None).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if s != 200 {
            bail!("GET /v3/apps: {s} {v}");
        }
        total = v["pagination"]["total_results"].as_u64().unwrap_or(0);
    }
    let med = median(&ms);
    ms.sort_by(|a, b| a.total_cmp(b));
    let p90 = ms[(ms.len() * 9 / 10).min(ms.len() - 1)];
    Ok((med, p90, total))
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let runs = env_num("RUNS", 20).max(1);
    let spaces = env_num("SPACES", 50).max(1);
    let many = env_num("APPS", 1000).max(1);
    println!(
        "GET /v3/apps (first page of 50), {runs} requests after 3 warm-ups; binaries: {}",
        integration::bin_dir().display()
    );
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>8}",
        "apps", "user", "median ms", "p90 ms", "visible"
    );
    let c = reqwest::Client::new();
    for n in [1, many] {
        let cc = start().await?;
        let admin = testkit::wait_for("the controller", Duration::from_secs(30), || async {
            token_from(&c, &cc.base, "admin", "admin").await.ok()
        })
        .await?;
        let space_count = spaces.min(n);
        let guids = seed(&c, &cc.base, &admin, n, space_count).await?;
        let (m, p, v) = measure(&c, &cc.base, &admin, runs).await?;
        println!("{n:>6} {:>10} {m:>10.2} {p:>10.2} {v:>8}", "admin");
        if let Some(dev) = developer(&c, &cc.base, &admin, &guids[0]).await? {
            let (m, p, v) = measure(&c, &cc.base, &dev, runs).await?;
            println!("{n:>6} {:>10} {m:>10.2} {p:>10.2} {v:>8}", "developer");
        } else {
            println!(
                "{n:>6} {:>10} {:>10} {:>10} {:>8}",
                "developer", "-", "-", "(no users)"
            );
        }
    }
    Ok(())
}
