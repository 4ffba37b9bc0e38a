//! 1,000 open log streams: the controller's CPU for the same log volume
//! stays within 2x of one stream (one channel per app: a line costs only
//! its own app's streams, not every open stream's filter).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use integration::{procs, Platform, PlatformOptions};

const LINES: usize = 60_000;
const T: Duration = Duration::from_secs(120);

/// Room for 1,000 sockets in this process and in the controller it starts.
fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < 8192 {
            l.rlim_cur = l.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

async fn create_app(p: &Platform, token: &str, name: &str) -> Result<String> {
    let c = reqwest::Client::new();
    let spaces: serde_json::Value = c
        .get(format!("http://{}/v3/spaces?names=dev", p.cc_addr))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let space = spaces["resources"][0]["guid"]
        .as_str()
        .context("no dev space")?
        .to_string();
    let r: serde_json::Value = c
        .post(format!("http://{}/v3/apps", p.cc_addr))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "name": name,
            "relationships": {"space": {"data": {"guid": space}}}
        }))
        .send()
        .await?
        .json()
        .await?;
    r["guid"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no guid in {r}"))
}

/// One client for every stream: each open stream holds a connection of
/// its own.
fn client() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(reqwest::Client::new)
}

async fn open_stream(p: &Platform, token: &str, app: &str) -> Result<reqwest::Response> {
    let r = client()
        .get(format!("http://{}/v3/apps/{app}/logs/stream", p.cc_addr))
        .bearer_auth(token)
        .send()
        .await?;
    if r.status() != 200 {
        bail!("stream: {}", r.status());
    }
    Ok(r)
}

type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads `body` until `want` has come (within T).
async fn read_until(body: &mut Body, buf: &mut String, want: &str) -> Result<()> {
    tokio::time::timeout(T, async {
        while !buf.contains(want) {
            let chunk = body.next().await.context("stream ended")??;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            // Only a tail can hold the start of a marker still to come.
            if !buf.contains(want) && buf.len() > 4096 {
                let mut cut = buf.len() - 256;
                while !buf.is_char_boundary(cut) {
                    cut -= 1;
                }
                *buf = buf.split_off(cut);
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("{want} never came"))?
}

/// Controller CPU ticks for LINES lines of `loud`, read by one stream.
async fn cpu_for_volume(p: &Platform, token: &str, loud: &str, round: usize) -> Result<u64> {
    let pid = p.cc.pid().context("controller pid")?;
    let bus = p.bus_as("test").await?;
    let mut body: Body = Box::pin(open_stream(p, token, loud).await?.bytes_stream());
    let mut buf = String::new();
    let line = |text: &str| {
        proto::LogMessage::new(
            loud,
            proto::LogSource::App,
            Some(0),
            proto::LogStream::Stdout,
            text,
        )
    };
    let (start, end) = (format!("start-{round}"), format!("end-{round}"));
    // The stream is live once a first line comes through it.
    bus.publish(proto::subjects::logs(loud), &line(&start))
        .await?;
    bus.flush().await?;
    read_until(&mut body, &mut buf, &start).await?;
    let before = procs::cpu_ticks(pid).context("ticks")?;
    for i in 0..LINES {
        let text = format!("line {i} of round {round}: the same volume every time");
        bus.publish(proto::subjects::logs(loud), &line(&text))
            .await?;
        if i % 1000 == 999 {
            bus.flush().await?;
        }
    }
    bus.publish(proto::subjects::logs(loud), &line(&end))
        .await?;
    bus.flush().await?;
    read_until(&mut body, &mut buf, &end).await?;
    Ok(procs::cpu_ticks(pid).context("ticks")? - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_log_streams_cost_no_more_than_one() -> Result<()> {
    raise_nofile();
    let p = Platform::start_with(PlatformOptions {
        deas: 0,
        health_manager: false,
        cc_config: "log_streams_per_user = 2000\n".into(),
        ..Default::default()
    })
    .await?;
    let token = p.admin_token().await?;
    let loud = create_app(&p, &token, "loud").await?;
    let quiet = create_app(&p, &token, "quiet").await?;

    // One stream elsewhere, then a thousand.
    let mut held = vec![open_stream(&p, &token, &quiet).await?];
    let one = cpu_for_volume(&p, &token, &loud, 1).await?;
    let more: Vec<Result<reqwest::Response>> = futures_util::stream::iter(1..1000)
        .map(|_| open_stream(&p, &token, &quiet))
        .buffer_unordered(16)
        .collect()
        .await;
    for r in more {
        held.push(r?);
    }
    let thousand = cpu_for_volume(&p, &token, &loud, 2).await?;
    eprintln!(
        "controller CPU for {LINES} log lines: {one} ticks with 1 other stream open, {thousand} with 1,000 ({:.2}x)",
        thousand as f64 / one.max(1) as f64
    );
    assert!(
        thousand <= 2 * one.max(5),
        "1,000 streams cost {thousand} ticks, one {one}"
    );
    drop(held);
    Ok(())
}
