//! Placement of instances and staging tasks on DEAs (ARCHITECTURE §4):
//! right stack, enough memory and disk, the zone with fewest instances of the
//! app, the DEA with fewest instances of the app, then most free memory.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use proto::DeaAdvertise;

/// A DEA is stale after 3 missed adverts (2 s apart).
pub const STALE_AFTER: Duration = Duration::from_secs(6);

/// What placement knows about one DEA.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub zone: String,
    pub stacks: Vec<String>,
    pub available_memory_mb: u64,
    pub available_disk_mb: u64,
    pub app_id_to_count: BTreeMap<String, u32>,
}

impl From<&DeaAdvertise> for Candidate {
    fn from(a: &DeaAdvertise) -> Self {
        Candidate {
            id: a.id.clone(),
            zone: a.zone.clone(),
            stacks: a.stacks.clone(),
            available_memory_mb: a.available_memory_mb,
            available_disk_mb: a.available_disk_mb,
            app_id_to_count: a.app_id_to_count.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need<'a> {
    pub app_id: &'a str,
    pub stack: &'a str,
    pub memory_mb: u64,
    pub disk_mb: u64,
}

/// Picks the index of the best candidate, or `None` when nothing fits.
pub fn pick(candidates: &[Candidate], need: &Need<'_>) -> Option<usize> {
    let count = |c: &Candidate| u64::from(c.app_id_to_count.get(need.app_id).copied().unwrap_or(0));
    let mut zone_counts: HashMap<&str, u64> = HashMap::new();
    for c in candidates {
        *zone_counts.entry(c.zone.as_str()).or_default() += count(c);
    }
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.stacks.iter().any(|s| s == need.stack)
                && c.available_memory_mb >= need.memory_mb
                && c.available_disk_mb >= need.disk_mb
        })
        .min_by(|(_, a), (_, b)| {
            let za = zone_counts.get(a.zone.as_str()).copied().unwrap_or(0);
            let zb = zone_counts.get(b.zone.as_str()).copied().unwrap_or(0);
            za.cmp(&zb)
                .then(count(a).cmp(&count(b)))
                .then(b.available_memory_mb.cmp(&a.available_memory_mb))
                .then(a.id.cmp(&b.id))
        })
        .map(|(i, _)| i)
}

/// Reserves an instance on a candidate so the next pick spreads.
pub fn reserve(c: &mut Candidate, need: &Need<'_>) {
    c.available_memory_mb = c.available_memory_mb.saturating_sub(need.memory_mb);
    c.available_disk_mb = c.available_disk_mb.saturating_sub(need.disk_mb);
    *c.app_id_to_count
        .entry(need.app_id.to_string())
        .or_default() += 1;
}

/// Picks a DEA for each of `n` instances, reserving after each pick.
/// Returns the DEA ids (shorter than `n` when capacity runs out).
pub fn pick_many(candidates: &mut [Candidate], need: &Need<'_>, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(i) = pick(candidates, need) else {
            break;
        };
        reserve(&mut candidates[i], need);
        out.push(candidates[i].id.clone());
    }
    out
}

/// A DEA that announced `dea.shutdown` is not used again for this long, so
/// adverts it sent just before are ignored. Short: a draining DEA stops
/// advertising, and a DEA restarted under the same id must be usable again.
pub const DRAIN_EXCLUSION: Duration = Duration::from_secs(5);

/// The in-memory table of fresh adverts.
#[derive(Debug, Default)]
pub struct PlacementTable {
    deas: HashMap<String, (Candidate, Instant)>,
    draining: HashMap<String, Instant>,
}

impl PlacementTable {
    pub fn advertise(&mut self, a: &DeaAdvertise, now: Instant) {
        self.draining
            .retain(|_, since| now.duration_since(*since) < DRAIN_EXCLUSION);
        if self.draining.contains_key(&a.id) {
            return;
        }
        self.deas.insert(a.id.clone(), (Candidate::from(a), now));
    }

    /// Drops a DEA at once (`dea.shutdown`) and ignores its adverts for a while.
    pub fn remove(&mut self, id: &str, now: Instant) {
        self.deas.remove(id);
        self.draining.insert(id.to_string(), now);
    }

    /// Fresh candidates, sorted by id for determinism.
    pub fn fresh(&mut self, now: Instant) -> Vec<Candidate> {
        self.deas
            .retain(|_, (_, seen)| now.duration_since(*seen) < STALE_AFTER);
        let mut v: Vec<Candidate> = self.deas.values().map(|(c, _)| c.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Picks a DEA for a staging task and reserves its memory and disk (not an
    /// instance of the app: staging must not push the app's instances away
    /// from that DEA) until the next advert.
    pub fn place_for_staging(&mut self, need: &Need<'_>, now: Instant) -> Option<String> {
        let cands = self.fresh(now);
        let i = pick(&cands, need)?;
        let id = cands[i].id.clone();
        if let Some((slot, _)) = self.deas.get_mut(&id) {
            slot.available_memory_mb = slot.available_memory_mb.saturating_sub(need.memory_mb);
            slot.available_disk_mb = slot.available_disk_mb.saturating_sub(need.disk_mb);
        }
        Some(id)
    }

    /// Places `n` instances and keeps the reservations until the next advert.
    pub fn place(&mut self, need: &Need<'_>, n: usize, now: Instant) -> Vec<String> {
        let mut cands = self.fresh(now);
        let picks = pick_many(&mut cands, need, n);
        for c in cands {
            if let Some((slot, _)) = self.deas.get_mut(&c.id) {
                *slot = c;
            }
        }
        picks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dea(id: &str, zone: &str, mem: u64, apps: &[(&str, u32)]) -> Candidate {
        Candidate {
            id: id.into(),
            zone: zone.into(),
            stacks: vec!["host".into()],
            available_memory_mb: mem,
            available_disk_mb: 10_000,
            app_id_to_count: apps.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn staging_does_not_count_as_an_instance() {
        let now = Instant::now();
        let mut t = PlacementTable::default();
        for id in ["d0", "d1"] {
            t.advertise(
                &DeaAdvertise {
                    id: id.into(),
                    stacks: vec!["host".into()],
                    available_memory_mb: 8192,
                    available_disk_mb: 16384,
                    app_id_to_count: BTreeMap::new(),
                    zone: id.into(),
                    url: None,
                },
                now,
            );
        }
        assert_eq!(t.place_for_staging(&need(1024), now).as_deref(), Some("d0"));
        // Two instances right after staging on d0: one on each DEA.
        let mut picks = t.place(&need(256), 2, now);
        picks.sort();
        assert_eq!(picks, vec!["d0".to_string(), "d1".to_string()]);
    }

    fn need(mem: u64) -> Need<'static> {
        Need {
            app_id: "a",
            stack: "host",
            memory_mb: mem,
            disk_mb: 100,
        }
    }

    #[test]
    fn nothing_fits() {
        assert_eq!(pick(&[], &need(1)), None);
        assert_eq!(pick(&[dea("d1", "z", 100, &[])], &need(200)), None);
        let mut other_stack = dea("d1", "z", 1000, &[]);
        other_stack.stacks = vec!["cflinuxfs4".into()];
        assert_eq!(pick(&[other_stack], &need(1)), None);
        let mut no_disk = dea("d1", "z", 1000, &[]);
        no_disk.available_disk_mb = 10;
        assert_eq!(pick(&[no_disk], &need(1)), None);
    }

    #[test]
    fn prefers_most_free_memory() {
        let c = [
            dea("d1", "z", 1000, &[]),
            dea("d2", "z", 3000, &[]),
            dea("d3", "z", 2000, &[]),
        ];
        assert_eq!(pick(&c, &need(256)), Some(1));
    }

    #[test]
    fn prefers_fewest_instances_of_the_app() {
        let c = [
            dea("d1", "z", 3000, &[("a", 2)]),
            dea("d2", "z", 1000, &[("b", 5)]),
        ];
        assert_eq!(pick(&c, &need(256)), Some(1));
    }

    #[test]
    fn prefers_zone_with_fewest_instances() {
        // z1 has 1 instance in total (spread over two DEAs), z2 has 1 on one DEA.
        let c = [
            dea("d1", "z1", 5000, &[("a", 1)]),
            dea("d2", "z1", 5000, &[]),
            dea("d3", "z2", 1000, &[]),
            dea("d4", "z2", 1000, &[]),
        ];
        // Zones tie (1 vs 0)? z2 has 0 → a DEA in z2 wins despite less memory.
        assert_eq!(c[pick(&c, &need(256)).expect("pick")].zone, "z2");
    }

    #[test]
    fn burst_spreads_across_deas_and_zones() {
        let mut c = vec![
            dea("d1", "z1", 4096, &[]),
            dea("d2", "z1", 4096, &[]),
            dea("d3", "z2", 4096, &[]),
        ];
        let picks = pick_many(&mut c, &need(256), 4);
        assert_eq!(picks.len(), 4);
        let z2 = picks.iter().filter(|p| *p == "d3").count();
        assert_eq!(z2, 2, "zone z2 gets half: {picks:?}");
        assert!(picks.contains(&"d1".to_string()) && picks.contains(&"d2".to_string()));
    }

    #[test]
    fn reservations_exhaust_capacity() {
        let mut c = vec![dea("d1", "z", 600, &[])];
        let picks = pick_many(&mut c, &need(256), 5);
        assert_eq!(picks, vec!["d1", "d1"]);
        assert_eq!(c[0].available_memory_mb, 88);
    }

    #[test]
    fn table_drops_stale_and_shutdown_deas() {
        let mut t = PlacementTable::default();
        let now = Instant::now();
        let ad = |id: &str| DeaAdvertise {
            id: id.into(),
            stacks: vec!["host".into()],
            available_memory_mb: 1024,
            available_disk_mb: 4096,
            app_id_to_count: BTreeMap::new(),
            zone: "default".into(),
            url: None,
        };
        t.advertise(&ad("d1"), now);
        t.advertise(&ad("d2"), now + Duration::from_secs(5));
        assert_eq!(t.fresh(now + Duration::from_secs(5)).len(), 2);
        assert_eq!(t.fresh(now + Duration::from_secs(7)).len(), 1);
        t.remove("d2", now + Duration::from_secs(7));
        assert!(t.fresh(now + Duration::from_secs(7)).is_empty());
        // A draining DEA that still advertises is not used again for a while.
        t.advertise(&ad("d2"), now + Duration::from_secs(8));
        assert!(t.fresh(now + Duration::from_secs(8)).is_empty());
        t.advertise(&ad("d2"), now + Duration::from_secs(40));
        assert_eq!(t.fresh(now + Duration::from_secs(40)).len(), 1);
        t.remove("d2", now + Duration::from_secs(40));
        t.advertise(&ad("d3"), now);
        assert_eq!(t.place(&need(512), 3, now), vec!["d3", "d3"]);
        assert_eq!(t.fresh(now)[0].available_memory_mb, 0);
    }
}
