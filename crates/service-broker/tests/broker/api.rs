use serde_json::json;
use service_broker::{Kind, Options};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_version_and_catalog() {
    let tb = TestBroker::start().await;
    let (st, body) = tb.raw("GET", "/v2/catalog", None, None, Some("2.17")).await;
    assert_eq!(st, 401, "{body}");
    assert!(body["description"].is_string());
    let (st, _) = tb
        .raw(
            "GET",
            "/v2/catalog",
            None,
            Some(("broker", "wrong")),
            Some("2.17"),
        )
        .await;
    assert_eq!(st, 401);
    let (st, body) = tb
        .raw("GET", "/v2/catalog", None, Some(("broker", PASSWORD)), None)
        .await;
    assert_eq!(st, 412, "{body}");
    let (st, _) = tb
        .raw(
            "GET",
            "/v2/catalog",
            None,
            Some(("broker", PASSWORD)),
            Some("1.0"),
        )
        .await;
    assert_eq!(st, 412);
    // Auth before anything else, on every endpoint.
    let (st, _) = tb
        .raw(
            "PUT",
            "/v2/service_instances/x",
            Some(json!({})),
            None,
            None,
        )
        .await;
    assert_eq!(st, 401);

    let (st, cat) = tb.call("GET", "/v2/catalog", None).await;
    assert_eq!(st, 200);
    let services = cat["services"].as_array().expect("services");
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["postgresql", "mysql", "redis", "rabbitmq"]);
    for svc in services {
        let kind = Kind::from_name(svc["name"].as_str().expect("name")).expect("kind");
        assert_eq!(svc["id"], kind.service_id());
        assert_eq!(svc["bindable"], true);
        assert_eq!(svc["plan_updateable"], false);
        assert!(svc["tags"]
            .as_array()
            .expect("tags")
            .contains(&json!(kind.name())));
        let plans: Vec<&str> = svc["plans"]
            .as_array()
            .expect("plans")
            .iter()
            .map(|p| p["name"].as_str().expect("plan name"))
            .collect();
        assert_eq!(plans, ["small", "shared"]);
        assert_eq!(svc["plans"][0]["id"], plan_id(kind, "small"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests() {
    let tb = TestBroker::start().await;
    let body = |service: &str, plan: &str| json!({"service_id": service, "plan_id": plan, "organization_guid": "o", "space_guid": "s"});
    let id = new_id();
    let (st, b) = tb
        .call(
            "PUT",
            &format!("/v2/service_instances/{id}"),
            Some(body("nope", "nope")),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(
        b["description"]
            .as_str()
            .expect("description")
            .contains("service_id"),
        "{b}"
    );
    let (st, b) = tb
        .call(
            "PUT",
            &format!("/v2/service_instances/{id}"),
            Some(body(Kind::Redis.service_id(), "nope")),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        b["description"]
            .as_str()
            .expect("description")
            .contains("plan_id"),
        "{b}"
    );
    let (st, _) = tb
        .call(
            "PUT",
            "/v2/service_instances/bad%20id",
            Some(body(
                Kind::Redis.service_id(),
                &plan_id(Kind::Redis, "small"),
            )),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = tb
        .call(
            "PUT",
            &format!("/v2/service_instances/{id}"),
            Some(json!({"service_id": Kind::Redis.service_id()})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = tb
        .raw(
            "PUT",
            &format!("/v2/service_instances/{id}"),
            None,
            Some(("broker", PASSWORD)),
            Some("2.17"),
        )
        .await;
    assert_eq!(st, 400);
    // Bodies are bounded.
    let huge = json!({"service_id": "x".repeat(200_000)});
    let (st, _) = tb
        .call("PUT", &format!("/v2/service_instances/{id}"), Some(huge))
        .await;
    assert_eq!(st, 413);
    // Unknown instance and binding.
    assert_eq!(
        tb.call(
            "GET",
            &format!("/v2/service_instances/{id}/last_operation"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(tb.deprovision(Kind::Redis, &id).await.0, 410);
    assert_eq!(tb.unbind(Kind::Redis, &id, &new_id()).await.0, 410);
    assert_eq!(tb.bind(Kind::Redis, &id, &new_id()).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_provision_and_bind() {
    let tb = TestBroker::start().await;
    let mut cleanup = Cleanup::new();
    let k = Kind::Redis;
    let iid = new_id();
    cleanup.instance(k, &iid);
    assert_eq!(tb.provision(k, &iid, false).await.0, 201);
    assert_eq!(tb.provision(k, &iid, false).await.0, 200);
    let other_plan = json!({
        "service_id": k.service_id(), "plan_id": plan_id(k, "shared"),
        "organization_guid": "org-1", "space_guid": "space-1",
    });
    assert_eq!(
        tb.call(
            "PUT",
            &format!("/v2/service_instances/{iid}"),
            Some(other_plan)
        )
        .await
        .0,
        409
    );
    let (st, got) = tb
        .call("GET", &format!("/v2/service_instances/{iid}"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(got["plan_id"], plan_id(k, "small"));

    let bid = new_id();
    cleanup.binding(&iid, &bid);
    let (st, first) = tb.bind(k, &iid, &bid).await;
    assert_eq!(st, 201);
    let (st, again) = tb.bind(k, &iid, &bid).await;
    assert_eq!(st, 200);
    assert_eq!(first, again);
    let (st, fetched) = tb
        .call(
            "GET",
            &format!("/v2/service_instances/{iid}/service_bindings/{bid}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(fetched["credentials"], first["credentials"]);
    let other_app =
        json!({"service_id": k.service_id(), "plan_id": plan_id(k, "small"), "app_guid": "app-2"});
    let (st, _) = tb
        .call(
            "PUT",
            &format!("/v2/service_instances/{iid}/service_bindings/{bid}"),
            Some(other_app),
        )
        .await;
    assert_eq!(st, 409);
    assert_eq!(tb.deprovision(k, &iid).await.0, 200);
    // The binding went with the instance.
    assert_eq!(
        tb.call(
            "GET",
            &format!("/v2/service_instances/{iid}/service_bindings/{bid}"),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_provision_survives_a_restart() {
    // This broker accepts the provision and "dies" before doing it.
    let mut tb = TestBroker::start_with(Options {
        hold_async_work: true,
    })
    .await;
    let mut cleanup = Cleanup::new();
    let k = Kind::Postgresql;
    let iid = new_id();
    cleanup.instance(k, &iid);
    let (st, body) = tb.provision(k, &iid, true).await;
    assert_eq!(st, 202, "{body}");
    let op = body["operation"].as_str().expect("operation").to_string();
    let (st, again) = tb.provision(k, &iid, true).await;
    assert_eq!((st, again["operation"].as_str()), (202, Some(op.as_str())));
    assert_eq!(
        tb.provision(k, &iid, false).await.0,
        422,
        "a synchronous repeat while in progress"
    );
    let poll = format!("/v2/service_instances/{iid}/last_operation?operation={op}");
    let (st, last) = tb.call("GET", &poll, None).await;
    assert_eq!((st, last["state"].as_str()), (200, Some("in progress")));
    assert_eq!(tb.bind(k, &iid, &new_id()).await.0, 422);

    tb.restart(Options::default()).await;
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let state = loop {
        let (_, last) = tb.call("GET", &poll, None).await;
        let state = last["state"].as_str().unwrap_or("").to_string();
        if state != "in progress" {
            break state;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "provision did not finish in 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(state, "succeeded");
    let bid = new_id();
    cleanup.binding(&iid, &bid);
    let (st, body) = tb.bind(k, &iid, &bid).await;
    assert_eq!(st, 201, "{body}");
    let c = creds(&body, "postgres");
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(s(&c, "uri"))
        .await
        .expect("connects");
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .expect("query");
    conn.close().await.expect("close");
    assert_eq!(tb.deprovision(k, &iid).await.0, 200);
    assert_eq!(tb.call("GET", &poll, None).await.0, 410);
}
