//! Outgoing messages go through an ordered in-process queue, so the instance
//! and staging logic can be unit-tested without NATS (tests read the queue).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::backend::BoxRead;

pub type Outgoing = (String, Vec<u8>);

/// Log messages waiting for the bus: at most `max` bytes; beyond, new log
/// lines are dropped and counted (other messages always go).
#[derive(Debug)]
pub struct LogQueue {
    queued: AtomicUsize,
    max: usize,
    dropped: AtomicU64,
    /// When the drops were last reported (ms since `since`).
    reported_ms: AtomicU64,
    since: Instant,
}

impl LogQueue {
    fn new(max: usize) -> Arc<LogQueue> {
        Arc::new(LogQueue {
            queued: AtomicUsize::new(0),
            max,
            dropped: AtomicU64::new(0),
            reported_ms: AtomicU64::new(0),
            since: Instant::now(),
        })
    }

    /// Takes room for `n` bytes, or counts a drop.
    fn take(&self, n: usize) -> bool {
        let mut cur = self.queued.load(Ordering::Relaxed);
        loop {
            if cur.saturating_add(n) > self.max {
                let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let now = self.since.elapsed().as_millis() as u64;
                let last = self.reported_ms.load(Ordering::Relaxed);
                if (total == 1 || now.saturating_sub(last) >= 10_000)
                    && self
                        .reported_ms
                        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        dropped_total = total,
                        queue_bytes = self.max,
                        "log queue to the bus full: dropping app log lines"
                    );
                }
                return false;
            }
            match self.queued.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back the room of a message taken off the queue.
    pub fn release(&self, subject: &str, n: usize) {
        if subject.starts_with(LOGS_PREFIX) {
            let _ = self
                .queued
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                    Some(q.saturating_sub(n))
                });
        }
    }

    /// Log lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of log messages waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

const LOGS_PREFIX: &str = "logs.";

#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    logs: Arc<LogQueue>,
}

/// Default bound of the log queue (the DEA's `log_queue_kb`).
pub const LOG_QUEUE_BYTES: usize = 8 * 1024 * 1024;

impl Outbox {
    pub fn channel() -> (Outbox, mpsc::UnboundedReceiver<Outgoing>) {
        Outbox::with_log_queue(LOG_QUEUE_BYTES)
    }

    /// An outbox whose log messages waiting for the bus hold at most
    /// `max_log_bytes`.
    pub fn with_log_queue(max_log_bytes: usize) -> (Outbox, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outbox {
                tx,
                logs: LogQueue::new(max_log_bytes),
            },
            rx,
        )
    }

    /// The log queue's counters (and what the pump gives back).
    pub fn log_queue(&self) -> Arc<LogQueue> {
        self.logs.clone()
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

    /// A log line on `logs.<app_id>`; dropped (and counted) when the log
    /// queue is full. Returns whether it was queued.
    pub fn log(
        &self,
        app_id: &str,
        source: proto::LogSource,
        index: Option<u32>,
        stream: proto::LogStream,
        line: &str,
    ) -> bool {
        self.log_message(proto::LogMessage::new(app_id, source, index, stream, line))
    }

    /// A line of an instance's log (`owner`: its app, and its process type
    /// when not `web`); as [`Outbox::log`].
    pub fn log_as(
        &self,
        owner: &proto::LogOwner,
        source: proto::LogSource,
        index: Option<u32>,
        stream: proto::LogStream,
        line: &str,
    ) -> bool {
        self.log_message(proto::LogMessage::of(owner, source, index, stream, line))
    }

    fn log_message(&self, msg: proto::LogMessage) -> bool {
        let app_id = msg.app_id.as_str();
        let bytes = match serde_json::to_vec(&msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode log message");
                return false;
            }
        };
        if !self.logs.take(bytes.len()) {
            return false;
        }
        let subject = proto::subjects::logs(app_id);
        debug_assert!(subject.starts_with(LOGS_PREFIX));
        let n = bytes.len();
        if self.tx.send((subject.clone(), bytes)).is_err() {
            self.logs.release(&subject, n);
            tracing::debug!("outbox closed, message dropped");
            return false;
        }
        true
    }
}

/// Publishes queued messages on the bus, in order, until the queue closes,
/// giving back the log queue's room as messages leave.
pub async fn pump(bus: proto::Bus, mut rx: mpsc::UnboundedReceiver<Outgoing>, logs: Arc<LogQueue>) {
    while let Some((subject, bytes)) = rx.recv().await {
        let n = bytes.len();
        logs.release(&subject, n);
        if let Err(e) = bus.publish_raw(subject, bytes).await {
            tracing::warn!(error = %e, "publish failed");
        }
    }
    let _ = bus.flush().await;
}

/// Default longest line forwarded as one (`log_max_line_bytes`); longer
/// output is cut into pieces of this size (an app or a build printing
/// without newlines cannot grow the DEA).
pub const MAX_LINE: usize = crate::config::DEFAULT_LOG_MAX_LINE_BYTES;

/// Lines waiting between a reader and what forwards them; a reader waits
/// (and so does the process writing) when they are not taken.
pub const LINE_CHANNEL: usize = 256;

/// Reads `r` line by line (lossy UTF-8, without the newline) into `tx`,
/// lines of at most [`MAX_LINE`] bytes.
pub fn spawn_line_reader(
    r: Option<BoxRead>,
    stream: proto::LogStream,
    tx: mpsc::Sender<(proto::LogStream, String)>,
) -> tokio::task::JoinHandle<()> {
    spawn_line_reader_max(r, stream, tx, MAX_LINE)
}

/// [`spawn_line_reader`] with lines of at most `max_line` bytes.
pub fn spawn_line_reader_max(
    r: Option<BoxRead>,
    stream: proto::LogStream,
    tx: mpsc::Sender<(proto::LogStream, String)>,
    max_line: usize,
) -> tokio::task::JoinHandle<()> {
    let max_line = max_line.max(1);
    tokio::spawn(async move {
        let Some(r) = r else { return };
        let mut br = BufReader::with_capacity(64 * 1024, r);
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let (used, complete, eof) = match br.fill_buf().await {
                Err(_) => (0, false, true),
                Ok([]) => (0, false, true),
                Ok(avail) => {
                    let room = max_line - buf.len();
                    match avail.iter().take(room).position(|&b| b == b'\n') {
                        Some(i) => {
                            buf.extend_from_slice(&avail[..i]);
                            (i + 1, true, false)
                        }
                        None => {
                            let n = avail.len().min(room);
                            buf.extend_from_slice(&avail[..n]);
                            (n, buf.len() >= max_line, false)
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
                if tx.send((stream, line)).await.is_err() {
                    break;
                }
            }
            if eof {
                break;
            }
        }
    })
}

/// A per-instance log rate limit (bytes per second, a one-second burst):
/// lines beyond it are dropped, and the app's log says so at most once a
/// second, as in Cloud Foundry.
#[derive(Debug)]
pub struct LogRateLimit {
    per_s: u64,
    tokens: f64,
    last: tokio::time::Instant,
    dropped: u64,
    last_notice: Option<tokio::time::Instant>,
    /// A limit of 0 (CF: the app may not log at all).
    silenced: bool,
}

impl LogRateLimit {
    /// `per_s` bytes a second; 0 = unlimited.
    pub fn new(per_s: u64) -> Self {
        LogRateLimit {
            per_s,
            tokens: per_s as f64,
            last: tokio::time::Instant::now(),
            dropped: 0,
            last_notice: None,
            silenced: false,
        }
    }

    /// An instance's limit: its process's own rate (`Some(0)`: nothing at
    /// all) within the platform's cap (`cap`; 0 = none).
    pub fn for_instance(cap: u64, process: Option<u64>) -> Self {
        match process {
            Some(0) => LogRateLimit {
                silenced: true,
                ..LogRateLimit::new(0)
            },
            Some(p) if cap == 0 || p < cap => LogRateLimit::new(p),
            _ => LogRateLimit::new(cap),
        }
    }

    /// Whether a line of `n` bytes may go now.
    pub fn allow(&mut self, n: usize) -> bool {
        if self.silenced {
            self.dropped += 1;
            return false;
        }
        if self.per_s == 0 {
            return true;
        }
        let now = tokio::time::Instant::now();
        let cap = self.per_s as f64;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * cap).min(cap);
        self.last = now;
        let cost = n.max(1) as f64;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The notice to put in the app's log after a drop, at most once a
    /// second.
    pub fn notice(&mut self) -> Option<String> {
        let now = tokio::time::Instant::now();
        if self
            .last_notice
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_notice = Some(now);
        Some(format!(
            "app instance exceeded log rate limit ({} bytes/sec); {} lines dropped so far",
            self.per_s, self.dropped
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let mut input = b"a\r\nb\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 5));
        input.extend(b"\nlast");
        let (tx, mut rx) = mpsc::channel(LINE_CHANNEL * 4);
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

    #[test]
    fn full_log_queue_drops_and_counts_log_lines_only() {
        let (outbox, mut rx) = Outbox::with_log_queue(1000);
        let q = outbox.log_queue();
        let line = "x".repeat(300);
        let sent: Vec<bool> = (0..5)
            .map(|_| {
                outbox.log(
                    "app",
                    proto::LogSource::App,
                    Some(0),
                    proto::LogStream::Stdout,
                    &line,
                )
            })
            .collect();
        assert_eq!(sent.iter().filter(|s| **s).count(), 2, "{sent:?}");
        assert_eq!(q.dropped(), 3);
        // Other messages are never dropped.
        outbox.send(
            "dea.heartbeat",
            &serde_json::json!({"big": "y".repeat(5000)}),
        );
        // The pump takes them off: room again.
        while let Ok((subject, bytes)) = rx.try_recv() {
            q.release(&subject, bytes.len());
        }
        assert_eq!(q.queued(), 0);
        assert!(outbox.log(
            "app",
            proto::LogSource::App,
            Some(0),
            proto::LogStream::Stdout,
            &line
        ));
    }

    #[tokio::test]
    async fn rate_limit_drops_beyond_the_rate_and_says_so_once_a_second() {
        let mut l = LogRateLimit::new(1000);
        assert!(l.allow(600));
        assert!(!l.allow(600), "400 bytes left in this second");
        assert!(l.allow(300));
        assert_eq!(l.dropped(), 1);
        let notice = l.notice().expect("first notice");
        assert_eq!(
            notice,
            "app instance exceeded log rate limit (1000 bytes/sec); 1 lines dropped so far"
        );
        assert_eq!(l.notice(), None, "at most once a second");
        let mut free = LogRateLimit::new(0);
        assert!((0..1000).all(|_| free.allow(1 << 20)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_limit_applies_within_the_platform_cap() {
        // (cap, the process's limit) → bytes allowed at once.
        let table: &[(u64, Option<u64>, Option<u64>)] = &[
            (1000, None, Some(1000)),
            (1000, Some(100), Some(100)),
            (1000, Some(5000), Some(1000)),
            (0, Some(100), Some(100)),
            (0, None, None),
        ];
        for (cap, process, want) in table {
            let mut l = LogRateLimit::for_instance(*cap, *process);
            match want {
                Some(n) => {
                    let n = usize::try_from(*n).expect("size");
                    assert!(l.allow(n), "{cap} {process:?}");
                    assert!(!l.allow(1), "{cap} {process:?}: beyond {n}");
                }
                None => assert!((0..100).all(|_| l.allow(1 << 20))),
            }
        }
        // 0: the app may not log at all.
        let mut none = LogRateLimit::for_instance(1000, Some(0));
        assert!(!none.allow(1));
        assert_eq!(none.dropped(), 1);
    }
}
