//! The Open Service Broker API client (the platform's side of OSB 2.x):
//! catalog, provision, bind, unbind, deprovision and last-operation
//! polling. Every answer is read with a size bound and parsed into what the
//! job runner needs; nothing here touches the database.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::{CatalogOffering, CatalogPlan};

/// The OSB version the platform speaks (`X-Broker-API-Version`).
pub const API_VERSION: &str = "2.17";
/// Bound on a catalog answer.
const MAX_CATALOG_BYTES: usize = 4 * 1024 * 1024;
/// Bound on any other answer.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Bounds on a catalog's size.
const MAX_OFFERINGS: usize = 500;
const MAX_PLANS: usize = 100;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum OsbError {
    /// No answer (refused, timed out, reset).
    #[error("The service broker could not be reached")]
    Unreachable,
    /// An answer of a status the operation does not take.
    #[error("The service broker rejected the request. Status Code: {status}, Body: {body}")]
    Rejected { status: u16, body: String },
    /// 409: the resource exists with other attributes.
    #[error("Service broker conflict: {0}")]
    Conflict(String),
    /// 422 with an OSB error code (`AsyncRequired`, `ConcurrencyError`, ...).
    #[error("{description}")]
    Unprocessable { error: String, description: String },
    /// A 2xx whose body is not what the spec says.
    #[error("The service broker returned an invalid response: {0}")]
    Malformed(String),
    /// The catalog breaks the spec.
    #[error("Service broker catalog is invalid: {0}")]
    CatalogInvalid(String),
}

impl OsbError {
    /// Whether the platform should clean up after a failed create (OSB's
    /// orphan mitigation: timeouts, 5xx and malformed 2xx answers).
    pub fn needs_orphan_mitigation(&self) -> bool {
        match self {
            OsbError::Unreachable | OsbError::Malformed(_) => true,
            OsbError::Rejected { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A broker's address and credentials.
#[derive(Clone)]
pub struct Broker {
    pub url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"[PRIVATE DATA HIDDEN]")
            .finish()
    }
}

/// The result of a create, update or delete that may run asynchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Done(T),
    /// 202: poll `last_operation` with this operation id.
    InProgress(Option<String>),
    /// 410 on a delete: already gone.
    Gone,
}

/// What a finished bind returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BindResult {
    pub credentials: Value,
    pub syslog_drain_url: Option<String>,
    pub volume_mounts: Value,
}

/// A `last_operation` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LastOperation {
    /// `in progress`, `succeeded` or `failed`; `gone` for a 410.
    pub state: String,
    pub description: String,
    pub retry_after: Option<Duration>,
}

/// Who asked (OSB's originating identity).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user_guid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

/// What a request for an instance or binding names.
#[derive(Debug, Clone)]
pub struct Ids<'a> {
    pub instance_id: &'a str,
    pub binding_id: Option<&'a str>,
    pub service_id: &'a str,
    pub plan_id: &'a str,
}

impl Client {
    pub fn new(timeout: Duration) -> Result<Client, String> {
        let http = proto::https::client_builder(&proto::https::Verify::Roots)
            .map_err(|e| e.to_string())?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client { http })
    }

    fn req(
        &self,
        b: &Broker,
        method: reqwest::Method,
        path: &str,
        who: &Identity,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{}", b.url.trim_end_matches('/'), path);
        let mut r = self
            .http
            .request(method, url)
            .basic_auth(&b.username, Some(&b.password))
            .header("X-Broker-API-Version", API_VERSION)
            .header(
                "X-Broker-API-Request-Identity",
                uuid::Uuid::new_v4().to_string(),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(u) = &who.user_guid {
            let id =
                base64::engine::general_purpose::STANDARD.encode(json!({"user_id": u}).to_string());
            r = r.header(
                "X-Broker-API-Originating-Identity",
                format!("cloudfoundry {id}"),
            );
        }
        r
    }

    async fn send(
        &self,
        r: reqwest::RequestBuilder,
        max: usize,
    ) -> Result<(u16, Option<Duration>, Value), OsbError> {
        let mut resp = r.send().await.map_err(|_| OsbError::Unreachable)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > max {
                        return Err(OsbError::Malformed(format!(
                            "the answer is larger than {max} bytes"
                        )));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(_) => return Err(OsbError::Unreachable),
            }
        }
        let v = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) if !(200..300).contains(&status) => {
                    Value::String(String::from_utf8_lossy(&body).chars().take(500).collect())
                }
                Err(_) => {
                    return Err(OsbError::Malformed(
                        "expected valid JSON object in body".into(),
                    ))
                }
            }
        };
        Ok((status, retry_after, v))
    }

    /// A PUT or PATCH of an instance or binding with `accepts_incomplete`,
    /// `parameters` added when not empty.
    async fn write(
        &self,
        b: &Broker,
        method: reqwest::Method,
        ids: &Ids<'_>,
        mut body: Value,
        parameters: &Value,
        who: &Identity,
    ) -> Result<(u16, Value), OsbError> {
        if parameters.as_object().is_some_and(|m| !m.is_empty()) {
            body["parameters"] = parameters.clone();
        }
        let path = format!("{}?accepts_incomplete=true", resource_path(ids));
        let (status, _, v) = self
            .send(
                self.req(b, method, &path, who).json(&body),
                MAX_ANSWER_BYTES,
            )
            .await?;
        Ok((status, v))
    }

    pub async fn catalog(&self, b: &Broker) -> Result<Vec<CatalogOffering>, OsbError> {
        let (status, _, v) = self
            .send(
                self.req(b, reqwest::Method::GET, "/v2/catalog", &Identity::default()),
                MAX_CATALOG_BYTES,
            )
            .await?;
        if status != 200 {
            return Err(rejected(status, &v));
        }
        parse_catalog(&v)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn provision(
        &self,
        b: &Broker,
        ids: &Ids<'_>,
        org_guid: &str,
        space_guid: &str,
        context: Value,
        parameters: &Value,
        who: &Identity,
    ) -> Result<Outcome<Option<String>>, OsbError> {
        let body = json!({
            "service_id": ids.service_id,
            "plan_id": ids.plan_id,
            "organization_guid": org_guid,
            "space_guid": space_guid,
            "context": context,
        });
        let (status, v) = self
            .write(b, reqwest::Method::PUT, ids, body, parameters, who)
            .await?;
        match status {
            200 | 201 => Ok(Outcome::Done(
                v.get("dashboard_url")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )),
            202 => Ok(Outcome::InProgress(operation(&v))),
            409 => Err(OsbError::Conflict(description(&v))),
            422 => Err(unprocessable(&v)),
            _ => Err(rejected(status, &v)),
        }
    }

    pub async fn update(
        &self,
        b: &Broker,
        ids: &Ids<'_>,
        previous_plan_id: &str,
        parameters: &Value,
        context: Value,
        who: &Identity,
    ) -> Result<Outcome<()>, OsbError> {
        let body = json!({
            "service_id": ids.service_id,
            "plan_id": ids.plan_id,
            "previous_values": {"plan_id": previous_plan_id},
            "context": context,
        });
        let (status, v) = self
            .write(b, reqwest::Method::PATCH, ids, body, parameters, who)
            .await?;
        match status {
            200 => Ok(Outcome::Done(())),
            202 => Ok(Outcome::InProgress(operation(&v))),
            422 => Err(unprocessable(&v)),
            _ => Err(rejected(status, &v)),
        }
    }

    /// Deprovision (no binding) or unbind (a binding).
    pub async fn delete(
        &self,
        b: &Broker,
        ids: &Ids<'_>,
        who: &Identity,
    ) -> Result<Outcome<()>, OsbError> {
        let path = format!(
            "{}?service_id={}&plan_id={}&accepts_incomplete=true",
            resource_path(ids),
            query_escape(ids.service_id),
            query_escape(ids.plan_id)
        );
        let (status, _, v) = self
            .send(
                self.req(b, reqwest::Method::DELETE, &path, who),
                MAX_ANSWER_BYTES,
            )
            .await?;
        match status {
            200 => Ok(Outcome::Done(())),
            202 => Ok(Outcome::InProgress(operation(&v))),
            410 => Ok(Outcome::Gone),
            422 => Err(unprocessable(&v)),
            _ => Err(rejected(status, &v)),
        }
    }

    pub async fn bind(
        &self,
        b: &Broker,
        ids: &Ids<'_>,
        app_guid: Option<&str>,
        context: Value,
        parameters: &Value,
        who: &Identity,
    ) -> Result<Outcome<BindResult>, OsbError> {
        let mut body = json!({
            "service_id": ids.service_id,
            "plan_id": ids.plan_id,
            "context": context,
        });
        if let Some(a) = app_guid {
            body["app_guid"] = json!(a);
            body["bind_resource"] = json!({"app_guid": a});
        }
        let (status, v) = self
            .write(b, reqwest::Method::PUT, ids, body, parameters, who)
            .await?;
        match status {
            200 | 201 => Ok(Outcome::Done(bind_result(&v)?)),
            202 => Ok(Outcome::InProgress(operation(&v))),
            409 => Err(OsbError::Conflict(description(&v))),
            422 => Err(unprocessable(&v)),
            _ => Err(rejected(status, &v)),
        }
    }

    /// `GET` of a binding (credentials of an asynchronous bind).
    pub async fn fetch_binding(&self, b: &Broker, ids: &Ids<'_>) -> Result<BindResult, OsbError> {
        let (status, _, v) = self
            .send(
                self.req(
                    b,
                    reqwest::Method::GET,
                    &resource_path(ids),
                    &Identity::default(),
                ),
                MAX_ANSWER_BYTES,
            )
            .await?;
        match status {
            200 => bind_result(&v),
            _ => Err(rejected(status, &v)),
        }
    }

    pub async fn last_operation(
        &self,
        b: &Broker,
        ids: &Ids<'_>,
        op: Option<&str>,
    ) -> Result<LastOperation, OsbError> {
        let mut path = format!(
            "{}/last_operation?service_id={}&plan_id={}",
            resource_path(ids),
            query_escape(ids.service_id),
            query_escape(ids.plan_id)
        );
        if let Some(op) = op {
            path.push_str(&format!("&operation={}", query_escape(op)));
        }
        let (status, retry_after, v) = self
            .send(
                self.req(b, reqwest::Method::GET, &path, &Identity::default()),
                MAX_ANSWER_BYTES,
            )
            .await?;
        match status {
            200 => {
                let state = v
                    .get("state")
                    .and_then(Value::as_str)
                    .filter(|s| ["in progress", "succeeded", "failed"].contains(s))
                    .ok_or_else(|| {
                        OsbError::Malformed("last_operation has no valid state".into())
                    })?;
                Ok(LastOperation {
                    state: state.into(),
                    description: description(&v),
                    retry_after,
                })
            }
            410 => Ok(LastOperation {
                state: "gone".into(),
                description: String::new(),
                retry_after,
            }),
            _ => Err(rejected(status, &v)),
        }
    }
}

fn resource_path(ids: &Ids<'_>) -> String {
    match ids.binding_id {
        Some(b) => format!(
            "/v2/service_instances/{}/service_bindings/{b}",
            ids.instance_id
        ),
        None => format!("/v2/service_instances/{}", ids.instance_id),
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn operation(v: &Value) -> Option<String> {
    v.get("operation")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(10_000).collect())
}

fn description(v: &Value) -> String {
    v.get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(10_000)
        .collect()
}

fn rejected(status: u16, v: &Value) -> OsbError {
    let body = match v {
        Value::Null => "{}".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    OsbError::Rejected {
        status,
        body: body.chars().take(1000).collect(),
    }
}

fn unprocessable(v: &Value) -> OsbError {
    OsbError::Unprocessable {
        error: v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        description: description(v),
    }
}

fn bind_result(v: &Value) -> Result<BindResult, OsbError> {
    let credentials = match v.get("credentials") {
        None | Some(Value::Null) => json!({}),
        Some(c @ Value::Object(_)) => c.clone(),
        Some(_) => {
            return Err(OsbError::Malformed(
                "credentials must be a JSON object".into(),
            ))
        }
    };
    Ok(BindResult {
        credentials,
        syslog_drain_url: v
            .get("syslog_drain_url")
            .and_then(Value::as_str)
            .map(str::to_string),
        volume_mounts: v
            .get("volume_mounts")
            .filter(|m| m.is_array())
            .cloned()
            .unwrap_or_else(|| json!([])),
    })
}

#[derive(Deserialize)]
struct RawCatalog {
    services: Vec<RawOffering>,
}

#[derive(Deserialize)]
struct RawOffering {
    id: String,
    name: String,
    description: String,
    bindable: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    plan_updateable: bool,
    #[serde(default)]
    instances_retrievable: bool,
    #[serde(default)]
    bindings_retrievable: bool,
    #[serde(default)]
    metadata: Option<Value>,
    plans: Vec<RawPlan>,
}

#[derive(Deserialize)]
struct RawPlan {
    id: String,
    name: String,
    description: String,
    #[serde(default)]
    free: Option<bool>,
    #[serde(default)]
    bindable: Option<bool>,
    #[serde(default)]
    plan_updateable: Option<bool>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    maximum_polling_duration: Option<i64>,
}

/// A catalog, checked as CF checks it: every offering and plan has an id,
/// a name and a description; ids and names are unique; at least one plan
/// per offering.
pub fn parse_catalog(v: &Value) -> Result<Vec<CatalogOffering>, OsbError> {
    let raw: RawCatalog =
        serde_json::from_value(v.clone()).map_err(|e| OsbError::CatalogInvalid(format!("{e}")))?;
    if raw.services.len() > MAX_OFFERINGS {
        return Err(OsbError::CatalogInvalid(format!(
            "more than {MAX_OFFERINGS} service offerings"
        )));
    }
    let mut out: Vec<CatalogOffering> = Vec::new();
    for o in raw.services {
        let name_ok = |s: &str| !s.trim().is_empty() && s.len() <= 255;
        if !name_ok(&o.id) || !name_ok(&o.name) {
            return Err(OsbError::CatalogInvalid(
                "a service offering needs an id and a name".into(),
            ));
        }
        if out.iter().any(|x| x.broker_id == o.id || x.name == o.name) {
            return Err(OsbError::CatalogInvalid(format!(
                "Service ids and names must be unique: {}",
                o.name
            )));
        }
        if o.plans.is_empty() || o.plans.len() > MAX_PLANS {
            return Err(OsbError::CatalogInvalid(format!(
                "Service {} must have between 1 and {MAX_PLANS} plans",
                o.name
            )));
        }
        let mut plans: Vec<CatalogPlan> = Vec::new();
        for p in o.plans {
            if !name_ok(&p.id) || !name_ok(&p.name) {
                return Err(OsbError::CatalogInvalid(format!(
                    "a plan of {} needs an id and a name",
                    o.name
                )));
            }
            if plans
                .iter()
                .any(|x| x.broker_id == p.id || x.name == p.name)
            {
                return Err(OsbError::CatalogInvalid(format!(
                    "Plan ids and names must be unique within service {}",
                    o.name
                )));
            }
            plans.push(CatalogPlan {
                broker_id: p.id,
                name: p.name,
                description: p.description,
                free: p.free.unwrap_or(true),
                bindable: p.bindable.unwrap_or(o.bindable),
                plan_updateable: p.plan_updateable.unwrap_or(o.plan_updateable),
                metadata: p.metadata.unwrap_or_else(|| json!({})).to_string(),
                maximum_polling_duration: p.maximum_polling_duration.filter(|d| *d > 0),
            });
        }
        out.push(CatalogOffering {
            broker_id: o.id,
            name: o.name,
            description: o.description,
            tags: json!(o.tags).to_string(),
            requires: json!(o.requires).to_string(),
            bindable: o.bindable,
            plan_updateable: o.plan_updateable,
            instances_retrievable: o.instances_retrievable,
            bindings_retrievable: o.bindings_retrievable,
            metadata: o.metadata.unwrap_or_else(|| json!({})).to_string(),
            plans,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_are_checked() {
        let good = json!({"services": [{
            "id": "s1", "name": "pg", "description": "d", "bindable": true, "tags": ["sql"],
            "plans": [{"id": "p1", "name": "small", "description": "d", "maximum_polling_duration": 5},
                      {"id": "p2", "name": "big", "description": "d", "free": false, "bindable": false}]
        }]});
        let c = parse_catalog(&good).expect("valid");
        assert_eq!(c[0].plans.len(), 2);
        assert_eq!(c[0].tags, r#"["sql"]"#);
        assert!(c[0].plans[0].free && c[0].plans[0].bindable);
        assert_eq!(c[0].plans[0].maximum_polling_duration, Some(5));
        assert!(!c[0].plans[1].free && !c[0].plans[1].bindable);
        let cases = [
            json!({}),
            json!({"services": [{"id": "s", "name": "n", "description": "d", "bindable": true, "plans": []}]}),
            json!({"services": [{"id": "", "name": "n", "description": "d", "bindable": true, "plans": [{"id": "p", "name": "x", "description": "d"}]}]}),
            json!({"services": [{"id": "s", "name": "n", "description": "d", "bindable": true, "plans": [{"id": "p", "name": "x", "description": "d"}, {"id": "p", "name": "y", "description": "d"}]}]}),
            json!({"services": [
                {"id": "s", "name": "n", "description": "d", "bindable": true, "plans": [{"id": "p", "name": "x", "description": "d"}]},
                {"id": "s2", "name": "n", "description": "d", "bindable": true, "plans": [{"id": "p", "name": "x", "description": "d"}]}]}),
        ];
        for c in cases {
            assert!(
                matches!(parse_catalog(&c), Err(OsbError::CatalogInvalid(_))),
                "{c}"
            );
        }
    }

    #[test]
    fn orphan_mitigation_follows_the_spec_table() {
        assert!(OsbError::Unreachable.needs_orphan_mitigation());
        assert!(OsbError::Malformed("x".into()).needs_orphan_mitigation());
        assert!(OsbError::Rejected {
            status: 500,
            body: String::new()
        }
        .needs_orphan_mitigation());
        assert!(!OsbError::Rejected {
            status: 400,
            body: String::new()
        }
        .needs_orphan_mitigation());
        assert!(!OsbError::Conflict(String::new()).needs_orphan_mitigation());
    }

    #[test]
    fn bind_results_need_object_credentials() {
        assert!(bind_result(&json!({"credentials": "x"})).is_err());
        let r = bind_result(&json!({"credentials": {"uri": "u"}, "syslog_drain_url": "s"}))
            .expect("ok");
        assert_eq!(r.credentials["uri"], "u");
        assert_eq!(r.volume_mounts, json!([]));
    }
}
