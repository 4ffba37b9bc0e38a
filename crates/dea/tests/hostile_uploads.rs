//! Hostile archives and chatty apps against the DEA (issue 13, item 5):
//! zip and tarball bombs and a zip of a million entries are refused before
//! anything big is written; builds beyond `max_concurrent_stagings` wait
//! in line and say so; an app flooding its log, or printing one 100 MB
//! line, is cut to the log rate limit while the DEA's memory stays flat and
//! other apps' lines still arrive. Process backend, no root, no NATS.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{blob_server, stager};
use dea::archive::{untar_gz_safe, unzip_safe};
use dea::instances::Agent;
use dea::outbox::Outbox;
use proto::archive::ArchiveLimits;
use proto::{StagingErrorId, StagingFailure, StagingRequest, StartRequest};

const GB: u64 = 1 << 30;
const MB: u64 = 1 << 20;

/// Peak resident memory of this process (kB); tests run one per process
/// under nextest, so it is the peak of this test.
fn peak_rss_kb() -> u64 {
    testkit::status_kib("self", "VmHWM:").unwrap_or(0)
}

fn rss_kb() -> u64 {
    testkit::status_kib("self", "VmRSS:").unwrap_or(0)
}

/// Under nextest (one test per process) the peak is this test's own.
fn one_test_per_process() -> bool {
    std::env::var_os("NEXTEST_RUN_ID").is_some()
}

#[test]
fn zip_bombs_and_a_million_entries_are_refused_before_extraction() {
    let tmp = tempfile::tempdir().expect("tmp");
    let limits = ArchiveLimits::default();

    // 10 GB of zeros in ~10 MB, declared honestly: refused on the
    // declared size, nothing written.
    let bomb = testkit::archives::zip_bomb(10 * GB, 10 * GB);
    assert!(bomb.len() < 16 * MB as usize, "{} bytes", bomb.len());
    let dest = tmp.path().join("bomb");
    let t = Instant::now();
    let e = unzip_safe(std::io::Cursor::new(&bomb), &dest, limits).expect_err("a bomb");
    assert!(
        e.to_string().contains("expands to more than 4096 MB"),
        "{e}"
    );
    assert!(
        testkit::files_under(&dest).is_empty(),
        "{:?}",
        testkit::files_under(&dest)
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // The same bytes declaring 1 MB: extraction stops one byte past it.
    let liar = testkit::archives::zip_bomb(10 * GB, MB);
    let dest = tmp.path().join("liar");
    let e = unzip_safe(std::io::Cursor::new(&liar), &dest, limits).expect_err("a liar");
    let e = e.to_string();
    assert!(
        e.contains("zeros.bin holds more than the 1048576 bytes it declares")
            || e.contains("zeros.bin: File is larger than its declared uncompressed size"),
        "{e}"
    );
    let written: u64 = testkit::files_under(&dest).iter().map(|(_, n)| n).sum();
    assert!(written <= MB + 1, "{written} bytes written");

    // A million empty entries: refused from the end record alone.
    let many = testkit::archives::zip_many_entries(1_000_000);
    let before = rss_kb();
    let dest = tmp.path().join("many");
    let t = Instant::now();
    let e = unzip_safe(std::io::Cursor::new(&many), &dest, limits).expect_err("too many");
    assert!(e.to_string().contains("more than 100000 entries"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!dest.exists());
    let grew = rss_kb().saturating_sub(before);
    assert!(grew < 20 * 1024, "RSS grew by {grew} kB");

    // Under the entry limit, the same kind of zip extracts.
    let some = testkit::archives::zip_many_entries(1000);
    let dest = tmp.path().join("some");
    unzip_safe(std::io::Cursor::new(&some), &dest, limits).expect("1000 entries");
    assert_eq!(testkit::files_under(&dest).len(), 1000);
}

#[test]
fn tarball_bomb_is_refused_before_extraction() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bomb = testkit::archives::tgz_bomb(10 * GB);
    let dest = tmp.path().join("droplet");
    let t = Instant::now();
    let e = untar_gz_safe(
        &bomb[..],
        &dest,
        ArchiveLimits::default(),
        bomb.len() as u64,
    )
    .expect_err("a bomb");
    assert!(
        e.to_string().contains("expands to more than 4096 MB"),
        "{e}"
    );
    assert!(
        testkit::files_under(&dest).is_empty(),
        "{:?}",
        testkit::files_under(&dest)
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // With room for it but not for its ratio (100 x 10 MB < 1 GB).
    let small = testkit::archives::tgz_bomb(GB);
    let e = untar_gz_safe(
        &small[..],
        &tmp.path().join("ratio"),
        ArchiveLimits::from_config(1024, 8192, 1000, 100),
        small.len() as u64,
    )
    .expect_err("ratio");
    assert!(e.to_string().contains("expands more than 100 times"), "{e}");
}

/// A build that hangs in compile until stopped, with its buildpack.
fn hanging_build(base: &str, blobs: &common::Blobs, id: &str) -> StagingRequest {
    let bp = common::zip_dir(&[
        ("bin/detect", "#!/bin/sh\necho hang\n"),
        ("bin/compile", "#!/bin/sh\necho compiling\nsleep 120\n"),
        ("bin/release", "#!/bin/sh\necho '--- {}'\n"),
    ]);
    let sha = dea::http::sha256_hex(&bp);
    let mut b = blobs.lock().expect("lock");
    b.insert("/bp/hang".into(), bp);
    b.insert(
        format!("/package/{id}"),
        common::zip_dir(&[("run.sh", "echo hi\n")]),
    );
    StagingRequest {
        buildpacks: vec!["hang".into()],
        admin_buildpacks: vec![proto::AdminBuildpack {
            name: "hang".into(),
            uri: format!("{base}/bp/hang"),
            sha256: sha,
        }],
        ..common::staging_request(base, id)
    }
}

fn lines_of(rx: &mut common::Published, seen: &mut Vec<(String, String)>) {
    while let Ok((subject, bytes)) = rx.try_recv() {
        let m: proto::LogMessage = serde_json::from_slice(&bytes).expect("log");
        seen.push((subject, m.line));
    }
}

#[tokio::test]
async fn builds_beyond_the_slots_wait_in_line_and_say_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, blobs) = blob_server().await;
    let backend = dea::backend::by_name("process").expect("backend");
    let (mut s, mut rx) = stager(&tmp.path().join("state"), backend);
    s.slots = dea::staging::Slots::new(1);
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for id in ["q1", "q2", "q3"] {
        let req = hanging_build(&base, &blobs, id);
        let (tx, stop_rx) = tokio::sync::oneshot::channel::<StagingFailure>();
        stops.push(tx);
        let s = s.clone();
        runs.push(tokio::spawn(async move {
            s.run(req, async move {
                stop_rx.await.unwrap_or_else(|_| {
                    StagingFailure::new(StagingErrorId::StagingError, "dropped")
                })
            })
            .await
        }));
        // In order: each is in line before the next comes.
        let want = match id {
            "q1" => ("logs.app-q1", "compiling".to_string()),
            "q2" => (
                "logs.app-q2",
                "-----> Waiting for a staging slot: 0 ahead (1 building on this DEA at once)"
                    .to_string(),
            ),
            _ => (
                "logs.app-q3",
                "-----> Waiting for a staging slot: 1 ahead (1 building on this DEA at once)"
                    .to_string(),
            ),
        };
        let mut seen = Vec::new();
        testkit::wait_for(&format!("{id}: {want:?}"), Duration::from_secs(30), || {
            lines_of(&mut rx, &mut seen);
            let hit = seen.iter().any(|(s, l)| s == want.0 && *l == want.1);
            async move { hit.then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; seen {seen:?}"));
    }
    // The first is stopped: the second builds, the third moves up.
    let stop = |reason: &str| StagingFailure::new(StagingErrorId::StagingError, reason);
    let mut stops = stops.into_iter();
    let _ = stops.next().expect("q1").send(stop("stopped q1"));
    let mut seen = Vec::new();
    testkit::wait_for("q2 compiling, q3 0 ahead", Duration::from_secs(30), || {
        lines_of(&mut rx, &mut seen);
        let q2 = seen
            .iter()
            .any(|(s, l)| s == "logs.app-q2" && l == "compiling");
        let q3 = seen.iter().any(|(s, l)| {
            s == "logs.app-q3"
                && l
                    == "-----> Waiting for a staging slot: 0 ahead (1 building on this DEA at once)"
        });
        async move { (q2 && q3).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; seen {seen:?}"));
    assert_eq!(s.slots.usage(), (1, 1));
    // A build stopped while in line leaves it without building.
    let rest: Vec<_> = stops.collect();
    for (i, tx) in rest.into_iter().enumerate().rev() {
        let _ = tx.send(stop(&format!("stopped q{}", i + 2)));
    }
    for r in runs {
        let r = r.await.expect("run");
        assert!(
            r.error
                .as_ref()
                .is_some_and(|e| e.message.starts_with("stopped q")),
            "{r:?}"
        );
    }
    assert_eq!(s.slots.usage(), (0, 0));
}

/// A droplet whose start command is `cmd` (process backend: `bash -c`).
fn droplet(dir: &Path) -> Vec<u8> {
    let app = dir.join("droplet-app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("keep"), "").expect("write");
    dea::archive::tar_gz(Vec::new(), &[("app", &app)], &[("staging_info.yml", b"{}")]).expect("tar")
}

fn start(base: &str, sha: &str, app: &str, cmd: &str) -> StartRequest {
    serde_json::from_value(serde_json::json!({
        "app_id": app, "app_name": app, "version": "v1", "index": 0,
        "droplet_uri": format!("{base}/droplet/logs"), "droplet_sha256": sha,
        "uris": [], "limits": {"memory_mb": 256, "disk_mb": 512, "fds": 100},
        "health_check": {"type": "process", "timeout_s": 30},
        "start_command": cmd, "stack": "host"
    }))
    .expect("start request")
}

/// 50 MB/s of 100-byte lines for 6 s.
const FLOOD: &str = r#"python3 -c '
import sys, time
line = ("x" * 99 + "\n") * 10000
end = time.time() + 6
while time.time() < end:
    t = time.time()
    for _ in range(50):
        sys.stdout.write(line)
    sys.stdout.flush()
    time.sleep(max(0, 1 - (time.time() - t)))
'; sleep 600"#;

/// One 100 MB line, no newline, then silence.
const ONE_LINE: &str = r#"python3 -c '
import sys
chunk = "y" * (1 << 20)
for _ in range(100):
    sys.stdout.write(chunk)
sys.stdout.flush()
'; sleep 600"#;

const QUIET: &str = r#"i=0; while true; do echo "quiet $i"; i=$((i+1)); sleep 0.2; done"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatty_apps_are_cut_to_the_rate_limit_and_the_dea_stays_flat() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, blobs) = blob_server().await;
    let tgz = droplet(tmp.path());
    let sha = dea::http::sha256_hex(&tgz);
    blobs
        .lock()
        .expect("lock")
        .insert("/droplet/logs".into(), tgz);
    let state = tmp.path().join("state");
    dea::agent::prepare_state_dir(&state).expect("prepare");
    let rate = 256 * 1024;
    let cfg = dea::Config {
        id: "dea-logs".into(),
        state_dir: state,
        log_rate_limit_bytes_per_s: rate,
        ..dea::Config::default()
    };
    let (outbox, mut rx) = Outbox::with_log_queue(cfg.log_queue_kb * 1024);
    let queue = outbox.log_queue();
    let backend = dea::backend::by_name("process").expect("backend");
    let agent: Arc<Agent> = Agent::new(cfg, backend, outbox);
    // Count what reaches the bus (as the pump does), per app.
    let counts = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        (u64, u64, Vec<String>),
    >::new()));
    let c = counts.clone();
    let q = queue.clone();
    let pump = tokio::spawn(async move {
        while let Some((subject, bytes)) = rx.recv().await {
            q.release(&subject, bytes.len());
            if let Ok(m) = serde_json::from_slice::<proto::LogMessage>(&bytes) {
                let mut c = c.lock().expect("lock");
                let e = c.entry(m.app_id.clone()).or_default();
                e.0 += 1;
                e.1 += m.line.len() as u64;
                if m.line.starts_with("app instance exceeded") || m.line.starts_with("quiet") {
                    e.2.push(m.line);
                }
            }
        }
    });
    let idle = rss_kb();
    let idle_peak = peak_rss_kb();
    let t0 = Instant::now();
    let ids = [
        agent.start(start(&base, &sha, "flood", FLOOD)),
        agent.start(start(&base, &sha, "oneline", ONE_LINE)),
        agent.start(start(&base, &sha, "quiet", QUIET)),
    ];
    for id in &ids {
        common::wait_running(&agent, id, Duration::from_secs(30)).await;
    }
    // The flood runs 6 s; the quiet app keeps talking meanwhile.
    testkit::wait_for(
        "7 s of flood and quiet lines",
        Duration::from_secs(30),
        || {
            let c = counts.lock().expect("lock");
            let quiet = c.get("quiet").map_or(0, |e| e.2.len());
            let done = t0.elapsed() > Duration::from_secs(7) && quiet >= 20;
            async move { done.then_some(()) }
        },
    )
    .await
    .expect("lines");
    let elapsed = t0.elapsed().as_secs_f64();
    let c = counts.lock().expect("lock").clone();
    let (flood_n, flood_bytes, flood_notes) = c.get("flood").cloned().unwrap_or_default();
    let (one_n, one_bytes, one_notes) = c.get("oneline").cloned().unwrap_or_default();
    let quiet = c.get("quiet").map(|e| e.2.clone()).unwrap_or_default();
    eprintln!(
        "flood: {flood_n} lines, {flood_bytes} bytes; one line: {one_n} pieces, {one_bytes} bytes; quiet: {} lines; {elapsed:.1} s; RSS idle {idle} kB now {} kB, peak {} -> {} kB; queue drops {}",
        quiet.len(),
        rss_kb(),
        idle_peak,
        peak_rss_kb(),
        queue.dropped()
    );
    // At most the rate (plus a second's burst and the notices).
    let allowed = rate as f64 * (elapsed + 1.0);
    assert!((flood_bytes as f64) <= allowed, "{flood_bytes} > {allowed}");
    assert!((one_bytes as f64) <= allowed, "{one_bytes} > {allowed}");
    assert!(flood_bytes > rate, "the flood got its share: {flood_bytes}");
    assert!(
        flood_notes.iter().any(|l| l.starts_with(&format!(
            "app instance exceeded log rate limit ({rate} bytes/sec)"
        ))),
        "no notice: {flood_notes:?}"
    );
    assert!(!one_notes.is_empty(), "the 100 MB line was cut and limited");
    // The quiet app's lines arrive, in order, none lost.
    let nums: Vec<u64> = quiet
        .iter()
        .filter_map(|l| l.strip_prefix("quiet ")?.parse().ok())
        .collect();
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "quiet lines lost: {nums:?}"
    );
    let grew = rss_kb().saturating_sub(idle);
    assert!(grew < 20 * 1024, "DEA RSS grew by {grew} kB");
    if one_test_per_process() {
        let peak = peak_rss_kb().saturating_sub(idle_peak.max(idle));
        assert!(peak < 20 * 1024, "DEA peak RSS grew by {peak} kB");
    }
    for app in ["flood", "oneline", "quiet"] {
        agent
            .stop_matching(&proto::StopRequest {
                app_id: app.into(),
                ..Default::default()
            })
            .await;
    }
    drop(agent);
    pump.abort();
}

/// A controller that answers the headers, then stalls: the download ends
/// with an error after `http_read_timeout_s`, not never.
#[tokio::test]
async fn a_stalled_download_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\nsome bytes")
                .await;
            held.push(sock);
        }
    });
    let cfg = dea::Config {
        http_connect_timeout_s: 1,
        http_read_timeout_s: 1,
        ..dea::Config::default()
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("blob");
    let t = Instant::now();
    let e = dea::http::download(
        &cfg.http_client().expect("http client"),
        &format!("http://{addr}/x"),
        &path,
        GB,
    )
    .await
    .expect_err("stalled");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!path.exists(), "the partial file is removed");
    eprintln!("stalled download: {e} after {:?}", t.elapsed());
    server.abort();
}
