//! Password logins under attack (issue 12, item 1): lockout per user name,
//! the cf client's empty secret.

use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::json;

use crate::api::{Api, Resp};

async fn login_as(a: &Api, basic: &str, user: &str, password: &str) -> Resp {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(basic)
    );
    a.send(
        Method::POST,
        "/oauth/token",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("grant_type=password&username={user}&password={password}").into_bytes(),
    )
    .await
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_user_and_no_one_else() {
    let a = Api::new().await;
    a.ctx
        .store
        .create_user("alice", "right")
        .await
        .expect("user");
    for _ in 0..10 {
        let r = a.login("alice", "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.body,
            json!({"error": "unauthorized", "error_description": "Bad credentials"})
        );
    }
    // Locked: the right password is refused too, with UAA's text.
    let r = a.login("alice", "right").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body["error_description"],
        "Your account has been locked because of too many failed attempts to login."
    );
    // Others are unaffected.
    assert_eq!(a.login("admin", "admin").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_good_login_clears_the_count() {
    let a = Api::new().await;
    a.ctx.store.create_user("bob", "right").await.expect("user");
    for _ in 0..9 {
        assert_eq!(
            a.login("bob", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(a.login("bob", "right").await.status, StatusCode::OK);
    assert_eq!(
        a.login("bob", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(a.login("bob", "right").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_cf_client_has_an_empty_secret() {
    let a = Api::new().await;
    assert_eq!(
        login_as(&a, "cf:", "admin", "admin").await.status,
        StatusCode::OK
    );
    for basic in ["cf:wrong", "other:", "cf"] {
        let r = login_as(&a, basic, "admin", "admin").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{basic}");
    }
}

async fn refresh(a: &Api, rt: &str) -> Resp {
    a.send(
        Method::POST,
        "/oauth/token",
        &[
            ("authorization", "Basic Y2Y6"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("grant_type=refresh_token&refresh_token={rt}").into_bytes(),
    )
    .await
}

async fn revoke(a: &Api, access: &str, jti: &str) -> Resp {
    let auth = format!("bearer {access}");
    a.send(
        Method::DELETE,
        &format!("/oauth/token/revoke/{jti}"),
        &[("authorization", &auth)],
        vec![],
    )
    .await
}

fn jti_of(a: &Api, refresh_token: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    a.ctx
        .keys
        .ring()
        .verify(
            refresh_token,
            cloud_controller::auth::TokenKind::Refresh,
            now,
        )
        .expect("a refresh token")
        .jti
}

#[tokio::test]
async fn refresh_tokens_are_reusable_until_revoked_by_their_owner() {
    let a = Api::new().await;
    a.ctx.store.create_user("carol", "pw").await.expect("user");
    let admin = a.login("admin", "admin").await.body;
    let rt = admin["refresh_token"].as_str().expect("rt").to_string();
    // Reusable, as UAA's default is.
    for _ in 0..2 {
        let r = refresh(&a, &rt).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let jti = jti_of(&a, &rt);
    // Another user cannot revoke it.
    let carol = a.login("carol", "pw").await.body;
    let carol_access = carol["access_token"].as_str().expect("at");
    assert_eq!(
        revoke(&a, carol_access, &jti).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(refresh(&a, &rt).await.status, StatusCode::OK);
    // Without a token: 401.
    let r = a
        .send(
            Method::DELETE,
            &format!("/oauth/token/revoke/{jti}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Its owner revokes it (cf logout): refused from now on.
    let access = admin["access_token"].as_str().expect("at");
    assert_eq!(revoke(&a, access, &jti).await.status, StatusCode::OK);
    let r = refresh(&a, &rt).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "invalid_token");
    assert_eq!(revoke(&a, access, &jti).await.status, StatusCode::NOT_FOUND);
    // Carol's own token still works.
    let crt = carol["refresh_token"].as_str().expect("rt");
    assert_eq!(refresh(&a, crt).await.status, StatusCode::OK);
}

async fn create_scim_user(a: &Api, name: &str, password: &str) -> String {
    let r = a
        .call(
            Method::POST,
            "/Users",
            Some(serde_json::json!({"userName": name, "password": password, "origin": "uaa", "name": {"givenName": "G", "familyName": "F"}, "emails": [{"value": format!("{name}@example.com"), "primary": true}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["userName"], name);
    r.body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn scim_users_are_admin_only_and_names_unique() {
    let a = Api::new().await;
    let id = create_scim_user(&a, "dora", "pw").await;
    let again = a
        .call(
            Method::POST,
            "/Users",
            Some(serde_json::json!({"userName": "dora", "password": "x"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"], "scim_resource_already_exists");
    let r = a
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22dora%22",
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["resources"][0]["id"], id.as_str());
    assert_eq!(
        r.body["resources"][0]["emails"][0]["value"],
        "dora@example.com"
    );
    let bad = a
        .call(Method::GET, "/Users?filter=userName%20co%20%22d%22", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A plain user: a token without admin scopes, refused user management.
    let dora = a.login("dora", "pw").await.body;
    let scope = dora["scope"].as_str().expect("scope");
    assert!(scope.contains("cloud_controller.read") && scope.contains("cloud_controller.write"));
    assert!(!scope.contains("cloud_controller.admin"), "{scope}");
    let token = dora["access_token"].as_str().expect("at");
    let r = a.call_as(token, Method::GET, "/Users", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["errors"][0]["title"], "CF-NotAuthorized");
    assert_eq!(r.body["errors"][0]["code"], 10003);
    let admin = a.login("admin", "admin").await.body;
    assert!(admin["scope"]
        .as_str()
        .expect("scope")
        .contains("cloud_controller.admin"));
}

#[tokio::test]
async fn read_and_write_scopes_gate_methods() {
    let a = Api::new().await;
    let u = a
        .ctx
        .store
        .user_by_name("admin")
        .await
        .expect("q")
        .expect("admin");
    let now = chrono::Utc::now().timestamp();
    let token = |scope: &[&str]| {
        let c = cloud_controller::auth::Claims::new(
            &u.guid,
            "admin",
            scope.iter().map(|s| s.to_string()).collect(),
            cloud_controller::auth::TokenKind::Access,
            60,
            now,
        );
        a.ctx.keys.ring().sign(&c)
    };
    let read_only = token(&["openid", "cloud_controller.read"]);
    assert_eq!(
        a.call_as(&read_only, Method::GET, "/v3/apps", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = a
        .call_as(
            &read_only,
            Method::POST,
            "/v3/organizations",
            Some(serde_json::json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let none = token(&["openid"]);
    assert_eq!(
        a.call_as(&none, Method::GET, "/v3/apps", None).await.status,
        StatusCode::FORBIDDEN
    );
    let write_only = token(&["cloud_controller.write"]);
    assert_eq!(
        a.call_as(&write_only, Method::GET, "/v3/apps", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_deleted_user_loses_its_tokens_at_once() {
    let a = Api::new().await;
    let id = create_scim_user(&a, "erin", "pw").await;
    let erin = a.login("erin", "pw").await.body;
    let access = erin["access_token"].as_str().expect("at").to_string();
    let rt = erin["refresh_token"].as_str().expect("rt").to_string();
    assert_eq!(
        a.call_as(&access, Method::GET, "/v3/apps", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(refresh(&a, &rt).await.status, StatusCode::OK);
    let r = a.call(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = refresh(&a, &rt).await;
    assert_eq!(
        (r.status, r.body["error"].clone()),
        (StatusCode::UNAUTHORIZED, serde_json::json!("invalid_token"))
    );
    let r = a.call_as(&access, Method::GET, "/v3/apps", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["errors"][0]["title"], "CF-InvalidAuthToken");
    assert_eq!(a.login("erin", "pw").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_changed_password_revokes_every_older_token() {
    let a = Api::new().await;
    let id = create_scim_user(&a, "fred", "old").await;
    let s1 = a.login("fred", "old").await.body;
    let s2 = a.login("fred", "old").await.body;
    let at1 = s1["access_token"].as_str().expect("at").to_string();
    let rt2 = s2["refresh_token"].as_str().expect("rt").to_string();
    let change = |old: &'static str, new: &'static str| {
        let at1 = at1.clone();
        let path = format!("/Users/{id}/password");
        let a = &a;
        async move {
            a.call_as(
                &at1,
                Method::PUT,
                &path,
                Some(serde_json::json!({"oldPassword": old, "password": new})),
            )
            .await
        }
    };
    // A wrong old password changes nothing.
    let r = change("nope", "new").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(
        a.call_as(&at1, Method::GET, "/v3/apps", None).await.status,
        StatusCode::OK
    );
    // Someone else's password: 403.
    let other = create_scim_user(&a, "gina", "pw").await;
    let r = a
        .call_as(
            &at1,
            Method::PUT,
            &format!("/Users/{other}/password"),
            Some(serde_json::json!({"oldPassword": "pw", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = change("old", "new").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Every older token is refused: the access token at once, the other
    // session's refresh token too.
    assert_eq!(
        a.call_as(&at1, Method::GET, "/v3/apps", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh(&a, &rt2).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.login("fred", "old").await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = a.login("fred", "new").await;
    assert_eq!(fresh.status, StatusCode::OK);
    let at = fresh.body["access_token"].as_str().expect("at");
    assert_eq!(
        a.call_as(at, Method::GET, "/v3/apps", None).await.status,
        StatusCode::OK
    );
    // An admin sets a password without the old one.
    let r = a
        .call(
            Method::PUT,
            &format!("/Users/{other}/password"),
            Some(serde_json::json!({"password": "reset"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(a.login("gina", "reset").await.status, StatusCode::OK);
}

#[tokio::test]
async fn scim_scopes_open_user_management() {
    let a = Api::new().await;
    let sam = a.ctx.store.create_user("sam", "pw").await.expect("user");
    a.ctx
        .store
        .set_user_groups(&sam.guid, "scim.read")
        .await
        .expect("groups");
    let reader = a.login("sam", "pw").await.body["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    assert_eq!(
        a.call_as(&reader, Method::GET, "/Users", None).await.status,
        StatusCode::OK
    );
    let new_user = serde_json::json!({"userName": "tim", "password": "pw"});
    let r = a
        .call_as(&reader, Method::POST, "/Users", Some(new_user.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    a.ctx
        .store
        .set_user_groups(&sam.guid, "scim.write")
        .await
        .expect("groups");
    let writer = a.login("sam", "pw").await.body["access_token"]
        .as_str()
        .expect("at")
        .to_string();
    let r = a
        .call_as(&writer, Method::POST, "/Users", Some(new_user))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Still no controller admin: buildpacks are not theirs.
    let r = a
        .call_as(
            &writer,
            Method::POST,
            "/v3/buildpacks",
            Some(serde_json::json!({"name": "b"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
