//! Shared test helpers: a tiny blob HTTP server, zip building, a stager and
//! its requests, and waiting for an instance to run.
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
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
    zip_bytes(&files)
}

/// A zip of files with any bytes (mode 0644).
pub fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o644),
        )
        .expect("start");
        w.write_all(bytes).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// What a stager or an agent publishes: (subject, JSON bytes).
pub type Published = tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>;

/// The log lines published so far (any subject).
pub fn log_lines(rx: &mut Published) -> Vec<String> {
    let mut v = Vec::new();
    while let Ok((_, bytes)) = rx.try_recv() {
        let m: proto::LogMessage = serde_json::from_slice(&bytes).expect("log");
        v.push(m.line);
    }
    v
}

/// A stager on `backend` with `state` prepared as a DEA state dir, and what
/// it publishes (its staging log lines).
pub fn stager(
    state: &std::path::Path,
    backend: Arc<dyn dea::backend::Backend>,
) -> (dea::staging::Stager, Published) {
    dea::agent::prepare_state_dir(state).expect("prepare");
    let (outbox, rx) = dea::outbox::Outbox::channel();
    let s = dea::staging::Stager {
        backend,
        outbox,
        http: dea::config::Config::default()
            .http_client()
            .expect("http client"),
        state_dir: state.to_path_buf(),
        dea_id: "dea-t".into(),
        passthrough: vec![],
        limits: proto::archive::ArchiveLimits::default(),
        slots: dea::staging::Slots::new(4),
    };
    (s, rx)
}

/// A request to stage the package at `/package/<id>` of the blob server at
/// `base` as app `app-<id>`: 256 MB, 1 GB of disk, 120 s, the droplet to
/// `/droplet/<id>`, the build cache at `/cache/<id>`. Tests change what
/// they need with struct update syntax.
pub fn staging_request(base: &str, id: &str) -> proto::StagingRequest {
    proto::StagingRequest {
        staging_id: id.into(),
        app_id: format!("app-{id}"),
        stack: "host".into(),
        buildpacks: vec![],
        env: vec![],
        memory_mb: 256,
        disk_mb: 1024,
        package_uri: format!("{base}/package/{id}"),
        droplet_upload_uri: format!("{base}/droplet/{id}"),
        cache_download_uri: Some(format!("{base}/cache/{id}")),
        cache_upload_uri: Some(format!("{base}/cache/{id}")),
        start_command: None,
        admin_buildpacks: vec![],
        timeout_s: 120,
        egress: None,
        vcap_services: None,
    }
}

/// A staging error as the controller shows it (`<id> - <message>`).
pub fn err(r: &proto::StagingResult) -> Option<String> {
    r.error.as_ref().map(|e| e.to_string())
}

/// The paths in the droplet uploaded to `/droplet/<id>`.
pub fn droplet_files(blobs: &Blobs, id: &str) -> Vec<String> {
    let bytes = blobs
        .lock()
        .expect("lock")
        .get(&format!("/droplet/{id}"))
        .cloned()
        .expect("droplet");
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    ar.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

/// Waits until instance `id` of `agent` is running; fails the test after
/// `within`, with the state it is in.
pub async fn wait_running(agent: &dea::instances::Agent, id: &str, within: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while agent.state_of(id) != Some(proto::InstanceState::Running) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} not running: {:?}",
            agent.state_of(id)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
        user_namespaces: true,
        egress_allow: vec![],
        host_services: None,
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
