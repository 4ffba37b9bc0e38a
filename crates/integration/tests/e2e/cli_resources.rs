//! Issue 14, resource matching: `cf push` asks the controller's resource
//! cache which files it has and uploads only the others. A second push of
//! an unchanged 50 MB app (random, incompressible files) sends under 1 MB,
//! as the controller counts it (the `bits_bytes` of its
//! `audit.app.package.upload` events: the bytes of the zip it received),
//! and the app still runs.
//!
//! Part 2, "no room, said at once": a size no DEA could ever hold is
//! refused at once (`cf push -m 200G`, `cf scale -m 200G`) with CF's
//! "insufficient resources: memory", instead of a 60 s wait ending in
//! "Start app timeout".

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use integration::{app_host as host, fixture, Platform, PlatformOptions};

const T: Duration = Duration::from_secs(180);
const MB: u64 = 1 << 20;

/// The pyapp fixture plus `files` files of `mb` MB each from /dev/urandom.
pub fn big_app(dir: &Path, files: usize, mb: u64) -> Result<()> {
    for f in ["app.py", "requirements.txt"] {
        std::fs::copy(fixture("pyapp").join(f), dir.join(f)).context(f)?;
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    for i in 0..files {
        let mut buf = Vec::with_capacity((mb * MB) as usize);
        (&mut urandom).take(mb * MB).read_to_end(&mut buf)?;
        std::fs::write(data.join(format!("blob{i}.bin")), &buf)?;
    }
    Ok(())
}

/// The `audit.app.package.upload` events of the app, oldest first.
async fn uploads(p: &Platform, token: &str, app: &str) -> Result<Vec<serde_json::Value>> {
    let v = p
        .api_get(
            token,
            &format!("/v3/audit_events?types=audit.app.package.upload&target_guids={app}"),
        )
        .await?;
    Ok(v["resources"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_push_of_an_unchanged_app_uploads_under_a_megabyte() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let tmp = tempfile::tempdir()?;
    big_app(tmp.path(), 5, 10)?;
    let dir = tmp.path().to_str().unwrap_or_default();

    let first = p.cf_ok(&["push", "bigapp", "-p", dir]).await?;
    for line in ["Packaging files to upload...", "Uploading files..."] {
        assert!(first.stdout.contains(line), "{}", first.stdout);
    }
    let h = host("bigapp");
    p.wait_route_status(&h, 200, T).await?;

    let second = p.cf_ok(&["push", "bigapp", "-p", dir]).await?;
    assert!(
        second.stdout.contains("Uploading files..."),
        "{}",
        second.stdout
    );
    let token = p.admin_token().await?;
    let app = p.app_guid(&token, "bigapp").await?;
    let events = uploads(&p, &token, &app).await?;
    assert_eq!(events.len(), 2, "{events:?}");
    let bytes = |e: &serde_json::Value| e["data"]["bits_bytes"].as_u64().unwrap_or(u64::MAX);
    let (one, two) = (bytes(&events[0]), bytes(&events[1]));
    eprintln!("first push: {one} bytes uploaded; second: {two} bytes");
    assert!(one > 50 * MB, "the first push sends everything: {one}");
    assert!(two < MB, "the second push sends under 1 MB: {two}");
    assert_eq!(events[1]["data"]["resources"], 5, "{:?}", events[1]);

    // The app (staged from the assembled package) still runs.
    let body = p.wait_route_status(&h, 200, T).await?;
    assert!(body.contains("hello from pyapp"), "{body}");
    let app_out = p.cf_ok(&["app", "bigapp"]).await?;
    assert!(app_out.stdout.contains("running"), "{}", app_out.stdout);
    let pkgs = p
        .api_get(&token, &format!("/v3/packages?app_guids={app}"))
        .await?;
    let states: Vec<&str> = pkgs["resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, vec!["READY", "READY"], "{pkgs}");
    // The assembled package holds every file, byte for byte.
    let sha = pkgs["resources"][1]["data"]["checksum"]["value"]
        .as_str()
        .unwrap_or_default();
    let zip = std::fs::read(p.root().join("cc/blobs").join(sha))?;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    for i in 0..5 {
        let name = format!("data/blob{i}.bin");
        let mut got = Vec::new();
        z.by_name(&name)?.read_to_end(&mut got)?;
        let want = std::fs::read(tmp.path().join(&name))?;
        assert!(got == want, "{name} differs in the package");
    }
    assert!(z.by_name("app.py").is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_room_is_said_at_once() -> Result<()> {
    // One DEA of 4096 MB (within the org's quota, so the quota is not
    // what refuses a larger size below).
    let mut p = Platform::start_with(PlatformOptions {
        dea_config: "memory_mb = 4096".into(),
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    let dir = fixture("pyapp");
    let dir = dir.to_str().unwrap_or_default();

    // A new app of 200 GB: refused at the scale before anything is
    // uploaded or staged; nothing runs.
    let t = Instant::now();
    let out = p.cf(&["push", "huge", "-p", dir, "-m", "200G"]).await?;
    let took = t.elapsed();
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("FAILED") && out.stderr.contains("insufficient resources: memory"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("Start app timeout"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("Uploading") && !out.stdout.contains("Staging"),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_secs(45), "took {took:?}");

    // A running app scaled beyond every DEA: 422 at once, the app untouched.
    p.cf_ok(&["push", "small", "-p", dir]).await?;
    let h = host("small");
    p.wait_route_status(&h, 200, T).await?;
    let t = Instant::now();
    let out = p.cf(&["scale", "small", "-m", "200G", "-f"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("insufficient resources: memory"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let app = p.cf_ok(&["app", "small"]).await?;
    assert!(app.stdout.contains("running"), "{}", app.stdout);
    assert!(!app.stdout.contains("200G"), "{}", app.stdout);
    let (status, _) = p.get_via_router(&h, "/").await?;
    assert_eq!(status, 200);

    // A size accepted while no DEA could say (the only DEA gone), then
    // started once it is back: the instance is DOWN with "insufficient
    // resources: memory" and `cf restart` fails at once.
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "small").await?;
    p.deas[0].terminate(Duration::from_secs(20));
    let (status, body) = p
        .api_call(
            &token,
            reqwest::Method::POST,
            &format!("/v3/apps/{guid}/processes/web/actions/scale"),
            Some(serde_json::json!({"memory_in_mb": 8192})),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    p.deas[0].start()?;
    integration::wait_for("insufficient resources in the stats", T, || {
        let (p, token, guid) = (&p, &token, &guid);
        async move {
            let s = p.stats(token, guid).await.ok()?;
            s.iter()
                .any(|r| r["state"] == "DOWN" && r["details"] == "insufficient resources: memory")
                .then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;
    let app = p.cf_ok(&["app", "small"]).await?;
    assert!(
        app.stdout.contains("insufficient resources: memory"),
        "{}",
        app.stdout
    );
    let t = Instant::now();
    let out = p.cf(&["restart", "small"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("cannot be placed: insufficient resources: memory"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    Ok(())
}
