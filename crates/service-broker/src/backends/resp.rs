//! A small RESP2 client (Redis serialization protocol): enough for the
//! broker's admin commands (AUTH, ACL, CLIENT KILL, SCAN, UNLINK) and for
//! tests. Replies are bounded (no unbounded allocation on a bad server).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::Error;

/// Largest bulk string or array accepted.
const MAX_LEN: i64 = 64 * 1024 * 1024;
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status or bulk).
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

pub struct Resp {
    io: BufReader<TcpStream>,
}

fn proto_err(what: &str) -> Error {
    Error::Backend(format!("redis: {what}"))
}

impl Resp {
    /// Connects to `host:port` (within 10 s) and authenticates when
    /// `user`/`password` are given.
    pub async fn connect(
        host: &str,
        port: u16,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Resp, Error> {
        let stream =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
                .await
                .map_err(|_| proto_err("connect timed out"))?
                .map_err(|e| Error::Backend(format!("redis: connect {host}:{port}: {e}")))?;
        let mut r = Resp {
            io: BufReader::new(stream),
        };
        if let Some(pw) = password {
            let reply = match user {
                Some(u) if !u.is_empty() => r.cmd(&["AUTH", u, pw]).await?,
                _ => r.cmd(&["AUTH", pw]).await?,
            };
            if let Reply::Error(e) = reply {
                return Err(Error::Backend(format!("redis: AUTH: {e}")));
            }
        }
        Ok(r)
    }

    /// Sends one command and reads its reply (an error reply is a
    /// `Reply::Error`, not an `Err`).
    pub async fn cmd<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Reply, Error> {
        let mut buf = Vec::new();
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            let a = a.as_ref();
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.io.get_mut().write_all(&buf).await.map_err(io_err)?;
        tokio::time::timeout(Duration::from_secs(30), self.read())
            .await
            .map_err(|_| proto_err("no reply within 30 s"))?
    }

    /// Like [`Resp::cmd`], but an error reply is an `Err`.
    pub async fn ok<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Reply, Error> {
        match self.cmd(args).await? {
            Reply::Error(e) => {
                let name = args
                    .first()
                    .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                    .unwrap_or_default();
                Err(Error::Backend(format!("redis: {name}: {e}")))
            }
            r => Ok(r),
        }
    }

    async fn line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(io_err)?;
        if n == 0 {
            return Err(proto_err("connection closed"));
        }
        if !line.ends_with(b"\r\n") {
            return Err(proto_err("bad reply line"));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| proto_err("reply is not UTF-8"))
    }

    fn read(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, Error>> + Send + '_>>
    {
        Box::pin(async move {
            let line = self.line().await?;
            let (kind, rest) = line
                .split_at_checked(1)
                .ok_or_else(|| proto_err("empty reply"))?;
            let int = || -> Result<i64, Error> {
                rest.parse::<i64>().map_err(|_| proto_err("bad integer"))
            };
            Ok(match kind {
                "+" => Reply::Status(rest.to_string()),
                "-" => Reply::Error(rest.to_string()),
                ":" => Reply::Int(int()?),
                "$" => {
                    let n = int()?;
                    if n < 0 {
                        Reply::Bulk(None)
                    } else if n > MAX_LEN {
                        return Err(proto_err("bulk reply too large"));
                    } else {
                        let mut data = vec![0u8; n as usize + 2];
                        self.io.read_exact(&mut data).await.map_err(io_err)?;
                        data.truncate(n as usize);
                        Reply::Bulk(Some(data))
                    }
                }
                "*" => {
                    let n = int()?;
                    if n < 0 {
                        Reply::Array(None)
                    } else if n > MAX_LEN {
                        return Err(proto_err("array reply too large"));
                    } else {
                        let mut items = Vec::new();
                        for _ in 0..n {
                            items.push(self.read().await?);
                        }
                        Reply::Array(Some(items))
                    }
                }
                _ => return Err(proto_err("unknown reply type")),
            })
        })
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Backend(format!("redis: {e}"))
}
