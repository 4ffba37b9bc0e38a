//! Egress rules of containers: Cloud Foundry's application security groups
//! (`{protocol, destination, ports}` allow rules; everything else is
//! denied). The controller keeps them as data and sends the rules that
//! apply with every staging and start request; the DEA turns them into
//! packet filter rules (docs/architecture.md "Security groups").

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One allow rule, in the shape of CF's `/v3/security_groups` rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EgressRule {
    /// `tcp`, `udp`, `icmp` or `all`.
    pub protocol: String,
    /// An address, a CIDR, a range `a-b`, or a comma-separated list of those.
    pub destination: String,
    /// tcp/udp only: `443`, `80,443`, `8000-9000` (absent: every port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    /// icmp only: the type (-1 = any).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i32>,
    /// icmp only: the code (-1 = any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    All,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "all",
        }
    }
}

/// One destination: a network or an inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Cidr(Ipv4Addr, u8),
    Range(Ipv4Addr, Ipv4Addr),
}

impl Destination {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        match *self {
            Destination::Cidr(net, len) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                v & mask == u32::from(net) & mask
            }
            Destination::Range(a, b) => (u32::from(a)..=u32::from(b)).contains(&v),
        }
    }
}

/// A rule checked and taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRule {
    pub protocol: Protocol,
    pub destinations: Vec<Destination>,
    /// Inclusive port ranges; empty = every port.
    pub ports: Vec<(u16, u16)>,
    /// icmp (type, code), -1 = any.
    pub icmp: Option<(i32, i32)>,
}

impl ParsedRule {
    /// Whether a connection to `ip:port` over `proto` is allowed by this rule.
    pub fn allows(&self, proto: Protocol, ip: Ipv4Addr, port: u16) -> bool {
        (self.protocol == Protocol::All || self.protocol == proto)
            && self.destinations.iter().any(|d| d.contains(ip))
            && (self.ports.is_empty() || self.ports.iter().any(|&(a, b)| (a..=b).contains(&port)))
    }
}

fn parse_destination(s: &str) -> Option<Destination> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (u32::from(a) <= u32::from(b)).then_some(Destination::Range(a, b));
    }
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().ok()?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = ip.parse().ok()?;
    (len <= 32).then_some(Destination::Cidr(ip, len))
}

fn parse_ports(s: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
            None => {
                let p = part.parse::<u16>().ok()?;
                (p, p)
            }
        };
        if a == 0 || a > b {
            return None;
        }
        out.push((a, b));
    }
    (!out.is_empty()).then_some(out)
}

/// Most destinations and port ranges one rule may list (bounded work on
/// every DEA for every container).
pub const MAX_PARTS: usize = 64;

impl EgressRule {
    /// A rule allowing `protocol` to `destination` (on `ports`, for tcp
    /// and udp), without description or logging.
    pub fn new(protocol: &str, destination: &str, ports: Option<&str>) -> EgressRule {
        EgressRule {
            protocol: protocol.into(),
            destination: destination.into(),
            ports: ports.map(str::to_string),
            icmp_type: None,
            code: None,
            description: None,
            log: false,
        }
    }

    /// A rule allowing every protocol to `destination`.
    pub fn all(destination: &str) -> EgressRule {
        EgressRule::new("all", destination, None)
    }

    /// Checks the rule; the error says what is wrong, as CF's API does.
    pub fn parse(&self) -> Result<ParsedRule, String> {
        let protocol = match self.protocol.as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "all" => Protocol::All,
            _ => return Err("protocol must be 'tcp', 'udp', 'icmp', or 'all'".into()),
        };
        let parts: Vec<&str> = self.destination.split(',').collect();
        if parts.len() > MAX_PARTS {
            return Err(format!("destination may list at most {MAX_PARTS} entries"));
        }
        let destinations = parts
            .iter()
            .map(|p| parse_destination(p))
            .collect::<Option<Vec<_>>>()
            .ok_or("destination must be a valid CIDR, IP address, or IP address range")?;
        let ports = match (&self.ports, protocol) {
            (Some(p), Protocol::Tcp | Protocol::Udp) => {
                let v = parse_ports(p).ok_or(
                    "ports must be a valid single port, comma separated list of ports, or range of ports, formatted as a string",
                )?;
                if v.len() > MAX_PARTS {
                    return Err(format!("ports may list at most {MAX_PARTS} entries"));
                }
                v
            }
            (Some(_), _) => {
                return Err("ports are not allowed for protocols of type all or icmp".into())
            }
            (None, Protocol::Tcp | Protocol::Udp) => {
                return Err("ports are required for protocols of type TCP and UDP".into())
            }
            (None, _) => Vec::new(),
        };
        let icmp = match protocol {
            Protocol::Icmp => {
                let t = self
                    .icmp_type
                    .ok_or("type is required for protocols of type ICMP")?;
                let c = self
                    .code
                    .ok_or("code is required for protocols of type ICMP")?;
                if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                    return Err("type and code must be between -1 and 255".into());
                }
                Some((t, c))
            }
            _ if self.icmp_type.is_some() || self.code.is_some() => {
                return Err("type and code are only allowed for protocols of type ICMP".into())
            }
            _ => None,
        };
        Ok(ParsedRule {
            protocol,
            destinations,
            ports,
            icmp,
        })
    }
}

/// Most rules one security group may hold.
pub const MAX_RULES: usize = 1000;

/// Checks every rule; the errors are `Rules[i]: ...` as in CF.
pub fn validate(rules: &[EgressRule]) -> Result<(), Vec<String>> {
    if rules.len() > MAX_RULES {
        return Err(vec![format!(
            "Rules may hold at most {MAX_RULES} rules, not {}",
            rules.len()
        )]);
    }
    let errors: Vec<String> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.parse().err().map(|e| format!("Rules[{i}]: {e}")))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Rules in one canonical order without duplicates (a set of rules has
/// one form, so equal sets are recognized as equal).
pub fn canonical(rules: &[EgressRule]) -> Vec<EgressRule> {
    let mut v: Vec<EgressRule> = rules
        .iter()
        .cloned()
        .map(|mut r| {
            r.description = None;
            r.log = false;
            r
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// CF's default `public_networks` group: every address outside the
/// private ranges (10/8, 172.16/12, 192.168/16) and link-local 169.254/16.
pub fn public_networks() -> Vec<EgressRule> {
    [
        "0.0.0.0-9.255.255.255",
        "11.0.0.0-169.253.255.255",
        "169.255.0.0-172.15.255.255",
        "172.32.0.0-192.167.255.255",
        "192.169.0.0-255.255.255.255",
    ]
    .iter()
    .map(|d| EgressRule::all(d))
    .collect()
}

/// The `dns` group: tcp and udp port 53 at the given resolvers (the host's;
/// CF's default allows port 53 anywhere, this one only where the host
/// resolves names).
pub fn dns(resolvers: &[Ipv4Addr]) -> Vec<EgressRule> {
    if resolvers.is_empty() {
        return Vec::new();
    }
    let dest = resolvers
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    ["tcp", "udp"]
        .iter()
        .map(|p| EgressRule::new(p, &dest, Some("53")))
        .collect()
}

/// The IPv4 `nameserver` addresses of a resolv.conf text.
pub fn nameservers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse().ok())
        })
        .collect()
}

/// The resolv.conf a container (or a host process in its own network
/// namespace) can use: the host's, unless every nameserver in it is on
/// loopback (a local stub such as systemd-resolved's 127.0.0.53, which a
/// container cannot reach): then the stub's upstream file, when given.
pub fn usable_resolv_conf(host: &str, upstream: Option<&str>) -> String {
    let ns = nameservers(host);
    if !ns.is_empty() && ns.iter().all(|a| a.is_loopback()) {
        if let Some(up) = upstream.filter(|u| !nameservers(u).is_empty()) {
            return up.to_string();
        }
    }
    host.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, d: &str, ports: Option<&str>) -> EgressRule {
        EgressRule::new(p, d, ports)
    }

    #[test]
    fn parses_destinations_and_ports() {
        let r = rule(
            "tcp",
            "10.0.0.1, 192.168.0.0/16,1.1.1.1-1.1.1.9",
            Some("80,443,8000-9000"),
        )
        .parse()
        .expect("valid");
        assert_eq!(r.destinations.len(), 3);
        assert_eq!(r.ports, vec![(80, 80), (443, 443), (8000, 9000)]);
        assert!(r.allows(Protocol::Tcp, "192.168.4.4".parse().expect("ip"), 8500));
        assert!(!r.allows(Protocol::Udp, "192.168.4.4".parse().expect("ip"), 8500));
        assert!(!r.allows(Protocol::Tcp, "192.169.4.4".parse().expect("ip"), 443));
        assert!(r.allows(Protocol::Tcp, "1.1.1.5".parse().expect("ip"), 80));
    }

    #[test]
    fn rejects_bad_rules_with_cf_messages() {
        let errs = validate(&[
            rule("tcp", "10.0.0.1", Some("80")),
            rule("smtp", "10.0.0.1", None),
            rule("tcp", "10.0.0.300", Some("80")),
            rule("tcp", "10.0.0.1", None),
            rule("all", "10.0.0.1", Some("80")),
            rule("udp", "10.0.0.1", Some("0")),
            rule("tcp", "10.0.0.9-10.0.0.1", Some("1")),
            rule("icmp", "10.0.0.1", None),
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 7, "{errs:?}");
        assert!(errs[0].starts_with("Rules[1]: protocol must be"));
        assert!(errs[1].starts_with("Rules[2]: destination must be"));
        assert!(errs[2].contains("ports are required"));
        let mut icmp = rule("icmp", "0.0.0.0/0", None);
        icmp.icmp_type = Some(-1);
        icmp.code = Some(-1);
        assert!(validate(&[icmp]).is_ok());
    }

    #[test]
    fn public_networks_leave_out_the_private_ranges() {
        let rules: Vec<ParsedRule> = public_networks()
            .iter()
            .map(|r| r.parse().expect("valid"))
            .collect();
        let open = |ip: &str| {
            let ip: Ipv4Addr = ip.parse().expect("ip");
            rules.iter().any(|r| r.allows(Protocol::Tcp, ip, 443))
        };
        for public in [
            "8.8.8.8",
            "203.0.113.80",
            "172.32.0.1",
            "192.169.0.1",
            "11.0.0.0",
        ] {
            assert!(open(public), "{public}");
        }
        for private in [
            "10.0.0.1",
            "10.254.1.2",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
        ] {
            assert!(!open(private), "{private}");
        }
    }

    #[test]
    fn dns_rules_and_resolv_conf() {
        let text = "# x\nnameserver 10.255.255.53\nnameserver ::1\nsearch a\n";
        let ns = nameservers(text);
        assert_eq!(ns, vec![Ipv4Addr::new(10, 255, 255, 53)]);
        let rules = dns(&ns);
        assert_eq!(rules.len(), 2);
        let r = rules[1].parse().expect("valid");
        assert!(r.allows(Protocol::Udp, ns[0], 53));
        assert!(!r.allows(Protocol::Udp, ns[0], 54));
        assert!(dns(&[]).is_empty());
        let stub = "nameserver 127.0.0.53\n";
        let up = "nameserver 9.9.9.9\n";
        assert_eq!(usable_resolv_conf(stub, Some(up)), up);
        assert_eq!(usable_resolv_conf(stub, None), stub);
        assert_eq!(usable_resolv_conf(text, Some(up)), text);
    }

    #[test]
    fn canonical_forms_are_equal_for_equal_sets() {
        let a = vec![
            rule("all", "1.1.1.1", None),
            rule("tcp", "2.2.2.2", Some("1")),
        ];
        let mut b = vec![a[1].clone(), a[0].clone(), a[0].clone()];
        b[0].description = Some("x".into());
        assert_eq!(canonical(&a), canonical(&b));
        let json = serde_json::to_string(&a[0]).expect("json");
        assert_eq!(json, r#"{"protocol":"all","destination":"1.1.1.1"}"#);
    }
}
