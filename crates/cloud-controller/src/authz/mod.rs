//! Authorization in one place (docs/architecture.md §17): the permission
//! matrix (`matrix`), every route's rule (`policy`), the caller's roles
//! (`perms`) and the layer that applies them to each request.

pub mod matrix;
pub mod perms;
pub mod policy;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use crate::store::SpaceScope;
pub use crate::store::Target;
pub use matrix::{Action, Decision, Who};
pub use perms::{Perms, Scope};
pub use policy::Rule;

use crate::auth::{self, TokenKind};
use crate::context::{Actor, Ctx};
use crate::error::ApiError;

/// Scopes every user's token carries.
pub const USER_SCOPES: &[&str] = &[
    "openid",
    "cloud_controller.read",
    "cloud_controller.write",
    "password.write",
    "scim.me",
    "uaa.user",
];

/// A user's scopes: every user's, plus its groups (admin and the global
/// read-only roles).
pub fn scopes_of(user: &crate::store::User) -> Vec<String> {
    let mut s: Vec<String> = USER_SCOPES.iter().map(|s| s.to_string()).collect();
    for g in user.groups() {
        if !s.iter().any(|x| x == g) {
            s.push(g.to_string());
        }
    }
    s
}

/// The layer on every API route: a live token of an existing user, the
/// read/write scope for the method, then the route's rule.
pub async fn layer(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    match authorize(&ctx, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn authorize(ctx: &Ctx, req: Request) -> Result<Request, ApiError> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
        .ok_or(ApiError::InvalidAuthToken)?;
    let claims = ctx
        .verify_token(token, TokenKind::Access)
        .await
        .map_err(|_| ApiError::InvalidAuthToken)?;
    // The user must still exist, and its password must not have changed
    // since the token was issued.
    let user = ctx
        .store
        .user(&claims.sub)
        .await?
        .filter(|u| u.token_generation == claims.rev)
        .ok_or(ApiError::InvalidAuthToken)?;
    let has = |s: &str| claims.scope.iter().any(|x| x == s);
    let admin = has("cloud_controller.admin");
    let reading = req.method() == Method::GET || req.method() == Method::HEAD;
    let scope_ok = if reading {
        admin
            || has("cloud_controller.read")
            || has("cloud_controller.admin_read_only")
            || has("cloud_controller.global_auditor")
    } else {
        admin || has("cloud_controller.write")
    };
    if !scope_ok {
        return Err(ApiError::not_authorized());
    }
    let roles = if admin {
        Vec::new()
    } else {
        ctx.store.roles_of_user(&user.guid).await?
    };
    let perms = Perms::new(&user.guid, &user.username, &claims.scope, roles);
    let (mut parts, body) = req.into_parts();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(rule) = policy::rule(parts.method.as_str(), &path) else {
        tracing::warn!(method = %parts.method, path, "route has no authorization rule");
        return Err(ApiError::not_authorized());
    };
    match rule {
        Rule::Caller => {}
        Rule::Scim => {
            let reading = parts.method == Method::GET || parts.method == Method::HEAD;
            let ok =
                admin || has("uaa.admin") || has("scim.write") || (reading && has("scim.read"));
            if !ok {
                return Err(ApiError::not_authorized());
            }
        }
        Rule::Platform(action) => perms.check(action, Scope::Platform, "Resource")?,
        Rule::On(target, action) => {
            let guid = match RawPathParams::from_request_parts(&mut parts, &()).await {
                Ok(p) => p
                    .iter()
                    .find(|(k, _)| *k == "guid")
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            check_target(ctx, &perms, target, action, &guid).await?;
        }
    }
    parts.extensions.insert(Actor {
        guid: user.guid.clone(),
        name: user.username.clone(),
        kind: "user",
    });
    parts.extensions.insert(perms);
    Ok(Request::from_parts(parts, body))
}

/// Applies `action` to the resource `guid` of kind `target`.
pub async fn check_target(
    ctx: &Ctx,
    perms: &Perms,
    target: Target,
    action: Action,
    guid: &str,
) -> Result<(), ApiError> {
    let noun = target.noun();
    let at = ctx
        .store
        .locate(target, guid)
        .await?
        .ok_or_else(|| ApiError::not_found(noun))?;
    let (action, scope) = match target {
        // Space roles are managed by space managers too; roles are seen
        // by whoever sees their org.
        Target::Role if !at.space.is_empty() && action == Action::ManageOrgRoles => (
            Action::ManageSpaceRoles,
            Scope::Space {
                org: &at.org,
                space: &at.space,
            },
        ),
        Target::Domain if at.org.is_empty() => match action {
            Action::ReadOrg => (Action::ReadGlobal, Scope::Platform),
            _ => (Action::AdminOnly, Scope::Platform),
        },
        Target::AuditEvent if at.space.is_empty() => {
            if at.org.is_empty() {
                return if perms.reads_everything() {
                    Ok(())
                } else {
                    Err(ApiError::not_found(noun))
                };
            }
            (Action::ReadOrg, Scope::Org(&at.org))
        }
        _ if at.space.is_empty() => (action, Scope::Org(&at.org)),
        _ => (
            action,
            Scope::Space {
                org: &at.org,
                space: &at.space,
            },
        ),
    };
    match perms.check(action, scope, noun) {
        // Secrets are not even shown to exist to those who may not read
        // them (CF: a binding's details are 404, not 403).
        Err(ApiError::Forbidden(_))
            if target == Target::ServiceBinding && action == Action::ReadSystemEnv =>
        {
            Err(ApiError::not_found(noun))
        }
        r => r,
    }
}

/// CF's 422 for a space named in a request body that does not exist or
/// that the caller may not see.
pub const INVALID_SPACE: &str =
    "Invalid space. Ensure that the space exists and you have access to it.";

/// For a space named in a request body: the space when the caller may take
/// `action` there; 422 `invalid` when it does not exist or is invisible;
/// 403 when visible but not allowed.
pub async fn require_in_space(
    ctx: &Ctx,
    perms: &Perms,
    action: Action,
    space_guid: &str,
    invalid: &str,
) -> Result<crate::store::Space, ApiError> {
    let space = ctx
        .store
        .space(space_guid)
        .await
        .map_err(|_| ApiError::Unprocessable(invalid.into()))?;
    let scope = Scope::Space {
        org: &space.organization_guid,
        space: &space.guid,
    };
    match perms.decide(action, scope) {
        Decision::Allow => Ok(space),
        Decision::Forbidden => Err(ApiError::not_authorized()),
        Decision::NotFound => Err(ApiError::Unprocessable(invalid.into())),
    }
}
