//! `GET /v3/stacks`: the stacks apps may name (`lifecycle.data.stack`,
//! `cf push -s`). The DEAs run apps on their host's own file system, so
//! there is one, `host`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, BaseUrl, Query};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

/// The stacks of this platform: (name, guid, description).
pub const STACKS: &[(&str, &str, &str)] = &[(
    "host",
    "6f3c1b5e-2d4a-4c8e-9a7b-0b57ac000001",
    "The DEA host's own file system and language runtimes",
)];

/// CF's answer to an app naming a stack that does not exist.
pub fn check(stack: &str) -> ApiResult<()> {
    if STACKS.iter().any(|(n, _, _)| *n == stack) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(
            "Stack must be an existing stack".into(),
        ))
    }
}

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v3/stacks", get(list))
}

/// `GET /v3/stacks` (filter `names`). Stacks are not database rows but
/// the fixed list `STACKS` compiled in, so this list is filtered and paged
/// in memory (it does not grow with user input).
async fn list(base: BaseUrl, q: Query, State(_ctx): State<Ctx>) -> ApiResult<Json<Value>> {
    let names = filter(&q, "names");
    let items = STACKS
        .iter()
        .filter(|(n, _, _)| matches(&names, n))
        .map(|(name, guid, description)| {
            json!({
                "guid": guid,
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "name": name,
                "description": description,
                "build_rootfs_image": name,
                "run_rootfs_image": name,
                "default": true,
                "metadata": metadata(),
                "links": {"self": base.link(&format!("/v3/stacks/{guid}"))},
            })
        })
        .collect();
    Ok(Json(paginate(&base, "/v3/stacks", &q, items)?))
}
