//! The disk watch: kills containers over their disk quota (those whose
//! directory is not a volume of its own, see `volumes.rs`).

use super::*;

const DISK_CHECK: Duration = Duration::from_secs(2);

/// Measures the writable area of each running container and kills those
/// over their disk quota.
pub(super) async fn disk_watch(weak: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(DISK_CHECK).await;
        let Some(inner) = weak.upgrade() else { return };
        let list: Vec<(String, PathBuf, u64, u8)> = lock(&inner.live)
            .iter()
            .filter(|(_, l)| !l.inits.is_empty() && l.disk_bytes > 0 && !l.volume)
            .map(|(id, l)| (id.clone(), l.root.clone(), l.disk_bytes, l.slot))
            .collect();
        for (id, root, quota, slot) in list {
            let used = tokio::task::spawn_blocking(move || crate::safefs::dir_size(&root))
                .await
                .unwrap_or(0);
            if used > quota {
                tracing::warn!(container = %id, used, quota, "disk quota exceeded, killing");
                if let Some(l) = lock(&inner.live).get_mut(&id) {
                    l.disk_exceeded = true;
                }
                let i = inner.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    i.layout.kill_all(&i.s.tag, &cg_name(slot))
                })
                .await;
            }
        }
    }
}
