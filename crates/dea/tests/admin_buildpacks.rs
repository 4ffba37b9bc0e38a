//! Staging with admin buildpacks (zips from a blob server, cached by sha256),
//! the build cache kept between stagings, and the built-in `nodejs`
//! buildpack, on the `process` backend. No NATS needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dea::backend::{Backend, BoxFut, Container, ContainerSpec, ProcessSpec, Spawned};

use dea::staging::Stager;
use proto::{AdminBuildpack, StagingRequest, StagingResult};

mod common;
use common::{blob_server, droplet_files, err, log_lines, stager, zip_dir, Blobs, Published};

const DETECT: &str = "#!/bin/sh\n[ -f \"$1/marker.txt\" ] && echo mine && exit 0\nexit 1\n";
const COMPILE: &str = r#"#!/bin/sh
set -e
if [ -f "$2/seen" ]; then echo "cache hit: $(cat "$2/seen")"; else echo "cache miss"; fi
echo "staging-$(ls "$1" | wc -l)" > "$2/seen"
echo built > "$1/built.txt"
"#;
const RELEASE: &str = "#!/bin/sh\necho 'default_process_types: {web: ./run.sh}'\n";

struct Env {
    _tmp: tempfile::TempDir,
    state: std::path::PathBuf,
    base: String,
    blobs: Blobs,
    stager: Stager,
    logs: Published,
}

async fn env() -> Env {
    env_with(dea::backend::by_name("process").expect("backend")).await
}

async fn env_with(backend: Arc<dyn Backend>) -> Env {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let (base, blobs) = blob_server().await;
    let (stager, logs) = stager(&state, backend);
    Env {
        _tmp: tmp,
        state,
        base,
        blobs,
        stager,
        logs,
    }
}

impl Env {
    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.blobs.lock().expect("lock").insert(path.into(), bytes);
    }

    /// Adds an admin buildpack zip to the blob server.
    fn admin(&self, name: &str, zip: Vec<u8>) -> AdminBuildpack {
        let sha = dea::http::sha256_hex(&zip);
        self.put(&format!("/bp/{name}"), zip);
        AdminBuildpack {
            name: name.into(),
            uri: format!("{}/bp/{name}?signature=x", self.base),
            sha256: sha,
        }
    }

    /// Stages package `pkg` as app `app-a`, whose build cache stays the same
    /// from one staging to the next.
    fn request(
        &self,
        id: &str,
        pkg: &str,
        buildpack: Option<&str>,
        admin: Vec<AdminBuildpack>,
    ) -> StagingRequest {
        StagingRequest {
            app_id: "app-a".into(),
            buildpacks: buildpack.map(str::to_string).into_iter().collect(),
            package_uri: format!("{}/package/{pkg}", self.base),
            cache_download_uri: Some(format!("{}/cache/app-a", self.base)),
            cache_upload_uri: Some(format!("{}/cache/app-a", self.base)),
            admin_buildpacks: admin,
            ..common::staging_request(&self.base, id)
        }
    }

    async fn stage(&mut self, req: StagingRequest) -> (StagingResult, Vec<String>) {
        let r = self.stager.handle(req).await;
        (r, log_lines(&mut self.logs))
    }
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l.contains(want))
}

#[tokio::test]
async fn admin_buildpack_first_with_cache_between_stagings() {
    let mut e = env().await;
    // No exec bits in the zip, bin/ under one top-level directory.
    let mine = e.admin(
        "mine",
        zip_dir(&[
            ("mine-1.2/bin/detect", DETECT),
            ("mine-1.2/bin/compile", COMPILE),
            ("mine-1.2/bin/release", RELEASE),
        ]),
    );
    let never = e.admin(
        "never",
        zip_dir(&[
            ("bin/detect", "#!/bin/sh\nexit 1\n"),
            ("bin/compile", "#!/bin/sh\nexit 1\n"),
        ]),
    );
    // python would detect it too: admin buildpacks are tried first, in order.
    e.put(
        "/package/p",
        zip_dir(&[
            ("marker.txt", "x"),
            ("requirements.txt", ""),
            ("run.sh", ""),
        ]),
    );
    let (r, lines) = e
        .stage(e.request("s1", "p", None, vec![never.clone(), mine.clone()]))
        .await;
    assert_eq!(r.error, None, "{lines:?}");
    assert_eq!(r.detected_buildpack(), Some("mine"));
    assert_eq!(r.start_command.as_deref(), Some("./run.sh"));
    assert!(
        has(&lines, "cache miss") && !has(&lines, "cache hit"),
        "{lines:?}"
    );
    assert!(droplet_files(&e.blobs, "s1")
        .iter()
        .any(|f| f.ends_with("app/built.txt")));
    assert!(e
        .state
        .join("admin_buildpacks")
        .join(&mine.sha256)
        .join("bin/compile")
        .exists());

    // Second staging: the cache tarball comes back. The zips are gone from
    // the server, so the buildpacks come from the DEA's sha256 cache.
    e.blobs
        .lock()
        .expect("lock")
        .retain(|k, _| !k.starts_with("/bp/"));
    let (r, lines) = e
        .stage(e.request("s2", "p", None, vec![never.clone(), mine.clone()]))
        .await;
    assert_eq!(r.error, None, "{lines:?}");
    assert!(has(&lines, "cache hit: staging-3"), "{lines:?}");

    // -b names an admin buildpack (which fails to compile: it did run).
    let (r, _) = e
        .stage(e.request("s3", "p", Some("never"), vec![never, mine.clone()]))
        .await;
    assert!(
        err(&r)
            .is_some_and(|x| x
                .starts_with("BuildpackCompileFailed - never: bin/compile exited with status 1")),
        "{r:?}"
    );
    // A checksum that does not match the bits fails staging clearly.
    let mut bad = e.admin("bad", zip_dir(&[("bin/compile", "#!/bin/sh\n")]));
    bad.sha256 = "0".repeat(64);
    let (r, _) = e.stage(e.request("s4", "p", None, vec![bad])).await;
    assert!(err(&r).is_some_and(|x| x.contains("checksum")), "{r:?}");
    // Unknown -b names still fail as before.
    let (r, _) = e
        .stage(e.request("s5", "p", Some("nope"), vec![mine]))
        .await;
    assert!(
        err(&r).is_some_and(|x| x.starts_with("StagingError - buildpack nope not found")),
        "{r:?}"
    );
    assert!(
        std::fs::read_dir(e.state.join("staging"))
            .expect("ls")
            .next()
            .is_none(),
        "staging dirs cleaned"
    );
    let leftovers: Vec<_> = std::fs::read_dir(e.state.join("admin_buildpacks"))
        .expect("ls")
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// (staging id, package files, expected start command or none).
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

#[tokio::test]
async fn nodejs_buildpack_start_commands() {
    let mut e = env().await;
    let cases: &[Case] = &[
        (
            "script",
            &[(
                "package.json",
                r#"{"scripts": {"start": "node app.js --port $PORT"}}"#,
            )],
            Some("node app.js --port $PORT"),
        ),
        (
            "server",
            &[("package.json", "{}"), ("server.js", "")],
            Some("node server.js"),
        ),
        (
            "main",
            &[("package.json", r#"{"main": "index.js"}"#)],
            Some("node \"index.js\""),
        ),
        ("none", &[("package.json", "{}")], None),
    ];
    for (id, files, want) in cases {
        e.put(&format!("/package/{id}"), zip_dir(files));
        let (r, lines) = e.stage(e.request(id, id, None, vec![])).await;
        match want {
            Some(cmd) => {
                assert_eq!(r.error, None, "{id}: {lines:?}");
                assert_eq!(r.detected_buildpack(), Some("nodejs"), "{id}");
                assert_eq!(r.start_command.as_deref(), Some(*cmd), "{id}");
            }
            None => assert_eq!(
                err(&r),
                Some(format!("StagingError - {}", dea::staging::NO_START_COMMAND)),
                "{id}"
            ),
        }
    }
    // Dependencies without node_modules: installed from the npm registry;
    // the next staging reuses them from the build cache.
    e.put(
        "/package/deps",
        zip_dir(&[
            ("package.json", r#"{"dependencies": {"ms": "2.1.3"}}"#),
            ("server.js", ""),
        ]),
    );
    let (r, lines) = e.stage(e.request("deps", "deps", None, vec![])).await;
    assert_eq!(r.error, None, "{lines:?}");
    assert!(
        has(&lines, "Installing dependencies with npm install"),
        "{lines:?}"
    );
    let files = droplet_files(&e.blobs, "deps");
    assert!(files.iter().any(|f| f.ends_with(".profile.d/nodejs.sh")));
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("app/node_modules/ms/package.json")),
        "{files:?}"
    );
    let (r, lines) = e.stage(e.request("deps2", "deps", None, vec![])).await;
    assert_eq!(r.error, None, "{lines:?}");
    assert!(
        has(
            &lines,
            "Dependencies unchanged: reusing node_modules from the build cache"
        ),
        "{lines:?}"
    );
    assert!(droplet_files(&e.blobs, "deps2")
        .iter()
        .any(|f| f.ends_with("app/node_modules/ms/package.json")));
    // A dependency the registry does not have fails with npm's words.
    e.put(
        "/package/nodep",
        zip_dir(&[
            (
                "package.json",
                r#"{"dependencies": {"no-such-package-paas-test-4711": "1.0.0"}}"#,
            ),
            ("server.js", ""),
        ]),
    );
    let (r, _) = e.stage(e.request("nodep", "nodep", None, vec![])).await;
    let msg = err(&r).unwrap_or_default();
    assert!(
        msg.starts_with("BuildpackCompileFailed - nodejs: bin/compile exited with status 1")
            && msg.contains("404"),
        "{msg}"
    );
    // Invalid JSON fails compile with a reason.
    e.put("/package/bad", zip_dir(&[("package.json", "{nope")]));
    let (r, _) = e.stage(e.request("bad", "bad", None, vec![])).await;
    assert!(
        err(&r).is_some_and(|x| x.contains("not valid JSON")),
        "{r:?}"
    );
}

/// The process backend, recording what staging asks of it.
struct Recording {
    inner: Arc<dyn Backend>,
    created: Mutex<Vec<ContainerSpec>>,
    spawned: Mutex<Vec<(String, String)>>,
    destroyed: Mutex<Vec<String>>,
}

impl Backend for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn create(&self, spec: ContainerSpec) -> BoxFut<'_, dea::error::Result<Container>> {
        self.created.lock().expect("lock").push(spec.clone());
        self.inner.create(spec)
    }
    fn spawn<'a>(
        &'a self,
        c: &'a Container,
        p: ProcessSpec,
    ) -> BoxFut<'a, dea::error::Result<Spawned>> {
        self.spawned
            .lock()
            .expect("lock")
            .push((c.id.clone(), p.script.clone()));
        self.inner.spawn(c, p)
    }
    fn stop<'a>(&'a self, c: &'a Container, grace: Duration) -> BoxFut<'a, dea::error::Result<()>> {
        self.inner.stop(c, grace)
    }
    fn destroy<'a>(&'a self, c: &'a Container) -> BoxFut<'a, dea::error::Result<()>> {
        self.destroyed.lock().expect("lock").push(c.id.clone());
        self.inner.destroy(c)
    }
    fn stats<'a>(
        &'a self,
        c: &'a Container,
    ) -> BoxFut<'a, dea::error::Result<proto::InstanceStats>> {
        self.inner.stats(c)
    }
    fn kill_all(&self) {
        self.inner.kill_all()
    }
}

#[tokio::test]
async fn staging_runs_every_step_in_one_container_with_the_request_limits() {
    let rec = Arc::new(Recording {
        inner: dea::backend::by_name("process").expect("backend"),
        created: Mutex::default(),
        spawned: Mutex::default(),
        destroyed: Mutex::default(),
    });
    let mut e = env_with(rec.clone()).await;
    e.put(
        "/package/n",
        zip_dir(&[("package.json", "{}"), ("server.js", "")]),
    );
    let mut req = e.request("lim", "n", None, vec![]);
    req.memory_mb = 1536;
    req.disk_mb = 3072;
    let (r, lines) = e.stage(req).await;
    assert_eq!(r.error, None, "{lines:?}");
    let created = rec.created.lock().expect("lock").clone();
    assert_eq!(created.len(), 1);
    assert_eq!(
        (
            created[0].id.as_str(),
            created[0].memory_mb,
            created[0].disk_mb
        ),
        ("staging-lim", 1536, 3072)
    );
    let spawned = rec.spawned.lock().expect("lock").clone();
    // python detect (no), nodejs detect (yes), compile, release; then the
    // platform's own steps, in the same container: the Procfile, the
    // droplet and the cache packed inside.
    let steps: Vec<&str> = spawned
        .iter()
        .map(|(c, s)| {
            assert_eq!(c, "staging-lim");
            s.rsplit("/bin/").next().unwrap_or("")
        })
        .collect();
    assert_eq!(steps.len(), 7, "{spawned:?}");
    assert!(steps[0].starts_with("detect") && steps[3].starts_with("release"));
    use dea::staging::plan;
    assert_eq!(
        &steps[4..],
        &[plan::READ_PROCFILE, plan::PACK_DROPLET, plan::PACK_CACHE]
    );
    assert_eq!(*rec.destroyed.lock().expect("lock"), vec!["staging-lim"]);
}

/// A build gets the DEA's package index settings (`staging_env_passthrough`)
/// and the user's variables, and nothing else of the DEA's environment; pip
/// follows the index it is given.
#[tokio::test]
async fn host_index_settings_reach_builds_and_nothing_else() {
    let mut e = env().await;
    e.stager.passthrough = vec![
        (
            "PIP_INDEX_URL".to_string(),
            "http://127.0.0.1:9/simple".to_string(),
        ),
        ("PIP_RETRIES".to_string(), "0".to_string()),
    ];
    let show = e.admin(
        "show",
        zip_dir(&[
            ("bin/detect", "#!/bin/sh\nexit 0\n"),
            ("bin/compile", "#!/bin/sh\nenv | sort | sed 's/^/ENV /'\n"),
            ("bin/release", RELEASE),
        ]),
    );
    e.put("/package/env", zip_dir(&[("run.sh", "")]));
    let mut req = e.request("env", "env", Some("show"), vec![show]);
    req.env = vec!["GREETING=hi".into()];
    let (r, lines) = e.stage(req).await;
    assert_eq!(r.error, None, "{lines:?}");
    let envs: Vec<&String> = lines.iter().filter(|l| l.starts_with("ENV ")).collect();
    assert!(
        has(&lines, "ENV PIP_INDEX_URL=http://127.0.0.1:9/simple"),
        "{envs:?}"
    );
    assert!(has(&lines, "ENV GREETING=hi"), "{envs:?}");
    // The test process (the DEA here) has CARGO_* and its own HOME: none
    // of it reaches the build.
    assert!(!envs.iter().any(|l| l.contains("CARGO")), "{envs:?}");
    assert!(
        envs.iter()
            .filter(|l| l.starts_with("ENV HOME="))
            .all(|l| l.contains("/staging/")),
        "{envs:?}"
    );

    // pip asks the index it was given (nothing listens there).
    e.put(
        "/package/py",
        zip_dir(&[("app.py", ""), ("requirements.txt", "six==1.16.0\n")]),
    );
    let (r, _) = e.stage(e.request("py", "py", None, vec![])).await;
    let msg = err(&r).unwrap_or_default();
    assert!(
        msg.starts_with("BuildpackCompileFailed - python: bin/compile")
            && msg.contains("127.0.0.1"),
        "{msg}"
    );
}
