//! A pretend host on a private address, for egress tests: a network
//! namespace joined to this host by a veth pair (this host `.1`, the
//! namespace `.2`, a /30 of 172.31.0.0/16), with a TCP server inside that
//! answers `private` to every connection. Reached from a container only
//! through the host's forwarding, so only if an egress rule lets it.
//! Everything is removed on drop (root only).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The server's port inside the namespace.
pub const PORT: u16 = 8000;

pub struct PrivateHost {
    pub ip: Ipv4Addr,
    pub port: u16,
    ns: String,
    veth: String,
    server: Option<Child>,
}

pub(crate) use paas::lab::net::ip;

const SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"private\n")
    finally:
        c.close()
"#;

impl PrivateHost {
    /// Sets up the namespace, the link and the server, and waits (bounded)
    /// until the server answers from this host.
    pub fn start() -> Result<PrivateHost> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let b = 1 + (u32::from_str_radix(&id[..4], 16).unwrap_or(7) % 250) as u8;
        let q = (u32::from_str_radix(&id[4..6], 16).unwrap_or(0) % 60) as u8 * 4;
        let host_ip = Ipv4Addr::new(172, 31, b, q + 1);
        let ns_ip = Ipv4Addr::new(172, 31, b, q + 2);
        let mut h = PrivateHost {
            ip: ns_ip,
            port: PORT,
            ns: format!("paastest-{}", &id[..10]),
            veth: format!("pht{}", &id[..10]),
            server: None,
        };
        let peer = format!("phu{}", &id[..10]);
        ip(&["netns", "add", &h.ns])?;
        ip(&[
            "link", "add", &h.veth, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &h.ns])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &h.veth])?;
        ip(&["link", "set", &h.veth, "up"])?;
        let inside = |args: &[&str]| -> Result<()> {
            let mut v = vec!["netns", "exec", h.ns.as_str(), "ip"];
            v.extend_from_slice(args);
            Ok(ip(&v)?)
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&["route", "add", "default", "via", &host_ip.to_string()])?;
        let child = Command::new("ip")
            .args(["netns", "exec", &h.ns, "python3", "-c", SERVER])
            .arg(ns_ip.to_string())
            .arg(PORT.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the private host's server")?;
        h.server = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let addr = std::net::SocketAddr::from((ns_ip, PORT));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("the private host at {addr} never answered");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(h)
    }

    /// `ip:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

impl Drop for PrivateHost {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.veth]);
    }
}
