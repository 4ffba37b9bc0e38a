//! Busy polling after activity (config `busy_poll_us`).
//!
//! When a one-worker (current-thread) router has nothing to do it blocks in
//! `epoll_wait`, and the next packet has to wake the thread (and, on a VM,
//! the vCPU: a halt and a wake-up IPI, tens of microseconds to milliseconds).
//! Under load those wake-ups come between every request and its response.
//! Like a NIC driver's busy polling, the router instead keeps polling the
//! I/O driver for a short window after the last request activity: a task
//! that yields in a loop makes the runtime poll epoll with a zero timeout
//! instead of blocking. With no request activity for the window the task
//! parks, and the runtime blocks as before: an idle router uses no CPU.
//!
//! The request path calls [`BusyPoll::touch`] at the start and end of each
//! request: an increment and a load of two uncontended atomics; only the
//! first touch after the spinner parked wakes it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Activity counter and the spinner's parking place.
#[derive(Debug, Default)]
pub struct BusyPoll {
    activity: AtomicU64,
    parked: AtomicBool,
    notify: Notify,
    /// Microseconds spent spinning (for `/metrics`).
    spun_us: AtomicU64,
}

impl BusyPoll {
    /// Records request activity (and wakes a parked spinner).
    #[inline]
    pub fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Time spent busy polling so far.
    pub fn spun(&self) -> Duration {
        Duration::from_micros(self.spun_us.load(Ordering::Relaxed))
    }

    /// Whether the spinner is parked (no activity within the window).
    pub fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// The spinner: runs forever on a current-thread runtime. After each
    /// activity it keeps the runtime polling until `window` passes without
    /// any; then it parks until the next [`touch`](Self::touch).
    pub async fn run(&self, window: Duration) {
        loop {
            self.parked.store(true, Ordering::Release);
            // A touch between the store and here leaves a permit: no wake-up
            // is lost.
            self.notify.notified().await;
            let started = Instant::now();
            let mut seen = self.activity.load(Ordering::Relaxed);
            let mut last = started;
            loop {
                tokio::task::yield_now().await;
                let now = Instant::now();
                let a = self.activity.load(Ordering::Relaxed);
                if a != seen {
                    seen = a;
                    last = now;
                } else if now.duration_since(last) >= window {
                    let us =
                        u64::try_from(now.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    self.spun_us.fetch_add(us, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A spinner with `window` on the current runtime, once it has parked.
    async fn parked_spinner(window: Duration) -> (Arc<BusyPoll>, tokio::task::JoinHandle<()>) {
        let busy = Arc::new(BusyPoll::default());
        let spinner = tokio::spawn({
            let busy = busy.clone();
            async move { busy.run(window).await }
        });
        assert!(until(Duration::from_secs(5), || busy.is_parked()).await);
        (busy, spinner)
    }

    async fn until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cond()
    }

    #[test]
    fn parks_when_idle_spins_after_activity_and_parks_again() {
        current_thread().block_on(async {
            // A window far above the 10 ms steps below, so that a loaded
            // machine's late timers do not let it park in between.
            let (busy, spinner) = parked_spinner(Duration::from_millis(200)).await;
            // Idle: it stays parked and spins for nothing.
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(busy.is_parked());
            assert_eq!(busy.spun(), Duration::ZERO);

            // Activity wakes it; with none for the window it parks again.
            busy.touch();
            assert!(!busy.is_parked());
            let woke = Instant::now();
            assert!(until(Duration::from_secs(5), || busy.is_parked()).await);
            assert!(woke.elapsed() >= Duration::from_millis(200));
            assert!(
                busy.spun() >= Duration::from_millis(200),
                "{:?}",
                busy.spun()
            );

            // Activity within the window keeps it spinning.
            busy.touch();
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                assert!(!busy.is_parked());
                busy.touch();
            }
            assert!(until(Duration::from_secs(5), || busy.is_parked()).await);
            spinner.abort();
        });
    }

    #[test]
    fn other_tasks_and_timers_run_while_it_spins() {
        current_thread().block_on(async {
            let (busy, spinner) = parked_spinner(Duration::from_secs(60)).await;
            busy.touch();
            tokio::task::yield_now().await;
            assert!(!busy.is_parked());
            // A timer and a socket round trip complete while it spins.
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(t.elapsed() < Duration::from_secs(2));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
            assert!(c.is_ok() && s.is_ok());
            spinner.abort();
        });
    }
}
