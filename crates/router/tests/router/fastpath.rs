//! The HTTP/1.1 fast path on a raw client socket: pipelined requests, a
//! body, HEAD, a chunked response passed through, forwarding headers and
//! hop-by-hop removal, and the hand-over to hyper in the middle of a
//! connection (an unknown route) after which the connection keeps working.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use proto::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_bodies_chunked_and_handover() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let router = Router::start(&nats.url).await;
    let (addr, _task) = serve(|req: Request<Incoming>| async move {
        match req.uri().path() {
            "/chunked" => {
                let frames = futures_util::stream::iter(
                    ["part1", "part2"]
                        .map(|p| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(p)))),
                );
                http::Response::new(StreamBody::new(frames).boxed())
            }
            path => {
                let seen = format!(
                    "path={path} xff={} proto={} fhost={} inst={} rid={} conn={} ka={}",
                    header(&req, "x-forwarded-for"),
                    header(&req, "x-forwarded-proto"),
                    header(&req, "x-forwarded-host"),
                    header(&req, "x-cf-instanceid"),
                    if header(&req, "x-vcap-request-id").len() == 36 {
                        "uuid"
                    } else {
                        "no"
                    },
                    header(&req, "connection"),
                    header(&req, "keep-alive"),
                );
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let mut resp = text(format!("{seen} body={}|", String::from_utf8_lossy(&body)));
                resp.headers_mut()
                    .insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
                resp
            }
        }
    })
    .await;
    register(&bus, &reg("fast.localhost", addr, "inst-1", None)).await;
    let c = client();
    wait_status(&c, router.addr, "fast.localhost", StatusCode::OK).await;

    let mut s = TcpStream::connect(router.addr).await.expect("connect");
    let requests = concat!(
        "GET /one HTTP/1.1\r\nHost: fast.localhost\r\nConnection: keep-alive\r\nKeep-Alive: timeout=9\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        "POST /two HTTP/1.1\r\nHost: fast.localhost\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD /three HTTP/1.1\r\nHost: fast.localhost\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nHost: fast.localhost\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: unknown.localhost\r\n\r\n",
        "GET /after HTTP/1.1\r\nHost: fast.localhost\r\nConnection: close\r\n\r\n",
    );
    s.write_all(requests.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("router closes after Connection: close")
        .expect("read");
    let got = String::from_utf8_lossy(&got).into_owned();

    let statuses: Vec<&str> = got
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| got[i..].split("\r\n").next())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK"
        ],
        "{got}"
    );
    let at = |needle: &str| {
        got.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {got}"))
    };
    // Forwarding headers added, hop-by-hop ones removed both ways.
    let one = at("path=/one xff=10.0.0.1, 127.0.0.1 proto=http fhost=fast.localhost inst=inst-1 rid=uuid conn=- ka=- body=|");
    let two = at("path=/two xff=127.0.0.1 proto=http fhost=fast.localhost inst=inst-1 rid=uuid conn=- ka=- body=hello|");
    let chunked = at("part1");
    assert!(got[chunked..].contains("part2"));
    assert!(got
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let unknown = at("unknown_route");
    let after = at("path=/after");
    assert!(one < two && two < chunked && chunked < unknown && unknown < after);
    assert!(!got.to_ascii_lowercase().contains("keep-alive: timeout"));
    // HEAD: no body between its head and the next response.
    let head_resp = got[two..]
        .find("HTTP/1.1 200 OK")
        .map(|i| two + i)
        .expect("head");
    let next = got[head_resp + 1..]
        .find("HTTP/1.1 ")
        .map(|i| head_resp + 1 + i)
        .expect("next");
    assert!(
        got[head_resp..next].ends_with("\r\n\r\n"),
        "{}",
        &got[head_resp..next]
    );
}
