//! `/v3/packages`: create, show, list, upload bits (a zip, validated first).

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, rel, BaseUrl, PageReq, Query, ToOne};
use crate::authz::{Action, Perms};
use crate::blobstore::{validate_zip, Staged};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::resource_pool::{self, ResourceError};
use crate::store::{Package, PackageFilter, PackageState};
use proto::archive::ArchiveLimits;
use std::collections::HashSet;

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
    let page = PageReq::from_query(&q)?;
    let f = PackageFilter {
        app_guids: filter(&q, "app_guids"),
        scope: perms.space_scope(),
    };
    let (total, packages) = ctx.store.packages_page(&f, page.window()).await?;
    let items = packages.iter().map(|p| present(&base, p)).collect();
    Ok(Json(page_of(&base, "/v3/packages", &q, page, total, items)))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.package(&guid).await?)))
}

/// Most bytes of an upload's `resources` field (a JSON list of files).
const MAX_RESOURCES_FIELD: usize = 32 << 20;

/// The error of a refused `resources` field, CF's codes.
fn resource_error(e: ResourceError) -> ApiError {
    let coded = |code, title, detail: String| ApiError::Coded {
        status: StatusCode::BAD_REQUEST,
        code,
        title,
        detail,
    };
    match e {
        ResourceError::Invalid(d) => coded(
            160001,
            "CF-AppBitsUploadInvalid",
            format!("The app upload is invalid: {d}"),
        ),
        e @ ResourceError::Path(_) => coded(
            160004,
            "CF-AppResourcesFilePathInvalid",
            format!("The resource file path is invalid: {e}"),
        ),
        e @ ResourceError::Mode(_) => coded(
            160003,
            "CF-AppResourcesFileModeInvalid",
            format!("The resource file mode is invalid: {e}"),
        ),
        ResourceError::Missing(d) | ResourceError::Refused(d) => ApiError::Unprocessable(d),
        ResourceError::Io(d) => ApiError::Internal(d),
    }
}

/// Refuses an upload: drops what was staged; a client's mistake makes the
/// package FAILED with the error's detail (it may be uploaded again).
async fn refuse(ctx: &Ctx, guid: &str, staged: &[&Staged], err: ApiError) -> ApiError {
    for s in staged {
        ctx.blobs.discard(s).await;
    }
    let detail = match &err {
        ApiError::Unprocessable(d) => Some(d.clone()),
        ApiError::Coded { detail, .. } => Some(detail.clone()),
        _ => None,
    };
    if let Some(detail) = detail {
        tracing::warn!(package = %guid, error = %detail, "rejected package upload");
        if let Err(e) = ctx
            .store
            .set_package_state(guid, PackageState::Failed, None, Some(&detail))
            .await
        {
            return e.into();
        }
    }
    err
}

/// Validates a zip on a blocking thread; the refusal as a 422.
async fn check_zip(path: &std::path::Path, limits: ArchiveLimits) -> ApiResult<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || validate_zip(&path, limits))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(|_| ())
        .map_err(ApiError::Unprocessable)
}

/// `POST /v3/packages/:guid/upload`: multipart fields `bits` (a zip) and
/// `resources` (the files of the resource cache to add, CF's JSON list of
/// {checksum, size_in_bytes, path, mode}); either may be absent, not both.
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
    let limits = ctx.cfg.archive_limits();
    let mut staged: Option<Staged> = None;
    let mut resources: Option<Vec<u8>> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(unreadable(&ctx, staged.as_ref(), e).await),
        };
        match field.name() {
            Some("bits") if staged.is_none() => {}
            Some("resources") if resources.is_none() => {
                let mut buf = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(c)) if buf.len() + c.len() <= MAX_RESOURCES_FIELD => {
                            buf.extend_from_slice(&c)
                        }
                        Ok(Some(_)) => {
                            let err = ApiError::Unprocessable(format!(
                                "the resources field is larger than {} MB",
                                MAX_RESOURCES_FIELD >> 20
                            ));
                            let s: Vec<&Staged> = staged.iter().collect();
                            return Err(refuse(&ctx, &guid, &s, err).await);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(unreadable(&ctx, staged.as_ref(), e).await),
                    }
                }
                resources = Some(buf);
                continue;
            }
            _ => continue,
        }
        match ctx
            .blobs
            .stage(Box::pin(field), limits.max_packed_bytes)
            .await
        {
            Ok(s) => staged = Some(s),
            Err(e @ crate::blobstore::BlobError::TooBig(_)) => {
                let detail = format!("the uploaded zip is refused: {e}");
                let s: Vec<&Staged> = staged.iter().collect();
                return Err(refuse(&ctx, &guid, &s, ApiError::Unprocessable(detail)).await);
            }
            Err(e) => return Err(unreadable(&ctx, staged.as_ref(), e).await),
        }
    }
    let bits_bytes = staged.as_ref().map_or(0, |s| s.size);
    let fps = match resources
        .as_deref()
        .map(|f| resource_pool::fingerprints(f, limits.max_entries))
    {
        None => Vec::new(),
        Some(Ok(fps)) => fps,
        Some(Err(e)) => {
            let s: Vec<&Staged> = staged.iter().collect();
            return Err(refuse(&ctx, &guid, &s, resource_error(e)).await);
        }
    };
    if staged.is_none() && fps.is_empty() {
        return Err(ApiError::Unprocessable(
            "Upload must include either resources or bits".into(),
        ));
    }
    if let Some(bits) = &staged {
        if let Err(e) = check_zip(&bits.path, limits).await {
            return Err(refuse(&ctx, &guid, &[bits], e).await);
        }
    }
    let package = if fps.is_empty() {
        match staged {
            Some(s) => s,
            None => return Err(ApiError::Internal("no bits".into())),
        }
    } else {
        // The whole package: the bits' entries and the cached files (those
        // another controller cached fetched from the shared blobstore).
        let sha1s: Vec<String> = fps.iter().map(|f| f.sha1.clone()).collect();
        if let Err(e) = ctx.blobs.fetch_resources(&sha1s).await {
            let s: Vec<&Staged> = staged.iter().collect();
            return Err(refuse(&ctx, &guid, &s, e.into()).await);
        }
        let out = ctx.blobs.tmp_path();
        let (blobs, pool, bits, list, to) = (
            ctx.blobs.clone(),
            ctx.cfg.pool_limits(),
            staged.as_ref().map(|s| s.path.clone()),
            fps.clone(),
            out.clone(),
        );
        let built = tokio::task::spawn_blocking(move || {
            resource_pool::assemble(&blobs, pool, bits.as_deref(), &list, &to, limits)?;
            crate::blobstore::staged_file(to).map_err(|e| ResourceError::Io(e.to_string()))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
        .and_then(|r| r.map_err(resource_error));
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = tokio::fs::remove_file(&out).await;
                let s: Vec<&Staged> = staged.iter().collect();
                return Err(refuse(&ctx, &guid, &s, e).await);
            }
        };
        if let Some(s) = &staged {
            ctx.blobs.discard(s).await;
        }
        // The limits apply to the package as assembled.
        if let Err(e) = check_zip(&built.path, limits).await {
            return Err(refuse(&ctx, &guid, &[&built], e).await);
        }
        built
    };
    ctx.blobs.commit(&package).await?;
    let pkg = ctx
        .store
        .set_package_state(&pkg.guid, PackageState::Ready, Some(&package.sha256), None)
        .await?;
    // Its files join the resource cache (best effort: a failure only
    // means they are uploaded again next time).
    let (blobs, pool, stored) = (
        ctx.blobs.clone(),
        ctx.cfg.pool_limits(),
        ctx.blobs.path(&package.sha256),
    );
    let skip: HashSet<String> = fps.iter().map(|f| f.path.clone()).collect();
    let cached = tokio::task::spawn_blocking(move || {
        resource_pool::cache_package(&blobs, pool, &stored, &skip).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let cached = match cached {
        Ok(sha1s) => ctx
            .blobs
            .share_resources(&sha1s)
            .await
            .map(|()| sha1s.len())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match cached {
        Ok(n) => tracing::debug!(package = %guid, cached = n, "resource cache"),
        Err(e) => {
            tracing::warn!(package = %guid, error = %e, "cannot add files to the resource cache")
        }
    }
    let matched_bytes: u64 = fps.iter().map(|f| f.size).sum();
    tracing::info!(package = %guid, sha256 = %package.sha256, bytes = package.size, bits_bytes, resources = fps.len(), actor = %actor.name, "package uploaded");
    if let Ok(app) = ctx.store.app(&pkg.app_guid).await {
        ctx.audit_app(
            &actor,
            "audit.app.package.upload",
            &app,
            json!({
                "package_guid": pkg.guid,
                "bits_bytes": bits_bytes,
                "resources": fps.len(),
                "resources_bytes": matched_bytes,
            }),
        )
        .await;
    }
    Ok(Json(present(&base, &pkg)))
}

/// An upload whose multipart body could not be read: what was staged of it
/// is removed; 422.
pub(super) async fn unreadable(
    ctx: &Ctx,
    staged: Option<&Staged>,
    e: impl std::fmt::Display,
) -> ApiError {
    if let Some(s) = staged {
        ctx.blobs.discard(s).await;
    }
    ApiError::Unprocessable(format!("the upload could not be read: {e}"))
}
