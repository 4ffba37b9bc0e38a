//! `/v3/packages`: create, show, list, upload bits (a zip, validated first).

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, parse_json, rel, BaseUrl, Query, ToOne};
use crate::authz::{Action, Perms};
use crate::blobstore::validate_zip;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Package, PackageState};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/packages", get(list).post(create))
        .route("/v3/packages/{guid}", get(show))
        .route(
            "/v3/packages/{guid}/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
}

pub fn present(base: &BaseUrl, p: &Package) -> Value {
    let path = format!("/v3/packages/{}", p.guid);
    json!({
        "guid": p.guid,
        "type": p.kind,
        "data": {"checksum": {"type": "sha256", "value": p.sha256}, "error": p.error},
        "state": p.state,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "relationships": {"app": rel(&p.app_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "upload": base.action(&format!("{path}/upload"), "POST"),
            "download": base.link(&format!("{path}/download")),
            "app": base.link(&format!("/v3/apps/{}", p.app_guid)),
        },
    })
}

#[derive(Debug, Deserialize)]
struct AppRel {
    app: ToOne,
}

#[derive(Debug, Deserialize)]
struct CreatePackage {
    #[serde(rename = "type")]
    kind: String,
    relationships: AppRel,
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreatePackage = parse_json(&body)?;
    if req.kind != "bits" {
        return Err(ApiError::Unprocessable(format!(
            "Package type '{}' is not supported; use 'bits'",
            req.kind
        )));
    }
    let app_guid = req.relationships.app.data.guid;
    let app = ctx.store.app(&app_guid).await.map_err(|_| {
        ApiError::Unprocessable(
            "App is invalid. Ensure it exists and you have access to it.".into(),
        )
    })?;
    crate::authz::require_in_space(
        &ctx,
        &perms,
        Action::WriteSpace,
        &app.space_guid,
        "App is invalid. Ensure it exists and you have access to it.",
    )
    .await?;
    let p = ctx.store.create_package(&app_guid).await?;
    Ok((StatusCode::CREATED, Json(present(&base, &p))).into_response())
}

async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    let app_guids = filter(&q, "app_guids");
    let mut items = Vec::new();
    for app in ctx
        .store
        .apps_in(&perms.space_scope())
        .await?
        .iter()
        .filter(|a| matches(&app_guids, &a.guid))
    {
        items.extend(
            ctx.store
                .packages_of(&app.guid)
                .await?
                .iter()
                .map(|p| present(&base, p)),
        );
    }
    Ok(Json(paginate(&base, "/v3/packages", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.package(&guid).await?)))
}

async fn upload(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let pkg = ctx.store.package(&guid).await?;
    // A READY package's bits are what its builds and droplets came from:
    // they are never replaced (a failed upload may be retried).
    if pkg.state == PackageState::Ready {
        return Err(ApiError::Unprocessable(
            "Package has already been uploaded".into(),
        ));
    }
    let mut multipart = multipart
        .map_err(|e| ApiError::MessageParse(format!("expected a multipart/form-data body: {e}")))?;
    let mut staged = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                if let Some(s) = &staged {
                    ctx.blobs.discard(s).await;
                }
                return Err(ApiError::Unprocessable(format!(
                    "the upload could not be read: {e}"
                )));
            }
        };
        if field.name() != Some("bits") || staged.is_some() {
            continue;
        }
        match ctx
            .blobs
            .stage(Box::pin(field), ctx.cfg.archive_limits().max_packed_bytes)
            .await
        {
            Ok(s) => staged = Some(s),
            Err(e @ crate::blobstore::BlobError::TooBig(_)) => {
                let detail = format!("the uploaded zip is refused: {e}");
                tracing::warn!(package = %guid, error = %detail, "rejected package upload");
                ctx.store
                    .set_package_state(&guid, PackageState::Failed, None, Some(&detail))
                    .await?;
                return Err(ApiError::Unprocessable(detail));
            }
            Err(e) => {
                return Err(ApiError::Unprocessable(format!(
                    "the upload could not be read: {e}"
                )))
            }
        }
    }
    let Some(staged) = staged else {
        return Err(ApiError::Unprocessable(
            "Upload must include the 'bits' field (a zip file)".into(),
        ));
    };
    let path = staged.path.clone();
    let limits = ctx.cfg.archive_limits();
    let check = tokio::task::spawn_blocking(move || validate_zip(&path, limits))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Err(detail) = check {
        ctx.blobs.discard(&staged).await;
        tracing::warn!(package = %guid, error = %detail, "rejected package upload");
        ctx.store
            .set_package_state(&guid, PackageState::Failed, None, Some(&detail))
            .await?;
        return Err(ApiError::Unprocessable(detail));
    }
    ctx.blobs.commit(&staged).await?;
    let pkg = ctx
        .store
        .set_package_state(&pkg.guid, PackageState::Ready, Some(&staged.sha256), None)
        .await?;
    tracing::info!(package = %guid, sha256 = %staged.sha256, bytes = staged.size, actor = %actor.name, "package uploaded");
    Ok(Json(present(&base, &pkg)))
}
