//! Token signing key rotation (issue 13, item 8): tokens name their key
//! (`kid`); a rotation keeps earlier tokens valid until they expire, or
//! refuses them at once with `revoke_previous`; tokens from before key ids
//! are checked with the legacy key. On SQLite and Postgres.

use axum::http::{Method, StatusCode};
use cloud_controller::auth::{self, Claims, TokenKind};
use cloud_controller::store::Store;
use serde_json::{json, Value};

use crate::api::{Api, Resp};

fn kid(token: &str) -> String {
    auth::token_kid(token)
        .expect("a JWT")
        .expect("a kid header")
}

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_string()
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

async fn orgs_status(a: &Api, token: &str) -> Resp {
    a.call_as(token, Method::GET, "/v3/organizations", None)
        .await
}

/// CF's 401 for a token it does not take.
fn assert_invalid_token(r: &Resp) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(r.body["errors"][0]["title"], "CF-InvalidAuthToken");
    assert_eq!(r.body["errors"][0]["code"], 1000);
}

async fn rotate(a: &Api, token: &str, body: Value) -> Resp {
    a.call_as(
        token,
        Method::POST,
        "/v3/admin/actions/rotate_token_keys",
        Some(body),
    )
    .await
}

async fn rotation(db: Option<String>) {
    let a = Api::open(db).await;
    let first = a.login("admin", "admin").await.body;
    let old_access = str_of(&first, "access_token");
    let old_refresh = str_of(&first, "refresh_token");
    let k1 = kid(&old_access);
    assert_eq!(kid(&old_refresh), k1);

    let listed = a.call(Method::GET, "/v3/admin/token_keys", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["active_key_id"], k1.as_str());

    // Rotate: a new active key; the old one is retired, not gone.
    let r = rotate(&a, &a.token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let k2 = str_of(&r.body, "active_key_id");
    assert_ne!(k2, k1);
    let keys = r.body["keys"].as_array().expect("keys");
    let old = keys.iter().find(|k| k["kid"] == k1.as_str()).expect("k1");
    assert_eq!(old["active"], false);
    assert!(old["retired_at"].is_string() && old["expires_at"].is_string());
    // No secret is ever served.
    for row in a.ctx.store.signing_keys().await.expect("keys") {
        let raw = String::from_utf8_lossy(&r.raw);
        assert!(!raw.contains(&row.secret), "a secret in {raw}");
        let raw = String::from_utf8_lossy(&listed.raw);
        assert!(!raw.contains(&row.secret), "a secret in {raw}");
    }
    // The rotation is audited.
    let events = a
        .call(
            Method::GET,
            "/v3/audit_events?types=audit.token_keys.rotate",
            None,
        )
        .await;
    assert_eq!(events.body["pagination"]["total_results"], 1);
    assert_eq!(events.body["resources"][0]["target"]["guid"], k2.as_str());

    // Tokens signed by the old key keep working...
    assert_eq!(orgs_status(&a, &old_access).await.status, StatusCode::OK);
    let refreshed = refresh(&a, &old_refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    // ...and new ones are signed with the new key.
    assert_eq!(kid(&str_of(&refreshed.body, "access_token")), k2);
    let second = a.login("admin", "admin").await.body;
    let new_access = str_of(&second, "access_token");
    assert_eq!(kid(&new_access), k2);
    assert_eq!(kid(&str_of(&second, "refresh_token")), k2);
    assert_eq!(orgs_status(&a, &new_access).await.status, StatusCode::OK);

    // Only admins rotate.
    a.ctx.store.create_user("carol", "pw").await.expect("user");
    let carol = str_of(&a.login("carol", "pw").await.body, "access_token");
    assert_eq!(
        rotate(&a, &carol, json!({})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rotate(&a, &new_access, json!({"bogus": 1})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // A leaked key: rotate and revoke every earlier key at once.
    let r = rotate(&a, &new_access, json!({"revoke_previous": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let k3 = str_of(&r.body, "active_key_id");
    assert_eq!(r.body["keys"].as_array().map(Vec::len), Some(1));
    for t in [&old_access, &new_access, &carol] {
        assert_invalid_token(&orgs_status(&a, t).await);
    }
    let r = refresh(&a, &old_refresh).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(r.body["error"], "invalid_token");
    let third = str_of(&a.login("admin", "admin").await.body, "access_token");
    assert_eq!(kid(&third), k3);
    assert_eq!(orgs_status(&a, &third).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_until_revoked_sqlite() {
    rotation(None).await;
}

#[tokio::test]
async fn rotation_keeps_old_tokens_until_revoked_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    rotation(Some(db.url.clone())).await;
}

/// A retired key goes once every token it signed has expired (the
/// longest lifetime: refresh tokens); its tokens are refused from then.
async fn retirement(db: Option<String>) {
    let a = Api::open(db).await;
    let old = a.login("admin", "admin").await.body;
    let old_access = str_of(&old, "access_token");
    let k1 = kid(&old_access);
    let r = rotate(&a, &a.token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let keep = a.ctx.keys.keep_s();
    assert!(keep > i64::try_from(auth::REFRESH_TTL_S).expect("ttl"));
    let now = chrono::Utc::now().timestamp();
    // Not yet: still within its lifetime.
    a.ctx
        .store
        .prune_signing_keys(now + keep - 10, keep)
        .await
        .expect("prune");
    assert!(a
        .ctx
        .store
        .signing_keys()
        .await
        .expect("keys")
        .iter()
        .any(|k| k.kid == k1));
    // Once its lifetime is over, it goes; a controller's copy follows.
    a.ctx
        .store
        .prune_signing_keys(now + keep + 10, keep)
        .await
        .expect("prune");
    let left = a.ctx.store.signing_keys().await.expect("keys");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0].kid, k1);
    a.ctx.keys.reload(&a.ctx.store).await.expect("reload");
    assert_invalid_token(&orgs_status(&a, &old_access).await);
    let fresh = str_of(&a.login("admin", "admin").await.body, "access_token");
    assert_eq!(orgs_status(&a, &fresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn retired_keys_go_when_their_tokens_have_expired_sqlite() {
    retirement(None).await;
}

#[tokio::test]
async fn retired_keys_go_when_their_tokens_have_expired_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    retirement(Some(db.url.clone())).await;
}

/// A database from before key ids: its `jwt_signing_key` setting becomes
/// the key `legacy`, tokens without `kid` keep working, and the setting
/// goes (the secret is kept once).
async fn upgrade(url: String) {
    let legacy_secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let before = Store::open(&url).await.expect("store");
    before
        .bootstrap("admin", "admin", "sys.localhost", "localhost")
        .await
        .expect("bootstrap");
    before
        .set_setting("jwt_signing_key", legacy_secret)
        .await
        .expect("setting");
    let admin = before
        .user_by_name("admin")
        .await
        .expect("user")
        .expect("admin");
    let now = chrono::Utc::now().timestamp();
    let mut claims = Claims::new(
        &admin.guid,
        "admin",
        cloud_controller::authz::scopes_of(&admin),
        TokenKind::Access,
        600,
        now,
    );
    claims.rev = admin.token_generation;
    let old_token = auth::sign(&claims, None, legacy_secret.as_bytes());
    before.close().await;

    let a = Api::open(Some(url)).await;
    assert_eq!(
        a.ctx.store.setting("jwt_signing_key").await.expect("read"),
        None
    );
    assert_eq!(a.ctx.keys.ring().active().kid, "legacy");
    assert_eq!(orgs_status(&a, &old_token).await.status, StatusCode::OK);
    // New tokens name the legacy key; after a rotation both kinds work.
    assert_eq!(kid(&a.token), "legacy");
    let r = rotate(&a, &a.token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(orgs_status(&a, &old_token).await.status, StatusCode::OK);
    // Once the legacy key is revoked, a token without kid is refused.
    let r = rotate(&a, &a.token, json!({"revoke_previous": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_invalid_token(&orgs_status(&a, &old_token).await);
}

#[tokio::test]
async fn tokens_from_before_key_ids_use_the_legacy_key_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    upgrade(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cc.db").display()
    ))
    .await;
}

#[tokio::test]
async fn tokens_from_before_key_ids_use_the_legacy_key_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    upgrade(db.url.clone()).await;
}

/// A second controller on the same database learns of a rotation by
/// another: it verifies the new key's tokens at once (unknown kid →
/// reload) and signs with the new key.
#[tokio::test]
async fn controllers_sharing_a_database_share_the_ring() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let a = Api::open(Some(db.url.clone())).await;
    let b = Api::open(Some(db.url.clone())).await;
    assert_eq!(kid(&a.token), kid(&b.token));
    let r = rotate(&a, &a.token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let k2 = str_of(&r.body, "active_key_id");
    let from_a = str_of(&a.login("admin", "admin").await.body, "access_token");
    assert_eq!(orgs_status(&b, &from_a).await.status, StatusCode::OK);
    let from_b = str_of(&b.login("admin", "admin").await.body, "access_token");
    assert_eq!(kid(&from_b), k2);
}
