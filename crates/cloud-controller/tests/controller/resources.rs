//! Resource matching (CF's resource cache): `POST /v3/resource_matches`,
//! package uploads with a `resources` field next to (or instead of) `bits`,
//! and the hostile cases: a sha1 the cache does not have, unsafe paths,
//! bad modes, malformed lists, and the upload limits applied to the
//! assembled package.

use std::io::{Cursor, Read, Write};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::api::{Api, Resp};

/// Bytes that do not compress (xorshift).
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

pub(crate) fn zip_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(*mode);
        w.start_file(*name, opts).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

pub(crate) fn resource(data: &[u8], path: &str, mode: &str) -> Value {
    json!({"checksum": {"value": sha1_hex(data)}, "size_in_bytes": data.len(), "path": path, "mode": mode})
}

/// A multipart body of `resources` (JSON text) and/or `bits` (a zip).
fn form(resources: Option<&str>, bits: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "----ccresourcesboundary";
    let mut body = Vec::new();
    if let Some(r) = resources {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n{r}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some(b) = bits {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"app.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes());
        body.extend_from_slice(b);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub(crate) async fn upload(
    a: &Api,
    package: &str,
    resources: Option<&str>,
    bits: Option<&[u8]>,
) -> Resp {
    let (ct, body) = form(resources, bits);
    let auth = format!("bearer {}", a.token);
    a.send(
        Method::POST,
        &format!("/v3/packages/{package}/upload"),
        &[("authorization", &auth), ("content-type", &ct)],
        body,
    )
    .await
}

pub(crate) async fn matches(a: &Api, list: Value) -> Resp {
    a.call(
        Method::POST,
        "/v3/resource_matches",
        Some(json!({ "resources": list })),
    )
    .await
}

/// The package's stored zip: (name, mode, contents) of its files.
fn stored(a: &Api, sha256: &str) -> Vec<(String, u32, Vec<u8>)> {
    let bytes = std::fs::read(a.ctx.blobs.path(sha256)).expect("package blob");
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).expect("entry");
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        let name = e.name().expect("name").to_string();
        out.push((name, e.unix_mode().unwrap_or(0) & 0o777, data));
    }
    out.sort();
    out
}

/// An app whose package holds `big` (80 KB, cached) and a small file.
async fn seeded(a: &Api, big: &[u8]) {
    let pkg = a.new_package("seed").await;
    let zip = zip_of(&[("big.bin", big, 0o644), ("small.txt", b"small", 0o644)]);
    let r = a.upload(&pkg, &zip).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn matches_name_cached_files_of_the_pool_sizes_only() {
    let a = Api::new().await;
    let big = noise(80 * 1024, 1);
    seeded(&a, &big).await;
    let unknown = noise(80 * 1024, 2);
    let r = matches(
        &a,
        json!([
            resource(&big, "a/big.bin", "644"),
            resource(b"small", "small.txt", "644"),
            resource(&unknown, "other.bin", "644"),
            {"checksum": {"value": sha1_hex(&big)}, "size_in_bytes": 1000, "path": "liar.bin"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["resources"],
        json!([resource(&big, "a/big.bin", "644")]),
        "small files are never cached; sha1 and size must both match"
    );
    // Malformed requests: 422 (shape) or 400 (JSON).
    let r = matches(&a, json!([])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = matches(
        &a,
        json!([{"checksum": {"value": "../../etc/passwd"}, "size_in_bytes": 70000}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let many: Vec<Value> = (0..5001).map(|_| resource(&big, "x", "644")).collect();
    let r = matches(&a, Value::Array(many)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // The feature flag off: nothing matches (CF).
    let r = a
        .call(
            Method::PATCH,
            "/v3/feature_flags/resource_matching",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = matches(&a, json!([resource(&big, "a/big.bin", "644")])).await;
    assert_eq!(r.body["resources"], json!([]), "{:?}", r.body);
}

#[tokio::test]
async fn upload_assembles_bits_and_cached_resources() {
    let a = Api::new().await;
    let big = noise(80 * 1024, 1);
    seeded(&a, &big).await;
    let pkg = a.new_package("app").await;
    let list = json!([resource(&big, "bin/tool", "755")]).to_string();
    let bits = zip_of(&[("app.py", b"print(1)", 0o644)]);
    let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "READY");
    let sha = r.body["data"]["checksum"]["value"].as_str().expect("sha");
    let files = stored(&a, sha);
    assert_eq!(
        files,
        vec![
            ("app.py".to_string(), 0o644, b"print(1)".to_vec()),
            ("bin/tool".to_string(), 0o755, big.clone()),
        ]
    );
    // Resources only (everything matched): no bits at all.
    let pkg = a.new_package("all-matched").await;
    let list = json!([resource(&big, "big.bin", "644")]).to_string();
    let r = upload(&a, &pkg, Some(&list), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sha = r.body["data"]["checksum"]["value"].as_str().expect("sha");
    assert_eq!(stored(&a, sha).len(), 1);
    // Every upload feeds the cache: a new big file matches afterwards.
    let fresh = noise(100 * 1024, 3);
    let pkg = a.new_package("fresh").await;
    let r = a.upload(&pkg, &zip_of(&[("f.bin", &fresh, 0o600)])).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = matches(&a, json!([resource(&fresh, "f.bin", "600")])).await;
    assert_eq!(r.body["resources"].as_array().map(Vec::len), Some(1));
    // The upload's audit event says what was received.
    let r = a
        .call(
            Method::GET,
            "/v3/audit_events?types=audit.app.package.upload",
            None,
        )
        .await;
    let events = r.body["resources"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["data"]["bits_bytes"] == 0 && e["data"]["resources"] == 1),
        "{events:?}"
    );
}

/// Asserts a refusal of `status`/`title` whose detail has `want`; the
/// package is FAILED and no temp file is left.
async fn assert_refused(a: &Api, pkg: &str, r: Resp, status: StatusCode, title: &str, want: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    let e = &r.body["errors"][0];
    assert_eq!(e["title"], title, "{:?}", r.body);
    let detail = e["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(want), "{detail:?} lacks {want:?}");
    let p = a
        .call(Method::GET, &format!("/v3/packages/{pkg}"), None)
        .await;
    assert_eq!(p.body["state"], "FAILED", "{:?}", p.body);
    let left = testkit::files_under(&a.ctx.cfg.data_dir.join("tmp"));
    assert!(left.is_empty(), "tmp: {left:?}");
}

#[tokio::test]
async fn hostile_resources_are_refused() {
    let a = Api::new().await;
    let big = noise(80 * 1024, 1);
    seeded(&a, &big).await;
    let bits = zip_of(&[("app.py", b"print(1)", 0o644)]);

    // A sha1 the cache does not have: 422, the package FAILED.
    let pkg = a.new_package("unknown").await;
    let other = noise(80 * 1024, 9);
    let list = json!([resource(&other, "x.bin", "644")]).to_string();
    let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CF-UnprocessableEntity",
        "is not in the resource cache",
    )
    .await;
    // The right sha1 with another size is not the cached file either.
    let list =
        json!([{"checksum": {"value": sha1_hex(&big)}, "size_in_bytes": 70000, "path": "x.bin"}])
            .to_string();
    let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CF-UnprocessableEntity",
        "is not in the resource cache",
    )
    .await;
    // Paths out of the package.
    for path in ["../../etc/cron.d/x", "/etc/passwd", "a/../../x", ""] {
        let list = json!([resource(&big, path, "644")]).to_string();
        let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
        assert_refused(
            &a,
            &pkg,
            r,
            StatusCode::BAD_REQUEST,
            "CF-AppResourcesFilePathInvalid",
            "is not safe",
        )
        .await;
    }
    // Modes: below 0600 or not octal.
    for mode in ["444", "rwx"] {
        let list = json!([resource(&big, "x.bin", mode)]).to_string();
        let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
        assert_refused(
            &a,
            &pkg,
            r,
            StatusCode::BAD_REQUEST,
            "CF-AppResourcesFileModeInvalid",
            "Minimum file mode is '0600'",
        )
        .await;
    }
    // Not a list; a path twice.
    let r = upload(&a, &pkg, Some("{\"resources\": 1}"), Some(&bits)).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::BAD_REQUEST,
        "CF-AppBitsUploadInvalid",
        "invalid :resources",
    )
    .await;
    let list = json!([
        resource(&big, "x.bin", "644"),
        resource(&big, "./x.bin", "644")
    ])
    .to_string();
    let r = upload(&a, &pkg, Some(&list), None).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::BAD_REQUEST,
        "CF-AppBitsUploadInvalid",
        "more than once",
    )
    .await;
    // Neither field.
    let r = upload(&a, &pkg, Some("[]"), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "Upload must include either resources or bits"
    );
    // After all that, a good upload of the same package still works.
    let list = json!([resource(&big, "x.bin", "644")]).to_string();
    let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn upload_limits_apply_to_the_assembled_package() {
    // 1 MB packages, 3 entries.
    let a = Api::open_with(None, |c| {
        c.max_package_mb = 1;
        c.max_archive_entries = 3;
    })
    .await;
    let big = noise(600 * 1024, 1);
    let pkg = a.new_package("seed").await;
    let r = a.upload(&pkg, &zip_of(&[("big.bin", &big, 0o644)])).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Twice the cached file: 1.2 MB of package from a tiny upload.
    let pkg = a.new_package("twice").await;
    let list = json!([
        resource(&big, "a.bin", "644"),
        resource(&big, "b.bin", "644")
    ])
    .to_string();
    let r = upload(&a, &pkg, Some(&list), None).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CF-UnprocessableEntity",
        "larger than 1 MB",
    )
    .await;
    // Entries: 3 in bits + 1 resource.
    let pkg = a.new_package("many").await;
    let bits = zip_of(&[("1", b"1", 0o644), ("2", b"2", 0o644), ("3", b"3", 0o644)]);
    let list = json!([resource(&big, "a.bin", "644")]).to_string();
    let r = upload(&a, &pkg, Some(&list), Some(&bits)).await;
    assert_refused(
        &a,
        &pkg,
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CF-UnprocessableEntity",
        "more than 3 entries",
    )
    .await;
}
