//! `GET /` discovery and the UAA-compatible `POST /oauth/token`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::BaseUrl;
use crate::auth::{self, Claims, TokenKind};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::{authz, login};

use crate::auth::REFRESH_TTL_S;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/", get(root))
        .route("/v3", get(v3))
        .route("/oauth/token", post(token))
        .route("/oauth/token/revoke/{token_id}", delete(revoke))
}

async fn root(base: BaseUrl) -> Json<Value> {
    let b = &base.0;
    Json(json!({"links": {
        "self": {"href": b},
        "cloud_controller_v3": {"href": format!("{b}/v3"), "meta": {"version": "3.180.0"}},
        "login": {"href": b},
        "uaa": {"href": b},
        "logging": null,
    }}))
}

async fn v3(base: BaseUrl) -> Json<Value> {
    let l = |p: &str| base.link(&format!("/v3{p}"));
    Json(json!({"links": {
        "self": l(""), "apps": l("/apps"), "organizations": l("/organizations"), "spaces": l("/spaces"),
        "domains": l("/domains"), "routes": l("/routes"), "packages": l("/packages"), "builds": l("/builds"),
        "droplets": l("/droplets"), "processes": l("/processes"), "audit_events": l("/audit_events"),
    }}))
}

fn client_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match header {
        Some(h) => {
            let Some((scheme, rest)) = h.trim().split_once(' ') else {
                return false;
            };
            if !scheme.eq_ignore_ascii_case("basic") {
                return false;
            }
            let Ok(decoded) = STANDARD.decode(rest.trim()) else {
                return false;
            };
            let decoded = String::from_utf8_lossy(&decoded);
            // The cf CLI's client: `cf` with an empty secret, as UAA has it.
            decoded == "cf:"
        }
        None => {
            form.get("client_id").is_none_or(|c| c == "cf")
                && form.get("client_secret").is_none_or(String::is_empty)
        }
    }
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(ctx): State<Ctx>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> ApiResult<Response> {
    let Ok(Form(form)) = form else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected a form-urlencoded body",
        ));
    };
    if !client_ok(&headers, &form) {
        return Err(ApiError::BadCredentials);
    }
    let now = chrono::Utc::now().timestamp();
    let (user, refresh) = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let (Some(name), Some(password)) = (form.get("username"), form.get("password")) else {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                ));
            };
            let addr = login::client_addr(&headers, peer.map(|Extension(ConnectInfo(a))| a));
            let locked = ctx
                .lockouts
                .lock()
                .map(|l| l.locked(name, &addr, Instant::now()))
                .unwrap_or(false);
            if locked {
                return Ok(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    login::LOCKED,
                ));
            }
            // A bounded number at a time (the turn is taken before the
            // user's row is read: a flood waits here, not on the
            // database), off the async workers; an unknown name costs a
            // check too.
            let turn = ctx
                .password_checks
                .admit()
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            let user = ctx.store.user_by_name(name).await?;
            let ok = ctx
                .password_checks
                .verify_admitted(
                    turn,
                    password,
                    user.as_ref().map(|u| u.password_hash.as_str()),
                )
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            if let Ok(mut l) = ctx.lockouts.lock() {
                if ok {
                    l.succeeded(name);
                } else {
                    l.failed(name, &addr, Instant::now());
                }
            }
            match (ok, user) {
                (true, Some(u)) => {
                    let mut claims = Claims::new(
                        &u.guid,
                        &u.username,
                        authz::scopes_of(&u),
                        TokenKind::Refresh,
                        REFRESH_TTL_S,
                        now,
                    );
                    claims.rev = u.token_generation;
                    ctx.store
                        .add_refresh_token(&claims.jti, &u.guid, claims.exp, now)
                        .await?;
                    let refresh = ctx.sign_token(&claims).await?;
                    (u, refresh)
                }
                _ => return Err(ApiError::BadCredentials),
            }
        }
        Some("refresh_token") => {
            let Some(rt) = form.get("refresh_token") else {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                ));
            };
            let claims = match ctx.verify_token(rt, TokenKind::Refresh).await {
                Ok(c) => c,
                Err(_) => {
                    return Ok(oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "Invalid refresh token",
                    ))
                }
            };
            // On record: not revoked (cf logout, a password change) and
            // its user still there.
            let live = ctx
                .store
                .refresh_token_live(&claims.jti, &claims.sub, now)
                .await?;
            let user = ctx
                .store
                .user(&claims.sub)
                .await?
                .filter(|u| live && u.token_generation == claims.rev);
            match user {
                Some(u) => (u, rt.clone()),
                None => {
                    return Ok(oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "Invalid refresh token",
                    ))
                }
            }
        }
        _ => {
            return Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "supported grants: password, refresh_token",
            ))
        }
    };
    let scope = authz::scopes_of(&user);
    let mut claims = Claims::new(
        &user.guid,
        &user.username,
        scope.clone(),
        TokenKind::Access,
        ctx.cfg.token_ttl_s,
        now,
    );
    claims.rev = user.token_generation;
    let jti = claims.jti.clone();
    let access = ctx.sign_token(&claims).await?;
    Ok(Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "refresh_token": refresh,
        "expires_in": ctx.cfg.token_ttl_s,
        "scope": scope.join(" "),
        "jti": jti,
    }))
    .into_response())
}

/// UAA's `DELETE /oauth/token/revoke/:token_id`: revokes a refresh token
/// (its `jti`) of the caller; 200, or 404 when the caller has no such
/// token. `cf logout` calls it; an admin (`uaa.admin`) may revoke any.
async fn revoke(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(token_id): Path<String>,
) -> ApiResult<Response> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
        .ok_or(ApiError::InvalidAuthToken)?;
    let claims = ctx
        .verify_token(token, TokenKind::Access)
        .await
        .map_err(|_| ApiError::InvalidAuthToken)?;
    let admin = claims.scope.iter().any(|s| s == "uaa.admin");
    let owner = (!admin).then_some(claims.sub.as_str());
    if ctx.store.revoke_refresh_token(&token_id, owner).await? {
        Ok(Json(json!({"status": "ok"})).into_response())
    } else {
        Ok(oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such token",
        ))
    }
}
