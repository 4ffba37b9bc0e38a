//! Issue 17: the bus on a cluster of three nats-servers (docs/architecture.md
//! §3.5). Every component gets the seed list; with any one node down the
//! platform keeps answering, scaling and healing, and restarts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use integration::steady::Steady;
use integration::{
    app_host as host, process_alive, procs, wait_for, Platform, PlatformOptions, SYSTEM_DOMAIN,
};
use proto::{Heartbeat, InstanceState};

use super::faults::{instances, push};

const T: Duration = Duration::from_secs(60);

/// Every node's monitoring API, as JSON.
async fn monitor(p: &Platform, node: usize, path: &str) -> Option<serde_json::Value> {
    let base = p.nats.cluster()?.monitor_url(node)?;
    let r = reqwest::get(format!("{base}{path}")).await.ok()?;
    r.json().await.ok()
}

/// The nodes that run.
fn running_nodes(p: &Platform) -> Vec<usize> {
    p.nats
        .cluster()
        .map(|c| {
            (0..c.len())
                .filter(|i| c.monitor_url(*i).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// Which running node each bus client (by connection name) is on.
async fn connections(p: &Platform) -> BTreeMap<String, Vec<usize>> {
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in running_nodes(p) {
        let Some(v) = monitor(p, i, "/connz").await else {
            continue;
        };
        for c in v["connections"].as_array().cloned().unwrap_or_default() {
            let name = c["name"].as_str().unwrap_or("").to_string();
            out.entry(name).or_default().push(i);
        }
    }
    out
}

/// Waits until the controller, the router, both DEAs and the health
/// manager are connected to running nodes; where they are.
async fn wait_components_connected(
    p: &Platform,
    deas: usize,
) -> Result<BTreeMap<String, Vec<usize>>> {
    wait_for("every component connected to a running node", T, || async {
        let c = connections(p).await;
        let n = |name: &str| c.get(name).map_or(0, Vec::len);
        (n("cloud-controller") == 1
            && n("router") == 1
            && n("dea") == deas
            && n("health-manager") == 1)
            .then_some(c)
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))
}

/// The node leading the health managers' lock stream (`KV_hm_leader`).
async fn lock_stream_leader(p: &Platform) -> Option<usize> {
    for i in running_nodes(p) {
        let Some(v) = monitor(p, i, "/jsz?accounts=true&streams=true").await else {
            continue;
        };
        for a in v["account_details"].as_array().cloned().unwrap_or_default() {
            for s in a["stream_detail"].as_array().cloned().unwrap_or_default() {
                if s["name"] == "KV_hm_leader" {
                    let leader = s["cluster"]["leader"].as_str()?;
                    return leader.strip_prefix('n')?.parse().ok();
                }
            }
        }
    }
    None
}

/// Every DEA heartbeat the test hears, with its arrival time.
struct Heartbeats {
    seen: Arc<Mutex<BTreeMap<String, Vec<Instant>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeats {
    async fn start(p: &Platform) -> Result<Heartbeats> {
        let bus = p.bus_as("test").await?;
        let mut sub = bus
            .subscribe::<Heartbeat>(proto::subjects::DEA_HEARTBEAT)
            .await?;
        let seen: Arc<Mutex<BTreeMap<String, Vec<Instant>>>> = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let _bus = bus;
            while let Some(m) = sub.next().await {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.entry(m.payload.dea_id).or_default().push(Instant::now());
            }
        });
        Ok(Heartbeats { seen, task })
    }

    /// Waits until every DEA's heartbeats were heard from `from` until
    /// `span` later, and fails if one DEA's stopped for `max_gap` in that
    /// time: a health manager counts a DEA silent for 3 heartbeat intervals
    /// (6 s) gone and starts its instances elsewhere.
    async fn wait_unbroken(
        &self,
        deas: usize,
        from: Instant,
        span: Duration,
        max_gap: Duration,
    ) -> Result<()> {
        let gaps = wait_for("DEA heartbeats over the outage", T, || async {
            let s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let covered = s.len() == deas
                && s.values()
                    .all(|v| v.last().is_some_and(|t| *t >= from + span));
            covered.then(|| {
                s.iter()
                    .map(|(dea, v)| {
                        let mut last = from;
                        let mut gap = Duration::ZERO;
                        for t in v.iter().filter(|t| **t >= from) {
                            gap = gap.max(t.duration_since(last));
                            last = *t;
                        }
                        (dea.clone(), gap)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await?;
        for (dea, gap) in gaps {
            if gap > max_gap {
                bail!("no heartbeat of {dea} for {gap:?} with a node down");
            }
        }
        Ok(())
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// RUNNING instances of the app: index → instance id.
async fn running(p: &Platform, guid: &str) -> Result<BTreeMap<u32, String>> {
    Ok(instances(p, guid)
        .await?
        .into_iter()
        .filter(|f| f.state == InstanceState::Running)
        .map(|f| (f.index, f.instance_id))
        .collect())
}

/// "requesting start" / "requesting stop" lines of the health manager.
fn hm_requests(p: &Platform) -> Vec<String> {
    p.hm.as_ref()
        .and_then(|h| std::fs::read_to_string(&h.log_path).ok())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("requesting start") || l.contains("requesting stop"))
        .map(str::to_string)
        .collect()
}

/// One node down at a time, each in turn (the previous one back first):
/// the API and the app answer throughout (no failed request but while an
/// instance is killed on purpose), a scale-up gets its new instance
/// routed, a killed instance is restarted by the health manager (its
/// leader lock on the replicated KV bucket), and no instance restarts
/// because a node went down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_one_nats_node_down_keeps_the_platform_serving_scaling_and_healing() -> Result<()> {
    let t0 = Instant::now();
    let deas = 2;
    let mut p = Platform::start_with(PlatformOptions {
        deas,
        dea_config: "backend = \"process\"\n".into(),
        nats_cluster: true,
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "ha", "pyapp", 2).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    p.wait_route_status(&host("ha"), 200, T).await?;
    let mut ids = running(&p, &guid).await?;
    assert_eq!(ids.len(), 2, "{ids:?}");
    let beats = Heartbeats::start(&p).await?;
    println!(
        "platform and app up after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let app = Steady::start(p.router_addr, &host("ha"), "/", 1);
    let api = Steady::start(p.router_addr, &format!("api.{SYSTEM_DOMAIN}"), "/", 1);
    // Failures while an instance is killed on purpose (not the bus's doing).
    let mut crash_window_failures = 0;
    let mut killed_lock_leader = false;

    let nodes = p.nats.cluster().context("a cluster")?.len();
    for k in 0..nodes {
        let phase = Instant::now();
        let before = connections(&p).await;
        let lock_leader = lock_stream_leader(&p).await;
        killed_lock_leader |= lock_leader == Some(k);
        let on_k: Vec<&String> = before
            .iter()
            .filter(|(_, nodes)| nodes.contains(&k))
            .map(|(name, _)| name)
            .collect();
        p.nats.cluster_mut().context("a cluster")?.kill(k);
        let down = Instant::now();
        p.nats
            .cluster()
            .context("a cluster")?
            .wait_formed_async(T)
            .await?;
        wait_components_connected(&p, deas).await?;
        println!(
            "n{k} down (it had {on_k:?}; the lock's stream leader was {}): the others formed and every component reconnected in {:.1}s",
            lock_leader.map_or("unknown".to_string(), |l| format!("n{l}")),
            down.elapsed().as_secs_f64()
        );

        // Scale up: the new instance is placed and routed (the router
        // learns it over the bus).
        let n = ids.len() as u32 + 1;
        p.cf_ok(&["scale", "ha", "-i", &n.to_string()]).await?;
        let new_index = n - 1;
        wait_for(
            &format!("instance {new_index} answering through the router"),
            T,
            || async {
                for _ in 0..(4 * n) {
                    if let Ok((200, body)) = p.get_via_router(&host("ha"), "/").await {
                        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                        if v["index"].as_str().and_then(|i| i.parse().ok()) == Some(new_index) {
                            return Some(());
                        }
                    }
                }
                None
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))?;

        // kill -9 instance k: the health manager has it started again.
        let victim = k as u32;
        let pids: Vec<u32> = procs::app_instance_pids(&guid)
            .into_iter()
            .filter(|(i, _)| *i == victim)
            .map(|(_, pid)| pid)
            .collect();
        if pids.is_empty() {
            bail!("no process of instance {victim}");
        }
        let failed_before = app.tally().failed;
        let hm_before = hm_requests(&p).len();
        for pid in &pids {
            procs::signal(*pid, libc::SIGKILL);
        }
        wait_for("the killed instance to be started again", T, || async {
            let now = running(&p, &guid).await.ok()?;
            let pid_new = procs::app_instance_pids(&guid)
                .into_iter()
                .any(|(i, pid)| i == victim && !pids.contains(&pid) && process_alive(pid));
            let restarted = now.len() == n as usize
                && now
                    .get(&victim)
                    .is_some_and(|id| Some(id) != ids.get(&victim));
            (pid_new && restarted).then_some(())
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))?;
        p.wait_route_status(&host("ha"), 200, T).await?;
        let hm_new: Vec<String> = hm_requests(&p).into_iter().skip(hm_before).collect();
        assert!(
            hm_new
                .iter()
                .any(|l| l.contains("requesting start") && l.contains("crashed")),
            "the health manager restarted the killed instance: {hm_new:?}"
        );
        crash_window_failures += app.tally().failed - failed_before;

        // The bus carried every DEA's heartbeats all along: long enough
        // for the health manager to have counted a DEA gone if it missed
        // them (3 intervals).
        beats
            .wait_unbroken(deas, down, Duration::from_secs(7), Duration::from_secs(4))
            .await?;

        // Only the killed index has a new instance, and the new index one.
        let now = running(&p, &guid).await?;
        for (i, id) in &ids {
            if *i != victim {
                assert_eq!(
                    now.get(i),
                    Some(id),
                    "instance {i} restarted with n{k} down: {now:?}"
                );
            }
        }
        assert_eq!(now.len(), n as usize, "{now:?}");
        ids = now;

        p.nats.cluster_mut().context("a cluster")?.restart(k)?;
        p.nats
            .cluster()
            .context("a cluster")?
            .wait_formed_async(T)
            .await?;
        println!(
            "n{k}: down for {:.1}s, phase {:.1}s",
            down.elapsed().as_secs_f64(),
            phase.elapsed().as_secs_f64()
        );
    }

    let app = app.stop().await;
    let api = api.stop().await;
    let hm_log =
        p.hm.as_ref()
            .and_then(|h| std::fs::read_to_string(&h.log_path).ok())
            .unwrap_or_default();
    println!(
        "health manager: took the lock {} times, lost it {} times",
        hm_log.matches("acquired the leader lock").count(),
        hm_log.matches("lost the leader lock").count()
    );
    println!(
        "app: {} answered, {} failed ({} while an instance was killed); api: {} answered, {} failed; {:.1}s in all",
        app.ok,
        app.failed,
        crash_window_failures,
        api.ok,
        api.failed,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(api.failed, 0, "API requests failed: {:?}", api.samples);
    assert_eq!(
        app.failed, crash_window_failures,
        "app requests failed while no instance was being killed: {:?}",
        app.samples
    );
    assert!(app.ok > 100 && api.ok > 100, "the clients kept sending");
    assert!(
        killed_lock_leader,
        "one phase took down the node leading the lock's stream"
    );
    // The health manager started only the killed instances, stopped nothing.
    let requests = hm_requests(&p);
    let bad: Vec<&String> = requests
        .iter()
        .filter(|l| l.contains("requesting stop") || !l.contains("crashed"))
        .collect();
    assert!(
        bad.is_empty(),
        "health manager requests not for a killed instance: {bad:?}"
    );
    let started: BTreeSet<&String> = ids.values().collect();
    assert_eq!(started.len(), nodes + 2, "{ids:?}");
    assert!(p.nats.is_running(), "{}", p.nats.log_tail(20));
    for c in [&mut p.cc, &mut p.router] {
        assert!(c.is_running(), "{} alive", c.name);
    }
    Ok(())
}
