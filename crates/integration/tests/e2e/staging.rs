//! Issue 10 (real apps stage): dependencies from PyPI and the npm registry
//! with the build cache on restage, long builds, the staging timeout, a
//! controller restarted and a DEA lost during staging, staging errors that
//! say what failed, the whole buildpack contract (`config_vars`, a supply
//! buildpack before the python one), and back-to-back pushes that never see
//! a false "no room".

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use integration::{app_host as host, bin, fixture, wait_for, Platform, PlatformOptions};

const T: Duration = Duration::from_secs(180);

fn path_of(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Writes a buildpack directory (scripts 755) and uploads it as an admin
/// buildpack at position 1.
async fn admin_buildpack(
    p: &Platform,
    dir: &Path,
    name: &str,
    files: &[(&str, &str)],
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join(name);
    for (f, text) in files {
        let path = root.join(f);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    p.cf_ok(&["create-buildpack", name, path_of(&root), "1"])
        .await?;
    Ok(())
}

/// Copies a fixture app into `dir/name` (so a test may change it).
fn copy_fixture(fixture_name: &str, dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let src = fixture(fixture_name);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst)?;
    for e in std::fs::read_dir(&src)? {
        let e = e?;
        std::fs::copy(e.path(), dst.join(e.file_name()))?;
    }
    Ok(dst)
}

/// The app's builds, oldest first.
async fn builds(p: &Platform, token: &str, app: &str) -> Result<Vec<serde_json::Value>> {
    let guid = p.app_guid(token, app).await?;
    let v = p.api_get(token, &format!("/v3/apps/{guid}/builds")).await?;
    Ok(v["resources"].as_array().cloned().unwrap_or_default())
}

fn seconds(b: &serde_json::Value) -> Result<f64> {
    let t = |k: &str| -> Result<chrono::DateTime<chrono::FixedOffset>> {
        let s = b[k].as_str().context("timestamp")?;
        Ok(chrono::DateTime::parse_from_rfc3339(s)?)
    };
    Ok((t("updated_at")? - t("created_at")?).num_milliseconds() as f64 / 1000.0)
}

/// A `cf` run in the background (the platform stays usable meanwhile).
fn cf_background(p: &Platform, args: &[&str], cwd: Option<&Path>) -> Result<tokio::process::Child> {
    let mut c = tokio::process::Command::new(bin("cf")?);
    c.args(args)
        .env("CF_HOME", &p.cf_home)
        .env_remove("CF_TRACE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    Ok(c.spawn()?)
}

async fn finish(child: tokio::process::Child) -> Result<(i32, String)> {
    let out = child.wait_with_output().await?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apps_with_dependencies_stage_and_restage_from_the_cache() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let token = p.admin_token().await?;

    // Python: flask and pg8000 from PyPI.
    p.cf_ok(&[
        "push",
        "pydeps",
        "-p",
        path_of(&fixture("pydeps")),
        "-m",
        "256M",
    ])
    .await?;
    let body = p.wait_route_status(&host("pydeps"), 200, T).await?;
    let v: serde_json::Value = serde_json::from_str(&body).context(body.clone())?;
    assert_eq!(v["message"], "hello from pydeps", "{v}");
    assert!(
        v["pg8000"].as_str().is_some_and(|s| s.starts_with("1.31")),
        "{v}"
    );
    let log = p.cf_ok(&["logs", "pydeps", "--recent"]).await?.stdout;
    assert!(log.contains("Installing requirements with pip"), "{log}");
    p.cf_ok(&["restage", "pydeps"]).await?;
    let log = p
        .wait_recent_logs("pydeps", "Requirements unchanged", T)
        .await?;
    assert!(log.contains("Restored the build cache"), "{log}");
    p.wait_route_status(&host("pydeps"), 200, T).await?;
    let b = builds(&p, &token, "pydeps").await?;
    assert_eq!(b.len(), 2, "{b:?}");
    let (first, again) = (seconds(&b[0])?, seconds(&b[1])?);
    println!("pydeps: first staging {first:.2} s, restage {again:.2} s");
    assert!(
        again < first,
        "the restage is faster: {again} s vs {first} s"
    );

    // Node: express from the npm registry.
    p.cf_ok(&["push", "nodedeps", "-p", path_of(&fixture("nodedeps"))])
        .await?;
    let body = p.wait_route_status(&host("nodedeps"), 200, T).await?;
    let v: serde_json::Value = serde_json::from_str(&body).context(body.clone())?;
    assert_eq!(v["express"], "4.21.2", "{v}");
    assert_eq!(v["node_env"], "production", "{v}");
    p.cf_ok(&["restage", "nodedeps"]).await?;
    p.wait_recent_logs("nodedeps", "Dependencies unchanged", T)
        .await?;
    p.wait_route_status(&host("nodedeps"), 200, T).await?;
    let b = builds(&p, &token, "nodedeps").await?;
    let (first, again) = (seconds(&b[0])?, seconds(&b[1])?);
    println!("nodedeps: first staging {first:.2} s, restage {again:.2} s");
    assert!(
        again < first,
        "the restage is faster: {again} s vs {first} s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_package_fails_the_push_with_pips_words() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    let app = copy_fixture("pyapp", work.path(), "badreq")?;
    std::fs::write(
        app.join("requirements.txt"),
        "no-such-package-paas-test-4711==1.0\n",
    )?;
    let out = p.cf(&["push", "badreq", "-p", path_of(&app)]).await?;
    println!("{}\n{}", out.stdout, out.stderr);
    assert_ne!(out.status, 0);
    assert!(out.stdout.contains("FAILED") || out.stderr.contains("FAILED"));
    assert!(
        out.stderr.contains(
            "Error staging application: BuildpackCompileFailed - python: bin/compile exited with status 1"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("No matching distribution found for no-such-package-paas-test-4711"),
        "pip's own error: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("bus"),
        "nothing about the bus: {}",
        out.stderr
    );
    Ok(())
}

const SLOW_COMPILE: &str = r#"#!/bin/bash
# Sleeps ${SLEEP_S:-90} s, saying so every 5 s.
s=${SLEEP_S:-90}
echo "-----> slow build: $s s"
while [ "$s" -gt 0 ]; do
  sleep 5
  s=$((s - 5))
  echo "       still building, $s s to go"
done
"#;
const PY_RELEASE: &str = "#!/bin/sh\nprintf 'default_process_types:\\n  web: python3 app.py\\n'\n";

/// The admin buildpack `slow`: sleeps `SLEEP_S` (90) s, then runs a python app.
async fn slow_buildpack(p: &Platform, dir: &Path) -> Result<()> {
    admin_buildpack(
        p,
        dir,
        "slow",
        &[("bin/compile", SLOW_COMPILE), ("bin/release", PY_RELEASE)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_build_survives_a_controller_restart() -> Result<()> {
    let mut p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    slow_buildpack(&p, work.path()).await?;
    let app = copy_fixture("pyapp", work.path(), "slowapp")?;
    let started = Instant::now();
    let push = cf_background(
        &p,
        &["push", "slowapp", "-p", path_of(&app), "-b", "slow"],
        None,
    )?;
    p.wait_recent_logs("slowapp", "slow build: 90 s", T).await?;
    // The controller goes away for a while in the middle of the build.
    p.cc.kill9();
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.cc.start()?;
    p.wait_cc_ready().await?;
    println!("controller back after {:?}", started.elapsed());
    let (status, out) = finish(push).await?;
    println!("{out}");
    assert_eq!(status, 0, "the push finishes: {out}\n{}", p.logs_tail());
    assert!(started.elapsed() >= Duration::from_secs(90));
    let body = p.wait_route_status(&host("slowapp"), 200, T).await?;
    assert!(body.contains("hello from pyapp"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_past_the_staging_timeout_fails_with_staging_time_expired() -> Result<()> {
    let p = Platform::start_with(PlatformOptions {
        cc_config: "staging_timeout_s = 30".into(),
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    slow_buildpack(&p, work.path()).await?;
    let app = copy_fixture("pyapp", work.path(), "tooslow")?;
    let started = Instant::now();
    let out = p
        .cf(&["push", "tooslow", "-p", path_of(&app), "-b", "slow"])
        .await?;
    let took = started.elapsed();
    println!("{took:?}\n{}\n{}", out.stdout, out.stderr);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains(
            "Error staging application: StagingTimeExpired - staging did not finish within 30 s"
        ),
        "{}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(75),
        "stopped at the timeout: {took:?}"
    );
    // The build's container is gone: the DEA stopped it.
    let log = p.wait_recent_logs("tooslow", "Staging failed", T).await?;
    assert!(!log.contains("still building, 0 s to go"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_dea_fails_its_build_within_seconds_and_a_retry_stages_elsewhere() -> Result<()> {
    let mut p = Platform::start_with(PlatformOptions {
        deas: 2,
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    let token = p.admin_token().await?;
    let work = tempfile::tempdir()?;
    slow_buildpack(&p, work.path()).await?;
    let app = copy_fixture("pyapp", work.path(), "lostapp")?;
    let manifest = |sleep: u32| {
        format!(
            "applications:\n- name: lostapp\n  path: {}\n  buildpacks: [slow]\n  env:\n    SLEEP_S: \"{sleep}\"\n",
            app.display()
        )
    };
    std::fs::write(work.path().join("manifest.yml"), manifest(60))?;
    let push = cf_background(&p, &["push"], Some(work.path()))?;
    let log = p.wait_recent_logs("lostapp", "slow build: 60 s", T).await?;
    let dea = log
        .lines()
        .find_map(|l| l.split("on DEA ").nth(1))
        .map(|d| d.trim().to_string())
        .context("which DEA stages")?;
    let i: usize = dea
        .strip_prefix("dea-")
        .and_then(|n| n.parse().ok())
        .context("dea index")?;
    p.deas[i].kill9();
    let killed = Instant::now();
    let failed = wait_for("the build to fail", Duration::from_secs(30), || async {
        let b = builds(&p, &token, "lostapp").await.ok()?;
        let last = b.last()?.clone();
        (last["state"] == "FAILED").then_some(last)
    })
    .await?;
    let took = killed.elapsed();
    println!("failed after {took:?}: {}", failed["error"]);
    assert!(took < Duration::from_secs(10), "within 10 s: {took:?}");
    let err = failed["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with("StagingError - the DEA ") && err.contains(&dea) && err.contains("lost"),
        "{err}"
    );
    let (status, out) = finish(push).await?;
    assert_ne!(status, 0, "{out}");
    assert!(
        out.contains(&dea),
        "the push says which DEA was lost: {out}"
    );

    // Again: the other DEA takes it.
    std::fs::write(work.path().join("manifest.yml"), manifest(0))?;
    let (status, out) = finish(cf_background(&p, &["push"], Some(work.path()))?).await?;
    if status != 0 {
        bail!("the retry failed: {out}\n{}", p.logs_tail());
    }
    let log = p.cf_ok(&["logs", "lostapp", "--recent"]).await?.stdout;
    let other = format!("dea-{}", 1 - i);
    assert!(log.contains(&format!("on DEA {other}")), "{log}");
    p.wait_route_status(&host("lostapp"), 200, T).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_vars_and_a_supply_buildpack_before_python() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    // A final buildpack whose bin/release gives config_vars.
    admin_buildpack(
        &p,
        work.path(),
        "configured",
        &[
            ("bin/compile", "#!/bin/sh\necho '-----> configured: nothing to build'\n"),
            (
                "bin/release",
                "#!/bin/sh\nprintf 'default_process_types:\\n  web: python3 app.py\\nconfig_vars:\\n  GREETING: from-buildpack\\n  OVERRIDE: buildpack\\n'\n",
            ),
        ],
    )
    .await?;
    let app = copy_fixture("envapp", work.path(), "cfgapp")?;
    std::fs::write(
        work.path().join("manifest.yml"),
        format!(
            "applications:\n- name: cfgapp\n  path: {}\n  buildpacks: [configured]\n  env:\n    OVERRIDE: user\n",
            app.display()
        ),
    )?;
    let (status, out) = finish(cf_background(&p, &["push"], Some(work.path()))?).await?;
    assert_eq!(status, 0, "{out}");
    p.wait_route_status(&host("cfgapp"), 200, T).await?;
    let (_, body) = p
        .get_via_router(&host("cfgapp"), "/?names=GREETING,OVERRIDE")
        .await?;
    let v: serde_json::Value = serde_json::from_str(&body).context(body.clone())?;
    assert_eq!(
        v["env"]["GREETING"], "from-buildpack",
        "config_vars reach the app: {v}"
    );
    assert_eq!(
        v["env"]["OVERRIDE"], "user",
        "the user's variable wins: {v}"
    );

    // A supply-only buildpack, then the python buildpack.
    let supply = r#"#!/bin/bash
# bin/supply <app> <cache> <deps> <index>
deps="$3/$4"
mkdir -p "$deps/bin" "$deps/profile.d"
printf '#!/bin/sh\necho supplied-tool\n' > "$deps/bin/supplied-tool"
chmod +x "$deps/bin/supplied-tool"
cat > "$deps/profile.d/supplier.sh" <<EOF
export SUPPLIED_BY=supplier
export PATH="\$DEPS_DIR/$4/bin:\$PATH"
EOF
echo "-----> supplier: supplied a tool"
"#;
    admin_buildpack(&p, work.path(), "supplier", &[("bin/supply", supply)]).await?;
    let app = copy_fixture("envapp", work.path(), "twobp")?;
    p.cf_ok(&[
        "push",
        "twobp",
        "-p",
        path_of(&app),
        "-b",
        "supplier",
        "-b",
        "python",
    ])
    .await?;
    let (_, body) = p
        .get_via_router(&host("twobp"), "/?names=SUPPLIED_BY&run=supplied-tool")
        .await?;
    let v: serde_json::Value = serde_json::from_str(&body).context(body.clone())?;
    assert_eq!(v["env"]["SUPPLIED_BY"], "supplier", "{v}");
    assert_eq!(v["run"], "supplied-tool", "{v}");
    let log = p.cf_ok(&["logs", "twobp", "--recent"]).await?.stdout;
    assert!(log.contains("Supplying with buildpack supplier"), "{log}");
    assert!(log.contains("Python app detected"), "{log}");
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "twobp").await?;
    let d = p
        .api_get(&token, &format!("/v3/apps/{guid}/droplets/current"))
        .await?;
    let names: Vec<&str> = d["buildpacks"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["supplier", "python"], "{d}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_pushes_and_a_ten_app_manifest_fit_one_dea() -> Result<()> {
    // Room for 20 instances of 64M and one build (1024M) at a time, not
    // for builds' reservations that outlive them (disk: 1G per instance).
    let p = Platform::start_with(PlatformOptions {
        dea_config: "memory_mb = 3072\ndisk_mb = 40960".into(),
        health_manager: false,
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    let pyapp = fixture("pyapp");
    for i in 0..10 {
        p.cf_ok(&[
            "push",
            &format!("row{i}"),
            "-p",
            path_of(&pyapp),
            "-m",
            "64M",
        ])
        .await
        .with_context(|| format!("push {i}"))?;
    }
    let work = tempfile::tempdir()?;
    let mut m = String::from("applications:\n");
    for i in 0..10 {
        m.push_str(&format!(
            "- name: many{i}\n  path: {}\n  memory: 64M\n",
            pyapp.display()
        ));
    }
    std::fs::write(work.path().join("manifest.yml"), m)?;
    let (status, out) = finish(cf_background(&p, &["push"], Some(work.path()))?).await?;
    assert_eq!(status, 0, "{out}");
    for name in (0..10)
        .map(|i| format!("row{i}"))
        .chain((0..10).map(|i| format!("many{i}")))
    {
        p.wait_route_status(&host(&name), 200, T).await?;
    }
    Ok(())
}
