//! Two controllers on one database change one app at once (issue 17,
//! item 1): no update is lost. Every read-modify-write of an app goes
//! through `Store::modify_app`, whose write only succeeds on the row
//! version it read (`lock_version`) and which otherwise reads again.

use axum::http::{Method, StatusCode};
use futures_util::future::join_all;
use serde_json::json;

use crate::api::Api;

const EACH: usize = 20;

async fn no_update_is_lost(a: &Api, b: &Api) {
    let app = a.create_app("shared").await;
    let guid = app["guid"].as_str().expect("guid").to_string();
    let env_path = format!("/v3/apps/{guid}/environment_variables");
    let app_path = format!("/v3/apps/{guid}");
    // Both controllers at once: each sets keys of its own (every PATCH
    // reads the app's env, merges one key and writes it back), and
    // renames the app now and then.
    let mut calls = Vec::new();
    for i in 0..EACH {
        for (c, side) in [(a, "A"), (b, "B")] {
            let (env_path, app_path) = (env_path.clone(), app_path.clone());
            calls.push(async move {
                let r = c
                    .call(
                        Method::PATCH,
                        &env_path,
                        Some(json!({"var": {format!("{side}_{i}"): format!("{i}")}})),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{side} {i}: {:?}", r.body);
                if i % 5 == 0 {
                    let r = c
                        .call(
                            Method::PATCH,
                            &app_path,
                            Some(json!({"name": format!("shared-{side}-{i}")})),
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::OK, "{side} {i}: {:?}", r.body);
                }
            });
        }
    }
    join_all(calls).await;
    let r = a.call(Method::GET, &env_path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let vars = r.body["var"].as_object().expect("var");
    let missing: Vec<String> = (0..EACH)
        .flat_map(|i| [format!("A_{i}"), format!("B_{i}")])
        .filter(|k| !vars.contains_key(k))
        .collect();
    assert!(missing.is_empty(), "lost updates: {missing:?} of {vars:?}");
    assert_eq!(vars.len(), 2 * EACH, "{vars:?}");
    // Each write counted once: the row's version is the number of writes.
    let stored = a.ctx.store.app(&guid).await.expect("app");
    assert_eq!(stored.lock_version, (2 * EACH + 2 * EACH / 5) as i64);
    assert!(stored.name.starts_with("shared-"), "{}", stored.name);
    // A write from a stale read is refused and changes nothing.
    let mut stale = stored.clone();
    stale.lock_version -= 1;
    stale.name = "stale".into();
    let e = b.ctx.store.update_app(&stale).await.expect_err("stale");
    assert!(
        matches!(e, cloud_controller::store::StoreError::Stale("App")),
        "{e}"
    );
    let now = a.ctx.store.app(&guid).await.expect("app");
    assert_eq!(
        (now.name, now.lock_version),
        (stored.name, stored.lock_version)
    );

    // The web process: one controller scales it step by step while the
    // other changes its health check step by step; both end at their last
    // step (a write from a stale read would put the other's field back).
    let web = a.ctx.store.web_process(&guid).await.expect("web");
    let scale = format!("/v3/processes/{}/actions/scale", web.guid);
    let update = format!("/v3/processes/{}", web.guid);
    let scaling = async {
        for i in 1..=EACH {
            let r = a
                .call(Method::POST, &scale, Some(json!({"instances": i})))
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "scale {i}: {:?}", r.body);
        }
    };
    let updating = async {
        for i in 1..=EACH {
            let r = b
                .call(
                    Method::PATCH,
                    &update,
                    Some(json!({"health_check": {"type": "http", "data": {"timeout": i, "endpoint": format!("/h{i}")}}})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "update {i}: {:?}", r.body);
        }
    };
    futures_util::future::join(scaling, updating).await;
    let p = b.ctx.store.process(&web.guid).await.expect("process");
    assert_eq!(p.instances, EACH as i64, "{p:?}");
    assert_eq!(p.health_check_timeout, Some(EACH as i64), "{p:?}");
    assert_eq!(p.health_check_endpoint, Some(format!("/h{EACH}")), "{p:?}");
    assert_eq!(p.lock_version, 2 * EACH as i64, "{p:?}");
}

#[tokio::test]
async fn two_controllers_on_postgres_lose_no_update() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let a = Api::open(Some(db.url.clone())).await;
    let b = Api::open(Some(db.url.clone())).await;
    no_update_is_lost(&a, &b).await;
}

#[tokio::test]
async fn two_controllers_on_sqlite_lose_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cc.db").display());
    let a = Api::open(Some(url.clone())).await;
    let b = Api::open(Some(url)).await;
    no_update_is_lost(&a, &b).await;
}
