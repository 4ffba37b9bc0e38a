//! Real router + real nats-server + real backend HTTP servers: routing,
//! round robin, headers, access log on NATS, admin, retries, pruning,
//! upgrades, NATS outage.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proto::{subjects, Bus, LogMessage, RouterStart};
use tokio::net::TcpListener;

async fn start_nats() -> Nats {
    Nats::start().expect("nats-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_round_robin_headers_logs_and_admin() {
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut starts = bus
        .subscribe::<RouterStart>(subjects::ROUTER_START)
        .await
        .expect("sub");
    let mut logs = bus
        .subscribe::<LogMessage>(subjects::logs("app-1"))
        .await
        .expect("sub");
    bus.flush().await.expect("flush");
    let router = Router::start(&nats.url).await;

    // router.start at boot, and router.greet answered with the same payload.
    let start = tokio::time::timeout(Duration::from_secs(5), starts.next())
        .await
        .expect("router.start")
        .expect("msg")
        .payload;
    assert_eq!(start.minimum_register_interval_s, 5);
    assert_eq!(start.prune_threshold_s, 20);
    let greet: RouterStart = bus
        .request(
            subjects::ROUTER_GREET,
            &serde_json::json!({}),
            Duration::from_secs(5),
        )
        .await
        .expect("greet");
    assert_eq!(greet, start);

    let a = backend("a").await;
    let b = backend("b").await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("app.localhost", a.addr, "inst-a", None),
    )
    .await
    .expect("pub");
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("app.localhost", b.addr, "inst-b", None),
    )
    .await
    .expect("pub");
    let c = client();
    // Wait for both to be known (admin /routes), then check round robin.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, body) = get(&c, router.admin, "admin", "/routes").await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if v["app.localhost"].as_array().map(Vec::len) == Some(2) {
            assert_eq!(v["app.localhost"][0]["app_id"], "app-1");
            assert_eq!(v["app.localhost"][0]["tags"]["component"], "test");
            break;
        }
        assert!(Instant::now() < deadline, "routes never registered: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let (s, _, body) = get(&c, router.addr, "APP.localhost:8080", "/hello?x=1").await;
        assert_eq!(s, StatusCode::OK);
        bodies.push(body);
    }
    assert!(
        bodies.contains(&"a".to_string()) && bodies.contains(&"b".to_string()),
        "{bodies:?}"
    );

    // Headers at the backend.
    let h = a.seen.lock().expect("lock")[0].clone();
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "APP.localhost:8080");
    assert_eq!(h["host"], "APP.localhost:8080");
    assert_eq!(h["x-cf-instanceid"], "inst-a");
    assert!(
        h["x-request-start"]
            .to_str()
            .expect("str")
            .parse::<i64>()
            .expect("ms")
            > 1_600_000_000_000
    );
    assert!(uuid::Uuid::parse_str(h["x-vcap-request-id"].to_str().expect("str")).is_ok());

    // An incoming request id is replaced by the router's own (issue 13,
    // item 7); a body is streamed through.
    let req = Request::builder()
        .method("POST")
        .uri(format!("http://{}/p", router.addr))
        .header("host", "app.localhost")
        .header("x-vcap-request-id", "my-id")
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("req");
    let resp = c.request(req).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(body.ends_with(b":payload"), "{body:?}");
    let all: Vec<HeaderMap> = a
        .seen
        .lock()
        .expect("lock")
        .iter()
        .chain(b.seen.lock().expect("lock").iter())
        .cloned()
        .collect();
    assert!(all
        .iter()
        .all(|h| h.get("x-vcap-request-id").is_some_and(|v| v != "my-id")));

    // Access log lines for the app on logs.<app_id>.
    let msg = tokio::time::timeout(Duration::from_secs(5), logs.next())
        .await
        .expect("log")
        .expect("msg")
        .payload;
    assert_eq!(msg.source, proto::LogSource::Rtr);
    assert!(
        msg.line.contains("\"GET /hello?x=1 HTTP/1.1\" 200"),
        "{}",
        msg.line
    );
    assert!(msg.line.contains("app_id:\"app-1\""), "{}", msg.line);

    // Admin health; unknown route.
    let (s, _, body) = get(&c, router.admin, "admin", "/health").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
    let (s, _, body) = get(&c, router.admin, "admin", "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("router_responses_total{status=\"2xx\"} 5"),
        "{body}"
    );
    assert!(body.contains("router_routes 1"), "{body}");
    let (s, h, _) = get(&c, router.addr, "nope.localhost", "/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h["x-cf-routererror"], "unknown_route");

    // Unregister both: unknown again.
    bus.publish(
        subjects::ROUTER_UNREGISTER,
        &reg("app.localhost", a.addr, "inst-a", None),
    )
    .await
    .expect("pub");
    bus.publish(
        subjects::ROUTER_UNREGISTER,
        &reg("app.localhost", b.addr, "inst-b", None),
    )
    .await
    .expect("pub");
    wait_status(&c, router.addr, "app.localhost", StatusCode::NOT_FOUND).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_endpoints_then_502() {
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();

    let live = backend("live").await;
    let dead = dead_addr().await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("retry.localhost", dead, "dead", None),
    )
    .await
    .expect("pub");
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("retry.localhost", live.addr, "live", None),
    )
    .await
    .expect("pub");
    wait_status(&c, router.addr, "retry.localhost", StatusCode::OK).await;
    // Give the second registration time to land, then every request succeeds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..6 {
        let (s, _, body) = get(&c, router.addr, "retry.localhost", "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "live"));
    }

    let d1 = dead_addr().await;
    let d2 = dead_addr().await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("dead.localhost", d1, "d1", None),
    )
    .await
    .expect("pub");
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("dead.localhost", d2, "d2", None),
    )
    .await
    .expect("pub");
    wait_status(&c, router.addr, "dead.localhost", StatusCode::BAD_GATEWAY).await;
    let (s, h, _) = get(&c, router.addr, "dead.localhost", "/").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(h["x-cf-routererror"], "endpoint_failure");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prunes_stale_routes() {
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let a = backend("a").await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("stale.localhost", a.addr, "i", Some(1)),
    )
    .await
    .expect("pub");
    wait_status(&c, router.addr, "stale.localhost", StatusCode::OK).await;
    let t = Instant::now();
    wait_status(&c, router.addr, "stale.localhost", StatusCode::NOT_FOUND).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    router.stop().await;
}

/// A backend that switches to an echo protocol on `Upgrade: echo`.
async fn upgrade_backend() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|mut req: Request<Incoming>| async move {
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = on.await {
                            let mut io = TokioIo::new(up);
                            let mut buf = [0u8; 64];
                            while let Ok(n) = io.read(&mut buf).await {
                                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    let resp = Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header("connection", "upgrade")
                        .header("upgrade", "echo")
                        .body(Full::new(Bytes::new()))
                        .expect("resp");
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_upgraded_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let ws = upgrade_backend().await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("ws.localhost", ws, "w", None),
    )
    .await
    .expect("pub");
    // Wait for the route (a plain GET also gets 101 from this backend).
    let c = client();
    wait_status(
        &c,
        router.addr,
        "ws.localhost",
        StatusCode::SWITCHING_PROTOCOLS,
    )
    .await;

    let mut s = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: ws.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("read")
            .expect("read");
        assert!(n == 1, "closed early: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo")
        .expect("echo");
    assert_eq!(&buf, b"ping");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_is_suspended_while_nats_is_down_and_start_is_reannounced() {
    let nats = start_nats().await;
    let nats_port: u16 = nats
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut relay = Relay::new(nats_port).await;
    let router = Router::start(&format!("nats://127.0.0.1:{}", relay.port)).await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut starts = bus
        .subscribe::<RouterStart>(subjects::ROUTER_START)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");
    let c = client();
    let a = backend("a").await;
    bus.publish(
        subjects::ROUTER_REGISTER,
        &reg("outage.localhost", a.addr, "i", Some(1)),
    )
    .await
    .expect("pub");
    wait_status(&c, router.addr, "outage.localhost", StatusCode::OK).await;

    // The router loses NATS: the 1 s route survives well past its threshold.
    relay.cut().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, _, _) = get(&c, router.addr, "outage.localhost", "/").await;
    assert_eq!(s, StatusCode::OK, "route pruned while NATS was down");

    // Back: router.start is announced again, then the stale route goes.
    relay.restore();
    let got = tokio::time::timeout(Duration::from_secs(10), starts.next()).await;
    assert!(
        matches!(got, Ok(Some(_))),
        "no router.start after reconnect"
    );
    wait_status(&c, router.addr, "outage.localhost", StatusCode::NOT_FOUND).await;
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_busy_polls_under_load_and_uses_no_cpu_when_idle() {
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = RouterProcess::start(
        &nats.url,
        "worker_threads = 1\nbusy_poll_us = 2000\naccess_log_stdout = false",
    )
    .await;
    let c = client();
    let b = backend("poll").await;
    register(&bus, &reg("poll.localhost", b.addr, "p-0", None)).await;
    wait_status(&c, router.addr, "poll.localhost", StatusCode::OK).await;
    for _ in 0..200 {
        let (s, _, body) = get(&c, router.addr, "poll.localhost", "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "poll"));
    }
    let spun = metric(&c, router.admin, "router_busy_poll_seconds_total")
        .await
        .expect("busy poll metric");
    assert!(spun > 0.0, "no busy polling under load");

    // Once requests stop, the spinner parks: a whole second without any
    // CPU time used (the process would burn ~100 ticks a second spinning).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = router.cpu_ticks();
        let window = Instant::now();
        while window.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let used = router.cpu_ticks() - before;
        if used <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle router still uses {used} ticks a second"
        );
    }
}

/// Any number of routers (issue 17): each learns every route from the bus
/// on its own, so either serves the app, and losing one leaves the other
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_router_learns_every_route() {
    let nats = start_nats().await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let first = Router::start(&nats.url).await;
    let second = Router::start(&nats.url).await;
    let c = client();
    let app = backend("both").await;
    register(&bus, &reg("both.localhost", app.addr, "i", None)).await;
    for r in [&first, &second] {
        wait_endpoints(&c, r.admin, "both.localhost", 1).await;
        let (s, _, body) = get(&c, r.addr, "both.localhost", "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "both"));
    }
    first.stop().await;
    let (s, _, body) = get(&client(), second.addr, "both.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "both"));
    assert_eq!(app.hits(), 3);
    second.stop().await;
}
