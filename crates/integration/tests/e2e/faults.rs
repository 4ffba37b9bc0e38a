//! Issue 5: self-healing under real faults. Each test starts its own
//! platform (real nats-server and binaries), breaks something for real, and
//! checks the platform converges back.
//!
//! The fault tests run DEAs with the `process` backend: a DEA killed with -9
//! leaves its containers' network set-up behind (only `dea container-cleanup`
//! removes it), which is the containers work's concern, not healing's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use integration::{app_host as host, fixture, procs, wait_for, Platform, PlatformOptions};
use proto::{FindDropletRequest, FindDropletResponse, InstanceState};

const T: Duration = Duration::from_secs(60);

fn opts(deas: usize) -> PlatformOptions {
    PlatformOptions {
        deas,
        dea_config: "backend = \"process\"\n".into(),
        ..Default::default()
    }
}

pub(crate) async fn push(
    p: &Platform,
    name: &str,
    fixture_dir: &str,
    instances: u32,
) -> Result<String> {
    let dir = fixture(fixture_dir);
    let n = instances.to_string();
    p.cf_ok(&[
        "push",
        name,
        "-p",
        dir.to_str().unwrap_or_default(),
        "-i",
        &n,
    ])
    .await?;
    let token = p.admin_token().await?;
    p.app_guid(&token, name).await
}

/// Every instance of the app, as its DEAs report them (with the DEA id).
pub(crate) async fn instances(p: &Platform, app_guid: &str) -> Result<Vec<FindDropletResponse>> {
    let bus = p.bus_as("test").await?;
    let req = FindDropletRequest {
        app_id: app_guid.to_string(),
        ..Default::default()
    };
    let mut v: Vec<FindDropletResponse> = bus
        .request_many(
            proto::subjects::DEA_FIND_DROPLET,
            &req,
            Duration::from_millis(1000),
            None,
        )
        .await?;
    v.sort_by(|a, b| (a.index, &a.dea_id).cmp(&(b.index, &b.dea_id)));
    Ok(v)
}

fn running_on(found: &[FindDropletResponse], dea_id: &str) -> usize {
    found
        .iter()
        .filter(|f| f.dea_id == dea_id && f.state == InstanceState::Running)
        .count()
}

/// The index (in `p.deas`) of the DEA running most of the app's instances.
async fn busiest_dea(p: &Platform, app_guid: &str) -> Result<usize> {
    let found = instances(p, app_guid).await?;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for f in &found {
        *count.entry(f.dea_id.clone()).or_default() += 1;
    }
    let (id, _) = count
        .iter()
        .max_by_key(|(_, n)| **n)
        .context("no instances found")?;
    dea_index(id)
}

fn dea_index(dea_id: &str) -> Result<usize> {
    dea_id
        .strip_prefix("dea-")
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("dea id {dea_id}"))
}

/// Waits until the app has exactly `n` RUNNING instances (per stats) and
/// answers 200 through the router `n * 2` times in a row.
async fn wait_healed(p: &Platform, token: &str, guid: &str, name: &str, n: usize) -> Result<()> {
    p.wait_running(token, guid, n, T).await?;
    let h = host(name);
    wait_for(&format!("{name} answering through the router"), T, || {
        let h = h.clone();
        async move {
            for _ in 0..(n * 2) {
                match p.get_via_router(&h, "/").await {
                    Ok((200, _)) => {}
                    _ => return None,
                }
            }
            Some(())
        }
    })
    .await
}

/// Sends requests through the router in a loop until stopped; counts
/// successes and failures (anything but 200).
struct Load {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(router_port: u16, host: String) -> Load {
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (o, f, e) = (ok.clone(), failed.clone(), errors.clone());
        let task = tokio::spawn(async move {
            let c = integration::http_client();
            let url = format!("http://{host}:{router_port}/");
            loop {
                if *stopped.borrow() {
                    return;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        let what =
                            format!("{} {:?}", r.status(), r.headers().get("x-cf-routererror"));
                        if let Ok(mut v) = e.lock() {
                            v.push(what);
                        }
                    }
                    Err(err) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut v) = e.lock() {
                            v.push(err.to_string());
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        Load {
            ok,
            failed,
            errors,
            stop,
            task,
        }
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let errors = self.errors.lock().map(|v| v.clone()).unwrap_or_default();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_dea_every_app_back_running_and_routed() -> Result<()> {
    let mut p = Platform::start_with(opts(3)).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let apps = [("alpha", 3usize), ("beta", 2)];
    let mut guids = BTreeMap::new();
    for (name, n) in apps {
        let g = push(&p, name, "pyapp", n as u32).await?;
        p.wait_running(&token, &g, n, T).await?;
        guids.insert(name, g);
    }
    // The DEA running the most instances, of both apps.
    let mut per_dea: BTreeMap<String, (usize, BTreeSet<&str>)> = BTreeMap::new();
    for (name, g) in &guids {
        for f in instances(&p, g).await? {
            let e = per_dea.entry(f.dea_id.clone()).or_default();
            e.0 += 1;
            e.1.insert(name);
        }
    }
    let (victim, (count, names)) = per_dea
        .iter()
        .max_by_key(|(_, (n, apps))| (apps.len(), *n))
        .context("no instances found")?;
    assert_eq!(names.len(), 2, "a DEA runs both apps: {per_dea:?}");
    let i = dea_index(victim)?;

    let t0 = Instant::now();
    p.kill_dea_hard(i);
    for (name, n) in apps {
        wait_healed(&p, &token, &guids[name], name, n).await?;
        // Nothing counted on the dead DEA.
        let found = instances(&p, &guids[name]).await?;
        assert_eq!(running_on(&found, victim), 0, "{found:?}");
    }
    println!(
        "kill -9 of {victim} ({count} instances of 2 apps): all back RUNNING and routed after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_loses_no_request_and_restart_leaves_nothing_stale() -> Result<()> {
    let mut p = Platform::start_with(opts(2)).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "steady", "pyapp", 2).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    let a = busiest_dea(&p, &guid).await?;
    let b = 1 - a;
    let (dea_a, dea_b) = (format!("dea-{a}"), format!("dea-{b}"));

    // Drain DEA a with `dea drain` while a client sends a steady stream.
    let load = Load::start(p.router_addr.port(), host("steady"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let conf = p.root().join("config").join(format!("dea{a}.toml"));
    let out = tokio::process::Command::new(integration::bin("dea")?)
        .args(["drain", "--config", conf.to_str().unwrap_or_default()])
        .output()
        .await?;
    assert!(
        out.status.success(),
        "dea drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drained = &mut p.deas[a];
    let exited = wait_for("drained DEA to exit", T, || {
        let running = drained.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
    exited.map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))?;
    p.wait_running(&token, &guid, 2, T).await?;
    let found = instances(&p, &guid).await?;
    assert_eq!(running_on(&found, &dea_b), 2, "{found:?} (drained {dea_a})");
    // A little more traffic on the new instances, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed, errors) = load.finish().await;
    println!("drain: {ok} requests served, {failed} failed");
    assert!(ok > 20, "the client kept sending ({ok})");
    assert_eq!(failed, 0, "failed requests during drain: {errors:?}");
    let log = std::fs::read_to_string(&p.deas[a].log_path)?;
    assert!(log.contains("replacement running"), "{log}");

    // SIGTERM DEA b: its instances are stopped and unregistered before it
    // exits; started again on the same state dir it reports nothing stale.
    p.deas[a].start()?; // DEA a back (empty) so the app has somewhere to go
    let b_dir = p.root().join(format!("dea{b}"));
    let status = p.deas[b].terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{dea_b} exits 0 on SIGTERM: {status:?}"
    );
    assert!(
        procs::pids_with_cwd_under(&b_dir).is_empty(),
        "no instance left behind"
    );
    let log = std::fs::read_to_string(&p.deas[b].log_path)?;
    assert!(log.contains("dea stopped"), "{log}");
    p.deas[b].start()?;
    // Healed onto the two DEAs; nothing stale reported.
    wait_healed(&p, &token, &guid, "steady", 2).await?;
    let found = instances(&p, &guid).await?;
    assert_eq!(found.len(), 2, "exactly the two live instances: {found:?}");
    assert!(found.iter().all(|f| f.state == InstanceState::Running));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outage_restarts_nothing_and_keeps_serving() -> Result<()> {
    let mut o = opts(1);
    // Short prune threshold: after the outage the routes survive only if
    // the DEA re-registers them.
    o.router_config = "prune_threshold_s = 6\nminimum_register_interval_s = 1\n".into();
    let mut p = Platform::start_with(o).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "durable", "pyapp", 2).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    let before: BTreeSet<String> = instances(&p, &guid)
        .await?
        .into_iter()
        .map(|f| f.instance_id)
        .collect();
    assert_eq!(before.len(), 2);

    let hm_log = || {
        p.hm.as_ref()
            .and_then(|h| std::fs::read_to_string(&h.log_path).ok())
            .unwrap_or_default()
    };
    let starts_before = hm_log().matches("requesting start").count();
    let load = Load::start(p.router_addr.port(), host("durable"));
    p.stop_nats();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await; // the outage itself
    let mid = (
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    p.start_nats().await?;
    println!("nats down for {:.1}s", down.elapsed().as_secs_f64());

    // Components reconnect: the controller answers, the DEA advertises.
    p.wait_cc_ready().await?;
    p.wait_running(&token, &guid, 2, T).await?;
    // Longer than the prune threshold: routes must have been re-registered.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ok, failed, errors) = load.finish().await;
    println!(
        "nats outage: {ok} requests served ({} during the outage), {failed} failed",
        mid.0
    );
    assert!(mid.0 > 50, "traffic served during the outage");
    assert_eq!(failed, 0, "{errors:?}");
    let after: BTreeSet<String> = instances(&p, &guid)
        .await?
        .into_iter()
        .map(|f| f.instance_id)
        .collect();
    assert_eq!(before, after, "no instance restarted");
    let hm_log = std::fs::read_to_string(&p.hm.as_ref().context("hm")?.log_path)?;
    assert_eq!(
        hm_log.matches("requesting start").count(),
        starts_before,
        "HM started nothing: {hm_log}"
    );
    for c in [&mut p.cc, &mut p.router, &mut p.deas[0]] {
        assert!(c.is_running(), "{} alive", c.name);
    }
    assert!(p.hm.as_mut().is_some_and(|h| h.is_running()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_and_leader_failover() -> Result<()> {
    let mut o = opts(2);
    o.extra_health_managers = 1;
    let mut p = Platform::start_with(o).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "keeper", "pyapp", 2).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    let before: BTreeSet<String> = instances(&p, &guid)
        .await?
        .into_iter()
        .map(|f| f.instance_id)
        .collect();

    // kill -9 the controller, start it again: nothing lost.
    p.cc.kill9();
    p.cc.start()?;
    p.wait_cc_ready().await?;
    p.login().await?;
    let apps = p.cf_ok(&["apps"]).await?;
    assert!(apps.stdout.contains("keeper"), "{}", apps.stdout);
    let token = p.admin_token().await?;
    p.wait_running(&token, &guid, 2, T).await?;
    let after: BTreeSet<String> = instances(&p, &guid)
        .await?
        .into_iter()
        .map(|f| f.instance_id)
        .collect();
    assert_eq!(
        before, after,
        "instances untouched by the controller restart"
    );

    // kill -9 the leading health manager.
    let leader = wait_for("a leader", T, || {
        let logs: Vec<String> = std::iter::once(p.hm.as_ref())
            .flatten()
            .chain(p.extra_hms.iter())
            .map(|c| std::fs::read_to_string(&c.log_path).unwrap_or_default())
            .collect();
        async move {
            let leaders: Vec<usize> = logs
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("acquired the leader lock"))
                .map(|(i, _)| i)
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        }
    })
    .await?;
    let mut hms = p.hms_mut();
    hms[leader].kill9();
    let standby_log = hms[1 - leader].log_path.clone();
    drop(hms);
    let t0 = Instant::now();
    wait_for(
        "the standby to take the lock",
        Duration::from_secs(15),
        || {
            let l = std::fs::read_to_string(&standby_log).unwrap_or_default();
            async move { l.contains("acquired the leader lock").then_some(()) }
        },
    )
    .await?;
    println!(
        "standby HM took over after {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // ... and keeps healing: lose a DEA, the app comes back.
    let dea_with = instances(&p, &guid)
        .await?
        .first()
        .map(|f| f.dea_id.clone())
        .context("an instance")?;
    p.kill_dea_hard(dea_index(&dea_with)?);
    wait_healed(&p, &token, &guid, "keeper", 2).await?;
    let standby = std::fs::read_to_string(&standby_log)?;
    assert!(standby.contains("requesting start"), "the new leader acted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_index_backs_off_flaps_and_others_keep_serving() -> Result<()> {
    let mut o = opts(1);
    // 1 immediate restart, then 1 s, 2 s, 4 s (cap) between restarts.
    o.hm_config =
        "crash_immediate_restarts = 1\ncrash_backoff_initial_s = 1\ncrash_backoff_max_s = 4\n"
            .into();
    let p = Platform::start_with(o).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "flappy", "flapapp", 1).await?;
    p.wait_running(&token, &guid, 1, T).await?;
    let load = Load::start(p.router_addr.port(), host("flappy"));
    // The HM's restart requests for index 1, as they cross the bus (log
    // lines can be dropped under load: the app's log is busy with RTR lines).
    let bus = p.bus_as("test").await?;
    let mut starts = bus
        .subscribe::<proto::HealthStart>(proto::subjects::HEALTH_START)
        .await?;
    bus.flush().await?;
    let requested: std::sync::Arc<std::sync::Mutex<Vec<f64>>> = std::sync::Arc::default();
    let (r, g) = (requested.clone(), guid.clone());
    let collector = tokio::spawn(async move {
        while let Some(m) = starts.next().await {
            if m.payload.app_id == g && m.payload.indices.contains(&1) {
                // Seconds since midnight UTC, as `chrono_secs` reads the
                // audit events' timestamps.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64() % 86_400.0)
                    .unwrap_or(0.0);
                if let Ok(mut v) = r.lock() {
                    v.push(now);
                }
            }
        }
    });
    p.cf_ok(&["scale", "flappy", "-i", "2"]).await?;

    // Crash times of index 1, from the audit events.
    let path = format!("/v3/audit_events?target_guids={guid}&types=app.crash");
    let crashes = wait_for("6 crashes of index 1", T, || async {
        let v = p.api_get(&token, &path).await.ok()?;
        let mut times: Vec<f64> = v["resources"]
            .as_array()?
            .iter()
            .filter(|e| e["data"]["index"] == 1)
            .filter_map(|e| e["created_at"].as_str())
            .filter_map(chrono_secs)
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        (times.len() >= 6).then_some(times)
    })
    .await?;
    let gaps: Vec<f64> = crashes.windows(2).map(|w| w[1] - w[0]).collect();
    println!("crash-to-crash intervals of the crashing index: {gaps:.1?}");
    // The delay from each crash to the HM's next restart request is the
    // backoff, whatever the time the instance takes to start and crash again.
    let mut requests: Vec<f64> = requested.lock().map(|v| v.clone()).unwrap_or_default();
    collector.abort();
    requests.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let delays: Vec<f64> = crashes
        .iter()
        .map_while(|c| requests.iter().find(|r| **r > *c).map(|r| r - c))
        .collect();
    println!("crash-to-restart-request delays: {delays:.1?}");
    // Crash n (1-based) waits 0, 1, 2, 4, 4 s. The first restart also waits
    // for the HM to leave the just-scaled app to the controller (2 heartbeat
    // intervals), so it is not compared.
    let want = [1.0, 2.0, 4.0, 4.0];
    assert!(delays.len() >= 5, "{delays:?} for crashes {crashes:?}");
    for (d, w) in delays[1..].iter().zip(want) {
        assert!(
            *d >= w - 0.3,
            "restart {d:.1}s after a crash, before the backoff {w}s: {delays:?}"
        );
        assert!(
            *d < w + 3.0,
            "restart delay {d:.1}s far above {w}s: {delays:?}"
        );
    }
    assert!(delays[3] > delays[1] + 2.0, "delays grow: {delays:?}");

    // `cf app`: the crashing instance and the app as flapping.
    let app = wait_for("cf app to show flapping", T, || async {
        let out = p.cf(&["app", "flappy"]).await.ok()?;
        (out.stdout.contains("(flapping)") && out.stdout.contains("crashed")).then_some(out)
    })
    .await?;
    assert!(app.stdout.contains("#0   running"), "{}", app.stdout);
    // `cf events`: crash events with exit status and reason.
    let ev = p.cf_ok(&["events", "flappy"]).await?;
    assert!(ev.stdout.contains("app.crash"), "{}", ev.stdout);
    assert!(ev.stdout.contains("exit_status: 3"), "{}", ev.stdout);
    assert!(ev.stdout.contains("index: 1"), "{}", ev.stdout);

    // Index 0 served every request throughout.
    let (ok, failed, errors) = load.finish().await;
    println!("flapping: {ok} requests served by index 0, {failed} failed");
    assert!(ok > 50);
    assert_eq!(failed, 0, "{errors:?}");
    Ok(())
}

fn chrono_secs(rfc3339: &str) -> Option<f64> {
    // `2026-11-22T04:10:00.123456Z`: seconds since midnight are enough here
    // (the test runs for well under a day; crossing midnight only fails it).
    let t = rfc3339.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dea_cut_off_then_back_duplicates_stopped() -> Result<()> {
    let p = Platform::start_with(opts(2)).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "twin", "pyapp", 2).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    let cut = busiest_dea(&p, &guid).await?;
    let other = format!("dea-{}", 1 - cut);

    // Cut a DEA off (SIGSTOP) for longer than 3 heartbeat intervals: the HM
    // replaces its instances on the other one.
    let pid = p.deas[cut].pid().context("dea pid")?;
    procs::signal(pid, libc::SIGSTOP);
    let cont = Cont(pid);
    wait_for("replacements RUNNING on the other DEA", T, || async {
        let f = instances(&p, &guid).await.ok()?;
        (running_on(&f, &other) == 2).then_some(())
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))?;
    drop(cont); // SIGCONT: the DEA is back, still running its old instances

    let r = wait_for("duplicate stopped: exactly 2 instances", T, || async {
        let hm_log = std::fs::read_to_string(&p.hm.as_ref()?.log_path).ok()?;
        let f = instances(&p, &guid).await.ok()?;
        (hm_log
            .lines()
            .any(|l| l.contains("requesting stop") && l.contains("duplicate"))
            && f.len() == 2
            && f.iter().all(|x| x.state == InstanceState::Running)
            && f.iter().map(|x| x.index).collect::<BTreeSet<_>>().len() == 2)
            .then_some(())
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()));
    if let Err(e) = r {
        let f = instances(&p, &guid).await?;
        bail!("{e}\nfound: {f:#?}");
    }
    wait_healed(&p, &token, &guid, "twin", 2).await?;
    Ok(())
}

/// SIGCONTs a stopped process when dropped (also when a test fails).
struct Cont(u32);

impl Drop for Cont {
    fn drop(&mut self) {
        procs::signal(self.0, libc::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bus_messages_are_ignored_by_everyone() -> Result<()> {
    let mut p = Platform::start_with(opts(1)).await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "calm", "pyapp", 1).await?;
    p.wait_running(&token, &guid, 1, T).await?;

    let bus = p.bus_as("test").await?;
    use proto::subjects as s;
    let subjects: Vec<String> = [
        s::ROUTER_START,
        s::ROUTER_GREET,
        s::ROUTER_REGISTER,
        s::ROUTER_UNREGISTER,
        s::DEA_ADVERTISE,
        s::DEA_LOCATE,
        s::DEA_STOP,
        s::DEA_UPDATE,
        s::DEA_FIND_DROPLET,
        s::DEA_HEARTBEAT,
        s::DEA_SHUTDOWN,
        s::DROPLET_EXITED,
        s::HEALTH_START,
        s::HEALTH_STOP,
        s::COMPONENT_ANNOUNCE,
        s::COMPONENT_DISCOVER,
    ]
    .iter()
    .map(|x| x.to_string())
    .chain([
        s::dea_start("dea-0"),
        s::staging_start("dea-0"),
        s::logs(&guid),
        s::logs("no-such-app"),
    ])
    .collect();
    let huge = format!("{{\"app_id\":\"{}\"}}", "x".repeat(900 * 1024));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let unknown = r#"{"app_id":"no-such-app","version":"v","index":0,"indices":[0],"instance_ids":["i"],"instance_id":"i","reason":"CRASHED","dea_id":"ghost","instances":[{"app_id":"no-such-app","version":"v","index":0,"instance_id":"i","state":"RUNNING","since":0}],"uris":["x.localhost"],"id":"ghost","app_id_to_count":{}}"#;
    let payloads: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"not json at all".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"42".to_vec(),
        b"\xff\xfe\x00binary".to_vec(),
        br#"{"app_id": 5, "index": "zero", "instances": "many", "host": [], "port": -1}"#.to_vec(),
        br#"{"dea_id": null, "instances": [{"state": "EXPLODED"}]}"#.to_vec(),
        unknown.as_bytes().to_vec(),
        huge.into_bytes(),
        deep.into_bytes(),
    ];
    for subject in &subjects {
        for body in &payloads {
            bus.publish_raw(subject.clone(), body.clone()).await?;
        }
        // Requests too: nobody may crash on answering garbage.
        let _ = bus
            .request_many::<serde_json::Value, serde_json::Value>(
                subject.clone(),
                &serde_json::json!({"app_id": 7}),
                Duration::from_millis(50),
                None,
            )
            .await;
    }
    bus.flush().await?;
    // Let every component chew on them (a few heartbeat passes).
    tokio::time::sleep(Duration::from_secs(3)).await;

    if !p.nats.is_running() {
        bail!("nats-server died:\n{}", p.nats.log_tail(40));
    }
    for c in [&mut p.cc, &mut p.router, &mut p.deas[0]] {
        if !c.is_running() {
            bail!("{} died:\n{}", c.name, c.log_tail(40));
        }
    }
    if !p.hm.as_mut().is_some_and(|h| h.is_running()) {
        bail!("health manager died:\n{}", p.logs_tail());
    }
    // The platform still works: serving, scaling, and the real instance
    // was not stopped by the messages about unknown apps.
    let (status, _) = p.get_via_router(&host("calm"), "/").await?;
    assert_eq!(status, 200);
    p.cf_ok(&["scale", "calm", "-i", "2"]).await?;
    wait_healed(&p, &token, &guid, "calm", 2).await?;
    for c in [&p.cc, &p.router, &p.deas[0]] {
        let log = std::fs::read_to_string(&c.log_path)?;
        assert!(!log.contains("panicked"), "{} panicked:\n{log}", c.name);
    }
    Ok(())
}

/// The whole platform over three simulated DEAs (`backend = "sim"`: builds
/// run for real, instances are simulated, no root): the instances spread
/// over the DEAs, answer through the router, and come back on the others
/// when one DEA is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_deas_spread_route_and_heal() -> Result<()> {
    let mut p = Platform::start_with(PlatformOptions {
        deas: 3,
        dea_config: "backend = \"sim\"\n".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let guid = push(&p, "simapp", "pyapp", 6).await?;
    wait_healed(&p, &token, &guid, "simapp", 6).await?;
    let (_, body) = p.get_via_router(&host("simapp"), "/").await?;
    assert!(
        body.starts_with("sim "),
        "a simulated instance answers: {body}"
    );
    let found = instances(&p, &guid).await?;
    let deas: BTreeSet<&str> = found.iter().map(|f| f.dea_id.as_str()).collect();
    assert_eq!(deas.len(), 3, "spread over the three DEAs: {found:?}");

    let victim = busiest_dea(&p, &guid).await?;
    p.deas[victim].kill9();
    wait_healed(&p, &token, &guid, "simapp", 6).await?;
    let found = instances(&p, &guid).await?;
    assert_eq!(running_on(&found, &format!("dea-{victim}")), 0, "{found:?}");
    Ok(())
}
