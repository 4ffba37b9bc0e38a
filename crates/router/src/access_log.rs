//! Access log: one line per request on stdout and, for routed requests, on
//! `logs.<app_id>` (source RTR). The request path only moves a record with
//! cheap clones into a bounded channel (dropped and counted when full); a
//! writer thread formats lines and writes them to stdout through a buffer,
//! and an async task publishes them on NATS.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Uri, Version};
use proto::{Bus, LogMessage, LogSource, LogStream};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::table::Endpoint;

/// Everything known about a request when its response body ends.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub host: Option<HeaderValue>,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub status: u16,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub client: SocketAddr,
    pub endpoint: Option<Arc<Endpoint>>,
    pub x_forwarded_for: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub started: SystemTime,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

fn text(v: &Option<HeaderValue>) -> &str {
    match v.as_ref().and_then(|v| v.to_str().ok()) {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl AccessRecord {
    pub fn app_id(&self) -> Option<&str> {
        self.endpoint.as_ref().and_then(|e| e.app_id.as_deref())
    }

    /// The CF-style line.
    pub fn line(&self) -> String {
        let host = self
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .map(crate::table::normalize_host);
        let time =
            chrono::DateTime::<chrono::Utc>::from(self.started).format("%Y-%m-%dT%H:%M:%S%.3f%z");
        let path = self.uri.path_and_query().map_or("/", |pq| pq.as_str());
        format!(
            "{host} - [{time}] \"{method} {path} {proto}\" {status} {bytes_in} {bytes_out} \"{referer}\" \"{ua}\" {client} {backend} x_forwarded_for:\"{xff}\" vcap_request_id:\"{rid}\" response_time:{rt:.6} app_id:\"{app}\"",
            host = host.as_deref().filter(|h| !h.is_empty()).unwrap_or("-"),
            method = self.method,
            proto = version_str(self.version),
            status = self.status,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            referer = text(&self.referer),
            ua = text(&self.user_agent),
            client = self.client,
            backend = self.endpoint.as_ref().map_or("-", |e| e.address.as_str()),
            xff = text(&self.x_forwarded_for),
            rid = text(&self.request_id),
            rt = self.elapsed.as_secs_f64(),
            app = self.app_id().unwrap_or("-"),
        )
    }
}

/// How often the writer thread drains the queue.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Sender side used by the proxy. Cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<AccessRecord>>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// Starts the writer thread (stdout when `stdout`) and, with a bus, the
    /// NATS publisher task. Must be called inside a tokio runtime.
    ///
    /// The writer wakes up every [`BATCH_INTERVAL`] and drains the queue
    /// instead of being woken per record: waking a thread per request costs
    /// a futex call and a context switch on the request path.
    pub fn start(bus: Option<Bus>, stdout: bool, metrics: Arc<Metrics>) -> AccessLog {
        let (tx, mut rx) = mpsc::channel::<AccessRecord>(65_536);
        let nats_tx = bus.map(|bus| {
            let (ntx, mut nrx) = mpsc::channel::<Vec<LogMessage>>(256);
            tokio::spawn(async move {
                while let Some(batch) = nrx.recv().await {
                    for msg in batch {
                        let subject = proto::subjects::logs(&msg.app_id);
                        if let Err(e) = bus.publish(subject, &msg).await {
                            tracing::debug!(error = %e, "access log publish failed");
                        }
                    }
                }
            });
            ntx
        });
        let dropped = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
                let mut open = true;
                while open {
                    std::thread::sleep(BATCH_INTERVAL);
                    let mut batch = Vec::new();
                    loop {
                        let record = match rx.try_recv() {
                            Ok(r) => r,
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                open = false;
                                break;
                            }
                        };
                        let line = record.line();
                        if stdout {
                            let _ = out.write_all(line.as_bytes());
                            let _ = out.write_all(b"\n");
                        }
                        if let (Some(_), Some(app_id)) = (&nats_tx, record.app_id()) {
                            batch.push(LogMessage::new(
                                app_id,
                                LogSource::Rtr,
                                None,
                                LogStream::Stdout,
                                line,
                            ));
                        }
                    }
                    let _ = out.flush();
                    if let Some(ntx) = &nats_tx {
                        if !batch.is_empty() {
                            let n = batch.len();
                            if ntx.try_send(batch).is_err() {
                                for _ in 0..n {
                                    dropped.record_access_log_dropped();
                                }
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access log thread");
        }
        AccessLog {
            tx: Some(tx),
            metrics,
        }
    }

    /// An access log that writes nowhere (unit tests).
    pub fn disabled(metrics: Arc<Metrics>) -> AccessLog {
        AccessLog { tx: None, metrics }
    }

    pub fn emit(&self, record: AccessRecord) {
        if let Some(tx) = &self.tx {
            if tx.try_send(record).is_err() {
                self.metrics.record_access_log_dropped();
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
            host: Some(HeaderValue::from_static("App.localhost:8080")),
            method: Method::GET,
            uri: "/x?y=1".parse().expect("uri"),
            version: Version::HTTP_11,
            status: 200,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8")),
            client: "127.0.0.1:5000".parse().expect("addr"),
            endpoint: Some(Arc::new(Endpoint::new(
                "127.0.0.1:6000".into(),
                Some("a1".into()),
                None,
                Default::default(),
            ))),
            x_forwarded_for: Some(HeaderValue::from_static("127.0.0.1")),
            request_id: Some(HeaderValue::from_static("rid")),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_305_600),
            bytes_in: 3,
            bytes_out: 12,
            elapsed: Duration::from_millis(5),
        };
        assert_eq!(
            r.line(),
            "app.localhost - [2026-11-22T00:00:00.000+0000] \"GET /x?y=1 HTTP/1.1\" 200 3 12 \"-\" \"curl/8\" 127.0.0.1:5000 127.0.0.1:6000 x_forwarded_for:\"127.0.0.1\" vcap_request_id:\"rid\" response_time:0.005000 app_id:\"a1\""
        );
    }
}
