//! Malformed and oversized requests, slow-loris clients, graceful shutdown:
//! real router, nats-server and backends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use proto::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh connection and returns the response head.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_head(&mut s).await
}

/// Reads until the router closes the connection (or sends something);
/// returns what was read and how long it took.
async fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, t.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_slow_clients_time_out_while_others_are_served() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.client_header_timeout_ms = 800;
    config.max_header_bytes = 16 * 1024;
    config.max_request_body_bytes = 1_000_000;
    let router = Router::start_with(config).await;
    let c = client();
    // The backend reads the whole body and answers its length.
    let (addr, _task) = serve(|req: Request<Incoming>| async move {
        match req.into_body().collect().await {
            Ok(b) => text(b.to_bytes().len().to_string()),
            Err(_) => text("aborted"),
        }
    })
    .await;
    register(&bus, &reg("ok.localhost", addr, "i", None)).await;
    wait_status(&c, router.addr, "ok.localhost", StatusCode::OK).await;

    // Slow-loris clients: one sends half a request head, one sends nothing.
    let mut half = TcpStream::connect(router.addr).await.expect("connect");
    half.write_all(b"GET / HTTP/1.1\r\nHost: ok.localhost\r\nX-Slow: ")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(router.addr).await.expect("connect");
    let slow = tokio::spawn(async move {
        let a = read_until_closed(&mut half).await;
        let b = read_until_closed(&mut silent).await;
        (a, b)
    });

    // Meanwhile everything else is answered.
    let head = raw(router.addr, b"GARBAGE\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let head = raw(
        router.addr,
        b"GET / HTTP/1.1\r\nHost: ok.localhost\r\nContent-Length: x\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: ok.localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let head = raw(router.addr, big.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let head = raw(
        router.addr,
        b"POST / HTTP/1.1\r\nHost: ok.localhost\r\nContent-Length: 2000000\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // A chunked body that grows past the limit is cut off with 413.
    let mut s = TcpStream::connect(router.addr).await.expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: ok.localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "b".repeat(64 * 1024));
        for _ in 0..24 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let head = read_head(&mut rd).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    writer.abort();

    // A body within the limit goes through.
    let req = Request::post(format!("http://{}/", router.addr))
        .header("host", "ok.localhost")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            1u8;
            500_000
        ])))
        .expect("req");
    let resp = c.request(req).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"500000");

    for _ in 0..5 {
        let (s, _, body) = get(&c, router.addr, "ok.localhost", "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "0"));
    }

    // The slow clients were cut off after the header timeout.
    let ((half_got, half_t), (silent_got, silent_t)) = slow.await.expect("join");
    let half_text = String::from_utf8_lossy(&half_got);
    assert!(
        half_got.is_empty() || half_text.starts_with("HTTP/1.1 408"),
        "{half_text}"
    );
    assert!(silent_got.is_empty());
    assert!(half_t >= Duration::from_millis(700), "{half_t:?}");
    assert!(half_t < Duration::from_secs(5) && silent_t < Duration::from_secs(5));
    router.stop().await;
}

/// `drain_wait_s` (gorouter's lame duck): after the stop signal the router
/// keeps serving while `/health` answers 503, then stops accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lame_duck_fails_its_health_check_but_keeps_serving() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.drain_wait_s = 3;
    let mut router = Router::start_with(config).await;
    let c = client();
    let app = backend("lame").await;
    register(&bus, &reg("lame.localhost", app.addr, "i", None)).await;
    wait_endpoints(&c, router.admin, "lame.localhost", 1).await;
    let (s, _, body) = get(&c, router.admin, "admin", "/health").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));

    let stopped_at = Instant::now();
    router.signal_stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, body) = get(&c, router.admin, "admin", "/health").await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body, "draining");
            break;
        }
        assert!(Instant::now() < deadline, "/health never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A lame duck: new connections and requests are still served.
    let fresh = client();
    let (s, _, body) = get(&fresh, router.addr, "lame.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "lame"));
    assert!(
        stopped_at.elapsed() < Duration::from_secs(3),
        "checked within the drain wait"
    );
    // Then the listener closes, not before the drain wait is over.
    testkit::wait_port(router.addr.port(), false, Duration::from_secs(10))
        .await
        .expect("router stops accepting");
    assert!(
        stopped_at.elapsed() >= Duration::from_secs(3),
        "stopped accepting after {:?}",
        stopped_at.elapsed()
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut router = Router::start(&nats.url).await;
    let c = client();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let held = Arc::new(AtomicUsize::new(0));
    let h = held.clone();
    let (addr, _task) = serve(move |_req: Request<Incoming>| {
        let mut rx = rx.clone();
        let held = h.clone();
        async move {
            held.fetch_add(1, Ordering::SeqCst);
            let _ = rx.wait_for(|r| *r).await;
            text("done")
        }
    })
    .await;
    register(&bus, &reg("drain.localhost", addr, "i", None)).await;
    wait_endpoints(&c, router.admin, "drain.localhost", 1).await;

    let (c1, raddr) = (c.clone(), router.addr);
    let inflight = tokio::spawn(async move { get(&c1, raddr, "drain.localhost", "/").await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Stop: no new connections...
    router.signal_stop();
    testkit::wait_port(router.addr.port(), false, Duration::from_secs(10))
        .await
        .expect("router stops accepting");
    // ...but the request in flight completes.
    tx.send(true).expect("release");
    let (s, _, body) = inflight.await.expect("join");
    assert_eq!((s, body.as_str()), (StatusCode::OK, "done"));
    router.stop().await;
}

/// Sends one request on `s` and reads its response (head and a
/// `Content-Length` body); returns the head.
async fn request_on(s: &mut TcpStream, head: &[u8]) -> String {
    s.write_all(head).await.expect("write");
    let head = read_head(s).await;
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("body");
    head
}

/// Panics unless `lo_ms <= t < hi_ms`.
fn assert_within(what: &str, t: Duration, lo_ms: u64, hi_ms: u64) {
    assert!(
        t >= Duration::from_millis(lo_ms) && t < Duration::from_millis(hi_ms),
        "{what} after {t:?}, expected {lo_ms}..{hi_ms} ms"
    );
}

/// Two kept-alive connections, each after one exchange: one served by the
/// fast path (`get`), one handed over to hyper (`unknown`, a 404).
async fn fast_and_hyper(
    router: std::net::SocketAddr,
    get: &[u8],
    unknown: &[u8],
) -> (TcpStream, TcpStream) {
    let mut fast = TcpStream::connect(router).await.expect("connect");
    let mut slow = TcpStream::connect(router).await.expect("connect");
    let head = request_on(&mut fast, get).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = request_on(&mut slow, unknown).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    (fast, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_and_slow_heads_have_their_own_timeouts_on_http1_and_http2() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.client_header_timeout_ms = 700;
    config.client_keepalive_timeout_ms = 2_000;
    let router = Router::start_with(config).await;
    let c = client();
    let (addr, _task) = serve(|_req: Request<Incoming>| async move { text("0") }).await;
    register(&bus, &reg("ok.localhost", addr, "i", None)).await;
    wait_status(&c, router.addr, "ok.localhost", StatusCode::OK).await;
    let get = b"GET / HTTP/1.1\r\nHost: ok.localhost\r\n\r\n";
    // An unknown route is served by hyper (handed over by the fast path).
    let unknown = b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n";

    // A kept-alive connection idle for longer than the header timeout is
    // still served, on the fast path and on hyper's...
    let (mut fast, mut slow) = fast_and_hyper(router.addr, get, unknown).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let head = request_on(&mut fast, get).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = request_on(&mut slow, unknown).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // ...and closed once idle for the keep-alive timeout.
    let (idle_fast, idle_slow) =
        tokio::join!(read_until_closed(&mut fast), read_until_closed(&mut slow));
    assert_within(
        "fast path: idle connection closed",
        idle_fast.1,
        1_800,
        6_000,
    );
    assert_within("hyper: idle connection closed", idle_slow.1, 1_800, 6_000);

    // After a response, a head that starts but never ends is cut off at
    // the header timeout, not the keep-alive one.
    let (mut fast, mut slow) = fast_and_hyper(router.addr, get, unknown).await;
    fast.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    slow.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let (cut_fast, cut_slow) =
        tokio::join!(read_until_closed(&mut fast), read_until_closed(&mut slow));
    assert_within("fast path: slow head cut off", cut_fast.1, 600, 1_800);
    assert_within("hyper: slow head cut off", cut_slow.1, 600, 1_800);

    // HTTP/2: a client that stalls in the preface is cut off at the header
    // timeout...
    let mut stalled = TcpStream::connect(router.addr).await.expect("connect");
    stalled
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n")
        .await
        .expect("write");
    let (_, t) = read_until_closed(&mut stalled).await;
    assert_within("stalled HTTP/2 preface cut off", t, 600, 1_800);
    // ...and an idle HTTP/2 connection at the keep-alive timeout.
    let stream = TcpStream::connect(router.addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    for _ in 0..2 {
        let req = Request::get("http://ok.localhost/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        let resp = send.send_request(req).await.expect("h2 request");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.expect("body");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("h2 connection closed by the router")
        .expect("join")
        .ok();
    // (the last request was 1 s before `idle`)
    assert_within("idle HTTP/2 connection closed", idle.elapsed(), 900, 6_000);
    router.stop().await;
}
