//! The router trusts nothing a client says (issue 13, items 5 and 7): one
//! test per attack, on the fast path (raw HTTP/1.1) and on the general
//! path (HTTP/2 over h2c, served by hyper). See docs/router.md "Hostile
//! clients".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Sends `raw` on a new connection and reads until the router closes it
/// (requests send `Connection: close`); the status and the whole response.
async fn raw(router: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(router).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A GET on the fast path (HTTP/1.1 with one Host, no body).
async fn raw_get(router: SocketAddr, host: &str, path: &str, extra: &str) -> (u16, String) {
    raw(
        router,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection with prior knowledge (h2c): served by hyper.
async fn h2(router: SocketAddr) -> H2 {
    let stream = TcpStream::connect(router).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

async fn h2_get(send: &mut H2, url: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::new()).expect("req"))
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Everything a client may claim about where a request came from.
const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "bank.example"),
    ("x-real-ip", "10.9.9.9"),
    ("forwarded", "for=10.9.9.9;proto=https;host=bank.example"),
    ("x-vcap-request-id", "spoofed-id"),
    ("x-forwarded-client-cert", "Hash=forged"),
    ("x-forwarded-for", "10.8.8.8"),
];

fn assert_router_values(h: &HeaderMap, host: &str, proto: &str) {
    assert_eq!(h["x-forwarded-proto"], proto, "{h:?}");
    assert_eq!(h["x-forwarded-host"], host, "{h:?}");
    assert!(!h.contains_key("x-real-ip"), "{h:?}");
    assert!(!h.contains_key("forwarded"), "{h:?}");
    assert!(!h.contains_key("x-forwarded-client-cert"), "{h:?}");
    assert_eq!(h.get_all("x-vcap-request-id").iter().count(), 1, "{h:?}");
    let id = h["x-vcap-request-id"].to_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{h:?}");
    // X-Forwarded-For: the client's list with the peer appended (gorouter).
    assert_eq!(h["x-forwarded-for"], "10.8.8.8, 127.0.0.1", "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_are_replaced_on_both_paths() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let app = backend("app").await;
    register(&bus, &reg("spoof.localhost", app.addr, "i1", None)).await;
    wait_status(&client(), router.addr, "spoof.localhost", StatusCode::OK).await;
    let before = app.hits();

    // Fast path.
    let extra: String = SPOOFED
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let (status, _) = raw_get(router.addr, "spoof.localhost", "/", &extra).await;
    assert_eq!(status, 200);
    let h = app.seen.lock().expect("lock")[before].clone();
    assert_router_values(&h, "spoof.localhost", "http");

    // General path: HTTP/2 (hyper).
    let mut send = h2(router.addr).await;
    let (status, _) = h2_get(&mut send, "http://spoof.localhost/", SPOOFED).await;
    assert_eq!(status, StatusCode::OK);
    let h = app.seen.lock().expect("lock")[before + 1].clone();
    assert_router_values(&h, "spoof.localhost", "http");

    // General path: HTTP/1.0 is handed to hyper too.
    let (status, _) = raw(
        router.addr,
        &format!("GET / HTTP/1.0\r\nHost: spoof.localhost\r\n{extra}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    let h = app.seen.lock().expect("lock")[before + 2].clone();
    assert_router_values(&h, "spoof.localhost", "http");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_header_is_passed_on_only_with_always_forward() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.forwarded_client_cert = router::config::ForwardedClientCert::AlwaysForward;
    let router = Router::start_with(config).await;
    let app = backend("app").await;
    register(&bus, &reg("xfcc.localhost", app.addr, "i1", None)).await;
    wait_status(&client(), router.addr, "xfcc.localhost", StatusCode::OK).await;
    let before = app.hits();
    let (status, _) = raw_get(
        router.addr,
        "xfcc.localhost",
        "/",
        "X-Forwarded-Client-Cert: Hash=abc\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let mut send = h2(router.addr).await;
    let (status, _) = h2_get(
        &mut send,
        "http://xfcc.localhost/",
        &[("x-forwarded-client-cert", "Hash=abc")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = app.seen.lock().expect("lock").clone();
    for h in &seen[before..] {
        assert_eq!(h["x-forwarded-client-cert"], "Hash=abc", "{h:?}");
    }
    assert_eq!(seen.len(), before + 2);
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_and_an_h2_host_unlike_the_authority_are_refused() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let good = backend("good").await;
    let other = backend("other").await;
    register(&bus, &reg("good.localhost", good.addr, "g", None)).await;
    register(&bus, &reg("other.localhost", other.addr, "o", None)).await;
    let c = client();
    wait_status(&c, router.addr, "good.localhost", StatusCode::OK).await;
    wait_status(&c, router.addr, "other.localhost", StatusCode::OK).await;
    let hits = good.hits() + other.hits();

    for hosts in [
        "Host: good.localhost\r\nHost: other.localhost\r\n",
        "Host: good.localhost\r\nHost: good.localhost\r\n",
    ] {
        let (status, resp) = raw(
            router.addr,
            &format!("GET / HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{resp}");
    }
    // HTTP/1.1 without a Host: 400 (HTTP/1.0 may omit it: no route, 404).
    let (status, resp) = raw(router.addr, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp.contains("needs a Host header"), "{resp}");
    let (status, resp) = raw(router.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 404, "{resp}");
    // An absolute-form target naming another host than Host.
    let (status, resp) = raw(
        router.addr,
        "GET http://other.localhost/ HTTP/1.1\r\nHost: good.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{resp}");

    // HTTP/2: `host` differing from `:authority`.
    let mut send = h2(router.addr).await;
    let (status, body) = h2_get(
        &mut send,
        "http://good.localhost/",
        &[("host", "other.localhost")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The same, agreeing, is served.
    let (status, body) = h2_get(
        &mut send,
        "http://good.localhost/",
        &[("host", "good.localhost")],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    assert_eq!(good.hits() + other.hits(), hits + 1);
    router.stop().await;
}

/// Splits an access-log line into fields: quoted ones (with `\` escapes)
/// whole, the others at spaces.
fn fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                cur.extend(chars.next());
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_user_agent_cannot_forge_access_log_fields_or_lines() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut router = RouterProcess::start(&nats.url, "").await;
    let app = backend("app").await;
    register(&bus, &reg("log.localhost", app.addr, "i1", None)).await;
    wait_status(&client(), router.addr, "log.localhost", StatusCode::OK).await;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // Wait for the probes' lines, then count from here.
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&router.stdout).is_empty() {
        assert!(Instant::now() < deadline, "no access log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let skip = read(&router.stdout).lines().count();

    // The requests of this test (the probes' lines may come later).
    const MARK: &str = "\"GET /p?q=%22x%22 HTTP/1.1\"";
    let agents = [
        "plain/1.0",
        "evil\" 200 0 0 \"-\" \"forged\" 1.2.3.4:1 - x_forwarded_for:\"6.6.6.6",
        "back\\\\slash\\\" and \\x0a fake escape",
        "ends with a backslash\\",
        "tab\there app_id:\"other-app\"",
    ];
    for ua in agents {
        let (status, _) = raw_get(
            router.addr,
            "log.localhost",
            "/p?q=%22x%22",
            &format!("User-Agent: {ua}\r\n"),
        )
        .await;
        assert_eq!(status, 200, "{ua}");
    }
    // A raw newline or CR inside a header is refused by the HTTP parser:
    // no request, so no line.
    let (status, _) = raw(
        router.addr,
        "GET / HTTP/1.1\r\nHost: log.localhost\r\nUser-Agent: a\rb\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines: Vec<String> = loop {
        let all = read(&router.stdout);
        let lines: Vec<String> = all.lines().skip(skip).map(str::to_string).collect();
        if lines.iter().filter(|l| l.contains(MARK)).count() >= agents.len() {
            break lines;
        }
        assert!(Instant::now() < deadline, "lines: {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains(MARK)).collect();
    assert_eq!(ours.len(), agents.len(), "{lines:#?}");
    let want = fields(ours[0]).len();
    for line in &ours {
        assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line}");
        let f = fields(line);
        assert_eq!(f.len(), want, "{line}\n{f:#?}");
        // The fields after the user agent are the router's.
        assert_eq!(f[want - 1], "app_id:\"app-1\"", "{line}");
        assert_eq!(f[want - 4], "x_forwarded_for:\"127.0.0.1\"", "{line}");
    }
    router.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_and_dotted_paths_reach_the_admin_route_and_encoded_slashes_do_not() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let echo = |name: &'static str| {
        move |req: Request<Incoming>| async move { text(format!("{name} {}", req.uri().path())) }
    };
    let (root, _t1) = serve(echo("root")).await;
    let (admin, _t2) = serve(echo("admin")).await;
    register(&bus, &reg("paths.localhost", root, "r", None)).await;
    register(&bus, &reg("paths.localhost/admin", admin, "a", None)).await;
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&c, router.addr, "paths.localhost", "/admin").await.2 != "admin /admin" {
        assert!(Instant::now() < deadline, "admin route never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut send = h2(router.addr).await;
    // The app gets the path as the client sent it (as gorouter does).
    for path in [
        "/%61dmin",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/%2e%2E/admin/x",
        "/admin/./x",
    ] {
        let (status, body) = raw_get(router.addr, "paths.localhost", path, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            body.ends_with(&format!("admin {path}")),
            "fast path {path}: {body}"
        );
        let (status, body) = h2_get(&mut send, &format!("http://paths.localhost{path}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, format!("admin {path}"), "h2 {path}");
    }
    for path in [
        "/%2Fadmin",
        "/%2fadmin",
        "/.%2Fadmin",
        "/x/..%2Fadmin",
        "/admin%2F..%2F..%2Fx/../../y",
    ] {
        let (status, body) = raw_get(router.addr, "paths.localhost", path, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            body.ends_with(&format!("root {path}")),
            "fast path {path}: {body}"
        );
        let (_, body) = h2_get(&mut send, &format!("http://paths.localhost{path}"), &[]).await;
        assert_eq!(body, format!("root {path}"), "h2 {path}");
    }
    router.stop().await;
}

/// A backend that counts its open connections, reads request bodies whole
/// and answers their length.
async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let open = Arc::new(AtomicUsize::new(0));
    let count = open.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let open = count.clone();
            open.fetch_add(1, Ordering::SeqCst);
            conns.spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let n = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes().len())
                        .unwrap_or(0);
                    Ok::<_, Infallible>(text(format!("{n}")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open, task)
}

async fn wait_count(what: &str, n: &AtomicUsize, want: impl Fn(usize) -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let have = n.load(Ordering::SeqCst);
        if want(have) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {have}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `n` uploads that send `head` and `first` and then stall; each
/// task returns what the router answered and how long after the stall.
fn slow_uploads(
    router: SocketAddr,
    n: usize,
    head: &'static str,
    first: &'static str,
) -> Vec<tokio::task::JoinHandle<(String, Duration)>> {
    (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(router).await.expect("connect");
                s.write_all(head.as_bytes()).await.expect("head");
                s.write_all(first.as_bytes()).await.expect("first bytes");
                let stalled = Instant::now();
                let mut out = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
                (
                    String::from_utf8_lossy(&out).into_owned(),
                    stalled.elapsed(),
                )
            })
        })
        .collect()
}

async fn stalled_bodies_are_cut_off(head: &'static str, first: &'static str) {
    const N: usize = 100;
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.request_body_timeout_ms = 1000;
    let router = Router::start_with(config).await;
    let (addr, open, _task) = counting_backend().await;
    register(&bus, &reg("upload.localhost", addr, "u", None)).await;
    let c = client();
    wait_status(&c, router.addr, "upload.localhost", StatusCode::OK).await;

    let uploads = slow_uploads(router.addr, N, head, first);
    // The attack holds backend connections while the bodies stall...
    wait_count(
        "backend connections held",
        &open,
        |n| n >= N,
        Duration::from_secs(10),
    )
    .await;
    // ...while other requests keep being served.
    let (s, _, body) = get(&c, router.addr, "upload.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "0"));
    // Every stalled upload gets 408 and its connection closed after the
    // timeout, not the 900 s endpoint timeout.
    for u in uploads {
        let (resp, after) = u.await.expect("upload task");
        assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("connection: close"),
            "{resp}"
        );
        assert!(after < Duration::from_secs(10), "cut off after {after:?}");
    }
    // The backend connections are released (the test client's keep-alive
    // connection may stay).
    wait_count(
        "backend connections left",
        &open,
        |n| n <= 1,
        Duration::from_secs(10),
    )
    .await;
    let (s, _, body) = get(&c, router.addr, "upload.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "0"));
    assert_eq!(
        metric(&c, router.admin, "router_request_body_timeouts_total").await,
        Some(N as f64)
    );
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_bodies_are_cut_off_on_the_fast_path() {
    // A Content-Length body: the fast path.
    stalled_bodies_are_cut_off(
        "POST /up HTTP/1.1\r\nHost: upload.localhost\r\nContent-Length: 100000\r\n\r\n",
        "first bytes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_bodies_are_cut_off_on_the_general_path() {
    // A chunked body: handed to hyper.
    stalled_bodies_are_cut_off(
        "POST /up HTTP/1.1\r\nHost: upload.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        "b\r\nfirst bytes\r\n",
    )
    .await;
}

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once_and_the_others_served() {
    const CAP: usize = 4;
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.max_client_connections = CAP;
    let router = Router::start_with(config).await;
    let app = backend("app").await;
    register(&bus, &reg("cap.localhost", app.addr, "c", None)).await;
    // Registered (one connection at a time, closed after each request).
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_get(router.addr, "cap.localhost", "/", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "route never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // CAP kept-alive connections, each served once (the probes' closed
    // connections may still be counted for a moment).
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < CAP {
        let mut s = TcpStream::connect(router.addr).await.expect("connect");
        let _ = s
            .write_all(b"GET / HTTP/1.1\r\nHost: cap.localhost\r\n\r\n")
            .await;
        let head = read_head(&mut s).await;
        if head.starts_with("HTTP/1.1 200") {
            let mut body = [0u8; 3];
            s.read_exact(&mut body).await.expect("body");
            held.push(s);
        } else {
            assert!(Instant::now() < deadline, "not admitted: {head}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Only the held ones counted now (a probe's closed connection may have
    // been counted for a moment, and would free a place once gone).
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&c, router.admin, "router_client_connections").await != Some(CAP as f64) {
        assert!(
            Instant::now() < deadline,
            "the probes' connections never went"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Beyond the cap: closed at once (a 503 on plain HTTP), many times,
    // and nothing is left behind.
    let base = fds();
    for i in 0..200 {
        let started = Instant::now();
        let mut s = TcpStream::connect(router.addr).await.expect("connect");
        let _ = s
            .write_all(b"GET / HTTP/1.1\r\nHost: cap.localhost\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("closed in time");
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = String::from_utf8_lossy(&out);
        assert!(
            out.is_empty() || text.starts_with("HTTP/1.1 503"),
            "attempt {i}: {text}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() > base + 2 {
        assert!(Instant::now() < deadline, "fds {} > {base}", fds());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.hits() >= CAP);
    let hits = app.hits();
    assert_eq!(
        metric(&c, router.admin, "router_client_connections").await,
        Some(CAP as f64)
    );
    assert!(
        metric(&c, router.admin, "router_client_connections_refused_total")
            .await
            .is_some_and(|n| n >= 200.0)
    );

    // The held connections are still served.
    for s in &mut held {
        s.write_all(b"GET / HTTP/1.1\r\nHost: cap.localhost\r\n\r\n")
            .await
            .expect("write");
        let head = read_head(s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut body = [0u8; 3];
        s.read_exact(&mut body).await.expect("body");
    }
    assert_eq!(app.hits(), hits + CAP);

    // One closed: a new connection is admitted again.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_get(router.addr, "cap.localhost", "/", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "never admitted again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    router.stop().await;
}
