//! The lines a DEA writes into an app's log about its instances, worded as
//! Cloud Foundry's cells write them (`[CELL/0]`, `[HEALTH/0]`), so a user
//! reads why an instance started, stopped or died in `cf logs`.

use std::time::Duration;

use crate::backend::ExitInfo;

pub fn creating(dea_id: &str, instance_id: &str) -> String {
    format!("Cell {dea_id} creating container for instance {instance_id}")
}

pub fn created(dea_id: &str, instance_id: &str) -> String {
    format!("Cell {dea_id} successfully created container for instance {instance_id}")
}

pub const HEALTH_MONITORING: &str = "Starting health monitoring of container";
pub const HEALTHY: &str = "Container became healthy";
/// A running instance failed its liveness check (then it is crashed).
pub const UNHEALTHY: &str = "Container became unhealthy";
/// The readiness check passed: the instance is routed.
pub const READY: &str = "Container became ready";
/// The readiness check failed: the instance is not routed until it passes.
pub const NOT_READY: &str = "Container became not ready";

pub fn stopping(instance_id: &str) -> String {
    format!("Stopping instance {instance_id}")
}

pub fn destroying(instance_id: &str) -> String {
    format!("Destroying container for instance {instance_id}")
}

pub fn destroyed(instance_id: &str) -> String {
    format!("Successfully destroyed container for instance {instance_id}")
}

/// `Exit status 137 (out of memory)`, `Exit status 3`.
pub fn exit_status(exit: &ExitInfo, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("Exit status {} ({r})", exit.status()),
        None => format!("Exit status {}", exit.status()),
    }
}

/// Why one probe of a port health check failed, in CF's words.
pub fn tcp_failure(port: u16, why: &str) -> String {
    format!("Failed to make TCP connection to port {port}: {why}")
}

/// Why one probe of an http health check failed, in CF's words.
pub fn http_failure(endpoint: &str, port: u16, why: &str) -> String {
    format!("Failed to make HTTP request to '{endpoint}' on port {port}: {why}")
}

/// An I/O error of a probe as CF words it (`connection refused`, `timeout`).
pub fn probe_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::TimedOut => "timeout".into(),
        K::ConnectionReset => "connection reset by peer".into(),
        K::AddrNotAvailable | K::HostUnreachable | K::NetworkUnreachable => {
            "no route to host".into()
        }
        _ => proto::io_error_text(e).to_lowercase(),
    }
}

/// `Timed out after 1m0s: health check never passed.`
pub fn timed_out(after: Duration) -> String {
    format!(
        "Timed out after {}: health check never passed.",
        go_duration(after)
    )
}

/// A whole-second duration as Go prints it (`1m0s`, `45s`, `1h2m3s`),
/// which is how CF's lines show it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_cf() {
        let oom = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(
            exit_status(&oom, Some("out of memory")),
            "Exit status 137 (out of memory)"
        );
        let three = ExitInfo {
            code: Some(3),
            signal: None,
        };
        assert_eq!(exit_status(&three, None), "Exit status 3");
        assert_eq!(
            tcp_failure(8080, "connection refused"),
            "Failed to make TCP connection to port 8080: connection refused"
        );
        assert_eq!(
            http_failure("/health", 8080, "received status code 500"),
            "Failed to make HTTP request to '/health' on port 8080: received status code 500"
        );
        assert_eq!(
            timed_out(Duration::from_secs(60)),
            "Timed out after 1m0s: health check never passed."
        );
        for (secs, want) in [(5, "5s"), (60, "1m0s"), (61, "1m1s"), (3723, "1h2m3s")] {
            assert_eq!(go_duration(Duration::from_secs(secs)), want);
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(probe_error(&refused), "connection refused");
    }
}
