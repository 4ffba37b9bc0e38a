//! `/v3/roles`: the eight CF role types, in orgs and spaces.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, page_of, parse_json, BaseUrl, PageReq, Query};
use crate::authz::matrix::ROLE_TYPES;
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Role, RoleFilter, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/roles", get(list).post(create))
        .route("/v3/roles/{guid}", get(show).delete(remove))
}

pub fn present(base: &BaseUrl, r: &Role) -> Value {
    let (org, space) = if r.is_space_role() {
        (Value::Null, json!({"guid": r.space_guid}))
    } else {
        (json!({"guid": r.organization_guid}), Value::Null)
    };
    let mut links = json!({
        "self": base.link(&format!("/v3/roles/{}", r.guid)),
        "user": base.link(&format!("/v3/users/{}", r.user_guid)),
    });
    if r.is_space_role() {
        links["space"] = base.link(&format!("/v3/spaces/{}", r.space_guid));
    } else {
        links["organization"] = base.link(&format!("/v3/organizations/{}", r.organization_guid));
    }
    json!({
        "guid": r.guid,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "type": r.kind,
        "relationships": {
            "user": {"data": {"guid": r.user_guid}},
            "organization": {"data": org},
            "space": {"data": space},
        },
        "links": links,
    })
}

#[derive(Debug, Deserialize)]
struct UserRef {
    #[serde(default)]
    guid: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    origin: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserRel {
    data: UserRef,
}

#[derive(Debug, Deserialize)]
struct Relationships {
    user: UserRel,
    #[serde(default)]
    organization: Option<super::ToOne>,
    #[serde(default)]
    space: Option<super::ToOne>,
}

#[derive(Debug, Deserialize)]
struct CreateRole {
    #[serde(rename = "type")]
    kind: String,
    relationships: Relationships,
}

const INVALID_ORG: &str =
    "Invalid organization. Ensure that the organization exists and you have access to it.";
const INVALID_SPACE: &str =
    "Invalid space. Ensure that the space exists and you have access to it.";

fn event_kind(role: &str, add: bool) -> String {
    format!("audit.user.{role}_{}", if add { "add" } else { "remove" })
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateRole = parse_json(&body)?;
    if !ROLE_TYPES.contains(&req.kind.as_str()) {
        return Err(ApiError::Unprocessable(format!(
            "Type must be one of the allowed types: {}",
            ROLE_TYPES.join(", ")
        )));
    }
    let space_role = req.kind.starts_with("space_");
    // Where: visible or 422, allowed or 403.
    let (org, space) = if space_role {
        let guid = req
            .relationships
            .space
            .map(|s| s.data.guid)
            .ok_or_else(|| ApiError::Unprocessable("Space can't be blank".into()))?;
        let space = ctx
            .store
            .space(&guid)
            .await
            .map_err(|_| ApiError::Unprocessable(INVALID_SPACE.into()))?;
        let scope = Scope::Space {
            org: &space.organization_guid,
            space: &space.guid,
        };
        // Org managers see spaces they manage; others need the space.
        match perms.decide(Action::ManageSpaceRoles, scope) {
            Decision::Allow => {}
            Decision::Forbidden => return Err(ApiError::not_authorized()),
            Decision::NotFound => return Err(ApiError::Unprocessable(INVALID_SPACE.into())),
        }
        let org = ctx.store.org(&space.organization_guid).await?;
        (org, Some(space))
    } else {
        let guid = req
            .relationships
            .organization
            .map(|o| o.data.guid)
            .ok_or_else(|| ApiError::Unprocessable("Organization can't be blank".into()))?;
        let org = ctx
            .store
            .org(&guid)
            .await
            .map_err(|_| ApiError::Unprocessable(INVALID_ORG.into()))?;
        match perms.decide(Action::ManageOrgRoles, Scope::Org(&org.guid)) {
            Decision::Allow => {}
            Decision::Forbidden => return Err(ApiError::not_authorized()),
            Decision::NotFound => return Err(ApiError::Unprocessable(INVALID_ORG.into())),
        }
        (org, None)
    };
    // Who: by guid, or by username and origin (a controller record is
    // made on first use, as CF does).
    let u = req.relationships.user.data;
    let user = match (&u.guid, &u.username) {
        (Some(g), _) => ctx.store.user(g).await?.ok_or_else(|| {
            ApiError::Unprocessable(
                "Invalid user. Ensure that the user exists and you have access to it.".into(),
            )
        })?,
        (None, Some(name)) => {
            let origin = u.origin.clone().unwrap_or_else(|| "uaa".into());
            ctx.store
                .user_by_name(name)
                .await?
                .filter(|x| x.origin == origin)
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "No user exists with the username '{name}' and origin '{origin}'."
                    ))
                })?
        }
        (None, None) => {
            return Err(ApiError::Unprocessable(
                "User must have a guid or a username".into(),
            ))
        }
    };
    ctx.store.add_cc_user(&user.guid).await?;
    if space.is_some() {
        let in_org = ctx
            .store
            .roles(&RoleFilter {
                user_guids: Some(vec![user.guid.clone()]),
                organization_guids: Some(vec![org.guid.clone()]),
                ..Default::default()
            })
            .await?
            .iter()
            .any(|r| !r.is_space_role());
        if !in_org {
            return Err(ApiError::Unprocessable(
                "Users cannot be assigned roles in a space if they do not have a role in that space's organization.".into(),
            ));
        }
    }
    let space_guid = space.as_ref().map(|s| s.guid.as_str()).unwrap_or("");
    let role = ctx
        .store
        .create_role(&req.kind, &user.guid, &org.guid, space_guid)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Unprocessable(match &space {
                Some(s) => format!(
                    "User '{}' already has '{}' role in space '{}'.",
                    user.username, req.kind, s.name
                ),
                None => format!(
                    "User '{}' already has '{}' role in organization '{}'.",
                    user.username, req.kind, org.name
                ),
            }),
            other => other.into(),
        })?;
    ctx.audit(
        &actor,
        &event_kind(&req.kind, true),
        AuditTarget {
            kind: "user",
            guid: &user.guid,
            name: &user.username,
            space: space.as_ref().map(|s| s.guid.as_str()),
            org: Some(&org.guid),
        },
        json!({"request": {"type": req.kind}}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(present(&base, &role))))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let f = RoleFilter {
        types: filter(&q, "types"),
        space_guids: filter(&q, "space_guids"),
        organization_guids: filter(&q, "organization_guids"),
        user_guids: filter(&q, "user_guids"),
        guids: filter(&q, "guids"),
        visible_to: (!perms.reads_everything()).then(|| perms.user_guid.clone()),
    };
    let page = PageReq::from_query(&q)?;
    let (total, roles) = ctx.store.roles_page(&f, page.window()).await?;
    let items: Vec<Value> = roles.iter().map(|r| present(&base, r)).collect();
    let mut page = page_of(&base, "/v3/roles", &q, page, total, items);
    // The users, spaces and orgs of this page's roles (as CF).
    if let Some(include) = q.get("include") {
        page["included"] = included(&ctx, &base, include, &roles).await?;
    }
    Ok(Json(page))
}

/// `include=user,space,organization` for a list of roles.
async fn included(ctx: &Ctx, base: &BaseUrl, include: &str, roles: &[Role]) -> ApiResult<Value> {
    let mut out = json!({});
    for what in include.split(',') {
        match what {
            "user" => {
                let mut guids: Vec<&str> = roles.iter().map(|r| r.user_guid.as_str()).collect();
                guids.sort();
                guids.dedup();
                let mut users = Vec::new();
                for g in guids {
                    if let Ok(u) = ctx.store.cc_user(g).await {
                        users.push(super::users::present(base, &u));
                    }
                }
                out["users"] = json!(users);
            }
            "space" => {
                let mut guids: Vec<&str> = roles
                    .iter()
                    .filter(|r| r.is_space_role())
                    .map(|r| r.space_guid.as_str())
                    .collect();
                guids.sort();
                guids.dedup();
                let mut spaces = Vec::new();
                for g in guids {
                    if let Ok(s) = ctx.store.space(g).await {
                        spaces.push(super::spaces::present(base, &s));
                    }
                }
                out["spaces"] = json!(spaces);
            }
            "organization" => {
                let mut guids: Vec<&str> = roles
                    .iter()
                    .map(|r| r.organization_guid.as_str())
                    .collect();
                guids.sort();
                guids.dedup();
                let mut orgs = Vec::new();
                for g in guids {
                    if let Ok(o) = ctx.store.org(g).await {
                        orgs.push(super::orgs::present(base, &o));
                    }
                }
                out["organizations"] = json!(orgs);
            }
            other => {
                return Err(ApiError::BadQuery(format!(
                    "Invalid included resource: '{other}'. Valid included resources are: 'user', 'space', 'organization'"
                )))
            }
        }
    }
    Ok(out)
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.role(&guid).await?)))
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let role = ctx.store.role(&guid).await?;
    if role.kind == "organization_user" {
        let space_roles = ctx
            .store
            .roles(&RoleFilter {
                user_guids: Some(vec![role.user_guid.clone()]),
                organization_guids: Some(vec![role.organization_guid.clone()]),
                ..Default::default()
            })
            .await?
            .iter()
            .any(Role::is_space_role);
        if space_roles {
            return Err(ApiError::Unprocessable(
                "Cannot delete organization_user role while user has roles in spaces in that organization.".into(),
            ));
        }
    }
    ctx.store.delete_role(&guid).await?;
    let name = ctx
        .store
        .user(&role.user_guid)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    ctx.audit(
        &actor,
        &event_kind(&role.kind, false),
        AuditTarget {
            kind: "user",
            guid: &role.user_guid,
            name: &name,
            space: role.is_space_role().then_some(role.space_guid.as_str()),
            org: Some(&role.organization_guid),
        },
        json!({"request": {"type": role.kind}}),
    )
    .await;
    super::jobs::accepted(&ctx, &base, "role.delete").await
}
