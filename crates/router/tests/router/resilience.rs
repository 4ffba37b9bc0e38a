//! A backend killed under load, NATS stopped and started, a burst of 10,000
//! registrations: real router, nats-server and backends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proto::{subjects, Bus, RouteRegistration, RouterStart};
use tokio::net::TcpListener;

/// A backend that closes each connection after its response (so the router
/// connects anew every time) and can be killed: its listener closes, so
/// connections are refused from then on.
struct Killable {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

async fn killable(name: &'static str) -> Killable {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    h.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(text(name)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Killable { addr, hits, accept }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_under_load_is_retried_without_client_errors() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let backends = [
        killable("a").await,
        killable("b").await,
        killable("c").await,
    ];
    for (i, b) in backends.iter().enumerate() {
        register(&bus, &reg("load.localhost", b.addr, &format!("i{i}"), None)).await;
    }
    wait_endpoints(&c, router.admin, "load.localhost", 3).await;

    // 8 clients in a loop; the victim is killed while they run.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (c, stop, ok, addr) = (c.clone(), stop.clone(), ok.clone(), router.addr);
        workers.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (s, h, body) = get(&c, addr, "load.localhost", "/").await;
                if s == StatusCode::OK {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    errors.push(format!("{s} {:?} {body}", h.get("x-cf-routererror")));
                }
            }
            errors
        }));
    }
    let wait_ok = |n: usize| {
        let ok = ok.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while ok.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "load did not progress");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_ok(300).await;
    let [first, victim, third] = backends;
    victim.accept.abort();
    let _ = victim.accept.await;
    let hits_at_kill = victim.hits.load(Ordering::SeqCst);
    let before = ok.load(Ordering::SeqCst);
    wait_ok(before + 600).await;
    stop.store(true, Ordering::SeqCst);
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.expect("join"));
    }
    assert!(errors.is_empty(), "client saw errors: {errors:?}");
    // Connections the victim accepted before it died may still finish (at
    // most one per client); after that it gets nothing.
    let victim_hits = victim.hits.load(Ordering::SeqCst);
    assert!(
        victim_hits <= hits_at_kill + 8,
        "victim served {victim_hits} > {hits_at_kill} + 8 requests after it died"
    );
    assert!(first.hits.load(Ordering::SeqCst) > 0 && third.hits.load(Ordering::SeqCst) > 0);
    // The router did hit the refused endpoint and retried elsewhere.
    let connect_errors = metric(
        &c,
        router.admin,
        "router_backend_errors_total{kind=\"connect\"}",
    )
    .await
    .expect("metric");
    let retries = metric(&c, router.admin, "router_backend_retries_total")
        .await
        .expect("metric");
    assert!(
        connect_errors >= 1.0 && retries >= connect_errors,
        "{connect_errors} {retries}"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_keeps_routes_then_refreshes_and_prunes() {
    let mut nats = Nats::start().expect("nats-server");
    // The router reaches NATS through a relay, so that the test can hold its
    // reconnection until it listens for router.start again.
    let mut relay = Relay::new(nats.port).await;
    let mut config = test_config(&format!("nats://127.0.0.1:{}", relay.port));
    config.prune_threshold_s = 2;
    let router = Router::start_with(config).await;
    let c = client();
    let a = backend("a").await;
    let b = backend("b").await;
    {
        let bus = Bus::connect(&nats.url, "test").await.expect("bus");
        register(&bus, &reg("outage.localhost", a.addr, "ia", None)).await;
        register(&bus, &reg("gone.localhost", b.addr, "ib", None)).await;
    }
    wait_status(&c, router.addr, "outage.localhost", StatusCode::OK).await;
    wait_status(&c, router.addr, "gone.localhost", StatusCode::OK).await;

    // NATS down for longer than the 2 s threshold: routes are kept.
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&c, router.admin, "router_nats_connected").await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "router did not notice NATS going away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = Instant::now();
    while down.elapsed() < Duration::from_millis(3500) {
        for host in ["outage.localhost", "gone.localhost"] {
            let (s, _, _) = get(&c, router.addr, host, "/").await;
            assert_eq!(s, StatusCode::OK, "{host} pruned while NATS was down");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // NATS back: the router reconnects and announces router.start; a
    // registrar answering it refreshes only one route; the other is pruned
    // one threshold later.
    relay.cut().await;
    nats.restart().expect("restart nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut starts = bus
        .subscribe::<RouterStart>(subjects::ROUTER_START)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");
    relay.restore();
    let start = tokio::time::timeout(Duration::from_secs(15), starts.next())
        .await
        .expect("router.start after reconnect")
        .expect("msg")
        .payload;
    assert_eq!(start.prune_threshold_s, 2);
    let refresher = {
        let bus = bus.clone();
        let r = reg("outage.localhost", a.addr, "ia", None);
        tokio::spawn(async move {
            loop {
                let _ = bus.publish(subjects::ROUTER_REGISTER, &r).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    assert_eq!(
        metric(&c, router.admin, "router_nats_connected").await,
        Some(1.0)
    );
    wait_status(&c, router.addr, "gone.localhost", StatusCode::NOT_FOUND).await;
    let (s, _, body) = get(&c, router.addr, "outage.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "a"));
    assert!(metric(&c, router.admin, "router_pruned_endpoints_total").await >= Some(1.0));
    refresher.abort();
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absorbs_a_burst_of_ten_thousand_registrations() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let a = backend("a").await;
    register(&bus, &reg("steady.localhost", a.addr, "s", None)).await;
    wait_status(&c, router.addr, "steady.localhost", StatusCode::OK).await;

    const N: usize = 10_000;
    let t = Instant::now();
    for i in 0..N {
        let r = RouteRegistration {
            host: "127.0.0.1".into(),
            port: 20_000 + (i % 1000) as u16,
            uris: vec![format!("burst-{i}.localhost")],
            app_id: Some(format!("app-{i}")),
            instance_id: Some(format!("inst-{i}")),
            tags: Default::default(),
            stale_threshold_s: None,
        };
        bus.publish(subjects::ROUTER_REGISTER, &r)
            .await
            .expect("pub");
    }
    bus.flush().await.expect("flush");
    let published = t.elapsed();
    // Requests keep being served during the burst.
    let (s, _, _) = get(&c, router.addr, "steady.localhost", "/").await;
    assert_eq!(s, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let routes = metric(&c, router.admin, "router_routes").await;
        if routes == Some((N + 1) as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {routes:?} routes of {} after the burst",
            N + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "10,000 registrations published in {published:?}, all routed after {:?}",
        t.elapsed()
    );
    assert_eq!(
        metric(&c, router.admin, "router_registrations_total").await,
        Some((N + 1) as f64)
    );
    let (_, _, body) = get(&c, router.admin, "admin", "/routes").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["burst-9999.localhost"][0]["instance_id"], "inst-9999");
    router.stop().await;
}
