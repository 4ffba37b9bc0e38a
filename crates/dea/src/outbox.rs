//! Outgoing messages go through an ordered in-process queue, so the instance
//! and staging logic can be unit-tested without NATS (tests read the queue).

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::backend::BoxRead;

pub type Outgoing = (String, Vec<u8>);

#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Outbox {
    pub fn channel() -> (Outbox, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx }, rx)
    }

    pub fn send<T: Serialize + ?Sized>(&self, subject: impl Into<String>, msg: &T) {
        let subject = subject.into();
        match serde_json::to_vec(msg) {
            Ok(bytes) => {
                if self.tx.send((subject, bytes)).is_err() {
                    tracing::debug!("outbox closed, message dropped");
                }
            }
            Err(e) => tracing::error!(subject = %subject, error = %e, "cannot encode message"),
        }
    }

    /// A log line on `logs.<app_id>`.
    pub fn log(
        &self,
        app_id: &str,
        source: proto::LogSource,
        index: Option<u32>,
        stream: proto::LogStream,
        line: &str,
    ) {
        let msg = proto::LogMessage::new(app_id, source, index, stream, line);
        self.send(proto::subjects::logs(app_id), &msg);
    }
}

/// Publishes queued messages on the bus, in order, until the queue closes.
pub async fn pump(bus: proto::Bus, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some((subject, bytes)) = rx.recv().await {
        if let Err(e) = bus.publish_raw(subject, bytes).await {
            tracing::warn!(error = %e, "publish failed");
        }
    }
    let _ = bus.flush().await;
}

/// Reads `r` line by line (lossy UTF-8, without the newline) into `tx`.
pub fn spawn_line_reader(
    r: Option<BoxRead>,
    stream: proto::LogStream,
    tx: mpsc::UnboundedSender<(proto::LogStream, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(r) = r else { return };
        let mut br = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match br.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}
