//! Services over a fake OSB broker (an axum server in the test): broker
//! registration and catalog sync, plan visibility, managed instances
//! (sync, asynchronous, never finishing, failing, broker gone), bindings
//! and keys, user-provided instances, `VCAP_SERVICES` in start requests
//! and `/env`, deletes that unbind first, and CF's errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{eventually, next_start, zip_bytes, Client, Harness, WAIT};

/// What the fake broker saw and keeps.
#[derive(Default)]
struct Seen {
    /// (method, path) of every request that passed auth.
    calls: Vec<(String, String)>,
    /// Polls of `last_operation` per instance.
    polls: BTreeMap<String, u32>,
    instances: BTreeMap<String, Value>,
}

type Fake = Arc<Mutex<Seen>>;

fn check(h: &HeaderMap) -> Option<Response> {
    if h.get("x-broker-api-version").and_then(|v| v.to_str().ok()) != Some("2.17") {
        return Some(
            (
                StatusCode::PRECONDITION_FAILED,
                Json(json!({"error": "version"})),
            )
                .into_response(),
        );
    }
    // "broker:secret"
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic YnJva2VyOnNlY3JldA==") {
        return Some((StatusCode::UNAUTHORIZED, Json(json!({}))).into_response());
    }
    None
}

fn record(f: &Fake, method: &str, path: String) {
    if let Ok(mut s) = f.lock() {
        s.calls.push((method.to_string(), path));
    }
}

async fn catalog(State(f): State<Fake>, h: HeaderMap) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(&f, "GET", "/v2/catalog".into());
    let plan = |id: &str, extra: Value| {
        let mut p = json!({"id": id, "name": id.trim_start_matches("p-"), "description": format!("plan {id}")});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    Json(json!({"services": [{
        "id": "fake-svc", "name": "fakedb", "description": "a fake database", "bindable": true,
        "tags": ["fake", "sql"],
        "plans": [
            plan("p-sync", json!({})),
            plan("p-async", json!({})),
            plan("p-never", json!({"maximum_polling_duration": 2})),
            plan("p-fail", json!({})),
        ]
    }]}))
    .into_response()
}

async fn provision(
    State(f): State<Fake>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(&f, "PUT", format!("/v2/service_instances/{id}"));
    assert_eq!(
        q.get("accepts_incomplete").map(String::as_str),
        Some("true")
    );
    assert_eq!(body["context"]["platform"], "cloudfoundry", "{body}");
    assert!(body["organization_guid"].is_string() && body["space_guid"].is_string());
    let plan = body["plan_id"].as_str().unwrap_or_default().to_string();
    if let Ok(mut s) = f.lock() {
        s.instances.insert(id.clone(), body.clone());
    }
    match plan.as_str() {
        "p-sync" => (
            StatusCode::CREATED,
            Json(json!({"dashboard_url": "http://dash"})),
        )
            .into_response(),
        "p-async" | "p-never" => (
            StatusCode::ACCEPTED,
            Json(json!({"operation": format!("op-{id}")})),
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"description": "boom"})),
        )
            .into_response(),
    }
}

async fn last_operation(
    State(f): State<Fake>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(
        &f,
        "GET",
        format!("/v2/service_instances/{id}/last_operation"),
    );
    assert_eq!(q.get("operation"), Some(&format!("op-{id}")));
    let mut s = f.lock().expect("lock");
    let n = s.polls.entry(id.clone()).or_insert(0);
    *n += 1;
    let state = match q.get("plan_id").map(String::as_str) {
        Some("p-async") if *n >= 2 => "succeeded",
        _ => "in progress",
    };
    (
        [("Retry-After", "1")],
        Json(json!({"state": state, "description": "working"})),
    )
        .into_response()
}

async fn deprovision(State(f): State<Fake>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(&f, "DELETE", format!("/v2/service_instances/{id}"));
    let gone = f
        .lock()
        .map(|mut s| s.instances.remove(&id).is_none())
        .unwrap_or(true);
    if gone {
        (StatusCode::GONE, Json(json!({}))).into_response()
    } else {
        Json(json!({})).into_response()
    }
}

async fn bind(
    State(f): State<Fake>,
    h: HeaderMap,
    Path((id, bid)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(
        &f,
        "PUT",
        format!("/v2/service_instances/{id}/service_bindings/{bid}"),
    );
    if body["plan_id"] == "p-async" {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"operation": format!("bind-{bid}")})),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        Json(json!({"credentials": {
            "uri": format!("postgres://u-{bid}:pw@db.example:5432/{id}"),
            "username": format!("u-{bid}"),
            "app": body["app_guid"],
        }})),
    )
        .into_response()
}

async fn unbind(
    State(f): State<Fake>,
    h: HeaderMap,
    Path((id, bid)): Path<(String, String)>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(
        &f,
        "DELETE",
        format!("/v2/service_instances/{id}/service_bindings/{bid}"),
    );
    Json(json!({})).into_response()
}

/// The fake broker on 127.0.0.1:0: its URL, its record and its server.
async fn update_instance(
    State(f): State<Fake>,
    h: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(&f, "PATCH", format!("/v2/service_instances/{id}"));
    assert_eq!(body["previous_values"]["plan_id"], "p-sync", "{body}");
    Json(json!({})).into_response()
}

async fn binding_last_operation(
    State(f): State<Fake>,
    h: HeaderMap,
    Path((id, bid)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(
        &f,
        "GET",
        format!("/v2/service_instances/{id}/service_bindings/{bid}/last_operation"),
    );
    assert_eq!(q.get("operation"), Some(&format!("bind-{bid}")));
    Json(json!({"state": "succeeded"})).into_response()
}

async fn fetch_binding(
    State(f): State<Fake>,
    h: HeaderMap,
    Path((id, bid)): Path<(String, String)>,
) -> Response {
    if let Some(r) = check(&h) {
        return r;
    }
    record(
        &f,
        "GET",
        format!("/v2/service_instances/{id}/service_bindings/{bid}"),
    );
    Json(json!({"credentials": {"uri": format!("postgres://a-{bid}:pw@db.example:5432/{id}"), "async": true}}))
        .into_response()
}

fn fake_app(f: Fake) -> Router {
    Router::new()
        .route("/v2/catalog", get(catalog))
        .route(
            "/v2/service_instances/{id}",
            put(provision).delete(deprovision).patch(update_instance),
        )
        .route(
            "/v2/service_instances/{id}/last_operation",
            get(last_operation),
        )
        .route(
            "/v2/service_instances/{id}/service_bindings/{bid}",
            put(bind).delete(unbind).get(fetch_binding),
        )
        .route(
            "/v2/service_instances/{id}/service_bindings/{bid}/last_operation",
            get(binding_last_operation),
        )
        .with_state(f)
}

/// The fake broker on `addr` (`127.0.0.1:0`: a free port): its URL and its
/// server.
async fn serve_fake(addr: &str, f: Fake) -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let app = fake_app(f);
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, server)
}

/// The fake broker on 127.0.0.1:0: its URL, its record and its server.
async fn fake_broker() -> (String, Fake, tokio::task::JoinHandle<()>) {
    let f: Fake = Arc::default();
    let (url, server) = serve_fake("127.0.0.1:0", f.clone()).await;
    (url, f, server)
}

/// A broker that is down but whose port answers: every connection is
/// closed at once (the controller sees an unreachable broker); counts them.
async fn down_on(
    url: &str,
) -> (
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let addr = url.trim_start_matches("http://").to_string();
    let l = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = n.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (n, task)
}

fn calls(f: &Fake) -> Vec<(String, String)> {
    f.lock().map(|s| s.calls.clone()).unwrap_or_default()
}

fn job_of(r: &Value) -> String {
    r.to_string()
}

impl Client {
    /// A request that must answer 202 with a job; the job's final state.
    async fn job(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, location, b) = self.call_location(method, path, body).await;
        assert_eq!(status, 202, "{method} {path}: {b}");
        let job = location.rsplit('/').next().expect("job guid").to_string();
        eventually("job ends", WAIT, || async {
            let (_, j) = self.call("GET", &format!("/v3/jobs/{job}"), None).await;
            (j["state"] == "COMPLETE" || j["state"] == "FAILED").then_some(j)
        })
        .await
    }

    async fn call_location(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let auth = format!("bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, raw, location) = super::http_with_location(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )
        .await;
        (
            status,
            location,
            serde_json::from_slice(&raw).unwrap_or(Value::Null),
        )
    }
}

fn detail(v: &Value) -> String {
    v["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_and_user_provided_services_over_a_fake_broker() {
    let mut h = Harness::start().await;
    let c = Client::login(&h.addr).await;
    let (url, fake, broker) = fake_broker().await;
    let auth =
        |p: &str| json!({"type": "basic", "credentials": {"username": "broker", "password": p}});

    // Registering: bad input is refused before anything is stored.
    let (status, b) = c
        .call(
            "POST",
            "/v3/service_brokers",
            Some(json!({"name": "b", "url": "ftp://x", "authentication": auth("secret")})),
        )
        .await;
    assert_eq!(status, 422, "{b}");
    let j = c
        .job(
            "POST",
            "/v3/service_brokers",
            Some(json!({"name": "fake", "url": url, "authentication": auth("secret")})),
        )
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    assert_eq!(j["operation"], "service_broker.catalog.synchronize");
    let (status, b) = c
        .call(
            "POST",
            "/v3/service_brokers",
            Some(json!({"name": "fake", "url": url, "authentication": auth("secret")})),
        )
        .await;
    assert_eq!(
        (status, detail(&b).as_str()),
        (422, "Name must be unique"),
        "{b}"
    );
    // A wrong password and an unreachable broker fail their jobs with CF's errors.
    let j = c
        .job(
            "POST",
            "/v3/service_brokers",
            Some(json!({"name": "wrongpw", "url": url, "authentication": auth("nope")})),
        )
        .await;
    assert_eq!(j["state"], "FAILED", "{j}");
    assert_eq!(j["errors"][0]["code"], 270020, "{j}");
    assert!(
        j["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Status Code: 401"),
        "{j}"
    );
    let j = c
        .job("POST", "/v3/service_brokers", Some(json!({"name": "gone", "url": "http://127.0.0.1:1", "authentication": auth("secret")})))
        .await;
    assert_eq!(j["state"], "FAILED", "{j}");
    assert_eq!(
        j["errors"][0]["title"], "CF-ServiceBrokerApiUnreachable",
        "{j}"
    );
    assert_eq!(j["errors"][0]["code"], 10001, "{j}");

    // The catalog: new plans are admin-only until enabled.
    let (_, plans) = c
        .call("GET", "/v3/service_plans?service_offering_names=fakedb&include=service_offering&fields%5Bservice_offering.service_broker%5D=name,guid", None)
        .await;
    let plans = plans.clone();
    let list = plans["resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 4, "{plans}");
    assert!(
        list.iter().all(|p| p["visibility_type"] == "admin"),
        "{plans}"
    );
    assert_eq!(plans["included"]["service_offerings"][0]["name"], "fakedb");
    assert_eq!(plans["included"]["service_brokers"][0]["name"], "fake");
    let plan = |name: &str| {
        list.iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["guid"].as_str())
            .expect("plan")
            .to_string()
    };
    for p in ["sync", "async", "never", "fail"] {
        let (status, v) = c
            .call(
                "POST",
                &format!("/v3/service_plans/{}/visibility", plan(p)),
                Some(json!({"type": "public"})),
            )
            .await;
        assert_eq!((status, v["type"].as_str()), (200, Some("public")), "{v}");
    }

    let (space, app, pg) = c.app_with_package("svcapp", json!({})).await;
    c.upload(&pg, &zip_bytes(&[("app.py", "print(1)")])).await;
    c.stage_current(&app, &pg).await;
    let create = |name: &str, p: &str| {
        json!({"type": "managed", "name": name, "relationships": {
            "space": {"data": {"guid": space}}, "service_plan": {"data": {"guid": plan(p)}}},
            "parameters": {"size": 1}, "tags": ["mine"]})
    };

    // A synchronous provision.
    let j = c
        .job("POST", "/v3/service_instances", Some(create("db", "sync")))
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    let (_, list) = c.call("GET", &format!("/v3/service_instances?names=db&space_guids={space}&fields%5Bservice_plan%5D=guid,name,relationships.service_offering&fields%5Bservice_plan.service_offering%5D=guid,name,relationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=guid,name"), None).await;
    let db = list["resources"][0].clone();
    assert_eq!(db["last_operation"]["type"], "create", "{db}");
    assert_eq!(db["last_operation"]["state"], "succeeded", "{db}");
    assert_eq!(db["dashboard_url"], "http://dash");
    assert_eq!(
        list["included"]["service_plans"][0]["name"], "sync",
        "{list}"
    );
    assert!(
        list["included"]["service_offerings"][0]["relationships"]["service_broker"]["data"]["guid"]
            .is_string(),
        "{list}"
    );
    assert_eq!(
        list["included"]["service_brokers"][0]["name"], "fake",
        "{list}"
    );
    let db_guid = db["guid"].as_str().expect("guid").to_string();
    let (_, params) = c
        .call(
            "GET",
            &format!("/v3/service_instances/{db_guid}/parameters"),
            None,
        )
        .await;
    assert_eq!(params, json!({"size": 1}));
    // Updates: parameters through the broker (a job), name and tags at
    // once, a plan change only where the plan allows it.
    let j = c
        .job(
            "PATCH",
            &format!("/v3/service_instances/{db_guid}"),
            Some(json!({"parameters": {"size": 2}})),
        )
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    assert_eq!(j["operation"], "service_instance.update");
    let (_, params) = c
        .call(
            "GET",
            &format!("/v3/service_instances/{db_guid}/parameters"),
            None,
        )
        .await;
    assert_eq!(params, json!({"size": 2}));
    let (status, v) = c
        .call(
            "PATCH",
            &format!("/v3/service_instances/{db_guid}"),
            Some(json!({"name": "db-renamed", "tags": ["other"]})),
        )
        .await;
    assert_eq!(
        (status, v["name"].as_str()),
        (200, Some("db-renamed")),
        "{v}"
    );
    let (status, _) = c
        .call(
            "PATCH",
            &format!("/v3/service_instances/{db_guid}"),
            Some(json!({"name": "db", "tags": ["mine"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, b) = c
        .call(
            "PATCH",
            &format!("/v3/service_instances/{db_guid}"),
            Some(json!({"relationships": {"service_plan": {"data": {"guid": plan("async")}}}})),
        )
        .await;
    assert_eq!(status, 422, "{b}");
    assert!(
        detail(&b).contains("does not support changing plans"),
        "{b}"
    );

    // Bad input: CF's answers, nothing stored.
    let (status, b) = c
        .call("POST", "/v3/service_instances", Some(create("db", "sync")))
        .await;
    assert_eq!(
        (status, detail(&b).as_str()),
        (422, "The service instance name is taken: db."),
        "{b}"
    );
    let mut bad_plan = create("x", "sync");
    bad_plan["relationships"]["service_plan"]["data"]["guid"] = json!("nope");
    let (status, b) = c
        .call("POST", "/v3/service_instances", Some(bad_plan))
        .await;
    assert_eq!(status, 422, "{b}");
    assert!(detail(&b).starts_with("Invalid service plan."), "{b}");
    let mut bad_params = create("x", "sync");
    bad_params["parameters"] = json!([1]);
    let (status, b) = c
        .call("POST", "/v3/service_instances", Some(bad_params))
        .await;
    assert_eq!(
        (status, detail(&b).as_str()),
        (422, "Parameters must be an object"),
        "{b}"
    );
    let (_, all) = c
        .call(
            "GET",
            &format!("/v3/service_instances?space_guids={space}"),
            None,
        )
        .await;
    assert_eq!(all["pagination"]["total_results"], 1, "{all}");

    // Asynchronous: POLLING, then COMPLETE; one operation at a time.
    let (status, loc, _) = c
        .call_location(
            "POST",
            "/v3/service_instances",
            Some(create("slow", "async")),
        )
        .await;
    assert_eq!(status, 202);
    let (_, slow) = c
        .call(
            "GET",
            &format!("/v3/service_instances?names=slow&space_guids={space}"),
            None,
        )
        .await;
    let slow_guid = slow["resources"][0]["guid"]
        .as_str()
        .expect("guid")
        .to_string();
    let (status, b) = c
        .call(
            "DELETE",
            &format!("/v3/service_instances/{slow_guid}"),
            None,
        )
        .await;
    assert_eq!(
        (status, detail(&b).as_str()),
        (
            422,
            "There is an operation in progress for the service instance."
        ),
        "{b}"
    );
    let job = loc.rsplit('/').next().expect("job").to_string();
    eventually("job POLLING", WAIT, || async {
        let (_, j) = c.call("GET", &format!("/v3/jobs/{job}"), None).await;
        (j["state"] == "POLLING" || j["state"] == "COMPLETE").then_some(())
    })
    .await;
    let j = eventually("job COMPLETE", WAIT, || async {
        let (_, j) = c.call("GET", &format!("/v3/jobs/{job}"), None).await;
        (j["state"] == "COMPLETE").then_some(j)
    })
    .await;
    assert!(j["errors"].as_array().is_some_and(Vec::is_empty), "{j}");

    // A broker restarted mid-provision: the controller polls on through
    // the outage and the operation completes.
    let (status, loc, _) = c
        .call_location(
            "POST",
            "/v3/service_instances",
            Some(create("restarted", "async")),
        )
        .await;
    assert_eq!(status, 202);
    let job = loc.rsplit('/').next().expect("job").to_string();
    eventually("provision sent", WAIT, || async {
        let (_, j) = c.call("GET", &format!("/v3/jobs/{job}"), None).await;
        (j["state"] == "POLLING").then_some(())
    })
    .await;
    broker.abort();
    let _ = broker.await;
    let (tries, down) = down_on(&url).await;
    eventually("a poll while the broker is down", WAIT, || async {
        (tries.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let (_, j) = c.call("GET", &format!("/v3/jobs/{job}"), None).await;
    assert_eq!(j["state"], "POLLING", "{j}");
    down.abort();
    let _ = down.await;
    let (_, broker) = serve_fake(url.trim_start_matches("http://"), fake.clone()).await;
    let j = eventually("job ended after the restart", WAIT, || async {
        let (_, j) = c.call("GET", &format!("/v3/jobs/{job}"), None).await;
        (j["state"] != "POLLING").then_some(j)
    })
    .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");

    // Never finishing: fails after the plan's maximum polling duration and
    // is deleted at the broker (orphan mitigation).
    let j = c
        .job(
            "POST",
            "/v3/service_instances",
            Some(create("never", "never")),
        )
        .await;
    assert_eq!(j["state"], "FAILED", "{j}");
    assert_eq!(j["errors"][0]["code"], 10009, "{j}");
    assert!(
        detail(&json!({"errors": j["errors"]}))
            .contains("failed to provision within the required time"),
        "{j}"
    );
    let (_, never) = c
        .call(
            "GET",
            &format!("/v3/service_instances?names=never&space_guids={space}"),
            None,
        )
        .await;
    let never_guid = never["resources"][0]["guid"]
        .as_str()
        .expect("guid")
        .to_string();
    assert_eq!(never["resources"][0]["last_operation"]["state"], "failed");
    eventually("orphan mitigation", WAIT, || async {
        calls(&fake)
            .contains(&(
                "DELETE".into(),
                format!("/v2/service_instances/{never_guid}"),
            ))
            .then_some(())
    })
    .await;

    // A broker error: FAILED with CF's 10009 text, mitigated, "create failed".
    let j = c
        .job(
            "POST",
            "/v3/service_instances",
            Some(create("broken", "fail")),
        )
        .await;
    assert_eq!(j["state"], "FAILED", "{j}");
    let d = j["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(d.starts_with("provision could not be completed: The service broker rejected the request. Status Code: 500"), "{d}");
    let (_, broken) = c
        .call(
            "GET",
            &format!("/v3/service_instances?names=broken&space_guids={space}"),
            None,
        )
        .await;
    let broken_guid = broken["resources"][0]["guid"]
        .as_str()
        .expect("guid")
        .to_string();
    assert_eq!(broken["resources"][0]["last_operation"]["state"], "failed");
    eventually("orphan mitigation", WAIT, || async {
        calls(&fake)
            .contains(&(
                "DELETE".into(),
                format!("/v2/service_instances/{broken_guid}"),
            ))
            .then_some(())
    })
    .await;
    // A failed create may be deleted (its broker says 410: gone).
    let j = c
        .job(
            "DELETE",
            &format!("/v3/service_instances/{broken_guid}"),
            None,
        )
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");

    // Bindings: an app binding through the broker, twice refused; a key.
    let bind_body = |si: &str| json!({"type": "app", "relationships": {"service_instance": {"data": {"guid": si}}, "app": {"data": {"guid": app}}}});
    let j = c
        .job(
            "POST",
            "/v3/service_credential_bindings",
            Some(bind_body(&db_guid)),
        )
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    let (status, b) = c
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(bind_body(&db_guid)),
        )
        .await;
    assert_eq!(
        (status, detail(&b).as_str()),
        (422, "The app is already bound to the service instance"),
        "{b}"
    );
    let (status, b) = c
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(bind_body(&never_guid)),
        )
        .await;
    assert_eq!(status, 422, "{b}");
    let key = json!({"type": "key", "name": "k1", "relationships": {"service_instance": {"data": {"guid": db_guid}}}});
    let j = c
        .job("POST", "/v3/service_credential_bindings", Some(key.clone()))
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    let (status, b) = c
        .call("POST", "/v3/service_credential_bindings", Some(key))
        .await;
    assert_eq!(status, 422, "{b}");
    assert!(
        detail(&b).contains("Key binding names must be unique"),
        "{b}"
    );

    // A user-provided instance: 201, no broker; its credentials, then bound.
    let (status, ups) = c
        .call(
            "POST",
            "/v3/service_instances",
            Some(json!({"type": "user-provided", "name": "ups",
            "relationships": {"space": {"data": {"guid": space}}},
            "credentials": {"uri": "mysql://a:b@h:3306/d"}, "tags": ["t1"]})),
        )
        .await;
    assert_eq!(status, 201, "{ups}");
    let ups_guid = ups["guid"].as_str().expect("guid").to_string();
    let (_, creds) = c
        .call(
            "GET",
            &format!("/v3/service_instances/{ups_guid}/credentials"),
            None,
        )
        .await;
    assert_eq!(creds, json!({"uri": "mysql://a:b@h:3306/d"}));
    let (status, b) = c.call("POST", "/v3/service_credential_bindings", Some(json!({"type": "key", "name": "k", "relationships": {"service_instance": {"data": {"guid": ups_guid}}}}))).await;
    assert_eq!(status, 422, "{b}");
    assert!(
        detail(&b).contains("not supported for user-provided service instances"),
        "{b}"
    );
    let (status, b) = c
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(bind_body(&ups_guid)),
        )
        .await;
    assert_eq!(status, 201, "{b}");

    // The app's environment: VCAP_SERVICES as CF shapes it, in /env and in
    // every start request (DATABASE_URL is the DEA's, from it).
    let (_, env) = c.call("GET", &format!("/v3/apps/{app}/env"), None).await;
    let vcap = env["system_env_json"]["VCAP_SERVICES"].clone();
    let fake_entry = &vcap["fakedb"][0];
    assert_eq!(fake_entry["name"], "db", "{vcap}");
    assert_eq!(fake_entry["label"], "fakedb");
    assert_eq!(fake_entry["plan"], "sync");
    assert_eq!(fake_entry["tags"], json!(["fake", "sql", "mine"]));
    assert_eq!(fake_entry["instance_guid"], db_guid.as_str());
    assert!(
        fake_entry["credentials"]["uri"]
            .as_str()
            .unwrap_or_default()
            .starts_with("postgres://"),
        "{vcap}"
    );
    assert_eq!(fake_entry["credentials"]["app"], app.as_str());
    assert_eq!(
        vcap["user-provided"][0]["credentials"]["uri"],
        "mysql://a:b@h:3306/d"
    );
    assert_eq!(vcap["user-provided"][0]["label"], "user-provided");
    assert_eq!(
        proto::vcap::database_url(&vcap)
            .as_deref()
            .map(|u| u.starts_with("postgres://")),
        Some(true)
    );
    let (status, _) = c
        .call("POST", &format!("/v3/apps/{app}/actions/start"), None)
        .await;
    assert_eq!(status, 200);
    let start = next_start(&mut h.rx).await;
    assert_eq!(
        start.vcap_services.as_ref(),
        Some(&vcap),
        "{:?}",
        start.vcap_services
    );

    // An asynchronous bind: POLLING, then the credentials fetched.
    let j = c
        .job(
            "POST",
            "/v3/service_credential_bindings",
            Some(bind_body(&slow_guid)),
        )
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    let (_, list) = c
        .call(
            "GET",
            &format!("/v3/service_credential_bindings?service_instance_guids={slow_guid}"),
            None,
        )
        .await;
    let bg = list["resources"][0]["guid"]
        .as_str()
        .expect("binding")
        .to_string();
    let (_, d) = c
        .call(
            "GET",
            &format!("/v3/service_credential_bindings/{bg}/details"),
            None,
        )
        .await;
    assert_eq!(d["credentials"]["async"], true, "{d}");

    // Deleting an instance unbinds first (the app binding and the key),
    // then deprovisions.
    let before = calls(&fake).len();
    let j = c
        .job("DELETE", &format!("/v3/service_instances/{db_guid}"), None)
        .await;
    assert_eq!(j["state"], "COMPLETE", "{j}");
    let after: Vec<(String, String)> = calls(&fake).split_off(before);
    let unbinds = after
        .iter()
        .filter(|(m, p)| m == "DELETE" && p.contains("/service_bindings/"))
        .count();
    assert_eq!(unbinds, 2, "{after:?}");
    assert_eq!(
        after.last().map(|(m, p)| (m.as_str(), p.as_str())),
        Some((
            "DELETE",
            format!("/v2/service_instances/{db_guid}").as_str()
        )),
        "{after:?}"
    );
    let (status, _) = c
        .call("GET", &format!("/v3/service_instances/{db_guid}"), None)
        .await;
    assert_eq!(status, 404);
    let (_, env) = c.call("GET", &format!("/v3/apps/{app}/env"), None).await;
    assert!(
        env["system_env_json"]["VCAP_SERVICES"]["fakedb"]
            .as_array()
            .is_some_and(|l| l.iter().all(|e| e["instance_guid"] != db_guid.as_str())),
        "{env}"
    );

    // A broker that stopped: the create job fails with CF's words and the
    // instance stays, "create failed".
    broker.abort();
    let _ = broker.await;
    let j = c
        .job(
            "POST",
            "/v3/service_instances",
            Some(create("late", "sync")),
        )
        .await;
    assert_eq!(j["state"], "FAILED", "{j}");
    assert_eq!(
        j["errors"][0]["detail"],
        "provision could not be completed: The service broker could not be reached",
        "{}",
        job_of(&j)
    );
    let (_, late) = c
        .call(
            "GET",
            &format!("/v3/service_instances?names=late&space_guids={space}"),
            None,
        )
        .await;
    assert_eq!(late["resources"][0]["last_operation"]["type"], "create");
    assert_eq!(late["resources"][0]["last_operation"]["state"], "failed");
    h.finish().await;
}
