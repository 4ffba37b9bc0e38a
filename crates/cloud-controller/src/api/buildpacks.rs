//! `/v3/buildpacks`: admin buildpacks uploaded as zips, tried by the DEAs in
//! position order before their built-in ones. The bits live in the
//! content-addressed blobstore; stagers fetch them from a signed internal URL.
//! The DEAs' built-in buildpacks are listed too, after the admin ones (the
//! order staging tries them in), as locked, read-only resources with guid
//! `builtin-<name>`.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, matches, metadata, page_of, parse_json, BaseUrl, PageReq, Query};
use crate::blobstore::validate_zip;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Buildpack, BuildpackFilter, BuildpackState, BuildpackUpdate};

/// Stacks a buildpack may be restricted to.
const STACKS: &[&str] = &["host"];

/// The DEA's built-in buildpacks in detection order (`dea::buildpacks::
/// BUILTINS`, compiled into every DEA; the controller does not link the
/// DEA, a controller test checks that the two lists agree).
pub const BUILTIN_BUILDPACKS: &[&str] = &["python", "nodejs", "java", "staticfile", "binary"];

/// The guid under which a built-in buildpack is listed.
const BUILTIN_GUID_PREFIX: &str = "builtin-";

/// The built-in named by `guid`, if it is one.
fn builtin_of(guid: &str) -> Option<&'static str> {
    let name = guid.strip_prefix(BUILTIN_GUID_PREFIX)?;
    BUILTIN_BUILDPACKS.iter().copied().find(|b| *b == name)
}

/// A built-in buildpack as a v3 resource: after every admin buildpack
/// (`after` = the last admin position), READY, enabled, locked, no file.
pub fn present_builtin(base: &BaseUrl, name: &str, after: i64) -> Value {
    let index = BUILTIN_BUILDPACKS
        .iter()
        .position(|b| *b == name)
        .unwrap_or(0);
    let guid = format!("{BUILTIN_GUID_PREFIX}{name}");
    let path = format!("/v3/buildpacks/{guid}");
    json!({
        "guid": guid,
        "created_at": null,
        "updated_at": null,
        "name": name,
        "state": "READY",
        "filename": null,
        "stack": STACKS[0],
        "position": after + i64::try_from(index).unwrap_or(0) + 1,
        "enabled": true,
        "locked": true,
        "metadata": metadata(),
        "links": {"self": base.link(&path)},
    })
}

/// The last position taken by an admin buildpack (0 when none).
async fn last_admin_position(ctx: &Ctx) -> ApiResult<i64> {
    Ok(ctx.store.last_buildpack_position().await?)
}

fn builtin_read_only(name: &str) -> ApiError {
    ApiError::Unprocessable(format!(
        "Buildpack '{name}' is built into the DEAs and cannot be changed or deleted"
    ))
}

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/buildpacks", get(list).post(create))
        .route(
            "/v3/buildpacks/{guid}",
            get(show).patch(update).delete(delete),
        )
        .route(
            "/v3/buildpacks/{guid}/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
}

/// Signed download of buildpack bits by content address (no token).
pub fn internal_routes() -> Router<Ctx> {
    Router::new().route("/internal/v1/buildpack_bits/{sha256}", get(download))
}

pub fn present(base: &BaseUrl, b: &Buildpack) -> Value {
    let path = format!("/v3/buildpacks/{}", b.guid);
    json!({
        "guid": b.guid,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "name": b.name,
        "state": b.state,
        "filename": b.filename,
        "stack": if b.stack.is_empty() { Value::Null } else { json!(b.stack) },
        "position": b.position,
        "enabled": b.is_enabled(),
        "locked": b.is_locked(),
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "upload": base.action(&format!("{path}/upload"), "POST"),
        },
    })
}

/// The admin buildpacks a stager may use for `stack`, in position order,
/// with signed download URLs valid for `ttl_s`.
pub async fn for_staging(ctx: &Ctx, stack: &str, ttl_s: i64) -> Vec<proto::AdminBuildpack> {
    let all = match ctx.store.buildpacks().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list admin buildpacks for staging");
            return Vec::new();
        }
    };
    all.into_iter()
        .filter(|b| {
            b.is_enabled()
                && b.state == BuildpackState::Ready
                && (b.stack.is_empty() || b.stack == stack)
        })
        .filter_map(|b| {
            let sha = b.sha256.filter(|s| !s.is_empty())?;
            Some(proto::AdminBuildpack {
                uri: ctx.signed_url("GET", &format!("/internal/v1/buildpack_bits/{sha}"), ttl_s),
                name: b.name,
                sha256: sha,
            })
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 250
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn check_name(name: &str) -> ApiResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(
            "Name must be 1-250 characters: letters, digits, '-', '_' or '.'".into(),
        ))
    }
}

fn check_position(p: Option<i64>) -> ApiResult<()> {
    match p {
        Some(p) if p < 1 => Err(ApiError::Unprocessable(
            "Position must be greater than or equal to 1".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBuildpack {
    name: String,
    #[serde(default)]
    stack: Option<String>,
    #[serde(default)]
    position: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateBuildpack = parse_json(&body)?;
    check_name(&req.name)?;
    check_position(req.position)?;
    let stack = req.stack.unwrap_or_default();
    if !stack.is_empty() && !STACKS.contains(&stack.as_str()) {
        return Err(ApiError::Unprocessable(format!(
            "Stack '{stack}' does not exist"
        )));
    }
    let b = ctx
        .store
        .create_buildpack(
            &req.name,
            &stack,
            req.position.unwrap_or(1),
            req.enabled.unwrap_or(true),
            req.locked.unwrap_or(false),
        )
        .await?;
    tracing::info!(buildpack = %b.name, position = b.position, actor = %actor.name, "buildpack created");
    Ok((StatusCode::CREATED, Json(present(&base, &b))).into_response())
}

/// `GET /v3/buildpacks` (filters `names`, `stacks`): the admin buildpacks
/// in position order, paged in SQL, then the built-in ones (a fixed list
/// compiled into the DEAs, filtered in memory) filling the pages after
/// them.
async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let f = BuildpackFilter {
        names: filter(&q, "names"),
        stacks: filter(&q, "stacks"),
    };
    let win = page.window();
    let (admin_total, admin) = ctx.store.buildpacks_page(&f, win).await?;
    let builtins: Vec<&str> = BUILTIN_BUILDPACKS
        .iter()
        .copied()
        .filter(|b| matches(&f.names, b) && matches(&f.stacks, STACKS[0]))
        .collect();
    let mut items: Vec<Value> = admin.iter().map(|b| present(&base, b)).collect();
    let room = win.limit.saturating_sub(items.len());
    if room > 0 {
        let after = last_admin_position(&ctx).await?;
        items.extend(
            builtins
                .iter()
                .skip(win.offset.saturating_sub(admin_total))
                .take(room)
                .map(|b| present_builtin(&base, b, after)),
        );
    }
    let total = admin_total + builtins.len();
    Ok(Json(page_of(
        &base,
        "/v3/buildpacks",
        &q,
        page,
        total,
        items,
    )))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(name) = builtin_of(&guid) {
        let after = last_admin_position(&ctx).await?;
        return Ok(Json(present_builtin(&base, name, after)));
    }
    Ok(Json(present(&base, &ctx.store.buildpack(&guid).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBuildpack {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    position: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
}

async fn update(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if let Some(name) = builtin_of(&guid) {
        return Err(builtin_read_only(name));
    }
    let req: UpdateBuildpack = parse_json(&body)?;
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    check_position(req.position)?;
    let b = ctx
        .store
        .update_buildpack(
            &guid,
            &BuildpackUpdate {
                name: req.name,
                position: req.position,
                enabled: req.enabled,
                locked: req.locked,
            },
        )
        .await?;
    Ok(Json(present(&base, &b)))
}

async fn delete(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    if let Some(name) = builtin_of(&guid) {
        return Err(builtin_read_only(name));
    }
    let b = ctx.store.buildpack(&guid).await?;
    ctx.store.delete_buildpack(&guid).await?;
    tracing::info!(buildpack = %b.name, actor = %actor.name, "buildpack deleted");
    super::jobs::accepted(&ctx, &base, "buildpack.delete").await
}

/// The scripts of which a buildpack needs at least one: `bin/compile` (the
/// classic contract), or `bin/supply` / `bin/finalize` (CF's v3 contract; a
/// supply-only buildpack has just `bin/supply`).
const ENTRY_SCRIPTS: [&str; 3] = ["bin/compile", "bin/supply", "bin/finalize"];

/// Checks that a zip holds a buildpack: one of [`ENTRY_SCRIPTS`] at the
/// top, or under a single top-level directory (as GitHub archives are laid
/// out).
pub fn check_layout(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open upload: {e}"))?;
    let zip = zip::ZipArchive::new(file).map_err(|e| {
        tracing::debug!(error = %e, "upload is not a zip");
        "the uploaded bits are not a valid zip file".to_string()
    })?;
    let found = zip.file_names().filter_map(Result::ok).any(|n| {
        let n = n.trim_start_matches("./");
        ENTRY_SCRIPTS.contains(&n) || {
            let mut parts = n.splitn(2, '/');
            let (top, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            !top.is_empty() && ENTRY_SCRIPTS.contains(&rest)
        }
    });
    if found {
        Ok(())
    } else {
        Err("Buildpack zip error: the zip must contain bin/compile, bin/supply or bin/finalize (at its top level or under a single directory)".into())
    }
}

fn safe_filename(name: Option<&str>) -> String {
    let base = name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(200)
        .collect();
    if clean.is_empty() {
        "buildpack.zip".into()
    } else {
        clean
    }
}

async fn upload(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Value>> {
    if let Some(name) = builtin_of(&guid) {
        return Err(builtin_read_only(name));
    }
    let bp = ctx.store.buildpack(&guid).await?;
    if bp.is_locked() {
        return Err(ApiError::Unprocessable("The buildpack is locked".into()));
    }
    let mut multipart = multipart
        .map_err(|e| ApiError::MessageParse(format!("expected a multipart/form-data body: {e}")))?;
    let mut staged = None;
    let mut filename = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(super::packages::unreadable(&ctx, staged.as_ref(), e).await),
        };
        if field.name() != Some("bits") || staged.is_some() {
            continue;
        }
        filename = Some(safe_filename(field.file_name()));
        match ctx
            .blobs
            .stage(Box::pin(field), ctx.cfg.archive_limits().max_packed_bytes)
            .await
        {
            Ok(s) => staged = Some(s),
            Err(e) => return Err(super::packages::unreadable(&ctx, None, e).await),
        }
    }
    let Some(staged) = staged else {
        return Err(ApiError::Unprocessable(
            "Upload must include the 'bits' field (a zip file)".into(),
        ));
    };
    let path = staged.path.clone();
    let limits = ctx.cfg.archive_limits();
    let check = tokio::task::spawn_blocking(move || {
        validate_zip(&path, limits)?;
        check_layout(&path)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Err(detail) = check {
        ctx.blobs.discard(&staged).await;
        tracing::warn!(buildpack = %bp.name, error = %detail, "rejected buildpack upload");
        return Err(ApiError::Unprocessable(detail));
    }
    ctx.blobs.commit(&staged).await?;
    let filename = filename.unwrap_or_else(|| "buildpack.zip".into());
    let b = ctx
        .store
        .set_buildpack_bits(&guid, &filename, &staged.sha256)
        .await?;
    tracing::info!(buildpack = %b.name, sha256 = %staged.sha256, bytes = staged.size, actor = %actor.name, "buildpack uploaded");
    Ok(Json(present(&base, &b)))
}

async fn download(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    q: Query,
    Path(sha): Path<String>,
) -> ApiResult<Response> {
    let now = chrono::Utc::now().timestamp();
    let ok = crate::signing::verify(
        &ctx.blob_key,
        method.as_str(),
        uri.path(),
        q.get("expires").map(String::as_str),
        q.get("signature").map(String::as_str),
        now,
    );
    if !ok {
        return Err(ApiError::Forbidden("invalid or expired signature".into()));
    }
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("Buildpack bits"));
    }
    let file = match tokio::fs::File::open(ctx.blobs.blob_file(&sha).await?).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("Buildpack bits"))
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let len = file
        .metadata()
        .await
        .map(|m| m.len())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_with(names: &[&str]) -> tempfile::NamedTempFile {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for n in names {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .expect("start");
            w.write_all(b"#!/bin/sh\n").expect("write");
        }
        let bytes = w.finish().expect("finish").into_inner();
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(&bytes).expect("write");
        f
    }

    #[test]
    fn layout_top_level_or_single_dir() {
        assert!(check_layout(zip_with(&["bin/detect", "bin/compile"]).path()).is_ok());
        assert!(check_layout(zip_with(&["./bin/compile"]).path()).is_ok());
        assert!(check_layout(zip_with(&["bp-1.0/bin/compile", "bp-1.0/README"]).path()).is_ok());
        assert!(check_layout(zip_with(&["README"]).path()).is_err());
        assert!(check_layout(zip_with(&["a/b/bin/compile"]).path()).is_err());
    }

    #[test]
    fn names_and_filenames() {
        assert!(valid_name("my_bp-1.2"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("../x"));
        assert_eq!(safe_filename(Some("/tmp/x/my bp.zip")), "mybp.zip");
        assert_eq!(safe_filename(Some("..")), "..");
        assert_eq!(safe_filename(None), "buildpack.zip");
    }
}
