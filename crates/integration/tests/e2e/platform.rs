//! Issue 2: push → staged → running → routed, scaling, healing, restarts, bad input, `cf dev`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use integration::{app_host as host, fixture, process_alive, wait_for, Platform, PlatformOptions};

const T: Duration = Duration::from_secs(120);

fn body_json(body: &str) -> Result<serde_json::Value> {
    serde_json::from_str(body).with_context(|| format!("app body is not JSON: {body}"))
}

async fn push_fixture(p: &Platform, name: &str) -> Result<()> {
    let dir = fixture("pyapp");
    let out = p
        .cf_ok(&["push", name, "-p", dir.to_str().unwrap_or_default()])
        .await?;
    assert!(
        out.stdout.contains("running"),
        "push output shows instances: {}",
        out.stdout
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_scale_heal_stop_start_delete() -> Result<()> {
    // The default backend: `auto` (namespaces when the tests run as root).
    main_flow(PlatformOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_scale_heal_stop_start_delete_on_process_backend() -> Result<()> {
    main_flow(PlatformOptions {
        dea_config: "backend = \"process\"".into(),
        ..PlatformOptions::default()
    })
    .await
}

async fn main_flow(opts: PlatformOptions) -> Result<()> {
    let p = Platform::start_with(opts).await?;
    p.login().await?;
    push_fixture(&p, "pyapp").await?;
    let h = host("pyapp");

    // Routed: 200 with the app's body.
    let body = p.wait_route_status(&h, 200, T).await?;
    assert_eq!(body_json(&body)?["message"], "hello from pyapp");

    // `cf app` shows the route and one running instance.
    let app = p.cf_ok(&["app", "pyapp"]).await?;
    assert!(
        app.stdout.contains("routes:") && app.stdout.contains(&h),
        "{}",
        app.stdout
    );
    assert!(
        app.stdout.contains("#0") && app.stdout.contains("running"),
        "{}",
        app.stdout
    );

    // Scale to three: three RUNNING, and the router reaches all three.
    p.cf_ok(&["scale", "pyapp", "-i", "3"]).await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "pyapp").await?;
    p.wait_running(&token, &guid, 3, T).await?;
    let seen = wait_for("requests reaching all three instances", T, || async {
        let mut seen = BTreeSet::new();
        for _ in 0..30 {
            if let Ok((200, body)) = p.get_via_router(&h, "/").await {
                if let Some(i) = body_json(&body)
                    .ok()
                    .and_then(|v| v["index"].as_str().map(String::from))
                {
                    seen.insert(i);
                }
            }
            if seen.len() == 3 {
                return Some(seen);
            }
        }
        None
    })
    .await?;
    assert_eq!(
        seen,
        BTreeSet::from(["0".to_string(), "1".to_string(), "2".to_string()])
    );

    // kill -9 one instance's process: three RUNNING again. The host pid is
    // found by environment: in a PID namespace the app's own pid is not it.
    let (_, body) = p.get_via_router(&h, "/").await?;
    let index: u32 = body_json(&body)?["index"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .context("index in body")?;
    let host_pid = |i: u32| {
        integration::procs::app_instance_pids(&guid)
            .into_iter()
            .find(|(x, _)| *x == i)
            .map(|(_, pid)| pid)
    };
    let victim = host_pid(index).context("host pid of the instance")?;
    integration::procs::signal(victim, 9);
    wait_for("victim to die", T, || async {
        (!process_alive(victim)).then_some(())
    })
    .await?;
    wait_for(
        "three running after kill -9, victim replaced",
        T,
        || async {
            let s = p.stats(&token, &guid).await.ok()?;
            let running = s.iter().filter(|r| r["state"] == "RUNNING").count();
            if running != 3 {
                return None;
            }
            // The victim's index runs again in a new process.
            let pid = host_pid(index)?;
            (pid != victim).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;

    // Stop → 404; start → 200.
    p.cf_ok(&["stop", "pyapp"]).await?;
    p.wait_route_status(&h, 404, T).await?;
    p.cf_ok(&["start", "pyapp"]).await?;
    p.wait_route_status(&h, 200, T).await?;
    p.wait_running(&token, &guid, 3, T).await?;
    let pids: BTreeSet<u32> = integration::procs::app_instance_pids(&guid)
        .into_iter()
        .map(|(_, pid)| pid)
        .collect();
    assert_eq!(pids.len(), 3, "three instance processes: {pids:?}");

    // Delete: app, route and instances gone.
    p.cf_ok(&["delete", "pyapp", "-f", "-r"]).await?;
    p.wait_route_status(&h, 404, T).await?;
    let apps = p.api_get(&token, "/v3/apps?names=pyapp").await?;
    assert_eq!(
        apps["resources"].as_array().map(Vec::len),
        Some(0),
        "{apps}"
    );
    let routes = p.api_get(&token, "/v3/routes?hosts=pyapp").await?;
    assert_eq!(
        routes["resources"].as_array().map(Vec::len),
        Some(0),
        "{routes}"
    );
    wait_for("instance processes gone", T, || async {
        pids.iter().all(|pid| !process_alive(*pid)).then_some(())
    })
    .await?;
    let app = p.cf(&["app", "pyapp"]).await?;
    assert_ne!(app.status, 0, "cf app of a deleted app fails");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_keeps_state_and_instances() -> Result<()> {
    let mut p = Platform::start().await?;
    p.login().await?;
    push_fixture(&p, "keeper").await?;
    let h = host("keeper");
    let body = p.wait_route_status(&h, 200, T).await?;
    let pid_before = body_json(&body)?["pid"].as_u64();

    p.cc.kill9();
    p.cc.start()?;
    p.wait_cc_ready().await?;

    // Users: a fresh login works; apps and routes are still there.
    p.login().await?;
    let apps = p.cf_ok(&["apps"]).await?;
    assert!(apps.stdout.contains("keeper"), "{}", apps.stdout);
    let routes = p.cf_ok(&["routes"]).await?;
    assert!(routes.stdout.contains("keeper"), "{}", routes.stdout);
    // The running instance was not disturbed.
    let body = p.wait_route_status(&h, 200, T).await?;
    assert_eq!(body_json(&body)?["pid"].as_u64(), pid_before);
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "keeper").await?;
    p.wait_running(&token, &guid, 1, T).await?;

    // cf logout revokes its refresh token on the server: a copy of it is
    // refused afterwards.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.cf_home.join(".cf").join("config.json"))?)?;
    let rt = config["refresh_token"]
        .as_str()
        .context("a refresh token in the cf config")?
        .to_string();
    let refresh = || async {
        reqwest::Client::new()
            .post(format!("http://{}/oauth/token", p.cc_addr))
            .basic_auth("cf", Some(""))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    assert_eq!(refresh().await?, 200, "the refresh token works before");
    p.cf_ok(&["logout"]).await?;
    assert_eq!(refresh().await?, 401, "and not after cf logout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_loses_nothing() -> Result<()> {
    let p = Platform::start().await?;
    let cc = format!("http://{}", p.cc_addr);
    let client = reqwest::Client::new();

    // No token, a bad token, a wrong password → 401.
    let r = client.get(format!("{cc}/v3/apps")).send().await?;
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await?;
    assert_eq!(v["errors"][0]["code"], 1000, "{v}");
    let r = client
        .get(format!("{cc}/v3/apps"))
        .bearer_auth("not-a-jwt")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = client
        .post(format!("{cc}/oauth/token"))
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "wrong"),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let api = p.api_url();
    let bad = p
        .cf(&["login", "-a", &api, "-u", "admin", "-p", "wrong"])
        .await?;
    assert_ne!(bad.status, 0, "login with a wrong password fails");

    p.login().await?;
    push_fixture(&p, "steady").await?;
    let h = host("steady");
    let body = p.wait_route_status(&h, 200, T).await?;
    let pid = body_json(&body)?["pid"].as_u64();

    // A corrupt zip upload → 4xx CF error, and the running version keeps serving.
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "steady").await?;
    let pkg: serde_json::Value = client
        .post(format!("{cc}/v3/packages"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"type": "bits", "relationships": {"app": {"data": {"guid": guid}}}}))
        .send()
        .await?
        .json()
        .await?;
    let pkg_guid = pkg["guid"].as_str().context("package guid")?;
    let form = reqwest::multipart::Form::new().part(
        "bits",
        reqwest::multipart::Part::bytes(b"PK\x03\x04 this is not a zip".to_vec())
            .file_name("app.zip"),
    );
    let r = client
        .post(format!("{cc}/v3/packages/{pkg_guid}/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await?;
    assert!(
        (400..500).contains(&status),
        "corrupt zip answered {status}: {v}"
    );
    assert!(
        v["errors"][0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("CF-")),
        "{v}"
    );
    let (s, body) = p.get_via_router(&h, "/").await?;
    assert_eq!(s, 200);
    assert_eq!(
        body_json(&body)?["pid"].as_u64(),
        pid,
        "same instance still serving"
    );

    // An app no buildpack detects: staging fails clearly, push exits non-zero.
    let dir = fixture("noapp");
    let out = p
        .cf(&["push", "noapp", "-p", dir.to_str().unwrap_or_default()])
        .await?;
    assert_ne!(out.status, 0);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("NoAppDetectedError"),
        "clear staging error: {all}"
    );
    assert!(out.stdout.contains("FAILED"), "{all}");

    // Everything already stored is still there and still serving.
    let (s, _) = p.get_via_router(&h, "/").await?;
    assert_eq!(s, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cf_dev_start_then_stop_leaves_no_process() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("paas-dev-").tempdir()?;
    let state = dir.path().join("state");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let port = integration::free_port();
    let cf = integration::bin("cf")?;
    let guard = DevGuard(state.clone());
    let out = tokio::process::Command::new(&cf)
        .args([
            "dev",
            "start",
            "--dir",
            state.to_str().unwrap_or_default(),
            "--router-port",
            &port.to_string(),
        ])
        .env("CF_HOME", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cf dev start: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "cf login -a http://api.sys.localhost:{port} -u admin -p admin"
        )),
        "{stdout}"
    );
    // The service broker: this machine runs all four of its servers.
    let broker_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("service-broker"))
        .unwrap_or_default();
    for want in [
        "ready on http://127.0.0.1:",
        "postgresql, mysql, redis, rabbitmq",
        "registered as 'local', 8 plans enabled",
    ] {
        assert!(broker_line.contains(want), "{want}: {stdout}");
    }
    let needle = state.display().to_string();
    let running = integration::procs::pids_with_cmdline_containing(&needle);
    assert!(
        running.len() >= 6,
        "nats + 4 components + the broker running: {running:?}"
    );

    let st = tokio::process::Command::new(&cf)
        .args(["dev", "status", "--dir", &needle])
        .env("CF_HOME", &home)
        .output()
        .await?;
    let st = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(
        st.lines().any(|l| l.starts_with("service-broker")
            && l.contains("running")
            && l.contains("healthy")),
        "{st}"
    );
    // Its plans are in the marketplace for a developer.
    let cf_in = |args: Vec<String>| {
        let (cf, home) = (cf.clone(), home.clone());
        async move {
            tokio::process::Command::new(&cf)
                .args(&args)
                .env("CF_HOME", &home)
                .stdin(std::process::Stdio::null())
                .output()
                .await
        }
    };
    let api = format!("http://api.sys.localhost:{port}");
    let login = cf_in(
        [
            "login", "-a", &api, "-u", "admin", "-p", "admin", "-o", "dev", "-s", "dev",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await?;
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let m = cf_in(vec!["marketplace".into()]).await?;
    let m = String::from_utf8_lossy(&m.stdout).to_string();
    for label in ["postgresql", "mysql", "redis", "rabbitmq"] {
        assert!(
            m.lines().any(|l| l.starts_with(label)
                && l.contains("small, shared")
                && l.contains("local")),
            "{label}: {m}"
        );
    }

    let out = tokio::process::Command::new(&cf)
        .args(["dev", "stop", "--dir", &needle])
        .env("CF_HOME", &home)
        .output()
        .await?;
    assert!(
        out.status.success(),
        "cf dev stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "no process left behind",
        Duration::from_secs(30),
        || async {
            integration::procs::pids_with_cmdline_containing(&needle)
                .is_empty()
                .then_some(())
        },
    )
    .await?;
    for pid in running {
        assert!(!process_alive(pid), "pid {pid} left behind");
    }
    drop(guard);
    Ok(())
}

/// Kills whatever `cf dev start` left if the test fails half-way.
struct DevGuard(std::path::PathBuf);

impl Drop for DevGuard {
    fn drop(&mut self) {
        let needle = self.0.display().to_string();
        for pid in integration::procs::pids_with_cmdline_containing(&needle) {
            integration::procs::signal(pid, 9);
        }
    }
}
