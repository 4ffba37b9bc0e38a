//! `paas lab up|down|status --dir D` (what `cf dev start --hosts N`, `cf
//! dev stop` and `cf dev status` run): a platform on N simulated hosts
//! left running in the background, everything it made recorded in
//! `D/lab.json` so that `down` removes it all, from another process.
//!
//! `D` holds the manifest the deployer used (`paas.yml`), the agents'
//! token, the releases, each host's state dir (`hosts/<host>/`), the
//! agents' logs (`logs/`) and the deployment's state (`.paas/dev/`:
//! timeline, secrets). The database stays between runs (it holds the
//! apps, and the shared blobstore their packages and droplets).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{haproxy, layout, net::Net, procs, release, LabError};

type Result<T> = std::result::Result<T, LabError>;

/// The deployment's name in the manifest.
pub const NAME: &str = "dev";

/// What `paas lab up` needs.
pub struct UpArgs {
    pub dir: PathBuf,
    pub hosts: usize,
    /// The load balancer's port on 127.0.0.1.
    pub lb_port: u16,
    /// The platform's database (created when missing).
    pub database_url: String,
    /// Where this build's binaries are (`paas` among them).
    pub bin_dir: PathBuf,
}

/// What `paas lab up` made and left running.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub net: Net,
    /// (name, address, roles).
    pub hosts: Vec<(String, Ipv4Addr, Vec<String>)>,
    pub agents: Vec<u32>,
    pub haproxy: Option<u32>,
    pub lb: SocketAddr,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

fn io(what: &Path, e: std::io::Error) -> LabError {
    LabError(format!("{}: {e}", what.display()))
}

fn save(dir: &Path, r: &Record) -> Result<()> {
    let text = serde_json::to_string_pretty(r).map_err(|e| LabError(e.to_string()))?;
    let path = record_path(dir);
    proto::config::write_private(&path, &text).map_err(|e| io(&path, e))
}

/// The record of a lab in `dir`, if one is up.
pub fn load(dir: &Path) -> Result<Option<Record>> {
    let path = record_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LabError(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

fn host_dir(dir: &Path, host: &str) -> PathBuf {
    dir.join("hosts").join(host)
}

/// Brings the hosts up and deploys the platform on them; on failure
/// removes whatever it made.
pub async fn up(a: &UpArgs) -> Result<String> {
    if !super::is_root() {
        return Err(LabError(
            "simulated hosts need root (network namespaces, a bridge, iptables rules): run it with sudo".into(),
        ));
    }
    if !(1..=layout::MAX_HOSTS).contains(&a.hosts) {
        return Err(LabError(format!(
            "--hosts must be 1 to {}",
            layout::MAX_HOSTS
        )));
    }
    if load(&a.dir)?.is_some() {
        return Err(LabError(format!(
            "simulated hosts are already up in {0}; stop them first (cf dev stop --dir {0})",
            a.dir.display()
        )));
    }
    if std::net::TcpListener::bind(("127.0.0.1", a.lb_port)).is_err() {
        return Err(LabError(format!(
            "port {} on 127.0.0.1 is in use; choose another with --router-port PORT",
            a.lb_port
        )));
    }
    match bring_up(a).await {
        Ok(text) => Ok(text),
        Err(e) => {
            let _ = down(&a.dir);
            Err(e)
        }
    }
}

async fn bring_up(a: &UpArgs) -> Result<String> {
    let dir = &a.dir;
    for d in [dir.clone(), dir.join("logs"), dir.join("hosts")] {
        std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
    }
    let paas = a.bin_dir.join("paas");
    let bins = release::binaries_in(&a.bin_dir)?;
    let plan = layout::hosts(a.hosts);
    let names: Vec<&str> = plan.iter().map(|(n, _)| n.as_str()).collect();
    let net = Net::create(&names)?;
    let addrs: Vec<Ipv4Addr> = (0..plan.len()).map(|i| net.addr(i)).collect();
    let mut rec = Record {
        net: net.keep(),
        hosts: plan
            .iter()
            .zip(&addrs)
            .map(|((n, roles), addr)| {
                (
                    n.clone(),
                    *addr,
                    roles.iter().map(|r| r.to_string()).collect(),
                )
            })
            .collect(),
        agents: Vec::new(),
        haproxy: None,
        lb: ([127, 0, 0, 1], a.lb_port).into(),
    };
    if let Err(e) = save(dir, &rec) {
        // Unrecorded, so nothing else would remove it.
        rec.net.clone().remove();
        return Err(e);
    }

    // The database, and the hosts' way to it through the load balancer.
    let (db_for_hosts, pg) = database(&a.database_url, rec.net.gateway()).await?;

    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    release::write(&dir.join("releases"), &version, &bins, &[])?;
    let token = dir.join("agent.token");
    proto::config::write_private(&token, &proto::busauth::random_secret())
        .map_err(|e| io(&token, e))?;

    for (name, addr) in names.iter().zip(&addrs) {
        let log_path = dir.join("logs").join(format!("{name}-agent.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
        let listen = SocketAddr::from((*addr, layout::AGENT_PORT));
        let mut cmd =
            super::agent_command(&rec.net, &paas, name, listen, &host_dir(dir, name), &token);
        cmd.stderr(log);
        // The agent outlives this command (and a Ctrl-C in its terminal).
        proto::procs::own_session(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| LabError(format!("starting the agent of {name}: {e}")))?;
        rec.agents.push(child.id());
        save(dir, &rec)?;
    }
    for (name, addr) in names.iter().zip(&addrs) {
        let listen = SocketAddr::from((*addr, layout::AGENT_PORT));
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if Instant::now() > deadline {
                return Err(LabError(format!(
                    "the agent of {name} is not listening on {listen} after 20 s; see {}",
                    dir.join("logs").join(format!("{name}-agent.log")).display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    rec.haproxy = Some(start_haproxy(dir, &rec, pg)?);
    save(dir, &rec)?;

    let manifest = dir.join("paas.yml");
    let text = layout::manifest(
        &layout::ManifestArgs {
            name: NAME,
            version: &version,
            releases_dir: &dir.join("releases").display().to_string(),
            database_url: &db_for_hosts,
            token_file: "agent.token",
            router_drain_wait_s: 2,
            update: "canaries: 1, max_in_flight: 1, failure_budget: 0, watch_time: 60s",
        },
        &plan,
        &addrs,
    );
    proto::config::write_private(&manifest, &text).map_err(|e| io(&manifest, e))?;
    let deployed = crate::commands::deploy::run(&manifest, None, false)
        .await
        .map_err(|e| LabError(format!("{e}\n(logs: {})", dir.join("hosts").display())))?;
    api_answers(rec.lb).await?;
    Ok(format!("{deployed}\n{}", summary(dir, &rec)))
}

/// Creates the database `url` names when it is missing; the URL the hosts
/// use (through the load balancer on `gateway`), and (where the load
/// balancer listens for them, where Postgres is).
async fn database(url: &str, gateway: Ipv4Addr) -> Result<(String, (SocketAddr, SocketAddr))> {
    use sqlx::Connection;
    let bad = |why: &str| LabError(format!("--database-url {url}: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "postgres" && parsed.scheme() != "postgresql" {
        return Err(bad("not a postgres:// URL"));
    }
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad("the database name must be 1-63 of a-z, 0-9 and _"));
    }
    let port = parsed.port().unwrap_or(5432);
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let pg = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad("its host does not resolve"))?;
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let mut conn = sqlx::PgConnection::connect(admin.as_str())
        .await
        .map_err(|e| bad(&format!("cannot connect: {e}")))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| bad(&e.to_string()))?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| bad(&format!("creating the database: {e}")))?;
    }
    let _ = conn.close().await;
    let mut for_hosts = parsed.clone();
    let _ = for_hosts.set_ip_host(gateway.into());
    let _ = for_hosts.set_port(Some(port));
    Ok((for_hosts.to_string(), ((gateway, port).into(), pg)))
}

/// HAProxy in the background (its own pid file); its pid.
fn start_haproxy(dir: &Path, rec: &Record, pg: (SocketAddr, SocketAddr)) -> Result<u32> {
    let cfg = haproxy::config(&haproxy::Config {
        bind: rec.lb,
        routers: rec
            .hosts
            .iter()
            .filter(|(_, _, roles)| roles.iter().any(|r| r == "router"))
            .map(|(n, addr, _)| (n.clone(), *addr))
            .collect(),
        router_port: layout::ROUTER_PORT,
        router_admin_port: layout::ROUTER_ADMIN_PORT,
        postgres: Some(pg),
    });
    let cfg_path = dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).map_err(|e| io(&cfg_path, e))?;
    let pid_path = dir.join("haproxy.pid");
    let _ = std::fs::remove_file(&pid_path);
    let out = Command::new(haproxy::binary()?)
        .arg("-D")
        .arg("-p")
        .arg(&pid_path)
        .arg("-f")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError(format!("starting haproxy: {e}")))?;
    if !out.status.success() {
        return Err(LabError(format!(
            "haproxy did not start ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| LabError(format!("haproxy wrote no pid to {}", pid_path.display())))
}

/// Waits (60 s at most) until the API answers through the load balancer:
/// the routers are healthy and have learnt the API's route.
async fn api_answers(lb: SocketAddr) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| LabError(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = client
            .get(format!("http://{lb}/"))
            .header(
                reqwest::header::HOST,
                format!("api.sys.localhost:{}", lb.port()),
            )
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError(format!(
                "the API does not answer through the load balancer ({lb}) after 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary(dir: &Path, rec: &Record) -> String {
    let api = format!("http://api.sys.localhost:{}", rec.lb.port());
    let mut out = format!(
        "Simulated hosts (network namespaces on bridge {}):\n",
        rec.net.bridge()
    );
    for (name, addr, roles) in &rec.hosts {
        out += &format!("  {name:<4} {addr:<14} {}\n", roles.join(", "));
    }
    let routers: Vec<&str> = rec
        .hosts
        .iter()
        .filter(|(_, _, r)| r.iter().any(|r| r == "router"))
        .map(|(n, ..)| n.as_str())
        .collect();
    out += &format!(
        "\nload balancer:  HAProxy on {} (routers on {})\n\
         API endpoint:   {api}\n\
         apps domain:    localhost (apps answer at http://<app>.localhost:{})\n\
         manifest:       {m} (paas status|events|deploy {m})\n\
         admin password: admin_password in {s} (mode 0600)\n\
         logs:           {logs} (agents), {hosts}/<host>/components/<component>/\n\
         \nLog in with (cf asks for the password):\n  cf login -a {api} -u admin -o dev -s dev\n\
         Stop with:\n  cf dev stop --dir {d}\n",
        rec.lb,
        routers.join(", "),
        rec.lb.port(),
        m = dir.join("paas.yml").display(),
        s = dir.join(".paas").join(NAME).join("secrets.json").display(),
        logs = dir.join("logs").display(),
        hosts = dir.join("hosts").display(),
        d = dir.display(),
    );
    out
}

/// Stops what `up` started and removes what it made, as its record says:
/// HAProxy, the agents and their components, the DEAs' containers, the
/// namespaces, veths, bridge and rules. The database and `dir` stay.
pub fn down(dir: &Path) -> Result<String> {
    let Some(rec) = load(dir)? else {
        return Ok(format!("No simulated hosts are up in {}.\n", dir.display()));
    };
    if !super::is_root() {
        return Err(LabError(
            "removing simulated hosts needs root: run it with sudo".into(),
        ));
    }
    if let Some(pid) = rec.haproxy {
        let cfg = dir.join("haproxy.cfg").display().to_string();
        if procs::is_ours(pid, &cfg) {
            procs::signal(pid, libc::SIGKILL);
        }
    }
    let hosts_dir = dir.join("hosts").display().to_string();
    for pid in &rec.agents {
        if procs::is_ours(*pid, &hosts_dir) {
            procs::signal(*pid, libc::SIGKILL);
        }
    }
    let hosts: Vec<(String, PathBuf)> = rec
        .hosts
        .iter()
        .map(|(n, ..)| (n.clone(), host_dir(dir, n)))
        .collect();
    let dea = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("dea")))
        .filter(|d| d.exists());
    super::reap_hosts(&rec.net, &hosts, dea.as_deref());
    let bridge = rec.net.bridge();
    let n = rec.hosts.len();
    rec.net.remove();
    let _ = std::fs::remove_file(dir.join("haproxy.pid"));
    let path = record_path(dir);
    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
    Ok(format!(
        "Stopped {n} simulated hosts: their agents, components and containers, HAProxy; removed their namespaces, veths, bridge {bridge} and iptables rules.\n"
    ))
}

/// The hosts, the load balancer, and `paas status` of the deployment.
pub async fn status(dir: &Path) -> Result<String> {
    let Some(rec) = load(dir)? else {
        return Ok(format!("No simulated hosts are up in {}.\n", dir.display()));
    };
    let manifest = dir.join("paas.yml");
    let status = crate::commands::status::run(&manifest, None)
        .await
        .unwrap_or_else(|e| format!("paas status: {e}\n"));
    Ok(format!("{}\n{status}", summary(dir, &rec)))
}
