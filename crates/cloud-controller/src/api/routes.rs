//! `/v3/routes` and their destinations.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, rel, BaseUrl, GuidRef, PageReq, Query, ToOne};
use crate::authz::{Action, Perms};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Route, RouteFilter, RouteUrl, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/routes", get(list).post(create))
        .route("/v3/routes/{guid}", get(show).delete(remove))
        .route(
            "/v3/routes/{guid}/destinations",
            get(destinations).post(add_destinations),
        )
        .route(
            "/v3/routes/{guid}/destinations/{dest}",
            delete(remove_destination),
        )
}

async fn destinations_json(ctx: &Ctx, route_guid: &str) -> ApiResult<Vec<Value>> {
    Ok(ctx
        .store
        .destinations(route_guid)
        .await?
        .iter()
        .map(|d| json!({"guid": d.guid, "app": {"guid": d.app_guid, "process": {"type": d.process_type}}, "weight": null, "port": 8080, "protocol": "http1"}))
        .collect())
}

pub async fn present(ctx: &Ctx, base: &BaseUrl, r: &Route) -> ApiResult<Value> {
    let domain = ctx.store.domain(&r.domain_guid).await?;
    let url = RouteUrl {
        route: r.clone(),
        domain: domain.name,
    }
    .url();
    let path = format!("/v3/routes/{}", r.guid);
    Ok(json!({
        "guid": r.guid,
        "protocol": "http",
        "port": null,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "host": r.host,
        "path": r.path,
        "url": url,
        "destinations": destinations_json(ctx, &r.guid).await?,
        "options": {},
        "metadata": metadata(),
        "relationships": {"space": rel(&r.space_guid), "domain": rel(&r.domain_guid)},
        "links": {
            "self": base.link(&path),
            "space": base.link(&format!("/v3/spaces/{}", r.space_guid)),
            "domain": base.link(&format!("/v3/domains/{}", r.domain_guid)),
            "destinations": base.link(&format!("{path}/destinations")),
        },
    }))
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = RouteFilter {
        hosts: filter(&q, "hosts"),
        paths: filter(&q, "paths"),
        domain_guids: filter(&q, "domain_guids"),
        space_guids: filter(&q, "space_guids"),
        organization_guids: filter(&q, "organization_guids"),
        app_guids: filter(&q, "app_guids"),
        scope: perms.space_scope(),
    };
    let (total, routes) = ctx.store.routes_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(routes.len());
    for r in &routes {
        items.push(present(&ctx, &base, r).await?);
    }
    Ok(Json(page_of(&base, "/v3/routes", &q, page, total, items)))
}

#[derive(Debug, Deserialize)]
struct RouteRels {
    domain: ToOne,
    space: ToOne,
}

#[derive(Debug, Deserialize)]
struct CreateRoute {
    #[serde(default)]
    host: String,
    #[serde(default)]
    path: String,
    relationships: RouteRels,
}

fn valid_host(h: &str) -> bool {
    h.len() <= 63
        && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateRoute = parse_json(&body)?;
    let host = req.host.to_ascii_lowercase();
    if !valid_host(&host) {
        return Err(ApiError::Unprocessable(
            "Host must be letters, digits and '-' (at most 63 characters)".into(),
        ));
    }
    let path = req.path.trim_end_matches('/').to_string();
    if !path.is_empty() && (!path.starts_with('/') || path.contains('?') || path.contains(' ')) {
        return Err(ApiError::Unprocessable(
            "Path must start with a '/' and contain no '?' or spaces".into(),
        ));
    }
    let domain_guid = req.relationships.domain.data.guid;
    let space_guid = req.relationships.space.data.guid;
    let space = crate::authz::require_in_space(
        &ctx,
        &perms,
        Action::ManageApp,
        &space_guid,
        crate::authz::INVALID_SPACE,
    )
    .await?;
    // The domain must be shared or usable by the space's org: the system
    // domain belongs to the system org, so only admins route on it.
    let invalid_domain = || {
        ApiError::Unprocessable(
            "Invalid domain. Ensure that the domain exists and you have access to it.".into(),
        )
    };
    let domain = ctx
        .store
        .domain(&domain_guid)
        .await
        .map_err(|_| invalid_domain())?;
    if !perms.is_admin()
        && !ctx
            .store
            .domain_usable_by(&domain, &space.organization_guid)
            .await?
    {
        return Err(invalid_domain());
    }
    // CF: a bare shared domain would take every request for it.
    if host.is_empty() && domain.organization_guid.is_none() {
        return Err(ApiError::Unprocessable(
            "Missing host. Routes in shared domains must have a host defined.".into(),
        ));
    }
    // A host on a domain belongs to one space (CF).
    let taken = ctx
        .store
        .routes()
        .await?
        .into_iter()
        .find(|r| r.domain_guid == domain_guid && r.host == host);
    if let Some(t) = &taken {
        if t.space_guid != space_guid {
            return Err(ApiError::Unprocessable(
                "Routes for this host and domain have been reserved for another space.".into(),
            ));
        }
    }
    crate::quota::check_new_route(&ctx, &space).await?;
    let r = ctx
        .store
        .create_route(&host, &domain_guid, &path, &space_guid)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) if path.is_empty() => ApiError::Uniqueness(format!(
                "Route already exists with host '{host}' for domain '{}'.",
                domain.name
            )),
            StoreError::Conflict(_) => ApiError::Uniqueness(format!(
                "Route already exists with host '{host}' and path '{path}' for domain '{}'.",
                domain.name
            )),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(present(&ctx, &base, &r).await?)).into_response())
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = ctx.store.route(&guid).await?;
    Ok(Json(present(&ctx, &base, &r).await?))
}

async fn remove(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    ctx.store.route(&guid).await?;
    let apps: BTreeSet<String> = ctx
        .store
        .destinations(&guid)
        .await?
        .into_iter()
        .map(|d| d.app_guid)
        .collect();
    ctx.store.delete_route(&guid).await?;
    for app in apps {
        ctx.update_routes(&app).await?;
    }
    super::jobs::accepted(&ctx, &base, "route.delete").await
}

fn destinations_body(base: &BaseUrl, route_guid: &str, destinations: Vec<Value>) -> Value {
    json!({
        "destinations": destinations,
        "links": {
            "self": base.link(&format!("/v3/routes/{route_guid}/destinations")),
            "route": base.link(&format!("/v3/routes/{route_guid}")),
        },
    })
}

async fn destinations(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.store.route(&guid).await?;
    Ok(Json(destinations_body(
        &base,
        &guid,
        destinations_json(&ctx, &guid).await?,
    )))
}

#[derive(Debug, Deserialize)]
struct Destination {
    app: GuidRef,
}

#[derive(Debug, Deserialize)]
struct AddDestinations {
    destinations: Vec<Destination>,
}

async fn add_destinations(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: AddDestinations = parse_json(&body)?;
    let route = ctx.store.route(&guid).await?;
    let mut apps = Vec::new();
    for d in &req.destinations {
        let app = ctx.store.app(&d.app.guid).await.map_err(|_| {
            ApiError::Unprocessable(format!(
                "App with guid '{}' does not exist or you do not have access to it.",
                d.app.guid
            ))
        })?;
        if app.space_guid != route.space_guid {
            return Err(ApiError::Unprocessable(
                "Routes cannot be mapped to destinations in different spaces.".into(),
            ));
        }
        apps.push(app);
    }
    for app in &apps {
        ctx.store.add_destination(&route.guid, &app.guid).await?;
        ctx.update_routes(&app.guid).await?;
        ctx.audit_app(
            &actor,
            "audit.app.map-route",
            app,
            json!({"route_guid": route.guid}),
        )
        .await;
    }
    Ok(Json(destinations_body(
        &base,
        &guid,
        destinations_json(&ctx, &guid).await?,
    )))
}

async fn remove_destination(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Path((guid, dest)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.store.route(&guid).await?;
    let d = ctx.store.remove_destination(&guid, &dest).await?;
    ctx.update_routes(&d.app_guid).await?;
    if let Ok(app) = ctx.store.app(&d.app_guid).await {
        ctx.audit_app(
            &actor,
            "audit.app.unmap-route",
            &app,
            json!({"route_guid": guid}),
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
