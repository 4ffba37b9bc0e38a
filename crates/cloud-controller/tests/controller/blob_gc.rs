//! Blob garbage collection (issue 13, docs/architecture.md §6.8): blobs,
//! build caches, temp files and resource-cache files no live app needs are
//! removed, and each app keeps only its newest packages and droplets; what
//! a row names, and anything younger than the grace period, stays.
//!
//! Files are aged by setting their mtimes, never by waiting.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use cloud_controller::blob_gc::{self, Policy, Removed};
use cloud_controller::blobstore::{BlobStore, RESOURCES_DIR, TMP_DIR};
use cloud_controller::store::{self, Droplet, DropletState, PackageState, Store};
use cloud_controller::Config;

use crate::api::Api;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// Ages every file under `dir`; one that went away meanwhile (SQLite's
/// journal, made and removed by the running controller) is skipped.
fn age_files(dir: &Path, age: Duration) {
    for f in files(dir) {
        match std::fs::File::options().write(true).open(&f) {
            Ok(file) => file
                .set_modified(SystemTime::now() - age)
                .unwrap_or_else(|e| panic!("set mtime of {}: {e}", f.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("open {}: {e}", f.display()),
        }
    }
}

/// Every regular file under `dir` (recursively).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn put_blob(blobs: &BlobStore, content: &[u8]) -> String {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
        bytes::Bytes::copy_from_slice(content),
    )]);
    let staged = blobs.stage(body, u64::MAX).await.expect("stage");
    blobs.commit(&staged).await.expect("commit");
    staged.sha256
}

/// What one push left: the package's and droplet's blobs and the droplet.
struct Pushed {
    package_sha: String,
    droplet_sha: String,
    droplet: String,
}

/// A push as the controller records it: a READY package with its blob, a
/// build whose droplet was uploaded, and the STAGED droplet.
async fn push(s: &Store, blobs: &BlobStore, app: &str, n: usize) -> Pushed {
    let pkg = s.create_package(app).await.expect("package");
    let package_sha = put_blob(blobs, format!("package {app} {n}").as_bytes()).await;
    s.set_package_state(&pkg.guid, PackageState::Ready, Some(&package_sha), None)
        .await
        .expect("ready");
    let b = s
        .create_build(app, &pkg.guid, "u", "admin")
        .await
        .expect("build");
    let droplet_sha = put_blob(blobs, format!("droplet {app} {n}").as_bytes()).await;
    s.set_build_uploaded(&b.guid, &droplet_sha)
        .await
        .expect("uploaded");
    let t = store::now();
    let d = Droplet {
        guid: store::new_guid(),
        app_guid: app.to_string(),
        package_guid: pkg.guid.clone(),
        state: DropletState::Staged,
        sha256: Some(droplet_sha.clone()),
        process_types: r#"{"web":"x"}"#.into(),
        buildpack: None,
        stack: "host".into(),
        error: None,
        created_at: t.clone(),
        updated_at: t,
        buildpacks: None,
        config_vars: None,
    };
    assert!(s.finish_staged(&b.guid, &d).await.expect("staged"));
    Pushed {
        package_sha,
        droplet_sha,
        droplet: d.guid,
    }
}

async fn put_cache(blobs: &BlobStore, app: &str) -> PathBuf {
    let body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"cache"))]);
    let staged = blobs.stage(body, u64::MAX).await.expect("stage");
    blobs.commit_cache(&staged, app).await.expect("commit");
    blobs.cache_path(app)
}

/// Live app L pushed 7 times (its current droplet the 2nd), app D pushed
/// once and deleted, an admin buildpack, a build in flight, strays: one
/// pass removes exactly D's blobs and cache, L's oldest push, the stray
/// blob, the stale temp file and the resource file unused for a month.
async fn gc_follows_live_apps(url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(url).await.expect("store");
    s.bootstrap("admin", "pw", "sys.localhost", "localhost")
        .await
        .expect("bootstrap");
    let blobs = BlobStore::open(dir.path()).await.expect("blobs");
    let space = s
        .spaces()
        .await
        .expect("spaces")
        .into_iter()
        .find(|sp| sp.name == "dev")
        .expect("dev space")
        .guid;

    let live = s
        .create_app("live", &space, None, "host", "{}")
        .await
        .expect("app");
    let mut pushes = Vec::new();
    for n in 0..7 {
        pushes.push(push(&s, &blobs, &live.guid, n).await);
    }
    let mut app = s.app(&live.guid).await.expect("app");
    app.current_droplet_guid = Some(pushes[1].droplet.clone());
    s.update_app(&app).await.expect("current droplet");
    let live_cache = put_cache(&blobs, &live.guid).await;
    // A build in flight whose droplet is uploaded but not yet recorded.
    let pkg = s.create_package(&live.guid).await.expect("package");
    let inflight = s
        .create_build(&live.guid, &pkg.guid, "u", "admin")
        .await
        .expect("build");
    let inflight_sha = put_blob(&blobs, b"droplet in flight").await;
    s.set_build_uploaded(&inflight.guid, &inflight_sha)
        .await
        .expect("uploaded");
    // An admin buildpack's bits.
    let bp = s
        .create_buildpack("bp", "", 1, true, false)
        .await
        .expect("buildpack");
    let bp_sha = put_blob(&blobs, b"buildpack zip").await;
    s.set_buildpack_bits(&bp.guid, "bp.zip", &bp_sha)
        .await
        .expect("bits");

    let doomed = s
        .create_app("doomed", &space, None, "host", "{}")
        .await
        .expect("app");
    let d = push(&s, &blobs, &doomed.guid, 0).await;
    let doomed_cache = put_cache(&blobs, &doomed.guid).await;
    s.delete_app(&doomed.guid).await.expect("delete");

    let stray = put_blob(&blobs, b"never recorded").await;
    let stale_tmp = blobs.dir(TMP_DIR).join("interrupted-upload");
    std::fs::write(&stale_tmp, b"half").expect("write");
    let old_resource = blobs.dir(RESOURCES_DIR).join("1".repeat(40));
    let used_resource = blobs.dir(RESOURCES_DIR).join("2".repeat(40));
    std::fs::write(&old_resource, b"res").expect("write");
    std::fs::write(&used_resource, b"res").expect("write");

    // Everything so far is old; then a fresh unreferenced blob and temp
    // file (an upload whose row is not written yet).
    age_files(dir.path(), 2 * HOUR);
    set_age(&old_resource, 31 * DAY);
    let fresh = put_blob(&blobs, b"uploaded a moment ago").await;
    let fresh_tmp = blobs.dir(TMP_DIR).join("upload-in-progress");
    std::fs::write(&fresh_tmp, b"part").expect("write");

    let policy = Policy::from_config(&Config::default());
    let report = blob_gc::collect(&s, &blobs, &policy).await.expect("gc");

    let gone = [
        &d.package_sha,
        &d.droplet_sha,
        &pushes[0].package_sha,
        &pushes[0].droplet_sha,
        &stray,
    ];
    for sha in gone {
        assert!(!blobs.exists(sha).await, "{sha} should be removed");
    }
    let mut kept = vec![&inflight_sha, &bp_sha, &fresh];
    for p in &pushes[1..] {
        kept.push(&p.package_sha);
        kept.push(&p.droplet_sha);
    }
    for sha in kept {
        assert!(blobs.exists(sha).await, "{sha} should stay");
    }
    assert!(!doomed_cache.exists(), "a deleted app's build cache goes");
    assert!(live_cache.exists(), "a live app's build cache stays");
    assert!(!stale_tmp.exists() && fresh_tmp.exists());
    assert!(!old_resource.exists() && used_resource.exists());
    assert_eq!(
        (report.packages_expired, report.droplets_expired),
        (1, 1),
        "{report:?}"
    );
    let one = |bytes: u64| Removed { files: 1, bytes };
    assert_eq!(report.blobs.files, 5, "{report:?}");
    assert_eq!(
        (report.caches, report.tmp, report.resources),
        (one(5), one(4), one(3)),
        "{report:?}"
    );
    // The newest five and the current one (the 2nd push) stay on record.
    let droplets: Vec<String> = s
        .droplets_of(&live.guid)
        .await
        .expect("droplets")
        .into_iter()
        .map(|d| d.guid)
        .collect();
    let want: Vec<String> = pushes[1..].iter().map(|p| p.droplet.clone()).collect();
    assert_eq!(droplets, want);
    assert_eq!(
        s.packages_of(&live.guid)
            .await
            .expect("packages")
            .iter()
            .filter(|p| p.state == PackageState::Ready)
            .count(),
        6
    );

    // Nothing more to do.
    let again = blob_gc::collect(&s, &blobs, &policy).await.expect("gc");
    assert_eq!(
        again,
        blob_gc::Report {
            led: true,
            ..Default::default()
        }
    );
    s.close().await;
}

mod sqlite {
    #[tokio::test]
    async fn gc_follows_live_apps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("cc.db").display());
        super::gc_follows_live_apps(&url).await;
    }
}

mod postgres {
    #[tokio::test]
    async fn gc_follows_live_apps() {
        let db = testkit::PgDb::create().await.expect("postgres");
        super::gc_follows_live_apps(&db.url).await;
    }
}

/// Deleting an app through the API removes its build cache at once.
#[tokio::test]
async fn app_delete_removes_its_build_cache() {
    let a = Api::new().await;
    let app = a.create_app("cached").await;
    let g = app["guid"].as_str().expect("guid");
    let path = format!("/internal/v1/buildpack_cache/{g}");
    let url = a.ctx.signed_url("PUT", &path, 60);
    let r = a
        .send_internal(
            Method::PUT,
            url.trim_start_matches("http://127.0.0.1:9"),
            &[],
            b"cache tarball".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let cache = a.ctx.blobs.cache_path(g);
    assert!(cache.exists());
    let r = a.call(Method::DELETE, &format!("/v3/apps/{g}"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(!cache.exists(), "the build cache goes with the app");
}

/// A small droplet tarball whose bytes name `tag`.
pub(crate) fn droplet_tgz(tag: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(tag.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "app/tag", tag.as_bytes())
        .expect("tar");
    b.into_inner().expect("tar").finish().expect("gzip")
}

/// A signed internal upload (`PUT`); the sha256 the controller answers.
async fn internal_put(a: &Api, path: &str, body: Vec<u8>) -> String {
    let url = a.ctx.signed_url("PUT", path, 60);
    let r = a
        .send_internal(
            Method::PUT,
            url.trim_start_matches("http://127.0.0.1:9"),
            &[],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
    r.body["sha256"].as_str().expect("sha256").to_string()
}

/// An app pushed over the API: bits uploaded, a build whose droplet the
/// DEA uploaded, a build cache. (app guid, package sha, droplet sha).
async fn push_over_api(a: &Api, name: &str) -> (String, String, String) {
    let app = a.create_app(name).await;
    let g = app["guid"].as_str().expect("guid").to_string();
    let r = a
        .call(
            Method::POST,
            "/v3/packages",
            Some(serde_json::json!({"type": "bits", "relationships": {"app": {"data": {"guid": g}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let pkg = r.body["guid"].as_str().expect("package").to_string();
    let zip = crate::support::zip_bytes(&[("app.py", &format!("print('{name}')"))]);
    let r = a.upload(&pkg, &zip).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let package_sha = r.body["data"]["checksum"]["value"]
        .as_str()
        .expect("package sha")
        .to_string();
    let r = a
        .call(
            Method::POST,
            "/v3/builds",
            Some(serde_json::json!({"package": {"guid": pkg}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let build = r.body["guid"].as_str().expect("build").to_string();
    let droplet_sha = internal_put(
        a,
        &format!("/internal/v1/droplets/{build}/upload"),
        droplet_tgz(name),
    )
    .await;
    internal_put(
        a,
        &format!("/internal/v1/buildpack_cache/{g}"),
        format!("cache of {name}").into_bytes(),
    )
    .await;
    (g, package_sha, droplet_sha)
}

/// Over the API: an app pushed and deleted loses its package, droplet and
/// build cache at the next pass; a live app's package and cache stay, and
/// so does a fresh blob no row names yet.
#[tokio::test]
async fn deleted_app_blobs_go_at_the_next_pass() {
    let a = Api::new().await;
    let (doomed, doomed_pkg, doomed_droplet) = push_over_api(&a, "doomed").await;
    let (live, live_pkg, _) = push_over_api(&a, "live").await;
    age_files(&a.ctx.cfg.data_dir, 2 * HOUR);
    let fresh = put_blob(&a.ctx.blobs, b"staged a moment ago").await;

    let r = a
        .call(Method::DELETE, &format!("/v3/apps/{doomed}"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(
        !a.ctx.blobs.cache_path(&doomed).exists(),
        "cache removed at once"
    );
    assert!(
        a.ctx.blobs.exists(&doomed_pkg).await,
        "blobs wait for the pass"
    );

    let report = blob_gc::run_once(&a.ctx).await.expect("gc");
    assert!(!a.ctx.blobs.exists(&doomed_pkg).await, "{report:?}");
    assert!(!a.ctx.blobs.exists(&doomed_droplet).await, "{report:?}");
    assert!(a.ctx.blobs.exists(&live_pkg).await, "{report:?}");
    assert!(a.ctx.blobs.exists(&fresh).await, "{report:?}");
    assert!(a.ctx.blobs.cache_path(&live).exists(), "{report:?}");
}

/// A running controller (`run()`) collects at start-up: an old stray blob
/// left in its data dir goes, a fresh one stays.
#[tokio::test]
async fn a_running_controller_collects_at_start_up() {
    let nats = crate::support::Nats::start().expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let blobs = data.join("blobs");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let old = blobs.join("a".repeat(64));
    let fresh = blobs.join("b".repeat(64));
    std::fs::write(&old, b"left behind").expect("write");
    std::fs::write(&fresh, b"just uploaded").expect("write");
    set_age(&old, 2 * HOUR);
    let cfg = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        internal_listen: "127.0.0.1:0".parse().expect("addr"),
        addr_file: Some(dir.path().join("cc.addr")),
        internal_api_token: "dev-internal-token".into(),
        nats_url: nats.url.clone(),
        data_dir: data,
        blob_gc_interval_s: 600,
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cloud_controller::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    crate::support::eventually("the start-up pass", Duration::from_secs(15), || async {
        (!old.exists()).then_some(())
    })
    .await;
    assert!(fresh.exists(), "a blob within the grace period stays");
    let _ = stop_tx.send(());
    let _ = server.await;
}
