//! Internal API for components: desired state (Bearer internal token) and
//! signed blob endpoints for DEAs.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use proto::desired::{DesiredApp, DesiredPage};
use serde_json::json;

use super::Query;
use crate::auth;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/internal/v1/desired", get(desired))
        .route("/internal/v1/route_assignments", get(route_assignments))
        .route(
            "/internal/v1/packages/{guid}/download",
            get(package_download),
        )
        .route(
            "/internal/v1/droplets/{guid}/upload",
            put(droplet_upload)
                .post(droplet_upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/internal/v1/droplets/{guid}/download",
            get(droplet_download),
        )
        .route(
            "/internal/v1/buildpack_cache/{guid}",
            get(cache_download)
                .put(cache_upload)
                .post(cache_upload)
                .layer(DefaultBodyLimit::disable()),
        )
}

/// The internal token, compared in constant time.
fn require_internal(ctx: &Ctx, headers: &HeaderMap) -> ApiResult<()> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
        .unwrap_or_default();
    let key: &[u8] = &ctx.blob_key;
    if ctx.cfg.internal_api_token.is_empty() {
        return Err(ApiError::InvalidAuthToken);
    }
    let want = auth::hmac_sha256(key, ctx.cfg.internal_api_token.as_bytes());
    if !auth::hmac_verify(key, token.as_bytes(), &want) {
        return Err(ApiError::InvalidAuthToken);
    }
    Ok(())
}

/// Which app may register which route (the router checks every
/// `router.register` against it); routes of the system org's spaces
/// without apps are the platform's own.
async fn route_assignments(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
) -> ApiResult<Json<proto::assignments::RouteAssignments>> {
    require_internal(&ctx, &headers)?;
    let mut out = proto::assignments::RouteAssignments::default();
    let domains = ctx.store.domains().await?;
    let system_spaces: Vec<String> = match ctx.store.org_by_name(crate::store::SYSTEM_ORG).await? {
        Some(o) => ctx
            .store
            .spaces_of_org(&o.guid)
            .await?
            .into_iter()
            .map(|s| s.guid)
            .collect(),
        None => Vec::new(),
    };
    let dests = ctx.store.all_destinations().await?;
    for route in ctx.store.routes().await? {
        let Some(d) = domains.iter().find(|d| d.guid == route.domain_guid) else {
            continue;
        };
        let url = crate::store::RouteUrl {
            route: route.clone(),
            domain: d.name.clone(),
        }
        .url()
        .to_ascii_lowercase();
        let apps: Vec<String> = dests
            .iter()
            .filter(|x| x.route_guid == route.guid)
            .map(|x| x.app_guid.clone())
            .collect();
        if apps.is_empty() && system_spaces.contains(&route.space_guid) {
            out.reserved.push(url.clone());
        }
        out.routes.insert(url, apps);
    }
    Ok(Json(out))
}

async fn desired(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Json<DesiredPage>> {
    require_internal(&ctx, &headers)?;
    let mut apps = Vec::new();
    for app in ctx.store.apps().await? {
        let Some(droplet_guid) = app.current_droplet_guid.as_deref() else {
            continue;
        };
        // A deployment in flight: the web process's new instances count
        // as it says, and the old versions still desired are units of
        // their own (§5.12).
        let active = ctx.store.active_deployment(&app.guid).await?;
        for d in ctx.store.old_units(&app.guid).await? {
            apps.push(DesiredApp {
                app_id: d.old_bus_id.clone(),
                name: app.name.clone(),
                version: d.old_version.clone(),
                instances: u32::try_from(d.old_instances.max(0)).unwrap_or(0),
                state: app.state.to_string(),
                updated_at: d.old_changed_at.clone(),
                log_guid: (d.old_bus_id != app.guid).then(|| app.guid.clone()),
            });
        }
        for p in ctx.store.processes_of(&app.guid).await? {
            if !p.is_web() && p.command.as_deref().is_none_or(str::is_empty) {
                // A process type without a command cannot run (and is not
                // started): unless its droplet's Procfile names one.
                let droplet = ctx.store.droplet(droplet_guid).await.ok();
                if droplet.and_then(|d| d.command_for(&p.kind)).is_none() {
                    continue;
                }
            }
            let (instances, updated_at) = match &active {
                Some(d) if p.is_web() => (d.new_instances, d.new_changed_at.clone()),
                _ => (p.instances, app.state_changed_at.clone()),
            };
            apps.push(DesiredApp {
                app_id: p.bus_id().to_string(),
                name: if p.is_web() {
                    app.name.clone()
                } else {
                    format!("{}/{}", app.name, p.kind)
                },
                version: app.version.clone(),
                instances: u32::try_from(instances.max(0)).unwrap_or(0),
                state: app.state.to_string(),
                updated_at,
                log_guid: (p.bus_id() != app.guid).then(|| app.guid.clone()),
            });
        }
    }
    Ok(Json(DesiredPage {
        apps,
        next_token: None,
    }))
}

fn check_signature(ctx: &Ctx, method: &Method, uri: &Uri, q: &Query) -> ApiResult<()> {
    let now = chrono::Utc::now().timestamp();
    let ok = crate::signing::verify(
        &ctx.blob_key,
        method.as_str(),
        uri.path(),
        q.get("expires").map(String::as_str),
        q.get("signature").map(String::as_str),
        now,
    );
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden("invalid or expired signature".into()))
    }
}

async fn send_file(path: PathBuf, what: &str) -> ApiResult<Response> {
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(what))
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let len = file
        .metadata()
        .await
        .map(|m| m.len())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Response::builder()
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, len)
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn package_download(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    check_signature(&ctx, &method, &uri, &q)?;
    let pkg = ctx.store.package(&guid).await?;
    let sha = pkg
        .sha256
        .ok_or_else(|| ApiError::not_found("Package bits"))?;
    send_file(ctx.blobs.blob_file(&sha).await?, "Package bits").await
}

async fn droplet_download(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    check_signature(&ctx, &method, &uri, &q)?;
    let d = ctx.store.droplet(&guid).await?;
    let sha = d
        .sha256
        .ok_or_else(|| ApiError::not_found("Droplet bits"))?;
    send_file(ctx.blobs.blob_file(&sha).await?, "Droplet bits").await
}

async fn droplet_upload(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(guid): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    // Uploads are signed for PUT; POST is accepted with the same signature.
    check_signature(&ctx, &Method::PUT, &uri, &q)
        .or_else(|_| check_signature(&ctx, &method, &uri, &q))?;
    ctx.store.build(&guid).await?;
    let limits = ctx.cfg.archive_limits();
    let staged = ctx
        .blobs
        .stage(body.into_data_stream(), limits.max_packed_bytes)
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let path = staged.path.clone();
    let check = tokio::task::spawn_blocking(move || crate::blobstore::validate_tgz(&path, limits))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Err(detail) = check {
        ctx.blobs.discard(&staged).await;
        tracing::warn!(build = %guid, error = %detail, "rejected droplet upload");
        return Err(ApiError::Unprocessable(detail));
    }
    ctx.blobs.commit(&staged).await?;
    ctx.store.set_build_uploaded(&guid, &staged.sha256).await?;
    tracing::info!(build = %guid, sha256 = %staged.sha256, bytes = staged.size, "droplet uploaded");
    Ok((
        StatusCode::CREATED,
        Json(json!({"sha256": staged.sha256, "size": staged.size})),
    )
        .into_response())
}

async fn cache_download(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    check_signature(&ctx, &method, &uri, &q)?;
    send_file(ctx.blobs.cache_file(&guid).await?, "Buildpack cache").await
}

async fn cache_upload(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(guid): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    check_signature(&ctx, &Method::PUT, &uri, &q)
        .or_else(|_| check_signature(&ctx, &method, &uri, &q))?;
    let staged = ctx
        .blobs
        .stage(
            body.into_data_stream(),
            ctx.cfg.archive_limits().max_packed_bytes,
        )
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    ctx.blobs.commit_cache(&staged, &guid).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"sha256": staged.sha256, "size": staged.size})),
    )
        .into_response())
}
