//! The host agent supervising a real router: releases installed side by
//! side, a new version replacing the old after a drain, a killed process
//! restarted with backoff, a bad release reported unhealthy, the API closed
//! to callers without the token, and every component stopped with the agent.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value};

const TOKEN: &str = "agent-token-for-tests-0123456789";

/// The directory of the workspace's binaries (beside this test's).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A release directory: `VERSION` and `bin/router`, a script that runs
/// `body` (with the real router's path as `$ROUTER`).
fn release(root: &Path, version: &str, body: &str) -> PathBuf {
    let dir = root.join(format!("release-{version}"));
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).expect("VERSION");
    let script = dir.join("bin/router");
    let router = bin_dir().join("router");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nROUTER={}\n{body}\n", router.display()),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The agent process; killed (with its components) on drop.
struct Agent {
    child: Option<Child>,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_agent(dir: tempfile::TempDir) -> Agent {
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let addr_file = dir.path().join("agent.addr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paas"));
    cmd.args(["agent", "--host", "h1", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--token-file")
        .arg(&token)
        .arg("--addr-file")
        .arg(&addr_file);
    let (child, addr) = crate::spawn_agent(&mut cmd, dir.path(), &addr_file);
    Agent {
        child: Some(child),
        url: format!("http://{addr}"),
        _dir: dir,
    }
}

fn router_spec(version: &str, release: &Path, nats: &str, admin: u16) -> Value {
    json!({
        "role": "router",
        "version": version,
        "release_dir": release.display().to_string(),
        "argv": ["bin/router", "--config", "{config}"],
        "config": format!("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:{admin}\"\nnats_url = \"{nats}\"\n"),
        "health": {"kind": "http", "url": format!("http://127.0.0.1:{admin}/health")},
        "drain": {"signal": "TERM", "timeout_s": 10},
    })
}

async fn put(c: &reqwest::Client, a: &Agent, body: &Value, token: &str) -> (u16, Value) {
    let r = c
        .put(format!("{}/v1/desired", a.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("put");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn status(c: &reqwest::Client, a: &Agent) -> Value {
    c.get(format!("{}/v1/status", a.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status json")
}

/// Waits until the router runs `version` in `state`; its status entry.
async fn router_in(c: &reqwest::Client, a: &Agent, version: &str, state: &str) -> Value {
    testkit::wait_for(
        &format!("router {version} {state}"),
        Duration::from_secs(30),
        || async {
            let s = status(c, a).await;
            s["components"]
                .as_array()?
                .iter()
                .find(|x| x["role"] == "router" && x["version"] == version && x["state"] == state)
                .cloned()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", status_text(a)))
}

fn status_text(a: &Agent) -> String {
    let log = a._dir.path().join("agent.log");
    testkit::log_tail(&log, 30)
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn the_agent_installs_upgrades_restarts_and_stops_a_router() {
    proto::https::install_ring();
    let nats = testkit::NatsServer::start().expect("nats");
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = release(dir.path(), "v1", "exec \"$ROUTER\" \"$@\"");
    let v2 = release(dir.path(), "v2", "exec \"$ROUTER\" \"$@\"");
    // v3 runs but never answers its health check.
    let v3 = release(dir.path(), "v3", "exec sleep 600");
    let admin = testkit::free_port();
    let agent = start_agent(dir);
    let c = reqwest::Client::new();

    // Refused: no token, a wrong one, a bad desired state. Nothing changes.
    let r = c
        .get(format!("{}/v1/status", agent.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let v1_spec = router_spec("v1", &v1, &nats.url, admin);
    let one = |spec: &Value| json!({ "components": [spec] });
    let (code, _) = put(&c, &agent, &one(&v1_spec), "wrong-token-wrong-token").await;
    assert_eq!(code, 401);
    let mut escaping = v1_spec.clone();
    escaping["argv"] = json!(["../../bin/sh", "-c", "id"]);
    let (code, body) = put(&c, &agent, &one(&escaping), TOKEN).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("inside the release"),
        "{body}"
    );
    let (code, _) = put(&c, &agent, &json!({"components": "all"}), TOKEN).await;
    assert_eq!(code, 422);
    assert_eq!(status(&c, &agent).await["components"], json!([]));

    // v1 installed and started; healthy.
    let (code, body) = put(&c, &agent, &one(&v1_spec), TOKEN).await;
    assert_eq!(code, 200, "{body}");
    let first = router_in(&c, &agent, "v1", "running").await;
    let pid1 = first["pid"].as_u64().expect("pid");

    // v2 replaces it: the v1 process drained away, both releases installed.
    let (code, _) = put(
        &c,
        &agent,
        &one(&router_spec("v2", &v2, &nats.url, admin)),
        TOKEN,
    )
    .await;
    assert_eq!(code, 200);
    let second = router_in(&c, &agent, "v2", "running").await;
    let pid2 = second["pid"].as_u64().expect("pid");
    assert_ne!(pid1, pid2);
    assert!(!alive(pid1), "the v1 router is gone");
    let s = status(&c, &agent).await;
    assert_eq!(s["releases"], json!(["v1", "v2"]));
    assert_eq!(second["restarts"], 0);

    // A killed router is started again (a restart counted).
    // SAFETY: kill(2) on the router the agent started for this test.
    unsafe {
        libc::kill(i32::try_from(pid2).expect("pid"), libc::SIGKILL);
    }
    let again = testkit::wait_for("the router restarted", Duration::from_secs(30), || async {
        let s = status(&c, &agent).await;
        s["components"]
            .as_array()?
            .iter()
            .find(|x| x["state"] == "running" && x["pid"].as_u64() != Some(pid2))
            .cloned()
    })
    .await
    .expect("restart");
    assert_eq!(again["restarts"], 1, "{again}");

    // A bad v3 never becomes healthy; back to v2, healthy again.
    let (code, _) = put(
        &c,
        &agent,
        &one(&router_spec("v3", &v3, &nats.url, admin)),
        TOKEN,
    )
    .await;
    assert_eq!(code, 200);
    let bad = router_in(&c, &agent, "v3", "starting").await;
    assert!(bad["pid"].as_u64().is_some());
    let (code, _) = put(
        &c,
        &agent,
        &one(&router_spec("v2", &v2, &nats.url, admin)),
        TOKEN,
    )
    .await;
    assert_eq!(code, 200);
    let back = router_in(&c, &agent, "v2", "running").await;
    let pid_back = back["pid"].as_u64().expect("pid");
    let events = status(&c, &agent).await["events"].to_string();
    assert!(
        events.contains("router v3 stopped") || events.contains("router v3 killed"),
        "{events}"
    );

    // The agent stops: its router goes with it.
    let mut agent = agent;
    let mut child = agent.child.take().expect("agent");
    // SAFETY: kill(2) on the agent this test started.
    unsafe {
        libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM);
    }
    let code = testkit::wait_for_blocking("the agent to exit", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    })
    .expect("agent exit");
    assert!(code.success(), "{code}");
    testkit::wait_for_blocking("the router to exit", Duration::from_secs(10), || {
        (!alive(pid_back)).then_some(())
    })
    .expect("router gone with its agent");
}

#[test]
fn an_agent_refuses_a_token_others_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(env!("CARGO_BIN_EXE_paas"))
        .args(["agent", "--host", "h1", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--token-file")
        .arg(&token)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by its owner only"), "{err}");
}
