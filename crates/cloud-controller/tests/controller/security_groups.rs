//! `/v3/security_groups`: CF's shapes, validation with CF's messages,
//! global flags, space bindings per lifecycle, the space views, delete.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::api::Api;

#[tokio::test]
async fn security_groups_api() {
    let a = Api::new().await;
    a.ctx
        .store
        .seed_security_groups(&proto::egress::dns(&["10.0.0.2".parse().expect("ip")]))
        .await
        .expect("seed");
    let space = a.space_guid().await;

    // The defaults, as CF has them: on for running and staging everywhere.
    let r = a.call(Method::GET, "/v3/security_groups", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["pagination"]["total_results"], 2);
    let public = &r.body["resources"][0];
    assert_eq!(public["name"], "public_networks");
    assert_eq!(
        public["globally_enabled"],
        json!({"running": true, "staging": true})
    );
    assert_eq!(
        public["rules"][0],
        json!({"protocol": "all", "destination": "0.0.0.0-9.255.255.255"})
    );
    assert!(public["links"]["self"]["href"].as_str().is_some());

    // Bad input: 422 with what is wrong, nothing stored.
    for (body, want) in [
        (json!({"name": ""}), "Name can't be blank"),
        (
            json!({"name": "x", "rules": [{"protocol": "smtp", "destination": "1.1.1.1"}]}),
            "Rules[0]: protocol must be 'tcp', 'udp', 'icmp', or 'all'",
        ),
        (
            json!({"name": "x", "rules": [{"protocol": "tcp", "destination": "1.1.1.1"}]}),
            "Rules[0]: ports are required for protocols of type TCP and UDP",
        ),
        (
            json!({"name": "x", "rules": [{"protocol": "tcp", "destination": "nope", "ports": "1"}]}),
            "Rules[0]: destination must be a valid CIDR, IP address, or IP address range",
        ),
        (
            json!({"name": "x", "relationships": {"running_spaces": {"data": [{"guid": "nope"}]}}}),
            "Spaces with guids [\"nope\"] do not exist, or you do not have access to them.",
        ),
        (
            json!({"name": "public_networks"}),
            "Security group with name 'public_networks' already exists.",
        ),
    ] {
        let r = a
            .call(Method::POST, "/v3/security_groups", Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["detail"], want, "{body}");
        assert_eq!(r.body["errors"][0]["title"], "CF-UnprocessableEntity");
    }
    let r = a.call(Method::GET, "/v3/security_groups", None).await;
    assert_eq!(r.body["pagination"]["total_results"], 2, "nothing stored");

    // A group for one space's running apps.
    let rule = json!({"protocol": "tcp", "destination": "172.31.251.2", "ports": "8000", "description": "db"});
    let r = a
        .call(
            Method::POST,
            "/v3/security_groups",
            Some(json!({"name": "db", "rules": [rule]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let g = r.body["guid"].as_str().expect("guid").to_string();
    assert_eq!(
        r.body["globally_enabled"],
        json!({"running": false, "staging": false})
    );
    assert_eq!(r.body["rules"][0]["description"], "db");
    let r = a
        .call(
            Method::POST,
            &format!("/v3/security_groups/{g}/relationships/running_spaces"),
            Some(json!({"data": [{"guid": space}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"], json!([{"guid": space}]));
    let running = a
        .call(
            Method::GET,
            &format!("/v3/spaces/{space}/running_security_groups"),
            None,
        )
        .await;
    let names: Vec<&str> = running.body["resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, vec!["public_networks", "dns", "db"]);
    let staging = a
        .call(
            Method::GET,
            &format!("/v3/spaces/{space}/staging_security_groups"),
            None,
        )
        .await;
    assert_eq!(
        staging.body["pagination"]["total_results"], 2,
        "not for staging"
    );
    let r = a
        .call(
            Method::GET,
            &format!("/v3/security_groups?running_space_guids={space}"),
            None,
        )
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 1);
    assert_eq!(
        r.body["resources"][0]["relationships"]["running_spaces"]["data"][0]["guid"],
        space.as_str()
    );
    let r = a
        .call(
            Method::GET,
            "/v3/security_groups?globally_enabled_running=false",
            None,
        )
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 1);

    // Update: rules checked; global staging on.
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/security_groups/{g}"),
            Some(json!({"rules": [{"protocol": "udp", "destination": "1.1.1.1"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/security_groups/{g}"),
            Some(json!({"globally_enabled": {"staging": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["globally_enabled"],
        json!({"running": false, "staging": true})
    );
    assert_eq!(r.body["rules"][0]["destination"], "172.31.251.2");

    // Unbind: 204, then 422 when not bound; unknown lifecycle: 404.
    let path = format!("/v3/security_groups/{g}/relationships/running_spaces/{space}");
    assert_eq!(
        a.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call(Method::DELETE, &path, None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = a
        .call(
            Method::POST,
            &format!("/v3/security_groups/{g}/relationships/sideways_spaces"),
            Some(json!({"data": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Spaces: made in an org; a second one with the name is refused.
    let orgs = a.call(Method::GET, "/v3/organizations", None).await;
    let org = orgs.body["resources"][0]["guid"]
        .as_str()
        .expect("org")
        .to_string();
    let body = json!({"name": "other", "relationships": {"organization": {"data": {"guid": org}}}});
    let r = a.call(Method::POST, "/v3/spaces", Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], "other");
    let r = a.call(Method::POST, "/v3/spaces", Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = a
        .call(
            Method::POST,
            "/v3/spaces",
            Some(
                json!({"name": "x", "relationships": {"organization": {"data": {"guid": "nope"}}}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Delete: 202 with a job; gone.
    let r = a
        .call(Method::DELETE, &format!("/v3/security_groups/{g}"), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.headers.get("location").is_some());
    let r = a
        .call(Method::GET, &format!("/v3/security_groups/{g}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
