//! The shared blobstore (issue 17, docs/architecture.md §6.9): controllers
//! on one Postgres keep packages, droplets, build caches and resource-cache
//! files as large objects there, so any controller serves what another
//! stored, and losing a controller host (its data dir) loses none of them.
//! One controller at a time sweeps it, under the `blob-gc` lease.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cloud_controller::blob_gc::{self, Lease, Policy};
use cloud_controller::blobstore::{blob_key, cache_key, resource_key, SharedBlobs};
use serde_json::json;

use crate::api::Api;
use crate::blob_gc::droplet_tgz;
use crate::resources::{matches, noise, resource, upload, zip_of};

/// A controller on `db` whose blobstore is shared through the same
/// database, with a data dir of its own.
async fn controller(db: &testkit::PgDb) -> Api {
    let url = db.url.clone();
    Api::open_with(Some(url.clone()), |c| c.blobstore_url = Some(url)).await
}

/// A signed internal request to `a`: (status, body bytes).
async fn internal(a: &Api, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let url = a.ctx.signed_url(method.as_str(), path, 60);
    let r = a
        .send_internal(
            method,
            url.trim_start_matches("http://127.0.0.1:9"),
            &[],
            body,
        )
        .await;
    (r.status, r.raw)
}

#[tokio::test]
async fn a_lost_controller_host_loses_no_package_droplet_or_cache() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let a = controller(&db).await;
    let b = controller(&db).await;

    // Everything goes in through controller A.
    let app = a.create_app("shared").await;
    let g = app["guid"].as_str().expect("guid").to_string();
    let r = a
        .call(
            Method::POST,
            "/v3/packages",
            Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": g}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let pkg = r.body["guid"].as_str().expect("package").to_string();
    let zip = zip_of(&[("app.py", b"print('shared')", 0o644)]);
    let r = a.upload(&pkg, &zip).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = a
        .call(
            Method::POST,
            "/v3/builds",
            Some(json!({"package": {"guid": pkg}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let build = r.body["guid"].as_str().expect("build").to_string();
    let droplet = droplet_tgz("shared");
    let (status, _) = internal(
        &a,
        Method::PUT,
        &format!("/internal/v1/droplets/{build}/upload"),
        droplet.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let cache = b"build cache v1".to_vec();
    let (status, _) = internal(
        &a,
        Method::PUT,
        &format!("/internal/v1/buildpack_cache/{g}"),
        cache.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let droplet_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&droplet));

    // Controller A's host is lost: its data dir goes with it.
    let a_dir = a.ctx.cfg.data_dir.clone();
    drop(a);
    assert!(!a_dir.exists(), "the lost controller's disk is gone");

    // Controller B serves every blob, fetched from the shared store.
    let (status, body) = internal(
        &b,
        Method::GET,
        &format!("/internal/v1/packages/{pkg}/download"),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, zip, "the package, byte for byte");
    // The droplet (its build's upload; with no DEA on this test's bus the
    // build itself fails, so no droplet row names it).
    let file = b.ctx.blobs.blob_file(&droplet_sha).await.expect("fetch");
    assert_eq!(
        std::fs::read(file).expect("droplet"),
        droplet,
        "the droplet, byte for byte"
    );
    let (status, body) = internal(
        &b,
        Method::GET,
        &format!("/internal/v1/buildpack_cache/{g}"),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, cache, "the build cache");

    // A build cache replaced through B is what a third controller serves;
    // the old one's large object is gone with it.
    let (status, _) = internal(
        &b,
        Method::PUT,
        &format!("/internal/v1/buildpack_cache/{g}"),
        b"build cache v2".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let c = controller(&db).await;
    let (status, body) = internal(
        &c,
        Method::GET,
        &format!("/internal/v1/buildpack_cache/{g}"),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"build cache v2");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_largeobject_metadata")
        .fetch_one(&pool)
        .await
        .expect("count large objects");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM shared_blobs")
        .fetch_one(&pool)
        .await
        .expect("count rows");
    assert_eq!(objects, rows, "one large object per row, none orphaned");

    // Deleting the app through C removes its cache from the shared store.
    let r = c.call(Method::DELETE, &format!("/v3/apps/{g}"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let shared = c.ctx.blobs.shared().expect("shared");
    assert_eq!(shared.size(&cache_key(&g)).await.expect("size"), None);
}

/// A file cached by one controller matches on another, and an upload
/// there that names it assembles the package from the shared copy.
#[tokio::test]
async fn resources_cached_by_one_controller_match_on_another() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let a = controller(&db).await;
    let b = controller(&db).await;
    let big = noise(80 * 1024, 7);
    let pkg = a.new_package("seed").await;
    let r = a.upload(&pkg, &zip_of(&[("big.bin", &big, 0o644)])).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = matches(&b, json!([resource(&big, "lib/big.bin", "644")])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["resources"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        r.body
    );
    let pkg = b.new_package("matched").await;
    let list = json!([resource(&big, "lib/big.bin", "644")]).to_string();
    let bits = zip_of(&[("app.py", b"print(2)", 0o644)]);
    let r = upload(&b, &pkg, Some(&list), Some(&bits)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sha = r.body["data"]["checksum"]["value"].as_str().expect("sha");
    let stored = std::fs::read(b.ctx.blobs.path(sha)).expect("package");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(stored)).expect("zip");
    let mut tool = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("lib/big.bin").expect("entry"), &mut tool)
        .expect("read");
    assert_eq!(tool, big, "assembled from the shared copy");
}

/// The shared store's sweep runs in the lease holder only; it removes what
/// no row names once older than the grace period, never a referenced or a
/// young object, and counts the build caches of deleted apps.
#[tokio::test]
async fn one_controller_sweeps_the_shared_store_under_a_lease() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let a = controller(&db).await;
    let b = controller(&db).await;
    let shared: &SharedBlobs = a.ctx.blobs.shared().expect("shared");

    let pkg = a.new_package("kept").await;
    let r = a
        .upload(&pkg, &zip_of(&[("app.py", b"print('kept')", 0o644)]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let kept = r.body["data"]["checksum"]["value"]
        .as_str()
        .expect("sha")
        .to_string();
    // Two blobs no row names: one old, one young.
    let orphan = stage_and_commit(&a, b"orphaned long ago").await;
    let young = stage_and_commit(&a, b"committed a moment ago").await;
    let hours_ago = chrono::Utc::now().timestamp() - 2 * 3600;
    for key in [blob_key(&kept), blob_key(&orphan)] {
        assert!(shared.set_touched_at(&key, hours_ago).await.expect("age"));
    }

    let policy = Policy {
        grace: Duration::from_secs(3600),
        keep_packages: 5,
        keep_droplets: 5,
        resource_max_age: None,
        resource_max_bytes: None,
    };
    fn lease(api: &Api) -> Lease<'_> {
        Lease {
            holder: &api.ctx.id,
            ttl_s: 600,
        }
    }
    let first = blob_gc::collect_as(&a.ctx.store, &a.ctx.blobs, &policy, Some(lease(&a)))
        .await
        .expect("a's pass");
    assert!(first.led, "the first controller takes the lease");
    assert_eq!(first.shared.files, 1, "{first:?}");
    let second = blob_gc::collect_as(&b.ctx.store, &b.ctx.blobs, &policy, Some(lease(&b)))
        .await
        .expect("b's pass");
    assert!(!second.led, "the other controller leaves the shared work");
    assert_eq!(second.shared.files, 0);

    let size = |sha: String| async move { shared.size(&blob_key(&sha)).await.expect("size") };
    assert_eq!(size(orphan).await, None, "the old orphan is gone");
    assert!(size(kept).await.is_some(), "a referenced blob stays");
    assert!(size(young).await.is_some(), "a young blob stays");
    assert_eq!(
        shared
            .size(&resource_key(&"0".repeat(40)))
            .await
            .expect("size"),
        None
    );
}

async fn stage_and_commit(a: &Api, content: &[u8]) -> String {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
        bytes::Bytes::copy_from_slice(content),
    )]);
    let staged = a.ctx.blobs.stage(body, u64::MAX).await.expect("stage");
    a.ctx.blobs.commit(&staged).await.expect("commit");
    staged.sha256
}
