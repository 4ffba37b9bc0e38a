//! Counters for the admin `/metrics` endpoint (Prometheus text format).
//! Everything is an atomic: the hot path never takes a lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::table::Snapshot;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Responses by status class (index = status / 100, 1..=5).
#[derive(Debug, Default)]
pub struct StatusCounts([AtomicU64; 6]);

impl StatusCounts {
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5);
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, class: usize) -> u64 {
        self.0.get(class).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Why a backend attempt failed.
#[derive(Debug, Clone, Copy)]
pub enum BackendError {
    /// Refused / unreachable / connect timeout (retried elsewhere).
    Connect,
    /// Failed after the request was sent (not retried).
    Request,
    /// No response headers within the endpoint timeout.
    Timeout,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    by_class: StatusCounts,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_sum_us: AtomicU64,
    backend_connect: AtomicU64,
    backend_request: AtomicU64,
    backend_timeout: AtomicU64,
    retries: AtomicU64,
    bytes_out: AtomicU64,
    access_log_dropped: AtomicU64,
    /// Client connections open now (HTTP and HTTPS listeners).
    client_connections: AtomicUsize,
    client_connections_refused: AtomicU64,
    request_body_timeouts: AtomicU64,
    nats_connected: AtomicBool,
    registrations: AtomicU64,
    unregistrations: AtomicU64,
    pruned: AtomicU64,
}

impl Metrics {
    /// A finished response (router errors included).
    pub fn record_response(&self, status: u16, bytes_out: u64, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.by_class.record(status);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn record_backend_error(&self, kind: BackendError) {
        let c = match kind {
            BackendError::Connect => &self.backend_connect,
            BackendError::Request => &self.backend_request,
            BackendError::Timeout => &self.backend_timeout,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a new client connection unless `max` (0 = unlimited) are
    /// open; `false` (and counted as refused) at the limit.
    pub fn admit_client_connection(&self, max: usize) -> bool {
        let before = self.client_connections.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.client_connections.fetch_sub(1, Ordering::AcqRel);
            self.client_connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A client connection admitted by [`Metrics::admit_client_connection`]
    /// closed.
    pub fn release_client_connection(&self) {
        self.client_connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Client connections open now.
    pub fn client_connections(&self) -> usize {
        self.client_connections.load(Ordering::Acquire)
    }

    /// A request ended because its body stalled (`request_body_timeout_ms`).
    pub fn record_request_body_timeout(&self) {
        self.request_body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_access_log_dropped(&self) {
        self.access_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_nats_connected(&self, up: bool) {
        self.nats_connected.store(up, Ordering::Relaxed);
    }

    pub fn nats_connected(&self) -> bool {
        self.nats_connected.load(Ordering::Relaxed)
    }

    pub fn record_registrations(&self, registered: u64, unregistered: u64, pruned: u64) {
        self.registrations.fetch_add(registered, Ordering::Relaxed);
        self.unregistrations
            .fetch_add(unregistered, Ordering::Relaxed);
        self.pruned.fetch_add(pruned, Ordering::Relaxed);
    }

    /// Prometheus exposition text; per-route counters come from the routes
    /// currently in `snapshot`.
    /// `busy_poll`: time spent busy polling ([`crate::busypoll`]).
    pub fn render(&self, snapshot: &Snapshot, busy_poll: Duration) -> String {
        let mut out = String::with_capacity(4096);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP router_requests_total Requests answered (router errors included)."
        );
        let _ = writeln!(out, "# TYPE router_requests_total counter");
        let _ = writeln!(out, "router_requests_total {}", load(&self.requests));
        let _ = writeln!(out, "# TYPE router_responses_total counter");
        for class in 1..=5 {
            let _ = writeln!(
                out,
                "router_responses_total{{status=\"{class}xx\"}} {}",
                self.by_class.get(class)
            );
        }
        let _ = writeln!(
            out,
            "# HELP router_route_responses_total Responses by route and status class."
        );
        let _ = writeln!(out, "# TYPE router_route_responses_total counter");
        for (key, stats) in snapshot.route_stats() {
            for class in 1..=5 {
                let n = stats.get(class);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "router_route_responses_total{{route=\"{}\",status=\"{class}xx\"}} {n}",
                        escape_label(key)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP router_request_duration_seconds Time from request to end of response body."
        );
        let _ = writeln!(out, "# TYPE router_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += load(&self.latency_buckets[i]);
            let _ = writeln!(
                out,
                "router_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "router_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            load(&self.requests)
        );
        let _ = writeln!(
            out,
            "router_request_duration_seconds_sum {:.6}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "router_request_duration_seconds_count {}",
            load(&self.requests)
        );
        let _ = writeln!(out, "# TYPE router_backend_errors_total counter");
        for (kind, c) in [
            ("connect", &self.backend_connect),
            ("request", &self.backend_request),
            ("timeout", &self.backend_timeout),
        ] {
            let _ = writeln!(
                out,
                "router_backend_errors_total{{kind=\"{kind}\"}} {}",
                load(c)
            );
        }
        let _ = writeln!(out, "# TYPE router_backend_retries_total counter");
        let _ = writeln!(out, "router_backend_retries_total {}", load(&self.retries));
        let _ = writeln!(out, "# TYPE router_response_bytes_total counter");
        let _ = writeln!(out, "router_response_bytes_total {}", load(&self.bytes_out));
        let _ = writeln!(out, "# TYPE router_access_log_dropped_total counter");
        let _ = writeln!(
            out,
            "router_access_log_dropped_total {}",
            load(&self.access_log_dropped)
        );
        let _ = writeln!(out, "# TYPE router_client_connections gauge");
        let _ = writeln!(
            out,
            "router_client_connections {}",
            self.client_connections()
        );
        let _ = writeln!(
            out,
            "# TYPE router_client_connections_refused_total counter"
        );
        let _ = writeln!(
            out,
            "router_client_connections_refused_total {}",
            load(&self.client_connections_refused)
        );
        let _ = writeln!(out, "# TYPE router_request_body_timeouts_total counter");
        let _ = writeln!(
            out,
            "router_request_body_timeouts_total {}",
            load(&self.request_body_timeouts)
        );
        let _ = writeln!(out, "# TYPE router_routes gauge");
        let _ = writeln!(out, "router_routes {}", snapshot.route_count());
        let _ = writeln!(
            out,
            "# HELP router_busy_poll_seconds_total Time spent polling for work after activity (busy_poll_us)."
        );
        let _ = writeln!(out, "# TYPE router_busy_poll_seconds_total counter");
        let _ = writeln!(
            out,
            "router_busy_poll_seconds_total {}",
            busy_poll.as_secs_f64()
        );
        let _ = writeln!(out, "# TYPE router_nats_connected gauge");
        let _ = writeln!(
            out,
            "router_nats_connected {}",
            u8::from(self.nats_connected())
        );
        let _ = writeln!(out, "# TYPE router_registrations_total counter");
        let _ = writeln!(
            out,
            "router_registrations_total {}",
            load(&self.registrations)
        );
        let _ = writeln!(out, "# TYPE router_unregistrations_total counter");
        let _ = writeln!(
            out,
            "router_unregistrations_total {}",
            load(&self.unregistrations)
        );
        let _ = writeln!(out, "# TYPE router_pruned_endpoints_total counter");
        let _ = writeln!(out, "router_pruned_endpoints_total {}", load(&self.pruned));
        out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.record_response(200, 10, Duration::from_micros(300));
        m.record_response(404, 5, Duration::from_millis(3));
        m.record_response(502, 0, Duration::from_secs(20));
        m.record_backend_error(BackendError::Connect);
        m.set_nats_connected(true);
        let text = m.render(&Snapshot::default(), Duration::from_millis(1500));
        assert!(text.contains("router_requests_total 3\n"));
        assert!(text.contains("router_responses_total{status=\"2xx\"} 1\n"));
        assert!(text.contains("router_responses_total{status=\"5xx\"} 1\n"));
        assert!(text.contains("router_backend_errors_total{kind=\"connect\"} 1\n"));
        assert!(text.contains("router_response_bytes_total 15\n"));
        assert!(text.contains("router_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("router_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("router_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("router_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("router_routes 0\n"));
        assert!(text.contains("router_nats_connected 1\n"));
        assert!(text.contains("router_busy_poll_seconds_total 1.5\n"));
        // Client connections: admitted up to the limit, refusals counted.
        assert!(m.admit_client_connection(2) && m.admit_client_connection(2));
        assert!(!m.admit_client_connection(2));
        m.release_client_connection();
        assert!(m.admit_client_connection(2));
        m.record_request_body_timeout();
        let text = m.render(&Snapshot::default(), Duration::ZERO);
        assert!(text.contains("router_client_connections 2\n"), "{text}");
        assert!(text.contains("router_client_connections_refused_total 1\n"));
        assert!(text.contains("router_request_body_timeouts_total 1\n"));
    }
}
