//! The operator's path (issue 17): `paas deploy` brings the whole platform
//! up on four simulated hosts, each a host agent on a loopback address of
//! its own (127.0.0.1-4) with its own state dir, from a release directory;
//! `cf push` works through it and the instances spread over the DEA hosts;
//! an upgrade moves every component to v2; a v3 whose router never becomes
//! healthy stops at its canary and rolls back by itself.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use integration::{bin, fixture, wait_for, Platform};

const HOSTS: [(&str, &str, &str); 4] = [
    (
        "h1",
        "127.0.0.1",
        "[nats, controller, router, health_manager]",
    ),
    ("h2", "127.0.0.2", "[nats, dea]"),
    ("h3", "127.0.0.3", "[nats, dea]"),
    ("h4", "127.0.0.4", "[dea]"),
];

/// A release: `VERSION` and a `bin/` of scripts that run this build's
/// binaries (`router_body` replaces the router's).
fn release(root: &Path, version: &str, router_body: Option<&str>) -> Result<()> {
    let dir = root.join(version);
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::write(dir.join("VERSION"), format!("{version}\n"))?;
    let nats = proto::nats_server::find().ok_or_else(|| anyhow!("no nats-server"))?;
    let mut bins: Vec<(&str, PathBuf)> = vec![("nats-server", nats)];
    for b in ["cloud-controller", "router", "health-manager", "dea"] {
        bins.push((b, bin(b)?));
    }
    for (name, path) in bins {
        let body = match (name, router_body) {
            ("router", Some(b)) => b.to_string(),
            _ => format!("exec {} \"$@\"", path.display()),
        };
        let script = dir.join("bin").join(name);
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The four agents; on drop they are killed, their components stopped and
/// whatever the DEAs' containers left removed.
struct Hosts {
    agents: Vec<Child>,
    root: PathBuf,
}

impl Hosts {
    fn component_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for (name, ..) in HOSTS {
            let comps = self.root.join(name).join("components");
            let Ok(rd) = std::fs::read_dir("/proc") else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|c| c.starts_with(&comps))
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for a in &mut self.agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        // The components got SIGTERM with their agent; what is left goes.
        let _ =
            testkit::wait_for_blocking("the components to stop", Duration::from_secs(30), || {
                self.component_pids().is_empty().then_some(())
            });
        for pid in self.component_pids() {
            // SAFETY: kill(2) on a process this test's agents started.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let tags: Vec<String> = HOSTS
            .iter()
            .filter_map(|(name, ..)| {
                std::fs::read_to_string(
                    self.root
                        .join(name)
                        .join("components/dea/state/namespaces.tag"),
                )
                .ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if !tags.is_empty() {
            if let Ok(dea) = bin("dea") {
                let _ = Command::new(dea)
                    .arg("container-cleanup")
                    .args(&tags)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn paas(args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(bin("paas")?).args(args).output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn logs(root: &Path) -> String {
    let mut out = String::new();
    for (name, ..) in HOSTS {
        out.push_str(&format!(
            "--- {name} agent\n{}",
            testkit::log_tail(&root.join(format!("{name}.log")), 15)
        ));
        for c in ["nats", "controller", "router", "health_manager", "dea"] {
            let p = root
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

#[tokio::test]
async fn paas_deploys_upgrades_and_rolls_back_the_platform_on_four_hosts() -> Result<()> {
    if !testkit::require_root("paas_deploys_the_platform", &[]) {
        return Ok(());
    }
    proto::https::install_ring();
    let db = testkit::PgDb::create().await?;
    let dir = tempfile::Builder::new().prefix("paas-op-").tempdir()?;
    let root = dir.path().to_path_buf();
    let releases = root.join("releases");
    release(&releases, "v1", None)?;
    release(&releases, "v2", None)?;
    release(&releases, "v3", Some("exec sleep 3600"))?;
    let token = root.join("agent.token");
    std::fs::write(&token, "operator-test-token-0123456789abcdef")?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;

    // The agents, one per host.
    let mut hosts = Hosts {
        agents: Vec::new(),
        root: root.clone(),
    };
    let mut host_lines = String::new();
    for (name, addr, roles) in HOSTS {
        let port = testkit::free_port();
        let log = std::fs::File::create(root.join(format!("{name}.log")))?;
        hosts.agents.push(
            Command::new(bin("paas")?)
                .args([
                    "agent",
                    "--host",
                    name,
                    "--listen",
                    &format!("{addr}:{port}"),
                ])
                .arg("--state-dir")
                .arg(root.join(name))
                .arg("--token-file")
                .arg(&token)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        );
        host_lines.push_str(&format!(
            "  - {{name: {name}, address: {addr}, agent_port: {port}, roles: {roles}}}\n"
        ));
    }
    let router_port = testkit::free_port();
    let manifest = |version: &str| {
        format!(
            "name: lab\nrelease: {{version: {version}, dir: {releases}}}\ndatabase_url: {db}\nagent_token_file: agent.token\n\
             nats: {{client_port: {nc}, cluster_port: {cl}}}\n\
             ports: {{controller: {c}, controller_internal: {ci}, router: {router_port}, router_admin: {ra}, router_drain_wait_s: 1}}\n\
             hosts:\n{host_lines}\
             update: {{canaries: 1, max_in_flight: 1, failure_budget: 0, watch_time: 60s}}\n",
            releases = releases.display(),
            db = db.url,
            nc = testkit::free_port(),
            cl = testkit::free_port(),
            c = testkit::free_port(),
            ci = testkit::free_port(),
            ra = testkit::free_port(),
        )
    };
    let v1 = manifest("v1");
    let lab = root.join("lab.yml");
    std::fs::write(&lab, &v1)?;
    let lab_s = lab.display().to_string();

    // A first deploy on four empty hosts.
    let (code, out, err) = paas(&["deploy", &lab_s])?;
    if code != 0 {
        bail!(
            "paas deploy v1 exited {code}\n{out}\n{err}\n{}",
            logs(&root)
        );
    }
    assert!(out.contains("Deployment #1: done"), "{out}");
    let (code, status, err) = paas(&["status", &lab_s])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(status.matches("running").count(), 9, "{status}");

    // cf push through the deployed router.
    let secrets: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root.join(".paas/lab/secrets.json"),
    )?)?;
    let admin = secrets["admin_password"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let home = root.join("cf-home");
    std::fs::create_dir_all(&home)?;
    let api = format!("http://api.sys.localhost:{router_port}");
    let cf = |args: Vec<String>| {
        let home = home.clone();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            Platform::cf_run(&home, &a, None).await
        }
    };
    let login = wait_for(
        "cf login through the router",
        Duration::from_secs(60),
        || {
            let cf = &cf;
            let (api, admin) = (api.clone(), admin.clone());
            async move {
                let o = cf(vec![
                    "login".into(),
                    "-a".into(),
                    api,
                    "-u".into(),
                    "admin".into(),
                    "-p".into(),
                    admin,
                    "-o".into(),
                    "dev".into(),
                    "-s".into(),
                    "dev".into(),
                ])
                .await
                .ok()?;
                (o.status == 0).then_some(o)
            }
        },
    )
    .await;
    if let Err(e) = login {
        bail!("{e}\n{}", logs(&root));
    }
    let app = fixture("pyapp").display().to_string();
    let o = cf(vec![
        "push".into(),
        "opapp".into(),
        "-p".into(),
        app,
        "-i".into(),
        "3".into(),
    ])
    .await?;
    if o.status != 0 {
        bail!("cf push: {}\n{}\n{}", o.stdout, o.stderr, logs(&root));
    }
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("http://127.0.0.1:{router_port}/"))
            .header("host", "opapp.localhost")
            .timeout(Duration::from_secs(5))
            .send()
    };
    let spread = wait_for(
        "three instances on the DEA hosts",
        Duration::from_secs(90),
        || {
            let cf = &cf;
            async move {
                let o = cf(vec!["curl".into(), "/v3/apps?names=opapp".into()])
                    .await
                    .ok()?;
                let v: serde_json::Value = serde_json::from_str(&o.stdout).ok()?;
                let guid = v["resources"][0]["guid"].as_str()?.to_string();
                let o = cf(vec![
                    "curl".into(),
                    format!("/v3/apps/{guid}/processes/web/stats"),
                ])
                .await
                .ok()?;
                let v: serde_json::Value = serde_json::from_str(&o.stdout).ok()?;
                let running: Vec<String> = v["resources"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["state"] == "RUNNING")
                    .filter_map(|s| s["host"].as_str().map(str::to_string))
                    .collect();
                (running.len() == 3).then_some(running)
            }
        },
    )
    .await?;
    let distinct: BTreeSet<&String> = spread.iter().collect();
    assert!(
        distinct.len() >= 2,
        "instances spread over the DEA hosts: {spread:?}"
    );
    assert!(!distinct.contains(&"127.0.0.1".to_string()), "{spread:?}");
    let r = get().await?;
    assert_eq!(r.status().as_u16(), 200);

    // An upgrade to v2 touches every host in the sequence.
    let v2 = v1.replace("version: v1,", "version: v2,");
    std::fs::write(&lab, &v2)?;
    let (code, out, err) = paas(&["deploy", &lab_s])?;
    if code != 0 {
        bail!(
            "paas deploy v2 exited {code}\n{out}\n{err}\n{}",
            logs(&root)
        );
    }
    assert!(out.contains("Deployment #2: done"), "{out}");
    let (_, status, _) = paas(&["status", &lab_s])?;
    assert_eq!(status.matches(" v2 ").count(), 9, "{status}");
    assert_eq!(status.matches("running").count(), 9, "{status}");
    wait_for(
        "the app after the upgrade",
        Duration::from_secs(60),
        || async { get().await.ok().filter(|r| r.status().as_u16() == 200) },
    )
    .await?;

    // A v3 whose router never answers its health check: the canary fails,
    // the rollout stops and rolls back, every component on v2 again.
    std::fs::write(&lab, v1.replace("version: v1,", "version: v3,"))?;
    let (code, out, err) = paas(&["deploy", &lab_s])?;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "Deployment #3: rolled_back (canary h1 failed: router v3 not healthy within 60s"
        ),
        "{err}"
    );
    // Healthy on v2, which the manifest (v3) calls outdated.
    let (_, status, _) = paas(&["status", &lab_s])?;
    assert_eq!(status.matches(" v2 ").count(), 9, "{status}");
    assert_eq!(status.matches("outdated").count(), 9, "{status}");
    let (_, events, _) = paas(&["events", &lab_s])?;
    assert!(
        events.contains("#3 rolling_back: canary h1 failed"),
        "{events}"
    );
    assert!(events.contains("#3 rolled_back"), "{events}");
    wait_for(
        "the app after the rollback",
        Duration::from_secs(60),
        || async { get().await.ok().filter(|r| r.status().as_u16() == 200) },
    )
    .await?;
    drop(hosts);
    Ok(())
}
