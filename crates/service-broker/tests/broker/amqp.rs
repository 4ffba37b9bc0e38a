//! A minimal AMQP 0-9-1 client for the tests: PLAIN login to a vhost,
//! one channel, queue.declare, basic.publish, basic.get.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Amqp {
    s: TcpStream,
}

fn shortstr(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn longstr(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

impl Amqp {
    /// Logs in as `user` to `vhost`; an Err says why the server refused.
    pub async fn connect(
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        vhost: &str,
    ) -> Result<Amqp, String> {
        let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let mut a = Amqp { s };
        a.s.write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .map_err(|e| e.to_string())?;
        a.expect(0, 10, 10).await?; // connection.start
        let mut args = Vec::new();
        args.extend_from_slice(&0u32.to_be_bytes()); // client-properties: {}
        shortstr(&mut args, "PLAIN");
        longstr(&mut args, format!("\0{user}\0{password}").as_bytes());
        shortstr(&mut args, "en_US");
        a.send_method(0, 10, 11, &args).await?;
        let tune = a.expect(0, 10, 30).await?;
        let channel_max = u16::from_be_bytes([tune[0], tune[1]]);
        let mut args = Vec::new();
        args.extend_from_slice(&channel_max.to_be_bytes());
        args.extend_from_slice(&131072u32.to_be_bytes());
        args.extend_from_slice(&0u16.to_be_bytes());
        a.send_method(0, 10, 31, &args).await?;
        let mut args = Vec::new();
        shortstr(&mut args, vhost);
        shortstr(&mut args, "");
        args.push(0);
        a.send_method(0, 10, 40, &args).await?;
        a.expect(0, 10, 41).await?;
        let mut args = Vec::new();
        shortstr(&mut args, "");
        a.send_method(1, 20, 10, &args).await?;
        a.expect(1, 20, 11).await?;
        Ok(a)
    }

    async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Result<(), String> {
        let mut f = vec![kind];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        self.s
            .write_all(&f)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    async fn send_method(
        &mut self,
        channel: u16,
        class: u16,
        method: u16,
        args: &[u8],
    ) -> Result<(), String> {
        let mut p = Vec::new();
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&method.to_be_bytes());
        p.extend_from_slice(args);
        self.send_frame(1, channel, &p).await
    }

    /// (type, channel, payload); Err on EOF.
    async fn read_frame(&mut self) -> Result<(u8, u16, Vec<u8>), String> {
        let mut h = [0u8; 7];
        self.s
            .read_exact(&mut h)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
        if size > 1 << 20 {
            return Err("frame too large".into());
        }
        let mut p = vec![0u8; size + 1];
        self.s
            .read_exact(&mut p)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if p.pop() != Some(0xCE) {
            return Err("bad frame end".into());
        }
        Ok((h[0], u16::from_be_bytes([h[1], h[2]]), p))
    }

    /// The next method frame's (class, method, args), skipping heartbeats;
    /// a connection.close or channel.close is an Err with its reply text.
    async fn next_method(&mut self) -> Result<(u16, u16, Vec<u8>), String> {
        loop {
            let (kind, _, p) = self.read_frame().await?;
            if kind == 8 {
                continue;
            }
            if kind != 1 || p.len() < 4 {
                return Err(format!("unexpected frame type {kind}"));
            }
            let class = u16::from_be_bytes([p[0], p[1]]);
            let method = u16::from_be_bytes([p[2], p[3]]);
            let args = p[4..].to_vec();
            if (class, method) == (10, 50) || (class, method) == (20, 40) {
                let code = args
                    .get(..2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .unwrap_or(0);
                let len = args.get(2).copied().unwrap_or(0) as usize;
                let text =
                    String::from_utf8_lossy(args.get(3..3 + len).unwrap_or(&[])).into_owned();
                return Err(format!("closed by server: {code} {text}"));
            }
            return Ok((class, method, args));
        }
    }

    async fn expect(&mut self, _channel: u16, class: u16, method: u16) -> Result<Vec<u8>, String> {
        let (c, m, args) = tokio::time::timeout(Duration::from_secs(10), self.next_method())
            .await
            .map_err(|_| "no answer in 10 s".to_string())??;
        if (c, m) != (class, method) {
            return Err(format!("expected {class}.{method}, got {c}.{m}"));
        }
        Ok(args)
    }

    pub async fn declare_queue(&mut self, queue: &str) -> Result<(), String> {
        let mut args = 0u16.to_be_bytes().to_vec();
        shortstr(&mut args, queue);
        args.push(0);
        args.extend_from_slice(&0u32.to_be_bytes());
        self.send_method(1, 50, 10, &args).await?;
        self.expect(1, 50, 11).await.map(|_| ())
    }

    pub async fn publish(&mut self, queue: &str, body: &[u8]) -> Result<(), String> {
        let mut args = 0u16.to_be_bytes().to_vec();
        shortstr(&mut args, "");
        shortstr(&mut args, queue);
        args.push(0);
        self.send_method(1, 60, 40, &args).await?;
        let mut header = Vec::new();
        header.extend_from_slice(&60u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        self.send_frame(2, 1, &header).await?;
        self.send_frame(3, 1, body).await
    }

    /// One message from `queue` (auto-ack), None when it is empty.
    pub async fn get(&mut self, queue: &str) -> Result<Option<Vec<u8>>, String> {
        let mut args = 0u16.to_be_bytes().to_vec();
        shortstr(&mut args, queue);
        args.push(1);
        self.send_method(1, 60, 70, &args).await?;
        let (c, m, _) = tokio::time::timeout(Duration::from_secs(10), self.next_method())
            .await
            .map_err(|_| "no answer in 10 s".to_string())??;
        match (c, m) {
            (60, 72) => Ok(None),
            (60, 71) => {
                let (_, _, header) = self.read_frame().await?;
                let size = u64::from_be_bytes(header[4..12].try_into().map_err(|_| "bad header")?)
                    as usize;
                let mut body = Vec::new();
                while body.len() < size {
                    let (_, _, part) = self.read_frame().await?;
                    body.extend_from_slice(&part);
                }
                Ok(Some(body))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// Whether the server ends this connection (close or EOF) within
    /// `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                if self.next_method().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}
