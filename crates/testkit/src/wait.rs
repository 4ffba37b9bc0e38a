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

/// Waits until 127.0.0.1:`port` accepts connections (`up`) or refuses them.
pub async fn wait_port(port: u16, up: bool, timeout: Duration) -> anyhow::Result<()> {
    wait_for(
        &format!("port {port} to be {}", if up { "up" } else { "down" }),
        timeout,
        || async move {
            let open = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            (open == up).then_some(())
        },
    )
    .await
}
