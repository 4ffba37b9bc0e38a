//! The lab's load balancer: HAProxy (Debian's) in front of the routers,
//! health-checking their `/health` every 200 ms (a router in lame duck
//! answers 503 and gets no new requests), and, for the hosts, a TCP
//! passage to Postgres, which listens on the machine's loopback only.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::LabError;

pub struct Config {
    /// Where apps and the API are reached (the machine's loopback).
    pub bind: SocketAddr,
    /// (name, address) of each host with a router.
    pub routers: Vec<(String, Ipv4Addr)>,
    pub router_port: u16,
    pub router_admin_port: u16,
    /// (where the hosts reach it, where Postgres listens).
    pub postgres: Option<(SocketAddr, SocketAddr)>,
}

/// The configuration file's text.
pub fn config(c: &Config) -> String {
    let servers: String = c
        .routers
        .iter()
        .map(|(name, addr)| {
            format!(
                "  server {name} {addr}:{} check port {} inter 200ms fall 1 rise 2\n",
                c.router_port, c.router_admin_port
            )
        })
        .collect();
    let postgres = match c.postgres {
        // Pooled database connections stay idle for minutes.
        Some((bind, to)) => format!(
            "listen postgres\n  mode tcp\n  bind {bind}\n  timeout client 1h\n  timeout server 1h\n  server pg {to}\n"
        ),
        None => String::new(),
    };
    format!(
        "global\n  maxconn 2000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch\n  retry-on conn-failure empty-response response-timeout\n\
         frontend lb\n  bind {bind}\n  default_backend routers\n\
         backend routers\n  option httpchk GET /health\n  http-check expect status 200\n{servers}{postgres}",
        bind = c.bind
    )
}

/// Debian's haproxy binary.
pub fn binary() -> Result<PathBuf, LabError> {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            LabError("haproxy is not installed (apt-get install haproxy; scripts/lib.sh ensure_test_tools)".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_every_router_and_passes_postgres_through() {
        let text = config(&Config {
            bind: ([127, 0, 0, 1], 8080).into(),
            routers: vec![
                ("h1".into(), Ipv4Addr::new(10, 251, 3, 2)),
                ("h2".into(), Ipv4Addr::new(10, 251, 3, 3)),
            ],
            router_port: 8888,
            router_admin_port: 8889,
            postgres: Some((
                ([10, 251, 3, 1], 5432).into(),
                ([127, 0, 0, 1], 5432).into(),
            )),
        });
        assert!(text.contains("bind 127.0.0.1:8080\n"));
        assert!(text.contains("server h1 10.251.3.2:8888 check port 8889"));
        assert!(text.contains("server h2 10.251.3.3:8888 check port 8889"));
        assert!(text.contains("option httpchk GET /health"));
        assert!(text.contains("listen postgres\n  mode tcp\n  bind 10.251.3.1:5432\n"));
        assert!(text.contains("server pg 127.0.0.1:5432"));
    }
}
