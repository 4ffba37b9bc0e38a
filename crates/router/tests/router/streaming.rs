//! Streaming both ways (server-sent events, chunked echo), websocket echo,
//! HTTP/2 from clients, and 100 MB up and down through the router binary
//! with flat memory and the access log on stdout.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

type ChunkTx = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

fn channel_body() -> (ChunkTx, BoxBody) {
    let (tx, rx) = mpsc::channel(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// `/events`: one event now, the next when the test says so (over `gate`).
/// `/echo`: streams the request body back chunk by chunk.
/// `/ws`: websocket echo (RFC 6455 handshake, text frames).
/// `/upload`: counts the body; `/download?n=BYTES`: streams zeros.
async fn streaming_backend(
    gate: tokio::sync::watch::Receiver<u32>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    serve(move |mut req: Request<Incoming>| {
        let mut gate = gate.clone();
        async move {
            match req.uri().path() {
                "/events" => {
                    let (tx, body) = channel_body();
                    tokio::spawn(async move {
                        let _ = tx.send(Ok(Frame::data(Bytes::from("data: one\n\n")))).await;
                        let _ = gate.wait_for(|g| *g >= 1).await;
                        let _ = tx.send(Ok(Frame::data(Bytes::from("data: two\n\n")))).await;
                    });
                    let mut r = Response::new(body);
                    r.headers_mut()
                        .insert("content-type", "text/event-stream".parse().expect("hv"));
                    r
                }
                "/echo" => {
                    let (tx, body) = channel_body();
                    let mut incoming = req.into_body();
                    tokio::spawn(async move {
                        while let Some(Ok(frame)) = incoming.frame().await {
                            if let Ok(data) = frame.into_data() {
                                if tx.send(Ok(Frame::data(data))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                    Response::new(body)
                }
                "/ws" => {
                    let key = req
                        .headers()
                        .get("sec-websocket-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let accept = ws_accept(&key);
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = on.await {
                            ws_echo(TokioIo::new(up)).await;
                        }
                    });
                    let mut r = Response::new(http_body_util::Empty::new().boxed());
                    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    let h = r.headers_mut();
                    h.insert("connection", "Upgrade".parse().expect("hv"));
                    h.insert("upgrade", "websocket".parse().expect("hv"));
                    h.insert("sec-websocket-accept", accept.parse().expect("hv"));
                    r
                }
                "/upload" => {
                    let mut body = req.into_body();
                    let mut n = 0usize;
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Some(d) = frame.data_ref() {
                            n += d.len();
                        }
                    }
                    text(n.to_string())
                }
                "/download" => {
                    let total: usize = req
                        .uri()
                        .query()
                        .and_then(|q| q.strip_prefix("n="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let (tx, body) = channel_body();
                    tokio::spawn(async move {
                        let chunk = Bytes::from(vec![0u8; 64 * 1024]);
                        let mut left = total;
                        while left > 0 {
                            let n = left.min(chunk.len());
                            if tx.send(Ok(Frame::data(chunk.slice(..n)))).await.is_err() {
                                return;
                            }
                            left -= n;
                        }
                    });
                    Response::new(body)
                }
                _ => text(format!("{:?}", req.version())),
            }
        }
    })
    .await
}

fn ws_accept(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC11B65").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Reads one websocket frame: (opcode, unmasked payload).
async fn ws_read<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await.ok()?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).await.ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    s.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

fn ws_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    assert!(payload.len() < 126);
    f.push(m | payload.len() as u8);
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

async fn ws_echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    while let Some((opcode, payload)) = ws_read(&mut s).await {
        if opcode == 8 {
            let _ = s.write_all(&ws_frame(8, &[], None)).await;
            return;
        }
        if s.write_all(&ws_frame(opcode, &payload, None))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_sse_streaming_and_http2() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let c = client();
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(0u32);
    let (addr, _task) = streaming_backend(gate_rx).await;
    register(&bus, &reg("stream.localhost", addr, "s", None)).await;
    wait_status(&c, router.addr, "stream.localhost", StatusCode::OK).await;

    // Websocket: handshake through the router, then frames both ways.
    let mut s = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    s.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: stream.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let head = read_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains(&format!(
            "sec-websocket-accept: {}",
            ws_accept(key).to_ascii_lowercase()
        )),
        "{head}"
    );
    for msg in ["hello", "through the router"] {
        s.write_all(&ws_frame(1, msg.as_bytes(), Some([1, 2, 3, 4])))
            .await
            .expect("send frame");
        let (op, payload) = tokio::time::timeout(Duration::from_secs(5), ws_read(&mut s))
            .await
            .expect("echo in time")
            .expect("frame");
        assert_eq!((op, payload.as_slice()), (1, msg.as_bytes()));
    }
    s.write_all(&ws_frame(8, &[], Some([9, 9, 9, 9])))
        .await
        .expect("close");
    let (op, _) = ws_read(&mut s).await.expect("close frame");
    assert_eq!(op, 8);

    // Server-sent events: the first event arrives while the stream is open.
    let resp = c
        .request(
            Request::get(format!("http://{}/events", router.addr))
                .header("host", "stream.localhost")
                .body(http_body_util::Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("events");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event before the stream ends")
        .expect("frame")
        .expect("ok");
    assert_eq!(first.into_data().expect("data"), "data: one\n\n");
    gate_tx.send(1).expect("gate");
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(rest, "data: two\n\n");

    // Chunked upload echoed chunk by chunk: each chunk comes back before the
    // next is sent, so neither direction is buffered whole.
    let streaming: hyper_util::client::legacy::Client<_, BoxBody> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let (tx, up) = channel_body();
    let req = Request::post(format!("http://{}/echo", router.addr))
        .header("host", "stream.localhost")
        .body(up)
        .expect("req");
    tx.send(Ok(Frame::data(Bytes::from("chunk-0"))))
        .await
        .expect("send");
    let resp = streaming.request(req).await.expect("echo");
    let mut down = resp.into_body();
    for i in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(5), down.frame())
            .await
            .expect("echo of a chunk before the next is sent")
            .expect("frame")
            .expect("ok");
        assert_eq!(frame.into_data().expect("data"), format!("chunk-{i}"));
        if i < 2 {
            tx.send(Ok(Frame::data(Bytes::from(format!("chunk-{}", i + 1)))))
                .await
                .expect("send");
        }
    }
    drop(tx);
    assert!(down.collect().await.expect("end").to_bytes().is_empty());

    // HTTP/2 with prior knowledge (h2c); the app gets HTTP/1.1 with a Host.
    let stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = Request::get("http://stream.localhost/version")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("req");
        let resp = send.send_request(req).await.expect("h2 request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "HTTP/1.1");
    }
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_each_way_with_flat_router_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut router = RouterProcess::start(&nats.url, "").await;
    let (_gate_tx, gate_rx) = tokio::sync::watch::channel(0u32);
    let (addr, _task) = streaming_backend(gate_rx).await;
    let mut r = reg("big.localhost", addr, "b", None);
    r.app_id = Some("big-app".into());
    register(&bus, &r).await;
    let c = client();
    wait_status(&c, router.addr, "big.localhost", StatusCode::OK).await;
    // Warm up (connection pool, buffers), then take the baseline.
    for _ in 0..20 {
        let _ = get(&c, router.addr, "big.localhost", "/").await;
    }
    let baseline = router.rss_kib();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pid_rss = {
        let pid = router_pid(&router);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                max = max.max(rss_of(pid));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            max
        })
    };

    // Upload 100 MB (chunked, generated on the fly).
    let t = Instant::now();
    let streaming: hyper_util::client::legacy::Client<_, BoxBody> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let (tx, up) = channel_body();
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        for _ in 0..SIZE / chunk.len() {
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return;
            }
        }
    });
    let req = Request::put(format!("http://{}/upload", router.addr))
        .header("host", "big.localhost")
        .body(up)
        .expect("req");
    let resp = streaming.request(req).await.expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, SIZE.to_string());
    let up_t = t.elapsed();

    // Download 100 MB, counted as it streams.
    let t = Instant::now();
    let resp = c
        .request(
            Request::get(format!("http://{}/download?n={SIZE}", router.addr))
                .header("host", "big.localhost")
                .body(http_body_util::Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.expect("frame").data_ref() {
            n += d.len();
        }
    }
    assert_eq!(n, SIZE);
    let down_t = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = pid_rss.await.expect("join").max(router.rss_kib());
    eprintln!(
        "router RSS baseline {baseline} KiB, peak {peak} KiB; 100 MB up in {up_t:?}, down in {down_t:?}"
    );
    assert!(
        peak < baseline + 16 * 1024,
        "router memory grew from {baseline} KiB to {peak} KiB while streaming 100 MB"
    );

    // The access log goes to stdout, one line per request, written once the
    // response body has ended (the client may see its last byte first), so
    // poll for both lines; then SIGTERM: clean exit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let download_line = format!(" 200 0 {SIZE} ");
    loop {
        let log = std::fs::read_to_string(&router.stdout).unwrap_or_default();
        let has_up = log.contains("\"PUT /upload HTTP/1.1\"");
        let has_down = log
            .lines()
            .any(|l| l.contains("\"GET /download?n=") && l.contains(&download_line));
        if (has_up && has_down) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = router.terminate();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&router.stdout).expect("stdout");
    let upload = log
        .lines()
        .find(|l| l.contains("\"PUT /upload HTTP/1.1\""))
        .unwrap_or_else(|| panic!("no access line for the upload in {log}"));
    assert!(upload.starts_with("big.localhost - ["), "{upload}");
    assert!(upload.contains(&format!(" 200 {SIZE} ")), "{upload}");
    assert!(upload.contains("app_id:\"big-app\""), "{upload}");
    assert!(log
        .lines()
        .any(|l| l.contains("\"GET /download?n=") && l.contains(&format!(" 200 0 {SIZE} "))));
}

fn router_pid(r: &RouterProcess) -> u32 {
    r.pid()
}

fn rss_of(pid: u32) -> u64 {
    testkit::rss_kib(pid).unwrap_or(0)
}
