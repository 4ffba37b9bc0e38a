//! The route table: pure logic, no I/O, time passed in.
//!
//! The NATS task owns a mutable [`Table`] (with `last_seen` per endpoint) and
//! publishes an immutable [`Snapshot`] whenever the set of endpoints changes;
//! the proxy only ever reads snapshots (through `ArcSwap`, no locks).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::RouteRegistration;
use serde::Serialize;

/// One backend of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    pub app_id: Option<String>,
    pub instance_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// The endpoints of one route as seen by the proxy, with its round-robin cursor.
#[derive(Debug)]
pub struct Pool {
    /// `host` or `host/path`.
    pub key: String,
    pub endpoints: Vec<Arc<Endpoint>>,
    cursor: Arc<AtomicUsize>,
    /// Per endpoint: skip it until this time (ms, caller's clock) after a
    /// connection failure.
    skip_until: Vec<AtomicU64>,
}

impl Pool {
    /// Round robin from the shared cursor: the next endpoint whose position
    /// is not in `tried`, preferring endpoints that did not fail recently
    /// (if all failed recently, one of them is still returned).
    pub fn next(&self, tried: &[usize], now_ms: u64) -> Option<(usize, Arc<Endpoint>)> {
        let n = self.endpoints.len();
        let mut fallback = None;
        for _ in 0..n {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            if tried.contains(&i) {
                continue;
            }
            if self.skip_until[i].load(Ordering::Relaxed) > now_ms {
                fallback.get_or_insert(i);
                continue;
            }
            return Some((i, self.endpoints[i].clone()));
        }
        fallback.map(|i| (i, self.endpoints[i].clone()))
    }

    /// Skips endpoint `i` until `until_ms` (it refused a connection).
    pub fn mark_failed(&self, i: usize, until_ms: u64) {
        if let Some(s) = self.skip_until.get(i) {
            s.store(until_ms, Ordering::Relaxed);
        }
    }
}

struct Entry {
    endpoint: Arc<Endpoint>,
    last_seen: Instant,
    stale_threshold: Duration,
}

struct Route {
    /// By address.
    entries: BTreeMap<String, Entry>,
    cursor: Arc<AtomicUsize>,
}

impl Route {
    fn new() -> Route {
        Route {
            entries: BTreeMap::new(),
            cursor: Arc::new(AtomicUsize::new(fastrand::usize(..))),
        }
    }
}

/// The writer's table: host → path prefix ("" or "/x") → route.
#[derive(Default)]
pub struct Table {
    routes: BTreeMap<String, BTreeMap<String, Route>>,
}

/// Lowercases a host and strips its port (`Foo.com:8080` → `foo.com`).
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let bare = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        }
    };
    bare.to_ascii_lowercase()
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
    let host = normalize_host(host);
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
        let endpoint = Endpoint {
            address: format!("{}:{}", reg.host, reg.port),
            app_id: reg.app_id.clone(),
            instance_id: reg.instance_id.clone(),
            tags: reg.tags.clone(),
        };
        let stale_threshold = reg
            .stale_threshold_s
            .map_or(default_stale, Duration::from_secs);
        let mut changed = false;
        for (host, path) in reg.uris.iter().filter_map(|u| split_uri(u)) {
            let route = self
                .routes
                .entry(host)
                .or_default()
                .entry(path)
                .or_insert_with(Route::new);
            match route.entries.get_mut(&endpoint.address) {
                Some(e) if *e.endpoint == endpoint => {
                    e.last_seen = now;
                    e.stale_threshold = stale_threshold;
                }
                _ => {
                    route.entries.insert(
                        endpoint.address.clone(),
                        Entry {
                            endpoint: Arc::new(endpoint.clone()),
                            last_seen: now,
                            stale_threshold,
                        },
                    );
                    changed = true;
                }
            }
        }
        changed
    }

    /// Removes the endpoint from every uri; routes left empty disappear.
    pub fn unregister(&mut self, reg: &RouteRegistration) -> bool {
        let address = format!("{}:{}", reg.host, reg.port);
        let mut changed = false;
        for (host, path) in reg.uris.iter().filter_map(|u| split_uri(u)) {
            if let Some(paths) = self.routes.get_mut(&host) {
                if let Some(route) = paths.get_mut(&path) {
                    changed |= route.entries.remove(&address).is_some();
                    if route.entries.is_empty() {
                        paths.remove(&path);
                    }
                }
                if paths.is_empty() {
                    self.routes.remove(&host);
                }
            }
        }
        changed
    }

    /// Drops endpoints not seen within their stale threshold. Returns the
    /// number removed.
    pub fn prune(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        for paths in self.routes.values_mut() {
            for route in paths.values_mut() {
                let before = route.entries.len();
                route
                    .entries
                    .retain(|_, e| now.saturating_duration_since(e.last_seen) <= e.stale_threshold);
                removed += before - route.entries.len();
            }
            paths.retain(|_, r| !r.entries.is_empty());
        }
        self.routes.retain(|_, p| !p.is_empty());
        removed
    }

    /// Marks every endpoint as just seen (after a NATS outage, so that routes
    /// get a full threshold to be re-registered instead of being pruned at once).
    pub fn touch_all(&mut self, now: Instant) {
        for e in self
            .routes
            .values_mut()
            .flat_map(|p| p.values_mut())
            .flat_map(|r| r.entries.values_mut())
        {
            e.last_seen = now;
        }
    }

    pub fn len(&self) -> usize {
        self.routes.values().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The immutable view for the proxy.
    pub fn snapshot(&self) -> Snapshot {
        let mut hosts = HashMap::with_capacity(self.routes.len());
        for (host, paths) in &self.routes {
            let mut pools: Vec<(String, Arc<Pool>)> = paths
                .iter()
                .map(|(path, r)| {
                    let pool = Pool {
                        key: route_key(host, path),
                        endpoints: r.entries.values().map(|e| e.endpoint.clone()).collect(),
                        cursor: r.cursor.clone(),
                        skip_until: r.entries.values().map(|_| AtomicU64::new(0)).collect(),
                    };
                    (path.clone(), Arc::new(pool))
                })
                .collect();
            // Longest prefix first.
            pools.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
            hosts.insert(host.clone(), pools);
        }
        Snapshot { hosts }
    }
}

/// Immutable route table read by the proxy.
#[derive(Debug, Default)]
pub struct Snapshot {
    hosts: HashMap<String, Vec<(String, Arc<Pool>)>>,
}

fn path_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'/') | Some(b'?')))
}

impl Snapshot {
    /// The pool for a request: exact host first, then wildcards `*.parent`
    /// from the closest parent; within a host the longest matching path prefix.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Arc<Pool>> {
        let host = normalize_host(host);
        let find = |h: &str| {
            self.hosts.get(h).and_then(|pools| {
                pools
                    .iter()
                    .find(|(p, _)| path_matches(p, path))
                    .map(|(_, pool)| pool.clone())
            })
        };
        if let Some(pool) = find(&host) {
            return Some(pool);
        }
        let mut rest = host.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(pool) = find(&format!("*.{parent}")) {
                return Some(pool);
            }
            rest = parent;
        }
        None
    }

    /// `{ "host[/path]": [endpoint, ...] }` for the admin `/routes` dump.
    pub fn dump(&self) -> BTreeMap<String, Vec<Endpoint>> {
        self.hosts
            .values()
            .flatten()
            .map(|(_, pool)| {
                (
                    pool.key.clone(),
                    pool.endpoints.iter().map(|e| (**e).clone()).collect(),
                )
            })
            .collect()
    }

    pub fn route_count(&self) -> usize {
        self.hosts.values().map(Vec::len).sum()
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

    #[test]
    fn normalizes_hosts() {
        assert_eq!(normalize_host("Foo.Example.COM:8080"), "foo.example.com");
        assert_eq!(normalize_host("foo.com"), "foo.com");
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
        let s = t.snapshot();
        assert_eq!(addrs(&s, "a.x", "/"), vec!["127.0.0.1:1"]);
        assert_eq!(addrs(&s, "a.x", "/apiary"), vec!["127.0.0.1:1"]);
        assert_eq!(addrs(&s, "a.x", "/api"), vec!["127.0.0.1:2"]);
        assert_eq!(addrs(&s, "a.x", "/api/v1/z"), vec!["127.0.0.1:2"]);
        assert_eq!(addrs(&s, "a.x", "/api/v2/z"), vec!["127.0.0.1:3"]);
        assert_eq!(addrs(&s, "b.x", "/"), vec!["127.0.0.1:4"]);
        assert_eq!(addrs(&s, "c.b.x", "/"), vec!["127.0.0.1:4"]);
        assert!(s.lookup("x", "/").is_none());
        assert_eq!(s.route_count(), 4);
        assert!(s.dump().contains_key("a.x/api"));
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
        let mut seen: Vec<usize> = (0..3).map(|_| pool.next(&[], 0).expect("ep").0).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
        let (first, _) = pool.next(&[], 0).expect("ep");
        let (second, _) = pool.next(&[first], 0).expect("ep");
        assert_ne!(first, second);
        let (third, _) = pool.next(&[first, second], 0).expect("ep");
        assert!(third != first && third != second);
        assert!(pool.next(&[0, 1, 2], 0).is_none());
    }

    #[test]
    fn failed_endpoints_are_skipped_for_a_while() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x"], 2), STALE, t0);
        let s = t.snapshot();
        let pool = s.lookup("a.x", "/").expect("pool");
        pool.mark_failed(0, 1000);
        for _ in 0..4 {
            assert_eq!(pool.next(&[], 999).expect("ep").0, 1);
        }
        // Still used when nothing else is left.
        assert_eq!(pool.next(&[1], 999).expect("ep").0, 0);
        // And again once the penalty is over.
        let picks: Vec<usize> = (0..2)
            .map(|_| pool.next(&[], 1000).expect("ep").0)
            .collect();
        assert!(picks.contains(&0));
    }

    #[test]
    fn cursor_survives_snapshots() {
        let t0 = Instant::now();
        let mut t = Table::new();
        t.register(&reg(&["a.x"], 1), STALE, t0);
        t.register(&reg(&["a.x"], 2), STALE, t0);
        let a = t
            .snapshot()
            .lookup("a.x", "/")
            .expect("pool")
            .next(&[], 0)
            .expect("ep")
            .0;
        let b = t
            .snapshot()
            .lookup("a.x", "/")
            .expect("pool")
            .next(&[], 0)
            .expect("ep")
            .0;
        assert_ne!(a, b);
    }
}
