//! The refiller: keeps the warm pool full of slots with a ready
//! container-init.

use super::*;
use pool::Slot;

/// How long a new container-init may take to build its root file system.
const INIT_READY: Duration = Duration::from_secs(10);
/// How long the pool waits before making a new slot (see `refiller`).
const REFILL_DELAY: Duration = Duration::from_millis(50);

pub(super) async fn refiller(weak: std::sync::Weak<Inner>, refill: Arc<tokio::sync::Notify>) {
    use std::sync::atomic::Ordering::SeqCst;
    loop {
        let notified = refill.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut waited = false;
        loop {
            let Some(inner) = weak.upgrade() else { return };
            if inner.shut.load(SeqCst) {
                return;
            }
            // A pooled slot without its container-init (just released),
            // else a new slot when the pool has room, after REFILL_DELAY:
            // a short-lived container (a staging, a test) returns its slot
            // meanwhile, which is cheaper to reuse than a new one, and the
            // start that took the slot does not compete with the refill.
            let bare = {
                let mut pool = lock(&inner.pool);
                let i = pool.iter().position(|s| s.init.is_none());
                let slot = i.map(|i| pool.swap_remove(i));
                if slot.is_some() || (waited && pool.len() < inner.s.warm_pool_size) {
                    inner.refilling.fetch_add(1, SeqCst);
                    Some(Some(slot))
                } else if pool.len() < inner.s.warm_pool_size {
                    Some(None)
                } else {
                    None
                }
            };
            let bare = match bare {
                None => break,
                Some(None) => {
                    drop(inner);
                    waited = true;
                    tokio::time::sleep(REFILL_DELAY).await;
                    continue;
                }
                Some(Some(bare)) => bare,
            };
            let made = match bare {
                Some(slot) => Ok(slot),
                None => {
                    let i = inner.clone();
                    tokio::task::spawn_blocking(move || i.make_slot())
                        .await
                        .unwrap_or_else(|e| Err(DeaError::Backend(format!("refill task: {e}"))))
                }
            };
            let r = match made {
                Ok(slot) => ready_slot(&inner, slot).await,
                Err(e) => Err(e),
            };
            inner.refilling.fetch_sub(1, SeqCst);
            match r {
                Ok(slot) if inner.shut.load(SeqCst) => {
                    let i = inner.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(c) = slot.init {
                            spawn::discard(c);
                        }
                        i.destroy_slot(slot.n)
                    })
                    .await;
                    return;
                }
                Ok(slot) => lock(&inner.pool).push(slot),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fill the warm pool");
                    break;
                }
            }
        }
        notified.await;
    }
}

/// Starts the slot's container-init (here, on a runtime worker: see
/// `start_init`) and waits until its root file system is ready. On failure
/// the slot is torn down.
async fn ready_slot(inner: &Arc<Inner>, mut slot: Slot) -> Result<Slot> {
    let child = match inner.start_init(slot.n) {
        Ok(c) => c,
        Err(e) => {
            let i = inner.clone();
            let _ = tokio::task::spawn_blocking(move || i.destroy_slot(slot.n)).await;
            return Err(e);
        }
    };
    let i = inner.clone();
    let n = slot.n;
    let (child, r) = tokio::task::spawn_blocking(move || {
        let r = spawn::wait_ready(&child.control, INIT_READY);
        if r.is_err() {
            let mut text = String::new();
            spawn::discard_with_report(child, &mut text);
            i.destroy_slot(n);
            let msg = text.trim().to_string();
            return (
                None,
                r.map_err(|e| DeaError::Backend(format!("{e}: {msg}"))),
            );
        }
        (Some(child), r)
    })
    .await
    .map_err(|e| DeaError::Backend(format!("init task: {e}")))?;
    let userns = r?;
    if inner.s.user_namespaces && !userns {
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("the kernel refused a user namespace; containers run as their slot's host uid (user_namespaces)");
        }
    }
    slot.init = child;
    Ok(slot)
}
