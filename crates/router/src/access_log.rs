//! Access log: one line per request on stdout and, for routed requests, on
//! `logs.<app_id>` (source RTR). The request path only moves a record with
//! cheap clones into a bounded channel (dropped and counted when full); a
//! writer thread formats lines and writes them to stdout through a buffer,
//! and an async task publishes them on NATS.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Uri, Version};
use proto::Bus;

use crate::lognats::{self, RawNats};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::table::Endpoint;

/// Everything known about a request when its response body ends.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub host: Option<HeaderValue>,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub status: u16,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub client: SocketAddr,
    pub endpoint: Option<Arc<Endpoint>>,
    pub x_forwarded_for: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub started: SystemTime,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

/// Bytes copied into a line as they are: printable ASCII but `"` and `\\`
/// (and, in unquoted fields, the space).
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0x20;
    while i < 0x7f {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// Appends a client-supplied field so that it cannot end its field or the
/// line: `"` → `\"`, `\\` → `\\\\`, control and non-ASCII bytes → `\xNN`, and
/// in an unquoted field (`quoted` false) the space → `\x20`. The line
/// stays one line of printable ASCII with its fields where they belong.
pub(crate) fn push_escaped(out: &mut Vec<u8>, s: &[u8], quoted: bool) {
    let mut rest = s;
    while let Some(i) = find_unplain(rest, quoted) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Index of the first byte of `s` that [`push_escaped`] escapes. Eight
/// bytes at a time, as [`find_escape`]: a word of plain bytes costs a few
/// instructions.
fn find_unplain(s: &[u8], quoted: bool) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut base = 0;
    for chunk in s.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let mut flagged = (w.wrapping_sub(0x20 * ONES) & !w & HIGH)
            | (w & HIGH)
            | has_zero(w ^ (u64::from(b'"') * ONES))
            | has_zero(w ^ (u64::from(b'\\') * ONES))
            | has_zero(w ^ (0x7f * ONES));
        if !quoted {
            flagged |= has_zero(w ^ (u64::from(b' ') * ONES));
        }
        if flagged != 0 {
            // The lowest flagged byte is exact (borrows only flag bytes
            // above a real match).
            return Some(base + (flagged.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    s[base..]
        .iter()
        .position(|&b| !PLAIN[usize::from(b)] || (!quoted && b == b' '))
        .map(|i| base + i)
}

/// A quoted header field: escaped, `-` when absent or empty.
fn push_text(out: &mut Vec<u8>, v: &Option<HeaderValue>) {
    match v.as_ref().map(HeaderValue::as_bytes) {
        Some(s) if !s.is_empty() => push_escaped(out, s, true),
        _ => out.push(b'-'),
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// "00" to "99".
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `n` in decimal (two digits per step).
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let d = usize::try_from(n % 100).unwrap_or(0) * 2;
        n /= 100;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    }
    if n >= 10 {
        let d = usize::try_from(n).unwrap_or(0) * 2;
        i -= 2;
        buf[i] = DIGIT_PAIRS[d];
        buf[i + 1] = DIGIT_PAIRS[d + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` zero-padded to `width` digits (n < 10^width).
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut n = n;
    for i in (0..width.min(20)).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width.min(20)]);
}

/// Appends `ip:port` without going through `fmt` for IPv4.
fn push_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            for (i, o) in a.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(*o));
            }
            out.push(b':');
            push_u64(out, u64::from(a.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// Formats wall-clock times as `2026-11-22T00:00:00.000`, formatting the
/// date and time of day only when the second changes.
#[derive(Default)]
pub struct TimeFormatter {
    second: Option<u64>,
    text: Vec<u8>,
}

impl TimeFormatter {
    /// Appends the UTC time `t` to the millisecond, without zone.
    pub fn push(&mut self, out: &mut Vec<u8>, t: SystemTime) {
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.text.clear();
            let dt = chrono::DateTime::<chrono::Utc>::from(
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            );
            let _ = write!(self.text, "{}", dt.format("%Y-%m-%dT%H:%M:%S"));
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        push_padded(out, u64::from(since.subsec_millis()), 3);
    }
}

impl AccessRecord {
    pub fn app_id(&self) -> Option<&str> {
        self.endpoint.as_ref().and_then(|e| e.app_id.as_deref())
    }

    /// The CF-style line.
    pub fn line(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_line(&mut out, &mut TimeFormatter::default());
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the CF-style line (no newline) to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>, time: &mut TimeFormatter) {
        let host = self
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .map(crate::table::normalize_host);
        match host.as_deref() {
            Some(h) if !h.is_empty() => push_escaped(out, h.as_bytes(), false),
            _ => out.push(b'-'),
        }
        out.extend_from_slice(b" - [");
        time.push(out, self.started);
        out.extend_from_slice(b"+0000] \"");
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        let path = self.uri.path_and_query().map_or("/", |pq| pq.as_str());
        push_escaped(out, path.as_bytes(), false);
        out.push(b' ');
        out.extend_from_slice(version_str(self.version).as_bytes());
        out.extend_from_slice(b"\" ");
        push_u64(out, u64::from(self.status));
        out.push(b' ');
        push_u64(out, self.bytes_in);
        out.push(b' ');
        push_u64(out, self.bytes_out);
        out.extend_from_slice(b" \"");
        push_text(out, &self.referer);
        out.extend_from_slice(b"\" \"");
        push_text(out, &self.user_agent);
        out.extend_from_slice(b"\" ");
        push_addr(out, &self.client);
        out.push(b' ');
        match &self.endpoint {
            Some(e) => out.extend_from_slice(e.address.as_bytes()),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" x_forwarded_for:\"");
        push_text(out, &self.x_forwarded_for);
        out.extend_from_slice(b"\" vcap_request_id:\"");
        push_text(out, &self.request_id);
        out.extend_from_slice(b"\" response_time:");
        let us = u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX);
        push_u64(out, us / 1_000_000);
        out.push(b'.');
        push_padded(out, us % 1_000_000, 6);
        out.extend_from_slice(b" app_id:\"");
        push_escaped(out, self.app_id().unwrap_or("-").as_bytes(), true);
        out.push(b'"');
    }
}

/// Bytes that JSON strings escape (control characters, `"`, `\\`, DEL).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

/// Index of the first byte of `s` that JSON escapes. Eight bytes at a
/// time: a word with no such byte is skipped with a few instructions.
fn find_escape(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut base = 0;
    for chunk in s.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let flagged = (w.wrapping_sub(0x20 * ONES) & !w & HIGH)
            | has_zero(w ^ (u64::from(b'"') * ONES))
            | has_zero(w ^ (u64::from(b'\\') * ONES))
            | has_zero(w ^ (0x7f * ONES));
        if flagged != 0 {
            // The lowest flagged byte is exact (borrows only flag bytes
            // above a real match).
            return Some(base + (flagged.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    s[base..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
        .map(|i| base + i)
}

/// Appends `s` as a JSON string (quoted, escaped). Runs of plain bytes are
/// copied whole.
fn push_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    while let Some(i) = find_escape(rest) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The JSON of a [`LogMessage`] from the router (source `RTR`, stdout, no
/// instance index) for `line`, written directly: the same document serde
/// would produce, without building a `LogMessage` per request.
fn log_message_json(out: &mut Vec<u8>, app_id: &str, timestamp: &[u8], line: &[u8]) {
    out.extend_from_slice(b"{\"app_id\":");
    push_json_str(out, app_id.as_bytes());
    out.extend_from_slice(
        b",\"source\":\"RTR\",\"instance_index\":null,\"stream\":\"stdout\",\"timestamp\":",
    );
    push_json_str(out, timestamp);
    out.extend_from_slice(b",\"line\":");
    push_json_str(out, line);
    out.push(b'}');
}

/// Whether `logs.<app_id>` is a plain NATS subject (no wildcards, spaces
/// or control characters) that can be written on the raw connection.
fn subject_safe(app_id: &str) -> bool {
    !app_id.is_empty()
        && app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !app_id.starts_with('.')
        && !app_id.ends_with('.')
        && !app_id.contains("..")
}

/// How often the writer thread writes the buffered lines while requests
/// come (its writes then hold the CPU for tens of microseconds at most).
pub const BATCH_INTERVAL: Duration = Duration::from_millis(5);
/// How often it looks when the last look found nothing.
pub const IDLE_INTERVAL: Duration = Duration::from_millis(10);
/// How often the raw NATS connection is read (to answer PINGs).
const SERVICE_INTERVAL: Duration = Duration::from_millis(100);

/// Most bytes of lines waiting for the writer thread; past it lines are
/// dropped and counted (stdout blocked, NATS gone).
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// Formatted lines waiting for the writer thread, and the formatter's
/// reusable state.
#[derive(Default)]
struct Pending {
    stdout: Vec<u8>,
    /// `PUB` records for the raw NATS connection.
    raw: Vec<u8>,
    raw_count: u64,
    /// Messages for the bus client (when there is no raw connection).
    bus: Vec<(async_nats::Subject, Bytes)>,
    time: TimeFormatter,
    line: Vec<u8>,
    stamp: Vec<u8>,
    json: Vec<u8>,
    /// Subject of the last app logged (usually the same), and whether it
    /// is a plain subject.
    raw_subject: (String, String, bool),
    bus_subject: Option<(String, async_nats::Subject)>,
}

struct Shared {
    pending: Mutex<Pending>,
    stdout: bool,
    /// Lines go to NATS: on the raw connection, else through the bus.
    nats: Option<bool>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle used by the proxy. Cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
}

impl AccessLog {
    /// Starts the writer thread (stdout when `stdout`) and, with a bus, the
    /// NATS publishing. Must be called inside a tokio runtime.
    ///
    /// A request's line (and its NATS message) is formatted on the request
    /// path into a shared buffer, as nginx does; the writer thread swaps
    /// the buffer out every [`BATCH_INTERVAL`] while requests come
    /// ([`IDLE_INTERVAL`] otherwise) and does the writes, so a slow stdout
    /// never blocks requests and nothing wakes a thread per request (the
    /// first version did: a futex wake and a context switch per request).
    ///
    /// With `nats` (its URL and the router's bus credentials), messages go
    /// to NATS through a connection of the
    /// thread's own ([`crate::lognats`]) when it can be made, else through
    /// the bus client.
    pub fn start(
        bus: Option<Bus>,
        nats: Option<(String, proto::busauth::BusCredentials)>,
        stdout: bool,
        metrics: Arc<Metrics>,
    ) -> AccessLog {
        let mut raw = match (&bus, nats) {
            (Some(_), Some((url, creds))) => RawNats::connect(&url, &creds, "router-access-log"),
            _ => None,
        };
        let nats_tx = match (&raw, bus) {
            (None, Some(bus)) => {
                let (ntx, mut nrx) = mpsc::channel::<Vec<(async_nats::Subject, Bytes)>>(256);
                tokio::spawn(async move {
                    while let Some(batch) = nrx.recv().await {
                        for (subject, payload) in batch {
                            if let Err(e) = bus.client().publish(subject, payload).await {
                                tracing::debug!(error = %e, "access log publish failed");
                            }
                        }
                    }
                });
                Some(ntx)
            }
            _ => None,
        };
        let nats = if raw.is_some() {
            Some(true)
        } else if nats_tx.is_some() {
            Some(false)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            stdout,
            nats,
            metrics,
        });
        let writer = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut spare = Pending::default();
                let mut serviced = Instant::now();
                let mut busy = false;
                loop {
                    std::thread::sleep(if busy { BATCH_INTERVAL } else { IDLE_INTERVAL });
                    let last = Arc::strong_count(&writer) == 1;
                    {
                        let mut p = writer.lock();
                        std::mem::swap(&mut p.stdout, &mut spare.stdout);
                        std::mem::swap(&mut p.raw, &mut spare.raw);
                        std::mem::swap(&mut p.bus, &mut spare.bus);
                        spare.raw_count = std::mem::take(&mut p.raw_count);
                    }
                    busy =
                        !spare.stdout.is_empty() || !spare.raw.is_empty() || !spare.bus.is_empty();
                    if !spare.stdout.is_empty() {
                        let _ = std::io::stdout().lock().write_all(&spare.stdout);
                        spare.stdout.clear();
                    }
                    if let Some(r) = raw.as_mut() {
                        if serviced.elapsed() >= SERVICE_INTERVAL {
                            serviced = Instant::now();
                            r.service();
                        }
                        if !spare.raw.is_empty() && !r.send(&spare.raw) {
                            for _ in 0..spare.raw_count {
                                writer.metrics.record_access_log_dropped();
                            }
                        }
                        spare.raw.clear();
                    }
                    if let Some(ntx) = &nats_tx {
                        if !spare.bus.is_empty() {
                            let batch = std::mem::take(&mut spare.bus);
                            let n = batch.len();
                            if ntx.try_send(batch).is_err() {
                                for _ in 0..n {
                                    writer.metrics.record_access_log_dropped();
                                }
                            }
                        }
                    }
                    if last {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access log thread");
        }
        AccessLog {
            shared: Some(shared),
        }
    }

    /// An access log that writes nowhere (unit tests).
    pub fn disabled(_metrics: Arc<Metrics>) -> AccessLog {
        AccessLog { shared: None }
    }

    /// Formats the record's line (and NATS message) into the buffer.
    pub fn emit(&self, record: AccessRecord) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut guard = shared.lock();
        let p = &mut *guard;
        if p.stdout.len() + p.raw.len() > MAX_PENDING || p.bus.len() > MAX_PENDING / 256 {
            drop(guard);
            shared.metrics.record_access_log_dropped();
            return;
        }
        p.line.clear();
        record.write_line(&mut p.line, &mut p.time);
        if shared.stdout {
            p.stdout.extend_from_slice(&p.line);
            p.stdout.push(b'\n');
        }
        let (Some(raw), Some(app_id)) = (shared.nats, record.app_id()) else {
            return;
        };
        // The message's timestamp: when the request came.
        p.stamp.clear();
        p.time.push(&mut p.stamp, record.started);
        p.stamp.push(b'Z');
        p.json.clear();
        log_message_json(&mut p.json, app_id, &p.stamp, &p.line);
        if raw && p.raw_subject.0 != app_id {
            let safe = subject_safe(app_id);
            p.raw_subject = (app_id.to_string(), proto::subjects::logs(app_id), safe);
        }
        if raw && p.raw_subject.2 {
            lognats::push_pub(&mut p.raw, p.raw_subject.1.as_bytes(), &p.json);
            p.raw_count += 1;
        } else if raw {
            // Not a plain subject: let the server refuse it, not the
            // shared connection.
            shared.metrics.record_access_log_dropped();
        } else {
            let subject = match &p.bus_subject {
                Some((a, s)) if a == app_id => s.clone(),
                _ => {
                    let s = async_nats::Subject::from(proto::subjects::logs(app_id));
                    p.bus_subject = Some((app_id.to_string(), s.clone()));
                    s
                }
            };
            let payload = Bytes::copy_from_slice(&p.json);
            p.bus.push((subject, payload));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_cf_like_line() {
        let r = AccessRecord {
            host: Some(HeaderValue::from_static("App.localhost:8080")),
            method: Method::GET,
            uri: "/x?y=1".parse().expect("uri"),
            version: Version::HTTP_11,
            status: 200,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8")),
            client: "127.0.0.1:5000".parse().expect("addr"),
            endpoint: Some(Arc::new(Endpoint::new(
                "127.0.0.1:6000".into(),
                Some("a1".into()),
                None,
                Default::default(),
            ))),
            x_forwarded_for: Some(HeaderValue::from_static("127.0.0.1")),
            request_id: Some(HeaderValue::from_static("rid")),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_305_600),
            bytes_in: 3,
            bytes_out: 12,
            elapsed: Duration::from_millis(5),
        };
        assert_eq!(
            r.line(),
            "app.localhost - [2026-11-22T00:00:00.000+0000] \"GET /x?y=1 HTTP/1.1\" 200 3 12 \"-\" \"curl/8\" 127.0.0.1:5000 127.0.0.1:6000 x_forwarded_for:\"127.0.0.1\" vcap_request_id:\"rid\" response_time:0.005000 app_id:\"a1\""
        );
        let mut time = TimeFormatter::default();
        let mut out = Vec::new();
        time.push(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_305_661_042),
        );
        assert_eq!(out, b"2026-11-22T00:01:01.042");
        out.clear();
        time.push(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_305_661_999),
        );
        assert_eq!(out, b"2026-11-22T00:01:01.999");
    }

    /// Splits a line into fields: quoted ones (with `\\` escapes) whole,
    /// others at spaces.
    fn fields(line: &str) -> Vec<String> {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if quoted => {
                    cur.push(c);
                    cur.extend(chars.next());
                }
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ' ' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        fields
    }

    #[test]
    fn finds_bytes_to_escape_in_log_fields() {
        for len in 0..40 {
            for pos in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xff] {
                    let mut s = vec![b'a'; len];
                    s[pos] = bad;
                    assert_eq!(
                        find_unplain(&s, true),
                        Some(pos),
                        "len {len} pos {pos} byte {bad}"
                    );
                    assert_eq!(
                        find_unplain(&s, false),
                        Some(pos),
                        "len {len} pos {pos} byte {bad}"
                    );
                }
                let mut s = vec![b'~'; len];
                s[pos] = b' ';
                assert_eq!(find_unplain(&s, true), None);
                assert_eq!(find_unplain(&s, false), Some(pos));
            }
        }
    }

    #[test]
    fn client_fields_cannot_forge_fields_or_lines() {
        let record = |ua: &'static [u8], referer: &'static [u8], host: &'static str| AccessRecord {
            host: Some(HeaderValue::from_static(host)),
            method: Method::GET,
            uri: "/x?q=%22".parse().expect("uri"),
            version: Version::HTTP_11,
            status: 200,
            referer: Some(HeaderValue::from_bytes(referer).expect("referer")),
            user_agent: Some(HeaderValue::from_bytes(ua).expect("ua")),
            client: "127.0.0.1:5000".parse().expect("addr"),
            endpoint: None,
            x_forwarded_for: Some(HeaderValue::from_static("1.2.3.4")),
            request_id: Some(HeaderValue::from_static("rid")),
            started: SystemTime::UNIX_EPOCH,
            bytes_in: 0,
            bytes_out: 0,
            elapsed: Duration::ZERO,
        };
        let plain = record(b"curl/8", b"-", "a.example").line();
        let want = fields(&plain).len();
        for (ua, referer, host) in [
            (&b"x\" 200 0 0 \"forged"[..], &b"r"[..], "a.example"),
            (b"back\\slash\\\" \"y", b"\"\"", "a.example"),
            (b"tab\there \xff\xfe obs-text", b"a\\", "a.example"),
            (b"ends with backslash\\", b"\\\"", "a b.example"),
        ] {
            let line = record(ua, referer, host).line();
            assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line}");
            assert_eq!(fields(&line).len(), want, "{line}");
            assert!(line.ends_with("app_id:\"-\""), "{line}");
        }
        let line = record(b"a\"b\\c\t", b"-", "h.example").line();
        assert!(line.contains("\"a\\\"b\\\\c\\x09\""), "{line}");
        // A header value cannot hold a newline (the parsers refuse it),
        // but the escaping does not depend on that.
        let mut out = Vec::new();
        push_escaped(&mut out, b"one\r\ntwo", true);
        assert_eq!(out, b"one\\x0d\\x0atwo");
    }

    #[test]
    fn formats_integers() {
        for n in [
            0u64,
            7,
            10,
            99,
            100,
            101,
            12_345,
            1_795_305_661_042,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn finds_bytes_to_escape() {
        for len in 0..40 {
            for pos in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', 0x7f] {
                    let mut s = vec![b'a'; len];
                    s[pos] = bad;
                    assert_eq!(find_escape(&s), Some(pos), "len {len} pos {pos} byte {bad}");
                }
                let mut s = vec![0xc3u8; len];
                s[pos] = b' ';
                assert_eq!(find_escape(&s), None);
            }
        }
    }

    #[test]
    fn log_message_json_is_what_serde_reads() {
        let line = "a \"quoted\" \\ line\twith\u{1} controls and ünïcode";
        let mut json = Vec::new();
        log_message_json(
            &mut json,
            "app-1",
            b"2026-11-22T00:00:00.000Z",
            line.as_bytes(),
        );
        let msg: proto::LogMessage = serde_json::from_slice(&json).expect("valid json");
        assert_eq!(msg.app_id, "app-1");
        assert_eq!(msg.source, proto::LogSource::Rtr);
        assert_eq!(msg.instance_index, None);
        assert_eq!(msg.stream, proto::LogStream::Stdout);
        assert_eq!(msg.timestamp, "2026-11-22T00:00:00.000Z");
        assert_eq!(msg.line, line);
    }
}
