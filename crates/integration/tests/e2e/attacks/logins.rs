//! 1,000 concurrent wrong logins: the controller keeps answering a normal
//! request quickly throughout, and its memory stays bounded (password
//! checks are few at once, lockouts answer without hashing).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use integration::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_logins_do_not_stall_the_api() -> Result<()> {
    let p = Platform::start_with(integration::PlatformOptions {
        deas: 0,
        health_manager: false,
        ..Default::default()
    })
    .await?;
    let base = format!("http://{}", p.cc_addr);
    let token = p.admin_token().await?;
    let pid = p.cc.pid().context("controller pid")?;
    let rss_idle = testkit::rss_kib(pid).context("rss")?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let attack = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..1000 {
                let (client, base) = (client.clone(), base.clone());
                set.spawn(async move {
                    let user = format!("victim{}", i % 50);
                    client
                        .post(format!("{base}/oauth/token"))
                        .basic_auth("cf", Some(""))
                        .form(&[
                            ("grant_type", "password"),
                            ("username", user.as_str()),
                            ("password", "wrong"),
                        ])
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                });
            }
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            while let Some(s) = set.join_next().await {
                *statuses.entry(s.unwrap_or(0)).or_default() += 1;
            }
            statuses
        })
    };

    // A normal request, again and again, while the attack runs.
    let mut times = Vec::new();
    let mut rss_max = rss_idle;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    while !attack.is_finished() {
        every.tick().await;
        let t = Instant::now();
        let r = client
            .get(format!("{base}/v3/apps"))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        times.push(t.elapsed());
        rss_max = rss_max.max(testkit::rss_kib(pid).unwrap_or(0));
    }
    let statuses = attack.await?;
    times.sort();
    let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    eprintln!(
        "wrong logins: {statuses:?}; GET /v3/apps during the attack: {} samples, median {:?}, p90 {:?}, max {:?}; controller RSS idle {rss_idle} KiB, max {rss_max} KiB",
        times.len(),
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
    assert!(!statuses.contains_key(&200), "a wrong password logged in");
    assert!(
        !statuses.contains_key(&0),
        "the controller dropped connections: {statuses:?}"
    );
    assert!(!times.is_empty());
    assert!(
        pct(0.9) <= Duration::from_millis(100),
        "GET /v3/apps slowed down: p90 {:?}",
        pct(0.9)
    );
    assert!(
        pct(1.0) <= Duration::from_millis(1000),
        "GET /v3/apps stalled: max {:?}",
        pct(1.0)
    );
    // Two password checks at once (~19 MiB each, returned when done) and
    // the connections' buffers: bounded, whatever the number of attempts.
    assert!(
        rss_max <= rss_idle + 96 * 1024,
        "memory grew from {rss_idle} KiB to {rss_max} KiB"
    );
    Ok(())
}
