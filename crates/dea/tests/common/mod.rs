//! Shared test helpers: a tiny blob HTTP server and zip building.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type Blobs = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// GET /path → stored bytes (404 when absent); PUT /path stores the body.
pub async fn blob_server() -> (String, Blobs) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let blobs: Blobs = Arc::default();
    let b = blobs.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let b = b.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut parts = head.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts
                    .next()
                    .unwrap_or("")
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = buf[head_end..].to_vec();
                while body.len() < len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                let (status, out) = if method == "PUT" {
                    b.lock().expect("lock").insert(path, body);
                    ("200 OK", Vec::new())
                } else {
                    match b.lock().expect("lock").get(&path) {
                        Some(d) => ("200 OK", d.clone()),
                        None => ("404 Not Found", Vec::new()),
                    }
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    out.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&out).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), blobs)
}

pub fn zip_dir(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o644),
        )
        .expect("start");
        w.write_all(text.as_bytes()).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

pub const APP_PY: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from index " + os.environ["CF_INSTANCE_INDEX"]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A raw HTTP/1.0 GET of `/`; the whole response, or None when nothing answers.
pub async fn http_get(port: u16) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Namespaces-backend settings for a test: a tag derived from `name` and
/// the temp dir, the DEA binary as container-init, loopback as host address.
pub fn ns_settings(
    name: &str,
    dir: &std::path::Path,
    pool: usize,
    pids_limit: u64,
) -> dea::backend::namespaces::Settings {
    dea::backend::namespaces::Settings {
        tag: dea::backend::namespaces::tag_for(name, dir),
        state_dir: dir.to_path_buf(),
        init_exe: env!("CARGO_BIN_EXE_dea").into(),
        warm_pool_size: pool,
        pids_limit,
        egress_allow: vec![],
        host_ip: "127.0.0.1".into(),
        ro_paths: vec![],
    }
}

/// Runs `script` in container `c` (cwd and HOME its `app` dir) and returns
/// stdout followed by stderr, and the exit status.
pub async fn run_in(
    b: &dea::backend::namespaces::NamespacesBackend,
    c: &dea::backend::Container,
    script: &str,
) -> (String, i32) {
    use dea::backend::{Backend, ProcessSpec};
    let sp = b
        .spawn(
            c,
            ProcessSpec {
                script: script.into(),
                env: vec![
                    ("PATH".into(), "/usr/bin:/bin".into()),
                    ("HOME".into(), c.root.join("app").display().to_string()),
                ],
                cwd: c.root.join("app"),
            },
        )
        .await
        .expect("spawn");
    let mut out = String::new();
    let mut err = String::new();
    let mut so = sp.stdout.expect("stdout");
    let mut se = sp.stderr.expect("stderr");
    let (a, e) = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
    a.expect("read stdout");
    e.expect("read stderr");
    let exit = sp.wait.await.expect("wait");
    (format!("{out}{err}"), exit.status())
}
