//! The HTTP API: CF v3 resources (one file each), tokens and the internal API.

mod admin;
pub(crate) mod apps;
mod audit;
pub mod buildpacks;
mod builds;
mod deployments;
mod domains;
mod droplets;
mod feature_flags;
pub mod input;
mod internal;
mod jobs;
mod logs;
mod manifests;
mod orgs;
mod packages;
mod presenters;
mod processes;
mod quotas;
mod resource_matches;
mod revisions;
mod roles;
mod root;
mod routes;
mod security_groups;
mod service_bindings;
mod service_brokers;
mod service_instances;
mod service_plans;
mod spaces;
mod stacks;
mod tasks;
mod uaa;
mod users;

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

/// The public API (CF v3, tokens, UAA); `/internal/*` is not here.
pub fn router(ctx: Ctx) -> Router {
    let v3 = Router::new()
        .merge(admin::routes())
        .merge(orgs::routes())
        .merge(spaces::routes())
        .merge(manifests::routes())
        .merge(apps::routes())
        .merge(processes::routes())
        .merge(tasks::routes())
        .merge(deployments::routes())
        .merge(revisions::routes())
        .merge(packages::routes())
        .merge(resource_matches::routes())
        .merge(builds::routes())
        .merge(buildpacks::routes())
        .merge(stacks::routes())
        .merge(droplets::routes())
        .merge(routes::routes())
        .merge(security_groups::routes())
        .merge(service_brokers::routes())
        .merge(service_plans::routes())
        .merge(service_instances::routes())
        .merge(service_bindings::routes())
        .merge(domains::routes())
        .merge(audit::routes())
        .merge(jobs::routes())
        .merge(logs::routes())
        .merge(users::routes())
        .merge(roles::routes())
        .merge(quotas::routes())
        .merge(feature_flags::routes())
        .merge(uaa::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            crate::authz::layer,
        ));
    Router::new()
        .merge(root::routes())
        .merge(v3)
        .fallback(|| async { ApiError::UnknownRequest })
        .with_state(ctx)
}

/// The internal API (`/internal/*`), served on `internal_listen` only.
pub fn internal_router(ctx: Ctx) -> Router {
    Router::new()
        .merge(internal::routes())
        .merge(buildpacks::internal_routes())
        .fallback(|| async { ApiError::UnknownRequest })
        .with_state(ctx)
}

/// `scheme://host` of the request, from `Host` and `X-Forwarded-Proto`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
        };
        let proto = h("x-forwarded-proto")
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| "http".into());
        let host = h("host")
            .filter(|s| !s.is_empty())
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".into());
        Ok(BaseUrl(format!("{proto}://{host}")))
    }
}

impl BaseUrl {
    pub fn link(&self, path: &str) -> Value {
        json!({"href": format!("{}{}", self.0, path)})
    }

    pub fn action(&self, path: &str, method: &str) -> Value {
        json!({"href": format!("{}{}", self.0, path), "method": method})
    }
}

pub use input::check_name;

/// Parses a JSON body: malformed JSON → 400, wrong shape → 422.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::MessageParse(e.to_string()))?
    };
    serde_json::from_value(v).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// `{"guid": ...}` in a request body.
#[derive(Debug, serde::Deserialize)]
pub struct GuidRef {
    pub guid: String,
}

/// A to-one relationship in a request body: `{"data": {"guid": ...}}`.
#[derive(Debug, serde::Deserialize)]
pub struct ToOne {
    pub data: GuidRef,
}

/// A to-many relationship in a request body: `{"data": [{"guid": ...}]}`.
#[derive(Debug, serde::Deserialize)]
pub struct ToMany {
    pub data: Vec<GuidRef>,
}

pub fn metadata() -> Value {
    json!({"labels": {}, "annotations": {}})
}

pub fn rel(guid: &str) -> Value {
    json!({"data": {"guid": guid}})
}

/// Query parameters (flat; repeated keys keep the last value).
pub type Query = axum::extract::Query<BTreeMap<String, String>>;

/// A comma-separated filter (`names=a,b`), `None` when absent.
pub fn filter(q: &BTreeMap<String, String>, key: &str) -> Option<Vec<String>> {
    q.get(key).map(|v| {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// A list filter narrowed to `found` (guids a name filter resolved to):
/// those of `found` the filter already allows.
pub fn narrow(
    filter: &Option<Vec<String>>,
    found: impl IntoIterator<Item = String>,
) -> Option<Vec<String>> {
    Some(found.into_iter().filter(|g| matches(filter, g)).collect())
}

pub fn matches(filter: &Option<Vec<String>>, value: &str) -> bool {
    filter.as_ref().is_none_or(|f| f.iter().any(|x| x == value))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `page` and `per_page` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageReq {
    pub page: usize,
    pub per_page: usize,
}

impl PageReq {
    pub fn from_query(q: &BTreeMap<String, String>) -> ApiResult<PageReq> {
        let num =
            |key: &str, default: usize| -> ApiResult<usize> {
                match q.get(key) {
                    None => Ok(default),
                    Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        ApiError::BadQuery(format!("{key} must be a positive integer"))
                    }),
                }
            };
        Ok(PageReq {
            page: num("page", 1)?,
            per_page: num("per_page", 50)?.min(5000),
        })
    }

    /// Rows to skip.
    pub fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.per_page)
    }
    /// The rows of this page, for a store `*_page` query.
    pub fn window(&self) -> crate::store::Window {
        crate::store::Window {
            limit: self.per_page,
            offset: self.offset(),
        }
    }
}

/// CF pagination over an in-memory list, with absolute hrefs that keep the
/// filters. Only for lists that do not grow with user input: `/v3/stacks`
/// and `/v3/feature_flags`, fixed lists compiled in. Lists of database
/// rows page in SQL (a store `*_page` function and `page_of`).
pub fn paginate(
    base: &BaseUrl,
    path: &str,
    q: &BTreeMap<String, String>,
    items: Vec<Value>,
) -> ApiResult<Value> {
    let req = PageReq::from_query(q)?;
    let total = items.len();
    let resources = items
        .into_iter()
        .skip(req.offset())
        .take(req.per_page)
        .collect();
    Ok(page_of(base, path, q, req, total, resources))
}

/// A CF list page: `resources` is the requested window of `total` results
/// (counted and cut in SQL by the caller).
pub fn page_of(
    base: &BaseUrl,
    path: &str,
    q: &BTreeMap<String, String>,
    req: PageReq,
    total: usize,
    resources: Vec<Value>,
) -> Value {
    let PageReq { page, per_page } = req;
    let total_pages = total.div_ceil(per_page).max(1);
    let extra: String = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
        .map(|(k, v)| format!("&{}={}", encode(k), encode(v)))
        .collect();
    let href = |p: usize| json!({"href": format!("{}{}?page={}&per_page={}{}", base.0, path, p, per_page, extra)});
    json!({
        "pagination": {
            "total_results": total,
            "total_pages": total_pages,
            "first": href(1),
            "last": href(total_pages),
            "next": if page < total_pages { href(page + 1) } else { Value::Null },
            "previous": if page > 1 { href(page - 1) } else { Value::Null },
        },
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_shape() {
        let base = BaseUrl("http://api.x".into());
        let q = BTreeMap::from([
            ("per_page".to_string(), "2".to_string()),
            ("names".to_string(), "a b".to_string()),
        ]);
        let items = (0..5).map(|i| json!(i)).collect();
        let p = paginate(&base, "/v3/apps", &q, items).expect("page");
        assert_eq!(p["pagination"]["total_results"], 5);
        assert_eq!(p["pagination"]["total_pages"], 3);
        assert_eq!(
            p["pagination"]["next"]["href"],
            "http://api.x/v3/apps?page=2&per_page=2&names=a%20b"
        );
        assert_eq!(p["pagination"]["previous"], Value::Null);
        assert_eq!(p["resources"], json!([0, 1]));
        let q3 = BTreeMap::from([
            ("page".to_string(), "3".to_string()),
            ("per_page".to_string(), "2".to_string()),
        ]);
        let p = paginate(&base, "/v3/apps", &q3, (0..5).map(|i| json!(i)).collect()).expect("page");
        assert_eq!(p["resources"], json!([4]));
        assert_eq!(p["pagination"]["next"], Value::Null);
        let bad = BTreeMap::from([("page".to_string(), "0".to_string())]);
        assert!(paginate(&base, "/v3/apps", &bad, vec![]).is_err());
    }
}
