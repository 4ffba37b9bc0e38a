//! `/v3/domains`: shared domains (admin) and private domains owned by an
//! org and shared with others.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, BaseUrl, PageReq, Query, ToMany, ToOne};
use crate::authz::{Action, Decision, Perms, Scope};
use crate::context::{Actor, AuditTarget, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Domain, DomainFilter, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/domains", get(list).post(create))
        .route("/v3/domains/{guid}", get(show).delete(remove))
        .route(
            "/v3/domains/{guid}/relationships/shared_organizations",
            post(share),
        )
        .route(
            "/v3/domains/{guid}/relationships/shared_organizations/{org}",
            delete(unshare),
        )
}

pub fn present(base: &BaseUrl, d: &Domain, shared_with: &[String]) -> Value {
    let owner = match &d.organization_guid {
        Some(o) => json!({"data": {"guid": o}}),
        None => json!({"data": null}),
    };
    let shared: Vec<Value> = shared_with.iter().map(|g| json!({"guid": g})).collect();
    let mut links = json!({
        "self": base.link(&format!("/v3/domains/{}", d.guid)),
        "route_reservations": base.link(&format!("/v3/domains/{}/route_reservations", d.guid)),
    });
    if let Some(o) = &d.organization_guid {
        links["organization"] = base.link(&format!("/v3/organizations/{o}"));
        links["shared_organizations"] = base.link(&format!(
            "/v3/domains/{}/relationships/shared_organizations",
            d.guid
        ));
    }
    json!({
        "guid": d.guid,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "name": d.name,
        "internal": d.internal != 0,
        "router_group": null,
        "supported_protocols": ["http"],
        "metadata": metadata(),
        "relationships": {"organization": owner, "shared_organizations": {"data": shared}},
        "links": links,
    })
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = DomainFilter {
        names: filter(&q, "names"),
        member: (!perms.reads_everything()).then(|| perms.user_guid.clone()),
        usable_by: None,
    };
    let (total, domains) = ctx.store.domains_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(domains.len());
    for d in &domains {
        let shared = ctx.store.domain_shared_with(&d.guid).await?;
        items.push(present(&base, d, &shared));
    }
    Ok(Json(page_of(&base, "/v3/domains", &q, page, total, items)))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = ctx.store.domain(&guid).await?;
    let shared = ctx.store.domain_shared_with(&d.guid).await?;
    Ok(Json(present(&base, &d, &shared)))
}

#[derive(Debug, Deserialize, Default)]
struct DomainRels {
    #[serde(default)]
    organization: Option<ToOne>,
    #[serde(default)]
    shared_organizations: Option<ToMany>,
}

#[derive(Debug, Deserialize)]
struct CreateDomain {
    name: String,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    relationships: Option<DomainRels>,
}

/// RFC 1035 host names: labels of letters, digits and hyphens, at least
/// two labels, 253 characters at most.
pub fn valid_domain_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `name` equals or sits under `parent`.
fn under(name: &str, parent: &str) -> bool {
    name == parent || name.ends_with(&format!(".{parent}"))
}

const INVALID_ORG: &str =
    "Invalid organization. Ensure that the organization exists and you have access to it.";

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateDomain = parse_json(&body)?;
    let name = req.name.trim().to_ascii_lowercase();
    if !valid_domain_name(&name) {
        return Err(ApiError::Unprocessable(
            "Name does not comply with RFC 1035 standards; Name must contain at least one \".\""
                .into(),
        ));
    }
    let rels = req.relationships.unwrap_or_default();
    let owner = rels.organization.map(|o| o.data.guid);
    match &owner {
        None => perms.check(Action::AdminOnly, Scope::Platform, "Domain")?,
        Some(org) => {
            ctx.store
                .org(org)
                .await
                .map_err(|_| ApiError::Unprocessable(INVALID_ORG.into()))?;
            match perms.decide(Action::ManageOrgDomainsAndQuotas, Scope::Org(org)) {
                Decision::Allow => {}
                Decision::Forbidden => return Err(ApiError::not_authorized()),
                Decision::NotFound => return Err(ApiError::Unprocessable(INVALID_ORG.into())),
            }
            if !perms.is_admin()
                && !super::feature_flags::enabled(&ctx, "private_domain_creation").await?
            {
                return Err(ApiError::Forbidden(
                    "Feature Disabled: private_domain_creation".into(),
                ));
            }
        }
    }
    // No one takes a domain under another org's (or the system) domain:
    // `api.sys.example.com` as a private domain would capture the API.
    if !perms.is_admin() {
        for d in ctx.store.domains().await? {
            let theirs = match (&d.organization_guid, &owner) {
                (Some(o), Some(mine)) => o != mine,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if (theirs || d.name == ctx.cfg.system_domain) && under(&name, &d.name) {
                return Err(ApiError::Unprocessable(format!(
                    "The domain name \"{name}\" cannot be created because \"{}\" is already reserved by another domain",
                    d.name
                )));
            }
        }
    }
    let d = ctx
        .store
        .create_domain(&name, req.internal, owner.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::Unprocessable(format!("The domain name \"{name}\" is already in use"))
            }
            other => other.into(),
        })?;
    let mut shared = Vec::new();
    if let (Some(_), Some(list)) = (&owner, rels.shared_organizations) {
        for o in list.data {
            share_one(&ctx, &perms, &d, &o.guid).await?;
            shared.push(o.guid);
        }
    }
    ctx.audit(
        &actor,
        "audit.domain.create",
        AuditTarget {
            kind: "domain",
            guid: &d.guid,
            name: &d.name,
            space: None,
            org: owner.as_deref(),
        },
        Value::Null,
    )
    .await;
    Ok((StatusCode::CREATED, Json(present(&base, &d, &shared))))
}

async fn share_one(ctx: &Ctx, perms: &Perms, d: &Domain, org: &str) -> ApiResult<()> {
    let bad = || {
        ApiError::Unprocessable(format!(
            "Organization with guid '{org}' does not exist, or you do not have access to it."
        ))
    };
    ctx.store.org(org).await.map_err(|_| bad())?;
    if !perms.may(Action::ManageOrgDomainsAndQuotas, Scope::Org(org)) {
        return Err(bad());
    }
    if d.organization_guid.as_deref() == Some(org) {
        return Err(ApiError::Unprocessable(
            "Unable to share domain with the organization that owns it.".into(),
        ));
    }
    ctx.store.share_domain(&d.guid, org).await?;
    Ok(())
}

async fn share(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ToMany = parse_json(&body)?;
    let d = ctx.store.domain(&guid).await?;
    if d.organization_guid.is_none() {
        return Err(ApiError::Unprocessable(
            "Domains cannot be shared with other organizations unless they are scoped to an organization."
                .into(),
        ));
    }
    for o in &req.data {
        share_one(&ctx, &perms, &d, &o.guid).await?;
    }
    let shared = ctx.store.domain_shared_with(&guid).await?;
    let data: Vec<Value> = shared.iter().map(|g| json!({"guid": g})).collect();
    Ok(Json(json!({"data": data})))
}

async fn unshare(
    State(ctx): State<Ctx>,
    Path((guid, org)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.store.domain(&guid).await?;
    ctx.store.unshare_domain(&guid, &org).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let d = ctx.store.domain(&guid).await?;
    if d.name == ctx.cfg.system_domain || d.name == ctx.cfg.apps_domain {
        return Err(ApiError::Unprocessable(
            "The platform's system and apps domains cannot be deleted.".into(),
        ));
    }
    if ctx
        .store
        .routes()
        .await?
        .iter()
        .any(|r| r.domain_guid == guid)
    {
        return Err(ApiError::Unprocessable(format!(
            "Domain '{}' has routes; delete them first.",
            d.name
        )));
    }
    ctx.store.delete_domain(&guid).await?;
    ctx.audit(
        &actor,
        "audit.domain.delete-request",
        AuditTarget {
            kind: "domain",
            guid: &d.guid,
            name: &d.name,
            space: None,
            org: d.organization_guid.as_deref(),
        },
        Value::Null,
    )
    .await;
    super::jobs::accepted(&ctx, &base, "domain.delete").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        assert!(valid_domain_name("example.com"));
        assert!(valid_domain_name("a-b.c.example.com"));
        assert!(!valid_domain_name("example"));
        assert!(!valid_domain_name("-a.com"));
        assert!(!valid_domain_name("a..com"));
        assert!(!valid_domain_name("a_b.com"));
        assert!(under("api.sys.localhost", "sys.localhost"));
        assert!(under("sys.localhost", "sys.localhost"));
        assert!(!under("xsys.localhost", "sys.localhost"));
    }
}
