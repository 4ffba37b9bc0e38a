//! The lab's network: one network namespace per simulated host, each with
//! a veth on a bridge of its own in the machine's namespace, so every host
//! has its own address, loopback, ports, iptables and `/sys` (its agent
//! runs under `ip netns exec`). A link can be cut and restored (a
//! partition). On drop the namespaces, the bridge (with the veths) and the
//! machine's rules for the lab (forwarding, NAT to the outside) go, unless
//! [`Net::keep`] handed them to a record (`cf dev start --hosts`) that
//! [`Net::remove`] takes apart later, from another process.
//!
//! Names: bridge `plab<N>`, namespaces `plab<N>-<host>`, veths
//! `plab<N><host>` on the bridge's side; addresses `10.251.<N>.0/24`, the
//! bridge `.1` and host `i` `.(i+2)`. `N` is claimed by creating the
//! bridge (the kernel refuses a second one of the same name), so labs in
//! parallel never share one.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::LabError;

type Result<T> = std::result::Result<T, LabError>;

/// What a lab's network is made of, so that whoever removes it knows what
/// to remove (also the record `cf dev start --hosts` leaves behind).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Net {
    n: u8,
    hosts: Vec<String>,
    /// Namespaces made so far (removed on drop).
    made: Vec<String>,
    /// iptables rules added so far (removed on drop).
    added: Vec<Rule>,
    /// Removed on drop (off once [`Net::keep`] handed it on).
    #[serde(skip)]
    armed: bool,
}

/// (table, chain, rule).
type Rule = (String, String, Vec<String>);

/// `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError(format!("ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(LabError(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The iptables comment on the lab's forwarding rule (leftover checks grep
/// for `PAAS`).
const RULE_COMMENT: &str = "PAAS-lab";

impl Net {
    /// A bridge and one namespace per host name.
    pub fn create(hosts: &[&str]) -> Result<Net> {
        let n = (1..=250u8)
            .find(|n| {
                let br = format!("plab{n}");
                ip(&["link", "add", &br, "type", "bridge"]).is_ok()
            })
            .ok_or_else(|| LabError("no free lab bridge plab1..plab250".into()))?;
        let mut net = Net {
            n,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            made: Vec::new(),
            added: Vec::new(),
            armed: true,
        };
        let br = net.bridge();
        ip(&["addr", "add", &format!("{}/24", net.gateway()), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        // Bridged frames pass the FORWARD chain when br_netfilter is on
        // (Docker turns it on, often with a DROP policy); the hosts reach
        // the outside (DNS, say) as a real host does, through NAT.
        for rule in net.rules() {
            let ok = Command::new("iptables")
                .args(["-w", "-t", &rule.0, "-I", &rule.1, "1"])
                .args(&rule.2)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(LabError(format!(
                    "iptables -t {} -I {} {}",
                    rule.0,
                    rule.1,
                    rule.2.join(" ")
                )));
            }
            net.added.push(rule);
        }
        for (i, h) in hosts.iter().enumerate() {
            let ns = net.netns(h);
            ip(&["netns", "add", &ns])?;
            net.made.push(ns.clone());
            let veth = net.veth(h);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br, "up"])?;
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &net.gateway().to_string(),
            ])?;
            // The host's resolver: the machine, where nothing answers on
            // port 53, so a lookup fails at once (the machine's own
            // resolver is not reachable from behind NAT everywhere, and a
            // lookup that times out makes an app start 10 s late).
            // `ip netns exec` puts this file over /etc/resolv.conf.
            let etc = std::path::Path::new("/etc/netns").join(&ns);
            std::fs::create_dir_all(&etc)
                .and_then(|()| {
                    std::fs::write(
                        etc.join("resolv.conf"),
                        format!("nameserver {}\n", net.gateway()),
                    )
                })
                .map_err(|e| LabError(format!("{}: {e}", etc.display())))?;
            // On already, so the host's DEA neither saves nor restores the
            // machine-wide record of it (/run/paas/ip_forward.saved).
            ip(&[
                "netns",
                "exec",
                &ns,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward",
            ])?;
        }
        Ok(net)
    }

    /// The machine's rules for the lab: (table, chain, rule).
    fn rules(&self) -> Vec<Rule> {
        let br = self.bridge();
        let subnet = format!("10.251.{}.0/24", self.n);
        let tail = ["-m", "comment", "--comment", RULE_COMMENT];
        let rule = |table: &str, chain: &str, head: &[&str]| -> Rule {
            let args = head
                .iter()
                .chain(tail.iter())
                .map(|s| s.to_string())
                .collect();
            (table.to_string(), chain.to_string(), args)
        };
        vec![
            rule("filter", "FORWARD", &["-i", &br, "-j", "ACCEPT"]),
            rule("filter", "FORWARD", &["-o", &br, "-j", "ACCEPT"]),
            rule(
                "nat",
                "POSTROUTING",
                &["-s", &subnet, "!", "-o", &br, "-j", "MASQUERADE"],
            ),
        ]
    }

    pub fn bridge(&self) -> String {
        format!("plab{}", self.n)
    }

    /// The bridge's address: the machine as the hosts see it.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.n, 1)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.n, u8::try_from(i + 2).unwrap_or(254))
    }

    pub fn netns(&self, host: &str) -> String {
        format!("plab{}-{host}", self.n)
    }

    fn veth(&self, host: &str) -> String {
        format!("plab{}{host}", self.n)
    }

    /// `program args` inside `host`'s namespace (`ip netns exec`: its own
    /// network and `/sys`, the machine's files). `ip netns exec` mounts a
    /// fresh `/sys`, without the cgroup hierarchies: they are mounted again
    /// there first, as the machine has them (the same hierarchies, so the
    /// DEA's cgroups are the machine's), as a real host has its own.
    pub fn command(&self, host: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns(host), "sh", "-c"])
            .arg(format!("{}exec \"$@\"", cgroup_mounts()))
            .arg("sh")
            .arg(program);
        c
    }

    /// Cuts (`up == false`) or restores `host`'s link: its packets go
    /// nowhere meanwhile, as in a partition (no resets, no errors).
    pub fn set_link(&self, host: &str, up: bool) -> Result<()> {
        ip(&[
            "link",
            "set",
            &self.veth(host),
            if up { "up" } else { "down" },
        ])
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
}

/// Shell commands that mount under `/sys/fs/cgroup` what the machine has
/// mounted there (read off `/proc/self/mountinfo`): a tmpfs with cgroup
/// v1 hierarchies (and the symlinks between them), or cgroup2.
fn cgroup_mounts() -> String {
    const ROOT: &str = "/sys/fs/cgroup";
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut script = String::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        if mount_point != ROOT && !mount_point.starts_with("/sys/fs/cgroup/") {
            continue;
        }
        let mut f = post.split(' ');
        let (Some(fstype), _, Some(opts)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let opts: Vec<&str> = opts
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect();
        let mut opts = opts.join(",");
        if fstype == "cgroup"
            && !opts
                .split(',')
                .any(|o| !o.starts_with("name=") && !o.contains('='))
        {
            // A named hierarchy without controllers.
            opts = format!("none,{opts}");
        }
        if opts.is_empty() {
            opts = "defaults".into();
        }
        script += &format!(
            "mkdir -p '{mount_point}' && mount -t {fstype} -o '{opts}' {fstype} '{mount_point}' || exit 111\n"
        );
        if mount_point == ROOT && fstype == "tmpfs" {
            if let Ok(rd) = std::fs::read_dir(ROOT) {
                for e in rd.flatten() {
                    if let Ok(target) = std::fs::read_link(e.path()) {
                        script +=
                            &format!("ln -s '{}' '{}'\n", target.display(), e.path().display());
                    }
                }
            }
        }
    }
    script
}

impl Net {
    /// Leaves everything in place past this value's end: the record to
    /// remove it with later ([`Net::remove`]).
    pub fn keep(mut self) -> Net {
        self.armed = false;
        self.clone()
    }

    /// Removes what the record names: the namespaces, veths, bridge and
    /// rules (each best effort: what is gone already is skipped).
    pub fn remove(mut self) {
        self.armed = true;
    }

    fn take_apart(&mut self) {
        for ns in self.made.drain(..) {
            let _ = ip(&["netns", "del", &ns]);
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&ns));
        }
        let br = self.bridge();
        for h in &self.hosts {
            let _ = ip(&["link", "del", &format!("plab{}{h}", self.n)]);
        }
        let _ = ip(&["link", "del", &br]);
        for (table, chain, args) in self.added.drain(..) {
            let _ = Command::new("iptables")
                .args(["-w", "-t", &table, "-D", &chain])
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.armed {
            self.take_apart();
        }
    }
}
