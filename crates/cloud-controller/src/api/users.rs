//! `/v3/users`: the controller's user records.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, BaseUrl, PageReq, Query};
use crate::authz::Perms;
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{CcUser, UserFilter};

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
    let page = PageReq::from_query(&q)?;
    let f = UserFilter {
        usernames: filter(&q, "usernames"),
        origins: filter(&q, "origins"),
        guids: filter(&q, "guids"),
        visible_to: (!perms.reads_everything()).then(|| perms.user_guid.clone()),
    };
    let (total, users) = ctx.store.cc_users_page(&f, page.window()).await?;
    let items = users.iter().map(|u| present(&base, u)).collect();
    Ok(Json(page_of(&base, "/v3/users", &q, page, total, items)))
}

async fn show(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = UserFilter {
        usernames: None,
        origins: None,
        guids: Some(vec![guid]),
        visible_to: (!perms.reads_everything()).then(|| perms.user_guid.clone()),
    };
    let one = crate::store::Window {
        limit: 1,
        offset: 0,
    };
    let (_, users) = ctx.store.cc_users_page(&f, one).await?;
    let u = users
        .into_iter()
        .next()
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
    super::jobs::accepted(&ctx, &base, "user.delete").await
}
