//! `/v3/jobs/:guid`: every job is a row of `jobs`: the service jobs
//! (`crate::services`) and the deletes that finished before answering
//! (COMPLETE at once). Finished jobs go after a day (`services`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::BaseUrl;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::store::JobRow;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v3/jobs/{guid}", get(show))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = ctx
        .store
        .job(&guid)
        .await?
        .ok_or_else(|| ApiError::not_found("Job"))?;
    Ok(Json(super::presenters::services::job(&base, &job)))
}

/// `202 Accepted` with the `Location` of `job`.
pub fn location(base: &BaseUrl, job: &JobRow) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("{}/v3/jobs/{}", base.0, job.guid))],
    )
        .into_response()
}

/// `202 Accepted` with the `Location` of a job for `operation` that is
/// already COMPLETE (the work was done before answering).
pub async fn accepted(ctx: &Ctx, base: &BaseUrl, operation: &str) -> ApiResult<Response> {
    let job = ctx.store.create_complete_job(operation).await?;
    Ok(location(base, &job))
}
