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

/// Longest line forwarded as one; longer output is cut into pieces of this
/// size (an app or a build printing without newlines cannot grow the DEA).
pub const MAX_LINE: usize = 16 * 1024;

/// Reads `r` line by line (lossy UTF-8, without the newline) into `tx`.
pub fn spawn_line_reader(
    r: Option<BoxRead>,
    stream: proto::LogStream,
    tx: mpsc::UnboundedSender<(proto::LogStream, String)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(r) = r else { return };
        let mut br = BufReader::new(r);
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let (used, complete, eof) = match br.fill_buf().await {
                Err(_) => (0, false, true),
                Ok([]) => (0, false, true),
                Ok(avail) => {
                    let room = MAX_LINE - buf.len();
                    match avail.iter().take(room).position(|&b| b == b'\n') {
                        Some(i) => {
                            buf.extend_from_slice(&avail[..i]);
                            (i + 1, true, false)
                        }
                        None => {
                            let n = avail.len().min(room);
                            buf.extend_from_slice(&avail[..n]);
                            (n, buf.len() >= MAX_LINE, false)
                        }
                    }
                }
            };
            br.consume(used);
            if complete || (eof && !buf.is_empty()) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                buf.clear();
                if tx.send((stream, line)).is_err() {
                    break;
                }
            }
            if eof {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let mut input = b"a\r\nb\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 5));
        input.extend(b"\nlast");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r: BoxRead = Box::pin(std::io::Cursor::new(input));
        spawn_line_reader(Some(r), proto::LogStream::Stdout, tx)
            .await
            .expect("reader");
        let mut lines = Vec::new();
        while let Ok((_, l)) = rx.try_recv() {
            lines.push(l);
        }
        let lens: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(
            lens,
            vec![1, 1, MAX_LINE, MAX_LINE, 5, 4],
            "{:?}",
            &lines[..2]
        );
        assert_eq!(lines.last().map(String::as_str), Some("last"));
    }
}
