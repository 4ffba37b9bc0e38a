//! Errors at the HTTP edge, rendered as Cloud Foundry error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    MessageParse(String),
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("bad credentials")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("unknown request")]
    UnknownRequest,
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A CF error of its own code and title (e.g. 400
    /// `CF-AppResourcesFilePathInvalid`, 160004).
    #[error("{title}: {detail}")]
    Coded {
        status: StatusCode,
        code: u32,
        title: &'static str,
        detail: String,
    },
    /// Logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(what.to_string())
    }

    /// CF's 403 (`CF-NotAuthorized`, 10003).
    pub fn not_authorized() -> ApiError {
        ApiError::Forbidden("You are not authorized to perform the requested action".into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what.to_string()),
            StoreError::Conflict(what) => ApiError::Uniqueness(format!("{what} already exists")),
            // A whole-row write from a stale read (`Store::update_app`).
            StoreError::Stale(what) => ApiError::Coded {
                status: StatusCode::CONFLICT,
                code: 10004,
                title: "CF-InvalidRequest",
                detail: format!("{what} was changed by other requests at the same time; try again"),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::blobstore::BlobError> for ApiError {
    fn from(e: crate::blobstore::BlobError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

fn cf(status: StatusCode, code: u32, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"code": code, "title": title, "detail": detail}]})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound(what) => cf(
                StatusCode::NOT_FOUND,
                10010,
                "CF-ResourceNotFound",
                &format!("{what} not found"),
            ),
            ApiError::Unprocessable(d) => cf(
                StatusCode::UNPROCESSABLE_ENTITY,
                10008,
                "CF-UnprocessableEntity",
                &d,
            ),
            ApiError::Uniqueness(d) => cf(
                StatusCode::UNPROCESSABLE_ENTITY,
                10016,
                "CF-UniquenessError",
                &d,
            ),
            ApiError::MessageParse(d) => cf(
                StatusCode::BAD_REQUEST,
                1001,
                "CF-MessageParseError",
                &format!("Request invalid due to parse error: {d}"),
            ),
            ApiError::InvalidAuthToken => cf(
                StatusCode::UNAUTHORIZED,
                1000,
                "CF-InvalidAuthToken",
                "Invalid Auth Token",
            ),
            ApiError::BadCredentials => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "unauthorized", "error_description": "Bad credentials"})),
            )
                .into_response(),
            ApiError::Forbidden(d) => cf(StatusCode::FORBIDDEN, 10003, "CF-NotAuthorized", &d),
            ApiError::BadQuery(d) => cf(StatusCode::BAD_REQUEST, 10005, "CF-BadQueryParameter", &d),
            ApiError::UnknownRequest => cf(
                StatusCode::NOT_FOUND,
                10000,
                "CF-NotFound",
                "Unknown request",
            ),
            ApiError::Unavailable(d) => cf(
                StatusCode::SERVICE_UNAVAILABLE,
                10015,
                "CF-ServiceUnavailable",
                &d,
            ),
            ApiError::TooManyRequests(d) => cf(
                StatusCode::TOO_MANY_REQUESTS,
                10013,
                "CF-RateLimitExceeded",
                &d,
            ),
            ApiError::Coded {
                status,
                code,
                title,
                detail,
            } => cf(status, code, title, &detail),
            ApiError::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                cf(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    10001,
                    "UnknownError",
                    "An unknown error occurred.",
                )
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
