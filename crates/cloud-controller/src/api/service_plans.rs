//! `/v3/service_offerings` and `/v3/service_plans` (read from the brokers'
//! catalogs) and plan visibility. A caller sees the plans visible to it
//! (`presenters::services::plan_visible`) and the offerings of those plans.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::presenters::services as present;
use super::{filter, input, page_of, parse_json, BaseUrl, GuidRef, PageReq, Query};
use crate::authz::Perms;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::store::{Broker, Offering, OfferingFilter, Plan, PlanFilter};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v3/service_offerings", get(list_offerings))
        .route("/v3/service_offerings/{guid}", get(show_offering))
        .route("/v3/service_plans", get(list_plans))
        .route("/v3/service_plans/{guid}", get(show_plan))
        .route(
            "/v3/service_plans/{guid}/visibility",
            get(show_visibility)
                .post(add_visibility)
                .patch(set_visibility),
        )
        .route(
            "/v3/service_plans/{guid}/visibility/{org}",
            delete(remove_org),
        )
}

/// The catalog as the caller sees it, loaded whole (for showing one plan
/// or offering and for service instances; the lists page in SQL with the
/// same rule, `store::PlanFilter::viewer_orgs`).
pub struct Catalog {
    pub offerings: Vec<Offering>,
    pub plans: Vec<Plan>,
    pub visibilities: Vec<(String, String)>,
}

impl Catalog {
    pub async fn load(ctx: &Ctx, perms: &Perms) -> ApiResult<Catalog> {
        let visibilities = ctx.store.plan_visibilities().await?;
        let plans: Vec<Plan> = ctx
            .store
            .plans()
            .await?
            .into_iter()
            .filter(|p| present::plan_visible(perms, p, &visibilities))
            .collect();
        let offerings = ctx
            .store
            .offerings()
            .await?
            .into_iter()
            .filter(|o| plans.iter().any(|p| p.offering_guid == o.guid))
            .collect();
        Ok(Catalog {
            offerings,
            plans,
            visibilities,
        })
    }

    pub fn offering(&self, guid: &str) -> Option<&Offering> {
        self.offerings.iter().find(|o| o.guid == guid)
    }

    /// Whether plan `p` may be used in org `org`: public, enabled for the
    /// org, or the caller sees every plan (admins).
    pub fn usable_in(&self, perms: &Perms, p: &Plan, org: &str) -> bool {
        perms.reads_everything()
            || p.visibility == "public"
            || (p.visibility == "organization"
                && self
                    .visibilities
                    .iter()
                    .any(|(plan, o)| *plan == p.guid && o == org))
    }
}

fn bool_filter(q: &BTreeMap<String, String>, key: &str) -> ApiResult<Option<bool>> {
    match q.get(key).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::BadQuery(format!("{key} must be true or false"))),
    }
}

/// The orgs named by `space_guids` and `organization_guids` (`None`: no
/// such filter).
async fn filter_orgs(ctx: &Ctx, q: &BTreeMap<String, String>) -> ApiResult<Option<Vec<String>>> {
    let mut orgs: Option<Vec<String>> = filter(q, "organization_guids");
    if let Some(spaces) = filter(q, "space_guids") {
        let mut v = orgs.take().unwrap_or_default();
        for s in spaces.iter().take(100) {
            if let Ok(space) = ctx.store.space(s).await {
                v.push(space.organization_guid);
            }
        }
        orgs = Some(v);
    }
    Ok(orgs)
}

/// `GET /v3/service_offerings` (filters `names`, `guids`,
/// `service_broker_guids`, `service_broker_names`, `available`,
/// `organization_guids`, `space_guids`; `fields[service_broker]` for the
/// page's offerings): the offerings with a plan the caller sees, paged in
/// SQL.
async fn list_offerings(
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
            "service_broker_guids",
            "service_broker_names",
            "available",
            "space_guids",
            "organization_guids",
            "page",
            "per_page",
            "order_by",
            "label_selector",
            "fields[service_broker]",
        ],
    )?;
    let f = OfferingFilter {
        names: filter(&q, "names"),
        guids: filter(&q, "guids"),
        broker_guids: filter(&q, "service_broker_guids"),
        broker_names: filter(&q, "service_broker_names"),
        available: bool_filter(&q, "available")?,
        usable_in: filter_orgs(&ctx, &q).await?,
        viewer_orgs: perms.org_guids(),
    };
    // After the filters' own errors, as before.
    let page = PageReq::from_query(&q)?;
    let (total, chosen) = ctx.store.offerings_page(&f, page.window()).await?;
    let items: Vec<Value> = chosen.iter().map(|o| present::offering(&base, o)).collect();
    let mut out = page_of(&base, "/v3/service_offerings", &q, page, total, items);
    if let Some(f) = q.get("fields[service_broker]") {
        // The brokers of the page's offerings, in their order.
        let brokers = brokers_of(&ctx, &chosen).await?;
        let brokers: Vec<Value> = brokers
            .iter()
            .map(|b| present::partial(json!({"guid": b.guid, "name": b.name}), Some(f)))
            .collect();
        out["included"] = json!({"service_brokers": brokers});
    }
    Ok(Json(out))
}

/// The brokers of `offerings` (those that exist), each once, in the
/// order of their first offering.
async fn brokers_of(ctx: &Ctx, offerings: &[Offering]) -> ApiResult<Vec<Broker>> {
    let mut guids: Vec<String> = Vec::new();
    for o in offerings {
        if !guids.contains(&o.broker_guid) {
            guids.push(o.broker_guid.clone());
        }
    }
    let found = ctx.store.brokers_in(&guids).await?;
    Ok(guids
        .iter()
        .filter_map(|g| found.iter().find(|b| &b.guid == g).cloned())
        .collect())
}

async fn show_offering(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let cat = Catalog::load(&ctx, &perms).await?;
    let o = cat
        .offering(&guid)
        .ok_or_else(|| ApiError::not_found("Service offering"))?;
    Ok(Json(present::offering(&base, o)))
}

/// `GET /v3/service_plans` (filters `names`, `guids`,
/// `service_offering_guids`, `service_offering_names`,
/// `service_broker_guids`, `service_broker_names`, `broker_catalog_ids`,
/// `available`, `organization_guids`, `space_guids`; `include` and
/// `fields[service_offering.service_broker]` for the page's plans): the
/// plans the caller sees, paged in SQL.
async fn list_plans(
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
            "service_offering_guids",
            "service_offering_names",
            "service_broker_guids",
            "service_broker_names",
            "available",
            "space_guids",
            "organization_guids",
            "service_instance_guids",
            "page",
            "per_page",
            "order_by",
            "label_selector",
            "include",
            "fields[service_offering.service_broker]",
            "broker_catalog_ids",
        ],
    )?;
    let f = PlanFilter {
        names: filter(&q, "names"),
        guids: filter(&q, "guids"),
        broker_catalog_ids: filter(&q, "broker_catalog_ids"),
        offering_guids: filter(&q, "service_offering_guids"),
        offering_names: filter(&q, "service_offering_names"),
        broker_guids: filter(&q, "service_broker_guids"),
        broker_names: filter(&q, "service_broker_names"),
        available: bool_filter(&q, "available")?,
        usable_in: filter_orgs(&ctx, &q).await?,
        viewer_orgs: perms.org_guids(),
    };
    // After the filters' own errors, as before.
    let page = PageReq::from_query(&q)?;
    let (total, chosen) = ctx.store.plans_page(&f, page.window()).await?;
    let items: Vec<Value> = chosen.iter().map(|p| present::plan(&base, p)).collect();
    let mut out = page_of(&base, "/v3/service_plans", &q, page, total, items);
    let include_offering = q
        .get("include")
        .is_some_and(|i| i.split(',').any(|x| x == "service_offering"));
    let broker_fields = q.get("fields[service_offering.service_broker]");
    if include_offering || broker_fields.is_some() {
        // The offerings of the page's plans (each once, in the order of
        // their first plan) and their brokers.
        let mut guids: Vec<String> = Vec::new();
        for p in &chosen {
            if !guids.contains(&p.offering_guid) {
                guids.push(p.offering_guid.clone());
            }
        }
        let found = ctx.store.offerings_in(&guids).await?;
        let offerings: Vec<Offering> = guids
            .iter()
            .filter_map(|g| found.iter().find(|o| &o.guid == g).cloned())
            .collect();
        let mut included = json!({});
        if include_offering {
            included["service_offerings"] = json!(offerings
                .iter()
                .map(|o| present::offering(&base, o))
                .collect::<Vec<_>>());
        }
        if let Some(f) = broker_fields {
            let brokers: Vec<Value> = brokers_of(&ctx, &offerings)
                .await?
                .iter()
                .map(|b| present::partial(json!({"guid": b.guid, "name": b.name}), Some(f)))
                .collect();
            included["service_brokers"] = json!(brokers);
        }
        out["included"] = included;
    }
    Ok(Json(out))
}

async fn show_plan(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    base: BaseUrl,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let cat = Catalog::load(&ctx, &perms).await?;
    let p = cat
        .plans
        .iter()
        .find(|p| p.guid == guid)
        .ok_or_else(|| ApiError::not_found("Service plan"))?;
    Ok(Json(present::plan(&base, p)))
}

async fn visibility_body(ctx: &Ctx, p: &Plan) -> ApiResult<Value> {
    let mut v = json!({"type": p.visibility});
    if p.visibility == "organization" {
        let mut orgs = Vec::new();
        for (plan, org) in ctx.store.plan_visibilities().await? {
            if plan == p.guid {
                let name = ctx
                    .store
                    .org(&org)
                    .await
                    .map(|o| o.name)
                    .unwrap_or_default();
                orgs.push(json!({"guid": org, "name": name}));
            }
        }
        v["organizations"] = json!(orgs);
    }
    Ok(v)
}

async fn show_visibility(
    State(ctx): State<Ctx>,
    Extension(perms): Extension<Perms>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let cat = Catalog::load(&ctx, &perms).await?;
    let p = cat
        .plans
        .iter()
        .find(|p| p.guid == guid)
        .ok_or_else(|| ApiError::not_found("Service plan"))?;
    Ok(Json(visibility_body(&ctx, p).await?))
}

#[derive(Debug, Deserialize)]
struct Visibility {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    organizations: Option<Vec<GuidRef>>,
}

async fn apply_visibility(ctx: &Ctx, guid: &str, body: &Bytes, replace: bool) -> ApiResult<Value> {
    let req: Visibility = parse_json(body)?;
    let p = ctx.store.plan(guid).await?;
    let orgs: Vec<String> = match req.kind.as_str() {
        "public" | "admin" => {
            if req.organizations.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(ApiError::Unprocessable(format!(
                    "Organizations must not be given for visibility type '{}'",
                    req.kind
                )));
            }
            Vec::new()
        }
        "organization" => {
            let orgs = req.organizations.unwrap_or_default();
            if orgs.is_empty() || orgs.len() > 1000 {
                return Err(ApiError::Unprocessable(
                    "Organizations can't be blank for visibility type 'organization'".into(),
                ));
            }
            let mut out = Vec::new();
            for o in orgs {
                if ctx.store.org(&o.guid).await.is_err() {
                    return Err(ApiError::Unprocessable(format!(
                        "Could not find organizations with guids: [\"{}\"]",
                        o.guid
                    )));
                }
                out.push(o.guid);
            }
            out
        }
        "space" => {
            return Err(ApiError::Unprocessable(
                "Type cannot be 'space' (only plans of space-scoped brokers are)".into(),
            ))
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "Type must be one of 'public', 'admin', 'organization'".into(),
            ))
        }
    };
    ctx.store
        .set_plan_visibility(&p.guid, &req.kind, &orgs, replace)
        .await?;
    let p = ctx.store.plan(guid).await?;
    visibility_body(ctx, &p).await
}

async fn add_visibility(
    State(ctx): State<Ctx>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    Ok(Json(apply_visibility(&ctx, &guid, &body, false).await?))
}

async fn set_visibility(
    State(ctx): State<Ctx>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    Ok(Json(apply_visibility(&ctx, &guid, &body, true).await?))
}

async fn remove_org(
    State(ctx): State<Ctx>,
    Path((guid, org)): Path<(String, String)>,
) -> ApiResult<Response> {
    let p = ctx.store.plan(&guid).await?;
    if p.visibility != "organization" {
        return Err(ApiError::Unprocessable(
            "Cannot delete organization visibility of a plan whose visibility type is not 'organization'".into(),
        ));
    }
    if !ctx.store.remove_plan_org(&p.guid, &org).await? {
        return Err(ApiError::not_found("Service plan visibility"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
