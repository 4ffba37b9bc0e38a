//! The HM's own monotonic clock, the only clock liveness and freshness are
//! measured with.
//!
//! Times are seconds since the HM started (`f64`), read from
//! [`tokio::time::Instant`]: a wall-clock step on the HM's host, or another
//! host's clock being ahead or behind, changes none of them. Timestamps other
//! hosts write (a DEA's `since`, the controller's `updated_at`) are never
//! compared with these.

use tokio::time::Instant;

/// Seconds since an origin, monotonic.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock reading 0 now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Seconds since the origin.
    pub fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    /// The reading at `t` (0 for instants before the origin).
    pub fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.origin).as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn reads_seconds_since_start() {
        let c = Clock::start();
        assert_eq!(c.now(), 0.0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(c.now(), 1.5);
        assert_eq!(c.at(Instant::now() - Duration::from_secs(60)), 0.0);
    }
}
