//! The UAA side's user management (SCIM): `/Users`, `/Users/:id/password`
//! and group membership for the global roles. Admin only, except a user
//! changing its own password.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::root::oauth_error;
use super::{parse_json, Query};
use crate::authz::Perms;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{NewUser, StoreError, User};

/// Groups a user may be put in (the scopes they grant).
pub const GROUPS: &[&str] = &[
    "cloud_controller.admin",
    "cloud_controller.admin_read_only",
    "cloud_controller.global_auditor",
    "scim.read",
    "scim.write",
    "uaa.admin",
];

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/Users", get(list).post(create))
        .route("/Users/{id}", get(show).delete(remove))
        .route("/Users/{id}/password", put(change_password))
        .route("/Groups", get(groups))
        .route("/Groups/{id}/members", post(add_member))
        .route("/Groups/{id}/members/{member}", delete(remove_member))
}

fn present(u: &User) -> Value {
    let groups: Vec<Value> = u
        .groups()
        .map(|g| json!({"value": g, "display": g, "type": "DIRECT"}))
        .collect();
    let emails = if u.email.is_empty() {
        json!([])
    } else {
        json!([{"value": u.email, "primary": true}])
    };
    json!({
        "id": u.guid,
        "externalId": "",
        "meta": {"version": u.token_generation, "created": u.created_at, "lastModified": u.created_at},
        "userName": u.username,
        "name": {"givenName": u.given_name, "familyName": u.family_name},
        "emails": emails,
        "groups": groups,
        "approvals": [],
        "active": true,
        "verified": true,
        "origin": u.origin,
        "zoneId": "uaa",
        "schemas": ["urn:scim:schemas:core:1.0"],
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Name {
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
}

#[derive(Debug, Deserialize)]
struct Email {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateUser {
    user_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    name: Option<Name>,
    #[serde(default)]
    emails: Vec<Email>,
}

fn scim_error(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": message, "message": message})),
    )
        .into_response()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '"')
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateUser = parse_json(&body)?;
    let name = req.user_name.trim();
    if !valid_name(name) {
        return Ok(scim_error(
            StatusCode::BAD_REQUEST,
            "invalid_scim_resource",
            "A username must be 1 to 255 characters, without spaces or quotes.",
        ));
    }
    let origin = req.origin.as_deref().unwrap_or("uaa");
    if origin == "uaa" && (req.password.is_empty() || req.password.len() > 255) {
        return Ok(scim_error(
            StatusCode::BAD_REQUEST,
            "invalid_password",
            "Password must be 1 to 255 characters.",
        ));
    }
    let n = req.name.unwrap_or_default();
    let email = req
        .emails
        .first()
        .map(|e| e.value.clone())
        .unwrap_or_default();
    match ctx
        .store
        .create_uaa_user(&NewUser {
            username: name,
            password: &req.password,
            origin,
            given_name: &n.given_name,
            family_name: &n.family_name,
            email: &email,
            groups: "",
        })
        .await
    {
        Ok(u) => {
            tracing::info!(user = %u.username, actor = %actor.name, "user created");
            Ok((StatusCode::CREATED, Json(present(&u))).into_response())
        }
        Err(StoreError::Conflict(_)) => Ok(scim_error(
            StatusCode::CONFLICT,
            "scim_resource_already_exists",
            &format!("Username already in use: {name}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `userName eq "NAME"` (optionally `and origin eq "ORIGIN"`) from a SCIM
/// filter; `Err` for any other filter.
pub fn parse_filter(filter: &str) -> Result<(String, Option<String>), ()> {
    let mut name = None;
    let mut origin = None;
    for clause in split_and(filter) {
        let mut it = clause.trim().splitn(3, ' ');
        let (Some(attr), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(());
        };
        if !op.eq_ignore_ascii_case("eq") {
            return Err(());
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(())?;
        match attr.to_ascii_lowercase().as_str() {
            "username" => name = Some(value.to_string()),
            "origin" => origin = Some(value.to_string()),
            _ => return Err(()),
        }
    }
    name.map(|n| (n, origin)).ok_or(())
}

fn split_and(filter: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = filter;
    loop {
        let lower = rest.to_ascii_lowercase();
        match lower.find(" and ") {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 5..];
            }
            None => {
                out.push(rest);
                return out;
            }
        }
    }
}

async fn list(State(ctx): State<Ctx>, q: Query) -> ApiResult<Response> {
    let users = match q.get("filter") {
        None => ctx.store.users(None).await?,
        Some(f) => match parse_filter(f) {
            Ok((name, origin)) => ctx
                .store
                .users(Some(&name))
                .await?
                .into_iter()
                .filter(|u| origin.as_deref().is_none_or(|o| o == u.origin))
                .collect(),
            Err(()) => return Ok(scim_error(
                StatusCode::BAD_REQUEST,
                "invalid_filter",
                "Only `userName eq \"NAME\"` (and `origin eq \"ORIGIN\"`) filters are supported",
            )),
        },
    };
    let resources: Vec<Value> = users.iter().map(present).collect();
    Ok(Json(json!({
        "resources": resources,
        "startIndex": 1,
        "itemsPerPage": resources.len().max(100),
        "totalResults": resources.len(),
        "schemas": ["urn:scim:schemas:core:1.0"],
    }))
    .into_response())
}

async fn show(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    match ctx.store.user(&id).await? {
        Some(u) => Ok(Json(present(&u)).into_response()),
        None => Ok(scim_error(
            StatusCode::NOT_FOUND,
            "scim_resource_not_found",
            &format!("User {id} does not exist"),
        )),
    }
}

/// Deletes the UAA user: its refresh tokens at once, its access tokens at
/// their next use (every request checks that the user exists).
async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    match ctx.store.delete_user(&id).await {
        Ok(u) => {
            tracing::info!(user = %u.username, actor = %actor.name, "user deleted");
            Ok(Json(present(&u)).into_response())
        }
        Err(StoreError::NotFound(_)) => Ok(scim_error(
            StatusCode::NOT_FOUND,
            "scim_resource_not_found",
            &format!("User {id} does not exist"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    #[serde(default)]
    old_password: Option<String>,
    password: String,
}

/// `PUT /Users/:id/password`: the user itself (with the old password) or
/// an admin. Every token of the user issued before stops working.
async fn change_password(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: PasswordChange = parse_json(&body)?;
    let itself = perms.user_guid == id;
    if !itself && !perms.is_admin() {
        return Err(ApiError::not_authorized());
    }
    if req.password.is_empty() || req.password.len() > 255 {
        return Ok(scim_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password",
            "Password must be 1 to 255 characters.",
        ));
    }
    let Some(user) = ctx.store.user(&id).await? else {
        return Ok(scim_error(
            StatusCode::NOT_FOUND,
            "scim_resource_not_found",
            &format!("User {id} does not exist"),
        ));
    };
    if itself {
        let old = req.old_password.unwrap_or_default();
        let ok = ctx
            .password_checks
            .verify(&old, Some(&user.password_hash))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if !ok {
            return Ok(oauth_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Old password is incorrect",
            ));
        }
    }
    ctx.store.set_password(&id, &req.password).await?;
    tracing::info!(user = %user.username, "password changed; older tokens revoked");
    Ok(Json(json!({"status": "ok", "message": "password updated"})).into_response())
}

fn present_group(name: &str, members: &[User]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|u| json!({"value": u.guid, "type": "USER", "origin": u.origin}))
        .collect();
    json!({
        "id": name,
        "displayName": name,
        "members": members,
        "zoneId": "uaa",
        "schemas": ["urn:scim:schemas:core:1.0"],
    })
}

async fn groups(State(ctx): State<Ctx>, q: Query) -> ApiResult<Response> {
    let wanted: Option<String> = q.get("filter").and_then(|f| {
        let (attr, value) = f.split_once(" eq ")?;
        attr.trim()
            .eq_ignore_ascii_case("displayName")
            .then(|| value.trim().trim_matches('"').to_string())
    });
    if q.contains_key("filter") && wanted.is_none() {
        return Ok(scim_error(
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            "Only `displayName eq \"NAME\"` filters are supported",
        ));
    }
    let users = ctx.store.users(None).await?;
    let resources: Vec<Value> = GROUPS
        .iter()
        .filter(|g| wanted.as_deref().is_none_or(|w| w == **g))
        .map(|g| {
            let members: Vec<User> = users
                .iter()
                .filter(|u| u.groups().any(|x| x == *g))
                .cloned()
                .collect();
            present_group(g, &members)
        })
        .collect();
    Ok(Json(json!({
        "resources": resources,
        "startIndex": 1,
        "itemsPerPage": 100,
        "totalResults": resources.len(),
        "schemas": ["urn:scim:schemas:core:1.0"],
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct Member {
    value: String,
}

async fn add_member(
    State(ctx): State<Ctx>,
    Path(group): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let m: Member = parse_json(&body)?;
    set_membership(&ctx, &group, &m.value, true).await
}

async fn remove_member(
    State(ctx): State<Ctx>,
    Path((group, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    set_membership(&ctx, &group, &member, false).await
}

async fn set_membership(ctx: &Ctx, group: &str, user: &str, on: bool) -> ApiResult<Response> {
    if !GROUPS.contains(&group) {
        return Ok(scim_error(
            StatusCode::NOT_FOUND,
            "scim_resource_not_found",
            &format!("Group {group} does not exist"),
        ));
    }
    let Some(u) = ctx.store.user(user).await? else {
        return Ok(scim_error(
            StatusCode::NOT_FOUND,
            "scim_resource_not_found",
            &format!("User {user} does not exist"),
        ));
    };
    let mut groups: Vec<&str> = u.groups().filter(|g| *g != group).collect();
    if on {
        groups.push(group);
    }
    ctx.store
        .set_user_groups(&u.guid, &groups.join(" "))
        .await?;
    let status = if on {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"value": u.guid, "type": "USER", "origin": u.origin})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_filters() {
        assert_eq!(
            parse_filter(r#"userName eq "bob""#),
            Ok(("bob".into(), None))
        );
        assert_eq!(
            parse_filter(r#"userName eq "bob" and origin eq "uaa""#),
            Ok(("bob".into(), Some("uaa".into())))
        );
        assert_eq!(
            parse_filter(r#"username EQ "a b""#),
            Ok(("a b".into(), None))
        );
        assert!(parse_filter(r#"userName co "b""#).is_err());
        assert!(parse_filter(r#"origin eq "uaa""#).is_err());
        assert!(parse_filter("userName eq bob").is_err());
    }
}
