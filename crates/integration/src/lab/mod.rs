//! A lab of simulated hosts for the operator's tests and benchmarks
//! (issue 17, docs/operations.md "The test lab"), built from the parts
//! `cf dev start --hosts N` uses (`paas::lab`): each host a network
//! namespace of its own on a bridge, with its own address, state dir and
//! host agent; release directories whose `bin/` runs this build's
//! binaries; a deployment manifest; and HAProxy in front of the routers,
//! health-checking their `/health` (the API and the apps are reached
//! through it), which also passes the hosts through to Postgres. Unlike
//! `cf dev`, everything here is a child of the test: on drop the load
//! balancer and the agents are killed, their components stopped, what
//! the DEAs' containers left removed, and the namespaces, veths, bridge
//! and rules deleted.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use paas::lab::{haproxy, layout, net, release};

use crate::{bin, fixture, wait_for, CfOutput, Platform};

/// (name, roles) of a lab's hosts.
pub type HostDef = (&'static str, &'static [&'static str]);

/// Four hosts: two for the control plane (a NATS node, a controller, a
/// router and a health manager each), two DEA hosts (one with the third
/// NATS node): what `cf dev start --hosts 4` makes.
pub const FOUR_HOSTS: [HostDef; 4] = [
    ("h1", &["nats", "controller", "router", "health_manager"]),
    ("h2", &["nats", "controller", "router", "health_manager"]),
    ("h3", &["nats", "dea"]),
    ("h4", &["dea"]),
];

/// A release: `VERSION` and a `bin/` of scripts that run this build's
/// binaries; `over` replaces some with a script body of its own.
pub fn release(root: &std::path::Path, version: &str, over: &[(&str, &str)]) -> Result<()> {
    let nats = proto::nats_server::find().ok_or_else(|| anyhow!("no nats-server"))?;
    let mut bins: Vec<(&str, PathBuf)> = vec![("nats-server", nats)];
    for b in release::PROGRAMS {
        bins.push((b, bin(b)?));
    }
    Ok(release::write(root, version, &bins, over)?)
}

/// The hosts and their agents, the load balancer; see the module's doc
/// for what goes on drop.
pub struct Lab {
    pub hosts: &'static [HostDef],
    agents: Vec<Child>,
    lb_child: Option<Child>,
    /// HAProxy in front of the routers (on the machine's loopback).
    pub lb: std::net::SocketAddr,
    pub root: PathBuf,
    pub manifest: PathBuf,
    /// The manifest's text at v1 (other versions replace the label).
    pub text: String,
    pub router_port: u16,
    pub router_admin_port: u16,
    pub net: net::Net,
    _db: testkit::PgDb,
    _dir: tempfile::TempDir,
}

impl Lab {
    pub async fn start(
        hosts: &'static [HostDef],
        releases: &[(&str, &[(&str, &str)])],
    ) -> Result<Lab> {
        proto::https::install_ring();
        let db = testkit::PgDb::create().await?;
        let dir = tempfile::Builder::new().prefix("paas-op-").tempdir()?;
        let root = dir.path().to_path_buf();
        for (v, over) in releases {
            release(&root.join("releases"), v, over)?;
        }
        let token = root.join("agent.token");
        std::fs::write(&token, "operator-test-token-0123456789abcdef")?;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
        let names: Vec<&str> = hosts.iter().map(|(n, _)| *n).collect();
        let net = net::Net::create(&names)?;
        let mut lab = Lab {
            hosts,
            agents: Vec::new(),
            lb_child: None,
            lb: ([127, 0, 0, 1], testkit::free_port()).into(),
            manifest: root.join("lab.yml"),
            root: root.clone(),
            text: String::new(),
            router_port: layout::ROUTER_PORT,
            router_admin_port: layout::ROUTER_ADMIN_PORT,
            net,
            _db: db,
            _dir: dir,
        };
        let paas = bin("paas")?;
        for (i, (name, _)) in hosts.iter().enumerate() {
            let addr = (lab.net.addr(i), layout::AGENT_PORT).into();
            let log = std::fs::File::create(root.join(format!("{name}.log")))?;
            lab.agents.push(
                paas::lab::agent_command(&lab.net, &paas, name, addr, &root.join(name), &token)
                    .stderr(log)
                    .spawn()?,
            );
        }
        // Every agent listening before anything is asked of it.
        for (i, (name, _)) in hosts.iter().enumerate() {
            let addr = std::net::SocketAddr::from((lab.net.addr(i), layout::AGENT_PORT));
            let up = wait_for("the host agents", Duration::from_secs(20), || async {
                tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
            })
            .await;
            if let Err(e) = up {
                bail!("agent of {name} at {addr}: {e}\n{}", lab.logs());
            }
        }
        // Postgres for the hosts, through the load balancer.
        let pg = (lab.net.gateway(), 5432);
        let plan: Vec<(String, Vec<&str>)> = hosts
            .iter()
            .map(|(n, roles)| (n.to_string(), roles.to_vec()))
            .collect();
        let addrs: Vec<_> = (0..hosts.len()).map(|i| lab.net.addr(i)).collect();
        lab.text = layout::manifest(
            &layout::ManifestArgs {
                name: "lab",
                version: "v1",
                releases_dir: &root.join("releases").display().to_string(),
                database_url: &format!("postgres://postgres@{}:{}/{}", pg.0, pg.1, lab._db.name),
                token_file: "agent.token",
                router_drain_wait_s: 2,
                update: "canaries: 1, max_in_flight: 1, failure_budget: 0, watch_time: 30s",
            },
            &plan,
            &addrs,
        );
        lab.start_lb()?;
        Ok(lab)
    }

    /// Host `name`'s address.
    pub fn addr(&self, name: &str) -> String {
        self.hosts
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| self.net.addr(i).to_string())
            .unwrap_or_default()
    }

    /// `paas ARGS MANIFEST` (without blocking the runtime: the steady
    /// client runs on it meanwhile).
    pub async fn paas(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.push(self.manifest.display().to_string());
        let out = tokio::process::Command::new(bin("paas")?)
            .args(&all)
            .output()
            .await?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `paas deploy` of `version`: its exit code, stdout and stderr.
    pub async fn deploy(&self, version: &str) -> Result<(i32, String, String)> {
        std::fs::write(
            &self.manifest,
            self.text
                .replace("version: v1,", &format!("version: {version},")),
        )?;
        self.paas(&["deploy"]).await
    }

    /// `paas deploy` of `version` started, not waited for.
    pub fn spawn_deploy(&self, version: &str) -> Result<tokio::process::Child> {
        std::fs::write(
            &self.manifest,
            self.text
                .replace("version: v1,", &format!("version: {version},")),
        )?;
        Ok(tokio::process::Command::new(bin("paas")?)
            .arg("deploy")
            .arg(&self.manifest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?)
    }

    pub async fn deploy_ok(&self, version: &str) -> Result<String> {
        let (code, out, err) = self.deploy(version).await?;
        if code != 0 {
            bail!(
                "paas deploy {version} exited {code}\n{out}\n{err}\n{}",
                self.logs()
            );
        }
        Ok(out)
    }

    pub async fn cf(&self, args: &[&str]) -> Result<CfOutput> {
        let home = self.root.join("cf-home");
        std::fs::create_dir_all(&home)?;
        Platform::cf_run(&home, args, None).await
    }

    /// Logs in as admin through the router on h1 and pushes the python
    /// fixture as `app` with 3 instances; the hosts they run on.
    pub async fn push(&self, app: &str) -> Result<Vec<String>> {
        let secrets: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            self.root.join(".paas/lab/secrets.json"),
        )?)?;
        let admin = secrets["admin_password"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let api = format!("http://api.sys.localhost:{}", self.lb.port());
        let login = wait_for(
            "cf login through the load balancer",
            Duration::from_secs(60),
            || async {
                let o = self
                    .cf(&[
                        "login", "-a", &api, "-u", "admin", "-p", &admin, "-o", "dev", "-s", "dev",
                    ])
                    .await
                    .ok()?;
                (o.status == 0).then_some(o)
            },
        )
        .await;
        if let Err(e) = login {
            bail!("{e}\n{}", self.logs());
        }
        let dir = fixture("pyapp").display().to_string();
        let o = self.cf(&["push", app, "-p", &dir, "-i", "3"]).await?;
        if o.status != 0 {
            bail!("cf push: {}\n{}\n{}", o.stdout, o.stderr, self.logs());
        }
        wait_for(
            "three instances running",
            Duration::from_secs(90),
            || async {
                let running = self.instance_hosts(app).await.ok()?;
                (running.len() == 3).then_some(running)
            },
        )
        .await
    }

    /// The hosts (addresses) of `app`'s RUNNING web instances.
    pub async fn instance_hosts(&self, app: &str) -> Result<Vec<String>> {
        let o = self.cf(&["curl", &format!("/v3/apps?names={app}")]).await?;
        let v: serde_json::Value = serde_json::from_str(&o.stdout)?;
        let guid = v["resources"][0]["guid"]
            .as_str()
            .ok_or_else(|| anyhow!("no app {app}: {}", o.stdout))?
            .to_string();
        let o = self
            .cf(&["curl", &format!("/v3/apps/{guid}/processes/web/stats")])
            .await?;
        let v: serde_json::Value = serde_json::from_str(&o.stdout)?;
        Ok(v["resources"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|s| s["state"] == "RUNNING")
                    .filter_map(|s| s["host"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// HAProxy in front of the routers, health-checking their `/health`
    /// every 200 ms, on `self.lb`; and between the hosts and Postgres.
    fn start_lb(&mut self) -> Result<()> {
        let cfg = haproxy::config(&haproxy::Config {
            bind: self.lb,
            routers: self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, (_, roles))| roles.contains(&"router"))
                .map(|(i, (name, _))| (name.to_string(), self.net.addr(i)))
                .collect(),
            router_port: self.router_port,
            router_admin_port: self.router_admin_port,
            postgres: Some((
                (self.net.gateway(), 5432).into(),
                ([127, 0, 0, 1], 5432).into(),
            )),
        });
        let path = self.root.join("haproxy.cfg");
        std::fs::write(&path, cfg)?;
        let log = std::fs::File::create(self.root.join("haproxy.log"))?;
        self.lb_child = Some(
            Command::new(haproxy::binary()?)
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
        Ok(())
    }

    /// `app`'s instances as the hosts run them, read off the processes
    /// (not the API, which shows one per index): (host address, index,
    /// instance guid) of every live process with the app's environment.
    pub fn live_instances(&self, app: &str) -> BTreeSet<(String, String, String)> {
        let needle = format!("\"application_name\":\"{app}\"");
        proto::procs::all_pids()
            .into_iter()
            .filter_map(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
            .filter_map(|env| {
                let vars: Vec<String> = env
                    .split(|b| *b == 0)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                let get = |k: &str| {
                    vars.iter()
                        .find_map(|v| v.strip_prefix(&format!("{k}=")).map(str::to_string))
                };
                get("VCAP_APPLICATION")
                    .filter(|v| v.contains(&needle))
                    .and_then(|_| {
                        Some((
                            get("CF_INSTANCE_IP")?,
                            get("CF_INSTANCE_INDEX")?,
                            get("CF_INSTANCE_GUID")?,
                        ))
                    })
            })
            .collect()
    }

    /// Waits until `host` answers 2xx through the load balancer.
    pub async fn wait_through_lb(&self, host: &str) -> Result<()> {
        let lb = self.lb;
        wait_for(
            "the app through the load balancer",
            Duration::from_secs(30),
            || async {
                crate::http_client()
                    .get(format!("http://{host}:{}/", lb.port()))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            },
        )
        .await?;
        Ok(())
    }

    /// A host lost: its agent and every process it started killed at once
    /// (frozen with SIGSTOP first, so none of them hears of the others'
    /// end and none drains or says goodbye; then SIGKILL), then its DEA's
    /// containers (and the apps in them) removed.
    pub fn kill_host(&mut self, name: &str) {
        let mut pids: Vec<i32> =
            crate::pids_with_cwd_under(&self.root.join(name).join("components"))
                .into_iter()
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
        let agent = self.hosts.iter().position(|(n, ..)| *n == name);
        if let Some(a) = agent.and_then(|i| self.agents.get(i)) {
            if let Ok(pid) = i32::try_from(a.id()) {
                pids.push(pid);
            }
        }
        for signal in [libc::SIGSTOP, libc::SIGKILL] {
            for pid in &pids {
                // SAFETY: kill(2) on processes this lab's agent started.
                unsafe {
                    libc::kill(*pid, signal);
                }
            }
        }
        if let Some(a) = agent.and_then(|i| self.agents.get_mut(i)) {
            let _ = a.wait();
        }
        self.reap(&[name]);
    }

    /// Reaps hosts whose agents are gone (`paas::lab::reap_hosts`): their
    /// components, then what their DEAs' containers left.
    fn reap(&self, names: &[&str]) {
        let hosts: Vec<(String, PathBuf)> = names
            .iter()
            .map(|n| (n.to_string(), self.root.join(n)))
            .collect();
        paas::lab::reap_hosts(&self.net, &hosts, bin("dea").ok().as_deref());
    }

    pub fn component_pids(&self) -> Vec<i32> {
        self.hosts
            .iter()
            .flat_map(|(name, ..)| {
                crate::pids_with_cwd_under(&self.root.join(name).join("components"))
            })
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, ..) in self.hosts {
            out.push_str(&format!(
                "--- {name} agent\n{}",
                testkit::log_tail(&self.root.join(format!("{name}.log")), 15)
            ));
            for c in ["nats", "controller", "router", "health_manager", "dea"] {
                let p = self
                    .root
                    .join(name)
                    .join("components")
                    .join(c)
                    .join(format!("{c}.log"));
                if p.exists() {
                    out.push_str(&format!("--- {name} {c}\n{}", testkit::log_tail(&p, 15)));
                }
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut lb) = self.lb_child.take() {
            let _ = lb.kill();
            let _ = lb.wait();
        }
        for a in &mut self.agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        // The components got SIGTERM with their agent; what is left goes.
        let names: Vec<&str> = self.hosts.iter().map(|(n, _)| *n).collect();
        self.reap(&names);
    }
}
