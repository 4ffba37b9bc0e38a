//! Issue 14 (push): `cf push` flags, manifests, validation and `.cfignore`,
//! with the real `cf` against a real platform.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use integration::{app_host as host, wait_for, CfOutput, Platform};

const T: Duration = Duration::from_secs(120);

/// A binary-buildpack app: `python3 -m http.server` serving its own files
/// (so a GET of `/` lists what was uploaded).
fn static_dir(files: &[(&str, &str)]) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (name, body) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, body)?;
    }
    Ok(dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn says(out: &CfOutput, text: &str) -> bool {
    out.stdout.contains(text) || out.stderr.contains(text)
}

/// Waits until GET `path` on `host` through the router answers 200 and
/// returns the body.
async fn wait_body(p: &Platform, host: &str, path: &str) -> Result<String> {
    wait_for(&format!("{host}{path} to answer 200"), T, || async {
        match p.get_via_router(host, path).await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))
}

/// The hosts of an app's routes, from `cf app`.
async fn app_route(p: &Platform, app: &str) -> Result<String> {
    let out = p.cf_ok(&["app", app]).await?;
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("routes:"))
        .map(|r| {
            r.trim()
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|r| !r.is_empty())
        .with_context(|| format!("no route in: {}", out.stdout))
}

const SERVE: &str = "python3 -m http.server $PORT";
/// A worker: no port, a line a second naming its instance.
const WORK: &str = "while true; do echo worker-tick-$CF_INSTANCE_INDEX; sleep 1; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_vars_random_route_timeout_and_cfignore() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;

    // Two apps, their names, memory and route path from a vars file and
    // --var; one with random-route, one with a routed path.
    let a = static_dir(&[
        ("index.txt", "app one\n"),
        ("keep.txt", "kept\n"),
        ("debug.log", "secret log\n"),
        ("logs/today.txt", "more logs\n"),
        ("docs/readme.md", "docs\n"),
        ("docs/keep.md", "kept docs\n"),
        ("sub/manifest.yml", "nested manifest\n"),
        (
            ".cfignore",
            "# excluded\n*.log\nlogs/\ndocs/*.md\n!docs/keep.md\n",
        ),
    ])?;
    let b = static_dir(&[("api/index.txt", "app two under /api\n")])?;
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("manifest.yml");
    std::fs::write(
        &manifest,
        format!(
            "---\napplications:\n\
             - name: ((prefix))-one\n  path: {}\n  buildpacks: [binary]\n  command: {SERVE}\n  memory: ((mem))\n  random-route: true\n  timeout: 90\n  unknown-field: 1\n\
             - name: ((prefix))-two\n  path: {}\n  buildpack: binary\n  command: {SERVE}\n  memory: ((mem))\n  routes:\n  - route: two.localhost/api\n  processes:\n  - type: worker\n    command: {WORK}\n    instances: 2\n    memory: 16M\n    health-check-type: process\n  - type: web\n    instances: 1\n",
            s(a.path()),
            s(b.path())
        ),
    )?;
    let vars = dir.path().join("vars.yml");
    std::fs::write(&vars, "prefix: mf\nmem: 32M\n")?;

    // A missing variable: CF's error, exit 1, nothing created.
    let out = p.cf(&["push", "-f", s(&manifest)]).await?;
    assert_eq!(out.status, 1, "{} {}", out.stdout, out.stderr);
    assert!(
        says(&out, "Expected to find variables: prefix, mem"),
        "{}",
        out.stderr
    );
    let apps = p.cf_ok(&["apps"]).await?;
    assert!(!apps.stdout.contains("mf-"), "{}", apps.stdout);

    let out = p
        .cf_ok(&[
            "push",
            "-f",
            s(&manifest),
            "--vars-file",
            s(&vars),
            "--var",
            "mem=48M",
        ])
        .await?;
    assert!(
        out.stdout
            .contains("Pushing apps mf-one, mf-two to org dev / space dev as admin..."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Applying manifest file ") && out.stdout.contains("manifest.yml..."),
        "{}",
        out.stdout
    );
    assert!(says(&out, "'unknown-field'"), "{}", out.stderr);

    // Random route: the app's name and two words.
    let route = app_route(&p, "mf-one").await?;
    let rhost = route.split('.').next().unwrap_or_default().to_string();
    assert!(
        rhost.starts_with("mf-one-") && rhost.split('-').count() == 4,
        "{route}"
    );
    assert_eq!(wait_body(&p, &route, "/index.txt").await?, "app one\n");
    // `timeout` reached the process's health check; --var won over the file.
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "mf-one").await?;
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    assert_eq!(web["health_check"]["data"]["timeout"], 90, "{web}");
    assert_eq!(web["memory_in_mb"], 48, "{web}");

    // The routed path: /api of two.localhost goes to mf-two.
    assert_eq!(
        wait_body(&p, "two.localhost", "/api/index.txt").await?,
        "app two under /api\n"
    );

    // The worker process: created by the manifest, running both
    // instances beside web, unrouted (every request reaches web), logging
    // as APP/PROC/WORKER/n.
    let two = p.app_guid(&token, "mf-two").await?;
    let worker = p
        .api_get(&token, &format!("/v3/apps/{two}/processes/worker"))
        .await?;
    assert_eq!(worker["instances"], 2, "{worker}");
    assert_eq!(worker["memory_in_mb"], 16, "{worker}");
    assert_eq!(worker["health_check"]["type"], "process", "{worker}");
    let shown = p.cf_ok(&["app", "mf-two"]).await?;
    assert!(
        shown.stdout.contains("type:           worker")
            && shown.stdout.contains("instances:      2/2"),
        "{}",
        shown.stdout
    );
    for _ in 0..10 {
        let (status, body) = p.get_via_router("two.localhost", "/api/index.txt").await?;
        assert_eq!((status, body.as_str()), (200, "app two under /api\n"));
    }
    for i in 0..2 {
        let tag = format!("[APP/PROC/WORKER/{i}] OUT worker-tick-{i}");
        wait_for(&format!("{tag} in cf logs --recent"), T, || async {
            let out = p.cf(&["logs", "mf-two", "--recent"]).await.ok()?;
            out.stdout.contains(&tag).then_some(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;
    }
    // `cf scale --process worker` scales the worker alone.
    p.cf_ok(&["scale", "mf-two", "--process", "worker", "-i", "1"])
        .await?;
    let worker = p
        .api_get(&token, &format!("/v3/apps/{two}/processes/worker"))
        .await?;
    assert_eq!(worker["instances"], 1, "{worker}");
    let out = p
        .cf(&["scale", "mf-two", "--process", "nope", "-i", "1"])
        .await?;
    assert_eq!(out.status, 1);
    assert!(
        says(&out, "Process nope not found for app mf-two"),
        "{}",
        out.stderr
    );

    // .cfignore and CF's defaults: the listing of / and of subdirectories.
    let root = wait_body(&p, &route, "/").await?;
    for kept in ["index.txt", "keep.txt", "docs/", "sub/"] {
        assert!(root.contains(kept), "{kept} missing: {root}");
    }
    for gone in ["debug.log", "logs/", ".cfignore"] {
        assert!(!root.contains(gone), "{gone} uploaded: {root}");
    }
    let docs = wait_body(&p, &route, "/docs/").await?;
    assert!(
        docs.contains("keep.md") && !docs.contains("readme.md"),
        "{docs}"
    );
    let sub = wait_body(&p, &route, "/sub/").await?;
    assert!(!sub.contains("manifest.yml"), "{sub}");
    let (status, _) = p.get_via_router(&route, "/debug.log").await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_create_nothing() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let app = static_dir(&[("index.txt", "hi\n")])?;
    let d = s(app.path()).to_string();
    let long = "n".repeat(256);
    let bad_host_manifest = app.path().join("bad-host.yml");
    std::fs::write(
        &bad_host_manifest,
        "applications:\n- name: badhost\n  routes:\n  - route: bad!host.localhost\n",
    )?;
    let worker_manifest = app.path().join("worker.yml");
    std::fs::write(
        &worker_manifest,
        "applications:\n- name: withworker\n  processes:\n  - type: web\n  - type: worker\n    command: ./work\n    memory: 10\n",
    )?;
    let vars_manifest = app.path().join("vars.yml");
    std::fs::write(&vars_manifest, "applications:\n- name: ((app))\n")?;
    let before = p.cf_ok(&["apps"]).await?.stdout;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["push", "x1", "-p", &d, "-m", "10"],
            "Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB",
        ),
        (
            vec!["push", "x2", "-p", &d, "-k", "1.5G"],
            "Byte quantity must be an integer",
        ),
        (
            vec!["push", "x3", "-p", &d, "-u", "none"],
            r#"HEALTH_CHECK_TYPE must be "port", "process", or "http""#,
        ),
        (
            vec!["push", "x4", "-p", &d, "-b", "no-such-buildpack"],
            r#"Buildpack "no-such-buildpack" must be an existing admin buildpack"#,
        ),
        (
            vec!["push", "x5", "-p", &d, "-s", "cflinuxfs9"],
            "Stack must be an existing stack",
        ),
        (
            vec!["push", "x6", "-p", &d, "-i", "-1"],
            "Instances must be greater than or equal to 0",
        ),
        (
            vec!["push", &long, "-p", &d],
            "Name is too long (maximum is 255 characters)",
        ),
        (
            vec!["push", "-f", s(&bad_host_manifest), "-p", &d],
            "Host must be either",
        ),
        (
            vec!["push", "-f", s(&worker_manifest), "-p", &d],
            "app 'withworker', process 'worker': Byte quantity must be an integer",
        ),
        (
            vec!["push", "-f", s(&vars_manifest)],
            "Expected to find variables: app",
        ),
        (vec!["push", "x7", "-p", "/no/such/dir"], "does not exist"),
    ];
    for (args, key) in &cases {
        let out = p.cf(args).await?;
        assert_eq!(out.status, 1, "cf {args:?}: {} {}", out.stdout, out.stderr);
        assert!(
            says(&out, key),
            "cf {args:?}: want {key:?} in {} {}",
            out.stdout,
            out.stderr
        );
        assert!(says(&out, "FAILED"), "cf {args:?}: {}", out.stdout);
        let now = p.cf_ok(&["apps"]).await?.stdout;
        assert_eq!(now, before, "cf {args:?} created something");
    }
    // The platform's default memory: 1G (CF's).
    p.cf_ok(&[
        "push",
        "defmem",
        "-p",
        &d,
        "-b",
        "binary",
        "-c",
        SERVE,
        "--no-start",
    ])
    .await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "defmem").await?;
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    assert_eq!(web["memory_in_mb"], 1024, "{web}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_command_and_no_start_then_start() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let dir = static_dir(&[("hello.txt", "hello from binary\n")])?;
    let d = s(dir.path()).to_string();

    // -b binary -c CMD: the command reaches staging and runs.
    p.cf_ok(&[
        "push", "bin", "--path", &d, "-b", "binary", "--memory", "64M", "-c", SERVE,
    ])
    .await?;
    assert_eq!(
        wait_body(&p, &host("bin"), "/hello.txt").await?,
        "hello from binary\n"
    );

    // --no-start: created and uploaded, not staged, not running.
    let out = p
        .cf_ok(&[
            "push",
            "later",
            "-p",
            &d,
            "--buildpack",
            "binary",
            "--start-command",
            SERVE,
            "-m",
            "64M",
            "--instances",
            "2",
            "--no-start",
        ])
        .await?;
    assert!(!out.stdout.contains("Staging app"), "{}", out.stdout);
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "later").await?;
    let builds = p
        .api_get(&token, &format!("/v3/builds?app_guids={guid}"))
        .await?;
    assert_eq!(
        builds["resources"].as_array().map(Vec::len),
        Some(0),
        "{builds}"
    );
    let app = p.api_get(&token, &format!("/v3/apps/{guid}")).await?;
    assert_eq!(app["state"], "STOPPED");

    // cf start stages the uploaded package first, then runs both instances.
    let out = p.cf_ok(&["start", "later"]).await?;
    assert!(out.stdout.contains("Staging app"), "{}", out.stdout);
    p.wait_running(&token, &guid, 2, T).await?;
    assert_eq!(
        wait_body(&p, &host("later"), "/hello.txt").await?,
        "hello from binary\n"
    );

    // --no-wait returns once the first instance runs; -s host is the
    // platform's stack.
    p.cf_ok(&[
        "push",
        "later",
        "-p",
        &d,
        "-i",
        "2",
        "--no-wait",
        "-s",
        "host",
        "-t",
        "30",
    ])
    .await?;
    p.wait_running(&token, &guid, 2, T).await?;

    // --no-start on a running app: stopped, the new files uploaded but not
    // staged; cf start stages the newer package (not the old droplet).
    std::fs::write(dir.path().join("hello.txt"), "hello again\n")?;
    p.cf_ok(&["push", "later", "-p", &d, "--no-start"]).await?;
    let app = p.api_get(&token, &format!("/v3/apps/{guid}")).await?;
    assert_eq!(app["state"], "STOPPED");
    let out = p.cf_ok(&["start", "later"]).await?;
    assert!(out.stdout.contains("Staging app"), "{}", out.stdout);
    assert_eq!(
        wait_body(&p, &host("later"), "/hello.txt").await?,
        "hello again\n"
    );
    // Started again without a new upload: no staging.
    p.cf_ok(&["stop", "later"]).await?;
    let out = p.cf_ok(&["start", "later"]).await?;
    assert!(!out.stdout.contains("Staging app"), "{}", out.stdout);
    // cf restart stages an unstaged upload too.
    std::fs::write(dir.path().join("hello.txt"), "hello thrice\n")?;
    p.cf_ok(&["push", "later", "-p", &d, "--no-start"]).await?;
    let out = p.cf_ok(&["restart", "later"]).await?;
    assert!(out.stdout.contains("Staging app"), "{}", out.stdout);
    assert_eq!(
        wait_body(&p, &host("later"), "/hello.txt").await?,
        "hello thrice\n"
    );
    Ok(())
}
