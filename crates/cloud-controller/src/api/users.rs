//! `/v3/users`: the controller's user records.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, parse_json, BaseUrl, Query};
use crate::authz::Perms;
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::CcUser;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/users", get(list).post(create))
        .route("/v3/users/{guid}", get(show).delete(remove))
}

pub fn present(base: &BaseUrl, u: &CcUser) -> Value {
    json!({
        "guid": u.guid,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "username": u.username,
        "presentation_name": u.username.clone().unwrap_or_else(|| u.guid.clone()),
        "origin": u.origin,
        "metadata": metadata(),
        "links": {"self": base.link(&format!("/v3/users/{}", u.guid))},
    })
}

#[derive(Debug, Deserialize)]
struct CreateUser {
    guid: String,
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateUser = parse_json(&body)?;
    let guid = req.guid.trim();
    if guid.is_empty() || guid.len() > 250 {
        return Err(ApiError::Unprocessable(
            "Guid must be between 1 and 250 characters".into(),
        ));
    }
    if ctx.store.cc_user(guid).await.is_ok() {
        return Err(ApiError::Unprocessable(format!(
            "User with guid '{guid}' already exists."
        )));
    }
    let u = ctx.store.add_cc_user(guid).await?;
    let name = u.username.clone().unwrap_or_default();
    ctx.audit(
        &actor,
        "audit.user.create",
        AuditTarget {
            kind: "user",
            guid: &u.guid,
            name: &name,
            space: None,
            org: None,
        },
        Value::Null,
    )
    .await;
    Ok((StatusCode::CREATED, Json(present(&base, &u))))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let (names, guids, origins) = (
        filter(&q, "usernames"),
        filter(&q, "guids"),
        filter(&q, "origins"),
    );
    let visible_to = (!perms.reads_everything()).then_some(perms.user_guid.as_str());
    let items = ctx
        .store
        .cc_users(visible_to)
        .await?
        .iter()
        .filter(|u| {
            matches(&guids, &u.guid)
                && names
                    .as_ref()
                    .is_none_or(|n| u.username.as_ref().is_some_and(|x| n.contains(x)))
                && origins
                    .as_ref()
                    .is_none_or(|o| u.origin.as_ref().is_some_and(|x| o.contains(x)))
        })
        .map(|u| present(&base, u))
        .collect();
    Ok(Json(paginate(&base, "/v3/users", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let visible_to = (!perms.reads_everything()).then_some(perms.user_guid.as_str());
    let u = ctx
        .store
        .cc_users(visible_to)
        .await?
        .into_iter()
        .find(|u| u.guid == guid)
        .ok_or_else(|| ApiError::not_found("User"))?;
    Ok(Json(present(&base, &u)))
}

/// Deletes the controller record and every role of the user (202 + job);
/// the cf CLI then deletes the UAA user.
async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let u = ctx.store.cc_user(&guid).await?;
    ctx.store.delete_cc_user(&guid).await?;
    let name = u.username.clone().unwrap_or_default();
    ctx.audit(
        &actor,
        "audit.user.delete-request",
        AuditTarget {
            kind: "user",
            guid: &u.guid,
            name: &name,
            space: None,
            org: None,
        },
        Value::Null,
    )
    .await;
    Ok(super::jobs::accepted(&ctx, &base, "user.delete").into_response())
}
