//! `/v3/jobs/:guid`: service jobs (kept in the database, `crate::services`),
//! and deletes that finished synchronously (kept in memory, COMPLETE).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::BaseUrl;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v3/jobs/{guid}", get(show))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(j) = ctx.store.job(&guid).await? {
        return Ok(Json(super::presenters::services::job(&base, &j)));
    }
    let job = ctx
        .jobs
        .lock()
        .ok()
        .and_then(|j| j.get(&guid).cloned())
        .ok_or_else(|| ApiError::not_found("Job"))?;
    Ok(Json(json!({
        "guid": job.guid,
        "created_at": job.created_at,
        "updated_at": job.created_at,
        "operation": job.operation,
        "state": job.state,
        "errors": [],
        "warnings": [],
        "links": {"self": base.link(&format!("/v3/jobs/{}", job.guid))},
    })))
}

/// `202 Accepted` with the `Location` of a finished job for `operation`.
pub fn accepted(ctx: &Ctx, base: &BaseUrl, operation: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let job = ctx.add_job(operation);
    let location = format!("{}/v3/jobs/{}", base.0, job.guid);
    (
        axum::http::StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}
