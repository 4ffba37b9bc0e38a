//! Real nats-server + fake controller desired endpoint + fake heartbeats.

use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Json;
use proto::desired::{DesiredApp, DesiredPage};
use proto::{subjects, Bus, HealthStart, HealthStop, Heartbeat, InstanceHeartbeat, InstanceState};

/// The health manager in-process against the bus at `nats_url` and the
/// controller at `cc_addr` (passes every 100 ms, desired state every
/// 200 ms), ready: its stop switch, its task and its temp dir.
pub(crate) async fn start_hm(
    nats_url: &str,
    cc_addr: std::net::SocketAddr,
    heartbeat_interval_s: f64,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), health_manager::HmError>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tmp");
    let ready = dir.path().join("ready");
    let config = health_manager::Config {
        nats_url: nats_url.to_string(),
        cc_url: format!("http://{cc_addr}"),
        internal_api_token: "test-token".into(),
        pass_interval_ms: 100,
        heartbeat_interval_s,
        desired_refresh_ms: 200,
        addr_file: Some(ready.clone()),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let hm = tokio::spawn(health_manager::run(config, async {
        let _ = stop_rx.await;
    }));
    testkit::wait_file(&ready, Duration::from_secs(10))
        .await
        .expect("ready file");
    (stop_tx, hm, dir)
}

fn app(id: &str, instances: u32, state: &str) -> DesiredApp {
    DesiredApp {
        app_id: id.into(),
        name: id.into(),
        version: "v1".into(),
        instances,
        state: state.into(),
        updated_at: "2020-01-01T00:00:00Z".into(),
        log_guid: None,
    }
}

#[derive(serde::Deserialize)]
struct PageQuery {
    token: Option<String>,
}

async fn desired(
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Json<DesiredPage>, StatusCode> {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-token") {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(Json(match q.token.as_deref() {
        None => DesiredPage {
            apps: vec![app("a", 2, "STARTED")],
            next_token: Some("p2".into()),
        },
        Some(_) => DesiredPage {
            apps: vec![app("b", 1, "STOPPED")],
            next_token: None,
        },
    }))
}

fn inst(app_id: &str, index: u32, id: &str, since: f64) -> InstanceHeartbeat {
    InstanceHeartbeat {
        app_id: app_id.into(),
        version: "v1".into(),
        index,
        instance_id: id.into(),
        state: InstanceState::Running,
        since,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_missing_and_stops_extra_instances() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .try_init();
    let nats = testkit::NatsServer::start().expect("nats-server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cc_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().route("/internal/v1/desired", get(desired));
        let _ = axum::serve(listener, app).await;
    });

    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut starts = bus
        .subscribe::<HealthStart>(subjects::HEALTH_START)
        .await
        .expect("sub");
    let mut stops = bus
        .subscribe::<HealthStop>(subjects::HEALTH_STOP)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");

    let (stop_tx, hm, _hm_dir) = start_hm(&nats.url, cc_addr, 0.3).await;

    // A DEA heartbeating: a/0 fine, a/2 extra (a wants 2), b/0 left over (b is STOPPED); a/1 missing.
    let hb_bus = bus.clone();
    let beats = tokio::spawn(async move {
        let since = proto::now_unix() - 100.0;
        loop {
            let hb = Heartbeat {
                dea_id: "dea-1".into(),
                instances: vec![
                    inst("a", 0, "a0", since),
                    inst("a", 2, "a2", since),
                    inst("b", 0, "b0", since),
                ],
            };
            let _ = hb_bus.publish(subjects::DEA_HEARTBEAT, &hb).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });

    let start = tokio::time::timeout(Duration::from_secs(15), starts.next())
        .await
        .expect("health.start")
        .expect("msg")
        .payload;
    assert_eq!(
        (
            start.app_id.as_str(),
            start.version.as_str(),
            start.indices.as_slice()
        ),
        ("a", "v1", &[1u32][..])
    );
    assert_eq!(start.reason, "missing");

    let mut stopped = Vec::new();
    while stopped.len() < 2 {
        let s = tokio::time::timeout(Duration::from_secs(15), stops.next())
            .await
            .expect("health.stop")
            .expect("msg")
            .payload;
        if !stopped.iter().any(|x: &HealthStop| x.app_id == s.app_id) {
            stopped.push(s);
        }
    }
    stopped.sort_by(|x, y| x.app_id.cmp(&y.app_id));
    assert_eq!(stopped[0].instance_ids, vec!["a2"]);
    assert_eq!(stopped[0].reason, "extra");
    assert_eq!(stopped[1].instance_ids, vec!["b0"]);
    assert_eq!(stopped[1].reason, "app stopped");

    // The start is not repeated while pending (start_timeout_s = 5).
    let again = tokio::time::timeout(Duration::from_millis(800), starts.next()).await;
    assert!(again.is_err(), "start re-issued: {again:?}");

    beats.abort();
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), hm)
        .await
        .expect("hm stops")
        .expect("join")
        .expect("run ok");
}

async fn leader_of(js: &async_nats::jetstream::Context) -> Option<String> {
    let kv = js.get_key_value("hm_leader").await.ok()?;
    let e = kv.entry(health_manager::leader::KEY).await.ok()??;
    (e.operation == async_nats::jetstream::kv::Operation::Put)
        .then(|| String::from_utf8_lossy(&e.value).into_owned())
}

async fn wait_leader(
    js: &async_nats::jetstream::Context,
    want: impl Fn(&str) -> bool,
    timeout: Duration,
) -> String {
    testkit::wait_for("a matching leader", timeout, || async {
        leader_of(js).await.filter(|l| want(l))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_standby_takes_over() {
    let nats = testkit::NatsServer::start().expect("nats-server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cc_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = axum::Router::new().route("/internal/v1/desired", get(desired));
        let _ = axum::serve(listener, app).await;
    });
    let config = |id: &str| health_manager::Config {
        id: id.into(),
        nats_url: nats.url.clone(),
        cc_url: format!("http://{cc_addr}"),
        internal_api_token: "test-token".into(),
        pass_interval_ms: 100,
        heartbeat_interval_s: 0.3,
        desired_refresh_ms: 200,
        leader_ttl_s: 1.0,
        ..Default::default()
    };
    let hm_a = tokio::spawn(health_manager::run(config("hm-a"), std::future::pending()));
    let (stop_b, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let hm_b = tokio::spawn(health_manager::run(config("hm-b"), async {
        let _ = stop_rx.await;
    }));
    let client = async_nats::connect(&nats.url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let first = wait_leader(&js, |_| true, Duration::from_secs(10)).await;
    // The leader keeps the lock while alive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(leader_of(&js).await.as_deref(), Some(first.as_str()));

    // The leader dies without releasing: the other takes over after the TTL.
    let t = Instant::now();
    let (dead, survivor) = if first == "hm-a" {
        hm_a.abort();
        (None, hm_b)
    } else {
        let _ = stop_b.send(()); // hm-b stops cleanly: releases at once
        (Some(hm_b), hm_a)
    };
    let second = wait_leader(&js, |l| l != first, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "takeover took {:?}",
        t.elapsed()
    );
    assert_ne!(second, first);
    if let Some(d) = dead {
        let _ = d.await;
    }
    survivor.abort();
}

/// On a cluster of three with `leader_replicas = 3`, the lock's stream has
/// a copy on every node and the lock holder keeps (or takes back) the lock
/// while any one node is down, the one its connection used included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_lock_on_a_cluster_outlives_any_one_node() {
    use health_manager::leader::{LeaderLock, Outcome};
    let mut c = testkit::NatsCluster::start().expect("nats cluster");
    let bus = Bus::connect(&c.urls(), "hm-test").await.expect("bus");
    let ttl = Duration::from_secs(2);
    let mut lock = LeaderLock::new(bus.client().clone(), "hm_leader", "hm-a", ttl, 3);
    assert_eq!(lock.tick().await, Outcome::Leading);
    let js = async_nats::jetstream::new(bus.client().clone());
    let info = js
        .get_stream("KV_hm_leader")
        .await
        .expect("the lock's stream")
        .info()
        .await
        .expect("stream info")
        .clone();
    assert_eq!(info.config.num_replicas, 3);
    for i in 0..testkit::CLUSTER_NODES {
        c.kill(i);
        let t = Instant::now();
        // One HM pass every 300 ms: leading again (renewed, or taken back
        // once the entry written before the failover aged out).
        let mut leading = 0;
        while leading < 3 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no lock with n{i} down\n{}",
                c.logs_tail(20)
            );
            leading = match lock.tick().await {
                Outcome::Leading => leading + 1,
                Outcome::Following => 0,
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        println!(
            "n{i} down: lock held after {:.1}s",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(leader_of(&js).await.as_deref(), Some("hm-a"));
        c.restart(i).expect("restart");
        c.wait_formed_async(Duration::from_secs(30))
            .await
            .expect("rejoined");
    }
    lock.release().await;
}

#[path = "e2e/sim_deas.rs"]
mod sim_deas;
