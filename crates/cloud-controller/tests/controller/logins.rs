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
    cloud_controller::auth::verify(
        refresh_token,
        &a.ctx.jwt_key,
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
