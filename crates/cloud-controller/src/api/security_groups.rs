//! `/v3/security_groups` (CF v3): application security groups, their global
//! flags and their space bindings, plus `/v3/spaces/:guid/{running,staging}
//! _security_groups`. Every change reaches running instances at once
//! (`dea.egress`, as CF's dynamic security groups do); staging rules apply
//! to the next build.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use proto::EgressRule;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{filter, metadata, page_of, parse_json, BaseUrl, PageReq, Query, ToMany};
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{Lifecycle, SecurityGroup, SecurityGroupFilter};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/security_groups", get(list).post(create))
        .route(
            "/v3/security_groups/{guid}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v3/security_groups/{guid}/relationships/{lifecycle}",
            post(bind),
        )
        .route(
            "/v3/security_groups/{guid}/relationships/{lifecycle}/{space}",
            delete(unbind),
        )
        .route(
            "/v3/spaces/{guid}/running_security_groups",
            get(space_running),
        )
        .route(
            "/v3/spaces/{guid}/staging_security_groups",
            get(space_staging),
        )
}

async fn present(ctx: &Ctx, base: &BaseUrl, g: &SecurityGroup) -> ApiResult<Value> {
    let spaces = |guids: Vec<String>| -> Value {
        json!({"data": guids.into_iter().map(|g| json!({"guid": g})).collect::<Vec<_>>()})
    };
    let running = ctx
        .store
        .security_group_spaces(&g.guid, Lifecycle::Running)
        .await?;
    let staging = ctx
        .store
        .security_group_spaces(&g.guid, Lifecycle::Staging)
        .await?;
    Ok(json!({
        "guid": g.guid,
        "created_at": g.created_at,
        "updated_at": g.updated_at,
        "name": g.name,
        "globally_enabled": {
            "running": g.global(Lifecycle::Running),
            "staging": g.global(Lifecycle::Staging),
        },
        "rules": g.rules_vec(),
        "relationships": {
            "running_spaces": spaces(running),
            "staging_spaces": spaces(staging),
        },
        "metadata": metadata(),
        "links": {"self": base.link(&format!("/v3/security_groups/{}", g.guid))},
    }))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Global {
    #[serde(default)]
    running: Option<bool>,
    #[serde(default)]
    staging: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
struct Relationships {
    #[serde(default)]
    running_spaces: Option<ToMany>,
    #[serde(default)]
    staging_spaces: Option<ToMany>,
}

#[derive(Debug, Deserialize)]
struct CreateGroup {
    name: String,
    #[serde(default)]
    globally_enabled: Option<Global>,
    #[serde(default)]
    rules: Vec<EgressRule>,
    #[serde(default)]
    relationships: Option<Relationships>,
}

#[derive(Debug, Deserialize)]
struct UpdateGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    globally_enabled: Option<Global>,
    #[serde(default)]
    rules: Option<Vec<EgressRule>>,
}

fn check_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(ApiError::Unprocessable("Name can't be blank".into()));
    }
    if n.len() > 250 {
        return Err(ApiError::Unprocessable(
            "Name is too long (maximum is 250 characters)".into(),
        ));
    }
    Ok(n.to_string())
}

/// A name in use is a 422 with CF's words, as every other store error is
/// rendered as usual.
fn name_taken(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Conflict(what) => {
            ApiError::Unprocessable(format!("{what} already exists."))
        }
        other => other.into(),
    }
}

fn check_rules(rules: &[EgressRule]) -> ApiResult<()> {
    proto::egress::validate(rules).map_err(|e| ApiError::Unprocessable(e.join(", ")))
}

fn lifecycle_of(path: &str) -> ApiResult<Lifecycle> {
    match path {
        "running_spaces" => Ok(Lifecycle::Running),
        "staging_spaces" => Ok(Lifecycle::Staging),
        _ => Err(ApiError::UnknownRequest),
    }
}

/// The spaces exist (CF's message otherwise).
async fn check_spaces(ctx: &Ctx, guids: &[String]) -> ApiResult<()> {
    let mut missing = Vec::new();
    for g in guids {
        if ctx.store.space(g).await.is_err() {
            missing.push(format!("\"{g}\""));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "Spaces with guids [{}] do not exist, or you do not have access to them.",
            missing.join(", ")
        )))
    }
}

/// `GET /v3/security_groups` (filters `names`, `guids`,
/// `globally_enabled_running`, `globally_enabled_staging`,
/// `running_space_guids`, `staging_space_guids`), paged in SQL.
async fn list(State(ctx): State<Ctx>, base: BaseUrl, q: Query) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(&q)?;
    let flag = |k: &str| q.get(k).map(|v| v == "true");
    let f = SecurityGroupFilter {
        names: filter(&q, "names"),
        guids: filter(&q, "guids"),
        globally_enabled_running: flag("globally_enabled_running"),
        globally_enabled_staging: flag("globally_enabled_staging"),
        running_space_guids: filter(&q, "running_space_guids"),
        staging_space_guids: filter(&q, "staging_space_guids"),
    };
    let (total, groups) = ctx.store.security_groups_page(&f, page.window()).await?;
    let mut items = Vec::with_capacity(groups.len());
    for g in &groups {
        items.push(present(&ctx, &base, g).await?);
    }
    Ok(Json(page_of(
        &base,
        "/v3/security_groups",
        &q,
        page,
        total,
        items,
    )))
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateGroup = parse_json(&body)?;
    let name = check_name(&req.name)?;
    check_rules(&req.rules)?;
    let g = req.globally_enabled.unwrap_or_default();
    let rel = req.relationships.unwrap_or_default();
    let ids = |t: &Option<ToMany>| -> Vec<String> {
        t.as_ref()
            .map(|t| t.data.iter().map(|g| g.guid.clone()).collect())
            .unwrap_or_default()
    };
    let (running, staging) = (ids(&rel.running_spaces), ids(&rel.staging_spaces));
    check_spaces(&ctx, &running).await?;
    check_spaces(&ctx, &staging).await?;
    let group = ctx
        .store
        .create_security_group(
            &name,
            &req.rules,
            g.running.unwrap_or(false),
            g.staging.unwrap_or(false),
        )
        .await
        .map_err(name_taken)?;
    for (spaces, lifecycle) in [
        (&running, Lifecycle::Running),
        (&staging, Lifecycle::Staging),
    ] {
        for s in spaces {
            ctx.store
                .bind_security_group(&group.guid, s, lifecycle)
                .await?;
        }
    }
    tracing::info!(group = %group.name, actor = %actor.name, "security group created");
    refresh_for(&ctx, group.global(Lifecycle::Running), &running).await;
    Ok((
        StatusCode::CREATED,
        Json(present(&ctx, &base, &group).await?),
    )
        .into_response())
}

async fn show(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = ctx.store.security_group(&guid).await?;
    Ok(Json(present(&ctx, &base, &g).await?))
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: UpdateGroup = parse_json(&body)?;
    let mut g = ctx.store.security_group(&guid).await?;
    let was_global = g.global(Lifecycle::Running);
    if let Some(n) = &req.name {
        g.name = check_name(n)?;
    }
    if let Some(rules) = &req.rules {
        check_rules(rules)?;
        g.rules = serde_json::to_string(rules).unwrap_or_else(|_| "[]".into());
    }
    if let Some(ge) = &req.globally_enabled {
        if let Some(r) = ge.running {
            g.running_default = i64::from(r);
        }
        if let Some(s) = ge.staging {
            g.staging_default = i64::from(s);
        }
    }
    let g = ctx
        .store
        .update_security_group(&g)
        .await
        .map_err(name_taken)?;
    tracing::info!(group = %g.name, actor = %actor.name, "security group updated");
    let spaces = ctx
        .store
        .security_group_spaces(&g.guid, Lifecycle::Running)
        .await?;
    refresh_for(&ctx, was_global || g.global(Lifecycle::Running), &spaces).await;
    Ok(Json(present(&ctx, &base, &g).await?))
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let g = ctx.store.security_group(&guid).await?;
    let spaces = ctx
        .store
        .security_group_spaces(&guid, Lifecycle::Running)
        .await?;
    ctx.store.delete_security_group(&guid).await?;
    tracing::info!(group = %g.name, actor = %actor.name, "security group deleted");
    refresh_for(&ctx, g.global(Lifecycle::Running), &spaces).await;
    super::jobs::accepted(&ctx, &base, "security_group.delete").await
}

async fn bind(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path((guid, which)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let lifecycle = lifecycle_of(&which)?;
    let req: ToMany = parse_json(&body)?;
    ctx.store.security_group(&guid).await?;
    let guids: Vec<String> = req.data.into_iter().map(|g| g.guid).collect();
    check_spaces(&ctx, &guids).await?;
    for s in &guids {
        ctx.store.bind_security_group(&guid, s, lifecycle).await?;
    }
    if lifecycle == Lifecycle::Running {
        ctx.refresh_egress(Some(&guids)).await;
    }
    let bound = ctx.store.security_group_spaces(&guid, lifecycle).await?;
    Ok(Json(json!({
        "data": bound.iter().map(|g| json!({"guid": g})).collect::<Vec<_>>(),
        "links": {"self": base.link(&format!("/v3/security_groups/{guid}/relationships/{which}"))},
    })))
}

async fn unbind(
    State(ctx): State<Ctx>,
    Path((guid, which, space)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let lifecycle = lifecycle_of(&which)?;
    ctx.store.security_group(&guid).await?;
    if !ctx
        .store
        .unbind_security_group(&guid, &space, lifecycle)
        .await?
    {
        return Err(ApiError::Unprocessable(format!(
            "Unable to unbind security group from space with guid '{space}'. Ensure the space is bound to this security group."
        )));
    }
    if lifecycle == Lifecycle::Running {
        ctx.refresh_egress(Some(std::slice::from_ref(&space))).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn space_groups(
    ctx: &Ctx,
    base: &BaseUrl,
    space: &str,
    lifecycle: Lifecycle,
    q: &Query,
) -> ApiResult<Json<Value>> {
    let page = PageReq::from_query(q)?;
    ctx.store.space(space).await?;
    let (total, groups) = ctx
        .store
        .space_security_groups_page(space, lifecycle, page.window())
        .await?;
    let mut items = Vec::with_capacity(groups.len());
    for g in &groups {
        items.push(present(ctx, base, g).await?);
    }
    let path = format!("/v3/spaces/{space}/{}_security_groups", lifecycle.as_str());
    Ok(Json(page_of(base, &path, q, page, total, items)))
}

async fn space_running(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    space_groups(&ctx, &base, &guid, Lifecycle::Running, &q).await
}

async fn space_staging(
    State(ctx): State<Ctx>,
    base: BaseUrl,
    Path(guid): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    space_groups(&ctx, &base, &guid, Lifecycle::Staging, &q).await
}

/// After a change to a group: every started app when the group is (or
/// was) global for running, else those of its running spaces.
async fn refresh_for(ctx: &Ctx, global: bool, spaces: &[String]) {
    if global {
        ctx.refresh_egress(None).await;
    } else if !spaces.is_empty() {
        ctx.refresh_egress(Some(spaces)).await;
    }
}

impl Ctx {
    /// Sends every started app of `spaces` (all spaces: `None`) its running
    /// security groups' rules (`dea.egress`); DEAs apply them to live
    /// instances.
    pub async fn refresh_egress(&self, spaces: Option<&[String]>) {
        let apps = match self.store.apps().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list apps for egress updates");
                return;
            }
        };
        let mut cache: std::collections::HashMap<String, Vec<EgressRule>> =
            std::collections::HashMap::new();
        for app in apps.iter().filter(|a| a.started()) {
            if spaces.is_some_and(|s| !s.contains(&app.space_guid)) {
                continue;
            }
            let rules = match cache.get(&app.space_guid) {
                Some(r) => r.clone(),
                None => match self
                    .store
                    .egress_rules(&app.space_guid, Lifecycle::Running)
                    .await
                {
                    Ok(r) => {
                        cache.insert(app.space_guid.clone(), r.clone());
                        r
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read egress rules");
                        continue;
                    }
                },
            };
            self.publish(
                proto::subjects::DEA_EGRESS,
                &proto::EgressUpdate {
                    app_id: app.guid.clone(),
                    rules,
                },
            )
            .await;
        }
    }
}
