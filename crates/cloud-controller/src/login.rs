//! Password logins under attack (UAA's behaviour, docs/architecture.md §6):
//!
//! - failed logins are counted per user name and per client address; too
//!   many within a window lock further attempts for a while, the right
//!   password included, without spending a password check on them
//!   ([`Lockouts`], pure: a function of the attempts and `now`);
//! - password checks run a bounded number at a time, on their own threads
//!   at the lowest CPU priority (so a flood of them leaves the API its
//!   cores: `GET /v3/apps` keeps answering within 100 ms); a check that
//!   cannot start within a short wait is refused (503), and each gives its
//!   memory back ([`PasswordChecks`]);
//! - an unknown user name costs one full check too (against a dummy hash),
//!   so timing does not tell which names exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Makes every allocation of 1 MiB or more its own mapping, returned to the
/// system when freed. A password check takes ~19 MiB (argon2); on glibc the
/// adaptive threshold would otherwise keep that much in the heap arena of
/// each blocking thread that ever hashed, and a login flood would leave the
/// controller 100 MB larger (attack test `attacks::logins`).
pub fn return_hash_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tunables; called once at
    // start before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// When attempts lock: `max_failures` failures within `window` lock the
/// key for `lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
    pub lock: Duration,
}

/// The text UAA answers for a locked account (401).
pub const LOCKED: &str =
    "Your account has been locked because of too many failed attempts to login.";

/// How many keys each table tracks at most (bounded memory under a flood
/// of made-up names): beyond it, entries whose window passed and that are
/// not locked are dropped first; if none, the new key is not tracked.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table {
    policy: Policy,
    entries: HashMap<String, Entry>,
}

impl Table {
    fn new(policy: Policy) -> Table {
        Table {
            policy,
            entries: HashMap::new(),
        }
    }

    fn locked(&self, key: &str, now: Instant) -> bool {
        self.entries
            .get(key)
            .and_then(|e| e.locked_until)
            .is_some_and(|until| now < until)
    }

    fn failed(&mut self, key: &str, now: Instant) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_TRACKED {
            let p = self.policy;
            self.entries.retain(|_, e| {
                e.locked_until.is_some_and(|u| now < u) || now.duration_since(e.since) < p.window
            });
            if self.entries.len() >= MAX_TRACKED {
                return;
            }
        }
        let p = self.policy;
        let e = self.entries.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            since: now,
            locked_until: None,
        });
        if e.locked_until.is_some_and(|u| now >= u) || now.duration_since(e.since) >= p.window {
            *e = Entry {
                failures: 0,
                since: now,
                locked_until: None,
            };
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= p.max_failures {
            e.locked_until = Some(now + p.lock);
        }
    }

    fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// Failed logins per user name and per client address.
#[derive(Debug)]
pub struct Lockouts {
    users: Table,
    addrs: Table,
}

impl Lockouts {
    pub fn new(per_user: Policy, per_addr: Policy) -> Lockouts {
        Lockouts {
            users: Table::new(per_user),
            addrs: Table::new(per_addr),
        }
    }

    /// Whether an attempt for `user` from `addr` is refused at once.
    pub fn locked(&self, user: &str, addr: &str, now: Instant) -> bool {
        self.users.locked(user, now) || self.addrs.locked(addr, now)
    }

    /// A wrong password (or unknown name).
    pub fn failed(&mut self, user: &str, addr: &str, now: Instant) {
        self.users.failed(user, now);
        self.addrs.failed(addr, now);
    }

    /// A good login clears the user's count (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.users.forget(user);
    }
}

/// Too many password checks waiting: try again shortly (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins at once; try again shortly")]
pub struct Busy;

/// A turn to check a password ([`PasswordChecks::admit`]).
#[derive(Debug)]
pub struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// One password check for a checker thread.
struct Check {
    password: String,
    hash: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// Password checks, a bounded number at a time, on `concurrency` threads
/// of their own at nice 19: under a login flood the scheduler still gives
/// the async workers (every other request) nearly all of the CPU.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    wait: Duration,
    dummy: String,
    checks: std::sync::mpsc::SyncSender<Check>,
}

impl PasswordChecks {
    /// `concurrency` checks at once; a check waits at most `wait` to start.
    pub fn new(concurrency: usize, wait: Duration) -> Result<PasswordChecks, String> {
        let n = concurrency.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Check>(n);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || checker(&rx))
                .map_err(|e| format!("password check thread: {e}"))?;
        }
        Ok(PasswordChecks {
            permits: Arc::new(Semaphore::new(n)),
            wait,
            dummy: crate::auth::hash_password(&uuid::Uuid::new_v4().to_string())?,
            checks: tx,
        })
    }

    /// A turn to check a password, within the wait. Taken before the
    /// user's row is read, so a flood of logins queues here, not on the
    /// database's connections that every other request needs.
    pub async fn admit(&self) -> Result<Admitted, Busy> {
        tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map(|p| Admitted { _permit: p })
            .map_err(|_| Busy)
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) the
    /// same work against a dummy hash, and `false`.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, Busy> {
        let turn = self.admit().await?;
        self.verify_admitted(turn, password, hash).await
    }

    /// [`PasswordChecks::verify`] with a turn already taken.
    pub async fn verify_admitted(
        &self,
        turn: Admitted,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, Busy> {
        let known = hash.is_some();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let check = Check {
            password: password.to_string(),
            hash: hash.unwrap_or(&self.dummy).to_string(),
            reply,
        };
        // Never blocks: the permits keep at most as many checks in flight
        // as the channel holds (a check whose caller went away may still
        // be running: then it is full, and this one is refused).
        self.checks.try_send(check).map_err(|_| Busy)?;
        let ok = answer.await.unwrap_or(false);
        drop(turn);
        Ok(ok && known)
    }
}

/// A checker thread: lowest priority, then checks until the controller
/// drops its [`PasswordChecks`].
fn checker(rx: &std::sync::Mutex<std::sync::mpsc::Receiver<Check>>) {
    lowest_priority();
    loop {
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(p) => p.into_inner().recv(),
        };
        let Ok(c) = next else { return };
        let ok = crate::auth::verify_password(&c.password, &c.hash);
        give_memory_back();
        let _ = c.reply.send(ok);
    }
}

/// Nice 19 for the calling thread (Linux: priorities are per thread).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority on our own thread id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// argon2 takes ~19 MiB per check; glibc keeps freed blocks in per-thread
/// arenas, so a burst of checks on many blocking threads would hold
/// gigabytes. Trim them after each check.
fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The client's address as the controller can know it: the last
/// `X-Forwarded-For` entry (the one our router appended), else the peer.
pub fn client_addr(headers: &axum::http::HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: Policy = Policy {
        max_failures: 10,
        window: Duration::from_secs(300),
        lock: Duration::from_secs(300),
    };
    const ADDR: Policy = Policy {
        max_failures: 100,
        window: Duration::from_secs(300),
        lock: Duration::from_secs(300),
    };

    #[test]
    fn ten_failures_lock_the_user_for_the_period_and_no_one_else() {
        let t0 = Instant::now();
        let mut l = Lockouts::new(USER, ADDR);
        for i in 0..9 {
            l.failed("alice", "1.2.3.4", t0 + Duration::from_secs(i));
        }
        assert!(!l.locked("alice", "1.2.3.4", t0 + Duration::from_secs(9)));
        l.failed("alice", "1.2.3.4", t0 + Duration::from_secs(9));
        let now = t0 + Duration::from_secs(10);
        assert!(l.locked("alice", "5.6.7.8", now), "locked from anywhere");
        assert!(!l.locked("bob", "1.2.3.4", now), "others unaffected");
        assert!(l.locked("alice", "x", t0 + Duration::from_secs(308)));
        assert!(
            !l.locked("alice", "x", t0 + Duration::from_secs(310)),
            "lock ends"
        );
    }

    #[test]
    fn failures_outside_the_window_and_a_good_login_start_over() {
        let t0 = Instant::now();
        let mut l = Lockouts::new(USER, ADDR);
        for i in 0..9 {
            l.failed("alice", "a", t0 + Duration::from_secs(i));
        }
        // The window passed: the count starts again.
        l.failed("alice", "a", t0 + Duration::from_secs(400));
        assert!(!l.locked("alice", "a", t0 + Duration::from_secs(401)));
        for i in 0..8 {
            l.failed("alice", "a", t0 + Duration::from_secs(402 + i));
        }
        l.succeeded("alice");
        l.failed("alice", "a", t0 + Duration::from_secs(420));
        assert!(!l.locked("alice", "a", t0 + Duration::from_secs(421)));
    }

    #[test]
    fn one_address_guessing_many_names_is_locked() {
        let t0 = Instant::now();
        let mut l = Lockouts::new(USER, ADDR);
        for i in 0..100 {
            l.failed(&format!("user{i}"), "9.9.9.9", t0);
        }
        assert!(l.locked("someone", "9.9.9.9", t0));
        assert!(!l.locked("someone", "8.8.8.8", t0));
    }

    #[test]
    fn the_tables_stay_bounded() {
        let t0 = Instant::now();
        let mut l = Lockouts::new(USER, ADDR);
        for i in 0..(MAX_TRACKED + 500) {
            l.failed(&format!("u{i}"), &format!("a{i}"), t0);
        }
        assert!(l.users.entries.len() <= MAX_TRACKED);
        assert!(l.addrs.entries.len() <= MAX_TRACKED);
    }

    #[test]
    fn client_address_is_the_last_forwarded_entry_else_the_peer() {
        let mut h = axum::http::HeaderMap::new();
        let peer = Some(std::net::SocketAddr::from(([10, 0, 0, 1], 5)));
        assert_eq!(client_addr(&h, peer), "10.0.0.1");
        h.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().expect("hv"));
        assert_eq!(client_addr(&h, peer), "1.2.3.4");
    }

    #[tokio::test]
    async fn checks_are_bounded_and_unknown_users_cost_a_check() {
        let checks = PasswordChecks::new(1, Duration::from_millis(1)).expect("checks");
        let hash = crate::auth::hash_password("pw").expect("hash");
        assert_eq!(checks.verify("pw", Some(&hash)).await, Ok(true));
        assert_eq!(checks.verify("no", Some(&hash)).await, Ok(false));
        assert_eq!(checks.verify("pw", None).await, Ok(false));
        // One permit, held: the next check cannot start within its wait.
        let held = checks
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("permit");
        assert_eq!(checks.verify("pw", Some(&hash)).await, Err(Busy));
        drop(held);
        assert_eq!(checks.verify("pw", Some(&hash)).await, Ok(true));
    }

    /// The checker threads run at nice 19 (field 19 of the thread's stat).
    #[test]
    fn checks_run_at_the_lowest_priority() {
        let _checks = PasswordChecks::new(2, Duration::from_millis(1)).expect("checks");
        let nices = |want: usize| -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut found = Vec::new();
                for t in std::fs::read_dir("/proc/self/task")
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    if !comm.starts_with("password-check") {
                        continue;
                    }
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    // After the `(comm)` field: state is field 3, nice 19.
                    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                    found.push(rest.split_whitespace().nth(16).unwrap_or("?").to_string());
                }
                if found.len() >= want && found.iter().all(|n| n == "19")
                    || Instant::now() > deadline
                {
                    return found;
                }
                std::thread::yield_now();
            }
        };
        let n = nices(2);
        assert!(n.len() >= 2 && n.iter().all(|n| n == "19"), "{n:?}");
    }
}
