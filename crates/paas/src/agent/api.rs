//! The agent's HTTP API: `PUT /v1/desired`, `GET /v1/status`, each with
//! the deployment's agent token as a bearer token (compared in constant
//! time). Bodies are bounded; a bad desired state is refused whole.

use std::collections::BTreeSet;
use std::path::{Component as PathPart, Path};
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::spec::{AgentStatus, Desired, Health};

/// Largest desired state taken.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub struct Shared {
    pub token: Arc<String>,
    pub desired: tokio::sync::watch::Sender<Desired>,
    pub status: Arc<Mutex<AgentStatus>>,
    /// Where the desired state is kept across restarts.
    pub desired_file: Arc<std::path::PathBuf>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/desired", put(put_desired).get(get_desired))
        .route("/v1/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({"error": text.into()}))).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(shared.token.as_bytes()))
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "a valid agent token is required")
}

async fn status(AxState(shared): AxState<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let s = match shared.status.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    Json(s).into_response()
}

async fn get_desired(AxState(shared): AxState<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    Json(shared.desired.borrow().clone()).into_response()
}

async fn put_desired(
    AxState(shared): AxState<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let desired: Desired = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a desired state: {e}"),
            )
        }
    };
    if let Err(why) = check(&desired) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, why);
    }
    let text = match serde_json::to_string(&desired) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Err(e) = super::supervisor::write_private(&shared.desired_file, &text) {
        tracing::error!(error = %e, "cannot keep the desired state");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the agent cannot keep the desired state",
        );
    }
    shared.desired.send_replace(desired);
    (StatusCode::OK, Json(json!({"accepted": true}))).into_response()
}

fn relative_inside(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, PathPart::Normal(_)))
}

/// What the agent refuses in a desired state.
pub fn check(d: &Desired) -> Result<(), String> {
    let mut roles = BTreeSet::new();
    for c in &d.components {
        if !roles.insert(c.role) {
            return Err(format!("{} is listed twice", c.role));
        }
        if c.version.is_empty()
            || c.version.len() > 63
            || c.version.starts_with('.')
            || !c
                .version
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
        {
            return Err(format!(
                "{}: {:?} is not a release version",
                c.role, c.version
            ));
        }
        if !Path::new(&c.release_dir).is_absolute() {
            return Err(format!("{}: release_dir must be an absolute path", c.role));
        }
        match c.argv.first() {
            Some(a) if relative_inside(a) => {}
            _ => {
                return Err(format!(
                    "{}: argv[0] must be a path inside the release (bin/...)",
                    c.role
                ))
            }
        }
        if let Some(hook) = &c.drain.hook {
            if !hook.first().is_some_and(|a| relative_inside(a)) {
                return Err(format!(
                    "{}: the drain hook must be a path inside the release",
                    c.role
                ));
            }
        }
        if !["TERM", "INT", "USR2", "QUIT"].contains(&c.drain.signal.as_str()) {
            return Err(format!(
                "{}: unknown drain signal {:?}",
                c.role, c.drain.signal
            ));
        }
        if let Health::Http { url } = &c.health {
            if !url.starts_with("http://") {
                return Err(format!("{}: the health URL must be http://", c.role));
            }
        }
    }
    Ok(())
}
