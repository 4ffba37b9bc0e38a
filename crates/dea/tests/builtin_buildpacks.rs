//! The `staticfile` and `java` built-in buildpacks for real: staged with the
//! real `Stager` on the `process` backend (the host's nginx and JDK), then
//! the droplets run with the `Agent` and answer HTTP. Blobs come from the
//! tiny in-test server; NATS is not needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dea::backend::Backend;
use dea::instances::Agent;
use dea::outbox::Outbox;
use dea::staging::Stager;
use proto::{StagingRequest, StartRequest, StopRequest};

mod common;
use common::{blob_server, stager, wait_running, zip_bytes, zip_dir, Blobs};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const MIB: u64 = 1024 * 1024;

/// The common request with 512 MB (the JVM) and no build cache.
fn staging_request(base: &str, id: &str) -> StagingRequest {
    StagingRequest {
        memory_mb: 512,
        cache_download_uri: None,
        cache_upload_uri: None,
        ..common::staging_request(base, id)
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../integration/fixtures")
        .join(name)
}

fn read_fixture(app: &str, file: &str) -> String {
    std::fs::read_to_string(fixture(app).join(file)).expect("fixture")
}

/// A running instance of a staged droplet.
struct Running {
    agent: Arc<Agent>,
    app_id: String,
    id: String,
    port: u16,
    logs: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl Running {
    async fn start(
        state: &Path,
        backend: Arc<dyn Backend>,
        base: &str,
        result: &proto::StagingResult,
        memory_mb: u64,
    ) -> Running {
        let staging_id = &result.staging_id;
        let app_id = format!("app-{staging_id}");
        let cfg = dea::Config {
            id: "dea-t".into(),
            state_dir: state.to_path_buf(),
            ..dea::Config::default()
        };
        let (outbox, logs) = Outbox::channel();
        let agent = Agent::new(cfg, backend, outbox);
        let req: StartRequest = serde_json::from_value(serde_json::json!({
            "app_id": app_id, "app_name": staging_id, "version": "v1", "index": 0,
            "droplet_uri": format!("{base}/droplet/{staging_id}"),
            "droplet_sha256": result.droplet_sha256,
            "uris": [format!("{staging_id}.localhost")],
            "limits": {"memory_mb": memory_mb, "disk_mb": 512, "fds": 256},
            "health_check": {"type": "http", "timeout_s": 60, "endpoint": "/"},
            "start_command": "", "stack": "host"
        }))
        .expect("req");
        let id = agent.start(req);
        wait_running(&agent, &id, Duration::from_secs(60)).await;
        let found = agent
            .find(&proto::FindDropletRequest {
                app_id: app_id.clone(),
                ..Default::default()
            })
            .await;
        let port = found.first().expect("instance").port;
        Running {
            agent,
            app_id,
            id,
            port,
            logs,
        }
    }

    /// GET `path` (with `Accept-Encoding: gzip` when `gzip`): status,
    /// lower-case headers, raw body.
    async fn get(&self, path: &str, gzip: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
        proto::https::install_ring();
        self.get_with(&reqwest::Client::new(), path, gzip).await
    }

    async fn get_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        gzip: bool,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut r = client.get(format!("http://127.0.0.1:{}{path}", self.port));
        if gzip {
            r = r.header("accept-encoding", "gzip");
        }
        let resp = r.send().await.expect("GET");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = resp.bytes().await.expect("body").to_vec();
        (status, headers, body)
    }

    /// The app's log lines so far.
    fn log_lines(&mut self) -> Vec<(proto::LogStream, String)> {
        let mut lines = Vec::new();
        while let Ok((subject, bytes)) = self.logs.try_recv() {
            if subject == format!("logs.{}", self.app_id) {
                let m: proto::LogMessage = serde_json::from_slice(&bytes).expect("log");
                lines.push((m.stream, m.line));
            }
        }
        lines
    }

    async fn stop(self) {
        self.agent
            .stop_matching(&StopRequest {
                app_id: self.app_id.clone(),
                ..Default::default()
            })
            .await;
        assert_eq!(self.agent.state_of(&self.id), None);
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip body");
    out
}

async fn stage(
    stager: &Stager,
    blobs: &Blobs,
    base: &str,
    id: &str,
    package: Vec<u8>,
) -> proto::StagingResult {
    blobs
        .lock()
        .expect("lock")
        .insert(format!("/package/{id}"), package);
    stager.handle(staging_request(base, id)).await
}

#[tokio::test]
async fn stages_and_serves_a_static_site() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, _logs) = stager(&state, backend.clone());

    let index = read_fixture("staticapp", "index.html");
    let js = read_fixture("staticapp", "app.3f2a9c1b.js");
    let css = "body { color: #333; }\n".repeat(20);
    let r = stage(
        &stager,
        &blobs,
        &base,
        "site",
        zip_dir(&[
            ("index.html", &index),
            ("app.3f2a9c1b.js", &js),
            ("main-0123456789abcdef.css", &css),
            // All digits: a date, not a hash.
            ("report-20240101.txt", "numbers\n"),
            ("docs/index.html", "docs\n"),
            (".env", "SECRET=1\n"),
        ]),
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.detected_buildpack(), Some("staticfile"));
    assert_eq!(r.start_command.as_deref(), Some("./.staticfile/start"));

    let mut app = Running::start(&state, backend.clone(), &base, &r, 128).await;
    let (status, h, body) = app.get("/", false).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), index);
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&h, "content-encoding"), None);

    let (status, h, body) = app.get("/", true).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-encoding"), Some("gzip"), "{h:?}");
    assert_eq!(String::from_utf8_lossy(&gunzip(&body)), index);
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));

    for (path, text, mime) in [
        ("/app.3f2a9c1b.js", js.as_str(), "application/javascript"),
        ("/main-0123456789abcdef.css", css.as_str(), "text/css"),
    ] {
        let (status, h, body) = app.get(path, false).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(String::from_utf8_lossy(&body), text, "{path}");
        assert_eq!(header(&h, "cache-control"), Some(IMMUTABLE), "{path}");
        assert!(
            header(&h, "content-type").is_some_and(|t| t.starts_with(mime)),
            "{path}: {h:?}"
        );
        let (status, h, body) = app.get(path, true).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&h, "content-encoding"), Some("gzip"), "{path}");
        assert_eq!(header(&h, "cache-control"), Some(IMMUTABLE), "{path}");
        assert_eq!(String::from_utf8_lossy(&gunzip(&body)), text, "{path}");
    }
    let (status, h, body) = app.get("/report-20240101.txt", false).await;
    assert_eq!((status, body.as_slice()), (200, &b"numbers\n"[..]));
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));
    // A directory: redirected relative to the request (the port the app
    // listens on is not the one clients use).
    proto::https::install_ring();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (status, h, _) = app.get_with(&no_redirects, "/docs", false).await;
    assert_eq!((status, header(&h, "location")), (301, Some("/docs/")));
    assert_eq!(app.get("/docs/", false).await.2, b"docs\n");
    // Hidden files and what the buildpack wrote are not served.
    for path in [
        "/.env",
        "/.staticfile/start",
        "/.staticfile/nginx.conf.template",
        "/missing",
    ] {
        assert_eq!(app.get(path, false).await.0, 404, "{path}");
    }
    // The access log is the app's stdout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    loop {
        lines.extend(app.log_lines());
        if lines.iter().any(|(s, l)| {
            *s == proto::LogStream::Stdout && l.contains("\"GET /app.3f2a9c1b.js HTTP/1.1\" 200")
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access log line on stdout: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = app.port;
    app.stop().await;
    assert!(
        common::http_get(port).await.is_none(),
        "nginx still answering"
    );
}

#[tokio::test]
async fn staticfile_root_and_detection_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, _logs) = stager(&state, backend.clone());
    let js = read_fixture("staticapp", "app.3f2a9c1b.js");

    // `root: public`: only public/ is served.
    let r = stage(
        &stager,
        &blobs,
        &base,
        "rooted",
        zip_dir(&[
            ("Staticfile", "root: public\n"),
            ("public/index.html", "hello from public\n"),
            ("public/app.3f2a9c1b.js", &js),
            ("secret.txt", "not served\n"),
        ]),
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.detected_buildpack(), Some("staticfile"));
    let app = Running::start(&state, backend.clone(), &base, &r, 128).await;
    let (status, h, body) = app.get("/", false).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"hello from public\n"[..])
    );
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));
    let (status, h, body) = app.get("/app.3f2a9c1b.js", false).await;
    assert_eq!((status, body.as_slice()), (200, js.as_bytes()));
    assert_eq!(header(&h, "cache-control"), Some(IMMUTABLE));
    for path in ["/secret.txt", "/Staticfile", "/public/index.html"] {
        assert_eq!(app.get(path, false).await.0, 404, "{path}");
    }
    app.stop().await;

    // A root leaving the app fails the build, saying so.
    let r = stage(
        &stager,
        &blobs,
        &base,
        "escape",
        zip_dir(&[("Staticfile", "root: ../..\n"), ("index.html", "x")]),
    )
    .await;
    let e = r.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.starts_with("BuildpackCompileFailed - staticfile: bin/compile exited with status 1"),
        "{r:?}"
    );
    assert!(
        e.contains(
            "Staticfile: root: ../.. leaves the app; the root must be a directory inside the app"
        ),
        "{e}"
    );

    // A Node or Python app with an index.html stays theirs.
    let r = stage(
        &stager,
        &blobs,
        &base,
        "py",
        zip_dir(&[
            ("index.html", "x"),
            ("requirements.txt", ""),
            ("app.py", ""),
        ]),
    )
    .await;
    assert_eq!(
        (r.error.as_ref(), r.detected_buildpack()),
        (None, Some("python"))
    );
    let r = stage(
        &stager,
        &blobs,
        &base,
        "node",
        zip_dir(&[
            ("index.html", "x"),
            ("package.json", "{}"),
            ("server.js", ""),
        ]),
    )
    .await;
    assert_eq!(
        (r.error.as_ref(), r.detected_buildpack()),
        (None, Some("nodejs"))
    );
}

/// Builds the fixture's jar with the host's JDK: (the jar's bytes).
fn build_java_fixture(dir: &Path) -> Vec<u8> {
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).expect("mkdir");
    let status = std::process::Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg(fixture("javaapp").join("src/Hello.java"))
        .status()
        .expect("javac (a JDK: Debian package default-jdk-headless)");
    assert!(status.success(), "javac failed");
    let jar = dir.join("app.jar");
    let status = std::process::Command::new("jar")
        .args(["--create", "--file"])
        .arg(&jar)
        .args(["--main-class", "Hello", "-C"])
        .arg(&classes)
        .arg(".")
        .status()
        .expect("jar");
    assert!(status.success(), "jar failed");
    std::fs::read(&jar).expect("read jar")
}

/// The heap the java buildpack gives for a memory limit (docs/buildpacks.md).
fn expected_heap_mb(limit: u64) -> u64 {
    let native = (limit * 15 / 100).max(32);
    limit.saturating_sub(64 + 32 + 25 + native).max(16)
}

#[tokio::test]
async fn stages_and_runs_a_java_app_exploded_and_as_a_jar() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, _logs) = stager(&state, backend.clone());
    let jar = build_java_fixture(&tmp.path().join("build"));

    for (id, package, command, memory_mb) in [
        // `cf push -p app.jar`: the jar is the package, unzipped into the app.
        (
            "exploded",
            jar.clone(),
            "java $JAVA_OPTS -cp '.' 'Hello'",
            256,
        ),
        // The jar itself at the app's root.
        (
            "rootjar",
            zip_bytes(&[("app.jar", &jar)]),
            "java $JAVA_OPTS -jar 'app.jar'",
            512,
        ),
    ] {
        let r = stage(&stager, &blobs, &base, id, package).await;
        assert_eq!(r.error, None, "{id}: {r:?}");
        assert_eq!(r.detected_buildpack(), Some("java"), "{id}");
        assert_eq!(r.start_command.as_deref(), Some(command), "{id}");

        let app = Running::start(&state, backend.clone(), &base, &r, memory_mb).await;
        let (status, _, body) = app.get("/", false).await;
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "{id}: {body}");
        assert!(body.starts_with("hello from java\n"), "{id}: {body}");
        let max: u64 = body
            .lines()
            .find_map(|l| l.strip_prefix("max_memory="))
            .and_then(|v| v.parse().ok())
            .expect("max_memory");
        let heap = expected_heap_mb(memory_mb);
        // The JVM rounds -Xmx up to its heap alignment (a few MB at most)
        // and may keep a survivor space out of it.
        assert!(
            max <= (heap + 4) * MIB && max >= heap * MIB * 8 / 10,
            "{id}: max heap {max} for -Xmx{heap}m ({memory_mb}M instance)"
        );
        assert!(max < memory_mb * MIB, "{id}: {max}");
        let args = body
            .lines()
            .find_map(|l| l.strip_prefix("jvm_args="))
            .unwrap_or_default();
        for want in [
            format!("-Xmx{heap}m"),
            "-Xss512k".into(),
            "-XX:MaxMetaspaceSize=64m".into(),
            "-XX:ReservedCodeCacheSize=32m".into(),
            "-XX:+ExitOnOutOfMemoryError".into(),
        ] {
            assert!(args.split(' ').any(|a| a == want), "{id}: {want} in {args}");
        }
        app.stop().await;
    }
}
