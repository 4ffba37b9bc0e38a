//! Shared helpers of the router tests: a real nats-server per test, the
//! router in-process (or as its binary), real backend HTTP servers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::{subjects, Bus, RouteRegistration};
use tokio::net::TcpListener;

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub use testkit::NatsServer as Nats;

pub async fn wait_file(path: &Path) -> SocketAddr {
    let line = testkit::wait_file(path, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    line.parse().expect("an address in the addr file")
}

/// The router running in this process.
pub struct Router {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A config for tests: ports 0, access log only on NATS.
pub fn test_config(nats_url: &str) -> router::Config {
    router::Config {
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        nats_url: nats_url.into(),
        access_log_stdout: false,
        ..Default::default()
    }
}

impl Router {
    pub async fn start(nats_url: &str) -> Router {
        Router::start_with(test_config(nats_url)).await
    }

    pub async fn start_with(mut config: router::Config) -> Router {
        let dir = tempfile::tempdir().expect("tmp");
        config.addr_file = Some(dir.path().join("addr"));
        config.admin_addr_file = Some(dir.path().join("admin"));
        let with_tls = config.tls_listen.is_some();
        config.tls_addr_file = Some(dir.path().join("tls"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            router::run(config, async {
                let _ = rx.await;
            })
            .await
            .expect("router run");
        });
        let addr = wait_file(&dir.path().join("addr")).await;
        let admin = wait_file(&dir.path().join("admin")).await;
        let tls = if with_tls {
            Some(wait_file(&dir.path().join("tls")).await)
        } else {
            None
        };
        Router {
            addr,
            admin,
            tls,
            stop: Some(tx),
            task,
            _dir: dir,
        }
    }

    /// Asks the router to stop (drain starts) without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn stop(mut self) {
        self.signal_stop();
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("router stops")
            .expect("join");
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// A backend answering its name (and `name:body` for requests with a body),
/// recording request headers. Stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Serves `handler` on a fresh port until the returned task is aborted;
/// aborting also closes the accepted connections.
pub async fn serve<H, F>(handler: H) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            conns.spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, task)
}

pub fn text(body: impl Into<Bytes>) -> Response<BoxBody> {
    Response::new(Full::new(body.into()).boxed())
}

pub async fn backend(name: &'static str) -> Backend {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    let (addr, task) = serve(move |req: Request<Incoming>| {
        let seen = seen2.clone();
        let hits = hits2.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            seen.lock().expect("lock").push(req.headers().clone());
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            if body.is_empty() {
                text(name)
            } else {
                text(format!("{name}:{}", String::from_utf8_lossy(&body)))
            }
        }
    })
    .await;
    Backend {
        addr,
        seen,
        hits,
        task,
    }
}

pub fn reg(uri: &str, addr: SocketAddr, instance: &str, stale: Option<u64>) -> RouteRegistration {
    RouteRegistration {
        host: addr.ip().to_string(),
        port: addr.port(),
        uris: vec![uri.to_string()],
        app_id: Some("app-1".into()),
        instance_id: Some(instance.into()),
        tags: BTreeMap::from([("component".to_string(), "test".to_string())]),
        stale_threshold_s: stale,
    }
}

pub async fn register(bus: &Bus, r: &RouteRegistration) {
    bus.publish(subjects::ROUTER_REGISTER, r)
        .await
        .expect("pub");
    bus.flush().await.expect("flush");
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn request(
    c: &TestClient,
    router: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder()
        .uri(format!("http://{router}{path}"))
        .header("host", host)
        .header("user-agent", "e2e");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c
        .request(req.body(Full::new(Bytes::new())).expect("req"))
        .await
        .expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub async fn get(
    c: &TestClient,
    router: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, HeaderMap, String) {
    request(c, router, host, path, &[]).await
}

pub async fn wait_status(c: &TestClient, router: SocketAddr, host: &str, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, _) = get(c, router, host, "/").await;
        if s == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host} never answered {want}, last {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `/routes` lists `n` endpoints for `key`.
pub async fn wait_endpoints(c: &TestClient, admin: SocketAddr, key: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = get(c, admin, "admin", "/routes").await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let have = v[key].as_array().map_or(0, Vec::len);
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key}: {have} endpoints, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A metric's value from `/metrics` (first line starting with `prefix `).
pub async fn metric(c: &TestClient, admin: SocketAddr, prefix: &str) -> Option<f64> {
    let (_, _, body) = get(c, admin, "admin", "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(prefix).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// Reads an HTTP/1.1 response head from a raw stream.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("read head in time")
            .expect("read");
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The router binary built next to this test.
pub fn router_bin() -> &'static str {
    env!("CARGO_BIN_EXE_router")
}

/// The router as a separate process (for stdout and memory measurements).
pub struct RouterProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub stdout: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl RouterProcess {
    pub async fn start(nats_url: &str, extra_toml: &str) -> RouterProcess {
        let dir = tempfile::tempdir().expect("tmp");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\naddr_file = \"{a}\"\nadmin_addr_file = \"{b}\"\nnats_url = \"{nats_url}\"\n{extra_toml}\n",
            a = dir.path().join("addr").display(),
            b = dir.path().join("admin").display(),
        );
        let cfg = dir.path().join("router.toml");
        std::fs::write(&cfg, toml).expect("config");
        let stdout = dir.path().join("stdout.log");
        let child = Command::new(router_bin())
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn router");
        let addr = wait_file(&dir.path().join("addr")).await;
        let admin = wait_file(&dir.path().join("admin")).await;
        RouterProcess {
            child,
            addr,
            admin,
            stdout,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        testkit::rss_kib(self.child.id()).expect("the router's VmRSS")
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        // Fields after the command name, which ends with the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
        // utime and stime are fields 14 and 15 of the line (11, 12 here).
        field(11) + field(12)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "router did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay in front of NATS that can be cut and restored, so that only
/// the router loses its connection while the test keeps watching the bus.
pub struct Relay {
    pub port: u16,
    target: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    pub async fn new(target: u16) -> Relay {
        // Port 0 the first time; `restore` rebinds the same port.
        let mut r = Relay {
            port: 0,
            target,
            task: None,
        };
        r.restore();
        r
    }

    pub fn restore(&mut self) {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_reuseaddr(true).expect("reuseaddr");
        sock.bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .expect("bind relay");
        let listener = sock.listen(64).expect("listen");
        self.port = listener.local_addr().expect("relay addr").port();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut down, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        }));
    }

    pub async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}
