//! Admin buildpacks: store positions (SQLite and Postgres) and the
//! `/v3/buildpacks` API, uploads and the signed download stagers use.

use axum::http::{Method, StatusCode};
use cloud_controller::store::{BuildpackUpdate, Store, StoreError};
use serde_json::json;

use crate::api::{Api, Resp};
use crate::support::{multipart, zip_bytes};

async fn order(s: &Store) -> Vec<(String, i64)> {
    s.buildpacks()
        .await
        .expect("list")
        .into_iter()
        .map(|b| (b.name, b.position))
        .collect()
}

fn names(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(n, p)| (n.to_string(), *p)).collect()
}

async fn positions(url: &str) {
    let s = Store::open(url).await.expect("open");
    let a = s
        .create_buildpack("a", "", 1, true, false)
        .await
        .expect("a");
    assert_eq!((a.position, a.state.as_str()), (1, "AWAITING_UPLOAD"));
    let b = s
        .create_buildpack("b", "", 1, true, false)
        .await
        .expect("b");
    s.create_buildpack("c", "host", 99, false, false)
        .await
        .expect("c");
    assert_eq!(order(&s).await, names(&[("b", 1), ("a", 2), ("c", 3)]));
    match s.create_buildpack("a", "", 1, true, false).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
    // The same name on another stack is another buildpack.
    s.create_buildpack("a", "host", 2, true, false)
        .await
        .expect("a on host");
    assert_eq!(
        order(&s).await,
        names(&[("b", 1), ("a", 2), ("a", 3), ("c", 4)])
    );
    let host_a = s
        .buildpacks()
        .await
        .expect("list")
        .into_iter()
        .find(|x| x.name == "a" && x.stack == "host")
        .expect("host a");
    s.delete_buildpack(&host_a.guid).await.expect("delete");
    let moved = s
        .update_buildpack(
            &a.guid,
            &BuildpackUpdate {
                position: Some(1),
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("move");
    assert_eq!((moved.position, moved.is_enabled()), (1, false));
    assert_eq!(order(&s).await, names(&[("a", 1), ("b", 2), ("c", 3)]));
    s.delete_buildpack(&b.guid).await.expect("delete b");
    assert_eq!(order(&s).await, names(&[("a", 1), ("c", 2)]));
    let ready = s
        .set_buildpack_bits(&a.guid, "a.zip", "ab")
        .await
        .expect("bits");
    assert_eq!(
        (
            ready.state.as_str(),
            ready.filename.as_deref(),
            ready.sha256.as_deref()
        ),
        ("READY", Some("a.zip"), Some("ab"))
    );
    assert!(matches!(
        s.delete_buildpack(&b.guid).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_buildpack_bits("nope", "x", "y").await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

#[tokio::test]
async fn store_positions_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cc.db").display());
    positions(&url).await;
}

#[tokio::test]
async fn store_positions_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    positions(&db.url).await;
}

async fn upload(a: &Api, guid: &str, data: &[u8]) -> Resp {
    let (ct, body) = multipart("bits", data);
    let auth = format!("bearer {}", a.token);
    a.send(
        Method::POST,
        &format!("/v3/buildpacks/{guid}/upload"),
        &[("authorization", &auth), ("content-type", &ct)],
        body,
    )
    .await
}

async fn create(a: &Api, body: serde_json::Value) -> Resp {
    a.call(Method::POST, "/v3/buildpacks", Some(body)).await
}

#[tokio::test]
async fn buildpacks_api() {
    let a = Api::new().await;
    let r = create(&a, json!({"name": "first", "position": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        (
            r.body["state"].as_str(),
            r.body["position"].as_i64(),
            r.body["enabled"].as_bool(),
            r.body["locked"].as_bool()
        ),
        (Some("AWAITING_UPLOAD"), Some(1), Some(true), Some(false))
    );
    assert_eq!(r.body["stack"], serde_json::Value::Null);
    let first = r.body["guid"].as_str().expect("guid").to_string();
    assert_eq!(
        r.body["links"]["upload"]["href"],
        format!("http://api.test/v3/buildpacks/{first}/upload")
    );
    let r = create(
        &a,
        json!({"name": "second", "position": 1, "stack": "host"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let second = r.body["guid"].as_str().expect("guid").to_string();

    // Validation.
    for bad in [
        json!({"name": "a b"}),
        json!({"name": "x", "position": 0}),
        json!({"name": "x", "stack": "windows"}),
        json!({"position": 1}),
    ] {
        let r = create(&a, bad.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {:?}",
            r.body
        );
    }
    let r = create(&a, json!({"name": "first"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    // Listed in position order.
    let r = a.call(Method::GET, "/v3/buildpacks", None).await;
    let listed: Vec<(&str, i64)> = r.body["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or(""),
                b["position"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    // The DEAs' built-ins follow the admin ones, in their detection order.
    assert_eq!(
        listed,
        vec![
            ("second", 1),
            ("first", 2),
            ("python", 3),
            ("nodejs", 4),
            ("java", 5),
            ("staticfile", 6),
            ("binary", 7)
        ]
    );
    let builtin_names: Vec<&str> = dea::buildpacks::BUILTINS.iter().map(|b| b.name).collect();
    assert_eq!(
        builtin_names,
        cloud_controller::api::buildpacks::BUILTIN_BUILDPACKS,
        "the controller lists the DEA's built-ins"
    );
    let python = &r.body["resources"][2];
    assert_eq!(
        (
            python["guid"].as_str(),
            python["state"].as_str(),
            python["locked"].as_bool(),
            python["enabled"].as_bool()
        ),
        (
            Some("builtin-python"),
            Some("READY"),
            Some(true),
            Some(true)
        ),
        "{python}"
    );
    let r = a
        .call(Method::GET, "/v3/buildpacks/builtin-nodejs", None)
        .await;
    assert_eq!(
        (r.status, r.body["position"].as_i64()),
        (StatusCode::OK, Some(4)),
        "{:?}",
        r.body
    );
    for (method, path) in [
        (Method::PATCH, "/v3/buildpacks/builtin-python"),
        (Method::DELETE, "/v3/buildpacks/builtin-python"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        let r = a.call(method.clone(), path, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {:?}",
            r.body
        );
    }
    let r = a
        .call(Method::GET, "/v3/buildpacks?names=binary", None)
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 1);
    let r = a
        .call(Method::GET, "/v3/buildpacks?names=first", None)
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 1);

    // Uploads: not a zip, a zip without bin/compile, then a good one.
    let r = upload(&a, &first, b"not a zip").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = upload(&a, &first, &zip_bytes(&[("README", "x")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["errors"][0]["detail"]
        .as_str()
        .unwrap_or("")
        .contains("bin/compile"));
    let zip = zip_bytes(&[
        ("bp/bin/detect", "#!/bin/sh\n"),
        ("bp/bin/compile", "#!/bin/sh\n"),
        ("bp/bin/release", "#!/bin/sh\n"),
    ]);
    let r = upload(&a, &first, &zip).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["state"].as_str(), r.body["filename"].as_str()),
        (Some("READY"), Some("app.zip"))
    );

    // Stagers get enabled, uploaded ones in order, with working signed URLs.
    let offered = cloud_controller::api::buildpacks::for_staging(&a.ctx, "host", 60).await;
    assert_eq!(offered.len(), 1, "second has no bits yet: {offered:?}");
    assert_eq!(offered[0].name, "first");
    let url = offered[0].uri.clone();
    let path = url
        .strip_prefix("http://127.0.0.1:9")
        .expect("internal url")
        .to_string();
    let r = a.send_internal(Method::GET, &path, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.raw, zip);
    assert_eq!(offered[0].sha256, cloud_controller_sha(&zip));
    let tampered = path.replace("signature=", "signature=0");
    let r = a.send_internal(Method::GET, &tampered, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Disabled buildpacks are not offered; position moves shift the others.
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/buildpacks/{first}"),
            Some(json!({"enabled": false, "position": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["position"], 1);
    assert!(
        cloud_controller::api::buildpacks::for_staging(&a.ctx, "host", 60)
            .await
            .is_empty()
    );
    let r = a
        .call(Method::GET, &format!("/v3/buildpacks/{second}"), None)
        .await;
    assert_eq!(r.body["position"], 2);

    // Locked buildpacks refuse new bits.
    a.call(
        Method::PATCH,
        &format!("/v3/buildpacks/{second}"),
        Some(json!({"locked": true})),
    )
    .await;
    let r = upload(&a, &second, &zip).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    // Delete: 202 with a job, positions close up, then 404.
    let r = a
        .call(Method::DELETE, &format!("/v3/buildpacks/{first}"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.headers.get("location").is_some());
    let r = a
        .call(Method::GET, &format!("/v3/buildpacks/{second}"), None)
        .await;
    assert_eq!(r.body["position"], 1);
    let r = a
        .call(Method::GET, &format!("/v3/buildpacks/{first}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.send(Method::GET, "/v3/buildpacks", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

fn cloud_controller_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
