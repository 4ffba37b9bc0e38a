//! The warm pool of slots: slot numbers, a slot's cgroups and network,
//! taking a slot for a create and giving it back.

use super::*;

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) n: u8,
    /// A container-init started in the slot, waiting for its process.
    pub(super) init: Option<spawn::Child>,
}

/// What `create` got: a slot from the pool, or a new one whose network
/// is still to be finished.
pub(super) enum Taken {
    Pooled(Slot),
    New(u8, net::PendingNet),
}

impl Taken {
    pub(super) fn n(&self) -> u8 {
        match self {
            Taken::Pooled(s) => s.n,
            Taken::New(n, _) => *n,
        }
    }
}

impl Inner {
    fn take_number(&self) -> Result<u8> {
        let mut f = lock(&self.free);
        let n = *f
            .iter()
            .next()
            .ok_or_else(|| DeaError::Backend("no free container slot".into()))?;
        f.remove(&n);
        Ok(n)
    }

    /// Creates a slot: cgroup and network (blocking).
    pub(super) fn make_slot(&self) -> Result<Slot> {
        let (n, p) = self.begin_slot()?;
        // Sent to the rule set used last, so the next start likely finds
        // its egress rules in place (off the start's path).
        let rules = lock(&self.last_egress).clone();
        if let Err(e) = self
            .finish_slot(n, p)
            .and_then(|()| self.net.apply_egress(n, &rules))
        {
            self.destroy_slot(n);
            return Err(e);
        }
        Ok(Slot { n, init: None })
    }

    /// A new slot's cgroups and network namespace: enough for its init to
    /// start while [`Inner::finish_slot`] sets up the links.
    fn begin_slot(&self) -> Result<(u8, net::PendingNet)> {
        let _building = lock(&self.building);
        if self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DeaError::Backend("the backend is shutting down".into()));
        }
        let n = self.take_number()?;
        let r = self
            .layout
            .create(&self.s.tag, &cg_name(n))
            .map_err(|e| DeaError::Backend(format!("cgroup: {e}")))
            .and_then(|_| self.net.begin_slot(n));
        match r {
            Ok(p) => Ok((n, p)),
            Err(e) => {
                self.destroy_slot(n);
                Err(e)
            }
        }
    }

    fn finish_slot(&self, n: u8, p: net::PendingNet) -> Result<()> {
        let _building = lock(&self.building);
        if self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DeaError::Backend("the backend is shutting down".into()));
        }
        self.net.finish_slot(n, p)
    }

    pub(super) fn destroy_slot(&self, n: u8) {
        self.layout.destroy(&self.s.tag, &cg_name(n));
        self.net.destroy_slot(n);
        lock(&self.free).insert(n);
    }

    pub(super) fn pool_has_room(&self) -> bool {
        lock(&self.pool).len() + self.refilling.load(std::sync::atomic::Ordering::SeqCst)
            < self.s.warm_pool_size
    }

    /// A slot whose processes are gone: back to the pool when it has room
    /// (its netns and cgroup are reused as they are; limits are set again
    /// on the next create; the refiller starts a new container-init in
    /// it), else torn down.
    pub(super) fn release_slot(&self, n: u8) {
        if !self.shut.load(std::sync::atomic::Ordering::SeqCst) {
            let mut pool = lock(&self.pool);
            if pool.len() + self.refilling.load(std::sync::atomic::Ordering::SeqCst)
                < self.s.warm_pool_size
            {
                pool.push(Slot { n, init: None });
                drop(pool);
                self.refill.notify_one();
                return;
            }
        }
        self.destroy_slot(n);
    }

    /// A pooled slot, preferably one with a ready container-init, else a
    /// new slot, begun only (see [`Inner::begin_slot`]).
    pub(super) fn slot_for_create(&self) -> Result<Taken> {
        let pooled = {
            let mut pool = lock(&self.pool);
            let i = pool
                .iter()
                .rposition(|s| s.init.is_some())
                .or_else(|| pool.len().checked_sub(1));
            i.map(|i| pool.swap_remove(i))
        };
        self.refill.notify_one();
        match pooled {
            Some(s) => Ok(Taken::Pooled(s)),
            None => {
                let (n, p) = self.begin_slot()?;
                Ok(Taken::New(n, p))
            }
        }
    }

    /// A pooled slot whose container-init is ready, if any.
    pub(super) fn take_ready(&self) -> Option<Slot> {
        let slot = {
            let mut pool = lock(&self.pool);
            let i = pool.iter().rposition(|s| s.init.is_some())?;
            pool.swap_remove(i)
        };
        self.refill.notify_one();
        Some(slot)
    }

    /// Gives up a slot taken by a failed create (blocking).
    pub(super) fn abandon(&self, taken: Taken) {
        let n = taken.n();
        if let Taken::Pooled(Slot { init: Some(c), .. }) = taken {
            spawn::discard(c);
        }
        self.destroy_slot(n);
    }
}

/// The rest of a create that did not find a ready slot: finish the new
/// slot's network (while its container-init builds the root file system)
/// and check that the init started; on failure the slot is torn down.
pub(super) async fn finish_create(
    inner: Arc<Inner>,
    n: u8,
    init: Result<spawn::Child>,
    pending: Option<net::PendingNet>,
) -> Result<spawn::Child> {
    tokio::task::spawn_blocking(move || {
        let finished = match pending {
            Some(p) => inner.finish_slot(n, p),
            None => Ok(()),
        };
        match (init, finished) {
            (Ok(c), Ok(())) => Ok(c),
            (Ok(c), Err(e)) => {
                spawn::discard(c);
                inner.destroy_slot(n);
                Err(e)
            }
            (Err(e), _) => {
                inner.destroy_slot(n);
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| DeaError::Backend(format!("create task: {e}")))?
}
