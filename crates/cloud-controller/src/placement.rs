//! Placement of instances and staging tasks on DEAs (docs/architecture.md §9):
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
    /// The DEA's whole memory and disk (0: not advertised).
    pub memory_capacity_mb: u64,
    pub disk_capacity_mb: u64,
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
            memory_capacity_mb: a.memory_capacity_mb,
            disk_capacity_mb: a.disk_capacity_mb,
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

/// How long a placement is held against a DEA's advertised room when no
/// advert names it (the request was lost, or the DEA never counted it).
pub const PROMISE_TTL: Duration = Duration::from_secs(10);

/// Room this controller promised a DEA and the DEA's adverts do not count
/// yet: a staging (until an advert names its id; the DEA then counts the
/// build until it ends) or an instance start (until an advert names its
/// placement id).
#[derive(Debug, Clone, PartialEq)]
pub struct Promise {
    pub dea_id: String,
    pub id: String,
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// Instance starts count towards the app's spread; stagings do not.
    pub app_id: Option<String>,
    pub made: Instant,
}

/// Why nothing was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// The DEA with the most free memory: (id, memory, disk); none when no
    /// DEA with the stack advertises.
    pub best: Option<(String, u64, u64)>,
}

impl std::fmt::Display for NoRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no DEA has room for {}M of memory and {}M of disk",
            self.memory_mb, self.disk_mb
        )?;
        match &self.best {
            Some((id, m, d)) => write!(
                f,
                "; the DEA with the most free memory ({id}) has {m}M of memory and {d}M of disk free"
            ),
            None => write!(f, "; no DEA is advertising (is one running?)"),
        }
    }
}

/// The in-memory table of fresh adverts and of this controller's
/// outstanding promises.
#[derive(Debug, Default)]
pub struct PlacementTable {
    deas: HashMap<String, (Candidate, Instant)>,
    draining: HashMap<String, Instant>,
    promises: Vec<Promise>,
    /// Apps whose instances no DEA could ever hold, and what was lacking
    /// ("memory" or "disk"), from their last start.
    unplaceable: HashMap<String, &'static str>,
}

impl PlacementTable {
    pub fn advertise(&mut self, a: &DeaAdvertise, now: Instant) {
        self.draining
            .retain(|_, since| now.duration_since(*since) < DRAIN_EXCLUSION);
        if self.draining.contains_key(&a.id) {
            return;
        }
        // What the DEA now counts itself is no longer ours to hold.
        self.promises
            .retain(|p| p.dea_id != a.id || !a.placements.contains(&p.id));
        self.deas.insert(a.id.clone(), (Candidate::from(a), now));
    }

    /// Drops a DEA at once (`dea.shutdown`) and ignores its adverts for a while.
    pub fn remove(&mut self, id: &str, now: Instant) {
        self.deas.remove(id);
        self.promises.retain(|p| p.dea_id != id);
        self.draining.insert(id.to_string(), now);
    }

    /// Whether the DEA advertised lately.
    pub fn is_fresh(&self, id: &str, now: Instant) -> bool {
        self.deas
            .get(id)
            .is_some_and(|(_, seen)| now.duration_since(*seen) < STALE_AFTER)
    }

    /// How many live instances of `app_id` the DEA's latest advert counts;
    /// `None` when it has not advertised lately.
    pub fn advertised_count(&self, dea_id: &str, app_id: &str, now: Instant) -> Option<u32> {
        let (c, seen) = self.deas.get(dea_id)?;
        (now.duration_since(*seen) < STALE_AFTER)
            .then(|| c.app_id_to_count.get(app_id).copied().unwrap_or(0))
    }

    /// Fresh candidates minus what was promised and is not yet counted,
    /// sorted by id for determinism.
    pub fn fresh(&mut self, now: Instant) -> Vec<Candidate> {
        self.deas
            .retain(|_, (_, seen)| now.duration_since(*seen) < STALE_AFTER);
        self.promises
            .retain(|p| now.duration_since(p.made) < PROMISE_TTL);
        let mut v: Vec<Candidate> = self.deas.values().map(|(c, _)| c.clone()).collect();
        for p in &self.promises {
            if let Some(c) = v.iter_mut().find(|c| c.id == p.dea_id) {
                c.available_memory_mb = c.available_memory_mb.saturating_sub(p.memory_mb);
                c.available_disk_mb = c.available_disk_mb.saturating_sub(p.disk_mb);
                if let Some(app) = &p.app_id {
                    *c.app_id_to_count.entry(app.clone()).or_default() += 1;
                }
            }
        }
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The most memory and disk one instance could ever get: the largest
    /// whole capacity among the fresh DEAs (with `stack`, when given).
    /// `None` when no fresh DEA qualifies or one of them does not advertise
    /// its capacity (nothing can be said then).
    pub fn largest(&mut self, stack: Option<&str>, now: Instant) -> Option<(u64, u64)> {
        let cands: Vec<Candidate> = self
            .fresh(now)
            .into_iter()
            .filter(|c| stack.is_none_or(|s| c.stacks.iter().any(|x| x == s)))
            .collect();
        if cands.is_empty()
            || cands
                .iter()
                .any(|c| c.memory_capacity_mb == 0 || c.disk_capacity_mb == 0)
        {
            return None;
        }
        let mem = cands.iter().map(|c| c.memory_capacity_mb).max()?;
        let disk = cands.iter().map(|c| c.disk_capacity_mb).max()?;
        Some((mem, disk))
    }

    /// What no DEA could ever hold of `need`: `Some("memory")` (or
    /// `"disk"`) when one instance is larger than every DEA's capacity.
    pub fn never_fits(&mut self, need: &Need<'_>, now: Instant) -> Option<&'static str> {
        let (mem, disk) = self.largest(Some(need.stack), now)?;
        if need.memory_mb > mem {
            Some("memory")
        } else if need.disk_mb > disk {
            Some("disk")
        } else {
            None
        }
    }

    fn no_room(cands: &[Candidate], need: &Need<'_>) -> NoRoom {
        NoRoom {
            memory_mb: need.memory_mb,
            disk_mb: need.disk_mb,
            best: cands
                .iter()
                .filter(|c| c.stacks.iter().any(|s| s == need.stack))
                .max_by(|a, b| {
                    a.available_memory_mb
                        .cmp(&b.available_memory_mb)
                        .then(b.id.cmp(&a.id))
                })
                .map(|c| (c.id.clone(), c.available_memory_mb, c.available_disk_mb)),
        }
    }

    /// Picks a DEA for staging `staging_id`, other than those in `avoid`
    /// (ones that did not accept this build), and holds its memory and disk
    /// there (not as an instance of the app: staging must not push the
    /// app's instances away from that DEA) until the DEA counts the build.
    pub fn place_for_staging(
        &mut self,
        need: &Need<'_>,
        staging_id: &str,
        avoid: &[String],
        now: Instant,
    ) -> Result<String, NoRoom> {
        let cands: Vec<Candidate> = self
            .fresh(now)
            .into_iter()
            .filter(|c| !avoid.contains(&c.id))
            .collect();
        let i = pick(&cands, need).ok_or_else(|| Self::no_room(&cands, need))?;
        let id = cands[i].id.clone();
        self.promises.push(Promise {
            dea_id: id.clone(),
            id: staging_id.to_string(),
            memory_mb: need.memory_mb,
            disk_mb: need.disk_mb,
            app_id: None,
            made: now,
        });
        Ok(id)
    }

    /// Records (or clears, with `None`) that the app's instances fit no DEA.
    pub fn set_unplaceable(&mut self, app_id: &str, what: Option<&'static str>) {
        match what {
            Some(w) => {
                self.unplaceable.insert(app_id.to_string(), w);
            }
            None => {
                self.unplaceable.remove(app_id);
            }
        }
    }

    /// What no DEA could hold of the app's instances at its last start.
    pub fn unplaceable(&self, app_id: &str) -> Option<&'static str> {
        self.unplaceable.get(app_id).copied()
    }

    /// Forgets a promise (its request did not go through).
    pub fn forget(&mut self, id: &str) {
        self.promises.retain(|p| p.id != id);
    }

    /// Places `n` instances: (DEA id, placement id) for each one placed, the
    /// room held until the DEA counts it; fewer than `n` when room runs out,
    /// with why.
    pub fn place(
        &mut self,
        need: &Need<'_>,
        n: usize,
        now: Instant,
    ) -> (Vec<(String, String)>, Option<NoRoom>) {
        let mut cands = self.fresh(now);
        let picks = pick_many(&mut cands, need, n);
        let short = (picks.len() < n).then(|| Self::no_room(&cands, need));
        let placed = picks
            .into_iter()
            .map(|dea| {
                let pid = uuid::Uuid::new_v4().to_string();
                self.promises.push(Promise {
                    dea_id: dea.clone(),
                    id: pid.clone(),
                    memory_mb: need.memory_mb,
                    disk_mb: need.disk_mb,
                    app_id: Some(need.app_id.to_string()),
                    made: now,
                });
                (dea, pid)
            })
            .collect();
        (placed, short)
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
            memory_capacity_mb: 8192,
            disk_capacity_mb: 10_000,
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
                    placements: vec![],
                    memory_capacity_mb: 8192,
                    disk_capacity_mb: 16384,
                },
                now,
            );
        }
        assert_eq!(
            t.place_for_staging(&need(1024), "s1", &[], now).as_deref(),
            Ok("d0")
        );
        // Two instances right after staging on d0: one on each DEA.
        let mut picks: Vec<String> = t
            .place(&need(256), 2, now)
            .0
            .into_iter()
            .map(|p| p.0)
            .collect();
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
    fn largest_is_the_biggest_whole_capacity() {
        let now = Instant::now();
        let mut t = PlacementTable::default();
        assert_eq!(t.largest(None, now), None, "no DEA: nothing to say");
        let mut a = advert("d1", 100, &[]);
        a.memory_capacity_mb = 4096;
        t.advertise(&a, now);
        let mut b = advert("d2", 8000, &[]);
        b.memory_capacity_mb = 2048;
        t.advertise(&b, now);
        // Capacity, not what is free now.
        assert_eq!(t.largest(Some("host"), now), Some((4096, 16384)));
        assert_eq!(t.never_fits(&need(4096), now), None);
        assert_eq!(t.never_fits(&need(4097), now), Some("memory"));
        assert_eq!(t.largest(Some("other"), now), None);
        // A DEA that does not say its capacity: nothing is refused.
        let mut c = advert("d3", 100, &[]);
        c.memory_capacity_mb = 0;
        t.advertise(&c, now);
        assert_eq!(t.never_fits(&need(1 << 30), now), None);
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
            placements: vec![],
            memory_capacity_mb: 1024,
            disk_capacity_mb: 4096,
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
        let (placed, short) = t.place(&need(512), 3, now);
        assert_eq!(
            placed.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            vec!["d3", "d3"]
        );
        assert_eq!(t.fresh(now)[0].available_memory_mb, 0);
        assert_eq!(
            short.map(|s| s.to_string()).as_deref(),
            Some("no DEA has room for 512M of memory and 100M of disk; the DEA with the most free memory (d3) has 0M of memory and 3896M of disk free")
        );
    }

    fn advert(id: &str, mem: u64, placements: &[&str]) -> DeaAdvertise {
        DeaAdvertise {
            id: id.into(),
            stacks: vec!["host".into()],
            available_memory_mb: mem,
            available_disk_mb: 16384,
            app_id_to_count: BTreeMap::new(),
            zone: "z".into(),
            url: None,
            placements: placements.iter().map(|p| p.to_string()).collect(),
            memory_capacity_mb: 8192,
            disk_capacity_mb: 16384,
        }
    }

    /// Ten stagings of 1024M in a row on an 8192M DEA, each ending before
    /// the next starts: every one is placed (the DEA's adverts count what is
    /// in flight; a finished build holds nothing).
    #[test]
    fn promises_follow_real_work() {
        let t0 = Instant::now();
        let mut t = PlacementTable::default();
        t.advertise(&advert("d", 8192, &[]), t0);
        for i in 0..10 {
            let now = t0 + Duration::from_millis(100 * i);
            let id = format!("s{i}");
            assert_eq!(
                t.place_for_staging(&need(1024), &id, &[], now).as_deref(),
                Ok("d"),
                "staging {i}"
            );
            // The DEA counts the build at once ...
            t.advertise(&advert("d", 8192 - 1024, &[&id]), now);
            assert_eq!(t.fresh(now)[0].available_memory_mb, 7168);
            // ... and gives the room back when it ends.
            t.advertise(&advert("d", 8192, &[]), now);
            assert_eq!(t.fresh(now)[0].available_memory_mb, 8192);
        }
        // Promises not yet counted add up; an advert that names them ends
        // them; those never named expire.
        let now = t0 + Duration::from_secs(5);
        for i in 0..8 {
            assert!(t
                .place_for_staging(&need(1024), &format!("p{i}"), &[], now)
                .is_ok());
        }
        let e = t
            .place_for_staging(&need(1024), "p8", &[], now)
            .expect_err("full");
        assert_eq!(e.best, Some(("d".to_string(), 0, 16384 - 8 * 100)));
        t.advertise(&advert("d", 8192 - 1024, &["p0"]), now);
        assert_eq!(t.fresh(now)[0].available_memory_mb, 0);
        let later = now + PROMISE_TTL;
        t.advertise(&advert("d", 8192 - 1024, &["p0"]), later);
        assert_eq!(t.fresh(later)[0].available_memory_mb, 7168);
        // Instance promises count towards the spread too.
        let (placed, short) = t.place(&need(64), 3, later);
        assert_eq!(placed.len(), 3);
        assert!(short.is_none());
        assert_eq!(t.fresh(later)[0].app_id_to_count.get("a"), Some(&3));
        t.forget(&placed[0].1);
        assert_eq!(t.fresh(later)[0].app_id_to_count.get("a"), Some(&2));
        // Nothing advertises: the error says so.
        let mut empty = PlacementTable::default();
        assert_eq!(
            empty
                .place_for_staging(&need(1), "x", &[], now)
                .expect_err("none")
                .to_string(),
            "no DEA has room for 1M of memory and 100M of disk; no DEA is advertising (is one running?)"
        );
    }
}
