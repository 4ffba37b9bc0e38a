//! Test harness: starts a real nats-server (or a cluster of three) and the
//! real component binaries (cloud-controller, router, dea, health-manager)
//! in a temp dir, drives them with the real `cf` binary, and cleans every
//! process up on drop.
//!
//! The binaries are looked up next to the test executable's target dir, so
//! build them first: `cargo build --workspace --bins`.

pub mod bench;
pub mod lab;
pub mod netns;
pub mod procs;
pub mod steady;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub use procs::{pids_with_cwd_under, process_alive};

/// Where the component binaries live (`target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PAAS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn bin(name: &str) -> Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.exists() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first",
            p.display()
        );
    }
    Ok(p)
}

/// Admin's token from the password grant of the API at `base`
/// (`http://host:port`, direct or through the router).
pub async fn admin_token_from(c: &reqwest::Client, base: &str) -> Result<String> {
    token_from(c, base, "admin", "admin").await
}

/// A password-grant access token for `user`.
pub async fn token_from(
    c: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> Result<String> {
    let r = c
        .post(format!("{base}/oauth/token"))
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await?;
    let v: serde_json::Value = r.json().await?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no access_token in {v}"))
}

pub use testkit::{free_port, wait_for, NatsCluster, NatsServer};

/// The platform's bus: one nats-server, or a cluster of three
/// ([`PlatformOptions::nats_cluster`]). The methods act on every node.
pub enum Nats {
    One(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    /// What components get as `nats_url`: the server's URL, or the
    /// cluster's comma-separated seed list.
    pub fn urls(&self) -> String {
        match self {
            Nats::One(n) => n.url.clone(),
            Nats::Cluster(c) => c.urls(),
        }
    }

    pub fn cluster(&self) -> Option<&NatsCluster> {
        match self {
            Nats::One(_) => None,
            Nats::Cluster(c) => Some(c),
        }
    }

    pub fn cluster_mut(&mut self) -> Option<&mut NatsCluster> {
        match self {
            Nats::One(_) => None,
            Nats::Cluster(c) => Some(c),
        }
    }

    /// Stops (SIGTERM) the server, or every node.
    pub fn stop(&mut self) {
        match self {
            Nats::One(n) => n.stop(),
            Nats::Cluster(c) => (0..c.len()).for_each(|i| c.stop(i)),
        }
    }

    /// Starts the server, or every node, again on the same ports and store.
    pub fn restart(&mut self) -> Result<()> {
        match self {
            Nats::One(n) => n.restart(),
            Nats::Cluster(c) => (0..c.len()).try_for_each(|i| c.restart(i)),
        }
    }

    /// SIGKILL to the server, or every node.
    pub fn kill(&mut self) {
        match self {
            Nats::One(n) => n.kill(),
            Nats::Cluster(c) => (0..c.len()).for_each(|i| c.kill(i)),
        }
    }

    /// Whether the server, or every node, runs.
    pub fn is_running(&mut self) -> bool {
        match self {
            Nats::One(n) => n.is_running(),
            Nats::Cluster(c) => (0..c.len()).all(|i| c.is_running(i)),
        }
    }

    /// The server's pid (a cluster's first node's).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Nats::One(n) => n.pid(),
            Nats::Cluster(c) => c.pid(0),
        }
    }

    /// The server's log (a cluster's first node's; its `nats.conf` is
    /// beside it, as the single server's).
    pub fn log_path(&self) -> &Path {
        match self {
            Nats::One(n) => n.log_path(),
            Nats::Cluster(c) => c.log_path(0),
        }
    }

    /// The end of the server's log, or of every node's.
    pub fn log_tail(&self, n: usize) -> String {
        match self {
            Nats::One(s) => s.log_tail(n),
            Nats::Cluster(c) => c.logs_tail(n),
        }
    }
}

fn read_addr_file(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// One child process of the platform.
pub struct Component {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Component {
    fn spawn(name: &str, bin: PathBuf, args: Vec<String>, log_dir: &Path) -> Result<Component> {
        let mut c = Component {
            name: name.to_string(),
            bin,
            args,
            log_path: log_dir.join(format!("{name}.log")),
            child: None,
        };
        c.start()?;
        Ok(c)
    }

    /// (Re)starts the process, appending to its log.
    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let err = log.try_clone()?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The `service-broker` binary serving this machine's four servers
    /// (docs/service-broker.md), its state and log under `root`; its URL
    /// once it listens. The password is `password`.
    pub async fn service_broker(root: &Path, password: &str) -> Result<(Component, String)> {
        Self::service_broker_for_containers(root, password, None).await
    }

    /// [`Component::service_broker`] for apps in containers: its
    /// credentials name `host` (the DEA's `host_services_address`) instead
    /// of 127.0.0.1, and Redis's name its AUTH guard on 127.0.0.1:`port`
    /// (docs/service-broker.md "Redis guard").
    pub async fn service_broker_for_containers(
        root: &Path,
        password: &str,
        host_and_guard: Option<(&str, u16)>,
    ) -> Result<(Component, String)> {
        let adv = host_and_guard
            .map(|(h, _)| format!("advertise_host = \"{h}\"\n"))
            .unwrap_or_default();
        let guard = host_and_guard
            .map(|(_, p)| format!("guard_listen = \"127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        let dir = root.join("broker");
        std::fs::create_dir_all(&dir)?;
        let addr_file = dir.join("broker.addr");
        let conf = dir.join("broker.toml");
        testkit::write_private(
            &conf,
            &format!(
                "listen = \"127.0.0.1:0\"\naddr_file = \"{}\"\nusername = \"broker\"\npassword = \"{password}\"\nstate_url = \"sqlite://{}\"\n[postgresql]\n{adv}[mysql]\n{adv}[redis]\n{adv}{guard}[rabbitmq]\n{adv}",
                addr_file.display(),
                dir.join("state.db").display()
            ),
        )?;
        let c = Component::spawn(
            "service-broker",
            bin("service-broker")?,
            vec!["--config".into(), conf.display().to_string()],
            &root.join("logs"),
        )?;
        let addr = testkit::wait_file(&addr_file, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow!("{e}: {}", c.log_tail(20)))?;
        Ok((c, format!("http://{}", addr.trim())))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status
    /// when it exited by itself.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        procs::signal(c.id(), libc::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if std::time::Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of the component's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        testkit::log_tail(&self.log_path, n)
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Options for [`Platform::start`].
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub deas: usize,
    pub health_manager: bool,
    /// `postgres://...` to run the controller on Postgres instead of SQLite.
    pub database_url: Option<String>,
    /// Health managers besides the first (standbys contending for the
    /// leader lock); only with `health_manager`.
    pub extra_health_managers: usize,
    /// Extra TOML lines appended to each component's config (keys the
    /// harness does not already set).
    pub hm_config: String,
    pub dea_config: String,
    pub cc_config: String,
    pub router_config: String,
    /// Run the bus on a cluster of three nats-servers ([`NatsCluster`])
    /// instead of one: every component gets the seed list, the health
    /// managers' lock bucket 3 replicas (docs/architecture.md §3.5).
    pub nats_cluster: bool,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        PlatformOptions {
            deas: 1,
            health_manager: true,
            database_url: None,
            extra_health_managers: 0,
            hm_config: String::new(),
            dea_config: String::new(),
            cc_config: String::new(),
            router_config: String::new(),
            nats_cluster: false,
        }
    }
}

/// The whole platform, started from real binaries.
pub struct Platform {
    pub dir: tempfile::TempDir,
    pub nats: Nats,
    /// The components' `nats_url`: one URL, or a cluster's seed list.
    pub nats_url: String,
    /// Every role's bus user (docs/architecture.md §3.4), plus `test`, a
    /// user with every permission that stands for any component in tests.
    pub bus_users: proto::busauth::BusUsers,
    pub cc: Component,
    pub cc_addr: SocketAddr,
    /// The controller's internal API listener (`/internal/*`).
    pub cc_internal_addr: SocketAddr,
    pub router: Component,
    pub router_addr: SocketAddr,
    pub router_admin_addr: SocketAddr,
    pub deas: Vec<Component>,
    pub hm: Option<Component>,
    /// Standby health managers (`extra_health_managers`), ids `hm-1`, `hm-2`...
    pub extra_hms: Vec<Component>,
    pub internal_token: String,
    pub cf_home: PathBuf,
}

pub const APPS_DOMAIN: &str = "localhost";

/// The route of app `app` on the apps domain (`app.localhost`).
pub fn app_host(app: &str) -> String {
    format!("{app}.{APPS_DOMAIN}")
}
pub const SYSTEM_DOMAIN: &str = "sys.localhost";

impl Platform {
    pub async fn start() -> Result<Platform> {
        Self::start_with(PlatformOptions::default()).await
    }

    pub async fn start_with(opts: PlatformOptions) -> Result<Platform> {
        // reqwest's default TLS needs a rustls provider (docs/conventions.md).
        proto::https::install_ring();
        let dir = tempfile::Builder::new().prefix("paas-it-").tempdir()?;
        let root = dir.path().to_path_buf();
        let logs = root.join("logs");
        let conf = root.join("config");
        for d in [&logs, &conf] {
            std::fs::create_dir_all(d)?;
        }

        // NATS with JetStream and a user per role, on a port it picks itself
        // (each node of a cluster on its own). Each DEA its own bus user (as
        // `cf dev start` gives them).
        let dea_ids: Vec<String> = (0..opts.deas).map(|i| format!("dea-{i}")).collect();
        let bus_users = proto::busauth::BusUsers::generate(proto::busauth::DEFAULT_HM_BUCKET)
            .with_deas(&dea_ids, proto::busauth::DEFAULT_HM_BUCKET)
            .with_superuser("test");
        let server_conf = proto::busauth::server_config(&bus_users, None);
        let nats = if opts.nats_cluster {
            Nats::Cluster(NatsCluster::start_with_config(&server_conf)?)
        } else {
            Nats::One(NatsServer::start_with_config(&server_conf)?)
        };
        let nats_url = nats.urls();
        // On a cluster the HMs' lock bucket has a copy on up to 3 nodes.
        let hm_replicas = match &nats {
            Nats::Cluster(c) => format!("leader_replicas = {}\n", c.len().min(3)),
            Nats::One(_) => String::new(),
        };
        let bus_line = |r: proto::busauth::Role| bus_users.role(r).toml_inline();
        let internal_token = uuid::Uuid::new_v4().to_string();

        // Cloud controller on a fixed free port so restarts keep its address.
        let cc_port = free_port();
        // The internal API's own listener (never routed).
        let cc_internal_port = free_port();
        let cc_addr_file = root.join("cc.addr");
        let db_line = match &opts.database_url {
            Some(u) => format!("database_url = \"{u}\"\n"),
            None => String::new(),
        };
        testkit::write_private(
            &conf.join("cc.toml"),
            &format!(
                "listen = \"127.0.0.1:{cc_port}\"\naddr_file = \"{}\"\ninternal_listen = \"127.0.0.1:{cc_internal_port}\"\nnats_url = \"{nats_url}\"\ndata_dir = \"{}\"\n{db_line}system_domain = \"{SYSTEM_DOMAIN}\"\napps_domain = \"{APPS_DOMAIN}\"\ninternal_api_token = \"{internal_token}\"\n{}\n{}\n",
                cc_addr_file.display(),
                root.join("cc").display(),
                bus_line(proto::busauth::Role::Controller),
                opts.cc_config
            ),
        )?;
        let cc = Component::spawn(
            "cloud-controller",
            bin("cloud-controller")?,
            config_args(&conf, "cc"),
            &logs,
        )?;

        // Router on port 0.
        let r_addr_file = root.join("router.addr");
        let r_admin_file = root.join("router-admin.addr");
        testkit::write_private(
            &conf.join("router.toml"),
            &format!(
                "listen = \"127.0.0.1:0\"\naddr_file = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_addr_file = \"{}\"\nnats_url = \"{nats_url}\"\nroute_authority_url = \"http://127.0.0.1:{cc_internal_port}\"\nroute_authority_token = \"{internal_token}\"\n{}\n{}\n",
                r_addr_file.display(),
                r_admin_file.display(),
                bus_line(proto::busauth::Role::Router),
                opts.router_config
            ),
        )?;
        let router = Component::spawn(
            "router",
            bin("router")?,
            config_args(&conf, "router"),
            &logs,
        )?;

        let mut deas = Vec::new();
        for i in 0..opts.deas {
            deas.push(spawn_dea_with(
                &root,
                &conf,
                &logs,
                &nats_url,
                i,
                &format!(
                    "{}\ncontroller_urls = [\"http://127.0.0.1:{cc_internal_port}\"]\n{}",
                    bus_users.dea(&format!("dea-{i}")).toml_inline(),
                    opts.dea_config
                ),
            )?);
        }

        let mut platform = Platform {
            cc_addr: "127.0.0.1:0".parse()?,
            cc_internal_addr: SocketAddr::from(([127, 0, 0, 1], cc_internal_port)),
            router_addr: "127.0.0.1:0".parse()?,
            router_admin_addr: "127.0.0.1:0".parse()?,
            dir,
            nats,
            nats_url: nats_url.clone(),
            bus_users: bus_users.clone(),
            cc,
            router,
            deas,
            hm: None,
            extra_hms: Vec::new(),
            internal_token: internal_token.clone(),
            cf_home: root.join("cfhome"),
        };
        std::fs::create_dir_all(&platform.cf_home)?;

        platform.cc_addr = platform
            .wait_addr_file(&cc_addr_file, "cloud-controller")
            .await?
            .parse()?;
        platform.wait_cc_ready().await?;
        platform.router_addr = platform
            .wait_addr_file(&r_addr_file, "router")
            .await?
            .parse()?;
        platform.router_admin_addr = platform
            .wait_addr_file(&r_admin_file, "router admin")
            .await?
            .parse()?;
        for i in 0..platform.deas.len() {
            let f = root.join(format!("dea{i}.addr"));
            platform.wait_addr_file(&f, "dea").await?;
        }
        if opts.health_manager {
            for n in 0..=opts.extra_health_managers {
                let (name, addr) = match n {
                    0 => ("hm".to_string(), root.join("hm.addr")),
                    n => (format!("hm{n}"), root.join(format!("hm{n}.addr"))),
                };
                testkit::write_private(
                    &conf.join(format!("{name}.toml")),
                    &format!(
                        "nats_url = \"{nats_url}\"\ncc_url = \"http://{}\"\ninternal_api_token = \"{internal_token}\"\naddr_file = \"{}\"\nid = \"hm-{n}\"\n{hm_replicas}{}\n{}\n",
                        platform.cc_internal_addr,
                        addr.display(),
                        bus_line(proto::busauth::Role::HealthManager),
                        opts.hm_config
                    ),
                )?;
                let c = Component::spawn(
                    &if n == 0 {
                        "health-manager".to_string()
                    } else {
                        format!("health-manager{n}")
                    },
                    bin("health-manager")?,
                    config_args(&conf, &name),
                    &logs,
                )?;
                if n == 0 {
                    platform.hm = Some(c);
                } else {
                    platform.extra_hms.push(c);
                }
                platform.wait_addr_file(&addr, "health-manager").await?;
            }
        }
        // The API is reachable through the router once the controller's route is known.
        let api = platform.api_url();
        wait_for(
            "api route through the router",
            Duration::from_secs(20),
            || {
                let api = api.clone();
                async move {
                    let c = http_client();
                    let r = c.get(&api).send().await.ok()?;
                    r.status().is_success().then_some(())
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\n{}", platform.logs_tail()))?;
        Ok(platform)
    }

    async fn wait_addr_file(&self, path: &Path, what: &str) -> Result<String> {
        let p = path.to_path_buf();
        wait_for(what, Duration::from_secs(30), || {
            let p = p.clone();
            async move { read_addr_file(&p) }
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", self.logs_tail()))
    }

    /// A bus connection as `user` (a role's name, or `test` for every
    /// permission).
    pub async fn bus_as(&self, user: &str) -> Result<proto::Bus> {
        let creds = self
            .bus_users
            .credentials(user)
            .ok_or_else(|| anyhow!("no bus user {user}"))?;
        Ok(proto::Bus::connect_with(&self.nats_url, &creds, user).await?)
    }

    /// Stops nats-server, or every node (SIGTERM); `start_nats` brings it
    /// back on the same port(s) and store dir(s).
    pub fn stop_nats(&mut self) {
        self.nats.stop();
    }

    pub async fn start_nats(&mut self) -> Result<()> {
        self.nats.restart()
    }

    /// Every health manager (the first, then the standbys).
    pub fn hms_mut(&mut self) -> Vec<&mut Component> {
        self.hm
            .iter_mut()
            .chain(self.extra_hms.iter_mut())
            .collect()
    }

    /// Waits until the controller answers `GET /` directly.
    pub async fn wait_cc_ready(&self) -> Result<()> {
        let url = format!("http://{}/", self.cc_addr);
        wait_for("cloud-controller GET /", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", self.logs_tail()))
    }

    /// kill -9 DEA `i` and every instance it ran (a lost machine).
    pub fn kill_dea_hard(&mut self, i: usize) {
        let state_dir = self.root().join(format!("dea{i}"));
        if let Some(d) = self.deas.get_mut(i) {
            d.kill9();
        }
        let mut pids = procs::pids_with_cwd_under(&state_dir);
        pids.extend(procs::pids_with_cmdline_containing(
            &state_dir.display().to_string(),
        ));
        for pid in pids {
            procs::signal(pid, libc::SIGKILL);
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The API URL as users see it: through the router.
    pub fn api_url(&self) -> String {
        format!("http://api.{SYSTEM_DOMAIN}:{}", self.router_addr.port())
    }

    /// Tails of every component's log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("--- nats ---\n{}\n", self.nats.log_tail(30)));
        let mut all: Vec<&Component> = vec![&self.cc, &self.router];
        all.extend(self.deas.iter());
        all.extend(self.hm.iter());
        all.extend(self.extra_hms.iter());
        for c in all {
            out.push_str(&format!("--- {} ---\n{}\n", c.name, c.log_tail(30)));
        }
        out
    }

    /// Runs the real `cf` binary with this platform's `CF_HOME`.
    pub async fn cf(&self, args: &[&str]) -> Result<CfOutput> {
        Self::cf_run(&self.cf_home, args, None).await
    }

    /// A separate `CF_HOME` (another user's session) under the platform's
    /// directory.
    pub fn cf_home(&self, name: &str) -> Result<PathBuf> {
        let home = self.dir.path().join(format!("cf-home-{name}"));
        std::fs::create_dir_all(&home)?;
        Ok(home)
    }

    /// Runs the real `cf` binary with `CF_HOME` `home`, `stdin` piped in
    /// when given.
    pub async fn cf_run(home: &Path, args: &[&str], stdin: Option<&str>) -> Result<CfOutput> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(bin("cf")?);
        cmd.args(args)
            .env("CF_HOME", home)
            .env_remove("CF_TRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        Ok(CfOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `cf`, failing with its output when it exits non-zero.
    pub async fn cf_ok(&self, args: &[&str]) -> Result<CfOutput> {
        let out = self.cf(args).await?;
        if out.status != 0 {
            bail!(
                "cf {} exited {}:\n{}\n{}\n{}",
                args.join(" "),
                out.status,
                out.stdout,
                out.stderr,
                self.logs_tail()
            );
        }
        Ok(out)
    }

    /// `cf api` + `cf login` as admin, targeting org and space `dev`.
    pub async fn login(&self) -> Result<()> {
        let api = self.api_url();
        self.cf_ok(&[
            "login", "-a", &api, "-u", "admin", "-p", "admin", "-o", "dev", "-s", "dev",
        ])
        .await?;
        Ok(())
    }

    /// GET `path` through the router with `Host: host`.
    pub async fn get_via_router(&self, host: &str, path: &str) -> Result<(u16, String)> {
        let c = http_client();
        let url = format!("http://{host}:{}{path}", self.router_addr.port());
        let r = c.get(url).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    }

    /// Waits until GET through the router answers `want`.
    pub async fn wait_route_status(
        &self,
        host: &str,
        want: u16,
        timeout: Duration,
    ) -> Result<String> {
        wait_for(
            &format!("{host} to answer {want}"),
            timeout,
            || async move {
                match self.get_via_router(host, "/").await {
                    Ok((s, body)) if s == want => Some(body),
                    _ => None,
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{e}\n{}", self.logs_tail()))
    }

    /// `cf logs APP --recent` until it contains `want` (within `within`);
    /// the output that did.
    pub async fn wait_recent_logs(
        &self,
        app: &str,
        want: &str,
        within: Duration,
    ) -> Result<String> {
        wait_for(
            &format!("{want:?} in the recent logs of {app}"),
            within,
            || async {
                let out = self.cf(&["logs", app, "--recent"]).await.ok()?;
                out.stdout.contains(want).then_some(out.stdout)
            },
        )
        .await
    }

    /// A token for direct API calls, from the password grant.
    pub async fn admin_token(&self) -> Result<String> {
        admin_token_from(&reqwest::Client::new(), &format!("http://{}", self.cc_addr)).await
    }

    /// A user's access token (password grant, direct to the controller).
    pub async fn token(&self, user: &str, password: &str) -> Result<String> {
        token_from(
            &reqwest::Client::new(),
            &format!("http://{}", self.cc_addr),
            user,
            password,
        )
        .await
    }

    /// Authenticated request on the controller (direct): status and JSON.
    pub async fn api_call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut r = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.cc_addr))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// The status of an authenticated GET, without reading the body (log
    /// streams never end).
    pub async fn api_status(&self, token: &str, path: &str) -> Result<u16> {
        let r = reqwest::Client::new()
            .get(format!("http://{}{path}", self.cc_addr))
            .bearer_auth(token)
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    /// Authenticated GET on the controller (direct), as JSON.
    pub async fn api_get(&self, token: &str, path: &str) -> Result<serde_json::Value> {
        let r = reqwest::Client::new()
            .get(format!("http://{}{path}", self.cc_addr))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await?;
        if !status.is_success() {
            bail!("GET {path} → {status}: {v}");
        }
        Ok(v)
    }

    /// Guid of the app named `name`.
    pub async fn app_guid(&self, token: &str, name: &str) -> Result<String> {
        let v = self
            .api_get(token, &format!("/v3/apps?names={name}"))
            .await?;
        v["resources"][0]["guid"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no app {name}: {v}"))
    }

    /// Per-instance stats of the app's web process.
    pub async fn stats(&self, token: &str, app_guid: &str) -> Result<Vec<serde_json::Value>> {
        let v = self
            .api_get(token, &format!("/v3/apps/{app_guid}/processes/web/stats"))
            .await?;
        Ok(v["resources"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until exactly `n` instances of the app report RUNNING.
    pub async fn wait_running(
        &self,
        token: &str,
        app_guid: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<()> {
        wait_for(&format!("{n} running instances"), timeout, || async move {
            let s = self.stats(token, app_guid).await.ok()?;
            let running = s.iter().filter(|r| r["state"] == "RUNNING").count();
            (running == n && s.len() == n).then_some(())
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", self.logs_tail()))
    }

    /// Kills every process left under the platform's temp dir (app instances
    /// whose DEA died), then the components.
    pub fn shutdown(&mut self) {
        if let Some(hm) = self.hm.as_mut() {
            hm.kill9();
        }
        for hm in self.extra_hms.iter_mut() {
            hm.kill9();
        }
        for d in self.deas.iter_mut() {
            d.terminate(Duration::from_secs(5));
        }
        self.router.terminate(Duration::from_secs(3));
        self.cc.terminate(Duration::from_secs(3));
        self.nats.kill();
        procs::kill_all_under(self.dir.path());
        cleanup_containers(self.dir.path());
    }
}

/// Removes what namespaces-backend DEAs under `root` left on the host
/// (cgroups, netns, veths, iptables rules) when they could not clean up
/// themselves: `dea container-cleanup <tag>` for each `dea*/namespaces.tag`.
pub fn cleanup_containers(root: &Path) {
    let tags = container_tags(root);
    if tags.is_empty() {
        return;
    }
    if let Ok(dea) = bin("dea") {
        let _ = Command::new(dea)
            .arg("container-cleanup")
            .args(&tags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub use paas::lab::procs::container_tags;

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn config_args(conf: &Path, name: &str) -> Vec<String> {
    vec![
        "--config".into(),
        conf.join(format!("{name}.toml")).display().to_string(),
    ]
}

fn spawn_dea_with(
    root: &Path,
    conf: &Path,
    logs: &Path,
    nats_url: &str,
    i: usize,
    extra: &str,
) -> Result<Component> {
    testkit::write_private(
        &conf.join(format!("dea{i}.toml")),
        &format!(
            "nats_url = \"{nats_url}\"\nid = \"dea-{i}\"\nzone = \"z{i}\"\nstate_dir = \"{}\"\naddr_file = \"{}\"\nallow_unisolated_process_backend = true\n{extra}\n",
            root.join(format!("dea{i}")).display(),
            root.join(format!("dea{i}.addr")).display()
        ),
    )?;
    Component::spawn(
        &format!("dea{i}"),
        bin("dea")?,
        config_args(conf, &format!("dea{i}")),
        logs,
    )
}

/// An HTTP client that resolves every name to loopback, like the CLI's own
/// `*.localhost` resolution; URLs carry the router's port.
pub fn http_client() -> reqwest::Client {
    proto::https::install_ring();
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(LoopbackResolver))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

struct LoopbackResolver;

impl reqwest::dns::Resolve for LoopbackResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs: Box<dyn Iterator<Item = SocketAddr> + Send> =
                Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}

/// What a `cf` run printed.
#[derive(Debug)]
pub struct CfOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The fixture apps shipped with this crate.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
