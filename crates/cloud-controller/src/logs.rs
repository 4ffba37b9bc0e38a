//! Log aggregation: the last lines per app in memory and a live fan-out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use proto::LogMessage;
use tokio::sync::broadcast;

pub const KEEP_LINES: usize = 1000;
/// Bytes of lines kept per app by default (`recent_log_kb_per_app`).
pub const KEEP_BYTES: usize = 1024 * 1024;

/// An app's last lines, at most [`KEEP_LINES`] and `keep_bytes` of text.
#[derive(Debug, Default)]
struct Recent {
    lines: VecDeque<LogMessage>,
    bytes: usize,
}

#[derive(Debug)]
pub struct LogHub {
    recent: Mutex<HashMap<String, Recent>>,
    keep_bytes: usize,
    /// One channel per app with live streams, shared by all of them: a
    /// line is handed only to its app's streams, not filtered by every
    /// stream of every app.
    live: Mutex<HashMap<String, broadcast::Sender<LogMessage>>>,
    /// Open live streams per user.
    streams: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for LogHub {
    fn default() -> Self {
        LogHub::new(KEEP_BYTES)
    }
}

impl LogHub {
    /// A hub keeping at most `keep_bytes` of line text per app.
    pub fn new(keep_bytes: usize) -> Self {
        LogHub {
            recent: Mutex::new(HashMap::new()),
            keep_bytes,
            live: Mutex::new(HashMap::new()),
            streams: Default::default(),
        }
    }
}

/// One open live stream of a user; dropping it (the client went away)
/// gives the place back.
#[derive(Debug)]
pub struct StreamSlot {
    user: String,
    streams: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.streams.lock() {
            if let Some(n) = m.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.user);
                }
            }
        }
    }
}

impl LogHub {
    pub fn push(&self, msg: LogMessage) {
        if let Ok(mut map) = self.recent.lock() {
            let q = map.entry(msg.app_id.clone()).or_default();
            q.bytes += msg.line.len();
            q.lines.push_back(msg.clone());
            while q.lines.len() > KEEP_LINES || (q.bytes > self.keep_bytes && q.lines.len() > 1) {
                if let Some(old) = q.lines.pop_front() {
                    q.bytes = q.bytes.saturating_sub(old.line.len());
                }
            }
        }
        if let Ok(mut live) = self.live.lock() {
            if let Some(tx) = live.get(&msg.app_id) {
                if tx.receiver_count() == 0 {
                    // Its last stream went away.
                    live.remove(&msg.app_id);
                } else {
                    let _ = tx.send(msg);
                }
            }
        }
    }

    /// The last `limit` lines of an app, oldest first.
    pub fn recent(&self, app_id: &str, limit: usize) -> Vec<LogMessage> {
        let Ok(map) = self.recent.lock() else {
            return Vec::new();
        };
        map.get(app_id)
            .map(|q| {
                q.lines
                    .iter()
                    .skip(q.lines.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn forget(&self, app_id: &str) {
        if let Ok(mut map) = self.recent.lock() {
            map.remove(app_id);
        }
        if let Ok(mut live) = self.live.lock() {
            live.remove(app_id);
        }
    }

    /// A place for one more live stream of `user`, unless it holds `max`.
    pub fn open_stream(&self, user: &str, max: usize) -> Option<StreamSlot> {
        let mut m = self.streams.lock().ok()?;
        let n = m.entry(user.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            user: user.to_string(),
            streams: self.streams.clone(),
        })
    }

    /// The live lines of one app (its shared channel, made on first use;
    /// a stream that falls 256 lines behind skips ahead).
    pub fn subscribe(&self, app_id: &str) -> broadcast::Receiver<LogMessage> {
        match self.live.lock() {
            Ok(mut live) => live
                .entry(app_id.to_string())
                .or_insert_with(|| broadcast::channel(256).0)
                .subscribe(),
            // A poisoned map: a stream that never gets a line.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Apps with a live channel (for tests and metrics).
    pub fn live_apps(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{LogSource, LogStream};

    #[test]
    fn keeps_last_lines_per_app() {
        let hub = LogHub::default();
        let mut rx = hub.subscribe("a");
        let mut rx_b = hub.subscribe("b");
        for i in 0..1005 {
            hub.push(LogMessage::new(
                "a",
                LogSource::App,
                Some(0),
                LogStream::Stdout,
                format!("l{i}"),
            ));
        }
        hub.push(LogMessage::new(
            "b",
            LogSource::Api,
            None,
            LogStream::Stdout,
            "other",
        ));
        let r = hub.recent("a", 5000);
        assert_eq!(r.len(), KEEP_LINES);
        assert_eq!(r[0].line, "l5");
        assert_eq!(
            hub.recent("a", 2)
                .iter()
                .map(|m| m.line.as_str())
                .collect::<Vec<_>>(),
            ["l1003", "l1004"]
        );
        assert_eq!(hub.recent("b", 10).len(), 1);
        // 1,005 lines into a channel of 256: the stream skips ahead.
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        assert_eq!(rx.try_recv().expect("live").line, "l749");
        // Each stream gets its own app's lines only.
        assert_eq!(rx_b.try_recv().expect("live").line, "other");
        assert!(rx_b.try_recv().is_err());
        // Channels go with their last stream.
        drop(rx);
        hub.push(LogMessage::new(
            "a",
            LogSource::App,
            Some(0),
            LogStream::Stdout,
            "x",
        ));
        assert_eq!(hub.live_apps(), 1);
        hub.forget("b");
        assert_eq!(hub.live_apps(), 0);
    }

    #[test]
    fn recent_lines_are_bounded_in_bytes() {
        let hub = LogHub::new(100_000);
        let line = "x".repeat(16 * 1024);
        for _ in 0..50 {
            hub.push(LogMessage::new(
                "a",
                LogSource::App,
                Some(0),
                LogStream::Stdout,
                line.clone(),
            ));
        }
        let kept = hub.recent("a", KEEP_LINES);
        assert_eq!(kept.len(), 6, "100 KB of 16 KB lines");
        // One line longer than the budget is still kept (the last one).
        let tiny = LogHub::new(10);
        tiny.push(LogMessage::new(
            "a",
            LogSource::App,
            Some(0),
            LogStream::Stdout,
            line,
        ));
        assert_eq!(tiny.recent("a", 10).len(), 1);
    }
}
