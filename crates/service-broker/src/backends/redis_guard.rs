//! An AUTH guard in front of Redis (`[redis] guard_listen`): apps connect
//! here, never to Redis itself. A Redis whose `default` user has no
//! password lets every connection in as `default` (all keys of every
//! instance); the guard makes each connection log in as a binding's user
//! before anything else, waits for Redis's `+OK`, and refuses any later
//! `AUTH` or `HELLO … AUTH` (which could switch to `default`). It speaks
//! to Redis from its own address, so a Redis in protected mode (which
//! refuses non-loopback clients while `default` has no password) serves
//! apps in containers too (docs/service-broker.md "Redis guard").
//!
//! The client's bytes are read as RESP commands (arrays of bulk strings;
//! inline commands are refused); a command's name is known before its
//! bytes are passed on, and bulk data is streamed, never buffered whole.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest first command (`AUTH user password`) read whole.
const MAX_AUTH: usize = 4096;
/// Longest argument kept to decide on a command (names, HELLO's words).
const KEEP: usize = 256;

/// Serves connections on `listener`, each to Redis at `upstream`, until
/// the task is aborted.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(e) = handle(client, upstream).await {
                tracing::debug!(%peer, error = %e, "redis guard: connection ended");
            }
        });
    }
}

async fn refuse(client: &mut TcpStream, why: &str) -> std::io::Result<()> {
    client
        .write_all(format!("-NOPERM {why}\r\n").as_bytes())
        .await?;
    client.shutdown().await
}

async fn handle(mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    // The first command, whole: AUTH <user> <password>, user not default.
    let mut buf = Vec::new();
    let (args, used) = loop {
        match parse_command(&buf) {
            Parsed::Done(args, used) => break (args, used),
            Parsed::Bad(why) => return refuse(&mut client, why).await,
            Parsed::More if buf.len() >= MAX_AUTH => {
                return refuse(&mut client, "the first command must be AUTH").await
            }
            Parsed::More => {
                let mut chunk = [0u8; 1024];
                let n = client.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    let ok = args.len() == 3 && args[0].eq_ignore_ascii_case(b"auth") && args[1] != b"default";
    if !ok {
        return refuse(
            &mut client,
            "authenticate first, as your binding's user: AUTH <username> <password>",
        )
        .await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&buf[..used]).await?;
    // Redis's answer to AUTH: only +OK lets the connection go on (a failed
    // AUTH would leave it logged in as `default`).
    let mut line = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if server.read(&mut b).await? == 0 {
            return Ok(());
        }
        line.push(b[0]);
        if line.ends_with(b"\r\n") || line.len() > 512 {
            break;
        }
    }
    client.write_all(&line).await?;
    if line != b"+OK\r\n" {
        return client.shutdown().await;
    }
    let rest = buf[used..].to_vec();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let mut filter = Filter::default();
    let mut pending = rest;
    let result = loop {
        let (pass, refused) = filter.feed(&pending);
        if !pass.is_empty() {
            if let Err(e) = sw.write_all(&pass).await {
                break Err(e);
            }
        }
        if let Some(why) = refused {
            // Redis still answers what came before; then the connection
            // ends (the guard's reason is in its log).
            tracing::info!(why, "redis guard: command refused");
            break Ok(());
        }
        let mut chunk = vec![0u8; 16 * 1024];
        match cr.read(&mut chunk).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                chunk.truncate(n);
                pending = chunk;
            }
            Err(e) => break Err(e),
        }
    };
    // Redis's answers to what it got reach the client; then both close.
    let _ = sw.shutdown().await;
    if tokio::time::timeout(std::time::Duration::from_secs(10), &mut down)
        .await
        .is_err()
    {
        down.abort();
    }
    result
}

enum Parsed {
    /// The arguments and the bytes the command took.
    Done(Vec<Vec<u8>>, usize),
    More,
    Bad(&'static str),
}

fn line_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rel = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[at..at + rel], at + rel + 2))
}

fn number(b: &[u8]) -> Option<usize> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// One whole command at the start of `buf` (the first, AUTH, command).
fn parse_command(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::More;
    }
    if buf[0] != b'*' {
        return Parsed::Bad("inline commands are not allowed; use RESP");
    }
    let Some((head, mut at)) = line_at(buf, 1) else {
        return Parsed::More;
    };
    let Some(n) = number(head).filter(|n| *n <= 16) else {
        return Parsed::Bad("the first command must be AUTH");
    };
    let mut args = Vec::new();
    for _ in 0..n {
        if at >= buf.len() {
            return Parsed::More;
        }
        if buf[at] != b'$' {
            return Parsed::Bad("commands are arrays of bulk strings");
        }
        let Some((len, start)) = line_at(buf, at + 1) else {
            return Parsed::More;
        };
        let Some(len) = number(len).filter(|l| *l <= MAX_AUTH) else {
            return Parsed::Bad("the first command must be AUTH");
        };
        if buf.len() < start + len + 2 {
            return Parsed::More;
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Parsed::Done(args, at)
}

/// Where the filter is in the client's stream of commands.
#[derive(Debug, Default)]
enum State {
    /// Before a command (`*`).
    #[default]
    Start,
    /// Reading `*<n>\r\n` (digits so far).
    Count(Vec<u8>),
    /// Before argument `i` of `n` (`$`).
    ArgHead { i: usize, n: usize },
    /// Reading `$<len>\r\n`.
    ArgLen { i: usize, n: usize, digits: Vec<u8> },
    /// Inside argument `i`'s data (and its `\r\n`): `left` bytes to go.
    ArgData { i: usize, n: usize, left: usize },
}

/// The filter of the commands after AUTH: refuses `AUTH` and a `HELLO`
/// with `AUTH`; passes everything else on as it arrives.
#[derive(Debug, Default)]
struct Filter {
    state: State,
    /// The current command's arguments kept so far (each at most KEEP).
    args: Vec<Vec<u8>>,
    /// Bytes of the current command held until it is decided.
    held: Vec<u8>,
    /// The current command was decided: its bytes pass at once.
    passing: bool,
}

impl Filter {
    /// Takes the client's next bytes: what may go to Redis now, and why
    /// the connection must end after that, if it must.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, Option<&'static str>) {
        let mut out = Vec::new();
        match self.step(input, &mut out) {
            Ok(()) => (out, None),
            Err(why) => (out, Some(why)),
        }
    }

    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut k = 0;
        while k < input.len() {
            let b = input[k];
            let mut take = 1;
            match std::mem::take(&mut self.state) {
                State::Start => {
                    if b != b'*' {
                        return Err("inline commands are not allowed; use RESP");
                    }
                    self.args.clear();
                    self.passing = false;
                    self.state = State::Count(Vec::new());
                }
                State::Count(mut d) => {
                    if b == b'\n' {
                        let n = number(d.strip_suffix(b"\r").unwrap_or(&d))
                            .ok_or("bad command length")?;
                        self.state = if n == 0 {
                            self.passing = true;
                            State::Start
                        } else {
                            State::ArgHead { i: 0, n }
                        };
                    } else {
                        d.push(b);
                        if d.len() > 12 {
                            return Err("bad command length");
                        }
                        self.state = State::Count(d);
                    }
                }
                State::ArgHead { i, n } => {
                    if b != b'$' {
                        return Err("commands are arrays of bulk strings");
                    }
                    self.state = State::ArgLen {
                        i,
                        n,
                        digits: Vec::new(),
                    };
                }
                State::ArgLen { i, n, mut digits } => {
                    if b == b'\n' {
                        let len = number(digits.strip_suffix(b"\r").unwrap_or(&digits))
                            .ok_or("bad argument length")?;
                        if !self.passing && i < 8 {
                            self.args.push(Vec::new());
                        }
                        self.state = State::ArgData {
                            i,
                            n,
                            left: len + 2,
                        };
                    } else {
                        digits.push(b);
                        if digits.len() > 12 {
                            return Err("bad argument length");
                        }
                        self.state = State::ArgLen { i, n, digits };
                    }
                }
                State::ArgData { i, n, left } => {
                    // Data in bulk: as much as this input holds.
                    take = left.min(input.len() - k);
                    let data = &input[k..k + take];
                    if !self.passing {
                        if let Some(a) = self.args.get_mut(i) {
                            let room = KEEP.saturating_sub(a.len());
                            a.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    let left = left - take;
                    if left > 0 {
                        self.state = State::ArgData { i, n, left };
                    } else {
                        // Argument i is complete: decide when we can.
                        if !self.passing {
                            self.decide(i + 1 == n)?;
                        }
                        self.state = if i + 1 == n {
                            State::Start
                        } else {
                            State::ArgHead { i: i + 1, n }
                        };
                    }
                }
            }
            let bytes = &input[k..k + take];
            if self.passing {
                out.extend_from_slice(&self.held);
                self.held.clear();
                out.extend_from_slice(bytes);
            } else {
                self.held.extend_from_slice(bytes);
                if self.held.len() > 64 * 1024 {
                    return Err("command too long to check");
                }
            }
            k += take;
            if self.passing && matches!(self.state, State::Start) {
                self.passing = false;
            }
        }
        Ok(())
    }

    /// After an argument: whether the command is refused, passed, or
    /// still to be seen (HELLO is seen whole).
    fn decide(&mut self, complete: bool) -> Result<(), &'static str> {
        let name = self.args.first().map(|a| strip_crlf(a)).unwrap_or_default();
        if name.eq_ignore_ascii_case(b"auth") {
            return Err("AUTH is allowed once, first");
        }
        if name.eq_ignore_ascii_case(b"hello") {
            if self
                .args
                .iter()
                .skip(1)
                .any(|a| strip_crlf(a).eq_ignore_ascii_case(b"auth"))
            {
                return Err("HELLO may not log in again");
            }
            if complete {
                self.passing = true;
            }
            return Ok(());
        }
        self.passing = true;
        Ok(())
    }
}

fn strip_crlf(a: &[u8]) -> Vec<u8> {
    a.strip_suffix(b"\r\n").unwrap_or(a).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        v
    }

    #[test]
    fn the_first_command_must_log_in_as_a_named_user() {
        let auth = cmd(&["AUTH", "u1", "pw"]);
        match parse_command(&auth) {
            Parsed::Done(a, used) => {
                assert_eq!(a, vec![b"AUTH".to_vec(), b"u1".to_vec(), b"pw".to_vec()]);
                assert_eq!(used, auth.len());
            }
            _ => panic!("parsed"),
        }
        assert!(matches!(
            parse_command(&auth[..auth.len() - 3]),
            Parsed::More
        ));
        assert!(matches!(parse_command(b"AUTH u pw\r\n"), Parsed::Bad(_)));
    }

    #[test]
    fn later_commands_pass_but_no_second_login() {
        // Every split of a pipeline gives the same bytes through.
        let mut pipeline = cmd(&["SET", "p:k", &"x".repeat(70_000)]);
        pipeline.extend(cmd(&["GET", "p:k"]));
        pipeline.extend(cmd(&["HELLO", "3"]));
        for split in [1usize, 2, 7, 1000, 70_010, pipeline.len()] {
            let mut f = Filter::default();
            let mut out = Vec::new();
            for part in pipeline.chunks(split) {
                let (pass, refused) = f.feed(part);
                assert_eq!(refused, None);
                out.extend(pass);
            }
            assert_eq!(out, pipeline, "split {split}");
        }
        for bad in [
            cmd(&["AUTH", "default", "x"]),
            cmd(&["auth", "x"]),
            cmd(&["HELLO", "3", "AUTH", "default", "x"]),
        ] {
            let mut f = Filter::default();
            let mut stream = cmd(&["PING"]);
            stream.extend(&bad);
            let mut passed = Vec::new();
            let mut refused = false;
            for b in stream.chunks(3) {
                let (p, why) = f.feed(b);
                passed.extend(p);
                if why.is_some() {
                    refused = true;
                    break;
                }
            }
            assert!(refused, "{}", String::from_utf8_lossy(&bad));
            assert_eq!(
                passed,
                cmd(&["PING"]),
                "nothing of the refused command reaches Redis"
            );
        }
        let mut f = Filter::default();
        assert!(f.feed(b"PING\r\n").1.is_some(), "inline");
    }
}
