//! Route matching, least connections, connection limits (503), sticky
//! sessions, forwarding headers: real router, nats-server and backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use proto::{subjects, Bus};

/// A backend named `name`; `/hold` waits until `release` turns true;
/// `/login` sets a JSESSIONID cookie.
async fn gated(
    name: &'static str,
    release: tokio::sync::watch::Receiver<bool>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
    Arc<AtomicUsize>,
) {
    let holding = Arc::new(AtomicUsize::new(0));
    let h = holding.clone();
    let (addr, task) = serve(move |req: Request<Incoming>| {
        let mut release = release.clone();
        let holding = h.clone();
        async move {
            match req.uri().path() {
                "/hold" => {
                    holding.fetch_add(1, Ordering::SeqCst);
                    let _ = release.wait_for(|r| *r).await;
                    text(name)
                }
                "/login" => {
                    let mut r = text(name);
                    r.headers_mut().insert(
                        "set-cookie",
                        http::HeaderValue::from_static("JSESSIONID=s1; Path=/; Max-Age=600"),
                    );
                    r
                }
                _ => text(name),
            }
        }
    })
    .await;
    (addr, task, holding)
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    testkit::wait_for(what, Duration::from_secs(10), || async {
        f().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connection_and_connection_limit() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.max_conns_per_backend = 1;
    let router = Router::start_with(config).await;
    let c = client();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (a, _ta, held_a) = gated("a", rx.clone()).await;
    let (b, _tb, held_b) = gated("b", rx).await;
    for (addr, id) in [(a, "ia"), (b, "ib")] {
        let mut r = reg("lc.localhost", addr, id, None);
        r.tags
            .insert("loadbalancing".into(), "least-connection".into());
        register(&bus, &r).await;
    }
    wait_endpoints(&c, router.admin, "lc.localhost", 2).await;

    // One request held on some backend: every other request goes to the other.
    let c1 = c.clone();
    let addr = router.addr;
    let first = tokio::spawn(async move { get(&c1, addr, "lc.localhost", "/hold").await });
    wait_until("a held request", || {
        held_a.load(Ordering::SeqCst) + held_b.load(Ordering::SeqCst) == 1
    })
    .await;
    let busy = if held_a.load(Ordering::SeqCst) == 1 {
        "a"
    } else {
        "b"
    };
    for _ in 0..6 {
        let (s, _, body) = get(&c, router.addr, "lc.localhost", "/").await;
        assert_eq!(s, StatusCode::OK);
        assert_ne!(
            body, busy,
            "least connection sent a request to the busy backend"
        );
    }

    // Both backends at their limit (1 request each): 503 no_endpoints.
    let c2 = c.clone();
    let second = tokio::spawn(async move { get(&c2, addr, "lc.localhost", "/hold").await });
    wait_until("two held requests", || {
        held_a.load(Ordering::SeqCst) == 1 && held_b.load(Ordering::SeqCst) == 1
    })
    .await;
    let (s, h, body) = get(&c, router.addr, "lc.localhost", "/").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(h["x-cf-routererror"], "no_endpoints");
    assert!(body.contains("no available endpoints"), "{body}");

    // Released: the held requests finish and the route serves again.
    tx.send(true).expect("release");
    assert_eq!(first.await.expect("join").0, StatusCode::OK);
    assert_eq!(second.await.expect("join").0, StatusCode::OK);
    let (s, _, _) = get(&c, router.addr, "lc.localhost", "/").await;
    assert_eq!(s, StatusCode::OK);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_follow_vcap_id_and_fall_back() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let (a, _ta, _) = gated("a", rx.clone()).await;
    let (b, _tb, _) = gated("b", rx).await;
    let ra = reg("sticky.localhost", a, "inst-a", None);
    let rb = reg("sticky.localhost", b, "inst-b", None);
    register(&bus, &ra).await;
    register(&bus, &rb).await;
    wait_endpoints(&c, router.admin, "sticky.localhost", 2).await;

    // No JSESSIONID: no sticky cookie.
    let (_, h, _) = get(&c, router.addr, "sticky.localhost", "/").await;
    assert!(h.get("set-cookie").is_none());

    // The app sets JSESSIONID: the router adds __VCAP_ID__ with its attributes.
    let (s, h, served_by) = get(&c, router.addr, "sticky.localhost", "/login").await;
    assert_eq!(s, StatusCode::OK);
    let cookies: Vec<&str> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    let vcap = cookies
        .iter()
        .find(|c| c.starts_with("__VCAP_ID__="))
        .expect("__VCAP_ID__ set");
    let instance = format!("inst-{served_by}");
    assert!(
        vcap.starts_with(&format!("__VCAP_ID__={instance};")),
        "{vcap}"
    );
    assert!(
        vcap.contains("Max-Age=600") && vcap.contains("HttpOnly"),
        "{vcap}"
    );

    // Requests carrying the cookie stick to that instance.
    let cookie = format!("JSESSIONID=s1; __VCAP_ID__={instance}");
    for _ in 0..6 {
        let (s, h, body) = request(
            &c,
            router.addr,
            "sticky.localhost",
            "/",
            &[("cookie", &cookie)],
        )
        .await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, served_by.as_str()));
        assert!(h.get("set-cookie").is_none());
    }

    // That instance goes away: normal choice, and the session is re-pinned.
    let gone = if served_by == "a" { &ra } else { &rb };
    bus.publish(subjects::ROUTER_UNREGISTER, gone)
        .await
        .expect("pub");
    wait_endpoints(&c, router.admin, "sticky.localhost", 1).await;
    let other = if served_by == "a" { "b" } else { "a" };
    let (s, h, body) = request(
        &c,
        router.addr,
        "sticky.localhost",
        "/",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, other));
    let vcap = h["set-cookie"].to_str().expect("ascii");
    assert!(
        vcap.starts_with(&format!("__VCAP_ID__=inst-{other};")),
        "{vcap}"
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_wildcards_paths_and_forwarding_headers() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let root = backend("root").await;
    let api = backend("api").await;
    let wild = backend("wild").await;
    register(&bus, &reg("Shop.localhost", root.addr, "r", None)).await;
    register(&bus, &reg("shop.localhost/api", api.addr, "p", None)).await;
    register(&bus, &reg("*.wild.localhost", wild.addr, "w", None)).await;
    wait_endpoints(&c, router.admin, "*.wild.localhost", 1).await;
    wait_endpoints(&c, router.admin, "shop.localhost/api", 1).await;

    for (host, path, want) in [
        ("shop.localhost", "/", "root"),
        ("SHOP.LOCALHOST:8080", "/x", "root"),
        ("shop.localhost", "/apiary", "root"),
        ("shop.localhost", "/api", "api"),
        ("shop.localhost.", "/api/v1?q=1", "api"),
        ("a.wild.localhost", "/", "wild"),
        ("b.a.wild.localhost:80", "/", "wild"),
    ] {
        let (s, _, body) = get(&c, router.addr, host, path).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, want), "{host}{path}");
    }
    let (s, h, body) = get(&c, router.addr, "wild.localhost", "/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h["x-cf-routererror"], "unknown_route");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "Requested route ('wild.localhost') does not exist.\n");

    // X-Forwarded-For is appended to; other forwarding headers are set.
    let (s, _, _) = request(
        &c,
        router.addr,
        "shop.localhost",
        "/",
        &[("x-forwarded-for", "10.1.2.3")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let h = root
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("seen");
    assert_eq!(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.localhost");
    assert_eq!(h["x-cf-instanceid"], "r");
    assert!(h.contains_key("x-request-start") && h.contains_key("x-vcap-request-id"));
    router.stop().await;
}
