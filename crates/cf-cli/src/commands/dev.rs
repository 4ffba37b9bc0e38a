//! `cf dev start|stop|status`: the whole platform as local processes.

use crate::config::cf_home;
use crate::devenv::{self as d, DevState, Layout, COMPONENTS};
use crate::error::{CliError, Result};
use crate::format::table;
use proto::busauth::Role;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum DevCommand {
    /// Start nats-server and every component in the background
    Start(StartArgs),
    /// Stop everything `cf dev start` started
    Stop(DirArgs),
    /// Show the components' processes and health
    Status(DirArgs),
}

#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// State directory (default $CF_HOME/.cfdev or $HOME/.cfdev)
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// State directory (default $CF_HOME/.cfdev or $HOME/.cfdev)
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Router port on 127.0.0.1
    #[arg(long, default_value_t = 8080)]
    pub router_port: u16,
    /// Router HTTPS port on 127.0.0.1 (default 8443, or a free port when
    /// 8443 is taken)
    #[arg(long)]
    pub router_tls_port: Option<u16>,
    /// How many DEAs to run (each in its own zone); kill one to watch the
    /// platform heal
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub deas: u16,
    /// Run the platform on N simulated hosts instead (network namespaces
    /// on a bridge, each with its own address and host agent, deployed by
    /// `paas`; HAProxy in front of the routers on --router-port). Root only
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=32), conflicts_with_all = ["deas", "router_tls_port"])]
    pub hosts: Option<u16>,
    /// The database of the platform on simulated hosts (created when missing)
    #[arg(
        long,
        requires = "hosts",
        default_value = "postgres://postgres@127.0.0.1:5432/paas_dev"
    )]
    pub database_url: String,
}

fn layout(dir: Option<PathBuf>) -> Result<Layout> {
    let dir = dir.unwrap_or_else(|| cf_home().join(".cfdev"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|e| CliError::io("current directory", e))?
            .join(dir)
    };
    Ok(Layout::new(dir))
}

pub async fn run(cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::Start(StartArgs {
            dir,
            router_port,
            hosts: Some(n),
            database_url,
            ..
        }) => {
            let l = layout(dir)?;
            if running(&l).iter().any(|(_, pid)| pid.is_some()) {
                return Err(CliError::other(format!(
                    "The single-host platform is running in {0}; run 'cf dev stop --dir {0}' first.",
                    l.dir.display()
                )));
            }
            super::dev_hosts::start(&l, n, router_port, &database_url).await
        }
        DevCommand::Start(a) => {
            start(
                layout(a.dir)?,
                a.router_port,
                a.router_tls_port,
                usize::from(a.deas),
            )
            .await
        }
        DevCommand::Stop(a) => {
            let l = layout(a.dir)?;
            if super::dev_hosts::is_up(&l) {
                return super::dev_hosts::stop(&l).await;
            }
            stop(&l).await
        }
        DevCommand::Status(a) => {
            let l = layout(a.dir)?;
            if super::dev_hosts::is_up(&l) {
                return super::dev_hosts::status(&l).await;
            }
            status(&l).await
        }
    }
}

fn load_state(l: &Layout) -> DevState {
    std::fs::read(l.state())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Every component in start order, with the extra DEAs after the first,
/// and the service broker last when it was started (it is optional).
fn components(l: &Layout) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in COMPONENTS {
        out.push(c.to_string());
        if c == "dea" {
            out.extend(d::extra_deas(l));
        }
    }
    if l.pid(crate::devbroker::COMPONENT).exists() {
        out.push(crate::devbroker::COMPONENT.to_string());
    }
    out
}

fn running(l: &Layout) -> Vec<(String, Option<i32>)> {
    components(l)
        .into_iter()
        .map(|c| {
            let pid = d::read_pid(l, &c).filter(|p| d::is_alive(*p, &c));
            (c, pid)
        })
        .collect()
}

fn print_summary(l: &Layout, st: &DevState) {
    // HTTPS first, as Cloud Foundry users know their API; plain HTTP stays.
    let api = if st.https_api_url.is_empty() {
        &st.api_url
    } else {
        &st.https_api_url
    };
    if st.https_api_url.is_empty() {
        println!("API endpoint:   {}", st.api_url);
    } else {
        println!(
            "API endpoint:   {} (plain HTTP: {})",
            st.https_api_url, st.api_url
        );
        println!("local CA:       {}", l.ca_cert().display());
    }
    println!(
        "apps domain:    localhost (apps answer at http://<app>.localhost:{})",
        st.router_port
    );
    println!("logs:           {}", l.logs().display());
    if !st.https_api_url.is_empty() && !default_dir_ca(l) {
        println!(
            "\ncf trusts the local CA of the default dir only; for this one:\n  export SSL_CERT_FILE={}",
            l.ca_cert().display()
        );
    }
    println!("\nLog in with:\n  cf login -a {api} -u admin -p admin -o dev -s dev");
    if !st.https_api_url.is_empty() {
        println!(
            "or over plain HTTP:\n  cf login -a {} -u admin -p admin -o dev -s dev",
            st.api_url
        );
    }
    println!(
        "\nA second user (a developer of its own org):\n  \
         cf create-user alice s3cret\n  \
         cf create-org team-a && cf create-space web -o team-a\n  \
         cf set-org-role alice team-a OrgManager\n  \
         cf set-space-role alice team-a web SpaceDeveloper\n  \
         cf login -a {api} -u alice -p s3cret -o team-a -s web"
    );
}

/// Whether this dev dir's CA is the one cf trusts by itself.
fn default_dir_ca(l: &Layout) -> bool {
    let own = cf_home().join(".cfdev");
    std::fs::canonicalize(&own).ok() == std::fs::canonicalize(&l.dir).ok()
}

/// Processes started so far; stopped again (reverse order) on failure.
struct Started {
    layout: Layout,
    children: Vec<(String, Child)>,
}

impl Started {
    fn fail(&mut self, component: &str, why: String) -> CliError {
        let log = self.layout.log(component);
        let msg = format!(
            "{component} failed to start: {why}\n\nLast 20 lines of {}:\n{}",
            log.display(),
            d::tail(&log, 20)
        );
        eprintln!("Stopping the components started so far...");
        while let Some((name, mut child)) = self.children.pop() {
            let pid = child.id() as i32;
            d::signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                d::signal(pid, libc::SIGKILL);
            }
            let _ = child.wait();
            let _ = std::fs::remove_file(self.layout.pid(&name));
        }
        kill_leftovers(&self.layout);
        CliError::Other(msg)
    }

    /// Error if the child already exited.
    fn exited(&mut self, component: &str) -> Option<String> {
        let (_, child) = self.children.iter_mut().find(|(n, _)| *n == component)?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("the process exited ({status})")),
            _ => None,
        }
    }
}

async fn http_ok(client: &reqwest::Client, url: &str, host: Option<&str>) -> bool {
    let mut rb = client.get(url).timeout(Duration::from_secs(2));
    if let Some(h) = host {
        rb = rb.header(reqwest::header::HOST, h);
    }
    matches!(rb.send().await, Ok(r) if r.status() == reqwest::StatusCode::OK)
}

fn read_addr(l: &Layout, c: &str) -> Option<String> {
    let s = std::fs::read_to_string(l.addr(c)).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Poll `check` until it yields, the child exits, or the deadline passes.
async fn wait_ready<T, F, Fut>(
    started: &mut Started,
    component: &str,
    secs: u64,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if let Some(why) = started.exited(component) {
            return Err(started.fail(component, why));
        }
        if Instant::now() > deadline {
            return Err(started.fail(component, format!("not ready after {secs}s ({what})")));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn start(
    l: Layout,
    router_port: u16,
    router_tls_port: Option<u16>,
    dea_count: usize,
) -> Result<()> {
    if super::dev_hosts::is_up(&l) {
        return Err(CliError::other(format!(
            "The platform runs on simulated hosts in {0}; run 'cf dev stop --dir {0}' first.",
            l.dir.display()
        )));
    }
    l.create()?;
    let live = running(&l);
    let alive: Vec<_> = live.iter().filter(|(_, p)| p.is_some()).collect();
    if !alive.is_empty() {
        if alive.len() == live.len() {
            println!(
                "The platform is already running (dir {}).\n",
                l.dir.display()
            );
            print_summary(&l, &load_state(&l));
            return Ok(());
        }
        let names: Vec<&str> = alive.iter().map(|(n, _)| n.as_str()).collect();
        return Err(CliError::other(format!(
            "The platform is partially running ({}). Run 'cf dev stop --dir {}' first.",
            names.join(", "),
            l.dir.display()
        )));
    }
    for c in components(&l) {
        let _ = std::fs::remove_file(l.pid(&c));
    }
    let _ = std::fs::remove_file(l.addr(crate::devbroker::COMPONENT));
    let bins: Vec<PathBuf> = COMPONENTS
        .iter()
        .map(|c| d::find_binary(c))
        .collect::<Result<_>>()?;
    if std::net::TcpListener::bind(("127.0.0.1", router_port)).is_err() {
        return Err(CliError::other(format!(
            "Port {router_port} on 127.0.0.1 is in use; choose another with --router-port PORT."
        )));
    }
    let tls_port = match router_tls_port {
        Some(p) if p != 0 && std::net::TcpListener::bind(("127.0.0.1", p)).is_err() => {
            return Err(CliError::other(format!(
                "Port {p} on 127.0.0.1 is in use; choose another with --router-tls-port PORT."
            )));
        }
        Some(p) => p,
        // 8443 when free, else one the router picks (read back below).
        None if std::net::TcpListener::bind(("127.0.0.1", 8443)).is_ok() => 8443,
        None => 0,
    };
    for c in [
        "cloud-controller",
        "cloud-controller-internal",
        "router",
        "router-admin",
        "router-tls",
        "dea",
        "health-manager",
    ] {
        let _ = std::fs::remove_file(l.addr(c));
    }
    println!("Starting the platform in {}...", l.dir.display());
    let http = crate::client::http_client()?;
    let mut st = Started {
        layout: l.clone(),
        children: vec![],
    };

    // nats, on a port it picks itself (read back from its ports file).
    // A bus user per component role, each allowed only its subjects
    // (docs/architecture.md §3.4); nats.conf and every config holding a
    // password are 0600.
    let nats_dir = l.dir.join("nats");
    let dea_ids: Vec<String> = (0..dea_count.max(1)).map(d::dea_id).collect();
    let users = proto::busauth::BusUsers::generate(proto::busauth::DEFAULT_HM_BUCKET)
        .with_deas(&dea_ids, proto::busauth::DEFAULT_HM_BUCKET);
    let nats_conf = nats_dir.join("nats.conf");
    d::write_private(&nats_conf, &proto::busauth::server_config(&users, None))?;
    let mut nats_args = vec!["-c".to_string(), nats_conf.display().to_string()];
    nats_args.extend(proto::nats_server::args(None, &nats_dir, &nats_dir));
    let nats = d::spawn(&l, "nats", &bins[0], &nats_args)?;
    let nats_pid = nats.id();
    st.children.push(("nats".into(), nats));
    let nats_port = wait_ready(&mut st, "nats", 20, "ports file, then TCP connect", || {
        let dir = nats_dir.clone();
        async move {
            let port = proto::nats_server::read_port(&dir, nats_pid)?;
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| port)
        }
    })
    .await?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let write = |c: &str, text: String| {
        let creds = match c {
            "cloud-controller" => users.role(Role::Controller),
            "router" => users.role(Role::Router),
            "health-manager" => users.role(Role::HealthManager),
            // Each DEA its own user (only its own start requests).
            dea => users.dea(&d::dea_id(d::dea_index(dea).unwrap_or(0))),
        };
        let text = format!("{text}{}\n", creds.toml_inline());
        d::write_private(&l.config(c), &text)
    };
    write("cloud-controller", d::cc_config(&l, &nats_url, &token))?;
    let extra_deas: Vec<String> = (1..dea_count).map(d::dea_name).collect();
    let cfg_args = |c: &str| vec!["--config".to_string(), l.config(c).display().to_string()];

    println!("  nats-server        ready on {nats_url}");

    // cloud controller
    st.children.push((
        "cloud-controller".into(),
        d::spawn(
            &l,
            "cloud-controller",
            &bins[1],
            &cfg_args("cloud-controller"),
        )?,
    ));
    let cc_addr = wait_ready(
        &mut st,
        "cloud-controller",
        90,
        "addr_file, then GET / = 200",
        || {
            let (l, http) = (l.clone(), http.clone());
            async move {
                let a = read_addr(&l, "cloud-controller")?;
                http_ok(&http, &format!("http://{a}/"), None)
                    .await
                    .then_some(a)
            }
        },
    )
    .await?;
    println!("  cloud-controller   ready on http://{cc_addr}");
    // The internal API (router and HM only; written before the public addr).
    let cc_internal = read_addr(&l, "cloud-controller-internal")
        .ok_or_else(|| CliError::other("the cloud controller wrote no internal API address"))?;
    // DEAs fetch only signed blob URLs of that internal API.
    let dea_text = |text: String| format!("{text}controller_urls = [\"http://{cc_internal}\"]\n");
    if dea_count > 1 {
        // Several DEAs: each its own state dir and zone (the first is z0).
        write("dea", dea_text(d::dea_config_n(&l, &nats_url, 0)))?;
        for (i, name) in extra_deas.iter().enumerate() {
            let _ = std::fs::remove_file(l.addr(name));
            write(name, dea_text(d::dea_config_n(&l, &nats_url, i + 1)))?;
        }
    } else {
        write("dea", dea_text(d::dea_config(&l, &nats_url)))?;
    }

    // router (the controller is its route authority), HTTP and HTTPS with a
    // certificate of the local CA (made once, kept across restarts).
    let new_ca = d::ensure_tls(&l, &d::tls_names("sys.localhost", "localhost"))?;
    println!(
        "  local CA           {} {}",
        if new_ca { "made" } else { "reused" },
        l.ca_cert().display()
    );
    write(
        "router",
        d::router_config(
            &l,
            &nats_url,
            router_port,
            &format!("http://{cc_internal}"),
            &token,
        ) + &d::router_tls_config(&l, tls_port),
    )?;
    st.children.push((
        "router".into(),
        d::spawn(&l, "router", &bins[2], &cfg_args("router"))?,
    ));
    let admin = wait_ready(
        &mut st,
        "router",
        30,
        "addr_file, then admin /health = 200",
        || {
            let (l, http) = (l.clone(), http.clone());
            async move {
                read_addr(&l, "router")?;
                read_addr(&l, "router-tls")?;
                let a = read_addr(&l, "router-admin")?;
                http_ok(&http, &format!("http://{a}/health"), None)
                    .await
                    .then_some(a)
            }
        },
    )
    .await?;
    let tls_addr = read_addr(&l, "router-tls").unwrap_or_default();
    let tls_port = tls_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| {
            CliError::other(format!("the router wrote a bad HTTPS address '{tls_addr}'"))
        })?;
    println!(
        "  router             ready on 127.0.0.1:{router_port}, HTTPS on 127.0.0.1:{tls_port} (admin {admin})"
    );

    // dea and health manager (started together)
    write(
        "health-manager",
        d::hm_config(&l, &nats_url, &format!("http://{cc_internal}"), &token),
    )?;
    st.children.push((
        "dea".into(),
        d::spawn(&l, "dea", &bins[3], &cfg_args("dea"))?,
    ));
    for name in &extra_deas {
        st.children
            .push((name.clone(), d::spawn(&l, name, &bins[3], &cfg_args(name))?));
    }
    st.children.push((
        "health-manager".into(),
        d::spawn(&l, "health-manager", &bins[4], &cfg_args("health-manager"))?,
    ));
    let mut waits = vec!["dea".to_string()];
    waits.extend(extra_deas.iter().cloned());
    waits.push("health-manager".into());
    for c in &waits {
        wait_ready(&mut st, c, 30, "addr_file", || {
            let l = l.clone();
            async move { read_addr(&l, c) }
        })
        .await?;
        println!("  {c:<18} ready");
    }

    // the API through the router, over HTTP and over HTTPS (verified with
    // the local CA only)
    let api_url = format!("http://api.sys.localhost:{router_port}");
    let https_api_url = format!("https://api.sys.localhost:{tls_port}");
    let https = proto::https::client_builder(&proto::https::Verify::RootsAnd(vec![l.ca_cert()]))
        .map_err(|e| CliError::other(e.to_string()))?
        .dns_resolver(crate::dns::LocalhostResolver)
        .no_proxy()
        .build()?;
    let host = format!("api.sys.localhost:{router_port}");
    wait_ready(
        &mut st,
        "router",
        60,
        "api.sys.localhost did not answer through the router",
        || {
            let (http, host) = (http.clone(), host.clone());
            async move {
                http_ok(
                    &http,
                    &format!("http://127.0.0.1:{router_port}/"),
                    Some(&host),
                )
                .await
                .then_some(())
            }
        },
    )
    .await?;
    wait_ready(
        &mut st,
        "router",
        30,
        "api.sys.localhost did not answer over HTTPS",
        || {
            let (https, url) = (https.clone(), format!("{https_api_url}/"));
            async move { http_ok(&https, &url, None).await.then_some(()) }
        },
    )
    .await?;

    start_broker(&mut st, &http, &cc_addr).await?;

    let state = DevState {
        router_port,
        router_tls_port: tls_port,
        https_api_url,
        nats_port,
        api_url,
        cc_addr,
        router_admin_addr: admin,
    };
    let body = serde_json::to_vec_pretty(&state).map_err(|e| CliError::other(e.to_string()))?;
    std::fs::write(l.state(), body).map_err(|e| CliError::io("writing dev.json", e))?;
    // The processes live on in their own sessions.
    st.children.clear();
    println!("\nOK\n");
    print_summary(&l, &state);
    Ok(())
}

/// The service broker, when any of this machine's PostgreSQL, MySQL,
/// Redis or RabbitMQ answers: started for those, registered as `local`
/// with every plan enabled; says which it found and which it skipped, and
/// why.
async fn start_broker(st: &mut Started, http: &reqwest::Client, cc_addr: &str) -> Result<()> {
    use crate::devbroker as b;
    let l = st.layout.clone();
    let probed = b::probe().await;
    let found: Vec<&str> = probed
        .iter()
        .filter(|(_, why)| why.is_none())
        .map(|(x, _)| x.label)
        .collect();
    if found.is_empty() {
        println!(
            "  {:<18} not started: none of its servers answered",
            b::COMPONENT
        );
        for (x, why) in &probed {
            println!(
                "  {:<18} skipped {}: {}",
                "",
                x.label,
                why.as_deref().unwrap_or("")
            );
        }
        return Ok(());
    }
    let bin = d::find_binary(b::COMPONENT)?;
    let password = b::password(&l)?;
    d::write_private(&l.config(b::COMPONENT), &b::config(&l, &password, &found))?;
    let args = vec![
        "--config".to_string(),
        l.config(b::COMPONENT).display().to_string(),
    ];
    st.children.push((
        b::COMPONENT.into(),
        d::spawn(&l, b::COMPONENT, &bin, &args)?,
    ));
    let addr = wait_ready(st, b::COMPONENT, 30, "addr_file", || {
        let l = l.clone();
        async move { read_addr(&l, b::COMPONENT) }
    })
    .await?;
    let url = format!("http://{addr}");
    let served = b::catalog(http, &url, &password)
        .await
        .map_err(|e| st.fail(b::COMPONENT, format!("its catalog: {e}")))?;
    let plans = b::register(http, &format!("http://{cc_addr}"), &url, &password)
        .await
        .map_err(|e| st.fail(b::COMPONENT, e.to_string()))?;
    println!(
        "  {:<18} ready on {url}: {} (registered as '{}', {plans} plans enabled)",
        b::COMPONENT,
        served.join(", "),
        b::BROKER_NAME
    );
    for (x, why) in &probed {
        match why {
            Some(why) => println!("  {:<18} skipped {}: {why}", "", x.label),
            None if !served.iter().any(|s| s == x.label) => println!(
                "  {:<18} skipped {}: the broker could not use it (see {})",
                "",
                x.label,
                l.log(b::COMPONENT).display()
            ),
            None => {}
        }
    }
    Ok(())
}

fn kill_leftovers(l: &Layout) {
    let mut dirs = vec!["dea".to_string()];
    dirs.extend(d::extra_deas(l));
    kill_leftovers_in(l, &dirs);
}

/// Kills app instances left under the given DEAs' state dirs.
fn kill_leftovers_in(l: &Layout, dirs: &[String]) {
    for dir in dirs {
        for pid in proto::procs::pids_with_cwd_under(&l.dir.join(dir)) {
            if let Ok(pid) = i32::try_from(pid) {
                d::signal(pid, libc::SIGKILL);
            }
        }
    }
}

async fn stop(l: &Layout) -> Result<()> {
    println!("Stopping the platform in {}...", l.dir.display());
    let mut any = false;
    let all = components(l);
    // Leftover instances are found by the DEA dirs, known from the pid
    // files (removed below).
    let dea_dirs: Vec<String> = all
        .iter()
        .filter(|c| c.as_str() == "dea" || d::is_extra_dea(c))
        .cloned()
        .collect();
    for c in all.iter().rev() {
        let c = c.as_str();
        let Some(pid) = d::read_pid(l, c) else {
            continue;
        };
        if d::is_alive(pid, c) {
            any = true;
            d::signal(pid, libc::SIGTERM);
            let grace = if c == "dea" || d::is_extra_dea(c) {
                25
            } else {
                10
            };
            let deadline = Instant::now() + Duration::from_secs(grace);
            while d::is_alive(pid, c) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if d::is_alive(pid, c) {
                d::signal(pid, libc::SIGKILL);
                println!("  {c:<18} killed (pid {pid})");
            } else {
                println!("  {c:<18} stopped (pid {pid})");
            }
        }
        let _ = std::fs::remove_file(l.pid(c));
    }
    kill_leftovers_in(l, &dea_dirs);
    if !any {
        println!("Nothing was running.");
    }
    super::common::ok();
    Ok(())
}

async fn status(l: &Layout) -> Result<()> {
    let st = load_state(l);
    let http = crate::client::http_client()?;
    let mut rows = vec![vec![
        "name".to_string(),
        "pid".into(),
        "state".into(),
        "health".into(),
    ]];
    let live = running(l);
    for (c, pid) in &live {
        let health = match (pid, c.as_str()) {
            (None, _) => "-".to_string(),
            (Some(_), "nats") => ok_str(
                tokio::net::TcpStream::connect(("127.0.0.1", st.nats_port))
                    .await
                    .is_ok(),
            ),
            (Some(_), "cloud-controller") => {
                ok_str(http_ok(&http, &format!("http://{}/", st.cc_addr), None).await)
            }
            (Some(_), "router") => ok_str(
                http_ok(
                    &http,
                    &format!("http://{}/health", st.router_admin_addr),
                    None,
                )
                .await,
            ),
            (Some(_), other) => ok_str(read_addr(l, other).is_some()),
        };
        rows.push(vec![
            c.to_string(),
            pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if pid.is_some() {
                "running".into()
            } else {
                "stopped".into()
            },
            health,
        ]);
    }
    print!("{}", table(&rows));
    if live.iter().all(|(_, p)| p.is_some()) && !st.api_url.is_empty() {
        println!();
        print_summary(l, &st);
    }
    Ok(())
}

fn ok_str(b: bool) -> String {
    if b { "healthy" } else { "unhealthy" }.to_string()
}
