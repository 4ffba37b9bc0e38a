//! Orgs, spaces, roles, domains and quotas through the API: CF's rules and
//! error texts.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{Api, Resp};

fn detail(r: &Resp) -> &str {
    r.body["errors"][0]["detail"].as_str().unwrap_or_default()
}

async fn post(a: &Api, path: &str, body: Value) -> Resp {
    a.call(Method::POST, path, Some(body)).await
}

async fn org(a: &Api, name: &str) -> String {
    let r = post(a, "/v3/organizations", json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["guid"].as_str().expect("guid").to_string()
}

async fn space(a: &Api, org: &str, name: &str) -> String {
    let r = post(
        a,
        "/v3/spaces",
        json!({"name": name, "relationships": {"organization": {"data": {"guid": org}}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["guid"].as_str().expect("guid").to_string()
}

async fn role(a: &Api, kind: &str, user: &str, rel: Value) -> Resp {
    let mut r = rel;
    r["user"] = json!({"data": {"username": user, "origin": "uaa"}});
    post(a, "/v3/roles", json!({"type": kind, "relationships": r})).await
}

#[tokio::test]
async fn orgs_spaces_and_roles_follow_cf_rules() {
    let a = Api::new().await;
    let o = org(&a, "acme").await;
    let again = post(&a, "/v3/organizations", json!({"name": "acme"})).await;
    assert_eq!(
        (again.status, detail(&again)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Organization 'acme' already exists."
        )
    );
    let s = space(&a, &o, "web").await;
    let dup = post(
        &a,
        "/v3/spaces",
        json!({"name": "web", "relationships": {"organization": {"data": {"guid": o}}}}),
    )
    .await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    // New orgs get the default quota.
    let got = a
        .call(Method::GET, &format!("/v3/organizations/{o}"), None)
        .await;
    assert!(
        got.body["relationships"]["quota"]["data"]["guid"].is_string(),
        "{:?}",
        got.body
    );

    a.ctx.store.create_user("ann", "pw").await.expect("user");
    let space_rel = json!({"space": {"data": {"guid": s}}});
    let org_rel = json!({"organization": {"data": {"guid": o}}});
    let r = role(&a, "space_developer", "ann", space_rel.clone()).await;
    assert_eq!(
        (r.status, detail(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "Users cannot be assigned roles in a space if they do not have a role in that space's organization.")
    );
    let ou = role(&a, "organization_user", "ann", org_rel.clone()).await;
    assert_eq!(ou.status, StatusCode::CREATED, "{:?}", ou.body);
    assert_eq!(ou.body["relationships"]["space"]["data"], Value::Null);
    let r = role(&a, "organization_user", "ann", org_rel.clone()).await;
    assert_eq!(
        detail(&r),
        "User 'ann' already has 'organization_user' role in organization 'acme'."
    );
    let sd = role(&a, "space_developer", "ann", space_rel.clone()).await;
    assert_eq!(sd.status, StatusCode::CREATED);
    let r = role(&a, "space_developer", "ann", space_rel).await;
    assert_eq!(
        detail(&r),
        "User 'ann' already has 'space_developer' role in space 'web'."
    );
    let r = role(&a, "space_wizard", "ann", org_rel).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(&a, "/v3/roles", json!({"type": "organization_user", "relationships": {"user": {"data": {"username": "nobody"}}, "organization": {"data": {"guid": o}}}})).await;
    assert_eq!(
        detail(&r),
        "No user exists with the username 'nobody' and origin 'uaa'."
    );
    // The org user role stays while space roles remain.
    let ou_guid = ou.body["guid"].as_str().expect("role");
    let r = a
        .call(Method::DELETE, &format!("/v3/roles/{ou_guid}"), None)
        .await;
    assert_eq!(
        detail(&r),
        "Cannot delete organization_user role while user has roles in spaces in that organization."
    );
    // Roles list with included users.
    let r = a
        .call(
            Method::GET,
            &format!("/v3/roles?organization_guids={o}&include=user"),
            None,
        )
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 2);
    assert_eq!(r.body["included"]["users"][0]["username"], "ann");

    // An org with a space needs a recursive delete.
    let app = post(
        &a,
        "/v3/apps",
        json!({"name": "app", "relationships": {"space": {"data": {"guid": s}}}}),
    )
    .await;
    assert_eq!(app.status, StatusCode::CREATED);
    let r = a
        .call(Method::DELETE, &format!("/v3/organizations/{o}"), None)
        .await;
    assert_eq!(
        (r.status, detail(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "Resource inside organization 'acme' must first be deleted, or specify recursive delete.")
    );
    let r = a
        .call(
            Method::DELETE,
            &format!("/v3/organizations/{o}?recursive=true"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    for path in [
        format!("/v3/organizations/{o}"),
        format!("/v3/spaces/{s}"),
        format!("/v3/apps/{}", app.body["guid"].as_str().unwrap_or_default()),
    ] {
        assert_eq!(
            a.call(Method::GET, &path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        a.call(Method::GET, &format!("/v3/roles/{ou_guid}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The system org stays.
    let sys = a
        .call(Method::GET, "/v3/organizations?names=system", None)
        .await;
    let sys = sys.body["resources"][0]["guid"]
        .as_str()
        .expect("system org")
        .to_string();
    let r = a
        .call(
            Method::DELETE,
            &format!("/v3/organizations/{sys}?recursive=true"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Audit events name the acting user.
    let ev = a
        .call(
            Method::GET,
            "/v3/audit_events?types=audit.user.space_developer_add",
            None,
        )
        .await;
    assert_eq!(ev.body["resources"][0]["actor"]["name"], "admin");
    assert_eq!(ev.body["resources"][0]["target"]["name"], "ann");
}

#[tokio::test]
async fn user_org_creation_and_private_domains() {
    let a = Api::new().await;
    a.ctx.store.create_user("bo", "pw").await.expect("user");
    let bo = a.login("bo", "pw").await.body["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/organizations",
            Some(json!({"name": "bo-org"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .call(
            Method::PATCH,
            "/v3/feature_flags/user_org_creation",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.body["enabled"], true);
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/organizations",
            Some(json!({"name": "bo-org"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let o = r.body["guid"].as_str().expect("org").to_string();
    // The creator manages it: a space, a private domain.
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/spaces",
            Some(json!({"name": "s", "relationships": {"organization": {"data": {"guid": o}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let dom = |name: &str| json!({"name": name, "relationships": {"organization": {"data": {"guid": o}}}});
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/domains",
            Some(dom("bo.example.com")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["relationships"]["organization"]["data"]["guid"],
        o.as_str()
    );
    // Not under the system domain, nor another org's domain.
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/domains",
            Some(dom("api.sys.localhost")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        detail(&r).contains("is already reserved by another domain"),
        "{}",
        detail(&r)
    );
    // Shared domains are the admin's.
    let r = a
        .call_as(
            &bo,
            Method::POST,
            "/v3/domains",
            Some(json!({"name": "shared.example.com"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .call(
            Method::POST,
            "/v3/domains",
            Some(json!({"name": "shared.example.com"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = a
        .call(Method::POST, "/v3/domains", Some(json!({"name": "nodot"})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // bo sees its domain and the shared ones, not the system domain.
    let r = a.call_as(&bo, Method::GET, "/v3/domains", None).await;
    let names: Vec<&str> = r.body["resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"bo.example.com") && names.contains(&"localhost"),
        "{names:?}"
    );
    assert!(!names.contains(&"sys.localhost"), "{names:?}");
}

#[tokio::test]
async fn quotas_refuse_and_change_nothing() {
    let a = Api::new().await;
    let o = org(&a, "q").await;
    let s = space(&a, &o, "s").await;
    let q = post(&a, "/v3/organization_quotas", json!({"name": "tiny", "apps": {"total_memory_in_mb": 512, "total_instances": 10}, "routes": {"total_routes": 1}})).await;
    assert_eq!(q.status, StatusCode::CREATED, "{:?}", q.body);
    assert_eq!(q.body["apps"]["total_memory_in_mb"], 512);
    assert_eq!(q.body["apps"]["per_process_memory_in_mb"], Value::Null);
    let qg = q.body["guid"].as_str().expect("quota").to_string();
    let dup = post(&a, "/v3/organization_quotas", json!({"name": "tiny"})).await;
    assert_eq!(detail(&dup), "Organization Quota 'tiny' already exists.");
    let r = post(
        &a,
        &format!("/v3/organization_quotas/{qg}/relationships/organizations"),
        json!({"data": [{"guid": o}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Routes: one fits, the second is over.
    let dom = a
        .call(Method::GET, "/v3/domains?names=localhost", None)
        .await;
    let dom = dom.body["resources"][0]["guid"]
        .as_str()
        .expect("domain")
        .to_string();
    let route = |h: &str| json!({"host": h, "relationships": {"domain": {"data": {"guid": dom}}, "space": {"data": {"guid": s}}}});
    assert_eq!(
        post(&a, "/v3/routes", route("one")).await.status,
        StatusCode::CREATED
    );
    let r = post(&a, "/v3/routes", route("two")).await;
    assert_eq!(
        (r.status, detail(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "routes quota_exceeded")
    );
    // Memory: scaling a stopped app past the quota is fine (it runs
    // nothing); the per-process limit of a space quota is not.
    let app = post(
        &a,
        "/v3/apps",
        json!({"name": "m", "relationships": {"space": {"data": {"guid": s}}}}),
    )
    .await;
    let g = app.body["guid"].as_str().expect("app").to_string();
    let sq = post(&a, "/v3/space_quotas", json!({"name": "sq", "apps": {"per_process_memory_in_mb": 128}, "relationships": {"organization": {"data": {"guid": o}}, "spaces": {"data": [{"guid": s}]}}})).await;
    assert_eq!(sq.status, StatusCode::CREATED, "{:?}", sq.body);
    let scale = |n: u32, mem: u32| json!({"instances": n, "memory_in_mb": mem});
    let path = format!("/v3/apps/{g}/processes/web/actions/scale");
    let r = post(&a, &path, scale(1, 256)).await;
    assert_eq!(
        (r.status, detail(&r)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "memory space_instance_limit_exceeded"
        )
    );
    let p = a
        .call(Method::GET, &format!("/v3/apps/{g}/processes/web"), None)
        .await;
    // Unchanged: the controller's default (`default_app_memory_mb`, 1G).
    assert_eq!(p.body["memory_in_mb"], 1024, "unchanged");
    let r = post(&a, &path, scale(1, 128)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Started apps count: 5 × 128 MB > 512 MB.
    let mut app_row = a.ctx.store.app(&g).await.expect("app");
    app_row.state = cloud_controller::store::AppState::Started;
    a.ctx.store.update_app(&app_row).await.expect("started");
    let r = post(&a, &path, scale(5, 128)).await;
    assert_eq!(
        (r.status, detail(&r)),
        (StatusCode::UNPROCESSABLE_ENTITY, "memory quota_exceeded")
    );
    let p = a
        .call(Method::GET, &format!("/v3/apps/{g}/processes/web"), None)
        .await;
    assert_eq!(p.body["instances"], 1, "unchanged");
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/organization_quotas/{qg}"),
            Some(json!({"apps": {"total_memory_in_mb": 1024}})),
        )
        .await;
    assert_eq!(r.body["apps"]["total_memory_in_mb"], 1024);
    let r = post(&a, &path, scale(5, 128)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    // A quota in use is not deleted.
    let r = a
        .call(
            Method::DELETE,
            &format!("/v3/organization_quotas/{qg}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let a = Api::new().await;
    let space = a.space_guid().await;
    let app =
        |name: String| json!({"name": name, "relationships": {"space": {"data": {"guid": space}}}});
    // A 1.9 MB name (it used to be accepted and then broke `cf apps`).
    let r = post(&a, "/v3/apps", app("n".repeat(1_900_000))).await;
    assert_eq!(
        (r.status, detail(&r)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Name is too long (maximum is 255 characters)"
        )
    );
    let r = post(&a, "/v3/apps", app("a\u{7}b".into())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    for n in ["b-app", "a-app", "c-app"] {
        assert_eq!(
            post(&a, "/v3/apps", app(n.into())).await.status,
            StatusCode::CREATED
        );
    }
    // Sorted by name as `cf apps` asks; unknown parameters and orders: 400.
    let names = |r: &Resp| -> Vec<String> {
        r.body["resources"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|x| x["name"].as_str().map(str::to_string))
            .collect()
    };
    let r = a
        .call(
            Method::GET,
            &format!("/v3/apps?space_guids={space}&order_by=name"),
            None,
        )
        .await;
    assert_eq!(names(&r), vec!["a-app", "b-app", "c-app"]);
    let r = a.call(Method::GET, "/v3/apps?order_by=-name", None).await;
    assert_eq!(names(&r), vec!["c-app", "b-app", "a-app"]);
    let r = a
        .call(Method::GET, "/v3/apps?label_selector=env%3Dprod", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["title"], "CF-BadQueryParameter");
    assert!(
        detail(&r).starts_with("Unknown query parameter(s): 'label_selector'."),
        "{}",
        detail(&r)
    );
    let r = a.call(Method::GET, "/v3/apps?order_by=guid", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Env: a 128 KB value, VCAP_ names and PORT are refused; nothing changes.
    let g = a.call(Method::GET, "/v3/apps?names=a-app", None).await;
    let g = g.body["resources"][0]["guid"]
        .as_str()
        .expect("app")
        .to_string();
    let path = format!("/v3/apps/{g}/environment_variables");
    let ok = a
        .call(Method::PATCH, &path, Some(json!({"var": {"K": "v"}})))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    for bad in [
        json!({"BIG": "x".repeat(128 * 1024)}),
        json!({"VCAP_SERVICES": "{}"}),
        json!({"PORT": "80"}),
        json!({"A=B": "1"}),
    ] {
        let r = a
            .call(Method::PATCH, &path, Some(json!({"var": bad})))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {:?}",
            r.body
        );
    }
    let r = a.call(Method::GET, &path, None).await;
    assert_eq!(r.body["var"], json!({"K": "v"}));
    let r = post(&a, "/v3/apps", json!({"name": "e", "relationships": {"space": {"data": {"guid": space}}}, "environment_variables": {"V": "x".repeat(200 * 1024)}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_ready_package_keeps_its_bits() {
    let a = Api::new().await;
    let app = a.create_app("pkg").await;
    let g = app["guid"].as_str().expect("app");
    let p = post(
        &a,
        "/v3/packages",
        json!({"type": "bits", "relationships": {"app": {"data": {"guid": g}}}}),
    )
    .await;
    let pg = p.body["guid"].as_str().expect("package").to_string();
    let r = a
        .upload(&pg, &crate::support::zip_bytes(&[("app.py", "print(1)")]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let before = a
        .call(Method::GET, &format!("/v3/packages/{pg}"), None)
        .await
        .body;
    assert_eq!(before["state"], "READY");
    let r = a
        .upload(&pg, &crate::support::zip_bytes(&[("app.py", "print(2)")]))
        .await;
    assert_eq!(
        (r.status, detail(&r)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Package has already been uploaded"
        )
    );
    let after = a
        .call(Method::GET, &format!("/v3/packages/{pg}"), None)
        .await
        .body;
    assert_eq!(before, after);
}

#[tokio::test]
async fn log_streams_per_user_are_bounded_and_given_back() {
    let a = Api::new().await;
    let app = a.create_app("chatty").await;
    let path = format!(
        "/v3/apps/{}/logs/stream",
        app["guid"].as_str().expect("app")
    );
    let max = cloud_controller::Config::default().log_streams_per_user;
    let mut open = Vec::new();
    for _ in 0..max {
        let r = a.open_unread(&path).await;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = a.open_unread(&path).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // A client that goes away gives its place back.
    drop(open.pop());
    assert_eq!(a.open_unread(&path).await.status(), StatusCode::OK);
}
