//! `/v3/droplets/:guid`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{metadata, rel, BaseUrl};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::store::Droplet;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v3/droplets/{guid}", get(show))
}

pub fn present(base: &BaseUrl, d: &Droplet) -> Value {
    let process_types: Value = serde_json::from_str(&d.process_types).unwrap_or_else(|_| json!({}));
    let buildpacks: Vec<Value> = d
        .buildpacks_used()
        .iter()
        .map(|b| json!({"name": b.name, "buildpack_name": b.name, "detect_output": b.detect_output, "version": null}))
        .collect();
    json!({
        "guid": d.guid,
        "state": d.state,
        "error": d.error,
        "lifecycle": {"type": "buildpack", "data": {}},
        "execution_metadata": "",
        "process_types": process_types,
        "checksum": d.sha256.as_ref().map(|s| json!({"type": "sha256", "value": s})),
        "buildpacks": buildpacks,
        "stack": d.stack,
        "image": null,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "relationships": {"app": rel(&d.app_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&format!("/v3/droplets/{}", d.guid)),
            "package": base.link(&format!("/v3/packages/{}", d.package_guid)),
            "app": base.link(&format!("/v3/apps/{}", d.app_guid)),
            "assign_current_droplet": base.action(&format!("/v3/apps/{}/relationships/current_droplet", d.app_guid), "PATCH"),
        },
    })
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(present(&base, &ctx.store.droplet(&guid).await?)))
}
