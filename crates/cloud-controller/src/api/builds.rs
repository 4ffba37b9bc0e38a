//! `/v3/builds`: create (staging runs in the background) and show.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, rel, BaseUrl, GuidRef, PageReq, Query};
use crate::authz::{Action, Perms, SpaceScope};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Build, BuildFilter, PackageState};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/builds", get(list).post(create))
        .route("/v3/builds/{guid}", get(show))
        .route("/v3/apps/{guid}/builds", get(list_of_app))
}

/// `GET /v3/builds` (filters `app_guids`, `states`, `guids`), oldest first.
async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    list_of(&ctx, &base, &q, None, "/v3/builds", perms.space_scope()).await
}

/// `GET /v3/apps/:guid/builds` (the same filters).
async fn list_of_app(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    ctx.store.app(&guid).await?;
    let path = format!("/v3/apps/{guid}/builds");
    list_of(&ctx, &base, &q, Some(&guid), &path, SpaceScope::All).await
}

/// The app's own list needs no scope: the policy checked the app.
async fn list_of(
    ctx: &Ctx,
    base: &BaseUrl,
    q: &Query,
    app: Option<&str>,
    path: &str,
    scope: SpaceScope,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(q)?;
    let f = BuildFilter {
        app: app.map(str::to_string),
        app_guids: filter(q, "app_guids"),
        states: filter(q, "states"),
        guids: filter(q, "guids"),
        scope,
    };
    let (total, builds) = ctx.store.builds_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(builds.len());
    for b in &builds {
        items.push(present(ctx, base, b).await);
    }
    Ok(Json(page_of(base, path, q, page, total, items)))
}

async fn present(ctx: &Ctx, base: &BaseUrl, b: &Build) -> Value {
    let (buildpacks, stack) = match ctx.store.app(&b.app_guid).await {
        Ok(a) => (a.buildpacks(), a.stack),
        Err(_) => (Vec::new(), "host".to_string()),
    };
    let mut links = json!({
        "self": base.link(&format!("/v3/builds/{}", b.guid)),
        "app": base.link(&format!("/v3/apps/{}", b.app_guid)),
    });
    if let Some(d) = &b.droplet_guid {
        links["droplet"] = base.link(&format!("/v3/droplets/{d}"));
    }
    json!({
        "guid": b.guid,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "state": b.state,
        "staging_memory_in_mb": crate::staging::STAGING_MEMORY_MB,
        "staging_disk_in_mb": crate::staging::STAGING_DISK_MB,
        "error": b.error_text(),
        "error_code": b.error_id.as_deref().and_then(proto::StagingErrorId::from_name).map(|i| format!("CF-{i}")),
        "lifecycle": {"type": "buildpack", "data": {"buildpacks": buildpacks, "stack": stack}},
        "package": {"guid": b.package_guid},
        "droplet": b.droplet_guid.as_ref().map(|d| json!({"guid": d, "href": format!("{}/v3/droplets/{d}", base.0)})),
        "created_by": {"guid": b.created_by_guid, "name": b.created_by_name, "email": ""},
        "relationships": {"app": rel(&b.app_guid)},
        "metadata": metadata(),
        "links": links,
    })
}

#[derive(Debug, Deserialize)]
struct CreateBuild {
    package: GuidRef,
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateBuild = parse_json(&body)?;
    const UNUSABLE: &str =
        "Unable to use package. Ensure that the package exists and you have access to it.";
    let pkg = ctx
        .store
        .package(&req.package.guid)
        .await
        .map_err(|_| ApiError::Unprocessable(UNUSABLE.into()))?;
    let app = ctx
        .store
        .app(&pkg.app_guid)
        .await
        .map_err(|_| ApiError::Unprocessable(UNUSABLE.into()))?;
    crate::authz::require_in_space(&ctx, &perms, Action::WriteSpace, &app.space_guid, UNUSABLE)
        .await?;
    if pkg.state != PackageState::Ready {
        return Err(ApiError::Unprocessable(format!(
            "Package must be READY to stage (it is {})",
            pkg.state
        )));
    }
    let build = ctx
        .store
        .create_build(&pkg.app_guid, &pkg.guid, &actor.guid, &actor.name)
        .await?;
    if let Ok(app) = ctx.store.app(&pkg.app_guid).await {
        ctx.audit_app(
            &actor,
            "audit.app.build.create",
            &app,
            json!({"build_guid": build.guid, "package_guid": pkg.guid}),
        )
        .await;
    }
    // The staging loop hands it to a DEA (at once: woken now).
    ctx.staging.wake();
    Ok((
        StatusCode::CREATED,
        Json(present(&ctx, &base, &build).await),
    )
        .into_response())
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let b = ctx.store.build(&guid).await?;
    Ok(Json(present(&ctx, &base, &b).await))
}
