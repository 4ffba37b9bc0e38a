//! Request counters for the admin `/metrics` endpoint (Prometheus text).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    /// Index = status / 100 (1..=5).
    by_class: [AtomicU64; 6],
    backend_connect_failures: AtomicU64,
    bytes_out: AtomicU64,
}

impl Metrics {
    pub fn record_response(&self, status: u16, bytes_out: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status / 100).min(5);
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    pub fn record_connect_failure(&self) {
        self.backend_connect_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus exposition text.
    pub fn render(&self, routes: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE router_requests_total counter");
        let _ = writeln!(
            out,
            "router_requests_total {}",
            self.requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE router_responses_total counter");
        for class in 1..=5 {
            let n = self.by_class[class].load(Ordering::Relaxed);
            let _ = writeln!(out, "router_responses_total{{status=\"{class}xx\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE router_backend_connect_failures_total counter");
        let _ = writeln!(
            out,
            "router_backend_connect_failures_total {}",
            self.backend_connect_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE router_response_bytes_total counter");
        let _ = writeln!(
            out,
            "router_response_bytes_total {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE router_routes gauge");
        let _ = writeln!(out, "router_routes {routes}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.record_response(200, 10);
        m.record_response(404, 5);
        m.record_response(502, 0);
        m.record_connect_failure();
        let text = m.render(3);
        assert!(text.contains("router_requests_total 3\n"));
        assert!(text.contains("router_responses_total{status=\"2xx\"} 1\n"));
        assert!(text.contains("router_responses_total{status=\"5xx\"} 1\n"));
        assert!(text.contains("router_backend_connect_failures_total 1\n"));
        assert!(text.contains("router_response_bytes_total 15\n"));
        assert!(text.contains("router_routes 3\n"));
    }
}
