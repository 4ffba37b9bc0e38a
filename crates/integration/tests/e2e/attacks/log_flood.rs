//! An app writing 50 MB/s of log lines and one printing a single 100 MB
//! line with no newline, on the platform as it runs (a real DEA and
//! controller, each its own process): the DEA's and the controller's RSS
//! stay within 20 MB of their idle figure, and another app's lines still
//! arrive. (The DEA cuts each instance to `log_rate_limit_bytes_per_s`
//! and splits long lines, so the controller sees a bounded stream; the
//! DEA's own side is also shown by `dea hostile_uploads`.)

use std::time::Duration;

use anyhow::{Context, Result};
use integration::{app_host, fixture, Platform};

const T: Duration = Duration::from_secs(90);
const WINDOW: Duration = Duration::from_secs(10);
const SLACK_KIB: u64 = 20 * 1024;

/// The highest `quiet N` in `cf logs quiet --recent` output.
fn last_quiet(out: &str) -> Option<u64> {
    out.lines()
        .filter_map(|l| {
            l.rsplit_once("quiet ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_leaves_the_dea_and_the_controller_flat() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        fixture("floodapp").join("server.py"),
        dir.path().join("server.py"),
    )?;
    let app = |name: &str, mode: &str, mem: &str| {
        format!(
            "- name: {name}\n  path: .\n  buildpack: binary\n  memory: {mem}\n  command: python3 server.py\n  env:\n    FLOOD_MODE: {mode}\n"
        )
    };
    std::fs::write(
        dir.path().join("manifest.yml"),
        format!(
            "applications:\n{}{}{}",
            app("quiet", "quiet", "64M"),
            app("flood", "lines", "64M"),
            app("oneline", "oneline", "128M")
        ),
    )?;
    let d = dir.path().to_str().unwrap_or_default().to_string();
    p.cf_ok(&["push", "-f", &format!("{d}/manifest.yml")])
        .await?;
    for a in ["quiet", "flood", "oneline"] {
        p.wait_route_status(&app_host(a), 200, T).await?;
    }
    let before = p.wait_recent_logs("quiet", "quiet 1", T).await?;
    let cc = p.cc.pid().context("controller pid")?;
    let dea = p.deas.first().and_then(|d| d.pid()).context("dea pid")?;

    // Idle: the highest of a second of samples, everything pushed and
    // running, the quiet app talking.
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let (mut cc_idle, mut dea_idle) = (0, 0);
    for _ in 0..10 {
        every.tick().await;
        cc_idle = cc_idle.max(testkit::rss_kib(cc).unwrap_or(0));
        dea_idle = dea_idle.max(testkit::rss_kib(dea).unwrap_or(0));
    }
    let seen = last_quiet(&before).unwrap_or(0);
    for a in ["flood", "oneline"] {
        let (status, body) = p.get_via_router(&app_host(a), "/go").await?;
        assert_eq!(status, 200, "{a}: {body}");
    }
    let (mut cc_max, mut dea_max) = (cc_idle, dea_idle);
    let start = tokio::time::Instant::now();
    while start.elapsed() < WINDOW {
        every.tick().await;
        cc_max = cc_max.max(testkit::rss_kib(cc).unwrap_or(0));
        dea_max = dea_max.max(testkit::rss_kib(dea).unwrap_or(0));
    }
    // The quiet app's lines kept arriving through the flood (one every
    // 100 ms: at least half of the window's worth).
    let after = p.cf(&["logs", "quiet", "--recent"]).await?.stdout;
    let now = last_quiet(&after).unwrap_or(0);
    let flood = p
        .wait_recent_logs("flood", "app instance exceeded log rate limit", T)
        .await?;
    eprintln!(
        "log flood ({WINDOW:?}): controller RSS idle {cc_idle} KiB, max {cc_max} KiB (+{}); DEA idle {dea_idle} KiB, max {dea_max} KiB (+{}); quiet lines {seen} -> {now}",
        cc_max.saturating_sub(cc_idle),
        dea_max.saturating_sub(dea_idle)
    );
    assert!(
        now >= seen + WINDOW.as_millis() as u64 / 200,
        "the quiet app's lines stopped arriving: {seen} -> {now}"
    );
    assert!(flood.contains("xxxxxxxx"), "the flood's lines arrive (cut)");
    assert!(
        cc_max <= cc_idle + SLACK_KIB,
        "controller RSS {cc_idle} -> {cc_max} KiB"
    );
    assert!(
        dea_max <= dea_idle + SLACK_KIB,
        "DEA RSS {dea_idle} -> {dea_max} KiB"
    );
    Ok(())
}

#[test]
fn quiet_numbers() {
    let out = "2026 [APP/PROC/WEB/0] OUT quiet 7\n2026 [APP/PROC/WEB/0] OUT quiet 12\nother\n";
    assert_eq!(last_quiet(out), Some(12));
    assert_eq!(last_quiet("nothing"), None);
}
