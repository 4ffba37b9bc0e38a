//! A scripted HTTP/1.1 API on 127.0.0.1:0 for the service commands' tests:
//! each route answers with its responses in turn (the last one repeats),
//! and every request is recorded (method, path with query, body).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Client;
use crate::commands::common::Ctx;
use crate::config::{Config, Target};

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// `{base}` in it becomes the server's URL.
    pub location: Option<String>,
    pub body: String,
}

pub fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        location: None,
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    }
}

/// `202 Accepted` with the job at `/v3/jobs/<job>`.
pub fn accepted(job: &str) -> Reply {
    Reply {
        status: 202,
        location: Some(format!("{{base}}/v3/jobs/{job}")),
        body: String::new(),
    }
}

/// A CF error body.
pub fn cf_error(status: u16, detail: &str) -> Reply {
    reply(
        status,
        serde_json::json!({"errors": [{"code": 10008, "title": "CF-UnprocessableEntity", "detail": detail}]}),
    )
}

/// A list page of `resources` (and `included`).
pub fn page(resources: Value, included: Value) -> Reply {
    reply(
        200,
        serde_json::json!({"pagination": {"total_results": resources.as_array().map_or(0, Vec::len), "next": null}, "resources": resources, "included": included}),
    )
}

struct Route {
    method: String,
    prefix: String,
    replies: VecDeque<Reply>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Default)]
pub struct Script {
    routes: Vec<Route>,
}

impl Script {
    /// Answer `METHOD` requests whose path (with query) starts with
    /// `prefix` with `replies` in turn; earlier routes win.
    pub fn on(mut self, method: &str, prefix: &str, replies: Vec<Reply>) -> Self {
        self.routes.push(Route {
            method: method.into(),
            prefix: prefix.into(),
            replies: replies.into(),
        });
        self
    }
}

pub struct Server {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub async fn start(script: Script) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(Mutex::new(script.routes));
        let (b, s) = (base.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (b, s, routes) = (b.clone(), s.clone(), routes.clone());
                tokio::spawn(async move {
                    let Some((method, path, body)) = read_request(&mut conn).await else {
                        return;
                    };
                    let r = {
                        let mut routes = routes.lock().expect("routes");
                        routes
                            .iter_mut()
                            .find(|r| r.method == method && path.starts_with(&r.prefix))
                            .and_then(|r| {
                                if r.replies.len() > 1 {
                                    r.replies.pop_front()
                                } else {
                                    r.replies.front().cloned()
                                }
                            })
                            .unwrap_or_else(|| cf_error(404, "Unknown request"))
                    };
                    s.lock().expect("seen").push(Seen {
                        method,
                        path,
                        body: serde_json::from_slice(&body).ok(),
                    });
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        r.status,
                        r.body.len()
                    );
                    if let Some(l) = &r.location {
                        head.push_str(&format!("location: {}\r\n", l.replace("{base}", &b)));
                    }
                    head.push_str("\r\n");
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(r.body.as_bytes()).await;
                });
            }
        });
        Server { base, seen }
    }

    /// A context logged in to this server, targeting org `o` / space `s`.
    pub fn ctx(&self, home: &std::path::Path) -> Ctx {
        let cfg = Config {
            api: Some(self.base.clone()),
            access_token: Some("token".into()),
            user: Some("admin".into()),
            ..Config::default()
        };
        Ctx {
            client: Client::new(cfg, home.to_path_buf()).expect("client"),
            org: Target {
                guid: "org-guid".into(),
                name: "o".into(),
            },
            space: Target {
                guid: "space-guid".into(),
                name: "s".into(),
            },
            user: "admin".into(),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn lines(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, buf[head_end..].to_vec()))
}
