//! Real staging of a small python app with the real buildpack scripts, then
//! the droplet runs with the process backend and answers HTTP on its PORT.
//! Blobs are served by a tiny in-test HTTP server; NATS is not needed.

use std::time::Duration;

use dea::instances::Agent;
use dea::outbox::Outbox;
use proto::{StagingRequest, StartRequest, StopRequest};

mod common;
use common::{
    blob_server, droplet_files, err, http_get, log_lines, stager, wait_running, zip_dir, APP_PY,
};

/// The common request as app `app-1`, with a buildpack and start command.
fn staging_request(
    base: &str,
    id: &str,
    buildpack: Option<&str>,
    start: Option<&str>,
) -> StagingRequest {
    StagingRequest {
        app_id: "app-1".into(),
        buildpacks: buildpack.map(str::to_string).into_iter().collect(),
        start_command: start.map(str::to_string),
        ..common::staging_request(base, id)
    }
}

#[tokio::test]
async fn stages_a_python_app_and_runs_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    blobs.lock().expect("lock").insert(
        "/package/s1".into(),
        zip_dir(&[
            ("app.py", APP_PY),
            ("requirements.txt", "# nothing\n"),
            ("../escape.txt", "x"),
        ]),
    );
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, mut logs) = stager(&state, backend.clone());

    let resp = stager
        .handle(staging_request(&base, "s1", None, None))
        .await;
    assert_eq!(resp.error, None);
    assert_eq!(resp.detected_buildpack(), Some("python"));
    assert_eq!(resp.start_command.as_deref(), Some("python3 app.py"));
    assert!(!tmp.path().join("escape.txt").exists() && !state.join("staging/escape.txt").exists());
    assert!(!state.join("staging/s1").exists(), "staging dir cleaned");
    let droplet = blobs
        .lock()
        .expect("lock")
        .get("/droplet/s1")
        .cloned()
        .expect("droplet uploaded");
    assert_eq!(
        resp.droplet_sha256.as_deref(),
        Some(dea::http::sha256_hex(&droplet).as_str())
    );
    assert!(
        blobs.lock().expect("lock").contains_key("/cache/s1"),
        "cache uploaded"
    );
    let mut lines = Vec::new();
    while let Ok((subject, bytes)) = logs.try_recv() {
        assert_eq!(subject, "logs.app-1");
        let m: proto::LogMessage = serde_json::from_slice(&bytes).expect("log");
        assert_eq!(m.source, proto::LogSource::Stg);
        lines.push(m.line);
    }
    for want in [
        "-----> Downloading app package",
        "-----> Python app detected",
        "-----> Uploading droplet",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:?}"
        );
    }

    // Run it.
    let cfg = dea::Config {
        id: "dea-t".into(),
        state_dir: state.clone(),
        ..dea::Config::default()
    };
    let (outbox, mut out) = Outbox::channel();
    let agent = Agent::new(cfg, backend, outbox);
    let req: StartRequest = serde_json::from_value(serde_json::json!({
        "app_id": "app-1", "app_name": "web", "version": "v1", "index": 3,
        "droplet_uri": format!("{base}/droplet/s1"), "droplet_sha256": resp.droplet_sha256,
        "uris": ["web.localhost"], "limits": {"memory_mb": 128, "disk_mb": 512, "fds": 100},
        "health_check": {"type": "http", "timeout_s": 30, "endpoint": "/"},
        "start_command": "", "stack": "host"
    }))
    .expect("req");
    let id = agent.start(req);
    wait_running(&agent, &id, Duration::from_secs(30)).await;
    let found = agent
        .find(&proto::FindDropletRequest {
            app_id: "app-1".into(),
            include_stats: true,
            ..Default::default()
        })
        .await;
    let port = found[0].port;
    let stats = found[0].stats.expect("stats");
    assert!(stats.mem > 0 && stats.disk > 0, "{stats:?}");
    let body = http_get(port).await.expect("http");
    assert!(body.ends_with("hello from index 3"), "{body}");

    let dir = state.join("instances").join(&id);
    assert!(dir.exists());
    agent
        .stop_matching(&StopRequest {
            app_id: "app-1".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(agent.state_of(&id), None);
    assert!(!dir.exists());
    assert!(
        http_get(port).await.is_none(),
        "app still answering after stop"
    );
    let mut app_lines = Vec::new();
    while let Ok((subject, bytes)) = out.try_recv() {
        if subject == "logs.app-1" {
            let m: proto::LogMessage = serde_json::from_slice(&bytes).expect("log");
            app_lines.push(m.line);
        }
    }
    assert!(
        app_lines.iter().any(|l| l.starts_with("listening on")),
        "{app_lines:?}"
    );
}

#[tokio::test]
async fn staging_errors_are_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, _logs) = stager(&state, backend);
    {
        let mut b = blobs.lock().expect("lock");
        b.insert("/package/none".into(), zip_dir(&[("README", "hi")]));
        b.insert("/package/bin".into(), zip_dir(&[("run.sh", "echo hi")]));
        b.insert(
            "/package/procfile".into(),
            zip_dir(&[("Procfile", "web: ./server --port $PORT\n")]),
        );
        b.insert("/package/lib".into(), zip_dir(&[("setup.py", "")]));
        b.insert(
            "/package/bad".into(),
            zip_dir(&[(
                "requirements.txt",
                "this-package-does-not-exist-anywhere==0.0.0\n",
            )]),
        );
    }
    let r = stager
        .handle(staging_request(&base, "none", None, None))
        .await;
    assert_eq!(
        err(&r).as_deref(),
        Some(
            "NoAppDetectedError - An app was not successfully detected by any available buildpack"
        )
    );
    let r = stager
        .handle(staging_request(&base, "none", Some("ruby"), None))
        .await;
    assert!(
        err(&r).is_some_and(|e| e.starts_with("StagingError - buildpack ruby not found")),
        "{r:?}"
    );
    let r = stager
        .handle(staging_request(&base, "bin", Some("binary"), None))
        .await;
    assert_eq!(
        err(&r),
        Some(format!("StagingError - {}", dea::staging::NO_START_COMMAND))
    );
    let r = stager
        .handle(staging_request(
            &base,
            "bin",
            Some("binary"),
            Some("bash run.sh"),
        ))
        .await;
    assert_eq!(
        (r.error, r.start_command.as_deref()),
        (None, Some("bash run.sh"))
    );
    let r = stager
        .handle(staging_request(&base, "bin", None, Some("bash run.sh")))
        .await;
    assert_eq!(r.detected_buildpack(), Some("binary"));
    let r = stager
        .handle(staging_request(&base, "procfile", None, None))
        .await;
    assert_eq!(
        (r.detected_buildpack(), r.start_command.as_deref()),
        (Some("binary"), Some("./server --port $PORT"))
    );
    let r = stager
        .handle(staging_request(&base, "lib", None, None))
        .await;
    assert_eq!(
        err(&r),
        Some(format!("StagingError - {}", dea::staging::NO_START_COMMAND))
    );
    let r = stager
        .handle(staging_request(&base, "missing", None, None))
        .await;
    assert!(r.error.is_some());
    let r = stager
        .handle(staging_request(&base, "bad", None, Some("x")))
        .await;
    let e = err(&r).unwrap_or_default();
    assert!(
        e.starts_with("BuildpackCompileFailed - python: bin/compile exited with status 1; last lines of its output:"),
        "{r:?}"
    );
    assert!(
        e.contains("this-package-does-not-exist-anywhere"),
        "pip's error: {e}"
    );
}

/// The python buildpack installs requirements from the package index; a
/// restage with the same requirements reuses the installed packages from
/// the build cache (no pip run), and a changed requirement file takes the
/// unchanged ones from pip's cache.
#[tokio::test]
async fn python_dependencies_and_the_build_cache() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (stager, mut logs) = stager(&state, backend);
    let mut lines = move || log_lines(&mut logs).join("\n");
    let pkg = |reqs: &str| zip_dir(&[("app.py", APP_PY), ("requirements.txt", reqs)]);
    let req = |id: &str| {
        let mut r = staging_request(&base, id, None, None);
        r.cache_download_uri = Some(format!("{base}/cache/py"));
        r.cache_upload_uri = Some(format!("{base}/cache/py"));
        r
    };
    blobs
        .lock()
        .expect("lock")
        .insert("/package/py1".into(), pkg("six==1.16.0\n"));
    let r = stager.handle(req("py1")).await;
    let log = lines();
    assert_eq!(r.error, None, "{log}");
    assert!(log.contains("Installing requirements with pip"), "{log}");
    let droplet = |id: &str| droplet_files(&blobs, id);
    assert!(droplet("py1")
        .iter()
        .any(|f| f == "app/.python_packages/six.py"));

    blobs
        .lock()
        .expect("lock")
        .insert("/package/py2".into(), pkg("six==1.16.0\n"));
    let r = stager.handle(req("py2")).await;
    let log = lines();
    assert_eq!(r.error, None, "{log}");
    assert!(
        log.contains("Requirements unchanged: reusing the installed packages from the build cache"),
        "{log}"
    );
    assert!(!log.contains("Installing requirements with pip"), "{log}");
    assert!(droplet("py2")
        .iter()
        .any(|f| f == "app/.python_packages/six.py"));

    blobs.lock().expect("lock").insert(
        "/package/py3".into(),
        pkg("six==1.16.0\nasn1crypto==1.5.1\n"),
    );
    let r = stager.handle(req("py3")).await;
    let log = lines();
    assert_eq!(r.error, None, "{log}");
    assert!(
        log.contains("File was already downloaded") && log.contains("six-1.16.0"),
        "the unchanged requirement comes from the build cache: {log}"
    );
    assert!(droplet("py3")
        .iter()
        .any(|f| f.starts_with("app/.python_packages/asn1crypto/")));
}
