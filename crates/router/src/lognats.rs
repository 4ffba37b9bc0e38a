//! A NATS connection of the access-log thread's own, used only to publish
//! access-log lines.
//!
//! Publishing through the async client costs a command through a channel,
//! a task wake-up and a formatted `PUB` line per message, on the runtime
//! thread that also serves requests: per request, more than parsing the
//! request head. This connection is written by the access-log thread: one
//! buffer of `PUB logs.<app_id> <len>\r\n<json>\r\n` records per batch, one
//! write. It answers the server's `PING`s between batches and reconnects
//! (at most once a second) when the server goes away; lines that find no
//! connection are dropped and counted, as when the queue is full.
//!
//! Only plain `nats://` URLs are handled, with the router's bus
//! credentials (else the first URL's `user:password@` or `token@`);
//! anything else (TLS, a server that requires TLS, a failed first
//! handshake) falls back to publishing through the async client. With
//! several servers (`nats_url` a comma-separated list, a NATS cluster)
//! each handshake tries them in turn from the last one that worked, so the
//! access log moves to another node when its own goes down.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);

pub struct RawNats {
    /// `host:port` of each server.
    addrs: Vec<String>,
    /// The server tried first at the next handshake (the last that worked).
    current: usize,
    /// `CONNECT {...}\r\nPING\r\n`.
    hello: Vec<u8>,
    stream: Option<TcpStream>,
    next_try: Instant,
    /// Bytes read that do not form a whole line yet.
    pending: Vec<u8>,
}

impl RawNats {
    /// Parses `url` and makes the first handshake; `None` when the URL or
    /// the server is not one this handles.
    pub fn connect(
        url: &str,
        creds: &proto::busauth::BusCredentials,
        name: &str,
    ) -> Option<RawNats> {
        if creds.tls_ca_file.is_some() {
            return None;
        }
        let mut addrs = Vec::new();
        let mut first_auth = None;
        for (i, u) in url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .enumerate()
        {
            let (addr, auth) = parse_url(u)?;
            addrs.push(addr);
            if i == 0 {
                first_auth = auth;
            }
        }
        if addrs.is_empty() {
            return None;
        }
        let auth = first_auth.as_deref();
        let mut connect = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "name": name,
            "lang": "rust",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1,
        });
        match auth.map(|a| a.split_once(':')) {
            _ if !creds.user.is_empty() => {
                connect["user"] = creds.user.as_str().into();
                connect["pass"] = creds.password.as_str().into();
            }
            Some(Some((user, pass))) => {
                connect["user"] = user.into();
                connect["pass"] = pass.into();
            }
            Some(None) => {
                if let Some(token) = auth {
                    connect["auth_token"] = token.into();
                }
            }
            None => {}
        }
        let mut hello = b"CONNECT ".to_vec();
        hello.extend_from_slice(connect.to_string().as_bytes());
        hello.extend_from_slice(b"\r\nPING\r\n");
        let mut raw = RawNats {
            addrs,
            current: 0,
            hello,
            stream: None,
            next_try: Instant::now(),
            pending: Vec::new(),
        };
        match raw.handshake() {
            Ok(()) => Some(raw),
            Err(e) => {
                tracing::info!(error = %e, "access log: publishing through the bus client");
                None
            }
        }
    }

    /// Connects to the first server that takes the handshake, starting
    /// with the one that worked last.
    fn handshake(&mut self) -> std::io::Result<()> {
        let n = self.addrs.len();
        let mut last = std::io::Error::other("no server");
        for k in 0..n {
            let i = (self.current + k) % n;
            match self.handshake_with(i) {
                Ok(()) => {
                    self.current = i;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn handshake_with(&mut self, i: usize) -> std::io::Result<()> {
        let other = |m: &str| std::io::Error::other(m.to_string());
        let addr = self.addrs[i]
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| other("no address"))?;
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        let _ = s.set_nodelay(true);
        let info = read_line(&mut s, &mut Vec::new())?;
        if !info.starts_with(b"INFO ") {
            return Err(other("no INFO from the server"));
        }
        let compact: Vec<u8> = info.iter().copied().filter(|b| *b != b' ').collect();
        if compact.windows(19).any(|w| w == b"\"tls_required\":true") {
            return Err(other("the server requires TLS"));
        }
        s.write_all(&self.hello)?;
        let mut rest = Vec::new();
        loop {
            let line = read_line(&mut s, &mut rest)?;
            if line.starts_with(b"PONG") {
                break;
            }
            if line.starts_with(b"-ERR") {
                return Err(other(&String::from_utf8_lossy(&line)));
            }
        }
        self.pending = rest;
        self.stream = Some(s);
        Ok(())
    }

    /// Writes `batch` (whole `PUB` records); false when it could not.
    pub fn send(&mut self, batch: &[u8]) -> bool {
        if self.stream.is_none() {
            if Instant::now() < self.next_try {
                return false;
            }
            self.next_try = Instant::now() + RETRY;
            if let Err(e) = self.handshake() {
                tracing::debug!(error = %e, "access log: NATS reconnect failed");
                return false;
            }
            tracing::info!("access log: NATS connection back");
        }
        let Some(s) = self.stream.as_mut() else {
            return false;
        };
        if let Err(e) = s.write_all(batch) {
            tracing::warn!(error = %e, "access log: NATS write failed");
            self.stream = None;
            return false;
        }
        true
    }

    /// Reads what the server sent (without waiting) and answers `PING`s.
    pub fn service(&mut self) {
        let Some(s) = self.stream.as_mut() else {
            return;
        };
        if s.set_nonblocking(true).is_err() {
            self.stream = None;
            return;
        }
        let mut buf = [0u8; 4096];
        let mut alive = true;
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        let mut pongs = 0;
        while let Some(i) = self.pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.pending.drain(..i + 2).collect();
            if line.starts_with(b"PING") {
                pongs += 1;
            } else if line.starts_with(b"-ERR") {
                tracing::warn!(error = %String::from_utf8_lossy(&line).trim(), "access log: NATS error");
            }
        }
        if self.pending.len() > 64 * 1024 {
            self.pending.clear();
        }
        let ok = alive
            && s.set_nonblocking(false).is_ok()
            && (0..pongs).all(|_| s.write_all(b"PONG\r\n").is_ok());
        if !ok {
            self.stream = None;
        }
    }
}

/// `host:port` (default port 4222) and the `user:password` or token part
/// of one `nats://` URL (or a bare `host:port`); `None` for another scheme.
fn parse_url(url: &str) -> Option<(String, Option<String>)> {
    let rest = match url.split_once("://") {
        Some(("nats", rest)) => rest,
        Some(_) => return None,
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a.to_string()), h),
        None => (None, rest),
    };
    if hostport.is_empty() || hostport.contains('/') {
        return None;
    }
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']')
    {
        hostport.to_string()
    } else {
        format!("{hostport}:4222")
    };
    Some((addr, auth))
}

/// Reads one CRLF-terminated line (blocking, with the socket's timeout);
/// what follows it stays in `rest`.
fn read_line(s: &mut TcpStream, rest: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = rest.drain(..i + 2).collect();
            return Ok(line);
        }
        if rest.len() > 1024 * 1024 {
            return Err(std::io::Error::other("line too long"));
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        rest.extend_from_slice(&buf[..n]);
    }
}

/// Appends a `PUB subject len\r\npayload\r\n` record.
pub fn push_pub(out: &mut Vec<u8>, subject: &[u8], payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    let mut n = payload.len();
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::busauth::{server_config, BusCredentials, BusUsers, Role, DEFAULT_HM_BUCKET};

    /// On a bus with users, the access-log connection logs in as the
    /// router (its own fast path, not the fallback) and is refused without
    /// credentials; a TLS bus is left to the async client.
    #[test]
    fn logs_in_with_the_routers_credentials() {
        let users = BusUsers::generate(DEFAULT_HM_BUCKET);
        let Ok(nats) = testkit::NatsServer::start_with_config(&server_config(&users, None)) else {
            testkit::skip_or_fail("logs_in_with_the_routers_credentials", "needs nats-server");
            return;
        };
        let router = users.role(Role::Router);
        let mut raw = RawNats::connect(&nats.url, &router, "t").expect("logged in");
        let mut batch = Vec::new();
        push_pub(&mut batch, b"logs.app", b"{}");
        assert!(raw.send(&batch), "published");
        assert!(
            RawNats::connect(&nats.url, &BusCredentials::default(), "t").is_none(),
            "no credentials: refused"
        );
        let tls = BusCredentials {
            tls_ca_file: Some("/ca.pem".into()),
            ..router
        };
        assert!(RawNats::connect(&nats.url, &tls, "t").is_none());
    }

    /// Given a cluster's seed list, the connection moves to another node
    /// when its own goes down.
    #[test]
    fn moves_to_another_node_of_a_cluster() {
        let users = BusUsers::generate(DEFAULT_HM_BUCKET);
        let Ok(mut cluster) = testkit::NatsCluster::start_with_config(&server_config(&users, None))
        else {
            testkit::skip_or_fail("moves_to_another_node_of_a_cluster", "needs nats-server");
            return;
        };
        let mut raw =
            RawNats::connect(&cluster.urls(), &users.role(Role::Router), "t").expect("logged in");
        let first = raw.current;
        cluster.kill(first);
        let mut batch = Vec::new();
        push_pub(&mut batch, b"logs.app", b"{}");
        testkit::wait_for_blocking(
            "the access log on another node",
            Duration::from_secs(10),
            || {
                raw.service();
                (raw.send(&batch) && raw.current != first).then_some(())
            },
        )
        .expect("moved");
    }
}
