//! The built-in `staticfile` and `java` buildpacks with every component real
//! (as root the DEA runs apps in containers, as an unprivileged user): the
//! `staticapp` fixture served by the host's nginx through the router, with
//! gzip and its caching headers, and the `javaapp` fixture built into a jar
//! and pushed with `cf push NAME -p app.jar`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::{app_host as host, fixture, http_client, Platform};

const T: Duration = Duration::from_secs(180);

/// As root the DEA must have run the app in a container (the namespaces
/// backend writes its tag), where nginx and the JVM run as an unprivileged
/// user with a read-only host stack.
fn assert_containers_when_root(p: &Platform) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let tag = p.root().join("dea0/namespaces.tag");
        assert!(tag.is_file(), "no namespaces backend: {}", tag.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staticfile_site_through_the_router() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let site = fixture("staticapp");
    p.cf_ok(&["push", "site", "-p", site.to_str().unwrap_or_default()])
        .await?;
    let h = host("site");
    let body = p.wait_route_status(&h, 200, T).await?;
    assert_eq!(body, std::fs::read_to_string(site.join("index.html"))?);

    let js = std::fs::read(site.join("app.3f2a9c1b.js"))?;
    let c = http_client();
    let base = format!("http://{h}:{}", p.router_addr.port());
    let r = c
        .get(format!("{base}/app.3f2a9c1b.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header(&r, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&r, "content-encoding").as_deref(), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.bytes().await?[..]).read_to_end(&mut plain)?;
    assert_eq!(plain, js);

    let r = c.get(format!("{base}/")).send().await?;
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-cache"));
    let r = c.get(format!("{base}/.staticfile/start")).send().await?;
    assert_eq!(r.status().as_u16(), 404);

    let logs = p
        .wait_recent_logs("site", "Static site detected", T)
        .await?;
    assert!(logs.contains("Using buildpack staticfile"), "{logs}");
    // nginx's access log is the app's stdout (through a pipe of its own in
    // a container: the platform's cannot be reopened by the app's user).
    p.wait_recent_logs("site", "\"GET /app.3f2a9c1b.js HTTP/1.1\" 200", T)
        .await?;
    assert_containers_when_root(&p);
    Ok(())
}

/// Compiles the fixture into `dir/app.jar` with the host's JDK.
fn build_jar(dir: &Path) -> Result<std::path::PathBuf> {
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes)?;
    let status = std::process::Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg(fixture("javaapp").join("src/Hello.java"))
        .status()
        .context("javac (a JDK: Debian package default-jdk-headless)")?;
    ensure!(status.success(), "javac failed");
    let jar = dir.join("app.jar");
    let status = std::process::Command::new("jar")
        .args(["--create", "--file"])
        .arg(&jar)
        .args(["--main-class", "Hello", "-C"])
        .arg(&classes)
        .arg(".")
        .status()
        .context("jar")?;
    ensure!(status.success(), "jar failed");
    Ok(jar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_jar_through_the_router() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    let jar = build_jar(work.path())?;
    p.cf_ok(&[
        "push",
        "javaapp",
        "-p",
        jar.to_str().unwrap_or_default(),
        "-m",
        "256M",
    ])
    .await?;
    let body = p.wait_route_status(&host("javaapp"), 200, T).await?;
    assert!(body.starts_with("hello from java\n"), "{body}");
    // 256M: 256 - 64 - 32 - 25 - max(32, 38) = 97M of heap (the JVM rounds
    // it up to its heap alignment: a few MB at most).
    let max: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("max_memory="))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no max_memory in {body}"))?;
    assert!(
        max <= 101 * 1024 * 1024 && max > 64 * 1024 * 1024,
        "max heap {max}: {body}"
    );
    assert!(body.contains("-Xmx97m"), "{body}");
    let logs = p
        .wait_recent_logs("javaapp", "Java app detected", T)
        .await?;
    assert!(logs.contains("Using buildpack java"), "{logs}");
    assert_containers_when_root(&p);
    Ok(())
}
