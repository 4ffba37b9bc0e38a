//! Container networking: the per-DEA bridge with `ip` and the rules with
//! `iptables` (batched: `iptables-restore --noflush`), both once at start;
//! per container, only syscalls and rtnetlink (`netlink.rs`): no command
//! runs on the way to a started container.
//!
//! Per DEA: a bridge `pb<tag>` holding `10.254.<k>.1/24` (the subnet index
//! `k` is claimed host-wide with a file under `/run/paas/subnets/`), and
//! iptables chains named `PAAS-<tag>-...` jumped to from the built-in chains.
//! Per container (slot `n`): a named network namespace `paas-<tag>-<n>` and a
//! veth pair `pv<tag><n>` ⇄ `eth0` holding `10.254.<k>.<n>`. Bridge ports are
//! isolated (`bridge_slave isolated on`), so containers of a bridge never
//! reach each other; everything else is filtered in the DEA's chains.
//!
//! Egress is deny by default: a container's new connections go through the
//! dispatch chain `PAAS-<tag>-EGR`, which sends each slot's address to the
//! chain of its rule set (`PAAS-<tag>-R<i>`, one per distinct set of
//! security group rules, shared by every slot with that set); what no rule
//! accepts is rejected. The host itself is never reachable (`INPUT`), nor
//! another container, not even through a host port.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use proto::egress::{Destination, Protocol};
use proto::EgressRule;

use super::netlink;
use crate::error::{DeaError, Result};

const SUBNETS_DIR: &str = "/run/paas/subnets";
/// Where named network namespaces live (as with `ip netns`).
const NETNS_DIR: &str = "/run/netns";
pub const CONTAINER_PORT: u16 = 8080;

/// One egress allow-list entry: `CIDR` or `CIDR:PORT` (tcp and udp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub cidr: String,
    pub port: Option<u16>,
}

impl Egress {
    pub fn parse(s: &str) -> Option<Egress> {
        let s = s.trim();
        let (cidr, port) = match s.rsplit_once(':') {
            Some((c, p)) => (c, Some(p.parse().ok()?)),
            None => (s, None),
        };
        let (ip, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
        ip.parse::<Ipv4Addr>().ok()?;
        let len: u8 = len.parse().ok()?;
        (len <= 32).then(|| Egress {
            cidr: format!("{ip}/{len}"),
            port,
        })
    }
}

/// Servers on the host's loopback that containers may reach: a
/// connection to `address:port` (for a listed port) is DNATed to
/// `127.0.0.1:port` (`route_localnet` is on for the bridge) and accepted
/// in `INPUT` only from slots whose egress rules allow `address:port` over
/// tcp (`PAAS-<tag>-SVCIN`, kept in step by [`Net::apply_egress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostServices {
    pub address: Ipv4Addr,
    pub ports: Vec<u16>,
}

impl HostServices {
    /// The listed ports that `rules` allow over tcp at the address.
    pub fn allowed(&self, rules: &[EgressRule]) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .ports
            .iter()
            .copied()
            .filter(|&port| {
                rules.iter().any(|r| {
                    r.parse()
                        .is_ok_and(|p| p.allows(Protocol::Tcp, self.address, port))
                })
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[derive(Debug)]
pub struct Net {
    pub tag: String,
    /// Subnet index: `10.254.<k>.0/24`.
    pub k: u8,
    /// The bridge's interface index.
    pub bridge: i32,
    rules: Mutex<RuleSets>,
    host_services: Option<HostServices>,
}

/// The rule set chains made so far and the one each slot is sent to.
#[derive(Debug, Default)]
struct RuleSets {
    /// Canonical rules → chain number.
    chains: HashMap<Vec<EgressRule>, u32>,
    next: u32,
    /// Slot → chain number of its dispatch rule.
    slots: HashMap<u8, u32>,
    /// Slot → the host services ports it is let in to.
    services: HashMap<u8, Vec<u16>>,
}

/// The iptables lines accepting what `rules` allow, in `chain`. Rules that
/// do not parse are left out (the controller checks them; a DEA never
/// trusts the bus).
pub fn rule_lines(chain: &str, rules: &[EgressRule]) -> String {
    let mut out = String::new();
    for r in rules {
        let p = match r.parse() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(rule = ?r, error = %e, "skipping an invalid egress rule");
                continue;
            }
        };
        let protos: &[&str] = match p.protocol {
            Protocol::All => &[""],
            Protocol::Tcp => &["tcp"],
            Protocol::Udp => &["udp"],
            Protocol::Icmp => &["icmp"],
        };
        // multiport takes at most 15 ports (a range counts twice).
        let mut port_groups: Vec<String> = Vec::new();
        let mut cur: Vec<String> = Vec::new();
        let mut weight = 0;
        for &(a, b) in &p.ports {
            let (item, w) = if a == b {
                (a.to_string(), 1)
            } else {
                (format!("{a}:{b}"), 2)
            };
            if weight + w > 15 {
                port_groups.push(cur.join(","));
                cur.clear();
                weight = 0;
            }
            cur.push(item);
            weight += w;
        }
        if !cur.is_empty() {
            port_groups.push(cur.join(","));
        }
        for d in &p.destinations {
            let dst = match *d {
                Destination::Cidr(ip, len) => format!("-d {ip}/{len}"),
                Destination::Range(a, b) => format!("-m iprange --dst-range {a}-{b}"),
            };
            for proto in protos {
                let pm = if proto.is_empty() {
                    String::new()
                } else {
                    format!(" -p {proto}")
                };
                match (p.protocol, &p.icmp) {
                    (Protocol::Icmp, Some((t, c))) => {
                        let icmp = match (*t, *c) {
                            (-1, _) => String::new(),
                            (t, -1) => format!(" --icmp-type {t}"),
                            (t, c) => format!(" --icmp-type {t}/{c}"),
                        };
                        out += &format!("-A {chain} {dst}{pm}{icmp} -j ACCEPT\n");
                    }
                    _ if port_groups.is_empty() => {
                        out += &format!("-A {chain} {dst}{pm} -j ACCEPT\n");
                    }
                    _ => {
                        for g in &port_groups {
                            out += &format!(
                                "-A {chain} {dst}{pm} -m multiport --dports {g} -j ACCEPT\n"
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// A slot's network namespace created, its links not yet.
pub struct PendingNet {
    ns: std::os::fd::OwnedFd,
    inside: netlink::Rtnl,
}

pub fn bridge_name(tag: &str) -> String {
    format!("pb{tag}")
}

/// The bridge's own MAC: locally administered, unicast, from the tag and
/// the subnet index.
pub fn bridge_mac(tag: &str, k: u8) -> String {
    let h = |i: usize| tag.get(i..i + 2).unwrap_or("00");
    format!("02:50:{k:02x}:{}:{}:{}", h(0), h(2), h(4))
}

pub fn veth_name(tag: &str, n: u8) -> String {
    format!("pv{tag}{n:02x}")
}

pub fn netns_name(tag: &str, n: u8) -> String {
    format!("paas-{tag}-{n}")
}

pub fn chain(tag: &str, which: &str) -> String {
    format!("PAAS-{tag}-{which}")
}

/// Runs a host command (`ip`, `iptables`, `mkfs.ext4`), its stderr in the
/// error when it fails.
pub(super) fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| DeaError::Backend(format!("cannot run {cmd}: {e}")))?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DeaError::Backend(format!("{cmd}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DeaError::Backend(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// The jump rules from built-in chains to ours: (table, built-in chain, spec).
fn jumps(tag: &str) -> Vec<(&'static str, &'static str, String)> {
    let br = bridge_name(tag);
    vec![
        (
            "filter",
            "INPUT",
            format!("-i {br} -j {}", chain(tag, "IN")),
        ),
        (
            "filter",
            "FORWARD",
            format!("-i {br} -j {}", chain(tag, "FWD")),
        ),
        (
            "filter",
            "FORWARD",
            format!("-o {br} -j {}", chain(tag, "FWD")),
        ),
        (
            "nat",
            "PREROUTING",
            format!("-m addrtype --dst-type LOCAL -j {}", chain(tag, "PRE")),
        ),
        (
            "nat",
            "PREROUTING",
            format!("-i {br} -j {}", chain(tag, "SVC")),
        ),
        (
            "nat",
            "OUTPUT",
            format!("-m addrtype --dst-type LOCAL -j {}", chain(tag, "OUT")),
        ),
        ("nat", "POSTROUTING", format!("-j {}", chain(tag, "POST"))),
    ]
}

/// Rejects (rather than drops) so that blocked connections and DNS lookups
/// fail at once instead of timing out.
fn reject(chain: &str, matches: &str) -> String {
    let m = if matches.is_empty() {
        String::new()
    } else {
        format!("{matches} ")
    };
    format!(
        "-A {chain} {m}-p tcp -j REJECT --reject-with tcp-reset\n-A {chain} {m}-j REJECT --reject-with icmp-port-unreachable\n"
    )
}

fn claim_file(k: u8) -> PathBuf {
    Path::new(SUBNETS_DIR).join(k.to_string())
}

/// A claim file's `tag pid`.
fn claim_owner(text: &str) -> (String, Option<i32>) {
    let mut it = text.split_whitespace();
    let tag = it.next().unwrap_or_default().to_string();
    (tag, it.next().and_then(|p| p.parse().ok()))
}

/// Holds the host-wide lock under which DEAs remove dead DEAs' leftovers
/// and set up (and claim) their own, so one DEA never tears down what
/// another is building. Released on drop.
pub struct HostLock {
    _file: Option<std::fs::File>,
}

impl HostLock {
    pub fn acquire() -> HostLock {
        let path = Path::new(SUBNETS_DIR).with_file_name("lock");
        let _ = std::fs::create_dir_all(SUBNETS_DIR);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        match file {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                // SAFETY: flock on a file descriptor we own.
                if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                    tracing::warn!(path = %path.display(), "cannot lock; going on without");
                }
                HostLock { _file: Some(f) }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open host lock");
                HostLock { _file: None }
            }
        }
    }
}

/// The one host-wide sysctl the DEAs change (`route_localnet` is set on
/// their own bridges only and goes with them).
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// `/run/paas/ip_forward.saved`: `ip_forward` as it was before the first
/// DEA on this host turned it on; the last DEA to stop puts it back.
fn saved_forwarding() -> PathBuf {
    Path::new(SUBNETS_DIR).with_file_name("ip_forward.saved")
}

/// Turns `ip_forward` on, first saving its value in `saved` unless a DEA
/// saved it already (it is on because of us then). Under the host lock.
fn enable_forwarding(sysctl: &Path, saved: &Path) {
    let now = std::fs::read_to_string(sysctl).unwrap_or_default();
    let now = now.trim();
    if now == "1" {
        return;
    }
    if !saved.exists() {
        if let Err(e) = std::fs::write(saved, format!("{now}\n")) {
            tracing::warn!(path = %saved.display(), error = %e, "cannot save ip_forward");
        }
    }
    if let Err(e) = std::fs::write(sysctl, "1") {
        tracing::warn!(error = %e, "cannot enable ip_forward");
    }
}

/// Puts `ip_forward` back to the saved value when no live DEA claims a
/// subnet any more (the caller removed its own claim). Under the host lock.
fn restore_forwarding(sysctl: &Path, saved: &Path, subnets: &Path) -> bool {
    let Ok(value) = std::fs::read_to_string(saved) else {
        return false;
    };
    if !live_claims(subnets).is_empty() {
        return false;
    }
    let value = value.trim();
    if value != "0" && value != "1" {
        let _ = std::fs::remove_file(saved);
        return false;
    }
    if let Err(e) = std::fs::write(sysctl, value) {
        tracing::warn!(error = %e, "cannot restore ip_forward");
        return false;
    }
    let _ = std::fs::remove_file(saved);
    tracing::info!(ip_forward = value, "ip_forward restored");
    true
}

/// On DEA stop (after its own cleanup): `ip_forward` as before the first
/// DEA, when this was the last one on the host.
pub fn restore_host_settings() {
    let _lock = HostLock::acquire();
    restore_forwarding(
        Path::new(IP_FORWARD),
        &saved_forwarding(),
        Path::new(SUBNETS_DIR),
    );
}

/// Tags of the subnet claims in `dir` whose owner process is alive.
fn live_claims(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let (tag, pid) = claim_owner(&text);
        if pid.is_some_and(|p| p > 0 && std::path::Path::new(&format!("/proc/{p}")).exists()) {
            v.push(tag);
        }
    }
    v
}

/// Tags of DEAs on this host that died without cleaning up: their subnet
/// claim names a process that no longer exists.
pub fn dead_owners() -> Vec<String> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(SUBNETS_DIR) else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let (tag, pid) = claim_owner(&text);
        // SAFETY: kill with signal 0 only checks for existence.
        let dead = pid.is_some_and(|p| {
            p > 0
                && unsafe { libc::kill(p, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
        if dead && !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            v.push(tag);
        }
    }
    v
}

/// Claims a free `10.254.<k>.0/24` host-wide (k in 1..=254). A claim whose
/// bridge no longer exists and that is older than 30 s is stale.
fn claim_subnet(tag: &str) -> Result<u8> {
    std::fs::create_dir_all(SUBNETS_DIR).map_err(|e| DeaError::io(SUBNETS_DIR, e))?;
    for k in 1..=254u8 {
        let f = claim_file(k);
        if let Ok(text) = std::fs::read_to_string(&f) {
            let owner = claim_owner(&text).0;
            if owner == tag {
                // Ours from a previous run: name this process as the owner,
                // or other DEAs would take it for a dead DEA's leftovers.
                std::fs::write(&f, format!("{tag} {}\n", std::process::id()))
                    .map_err(|e| DeaError::io(&f, e))?;
                return Ok(k);
            }
            let bridge_gone = !Path::new("/sys/class/net")
                .join(bridge_name(&owner))
                .exists();
            let old = std::fs::metadata(&f)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 30);
            if bridge_gone && old {
                let _ = std::fs::remove_file(&f);
            } else {
                continue;
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&f)
        {
            Ok(mut file) => {
                let _ = file.write_all(format!("{tag} {}\n", std::process::id()).as_bytes());
                return Ok(k);
            }
            Err(_) => continue,
        }
    }
    Err(DeaError::Backend(
        "no free container subnet in 10.254.0.0/16".into(),
    ))
}

impl Net {
    /// Sets up the DEA's bridge and chains (after removing leftovers of a
    /// previous run with the same tag).
    pub fn init(tag: &str, egress: &[Egress], host_services: Option<HostServices>) -> Result<Net> {
        cleanup(tag);
        let k = claim_subnet(tag)?;
        let br = bridge_name(tag);
        let mut net = Net {
            tag: tag.to_string(),
            k,
            bridge: 0,
            rules: Mutex::new(RuleSets::default()),
            host_services,
        };
        enable_forwarding(Path::new(IP_FORWARD), &saved_forwarding());
        // A fixed address: otherwise the bridge takes the lowest address of
        // its ports and changes it as containers come and go, and every
        // container's cached address of its gateway goes stale (replies
        // lost for seconds until ARP gives up on it).
        run(
            "ip",
            &["-batch", "-"],
            Some(&format!(
                "link add {br} address {} type bridge\naddr add {}/24 dev {br}\nlink set {br} up\n",
                bridge_mac(tag, k),
                net.gateway()
            )),
        )?;
        net.bridge = netlink::Rtnl::open()
            .and_then(|mut r| r.link_index(&br))
            .map_err(|e| DeaError::Backend(format!("bridge {br}: {e}")))?;
        // Lets locally generated traffic to 127.0.0.1:<host port> be DNATed
        // to a container (only on our bridge).
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1");
        let subnet = net.subnet();
        let (inc, fwd, egr, pre, out, post) = (
            chain(tag, "IN"),
            chain(tag, "FWD"),
            chain(tag, "EGR"),
            chain(tag, "PRE"),
            chain(tag, "OUT"),
            chain(tag, "POST"),
        );
        let (svc, svcin) = (chain(tag, "SVC"), chain(tag, "SVCIN"));
        let mut f =
            format!("*filter\n:{inc} - [0:0]\n:{fwd} - [0:0]\n:{egr} - [0:0]\n:{svcin} - [0:0]\n");
        f += &format!("-A {inc} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
        // Host services: only what a slot's rules allow (`apply_egress`).
        f += &format!("-A {inc} -m conntrack --ctstate DNAT -j {svcin}\n");
        f += &reject(&inc, "");
        f += &format!("-A {fwd} -o {br} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
        // Clients reach an app through its host port; another container
        // (through the same host port) does not.
        f += &format!(
            "-A {fwd} -o {br} ! -i {br} -p tcp --dport {CONTAINER_PORT} -m conntrack --ctstate DNAT -j ACCEPT\n"
        );
        f += &reject(&fwd, &format!("-o {br}"));
        f += &format!("-A {fwd} -i {br} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
        for e in egress {
            match e.port {
                Some(p) => {
                    for proto in ["tcp", "udp"] {
                        f += &format!(
                            "-A {fwd} -i {br} -d {} -p {proto} --dport {p} -j ACCEPT\n",
                            e.cidr
                        );
                    }
                }
                None => f += &format!("-A {fwd} -i {br} -d {} -j ACCEPT\n", e.cidr),
            }
        }
        f += &format!("-A {fwd} -i {br} -j {egr}\n");
        f += &reject(&fwd, &format!("-i {br}"));
        f += "COMMIT\n";
        f += &format!("*nat\n:{pre} - [0:0]\n:{out} - [0:0]\n:{post} - [0:0]\n:{svc} - [0:0]\n");
        if let Some(h) = &net.host_services {
            for p in &h.ports {
                f += &format!(
                    "-A {svc} -d {}/32 -p tcp --dport {p} -j DNAT --to-destination 127.0.0.1:{p}\n",
                    h.address
                );
            }
        }
        f += &format!("-A {post} -s {subnet} ! -o {br} -j MASQUERADE\n");
        f += &format!("-A {post} -o {br} -m addrtype --src-type LOCAL -j MASQUERADE\nCOMMIT\n");
        run("iptables-restore", &["--noflush", "-w"], Some(&f))?;
        for (table, builtin, spec) in jumps(tag) {
            let args: Vec<&str> = ["-w", "-t", table, "-I", builtin, "1"]
                .into_iter()
                .chain(spec.split(' '))
                .collect();
            run("iptables", &args, None)?;
        }
        Ok(net)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 254, self.k, 1)
    }

    pub fn subnet(&self) -> String {
        format!("10.254.{}.0/24", self.k)
    }

    pub fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 254, self.k, n)
    }

    fn rule_sets(&self) -> MutexGuard<'_, RuleSets> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether slot `n` is already sent to the chain of `rules`.
    pub fn egress_is(&self, n: u8, rules: &[EgressRule]) -> bool {
        let canon = proto::egress::canonical(rules);
        let sets = self.rule_sets();
        sets.chains
            .get(&canon)
            .is_some_and(|c| sets.slots.get(&n) == Some(c))
    }

    /// Sends slot `n`'s new connections to the chain of `rules` (made on
    /// first use): one `iptables-restore`, none when nothing changes.
    pub fn apply_egress(&self, n: u8, rules: &[EgressRule]) -> Result<()> {
        let canon = proto::egress::canonical(rules);
        let mut sets = self.rule_sets();
        let (id, new) = match sets.chains.get(&canon) {
            Some(&id) => (id, false),
            None => (sets.next, true),
        };
        let old = sets.slots.get(&n).copied();
        if !new && old == Some(id) {
            return Ok(());
        }
        let egr = chain(&self.tag, "EGR");
        let target = chain(&self.tag, &format!("R{id}"));
        let src = format!("-s {}/32", self.ip(n));
        let mut f = String::from("*filter\n");
        if new {
            f += &format!(":{target} - [0:0]\n");
            f += &rule_lines(&target, &canon);
        }
        if let Some(o) = old {
            f += &format!("-D {egr} {src} -j {}\n", chain(&self.tag, &format!("R{o}")));
        }
        f += &format!("-A {egr} {src} -j {target}\n");
        let old_ports = sets.services.get(&n).cloned().unwrap_or_default();
        let new_ports = self
            .host_services
            .as_ref()
            .map(|h| h.allowed(&canon))
            .unwrap_or_default();
        if old_ports != new_ports {
            for p in &old_ports {
                f += &self.service_line('D', n, *p);
            }
            for p in &new_ports {
                f += &self.service_line('A', n, *p);
            }
        }
        f += "COMMIT\n";
        run("iptables-restore", &["--noflush", "-w"], Some(&f))?;
        if new {
            sets.chains.insert(canon, id);
            sets.next += 1;
        }
        sets.slots.insert(n, id);
        sets.services.insert(n, new_ports);
        Ok(())
    }

    /// Slot `n` let in (`A`) to host service `port`, or no more (`D`).
    fn service_line(&self, op: char, n: u8, port: u16) -> String {
        let addr = self
            .host_services
            .as_ref()
            .map(|h| h.address.to_string())
            .unwrap_or_default();
        format!(
            "-{op} {} -s {}/32 -d 127.0.0.1/32 -p tcp --dport {port} -m conntrack --ctstate DNAT --ctorigdst {addr}/32 -j ACCEPT\n",
            chain(&self.tag, "SVCIN"),
            self.ip(n)
        )
    }

    /// Creates the slot's network namespace and veth pair (rtnetlink: the
    /// peer is created as `eth0` right in the namespace, the host end on
    /// the bridge as an isolated port), then addresses, links and the
    /// default route inside, through a socket opened in the namespace.
    pub fn create_slot(&self, n: u8) -> Result<()> {
        let p = self.begin_slot(n)?;
        self.finish_slot(n, p)
    }

    /// The first half of [`Net::create_slot`]: the named namespace (a
    /// process can join it from here on, while the rest is set up).
    pub fn begin_slot(&self, n: u8) -> Result<PendingNet> {
        let path = self.netns_path(n);
        if path.exists() {
            self.destroy_slot(n);
        }
        let (ns, inside) = netlink::create_netns(&path)
            .map_err(|e| DeaError::Backend(format!("netns for slot {n}: {e}")))?;
        Ok(PendingNet { ns, inside })
    }

    /// The second half: veth pair, addresses, links, route. On failure the
    /// slot's network is removed.
    pub fn finish_slot(&self, n: u8, p: PendingNet) -> Result<()> {
        let PendingNet { ns, mut inside } = p;
        let fail =
            |what: &str, e: std::io::Error| DeaError::Backend(format!("{what} for slot {n}: {e}"));
        let r = netlink::Rtnl::open()
            .and_then(|mut host| {
                host.add_veth(
                    &veth_name(&self.tag, n),
                    "eth0",
                    ns.as_raw_fd(),
                    self.bridge,
                )
            })
            .map_err(|e| fail("veth", e))
            .and_then(|()| {
                inside
                    .configure("eth0", self.ip(n), 24, self.gateway())
                    .map_err(|e| fail("container network", e))
            });
        if r.is_err() {
            self.destroy_slot(n);
        }
        r
    }

    pub fn netns_path(&self, n: u8) -> PathBuf {
        Path::new(NETNS_DIR).join(netns_name(&self.tag, n))
    }

    /// Removes the slot's veth pair and namespace.
    pub fn destroy_slot(&self, n: u8) {
        remove_slot(&veth_name(&self.tag, n), &self.netns_path(n));
    }

    fn dnat_rules(&self, n: u8, host_port: u16) -> String {
        let to = format!("{}:{CONTAINER_PORT}", self.ip(n));
        let mut s = String::new();
        for which in ["PRE", "OUT"] {
            s += &format!(
                "-A {} -p tcp --dport {host_port} -j DNAT --to-destination {to}\n",
                chain(&self.tag, which)
            );
        }
        s
    }

    /// DNAT from every local address's `host_port` to the container's 8080.
    pub fn expose(&self, n: u8, host_port: u16) -> Result<()> {
        let rules = self.dnat_rules(n, host_port);
        run(
            "iptables-restore",
            &["--noflush", "-w"],
            Some(&format!("*nat\n{rules}COMMIT\n")),
        )
    }

    pub fn unexpose(&self, n: u8, host_port: u16) {
        let rules = self.dnat_rules(n, host_port).replace("-A ", "-D ");
        if let Err(e) = run(
            "iptables-restore",
            &["--noflush", "-w"],
            Some(&format!("*nat\n{rules}COMMIT\n")),
        ) {
            tracing::warn!(error = %e, "cannot remove DNAT rules");
        }
    }
}

/// Deletes the host end of a veth pair (which takes its peer along) and a
/// named network namespace; empty names are skipped.
fn remove_slot(veth: &str, netns: &Path) {
    if !veth.is_empty() && Path::new("/sys/class/net").join(veth).exists() {
        if let Err(e) = netlink::Rtnl::open().and_then(|mut r| r.del_link(veth)) {
            tracing::debug!(veth, error = %e, "veth delete");
        }
    }
    if !netns.as_os_str().is_empty() {
        match netlink::delete_netns(netns) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::debug!(netns = %netns.display(), error = %e, "netns delete");
            }
            _ => {}
        }
    }
}

/// Removes everything named with `tag`: jumps and chains, namespaces, veths,
/// the bridge and the subnet claim. Never touches other rules.
pub fn cleanup(tag: &str) {
    for (table, builtin, spec) in jumps(tag) {
        // Delete every copy of the jump.
        for _ in 0..8 {
            let args: Vec<&str> = ["-w", "-t", table, "-D", builtin]
                .into_iter()
                .chain(spec.split(' '))
                .collect();
            if run("iptables", &args, None).is_err() {
                break;
            }
        }
    }
    // Every chain named with the tag (the fixed ones and the rule set
    // chains): flush them all first, since they jump to each other.
    for table in ["filter", "nat"] {
        let prefix = format!("-N {}", chain(tag, ""));
        let chains: Vec<String> = output("iptables", &["-w", "-t", table, "-S"])
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        for c in &chains {
            let _ = run("iptables", &["-w", "-t", table, "-F", c], None);
        }
        for c in &chains {
            let _ = run("iptables", &["-w", "-t", table, "-X", c], None);
        }
    }
    let vprefix = format!("pv{tag}");
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&vprefix) {
                remove_slot(&name, Path::new(""));
            }
        }
    }
    let prefix = format!("paas-{tag}-");
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) {
                remove_slot("", &e.path());
            }
        }
    }
    let br = bridge_name(tag);
    if Path::new("/sys/class/net").join(&br).exists() {
        let _ = run("ip", &["link", "del", &br], None);
    }
    if let Ok(rd) = std::fs::read_dir(SUBNETS_DIR) {
        for e in rd.flatten() {
            if std::fs::read_to_string(e.path()).is_ok_and(|o| claim_owner(&o).0 == tag) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Everything still named with `tag` (for tests and diagnostics): netns,
/// links, iptables lines.
pub fn leftovers(tag: &str) -> Vec<String> {
    let mut v = Vec::new();
    let prefix = format!("paas-{tag}-");
    if let Ok(rd) = std::fs::read_dir(NETNS_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) {
                v.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&format!("pv{tag}")) || name == bridge_name(tag) {
                v.push(format!("link {name}"));
            }
        }
    }
    let needle = format!("PAAS-{tag}-");
    for table in ["filter", "nat"] {
        for l in output("iptables", &["-w", "-t", table, "-S"]).lines() {
            if l.contains(&needle) {
                v.push(format!("iptables {table} {l}"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_services_follow_the_egress_rules() {
        let h = HostServices {
            address: Ipv4Addr::new(10, 253, 0, 1),
            ports: vec![5432, 3306, 6379],
        };
        let rule = |p: &str, d: &str, ports: Option<&str>| EgressRule::new(p, d, ports);
        assert!(h.allowed(&proto::egress::public_networks()).is_empty());
        assert_eq!(
            h.allowed(&[rule("tcp", "10.253.0.1", Some("5432"))]),
            vec![5432]
        );
        assert_eq!(
            h.allowed(&[rule("all", "10.253.0.0/16", None)]),
            vec![3306, 5432, 6379]
        );
        assert_eq!(
            h.allowed(&[rule("tcp", "10.253.0.0-10.253.0.9", Some("3000-4000"))]),
            vec![3306]
        );
        assert!(h
            .allowed(&[rule("udp", "10.253.0.1", Some("5432"))])
            .is_empty());
        assert!(h
            .allowed(&[rule("tcp", "10.253.0.2", Some("5432"))])
            .is_empty());
        assert!(h
            .allowed(&[rule("tcp", "10.253.0.1", Some("5433"))])
            .is_empty());
    }

    #[test]
    fn names_fit_interface_limits() {
        let tag = "abcdef";
        assert!(veth_name(tag, 254).len() <= 15);
        assert_eq!(veth_name(tag, 10), "pvabcdef0a");
        assert_eq!(bridge_name(tag), "pbabcdef");
        assert_eq!(netns_name(tag, 3), "paas-abcdef-3");
        assert_eq!(chain(tag, "FWD"), "PAAS-abcdef-FWD");
        assert_eq!(bridge_mac(tag, 7), "02:50:07:ab:cd:ef");
    }

    #[test]
    fn ip_forward_is_put_back_by_the_last_dea() {
        let tmp = tempfile::tempdir().expect("tmp");
        let sysctl = tmp.path().join("ip_forward");
        let saved = tmp.path().join("saved");
        let subnets = tmp.path().join("subnets");
        std::fs::create_dir_all(&subnets).expect("mkdir");
        // Off before the first DEA: saved, turned on; a second DEA keeps
        // the first one's saved value.
        std::fs::write(&sysctl, "0\n").expect("write");
        enable_forwarding(&sysctl, &saved);
        assert_eq!(std::fs::read_to_string(&sysctl).expect("read"), "1");
        assert_eq!(std::fs::read_to_string(&saved).expect("read"), "0\n");
        enable_forwarding(&sysctl, &saved);
        assert_eq!(std::fs::read_to_string(&saved).expect("read"), "0\n");
        // Another live DEA (this process) still claims a subnet: kept on.
        std::fs::write(
            subnets.join("7"),
            format!("abc123 {}\n", std::process::id()),
        )
        .expect("claim");
        assert!(!restore_forwarding(&sysctl, &saved, &subnets));
        assert_eq!(std::fs::read_to_string(&sysctl).expect("read"), "1");
        // A dead DEA's claim does not count.
        std::fs::write(subnets.join("7"), "abc123 999999999\n").expect("claim");
        assert!(restore_forwarding(&sysctl, &saved, &subnets));
        assert_eq!(std::fs::read_to_string(&sysctl).expect("read"), "0");
        assert!(!saved.exists());
        // Already on before any DEA: nothing saved, nothing restored.
        std::fs::write(&sysctl, "1").expect("write");
        enable_forwarding(&sysctl, &saved);
        assert!(!saved.exists());
        assert!(!restore_forwarding(&sysctl, &saved, &subnets));
        assert_eq!(std::fs::read_to_string(&sysctl).expect("read"), "1");
    }

    #[test]
    fn parses_claims() {
        assert_eq!(claim_owner("abc123 42\n"), ("abc123".to_string(), Some(42)));
        assert_eq!(claim_owner("abc123"), ("abc123".to_string(), None));
    }

    #[test]
    fn parses_egress_entries() {
        assert_eq!(
            Egress::parse("10.1.0.0/16:5432"),
            Some(Egress {
                cidr: "10.1.0.0/16".into(),
                port: Some(5432)
            })
        );
        assert_eq!(
            Egress::parse("8.8.8.8"),
            Some(Egress {
                cidr: "8.8.8.8/32".into(),
                port: None
            })
        );
        assert_eq!(Egress::parse("nope"), None);
        assert_eq!(Egress::parse("1.2.3.4/40"), None);
    }

    #[test]
    fn security_group_rules_become_accept_lines() {
        let mut rules = proto::egress::public_networks();
        rules.extend(proto::egress::dns(&[Ipv4Addr::new(10, 255, 255, 53)]));
        rules.push(EgressRule::new(
            "tcp",
            "172.31.0.0/16",
            Some("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,20-30"),
        ));
        rules.push(EgressRule {
            icmp_type: Some(8),
            code: Some(-1),
            ..EgressRule::new("icmp", "8.8.8.8", None)
        });
        rules.push(EgressRule::all("not an address"));
        let text = rule_lines("C", &rules);
        assert!(text.contains("-A C -m iprange --dst-range 11.0.0.0-169.253.255.255 -j ACCEPT\n"));
        assert!(
            text.contains("-A C -d 10.255.255.53/32 -p udp -m multiport --dports 53 -j ACCEPT\n")
        );
        assert!(
            text.contains("--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j"),
            "{text}"
        );
        assert!(text.contains("--dports 16,20:30 -j"), "{text}");
        assert!(text.contains("-A C -d 8.8.8.8/32 -p icmp --icmp-type 8 -j ACCEPT\n"));
        assert!(!text.contains("not an address"));
        assert_eq!(text.lines().count(), 5 + 2 + 2 + 1, "{text}");
    }

    #[test]
    fn dnat_rules_use_our_chains() {
        let n = Net {
            tag: "t1".into(),
            k: 7,
            bridge: 0,
            rules: Mutex::new(RuleSets::default()),
            host_services: Some(HostServices {
                address: Ipv4Addr::new(10, 253, 0, 1),
                ports: vec![5432],
            }),
        };
        assert_eq!(
            n.service_line('A', 3, 5432),
            "-A PAAS-t1-SVCIN -s 10.254.7.3/32 -d 127.0.0.1/32 -p tcp --dport 5432 -m conntrack --ctstate DNAT --ctorigdst 10.253.0.1/32 -j ACCEPT\n"
        );
        let r = n.dnat_rules(3, 61000);
        assert!(r.contains(
            "-A PAAS-t1-PRE -p tcp --dport 61000 -j DNAT --to-destination 10.254.7.3:8080"
        ));
        assert!(r.contains("-A PAAS-t1-OUT "));
    }
}
