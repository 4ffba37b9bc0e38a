//! Log aggregation: the last lines per app in memory and a live fan-out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use proto::LogMessage;
use tokio::sync::broadcast;

pub const KEEP_LINES: usize = 1000;

#[derive(Debug)]
pub struct LogHub {
    recent: Mutex<HashMap<String, VecDeque<LogMessage>>>,
    live: broadcast::Sender<LogMessage>,
    /// Open live streams per user.
    streams: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for LogHub {
    fn default() -> Self {
        LogHub {
            recent: Mutex::new(HashMap::new()),
            live: broadcast::channel(4096).0,
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
            q.push_back(msg.clone());
            while q.len() > KEEP_LINES {
                q.pop_front();
            }
        }
        let _ = self.live.send(msg);
    }

    /// The last `limit` lines of an app, oldest first.
    pub fn recent(&self, app_id: &str, limit: usize) -> Vec<LogMessage> {
        let Ok(map) = self.recent.lock() else {
            return Vec::new();
        };
        map.get(app_id)
            .map(|q| {
                q.iter()
                    .skip(q.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn forget(&self, app_id: &str) {
        if let Ok(mut map) = self.recent.lock() {
            map.remove(app_id);
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

    pub fn subscribe(&self) -> broadcast::Receiver<LogMessage> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{LogSource, LogStream};

    #[test]
    fn keeps_last_lines_per_app() {
        let hub = LogHub::default();
        let mut rx = hub.subscribe();
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
        assert_eq!(rx.try_recv().expect("live").line, "l0");
    }
}
