//! The route table: pure logic, no I/O, time passed in.
//!
//! The NATS task owns a mutable [`Table`] (with `last_seen` per endpoint) and
//! publishes an immutable [`Snapshot`] when the set of endpoints changed; the
//! proxy only ever reads snapshots (through `ArcSwap`, no locks). Per-endpoint
//! runtime state (connections in flight, "refused recently") lives in atomics
//! inside the `Arc<Endpoint>`, which survives snapshots, so it is kept when
//! other routes change.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Authority;
use proto::RouteRegistration;
use serde::Serialize;

use crate::metrics::StatusCounts;

/// Registration tag naming the load-balancing algorithm of a route.
pub const LB_TAG: &str = "loadbalancing";
/// Tag value selecting least connections (anything else: round robin).
pub const LB_LEAST_CONNECTION: &str = "least-connection";

/// Runtime state of an endpoint, shared by every snapshot.
#[derive(Debug, Default)]
pub struct EndpointState {
    /// Requests (and tunnels) in flight.
    active: AtomicUsize,
    /// Avoid until this time (ms, caller's clock) after a connection failure.
    skip_until_ms: AtomicU64,
}

/// One backend of a route.
#[derive(Debug, Serialize)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    pub app_id: Option<String>,
    pub instance_id: Option<String>,
    /// Registration tags (a small vector: a map node per endpoint would
    /// cost ~0.5 KiB each with 100,000 routes). Serialized as a map.
    #[serde(serialize_with = "tags_as_map")]
    pub tags: Vec<(String, String)>,
    /// `address` parsed once for request URIs (`None` if it does not parse).
    #[serde(skip)]
    pub authority: Option<Authority>,
    #[serde(skip)]
    state: EndpointState,
}

fn tags_as_map<S: serde::Serializer>(tags: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(tags.iter().map(|(k, v)| (k, v)))
}

impl Endpoint {
    pub fn new(
        address: String,
        app_id: Option<String>,
        instance_id: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> Endpoint {
        Endpoint {
            authority: address.parse().ok(),
            address,
            app_id,
            instance_id,
            tags: tags.into_iter().collect(),
            state: EndpointState::default(),
        }
    }

    /// Whether `reg` describes this endpoint as it is.
    fn same_registration(&self, reg: &RouteRegistration) -> bool {
        self.app_id == reg.app_id
            && self.instance_id == reg.instance_id
            && self.tags.len() == reg.tags.len()
            && self
                .tags
                .iter()
                .zip(&reg.tags)
                .all(|((a, b), (c, d))| a == c && b == d)
    }

    /// The value of tag `name`.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Requests in flight to this endpoint.
    pub fn active(&self) -> usize {
        self.state.active.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn acquire(self: &Arc<Self>) -> ActiveGuard {
        self.state.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// Avoid this endpoint until `until_ms` (it refused a connection).
    pub fn mark_failed(&self, until_ms: u64) {
        self.state.skip_until_ms.store(until_ms, Ordering::Relaxed);
    }

    fn failed_at(&self, now_ms: u64) -> bool {
        self.state.skip_until_ms.load(Ordering::Relaxed) > now_ms
    }
}

/// A request in flight to an endpoint (for least connections and limits).
#[derive(Debug)]
pub struct ActiveGuard(Arc<Endpoint>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.state.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What [`Pool::next`] decided.
#[derive(Debug)]
pub enum Choice {
    Endpoint(usize, Arc<Endpoint>),
    /// Every endpoint was already tried.
    Exhausted,
    /// Every untried endpoint is at its connection limit.
    Overloaded,
}

impl Choice {
    /// The chosen endpoint's index, if any.
    pub fn endpoint_index(&self) -> Option<usize> {
        match self {
            Choice::Endpoint(i, _) => Some(*i),
            _ => None,
        }
    }
}

/// The endpoints of one route as seen by the proxy, with its round-robin cursor.
#[derive(Debug)]
pub struct Pool {
    /// `host` or `host/path`.
    pub key: String,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub least_connection: bool,
    /// Responses of this route by status class (kept across snapshots).
    pub stats: Arc<StatusCounts>,
    cursor: Arc<AtomicUsize>,
}

impl Pool {
    /// The next endpoint not in `tried`: round robin from the shared cursor
    /// (or fewest requests in flight for least-connection routes), avoiding
    /// endpoints that refused a connection recently unless nothing else is
    /// left, and endpoints with `max_conns` requests in flight (0 = no limit).
    pub fn next(&self, tried: &[usize], now_ms: u64, max_conns: usize) -> Choice {
        let n = self.endpoints.len();
        if n == 0 {
            return Choice::Overloaded;
        }
        let full = |e: &Endpoint| max_conns > 0 && e.active() >= max_conns;
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut fallback = None;
        let mut best: Option<(usize, usize)> = None;
        let mut any_untried = false;
        for k in 0..n {
            let i = start.wrapping_add(k) % n;
            if tried.contains(&i) {
                continue;
            }
            any_untried = true;
            let e = &self.endpoints[i];
            if full(e) {
                continue;
            }
            if e.failed_at(now_ms) {
                fallback.get_or_insert(i);
                continue;
            }
            if !self.least_connection {
                return Choice::Endpoint(i, e.clone());
            }
            let active = e.active();
            if best.is_none_or(|(_, a)| active < a) {
                best = Some((i, active));
            }
        }
        match best.map(|(i, _)| i).or(fallback) {
            Some(i) => Choice::Endpoint(i, self.endpoints[i].clone()),
            None if any_untried => Choice::Overloaded,
            None => Choice::Exhausted,
        }
    }

    /// The endpoint of a sticky session, if that instance is still here,
    /// did not refuse connections recently and has room.
    pub fn sticky(
        &self,
        instance_id: &str,
        now_ms: u64,
        max_conns: usize,
    ) -> Option<(usize, Arc<Endpoint>)> {
        self.endpoints
            .iter()
            .position(|e| e.instance_id.as_deref() == Some(instance_id))
            .filter(|&i| {
                let e = &self.endpoints[i];
                !e.failed_at(now_ms) && (max_conns == 0 || e.active() < max_conns)
            })
            .map(|i| (i, self.endpoints[i].clone()))
    }
}

struct Entry {
    endpoint: Arc<Endpoint>,
    last_seen: Instant,
    stale_threshold: Duration,
}

struct Route {
    /// Few per route: a vector searched by address.
    entries: Vec<Entry>,
    cursor: Arc<AtomicUsize>,
    stats: Arc<StatusCounts>,
}

impl Route {
    fn new() -> Route {
        Route {
            entries: Vec::new(),
            cursor: Arc::new(AtomicUsize::new(fastrand::usize(..))),
            stats: Arc::default(),
        }
    }
}

/// The pools of one host, longest path prefix first.
type HostPools = Arc<[(Box<str>, Arc<Pool>)]>;

#[derive(Default)]
struct Host {
    /// Path prefix (`""` or `/x`) and its route; few per host.
    paths: Vec<(String, Route)>,
    /// Pools built at the last snapshot; `None` when changed since.
    cached: Option<HostPools>,
}

/// FNV-1a: the snapshot's keys are hosts registered by the platform (not
/// chosen by clients), so a keyed hash buys nothing against flooding, and
/// FNV hashes a short host several times faster than SipHash.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Hasher of the snapshot maps.
pub type FastHash = std::hash::BuildHasherDefault<Fnv>;

/// The writer's table: host → path prefix → route.
#[derive(Default)]
pub struct Table {
    hosts: HashMap<Arc<str>, Host>,
    /// Number of (host, path) routes.
    routes: usize,
    /// No endpoint can be stale before this (a lower bound: refreshes only
    /// push expiries later), so most prune ticks need no scan.
    next_expiry: Option<Instant>,
}

/// Lowercases a host and strips its port (`Foo.com:8080` → `foo.com`);
/// borrows when nothing changes (the common case on the hot path).
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let bare = bare.trim_end_matches('.');
    if bare.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(bare.to_ascii_lowercase())
    } else {
        Cow::Borrowed(bare)
    }
}

/// Splits a registered uri (`Host.com/Path/`, maybe with a scheme) into a
/// normalized host and path prefix (`""` or `/Path`).
pub fn split_uri(uri: &str) -> Option<(String, String)> {
    let uri = uri.trim();
    let uri = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let (host, path) = match uri.find('/') {
        Some(i) => (&uri[..i], &uri[i..]),
        None => (uri, ""),
    };
    let host = normalize_host(host).into_owned();
    if host.is_empty() {
        return None;
    }
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    Some((host, path.to_string()))
}

fn route_key(host: &str, path: &str) -> String {
    format!("{host}{path}")
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds or refreshes the endpoint for every uri. Returns whether the set
    /// of endpoints (or their metadata) changed, i.e. a new snapshot is needed.
    pub fn register(
        &mut self,
        reg: &RouteRegistration,
        default_stale: Duration,
        now: Instant,
    ) -> bool {
        let address = format!("{}:{}", reg.host, reg.port);
        let stale_threshold = reg
            .stale_threshold_s
            .map_or(default_stale, Duration::from_secs);
        let expiry = now + stale_threshold;
        self.next_expiry = Some(self.next_expiry.map_or(expiry, |e| e.min(expiry)));
        let mut changed = false;
        let mut shared: Option<Arc<Endpoint>> = None;
        for (host, path) in reg.uris.iter().filter_map(|u| split_uri(u)) {
            let h = match self.hosts.get_mut(host.as_str()) {
                Some(h) => h,
                None => self.hosts.entry(Arc::from(host.as_str())).or_default(),
            };
            let route = match h.paths.iter().position(|(p, _)| *p == path) {
                Some(i) => &mut h.paths[i].1,
                None => {
                    self.routes += 1;
                    // Exact capacity: most hosts have one path.
                    h.paths.reserve_exact(1);
                    h.paths.push((path, Route::new()));
                    let last = h.paths.len() - 1;
                    &mut h.paths[last].1
                }
            };
            let found = route
                .entries
                .iter()
                .position(|e| e.endpoint.address == address);
            if let Some(i) = found {
                let e = &mut route.entries[i];
                if e.endpoint.same_registration(reg) {
                    e.last_seen = now;
                    e.stale_threshold = stale_threshold;
                    continue;
                }
            }
            let endpoint = shared
                .get_or_insert_with(|| {
                    Arc::new(Endpoint::new(
                        address.clone(),
                        reg.app_id.clone(),
                        reg.instance_id.clone(),
                        reg.tags.clone(),
                    ))
                })
                .clone();
            let entry = Entry {
                endpoint,
                last_seen: now,
                stale_threshold,
            };
            match found {
                Some(i) => route.entries[i] = entry,
                None => {
                    route.entries.reserve_exact(1);
                    route.entries.push(entry);
                }
            }
            h.cached = None;
            changed = true;
        }
        changed
    }

    /// Removes the endpoint from every uri; routes left empty disappear.
    pub fn unregister(&mut self, reg: &RouteRegistration) -> bool {
        let address = format!("{}:{}", reg.host, reg.port);
        let mut changed = false;
        for (host, path) in reg.uris.iter().filter_map(|u| split_uri(u)) {
            let Some(h) = self.hosts.get_mut(host.as_str()) else {
                continue;
            };
            if let Some(pi) = h.paths.iter().position(|(p, _)| *p == path) {
                let route = &mut h.paths[pi].1;
                if let Some(i) = route
                    .entries
                    .iter()
                    .position(|e| e.endpoint.address == address)
                {
                    route.entries.remove(i);
                    changed = true;
                    h.cached = None;
                }
                if route.entries.is_empty() {
                    h.paths.remove(pi);
                    self.routes -= 1;
                }
            }
            if h.paths.is_empty() {
                self.hosts.remove(host.as_str());
            }
        }
        changed
    }

    /// Drops endpoints not seen within their stale threshold. Returns the
    /// number removed. Scans only once something may have expired.
    pub fn prune(&mut self, now: Instant) -> usize {
        if self.next_expiry.is_none_or(|e| now <= e) {
            return 0;
        }
        let mut removed = 0;
        let mut routes_removed = 0;
        let mut next: Option<Instant> = None;
        for h in self.hosts.values_mut() {
            let mut host_changed = false;
            for (_, route) in h.paths.iter_mut() {
                let before = route.entries.len();
                route.entries.retain(|e| {
                    let expiry = e.last_seen + e.stale_threshold;
                    let keep = now <= expiry;
                    if keep {
                        next = Some(next.map_or(expiry, |n| n.min(expiry)));
                    }
                    keep
                });
                let gone = before - route.entries.len();
                removed += gone;
                host_changed |= gone > 0;
            }
            if host_changed {
                let before = h.paths.len();
                h.paths.retain(|(_, r)| !r.entries.is_empty());
                routes_removed += before - h.paths.len();
                h.cached = None;
            }
        }
        self.next_expiry = next;
        if removed > 0 {
            self.hosts.retain(|_, h| !h.paths.is_empty());
            self.routes -= routes_removed;
        }
        removed
    }

    /// Marks every endpoint as just seen (after a NATS outage, so that routes
    /// get a full threshold to be re-registered instead of being pruned at once).
    pub fn touch_all(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        for e in self
            .hosts
            .values_mut()
            .flat_map(|h| h.paths.iter_mut())
            .flat_map(|(_, r)| r.entries.iter_mut())
        {
            e.last_seen = now;
            let expiry = now + e.stale_threshold;
            next = Some(next.map_or(expiry, |n| n.min(expiry)));
        }
        self.next_expiry = next;
    }

    /// Number of routes (host + path prefix).
    pub fn len(&self) -> usize {
        self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The immutable view for the proxy. Hosts unchanged since the last
    /// snapshot reuse their pools (and cursors, and endpoint state).
    pub fn snapshot(&mut self) -> Snapshot {
        let mut exact = HashMap::with_capacity_and_hasher(self.hosts.len(), FastHash::default());
        let mut wildcard = HashMap::with_hasher(FastHash::default());
        for (name, h) in &mut self.hosts {
            let pools = h
                .cached
                .get_or_insert_with(|| build_host(name, &h.paths))
                .clone();
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.insert(Arc::<str>::from(parent), pools),
                None => exact.insert(name.clone(), pools),
            };
        }
        Snapshot {
            exact,
            wildcard,
            routes: self.routes,
        }
    }
}

fn build_host(host: &str, paths: &[(String, Route)]) -> HostPools {
    let mut pools: Vec<(Box<str>, Arc<Pool>)> = paths
        .iter()
        .map(|(path, r)| {
            let endpoints: Vec<Arc<Endpoint>> =
                r.entries.iter().map(|e| e.endpoint.clone()).collect();
            let least_connection = endpoints
                .iter()
                .any(|e| e.tag(LB_TAG) == Some(LB_LEAST_CONNECTION));
            let pool = Pool {
                key: route_key(host, path),
                endpoints,
                least_connection,
                stats: r.stats.clone(),
                cursor: r.cursor.clone(),
            };
            (Box::from(path.as_str()), Arc::new(pool))
        })
        .collect();
    // Longest prefix first.
    pools.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    pools.into()
}

/// Immutable route table read by the proxy.
#[derive(Debug, Default)]
pub struct Snapshot {
    exact: HashMap<Arc<str>, HostPools, FastHash>,
    /// `*.parent` routes keyed by `parent`.
    wildcard: HashMap<Arc<str>, HostPools, FastHash>,
    routes: usize,
}

fn path_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'/') | Some(b'?')))
}

fn find_path(pools: &HostPools, path: &str) -> Option<Arc<Pool>> {
    pools
        .iter()
        .find(|(p, _)| path_matches(p, path))
        .map(|(_, pool)| pool.clone())
}

impl Snapshot {
    /// The pool for a request: exact host first, then wildcards `*.parent`
    /// from the closest parent; within a host the longest matching path prefix.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Arc<Pool>> {
        let host = normalize_host(host);
        if let Some(pool) = self.exact.get(&*host).and_then(|p| find_path(p, path)) {
            return Some(pool);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest: &str = &host;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(pool) = self.wildcard.get(parent).and_then(|p| find_path(p, path)) {
                return Some(pool);
            }
            rest = parent;
        }
        None
    }

    /// `{ "host[/path]": [endpoint, ...] }` for the admin `/routes` dump.
    pub fn dump(&self) -> BTreeMap<&str, Vec<&Endpoint>> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .flat_map(|pools| pools.iter())
            .map(|(_, pool)| {
                (
                    pool.key.as_str(),
                    pool.endpoints.iter().map(|e| &**e).collect(),
                )
            })
            .collect()
    }

    pub fn route_count(&self) -> usize {
        self.routes
    }

    /// Every route's key and response counters.
    pub fn route_stats(&self) -> impl Iterator<Item = (&str, &StatusCounts)> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .flat_map(|pools| pools.iter())
            .map(|(_, pool)| (pool.key.as_str(), &*pool.stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str], port: u16) -> RouteRegistration {
        RouteRegistration {
            host: "127.0.0.1".into(),
            port,
            uris: uris.iter().map(|s| s.to_string()).collect(),
            app_id: Some("app".into()),
            instance_id: Some(format!("i{port}")),
            tags: BTreeMap::new(),
            stale_threshold_s: None,
        }
    }

    const STALE: Duration = Duration::from_secs(20);

    fn addrs(s: &Snapshot, host: &str, path: &str) -> Vec<String> {
        s.lookup(host, path)
            .map(|p| p.endpoints.iter().map(|e| e.address.clone()).collect())
            .unwrap_or_default()
    }

    fn pick(pool: &Pool, tried: &[usize], now: u64) -> usize {
        match pool.next(tried, now, 0) {
            Choice::Endpoint(i, _) => i,
            other => panic!("no endpoint: {other:?}"),
        }
    }

    #[test]
    fn normalizes_hosts() {
        assert_eq!(normalize_host("Foo.Example.COM:8080"), "foo.example.com");
        assert!(matches!(
            normalize_host("foo.com:80"),
            Cow::Borrowed("foo.com")
        ));
        assert_eq!(normalize_host("foo.com."), "foo.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(
            split_uri("http://My.App.localhost/Api/"),
            Some(("my.app.localhost".into(), "/Api".into()))
        );
        assert_eq!(
            split_uri("a.localhost"),
            Some(("a.localhost".into(), String::new()))
        );
        assert_eq!(split_uri(""), None);
    }

    #[test]
    fn register_lookup_unregister() {
        let t0 = Instant::now();
        let mut t = Table::new();
        assert!(t.register(&reg(&["app.localhost"], 1), STALE, t0));
        assert!(
            !t.register(&reg(&["app.localhost"], 1), STALE, t0),
            "refresh is not a change"
        );
        assert!(t.register(&reg(&["App.Localhost"], 2), STALE, t0));
        let s = t.snapshot();
        assert_eq!(
            addrs(&s, "APP.localhost:8080", "/"),
            vec!["127.0.0.1:1", "127.0.0.1:2"]
        );
        assert!(s.lookup("other.localhost", "/").is_none());
        assert!(t.unregister(&reg(&["app.localhost"], 1)));
        assert!(!t.unregister(&reg(&["app.localhost"], 1)));
        assert_eq!(
            addrs(&t.snapshot(), "app.localhost", "/"),
            vec!["127.0.0.1:2"]
        );
        assert!(t.unregister(&reg(&["app.localhost"], 2)));
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(t.snapshot().lookup("app.localhost", "/").is_none());
    }

    #[test]
    fn metadata_change_is_a_change() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        let mut r = reg(&["a.x"], 1);
        r.instance_id = Some("other".into());
        assert!(t.register(&r, STALE, t0));
        let s = t.snapshot();
        assert_eq!(
            s.lookup("a.x", "/").expect("pool").endpoints[0]
                .instance_id
                .as_deref(),
            Some("other")
        );
    }

    #[test]
    fn path_prefixes_and_wildcards() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x/api"], 2), STALE, t0);
        t.register(&reg(&["a.x/api/v2"], 3), STALE, t0);
        t.register(&reg(&["*.x"], 4), STALE, t0);
        t.register(&reg(&["*.b.x"], 5), STALE, t0);
        let s = t.snapshot();
        assert_eq!(addrs(&s, "a.x", "/"), vec!["127.0.0.1:1"]);
        assert_eq!(addrs(&s, "a.x", "/apiary"), vec!["127.0.0.1:1"]);
        assert_eq!(addrs(&s, "a.x", "/api"), vec!["127.0.0.1:2"]);
        assert_eq!(addrs(&s, "a.x", "/api/v1/z"), vec!["127.0.0.1:2"]);
        assert_eq!(addrs(&s, "a.x", "/api/v2/z"), vec!["127.0.0.1:3"]);
        assert_eq!(addrs(&s, "b.x", "/"), vec!["127.0.0.1:4"]);
        assert_eq!(addrs(&s, "C.B.x:80", "/"), vec!["127.0.0.1:5"]);
        assert_eq!(addrs(&s, "d.c.x", "/"), vec!["127.0.0.1:4"]);
        assert!(s.lookup("x", "/").is_none());
        assert_eq!(s.route_count(), 5);
        assert!(s.dump().contains_key("a.x/api"));
        assert!(s.dump().contains_key("*.x"));
    }

    #[test]
    fn prune_uses_per_route_threshold_and_time_passed_in() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        let mut short = reg(&["a.x"], 2);
        short.stale_threshold_s = Some(2);
        t.register(&short, STALE, t0);
        assert_eq!(t.prune(t0 + Duration::from_secs(2)), 0);
        assert_eq!(t.prune(t0 + Duration::from_secs(3)), 1);
        assert_eq!(addrs(&t.snapshot(), "a.x", "/"), vec!["127.0.0.1:1"]);
        // A refresh keeps it alive.
        t.register(&reg(&["a.x"], 1), STALE, t0 + Duration::from_secs(15));
        assert_eq!(t.prune(t0 + Duration::from_secs(30)), 0);
        assert_eq!(t.prune(t0 + Duration::from_secs(36)), 1);
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn touch_all_defers_pruning_after_an_outage() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        // Pruning suspended for 60 s (caller does not prune), then reconnect.
        t.touch_all(t0 + Duration::from_secs(60));
        assert_eq!(t.prune(t0 + Duration::from_secs(61)), 0);
        assert_eq!(t.prune(t0 + Duration::from_secs(81)), 1);
    }

    #[test]
    fn round_robin_visits_all_and_skips_tried() {
        let t0 = Instant::now();
        let mut t = Table::new();
        for p in 1..=3 {
            t.register(&reg(&["a.x"], p), STALE, t0);
        }
        let s = t.snapshot();
        let pool = s.lookup("a.x", "/").expect("pool");
        let mut seen: Vec<usize> = (0..3).map(|_| pick(&pool, &[], 0)).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
        let first = pick(&pool, &[], 0);
        let second = pick(&pool, &[first], 0);
        assert_ne!(first, second);
        let third = pick(&pool, &[first, second], 0);
        assert!(third != first && third != second);
        assert!(matches!(pool.next(&[0, 1, 2], 0, 0), Choice::Exhausted));
    }

    #[test]
    fn failed_endpoints_are_skipped_for_a_while() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x"], 2), STALE, t0);
        let s = t.snapshot();
        let pool = s.lookup("a.x", "/").expect("pool");
        pool.endpoints[0].mark_failed(1000);
        for _ in 0..4 {
            assert_eq!(pick(&pool, &[], 999), 1);
        }
        // Still used when nothing else is left.
        assert_eq!(pick(&pool, &[1], 999), 0);
        // And again once the penalty is over.
        let picks: Vec<usize> = (0..2).map(|_| pick(&pool, &[], 1000)).collect();
        assert!(picks.contains(&0));
        // The penalty survives a new snapshot caused by another route.
        pool.endpoints[0].mark_failed(5000);
        t.register(&reg(&["other.x"], 9), STALE, t0);
        let s = t.snapshot();
        let pool = s.lookup("a.x", "/").expect("pool");
        for _ in 0..4 {
            assert_eq!(pick(&pool, &[], 2000), 1);
        }
    }

    #[test]
    fn least_connection_and_limits() {
        let t0 = Instant::now();
        let mut t = Table::new();
        for p in 1..=3 {
            let mut r = reg(&["lc.x"], p);
            r.tags.insert(LB_TAG.into(), LB_LEAST_CONNECTION.into());
            t.register(&r, STALE, t0);
        }
        let s = t.snapshot();
        let pool = s.lookup("lc.x", "/").expect("pool");
        assert!(pool.least_connection);
        let g0 = pool.endpoints[0].acquire();
        let _g1 = pool.endpoints[1].acquire();
        let _g1b = pool.endpoints[1].acquire();
        for _ in 0..5 {
            assert_eq!(pick(&pool, &[], 0), 2);
        }
        let _g2 = pool.endpoints[2].acquire();
        let _g2b = pool.endpoints[2].acquire();
        assert_eq!(pick(&pool, &[], 0), 0);
        drop(g0);
        assert_eq!(pool.endpoints[0].active(), 0);
        // Connection limit: 2 per backend, 1 and 2 are full.
        assert_eq!(pool.next(&[], 0, 2).endpoint_index(), Some(0));
        let _g0 = pool.endpoints[0].acquire();
        let _g0b = pool.endpoints[0].acquire();
        assert!(matches!(pool.next(&[], 0, 2), Choice::Overloaded));
        // Round robin route (no tag) is not least-connection.
        t.register(&reg(&["rr.x"], 1), STALE, t0);
        assert!(
            !t.snapshot()
                .lookup("rr.x", "/")
                .expect("pool")
                .least_connection
        );
    }

    #[test]
    fn sticky_finds_the_instance_when_usable() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x"], 2), STALE, t0);
        let s = t.snapshot();
        let pool = s.lookup("a.x", "/").expect("pool");
        assert_eq!(pool.sticky("i2", 0, 0).map(|p| p.0), Some(1));
        assert!(pool.sticky("gone", 0, 0).is_none());
        pool.endpoints[1].mark_failed(10);
        assert!(pool.sticky("i2", 5, 0).is_none());
    }

    #[test]
    fn cursor_survives_snapshots() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x"], 2), STALE, t0);
        let a = pick(&t.snapshot().lookup("a.x", "/").expect("pool"), &[], 0);
        t.register(&reg(&["b.x"], 2), STALE, t0);
        let b = pick(&t.snapshot().lookup("a.x", "/").expect("pool"), &[], 0);
        assert_ne!(a, b);
    }

    #[test]
    fn many_routes() {
        let t0 = Instant::now();
        let mut t = Table::new();
        for i in 0..20_000u16 {
            t.register(&reg(&[&format!("app{i}.x")], i), STALE, t0);
        }
        assert_eq!(t.len(), 20_000);
        let s = t.snapshot();
        assert_eq!(s.route_count(), 20_000);
        assert_eq!(addrs(&s, "app19999.x", "/"), vec!["127.0.0.1:19999"]);
    }
}
