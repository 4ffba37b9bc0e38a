//! Waiting for a container's process through its pidfd, and its exit
//! status.

use std::io::Read;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

use super::*;

fn parse_status(text: &str) -> Option<ExitInfo> {
    let (k, v) = text.trim().split_once(' ')?;
    let n: i32 = v.trim().parse().ok()?;
    match k {
        "exit" => Some(ExitInfo {
            code: Some(n),
            signal: None,
        }),
        "signal" => Some(ExitInfo {
            code: None,
            signal: Some(n),
        }),
        _ => None,
    }
}

fn from_wait_status(st: i32) -> ExitInfo {
    if libc::WIFEXITED(st) {
        ExitInfo {
            code: Some(libc::WEXITSTATUS(st)),
            signal: None,
        }
    } else {
        ExitInfo {
            code: None,
            signal: libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st)),
        }
    }
}

pub(super) async fn wait_child(
    inner: Arc<Inner>,
    id: String,
    pid: i32,
    pidfd: OwnedFd,
    status: OwnedFd,
) -> Result<ExitInfo> {
    // SAFETY: the AsyncFd owns the pidfd and nothing else closes it.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| DeaError::Backend(format!("pidfd: {e}")))?;
    let st = loop {
        let mut guard = afd
            .readable()
            .await
            .map_err(|e| DeaError::Backend(format!("pidfd: {e}")))?;
        if let Some(st) = spawn::reap(pid) {
            break st;
        }
        guard.clear_ready();
    };
    if let Some(l) = lock(&inner.live).get_mut(&id) {
        l.inits.retain(|&p| p != pid);
    }
    let mut text = String::new();
    let _ = std::fs::File::from(status).read_to_string(&mut text);
    Ok(text
        .lines()
        .rev()
        .find_map(parse_status)
        .unwrap_or_else(|| {
            if !text.trim().is_empty() {
                tracing::warn!(container = %id, report = %text.trim(), "container-init failed");
            }
            from_wait_status(st)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("exit 3\n").map(|e| e.code), Some(Some(3)));
        assert_eq!(parse_status("signal 9").map(|e| e.signal), Some(Some(9)));
        assert_eq!(parse_status("error x"), None);
    }
}
