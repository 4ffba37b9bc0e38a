//! Issue 3 (buildpacks): admin zip buildpacks in position order with a build
//! cache kept between stagings, unsafe package zips, the built-in `nodejs`
//! buildpack, Procfile and `.profile.d`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use integration::{app_host as host, fixture, Platform};

const T: Duration = Duration::from_secs(120);

fn json(body: &str) -> Result<serde_json::Value> {
    serde_json::from_str(body).with_context(|| format!("app body is not JSON: {body}"))
}

enum Entry<'a> {
    File(&'a str, &'a str, u32),
    Link(&'a str, &'a str),
}

fn zip_file(path: &Path, entries: &[Entry]) -> Result<()> {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path)?);
    for e in entries {
        match e {
            Entry::File(name, text, mode) => {
                let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
                w.start_file(*name, opts)?;
                w.write_all(text.as_bytes())?;
            }
            Entry::Link(name, target) => {
                w.add_symlink(*name, *target, zip::write::SimpleFileOptions::default())?;
            }
        }
    }
    w.finish()?;
    Ok(())
}

const DETECT: &str = "#!/bin/sh\n[ -f \"$1/adminbp.txt\" ] && echo my-bp && exit 0\nexit 1\n";
const COMPILE: &str = r#"#!/bin/sh
set -e
app="$1"; cache="$2"
if [ -f "$cache/marker" ]; then
  echo "-----> cache hit: $(cat "$cache/marker")"
else
  echo "-----> cache miss"
  echo "from-first-staging" > "$cache/marker"
fi
echo "compiled by my-bp" > "$app/compiled.txt"
"#;
const RELEASE: &str =
    "#!/bin/sh\nprintf 'default_process_types:\\n  web: python3 -m http.server $PORT\\n'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_zip_buildpack_in_position_order_with_build_cache() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;

    // An admin buildpack under a single top-level directory, scripts 755.
    let bp_zip = work.path().join("my-bp.zip");
    zip_file(
        &bp_zip,
        &[
            Entry::File("my-bp-1.0/bin/detect", DETECT, 0o755),
            Entry::File("my-bp-1.0/bin/compile", COMPILE, 0o755),
            Entry::File("my-bp-1.0/bin/release", RELEASE, 0o755),
        ],
    )?;
    let bp = bp_zip.to_str().unwrap_or_default();
    p.cf_ok(&["create-buildpack", "my-bp", bp, "1"]).await?;
    // A second one inserted at position 1 shifts my-bp to 2; it detects nothing.
    let never = work.path().join("never.zip");
    zip_file(
        &never,
        &[
            Entry::File("bin/detect", "#!/bin/sh\nexit 1\n", 0o755),
            Entry::File("bin/compile", "#!/bin/sh\nexit 1\n", 0o755),
            Entry::File("bin/release", "#!/bin/sh\n", 0o755),
        ],
    )?;
    p.cf_ok(&[
        "create-buildpack",
        "never",
        never.to_str().unwrap_or_default(),
        "1",
    ])
    .await?;
    let list = p.cf_ok(&["buildpacks"]).await?.stdout;
    let pos = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
    };
    assert_eq!(
        (pos("never").as_deref(), pos("my-bp").as_deref()),
        (Some("1"), Some("2")),
        "{list}"
    );
    assert!(list.contains("my-bp.zip"), "{list}");
    // A zip without bin/compile is refused by the controller.
    let bad = work.path().join("bad.zip");
    zip_file(&bad, &[Entry::File("README", "x", 0o644)])?;
    let out = p
        .cf(&[
            "create-buildpack",
            "bad",
            bad.to_str().unwrap_or_default(),
            "1",
        ])
        .await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        !p.cf_ok(&["buildpacks"]).await?.stdout.contains("bad"),
        "a failed upload leaves no buildpack behind"
    );

    // The app would also be detected by python: admin buildpacks come first.
    let app = work.path().join("app");
    std::fs::create_dir_all(&app)?;
    std::fs::write(app.join("adminbp.txt"), "marker\n")?;
    std::fs::write(app.join("requirements.txt"), "")?;
    std::fs::write(app.join("index.html"), "hello from an admin buildpack\n")?;
    let dir = app.to_str().unwrap_or_default();
    p.cf_ok(&["push", "bpapp", "-p", dir]).await?;
    let h = host("bpapp");
    let body = p.wait_route_status(&h, 200, T).await?;
    assert!(body.contains("hello from an admin buildpack"), "{body}");
    let (status, compiled) = p.get_via_router(&h, "/compiled.txt").await?;
    assert_eq!((status, compiled.trim()), (200, "compiled by my-bp"));
    let logs = p.wait_recent_logs("bpapp", "cache miss", T).await?;
    assert!(logs.contains("Using buildpack my-bp"), "{logs}");
    assert!(!logs.contains("cache hit"), "{logs}");

    // Second staging of the same app: the compile script finds its cache.
    p.cf_ok(&["push", "bpapp", "-p", dir]).await?;
    let logs = p
        .wait_recent_logs("bpapp", "cache hit: from-first-staging", T)
        .await?;
    assert!(logs.contains("Using buildpack my-bp"), "{logs}");
    p.wait_route_status(&h, 200, T).await?;

    // -b names an admin buildpack explicitly (it fails to compile: proof it ran).
    let out = p.cf(&["push", "forced", "-p", dir, "-b", "never"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("BuildpackCompileFailed"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // delete-buildpack closes the gap in positions.
    p.cf_ok(&["delete-buildpack", "never", "-f"]).await?;
    let list = p.cf_ok(&["buildpacks"]).await?.stdout;
    assert!(!list.contains("never"), "{list}");
    let line = list
        .lines()
        .find(|l| l.contains("my-bp"))
        .unwrap_or_default();
    assert!(line.trim_start().starts_with('1'), "{list}");
    let out = p.cf_ok(&["delete-buildpack", "never", "-f"]).await?;
    assert!(out.stdout.contains("does not exist"), "{}", out.stdout);
    Ok(())
}

const PROBE_APP: &str = r#"import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

def probe(name):
    return {"lexists": os.path.lexists(name), "real": os.path.realpath(name)}

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "home": os.path.realpath("."),
            "etc_link": probe("etc-link"),
            "up_link": probe("up-link"),
            "via_dir": os.path.isdir("tmp-link"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_package_zip_writes_nothing_outside_the_app() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let work = tempfile::tempdir()?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let rel_sentinel = p.root().join(format!("escaped-{tag}.txt"));
    let tmp_sentinel = std::env::temp_dir().join(format!("escaped-{tag}.txt"));
    let abs_sentinel = std::env::temp_dir().join(format!("abs-{tag}.txt"));
    let via_link = std::env::temp_dir().join(format!("via-link-{tag}.txt"));
    let up = "../".repeat(12);
    let names = [
        format!("../../../../escaped-{tag}.txt"),
        format!("{up}tmp/escaped-{tag}.txt"),
        abs_sentinel.display().to_string(),
        format!("tmp-link/via-link-{tag}.txt"),
    ];
    let zip_path = work.path().join("evil.zip");
    zip_file(
        &zip_path,
        &[
            Entry::File("app.py", PROBE_APP, 0o644),
            Entry::File("requirements.txt", "", 0o644),
            Entry::Link("etc-link", "/etc"),
            Entry::Link("up-link", "../../../../.."),
            Entry::Link("tmp-link", &std::env::temp_dir().display().to_string()),
            Entry::File(&names[0], "x", 0o644),
            Entry::File(&names[1], "x", 0o644),
            Entry::File(&names[2], "x", 0o644),
            Entry::File(&names[3], "x", 0o644),
        ],
    )?;
    // `cf push -p FILE.zip` uploads the zip as is (POST .../upload, field bits).
    p.cf_ok(&["push", "evil", "-p", zip_path.to_str().unwrap_or_default()])
        .await?;
    let body = json(&p.wait_route_status(&host("evil"), 200, T).await?)?;
    for s in [&rel_sentinel, &tmp_sentinel, &abs_sentinel, &via_link] {
        assert!(!s.exists(), "{} was written outside the app", s.display());
    }
    // The links were not created; nothing in the droplet resolves outside it.
    let home = body["home"].as_str().unwrap_or_default().to_string();
    for link in ["etc_link", "up_link"] {
        assert_eq!(body[link]["lexists"], false, "{body}");
        let real = body[link]["real"].as_str().unwrap_or_default();
        assert!(real.starts_with(&home), "{link} resolves to {real}: {body}");
    }
    let logs = p.wait_recent_logs("evil", "unsafe entries", T).await?;
    assert!(logs.contains("Skipped 6 unsafe entries"), "{logs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_app_procfile_and_profile_d() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;

    // Built-in nodejs: detects package.json, starts scripts.start, host node.
    let node = fixture("nodeapp");
    let out = p
        .cf_ok(&["push", "nodeapp", "-p", node.to_str().unwrap_or_default()])
        .await?;
    let body = json(&p.wait_route_status(&host("nodeapp"), 200, T).await?)?;
    assert_eq!(body["message"], "hello from nodeapp", "{body}");
    assert_eq!(body["node_env"], "production", "{body}");
    let logs = p
        .wait_recent_logs("nodeapp", "Node.js app detected", T)
        .await?;
    assert!(
        logs.contains("Using buildpack nodejs") || out.stdout.contains("nodejs"),
        "{logs}"
    );

    // A Procfile web line wins over python's default, and .profile.d/*.sh
    // is sourced before it starts.
    let work = tempfile::tempdir()?;
    let app = work.path().join("pyprocfile");
    std::fs::create_dir_all(app.join(".profile.d"))?;
    std::fs::copy(fixture("pyapp").join("app.py"), app.join("app.py"))?;
    std::fs::write(app.join("requirements.txt"), "")?;
    std::fs::write(
        app.join(".profile.d/greeting.sh"),
        "export PROFILE_GREETING=hello-from-profile-d\n",
    )?;
    std::fs::write(
        app.join("Procfile"),
        "web: GREETING=\"$PROFILE_GREETING via procfile\" python3 app.py\n",
    )?;
    p.cf_ok(&["push", "procapp", "-p", app.to_str().unwrap_or_default()])
        .await?;
    let body = json(&p.wait_route_status(&host("procapp"), 200, T).await?)?;
    assert_eq!(
        body["message"], "hello-from-profile-d via procfile",
        "{body}"
    );
    Ok(())
}
