//! Staging slots: at most `max_concurrent_stagings` builds run at once on a
//! DEA; the others wait in line, first come first served, and are told how
//! many are ahead of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    running: usize,
    queue: VecDeque<u64>,
    next_ticket: u64,
}

#[derive(Debug)]
pub struct Slots {
    max: usize,
    state: Mutex<State>,
    changed: Notify,
}

/// A slot held: given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().running -= 1;
        self.slots.changed.notify_waiters();
    }
}

/// A place in line: left on drop (a build stopped while waiting).
struct Ticket<'a> {
    slots: &'a Slots,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        if let Some(i) = st.queue.iter().position(|t| *t == self.id) {
            st.queue.remove(i);
            drop(st);
            self.slots.changed.notify_waiters();
        }
    }
}

impl Slots {
    /// `max` builds at once (at least one).
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// (running, waiting) now.
    pub fn usage(&self) -> (usize, usize) {
        let st = self.lock();
        (st.running, st.queue.len())
    }

    /// A slot, at once when one is free and nobody waits, else after the
    /// builds ahead; `waiting(ahead)` is called on entering the line and
    /// whenever the number ahead changes.
    pub async fn acquire(self: &Arc<Self>, mut waiting: impl FnMut(usize)) -> Slot {
        let id = {
            let mut st = self.lock();
            if st.running < self.max && st.queue.is_empty() {
                st.running += 1;
                return Slot {
                    slots: self.clone(),
                };
            }
            let id = st.next_ticket;
            st.next_ticket += 1;
            st.queue.push_back(id);
            id
        };
        let ticket = Ticket { slots: self, id };
        let mut told = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut st = self.lock();
                let ahead = st.queue.iter().position(|t| *t == id).unwrap_or(0);
                if ahead == 0 && st.running < self.max {
                    st.queue.pop_front();
                    st.running += 1;
                    drop(st);
                    std::mem::forget(ticket);
                    // Those behind moved up.
                    self.changed.notify_waiters();
                    return Slot {
                        slots: self.clone(),
                    };
                }
                if told != Some(ahead) {
                    told = Some(ahead);
                    drop(st);
                    waiting(ahead);
                }
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_at_a_time_in_order_and_leaving_the_line() {
        let slots = Slots::new(1);
        let first = slots.acquire(|_| panic!("free")).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let spawn = |name: &'static str| {
            let (s, tx) = (slots.clone(), tx.clone());
            tokio::spawn(async move {
                let slot = s
                    .acquire(|ahead| {
                        let _ = tx.send(format!("{name} waits, {ahead} ahead"));
                    })
                    .await;
                let _ = tx.send(format!("{name} runs"));
                slot
            })
        };
        let b = spawn("b");
        assert_eq!(rx.recv().await.as_deref(), Some("b waits, 0 ahead"));
        let c = spawn("c");
        assert_eq!(rx.recv().await.as_deref(), Some("c waits, 1 ahead"));
        let d = spawn("d");
        assert_eq!(rx.recv().await.as_deref(), Some("d waits, 2 ahead"));
        // c gives up: d moves up.
        c.abort();
        assert_eq!(rx.recv().await.as_deref(), Some("d waits, 1 ahead"));
        assert_eq!(slots.usage(), (1, 2));
        drop(first);
        assert_eq!(rx.recv().await.as_deref(), Some("b runs"));
        assert_eq!(rx.recv().await.as_deref(), Some("d waits, 0 ahead"));
        drop(b.await.expect("b"));
        assert_eq!(rx.recv().await.as_deref(), Some("d runs"));
        drop(d.await.expect("d"));
        assert_eq!(slots.usage(), (0, 0));
    }
}
