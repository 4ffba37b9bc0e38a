//! A private nats-server (JetStream on) per test, on a port it binds
//! itself, killed on drop; or a cluster of three ([`NatsCluster`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A nats-server child process with its own store dir and log file.
pub struct NatsServer {
    child: Option<Child>,
    bin: PathBuf,
    /// The client port; kept across [`NatsServer::restart`].
    pub port: u16,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// nats-server's own config file (`-c`), when started with one.
    conf: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server on a port of its own choosing (`-p -1`, read back
    /// from its ports file: no bind-release-rebind race) and waits until it
    /// accepts connections.
    pub fn start() -> Result<NatsServer> {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), with nats-server's config file holding
    /// `conf` (users and permissions: `proto::busauth::server_config`),
    /// written 0600; command-line flags still choose the port and store.
    pub fn start_with_config(conf: &str) -> Result<NatsServer> {
        Self::start_inner(Some(conf))
    }

    fn start_inner(conf: Option<&str>) -> Result<NatsServer> {
        let bin =
            proto::nats_server::find().ok_or_else(|| anyhow!(proto::nats_server::NOT_FOUND))?;
        let dir = tempfile::Builder::new().prefix("testkit-nats-").tempdir()?;
        let mut n = NatsServer {
            child: None,
            bin,
            port: 0,
            url: String::new(),
            log: dir.path().join("nats.log"),
            conf: None,
            dir,
        };
        if let Some(text) = conf {
            let path = n.dir.path().join("nats.conf");
            write_private(&path, text)?;
            n.conf = Some(path);
        }
        n.spawn(None)?;
        Ok(n)
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<()> {
        let store = self.dir.path().join("store");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut args = Vec::new();
        if let Some(c) = &self.conf {
            args.extend(["-c".to_string(), c.display().to_string()]);
        }
        args.extend(proto::nats_server::args(port, &store, self.dir.path()));
        let child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let dir = self.dir.path().to_path_buf();
        let port =
            crate::wait_for_blocking("nats-server's ports file", Duration::from_secs(10), || {
                proto::nats_server::read_port(&dir, pid)
            })
            .map_err(|e| anyhow!("{e}\n{}", self.log_tail(20)))?;
        self.port = port;
        self.url = format!("nats://127.0.0.1:{port}");
        crate::wait_for_blocking(
            "nats-server to accept connections",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        )?;
        Ok(())
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s); the store stays.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and store (after
    /// [`stop`](Self::stop) or [`kill`](Self::kill)).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn(Some(self.port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        crate::log_tail(&self.log, n)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGTERM, then SIGKILL after 5 s; reaped either way.
fn terminate(mut c: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let exited = crate::wait_for_blocking("nats-server to exit", Duration::from_secs(5), || {
        c.try_wait().ok().flatten()
    });
    if exited.is_err() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// How many nodes a [`NatsCluster`] runs.
pub const CLUSTER_NODES: usize = 3;

/// Three nats-server processes routed to each other as one cluster
/// (docs/architecture.md §3.5), JetStream clustered across them, killed on
/// drop. Each node has its own store dir, log and `server_name` (`n0`..),
/// a client port it picks itself (`-p -1`, read back from its ports file)
/// and a monitoring port it picks itself; routes log in with a user and
/// password generated per cluster. Components connect with
/// [`urls`](Self::urls), the comma-separated seed list `proto::Bus`
/// takes, and keep working while any one node is down.
///
/// Cluster ports: nodes 1 and 2 pick theirs (`listen: 127.0.0.1:-1`).
/// Clustered JetStream refuses to start on a node without configured routes
/// (nats-server exits: "JetStream cluster requires configured routes"), so
/// the first node must be told a route before anything runs: its own
/// cluster port, chosen with [`crate::free_port`], which every node is
/// seeded with (a route to itself is dropped as a duplicate). A restarted
/// node gets the same client and cluster ports, its store, and routes to
/// every node.
pub struct NatsCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    name: String,
    route_user: String,
    route_password: String,
    /// Users and permissions (`proto::busauth::server_config`), the same
    /// on every node.
    users_conf: Option<String>,
    nodes: Vec<Node>,
}

struct Node {
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Client port; 0 before the first start.
    port: u16,
    /// Route listener; `None` before the first start: the server picks it.
    cluster_port: Option<u16>,
    /// HTTP monitoring (`/routez`, `/jsz`, `/healthz`), picked anew at
    /// every start.
    monitor_port: u16,
}

impl NatsCluster {
    /// Starts [`CLUSTER_NODES`] nodes without authorization and waits
    /// until they form a cluster with a JetStream meta leader.
    pub fn start() -> Result<NatsCluster> {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), each node's config holding `conf`
    /// (users and permissions: `proto::busauth::server_config`), as
    /// [`NatsServer::start_with_config`].
    pub fn start_with_config(conf: &str) -> Result<NatsCluster> {
        Self::start_inner(Some(conf))
    }

    fn start_inner(conf: Option<&str>) -> Result<NatsCluster> {
        let bin =
            proto::nats_server::find().ok_or_else(|| anyhow!(proto::nats_server::NOT_FOUND))?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-cluster-")
            .tempdir()?;
        let nodes = (0..CLUSTER_NODES)
            .map(|i| {
                let d = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&d)?;
                Ok(Node {
                    log: d.join("nats.log"),
                    dir: d,
                    child: None,
                    port: 0,
                    cluster_port: None,
                    monitor_port: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut c = NatsCluster {
            bin,
            dir,
            name: format!("paas-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            route_user: "route".into(),
            route_password: proto::busauth::random_secret(),
            users_conf: conf.map(str::to_string),
            nodes,
        };
        // The seed: the only port told before the start (see above); taken
        // by another process between the probe and the bind, another one.
        let mut attempt = 0;
        loop {
            c.nodes[0].cluster_port = Some(crate::free_port());
            match c.spawn(0) {
                Ok(()) => break,
                Err(e) if attempt >= 2 => return Err(e),
                Err(_) => {
                    c.kill(0);
                    attempt += 1;
                }
            }
        }
        for i in 1..CLUSTER_NODES {
            c.spawn(i)?;
        }
        c.wait_formed(Duration::from_secs(30))?;
        Ok(c)
    }

    /// The node's config: users, monitoring, the cluster and its routes
    /// (every node whose cluster port is known, itself included).
    fn config(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let listen = n
            .cluster_port
            .map_or_else(|| "-1".to_string(), |p| p.to_string());
        let routes: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|o| o.cluster_port)
            .map(|p| {
                format!(
                    "    \"nats-route://{}:{}@127.0.0.1:{p}\"",
                    self.route_user, self.route_password
                )
            })
            .collect();
        format!(
            "server_name: \"n{i}\"\n{}\nhttp: \"127.0.0.1:-1\"\ncluster {{\n  name: \"{}\"\n  listen: \"127.0.0.1:{listen}\"\n  authorization {{ user: \"{}\", password: \"{}\" }}\n  routes: [\n{}\n  ]\n}}\n",
            self.users_conf.as_deref().unwrap_or(""),
            self.name,
            self.route_user,
            self.route_password,
            routes.join("\n"),
        )
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let conf = self.nodes[i].dir.join("nats.conf");
        write_private(&conf, &self.config(i))?;
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let mut args = vec!["-c".to_string(), conf.display().to_string()];
        let port = (n.port != 0).then_some(n.port);
        args.extend(proto::nats_server::args(port, &n.dir.join("store"), &n.dir));
        let child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let pid = child.id();
        n.child = Some(child);
        let dir = n.dir.clone();
        let ports = crate::wait_for_blocking(
            "nats-server's ports file (client, cluster and monitoring ports)",
            Duration::from_secs(10),
            || {
                proto::nats_server::read_ports(&dir, pid)
                    .filter(|p| p.cluster.is_some() && p.monitoring.is_some())
            },
        )
        .map_err(|e| anyhow!("node n{i}: {e}\n{}", crate::log_tail(&n.log, 20)))?;
        n.port = ports.client;
        n.cluster_port = ports.cluster;
        n.monitor_port = ports.monitoring.unwrap_or_default();
        let port = n.port;
        crate::wait_for_blocking(
            "nats-server to accept connections",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        )?;
        Ok(())
    }

    /// Every node's client URL, comma-separated (`nats://127.0.0.1:P0,...`):
    /// a component's `nats_url`.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s client port (kept across restarts).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s route port (kept across restarts).
    pub fn cluster_port(&self, i: usize) -> Option<u16> {
        self.nodes[i].cluster_port
    }

    /// Node `i`'s monitoring base URL (`http://127.0.0.1:P`) while it runs.
    pub fn monitor_url(&self, i: usize) -> Option<String> {
        self.nodes[i]
            .child
            .as_ref()
            .map(|_| format!("http://127.0.0.1:{}", self.nodes[i].monitor_port))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Kills node `i` at once (SIGKILL); its store stays.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops node `i` (SIGTERM, then SIGKILL after 5 s); its store stays.
    pub fn stop(&mut self, i: usize) {
        if let Some(c) = self.nodes[i].child.take() {
            terminate(c);
        }
    }

    /// Starts node `i` again on the same client and cluster ports and store
    /// (after [`kill`](Self::kill) or [`stop`](Self::stop)), routed to every
    /// node. It has rejoined when [`wait_formed`](Self::wait_formed) passes.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Node `i`'s log file.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i].log
    }

    /// The last `n` lines of every node's log.
    pub fn logs_tail(&self, n: usize) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("--- nats n{i} ---\n{}\n", crate::log_tail(&node.log, n)))
            .collect()
    }

    /// The cluster's directory (a subdirectory `n<i>` per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The monitoring ports of the nodes that should be running.
    fn running_monitors(&self) -> Vec<(usize, u16)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.child.is_some())
            .map(|(i, n)| (i, n.monitor_port))
            .collect()
    }

    /// Waits until the running nodes form a cluster: each has a route to
    /// every other running node, they agree on a JetStream meta leader,
    /// and each reports itself healthy (`/healthz`: current with the meta
    /// leader and every stream it holds a replica of). After a
    /// [`restart`](Self::restart), this is the node having rejoined and
    /// caught up; after a [`kill`](Self::kill), the others having elected
    /// new leaders where the dead node led.
    pub fn wait_formed(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match formed(&self.running_monitors()) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                bail!(
                    "the NATS cluster did not form within {timeout:?}: {why}\n{}",
                    self.logs_tail(15)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`wait_formed`](Self::wait_formed) for async code (the checks run
    /// on the blocking pool).
    pub async fn wait_formed_async(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let monitors = self.running_monitors();
            let why = match tokio::task::spawn_blocking(move || formed(&monitors)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(why)) => why,
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the NATS cluster did not form within {timeout:?}: {why}\n{}",
                    self.logs_tail(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Whether the nodes with these monitoring ports form one healthy cluster;
/// what is missing when not.
fn formed(monitors: &[(usize, u16)]) -> std::result::Result<(), String> {
    let mut leaders = Vec::new();
    for &(i, port) in monitors {
        let routez = monitor_get(port, "/routez").ok_or(format!("n{i}: no /routez"))?;
        let routes = routez["num_routes"].as_u64().unwrap_or(0);
        if routes + 1 != monitors.len() as u64 {
            return Err(format!(
                "n{i} has {routes} routes, {} other nodes run",
                monitors.len() - 1
            ));
        }
        let jsz = monitor_get(port, "/jsz").ok_or(format!("n{i}: no /jsz"))?;
        let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or("");
        if leader.is_empty() {
            return Err(format!("n{i} knows no JetStream meta leader"));
        }
        leaders.push(leader.to_string());
        let health = monitor_get(port, "/healthz").ok_or(format!("n{i}: no /healthz"))?;
        if health["status"] != "ok" {
            return Err(format!("n{i} is not healthy: {health}"));
        }
    }
    leaders.dedup();
    if leaders.len() > 1 {
        return Err(format!(
            "the nodes disagree on the meta leader: {leaders:?}"
        ));
    }
    Ok(())
}

/// GET `path` from a node's monitoring port, as JSON (also for a non-2xx
/// status: `/healthz` answers 503 with a JSON body).
fn monitor_get(port: u16, path: &str) -> Option<serde_json::Value> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    // HTTP/1.0: the server closes the connection after its answer.
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// Writes `text` to a new file only its owner may read (0600), as `cf dev
/// start` writes configs holding secrets (`proto::config::write_private`).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    proto::config::write_private(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_its_own_port_and_restarts_on_it() {
        let mut n = NatsServer::start().expect("nats-server");
        assert_ne!(n.port, 0);
        assert!(std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok());
        let port = n.port;
        n.stop();
        n.restart().expect("restart");
        assert_eq!(n.port, port);
        drop(n);
        crate::wait_for_blocking("the port to close", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        })
        .expect("killed on drop");
    }

    /// Publishes on `pub_bus` until `sub` hears it (10 s at most).
    async fn heard(
        pub_bus: &proto::Bus,
        sub: &mut proto::bus::Subscription<serde_json::Value>,
        what: &str,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let _ = pub_bus.publish("t.ping", &serde_json::json!({})).await;
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        }
    }

    /// Messages cross the routes; a client given the seed list carries on
    /// on another node when its own is killed; a node comes back on its
    /// ports and rejoins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_routes_survives_a_node_and_restarts_on_its_ports() {
        let mut c = NatsCluster::start().expect("nats cluster");
        assert_eq!(c.urls().split(',').count(), CLUSTER_NODES);
        let sub_bus = proto::Bus::connect(&c.urls(), "sub").await.expect("sub");
        let node_of = |b: &proto::Bus| {
            let name = b.client().server_info().server_name;
            name.strip_prefix('n')
                .and_then(|i| i.parse::<usize>().ok())
                .expect("server_name n<i>")
        };
        let k = node_of(&sub_bus);
        let j = (k + 1) % CLUSTER_NODES;
        let pub_bus = proto::Bus::connect(&c.url(j), "pub").await.expect("pub");
        let mut sub = sub_bus
            .subscribe::<serde_json::Value>("t.ping")
            .await
            .expect("subscribe");
        heard(&pub_bus, &mut sub, "a message from another node").await;

        let (port, cluster_port) = (c.port(k), c.cluster_port(k));
        c.kill(k);
        c.wait_formed_async(Duration::from_secs(20))
            .await
            .expect("the other two");
        heard(&pub_bus, &mut sub, "the subscriber on another node").await;
        assert_ne!(node_of(&sub_bus), k);

        c.restart(k).expect("restart");
        assert_eq!((c.port(k), c.cluster_port(k)), (port, cluster_port));
        c.wait_formed_async(Duration::from_secs(20))
            .await
            .expect("rejoined");
        drop(c);
        crate::wait_for_blocking("the ports to close", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        })
        .expect("killed on drop");
    }
}
