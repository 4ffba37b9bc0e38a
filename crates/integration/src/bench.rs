//! What the benchmark binaries share: their settings from the environment,
//! medians, and the time from a push to the app's first 200.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A count from environment variable `name`, `default` when unset or not a
/// number, and at least 1.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// The median (the upper one of an even count); `v` must not be empty.
pub fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    s[s.len() / 2]
}

/// Runs `push` while polling `answers_200` every 2 ms, and returns the time
/// from the start to the first poll that saw a 200 (at most 120 s); fails
/// when the push fails.
pub async fn push_to_first_200<T, P, F, Fut>(push: P, mut answers_200: F) -> Result<Duration>
where
    P: Future<Output = Result<T>>,
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    let first_200 = async {
        loop {
            if answers_200().await {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (push, t) = tokio::join!(
        push,
        tokio::time::timeout(Duration::from_secs(120), first_200)
    );
    push?;
    t.context("no 200 within 120 s")
}

/// Runs the real `cf` with `CF_HOME` `home`; its stdout and stderr, or
/// an error with them when it exits non-zero.
pub async fn cf_text(home: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = crate::Platform::cf_run(home, args, None).await?;
    let text = format!("{}{}", out.stdout, out.stderr);
    if out.status != 0 {
        anyhow::bail!("cf {} failed:\n{text}", args.join(" "));
    }
    Ok(text)
}
