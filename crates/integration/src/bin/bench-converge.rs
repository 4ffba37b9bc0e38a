//! Benchmark (not a test): convergence after losing a DEA. 3 DEAs, 10 apps
//! of 3 instances (30), kill -9 the DEA running the most instances (and its
//! instances: a lost machine), time until every instance is RUNNING again on
//! the surviving DEAs and its route is in the router's table. Median of 5
//! runs, each on a fresh platform with default HM and heartbeat settings.
//!
//! Peer measured in the same run: the same number of instance starts with
//! no failure to detect (`cf scale` +1 on as many apps, time to RUNNING and
//! routed), so the ratio shows what detection costs on top of starting.
//! Published anchors: Diego ~15 s, Kubernetes 40 s to 5 min.
//!
//! Run: `scripts/bench-converge.sh` (release binaries). `RUNS`, `APPS`,
//! `INSTANCES` override 5, 10, 3.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::bench::{env_num, median};
use integration::{fixture, procs, Platform, PlatformOptions, APPS_DOMAIN};
use proto::{subjects, Heartbeat, InstanceState};

type Beats = Arc<Mutex<HashMap<String, Heartbeat>>>;

/// Keeps the latest heartbeat of every DEA.
async fn watch_heartbeats(bus: proto::Bus) -> Result<Beats> {
    let mut sub = bus.subscribe::<Heartbeat>(subjects::DEA_HEARTBEAT).await?;
    let beats: Beats = Arc::default();
    let b = beats.clone();
    tokio::spawn(async move {
        let _bus = bus;
        while let Some(m) = sub.next().await {
            if let Ok(mut map) = b.lock() {
                map.insert(m.payload.dea_id.clone(), m.payload);
            }
        }
    });
    Ok(beats)
}

/// Router `/routes`: host → instance ids.
async fn routed(p: &Platform) -> Result<HashMap<String, BTreeSet<String>>> {
    let v: serde_json::Value = reqwest::get(format!("http://{}/routes", p.router_admin_addr))
        .await?
        .json()
        .await?;
    let mut out = HashMap::new();
    if let Some(m) = v.as_object() {
        for (host, eps) in m {
            let ids = eps
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["instance_id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(host.clone(), ids);
        }
    }
    Ok(out)
}

/// Whether every (app, index < want[app]) has a RUNNING instance on a DEA
/// other than `dead`, and that instance is in the router's table.
async fn converged(
    p: &Platform,
    beats: &Beats,
    apps: &BTreeMap<String, (String, u32)>,
    dead: Option<&str>,
) -> bool {
    let mut running: HashMap<(String, u32), Vec<String>> = HashMap::new();
    if let Ok(map) = beats.lock() {
        for hb in map.values().filter(|h| Some(h.dea_id.as_str()) != dead) {
            for i in &hb.instances {
                if i.state == InstanceState::Running {
                    running
                        .entry((i.app_id.clone(), i.index))
                        .or_default()
                        .push(i.instance_id.clone());
                }
            }
        }
    }
    for (guid, (_, n)) in apps {
        if (0..*n).any(|i| !running.contains_key(&(guid.clone(), i))) {
            return false;
        }
    }
    let Ok(routes) = routed(p).await else {
        return false;
    };
    apps.iter().all(|(guid, (name, n))| {
        let Some(ids) = routes.get(&format!("{name}.{APPS_DOMAIN}")) else {
            return false;
        };
        (0..*n).all(|i| {
            running
                .get(&(guid.clone(), i))
                .is_some_and(|r| r.iter().any(|id| ids.contains(id)))
        })
    })
}

async fn wait_converged(
    p: &Platform,
    beats: &Beats,
    apps: &BTreeMap<String, (String, u32)>,
    dead: Option<&str>,
    t0: Instant,
) -> Result<Duration> {
    let deadline = t0 + Duration::from_secs(180);
    loop {
        if converged(p, beats, apps, dead).await {
            return Ok(t0.elapsed());
        }
        if Instant::now() > deadline {
            bail!("not converged after 180 s\n{}", p.logs_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Run {
    lost: usize,
    converge: Duration,
    peer: Duration,
}

async fn one_run(n_apps: usize, per_app: u32) -> Result<Run> {
    let mut p = Platform::start_with(PlatformOptions {
        deas: 3,
        dea_config: "backend = \"process\"\n".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let beats = watch_heartbeats(p.bus_as("test").await?).await?;
    let token = p.admin_token().await?;
    let dir = fixture("pyapp");
    let dir = dir.to_str().context("fixture path")?;
    let mut apps: BTreeMap<String, (String, u32)> = BTreeMap::new();
    for a in 0..n_apps {
        let name = format!("conv{a}");
        let n = per_app.to_string();
        p.cf_ok(&["push", &name, "-p", dir, "-i", &n]).await?;
        let guid = p.app_guid(&token, &name).await?;
        apps.insert(guid, (name, per_app));
    }
    wait_converged(&p, &beats, &apps, None, Instant::now()).await?;

    // The DEA with the most instances.
    let (victim, lost) = {
        let map = beats.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        map.values()
            .map(|h| {
                let n = h
                    .instances
                    .iter()
                    .filter(|i| i.state == InstanceState::Running)
                    .count();
                (h.dea_id.clone(), n)
            })
            .max_by_key(|(_, n)| *n)
            .context("no heartbeats")?
    };
    let i: usize = victim
        .strip_prefix("dea-")
        .and_then(|s| s.parse().ok())
        .context("dea id")?;
    let state_dir = p.root().join(format!("dea{i}"));
    let t0 = Instant::now();
    p.deas[i].kill9();
    for pid in procs::pids_with_cwd_under(&state_dir) {
        procs::signal(pid, libc::SIGKILL);
    }
    let converge = wait_converged(&p, &beats, &apps, Some(&victim), t0).await?;

    // Peer: as many starts, nothing to detect (scale requests sent at once,
    // straight to the API), after the lost DEA came back empty (two DEAs
    // have no room for 10 more instances).
    p.deas[i].start()?;
    let back = Instant::now();
    loop {
        let seen = beats
            .lock()
            .map(|m| m.get(&victim).is_some_and(|h| h.instances.is_empty()))
            .unwrap_or(false);
        if seen {
            break;
        }
        if back.elapsed() > Duration::from_secs(30) {
            bail!("{victim} did not come back");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its adverts reach placement (the previous heartbeat listed instances).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut scaled = apps.clone();
    let guids: Vec<String> = apps.keys().cloned().collect();
    for k in 0..lost {
        if let Some(e) = scaled.get_mut(&guids[k % guids.len()]) {
            e.1 += 1;
        }
    }
    let http = reqwest::Client::new();
    let mut procs_of = Vec::new();
    for (guid, (_, n)) in &scaled {
        let v = p
            .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
            .await?;
        let pg = v["guid"].as_str().context("process guid")?.to_string();
        procs_of.push((pg, *n));
    }
    let t1 = Instant::now();
    let reqs = procs_of.iter().map(|(pg, n)| {
        http.post(format!(
            "http://{}/v3/processes/{pg}/actions/scale",
            p.cc_addr
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "instances": n }))
        .send()
    });
    for r in futures_join_all(reqs).await {
        let r = r?;
        if !r.status().is_success() {
            bail!("scale answered {}", r.status());
        }
    }
    let peer = wait_converged(&p, &beats, &scaled, None, t1).await?;
    Ok(Run {
        lost,
        converge,
        peer,
    })
}

/// Polls every future to completion concurrently (no extra dependency).
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    proto::https::install_ring();
    let runs = env_num("RUNS", 5);
    let n_apps = env_num("APPS", 10);
    let per_app = u32::try_from(env_num("INSTANCES", 3)).unwrap_or(3);
    println!(
        "convergence after kill -9 of one of 3 DEAs: {n_apps} apps x {per_app} instances, {runs} runs, default HM settings"
    );
    let mut conv = Vec::new();
    let mut peers = Vec::new();
    for r in 0..runs {
        let run = one_run(n_apps, per_app).await?;
        println!(
            "run {r}: lost {} instances; all RUNNING and routed after {:.2} s (peer: {} plain starts routed after {:.2} s)",
            run.lost,
            run.converge.as_secs_f64(),
            run.lost,
            run.peer.as_secs_f64()
        );
        conv.push(run.converge);
        peers.push(run.peer);
    }
    let (c, p) = (median(&conv), median(&peers));
    println!(
        "median convergence {:.2} s; peer (same starts, no failure) {:.2} s; ratio {:.2}x",
        c.as_secs_f64(),
        p.as_secs_f64(),
        c.as_secs_f64() / p.as_secs_f64().max(0.001)
    );
    println!(
        "anchors: Diego ~15 s (ratio {:.2}), Kubernetes 40 s-5 min (ratio to 40 s {:.2}); target < 10 s",
        c.as_secs_f64() / 15.0,
        c.as_secs_f64() / 40.0
    );
    Ok(())
}
