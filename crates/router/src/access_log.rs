//! Access log: one line per request to the log and, for routed requests,
//! to `logs.<app_id>` (source RTR) through a bounded channel so that the
//! request path never waits for NATS.

use std::time::Duration;

use proto::{Bus, LogMessage, LogSource, LogStream};
use tokio::sync::mpsc;

/// Everything known about a request when its response body ends.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub host: String,
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub status: u16,
    pub referer: String,
    pub user_agent: String,
    pub client_addr: String,
    pub backend_addr: Option<String>,
    pub x_forwarded_for: String,
    pub request_id: String,
    pub app_id: Option<String>,
    /// `[<time>]` part, formatted when the request arrived.
    pub start_time: String,
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

impl AccessRecord {
    /// The CF-style line.
    pub fn line(&self, bytes_in: u64, bytes_out: u64, elapsed: Duration) -> String {
        format!(
            "{host} - [{time}] \"{method} {path} {proto}\" {status} {bytes_in} {bytes_out} \"{referer}\" \"{ua}\" {client} {backend} x_forwarded_for:\"{xff}\" vcap_request_id:\"{rid}\" response_time:{rt:.6} app_id:\"{app}\"",
            host = dash(&self.host),
            time = self.start_time,
            method = self.method,
            path = self.path,
            proto = self.protocol,
            status = self.status,
            referer = dash(&self.referer),
            ua = dash(&self.user_agent),
            client = self.client_addr,
            backend = self.backend_addr.as_deref().unwrap_or("-"),
            xff = self.x_forwarded_for,
            rid = self.request_id,
            rt = elapsed.as_secs_f64(),
            app = self.app_id.as_deref().unwrap_or("-"),
        )
    }
}

/// Sender side used by the proxy. Cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<LogMessage>>,
}

impl AccessLog {
    /// Starts the publisher task.
    pub fn start(bus: Bus) -> AccessLog {
        let (tx, mut rx) = mpsc::channel::<LogMessage>(4096);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Err(e) = bus.publish(proto::subjects::logs(&msg.app_id), &msg).await {
                    tracing::debug!(error = %e, "access log publish failed");
                }
            }
        });
        AccessLog { tx: Some(tx) }
    }

    /// An access log that only writes to the local log (tests).
    pub fn local() -> AccessLog {
        AccessLog { tx: None }
    }

    pub fn emit(&self, record: &AccessRecord, bytes_in: u64, bytes_out: u64, elapsed: Duration) {
        let line = record.line(bytes_in, bytes_out, elapsed);
        tracing::info!(target: "router::access", status = record.status, host = %record.host, "{line}");
        if let (Some(tx), Some(app_id)) = (&self.tx, &record.app_id) {
            let msg = LogMessage::new(app_id, LogSource::Rtr, None, LogStream::Stdout, line);
            if tx.try_send(msg).is_err() {
                tracing::debug!("access log queue full, dropping line");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_cf_like_line() {
        let r = AccessRecord {
            host: "app.localhost".into(),
            method: "GET".into(),
            path: "/x?y=1".into(),
            protocol: "HTTP/1.1".into(),
            status: 200,
            referer: String::new(),
            user_agent: "curl/8".into(),
            client_addr: "127.0.0.1:5000".into(),
            backend_addr: Some("127.0.0.1:6000".into()),
            x_forwarded_for: "127.0.0.1".into(),
            request_id: "rid".into(),
            app_id: Some("a1".into()),
            start_time: "2026-11-22T00:00:00.000+0000".into(),
        };
        let line = r.line(3, 12, Duration::from_millis(5));
        assert_eq!(
            line,
            "app.localhost - [2026-11-22T00:00:00.000+0000] \"GET /x?y=1 HTTP/1.1\" 200 3 12 \"-\" \"curl/8\" 127.0.0.1:5000 127.0.0.1:6000 x_forwarded_for:\"127.0.0.1\" vcap_request_id:\"rid\" response_time:0.005000 app_id:\"a1\""
        );
    }
}
