//! Polling with deadlines: never a fixed sleep.

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or fails after `timeout` naming `what`.
/// The delay between polls grows from 20 ms to 250 ms.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// [`wait_for`] for code without a runtime.
pub fn wait_for_blocking<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Waits until 127.0.0.1:`port` accepts connections (`up`) or refuses them;
/// each attempt gives up after 1 s (a DNAT to nothing drops the SYN).
pub async fn wait_port(port: u16, up: bool, timeout: Duration) -> anyhow::Result<()> {
    wait_for(
        &format!("port {port} to be {}", if up { "up" } else { "down" }),
        timeout,
        || async move {
            let attempt = tokio::net::TcpStream::connect(("127.0.0.1", port));
            let open = matches!(
                tokio::time::timeout(Duration::from_secs(1), attempt).await,
                Ok(Ok(_))
            );
            (open == up).then_some(())
        },
    )
    .await
}

/// Waits until `path` holds a non-empty first line (an address or `ready`
/// file a component writes once it listens); that line, trimmed.
pub async fn wait_file(path: &std::path::Path, timeout: Duration) -> anyhow::Result<String> {
    wait_for(
        &format!("{} to be written", path.display()),
        timeout,
        || async move {
            let s = std::fs::read_to_string(path).ok()?;
            let line = s.lines().next()?.trim().to_string();
            (!line.is_empty()).then_some(line)
        },
    )
    .await
}
