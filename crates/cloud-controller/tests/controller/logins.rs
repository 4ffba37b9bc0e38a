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
