//! `/v3/service_brokers`: register, list, show, update and delete brokers
//! (admin only, as in CF). Creating or changing a broker's address syncs
//! its catalog in a job (`crate::services`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::presenters::services as present;
use super::{filter, input, page_of, parse_json, BaseUrl, PageReq, Query};
use crate::authz::Perms;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::services::{self, osb::Identity, Work};
use crate::store::{BrokerFilter, StoreError};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/service_brokers", get(list).post(create))
        .route(
            "/v3/service_brokers/{guid}",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    #[serde(rename = "type")]
    kind: String,
    credentials: Credentials,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Deserialize)]
struct Create {
    name: String,
    url: String,
    authentication: Auth,
    #[serde(default)]
    relationships: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Update {
    name: Option<String>,
    url: Option<String>,
    authentication: Option<Auth>,
    metadata: Option<Value>,
}

/// A broker URL: absolute http(s) with a host, no credentials in it.
fn check_url(url: &str) -> ApiResult<()> {
    let bad = || ApiError::Unprocessable("Url must be a valid url".into());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || url.len() > 2048
        || url.chars().any(char::is_whitespace)
    {
        return Err(bad());
    }
    Ok(())
}

fn check_auth(a: &Auth) -> ApiResult<()> {
    if a.kind != "basic" {
        return Err(ApiError::Unprocessable(
            "Authentication type must be equal to basic".into(),
        ));
    }
    if a.credentials.username.is_empty() || a.credentials.password.is_empty() {
        return Err(ApiError::Unprocessable(
            "Authentication credentials username and password can't be blank".into(),
        ));
    }
    if a.credentials.username.len() > 255 || a.credentials.password.len() > 1024 {
        return Err(ApiError::Unprocessable(
            "Authentication credentials are too long".into(),
        ));
    }
    Ok(())
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::Unprocessable(m),
        other => other.into(),
    }
}

fn who(perms: &Perms) -> Identity {
    Identity {
        user_guid: Some(perms.user_guid.clone()),
    }
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Create = parse_json(&body)?;
    input::check_name(&req.name)?;
    check_url(&req.url)?;
    check_auth(&req.authentication)?;
    if req
        .relationships
        .as_ref()
        .is_some_and(|r| r.get("space").is_some())
    {
        return Err(ApiError::Unprocessable(
            "Space-scoped service brokers are not supported; register the broker as an admin"
                .into(),
        ));
    }
    let c = &req.authentication.credentials;
    let b = ctx
        .store
        .create_broker(&req.name, &req.url, &c.username, &c.password, None)
        .await
        .map_err(conflict)?;
    tracing::info!(broker = %b.name, url = %b.url, "service broker registered");
    let job = services::start(&ctx, Work::SyncCatalog, &b.guid, who(&perms)).await?;
    Ok(super::jobs::location(&base, &job))
}

/// `GET /v3/service_brokers` (filters `names`, `guids`; `space_guids` is
/// accepted and ignored: no broker is space-scoped), paged in SQL.
async fn list(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    q: Query,
) -> ApiResult<Json<Value>> {
    input::known_params(
        &q,
        &[
            "names",
            "guids",
            "space_guids",
            "page",
            "per_page",
            "order_by",
            "label_selector",
        ],
    )?;
    let page = PageReq::from_query(&q)?;
    // Only global readers see brokers (no space-scoped brokers here).
    let (total, brokers) = if perms.reads_everything() {
        let f = BrokerFilter {
            names: filter(&q, "names"),
            guids: filter(&q, "guids"),
        };
        ctx.store.brokers_page(&f, page.window()).await?
    } else {
        (0, Vec::new())
    };
    let items = brokers.iter().map(|b| present::broker(&base, b)).collect();
    Ok(Json(page_of(
        &base,
        "/v3/service_brokers",
        &q,
        page,
        total,
        items,
    )))
}

async fn show(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    if !perms.reads_everything() {
        return Err(ApiError::not_found("Service broker"));
    }
    Ok(Json(present::broker(
        &base,
        &ctx.store.broker(&guid).await?,
    )))
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Update = parse_json(&body)?;
    let b = ctx.store.broker(&guid).await?;
    if let Some(n) = &req.name {
        input::check_name(n)?;
    }
    if let Some(u) = &req.url {
        check_url(u)?;
    }
    if let Some(a) = &req.authentication {
        check_auth(a)?;
    }
    let name = req.name.clone().unwrap_or_else(|| b.name.clone());
    let url = req.url.clone().unwrap_or_else(|| b.url.clone());
    let (user, pass) = match &req.authentication {
        Some(a) => (
            a.credentials.username.clone(),
            a.credentials.password.clone(),
        ),
        None => (b.username.clone(), b.password.clone()),
    };
    ctx.store
        .update_broker(&b.guid, &name, &url, &user, &pass)
        .await
        .map_err(conflict)?;
    let _ = req.metadata;
    if req.url.is_none() && req.authentication.is_none() {
        // A name or metadata change: no broker call, 200 (CF).
        return Ok(Json(present::broker(&base, &ctx.store.broker(&guid).await?)).into_response());
    }
    let job = services::start(&ctx, Work::SyncCatalog, &b.guid, who(&perms)).await?;
    Ok(super::jobs::location(&base, &job))
}

async fn remove(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let b = ctx.store.broker(&guid).await?;
    if ctx.store.broker_instance_count(&b.guid).await? > 0 {
        return Err(ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 270010,
            title: "CF-ServiceBrokerNotRemovable",
            detail: format!(
                "Can not remove brokers that have associated service instances: {}",
                b.name
            ),
        });
    }
    let job = services::start(&ctx, Work::DeleteBroker, &b.guid, who(&perms)).await?;
    Ok(super::jobs::location(&base, &job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        for ok in ["http://127.0.0.1:8080", "https://b.example.com/osb"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://x",
            "http://",
            "http://u:p@h/",
            "http://a b",
            "localhost:80",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
