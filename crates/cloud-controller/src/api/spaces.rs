//! `/v3/spaces`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, matches, metadata, paginate, parse_json, rel, BaseUrl, Query, ToOne};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Space, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/spaces", get(list).post(create))
        .route("/v3/spaces/{guid}", get(show))
}

#[derive(Debug, Deserialize)]
struct OrgRel {
    organization: ToOne,
}

#[derive(Debug, Deserialize)]
struct CreateSpace {
    name: String,
    relationships: OrgRel,
}

/// `POST /v3/spaces {name, relationships.organization}` (roles and quotas
/// are for later).
async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateSpace = parse_json(&body)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::Unprocessable(
            "Name must be between 1 and 255 characters".into(),
        ));
    }
    let org = req.relationships.organization.data.guid;
    ctx.store.org(&org).await.map_err(|_| {
        ApiError::Unprocessable(
            "Invalid organization. Ensure the organization exists and you have access to it."
                .into(),
        )
    })?;
    let s = ctx
        .store
        .create_space(name, &org)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Unprocessable(format!(
                "Name must be unique per organization (a space named '{name}' exists)"
            )),
            other => other.into(),
        })?;
    tracing::info!(space = %s.name, actor = %actor.name, "space created");
    Ok((StatusCode::CREATED, Json(present(&base, &s))))
}

fn present(base: &BaseUrl, s: &Space) -> Value {
    json!({
        "guid": s.guid,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "name": s.name,
        "relationships": {"organization": rel(&s.organization_guid), "quota": {"data": null}},
        "metadata": metadata(),
        "links": {
            "self": base.link(&format!("/v3/spaces/{}", s.guid)),
            "organization": base.link(&format!("/v3/organizations/{}", s.organization_guid)),
        },
    })
}

async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let (names, orgs) = (filter(&q, "names"), filter(&q, "organization_guids"));
    let items = ctx
        .store
        .spaces()
        .await?
        .iter()
        .filter(|s| matches(&names, &s.name) && matches(&orgs, &s.organization_guid))
        .map(|s| present(&base, s))
        .collect();
    Ok(Json(paginate(&base, "/v3/spaces", &q, items)?))
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.space(&guid).await?)))
}
