//! The OSB API v2 endpoints (docs/service-broker.md "API"): basic auth and
//! `X-Broker-API-Version: 2.x` on every request, bounded bodies, error
//! bodies `{"error": ..., "description": ...}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinSet;

use crate::backends::Backend;
use crate::catalog::{offering_json, Kind};
use crate::names::validate_id;
use crate::store::{self, Binding, Instance, Store};
use crate::Error;

/// What the handlers share.
pub struct Shared {
    pub(crate) store: Store,
    pub(crate) backends: BTreeMap<Kind, Backend>,
    credentials_hash: [u8; 32],
    max_body: usize,
    hold_async_work: bool,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tasks: Mutex<JoinSet<()>>,
}

fn auth_hash(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

impl Shared {
    pub(crate) fn new(
        store: Store,
        backends: BTreeMap<Kind, Backend>,
        user: &str,
        password: &str,
        max_body: usize,
        hold_async_work: bool,
    ) -> Shared {
        Shared {
            store,
            backends,
            credentials_hash: auth_hash(user, password),
            max_body,
            hold_async_work,
            locks: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Serializes all work on one instance (and its bindings).
    async fn lock(&self, instance_id: &str) -> OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(instance_id.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    fn spawn(self: &Arc<Self>, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    pub(crate) async fn stop_background(&self) {
        let mut tasks = {
            let mut t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *t)
        };
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// At start: finishes provisions a previous run left in progress, and
    /// puts the Redis ACL users of existing bindings back (a Redis without
    /// an aclfile forgets them when it restarts).
    pub(crate) async fn resume(self: &Arc<Self>) -> Result<(), Error> {
        if !self.hold_async_work {
            for i in self.store.unfinished_instances().await? {
                tracing::info!(instance = %i.id, "resuming provision left in progress");
                let me = self.clone();
                self.spawn(async move { me.provision_in_background(i.id).await });
            }
        }
        if self.backends.contains_key(&Kind::Redis) {
            let bindings: Vec<Binding> = self
                .store
                .all_bindings()
                .await?
                .into_iter()
                .filter(|b| {
                    !b.credentials.is_empty()
                        && Kind::from_service_id(&b.service_id) == Some(Kind::Redis)
                })
                .collect();
            if !bindings.is_empty() {
                let me = self.clone();
                self.spawn(async move {
                    for b in bindings {
                        let _guard = me.lock(&b.instance_id).await;
                        if let Err(e) = me.redo_binding(&b).await {
                            tracing::warn!(binding = %b.id, error = %e, "cannot restore redis ACL user");
                        }
                    }
                });
            }
        }
        Ok(())
    }

    async fn redo_binding(&self, b: &Binding) -> Result<Value, Error> {
        let (backend, plan) = self.backend_plan(&b.service_id, &b.plan_id)?;
        backend
            .bind(&b.instance_id, &b.id, &b.password, &plan)
            .await
    }

    fn backend(&self, service_id: &str) -> Result<&Backend, ApiError> {
        let kind = Kind::from_service_id(service_id)
            .ok_or_else(|| ApiError::bad_request(format!("unknown service_id {service_id:?}")))?;
        self.backends.get(&kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "service {} is not available on this broker (its server did not answer at start-up)",
                kind.name()
            ))
        })
    }

    fn backend_plan(
        &self,
        service_id: &str,
        plan_id: &str,
    ) -> Result<(&Backend, crate::PlanConfig), Error> {
        let b = self
            .backend(service_id)
            .map_err(|e| Error::Backend(e.description))?;
        let plan = b
            .plan(plan_id)
            .cloned()
            .ok_or_else(|| Error::Backend(format!("plan {plan_id:?} is not in the catalog")))?;
        Ok((b, plan))
    }

    async fn provision_in_background(self: Arc<Self>, instance_id: String) {
        let _guard = self.lock(&instance_id).await;
        let inst = match self.store.get_instance(&instance_id).await {
            Ok(Some(i)) if i.state == store::IN_PROGRESS => i,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(instance = %instance_id, error = %e, "cannot read instance");
                return;
            }
        };
        let mut result = Err(Error::Internal("not tried".into()));
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            result = self.do_provision(&inst).await;
            if result.is_ok() {
                break;
            }
        }
        let (state, description) = match &result {
            Ok(()) => (store::SUCCEEDED, "created".to_string()),
            Err(e) => (store::FAILED, e.to_string()),
        };
        match &result {
            Ok(()) => tracing::info!(instance = %instance_id, "provisioned"),
            Err(e) => tracing::warn!(instance = %instance_id, error = %e, "provision failed"),
        }
        if let Err(e) = self
            .store
            .set_instance_state(&instance_id, state, &description)
            .await
        {
            tracing::error!(instance = %instance_id, error = %e, "cannot record provision result");
        }
    }

    async fn do_provision(&self, inst: &Instance) -> Result<(), Error> {
        let (backend, plan) = self.backend_plan(&inst.service_id, &inst.plan_id)?;
        backend.provision(&inst.id, &plan).await
    }
}

/// An OSB error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: Option<&'static str>,
    description: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        error: Option<&'static str>,
        description: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error,
            description: description.into(),
        }
    }
    fn bad_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("BadRequest"), d)
    }
    fn concurrency(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ConcurrencyError"),
            d,
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::BadRequest(d) => ApiError::bad_request(d),
            e => {
                tracing::warn!(error = %e, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some("InternalError"),
                    e.to_string(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"description": self.description});
        if let Some(e) = self.error {
            body["error"] = json!(e);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn reply(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

pub fn router(shared: Arc<Shared>) -> Router {
    let max_body = shared.max_body;
    Router::new()
        .route("/v2/catalog", get(catalog))
        .route(
            "/v2/service_instances/{instance_id}",
            put(provision).get(get_instance).delete(deprovision),
        )
        .route(
            "/v2/service_instances/{instance_id}/last_operation",
            get(last_operation),
        )
        .route(
            "/v2/service_instances/{instance_id}/service_bindings/{binding_id}",
            put(bind).get(get_binding).delete(unbind),
        )
        .route(
            "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation",
            get(binding_last_operation),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, Some("NotFound"), "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(version_header))
        .layer(middleware::from_fn_with_state(shared.clone(), basic_auth))
        .with_state(shared)
}

async fn basic_auth(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| auth_hash(u, p)));
    // Compared in constant time (hashes of equal length).
    let ok = given.is_some_and(|g| {
        g.iter()
            .zip(shared.credentials_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    });
    if !ok {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("Unauthorized"),
            "basic authentication required",
        )
        .into_response();
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"service-broker\""),
        );
        return r;
    }
    next.run(req).await
}

async fn version_header(req: Request, next: Next) -> Response {
    let version = req
        .headers()
        .get("x-broker-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if version.split('.').next().map(str::trim) != Some("2") {
        return ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            Some("PreconditionFailed"),
            format!(
                "X-Broker-API-Version 2.x required (got {:?})",
                version.chars().take(20).collect::<String>()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

async fn catalog(State(shared): State<Arc<Shared>>) -> ApiResult {
    let services: Vec<Value> = shared
        .backends
        .values()
        .map(|b| offering_json(b.kind(), b.plans()))
        .collect();
    reply(StatusCode::OK, json!({"services": services}))
}

fn body_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            Some("BadRequest"),
            format!("request body: {}", e.body_text()),
        )
    })?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

fn accepts_incomplete(q: &HashMap<String, String>) -> bool {
    q.get("accepts_incomplete").is_some_and(|v| v == "true")
}

fn required(v: Option<String>, name: &str) -> Result<String, ApiError> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// `parameters` must be absent or `{}`: the plans take none. Returns the
/// canonical JSON kept to compare repeats.
fn no_parameters(p: &Option<Value>) -> Result<String, ApiError> {
    match p {
        None | Some(Value::Null) => Ok("{}".into()),
        Some(Value::Object(m)) if m.is_empty() => Ok("{}".into()),
        Some(_) => Err(ApiError::bad_request(
            "this broker's plans take no parameters",
        )),
    }
}

#[derive(Deserialize)]
struct ProvisionBody {
    service_id: Option<String>,
    plan_id: Option<String>,
    organization_guid: Option<String>,
    space_guid: Option<String>,
    parameters: Option<Value>,
}

fn check_plan(shared: &Shared, service_id: &str, plan_id: &str) -> Result<(), ApiError> {
    let b = shared.backend(service_id)?;
    if b.plan(plan_id).is_none() {
        return Err(ApiError::bad_request(format!(
            "unknown plan_id {plan_id:?} for service {}",
            b.kind().name()
        )));
    }
    Ok(())
}

fn new_operation(kind: &str) -> Result<String, ApiError> {
    Ok(format!("{kind}-{}", &crate::names::password()?[..16]))
}

async fn provision(
    State(shared): State<Arc<Shared>>,
    Path(instance_id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    let q = query(q)?;
    let body: ProvisionBody = body_json(body)?;
    let service_id = required(body.service_id, "service_id")?;
    let plan_id = required(body.plan_id, "plan_id")?;
    let organization_guid = required(body.organization_guid, "organization_guid")?;
    let space_guid = required(body.space_guid, "space_guid")?;
    let parameters = no_parameters(&body.parameters)?;
    check_plan(&shared, &service_id, &plan_id)?;
    let is_async = accepts_incomplete(&q);

    let guard = shared.lock(&instance_id).await;
    if let Some(i) = shared.store.get_instance(&instance_id).await? {
        if i.state != store::GONE && i.state != store::FAILED {
            let same = i.service_id == service_id
                && i.plan_id == plan_id
                && i.organization_guid == organization_guid
                && i.space_guid == space_guid
                && i.parameters == parameters;
            if !same {
                return reply(
                    StatusCode::CONFLICT,
                    json!({"description": "an instance with this id exists with other attributes"}),
                );
            }
            if i.state == store::SUCCEEDED {
                return reply(StatusCode::OK, json!({}));
            }
            if is_async {
                return reply(StatusCode::ACCEPTED, json!({"operation": i.operation}));
            }
            return Err(ApiError::concurrency("this instance is being provisioned"));
        }
    }
    let inst = Instance {
        id: instance_id.clone(),
        service_id,
        plan_id,
        organization_guid,
        space_guid,
        parameters,
        state: store::IN_PROGRESS.into(),
        operation: new_operation("provision")?,
        description: "creating".into(),
        is_async,
    };
    shared.store.put_instance(&inst).await?;
    if is_async {
        drop(guard);
        if !shared.hold_async_work {
            let me = shared.clone();
            shared.spawn(me.provision_in_background(instance_id.clone()));
        }
        tracing::info!(instance = %instance_id, "provisioning in the background");
        return reply(StatusCode::ACCEPTED, json!({"operation": inst.operation}));
    }
    match shared.do_provision(&inst).await {
        Ok(()) => {
            shared
                .store
                .set_instance_state(&instance_id, store::SUCCEEDED, "created")
                .await?;
            tracing::info!(instance = %instance_id, "provisioned");
            reply(StatusCode::CREATED, json!({}))
        }
        Err(e) => {
            shared
                .store
                .set_instance_state(&instance_id, store::FAILED, &e.to_string())
                .await?;
            Err(e.into())
        }
    }
}

async fn get_instance(
    State(shared): State<Arc<Shared>>,
    Path(instance_id): Path<String>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    match shared.store.get_instance(&instance_id).await? {
        Some(i) if i.state == store::SUCCEEDED => {
            let params: Value = serde_json::from_str(&i.parameters).unwrap_or(json!({}));
            reply(
                StatusCode::OK,
                json!({"service_id": i.service_id, "plan_id": i.plan_id, "parameters": params}),
            )
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("NotFound"),
            "no such instance",
        )),
    }
}

async fn last_operation(
    State(shared): State<Arc<Shared>>,
    Path(instance_id): Path<String>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    match shared.store.get_instance(&instance_id).await? {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("NotFound"),
            "no such instance",
        )),
        Some(i) if i.state == store::GONE => reply(StatusCode::GONE, json!({})),
        Some(i) => reply(
            StatusCode::OK,
            json!({"state": i.state, "description": i.description}),
        ),
    }
}

fn service_plan_query(q: &HashMap<String, String>) -> Result<(String, String), ApiError> {
    Ok((
        required(q.get("service_id").cloned(), "service_id")?,
        required(q.get("plan_id").cloned(), "plan_id")?,
    ))
}

async fn deprovision(
    State(shared): State<Arc<Shared>>,
    Path(instance_id): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    let q = query(q)?;
    let (service_id, plan_id) = service_plan_query(&q)?;
    let _guard = shared.lock(&instance_id).await;
    let Some(inst) = shared.store.get_instance(&instance_id).await? else {
        return reply(StatusCode::GONE, json!({}));
    };
    if inst.state == store::GONE {
        return reply(StatusCode::GONE, json!({}));
    }
    if inst.service_id != service_id || inst.plan_id != plan_id {
        return Err(ApiError::bad_request(
            "service_id and plan_id do not match the instance",
        ));
    }
    if inst.state == store::IN_PROGRESS {
        return Err(ApiError::concurrency("this instance is being provisioned"));
    }
    let backend = shared.backend(&inst.service_id)?;
    for b in shared.store.bindings_of(&instance_id).await? {
        backend.unbind(&instance_id, &b.id).await?;
        shared.store.delete_binding(&b.id).await?;
    }
    backend.deprovision(&instance_id).await?;
    shared
        .store
        .set_instance_state(&instance_id, store::GONE, "deleted")
        .await?;
    tracing::info!(instance = %instance_id, "deprovisioned");
    reply(StatusCode::OK, json!({}))
}

#[derive(Deserialize)]
struct BindResource {
    app_guid: Option<String>,
}

#[derive(Deserialize)]
struct BindBody {
    service_id: Option<String>,
    plan_id: Option<String>,
    app_guid: Option<String>,
    bind_resource: Option<BindResource>,
    parameters: Option<Value>,
}

fn creds_reply(status: StatusCode, credentials: &str) -> ApiResult {
    let creds: Value = serde_json::from_str(credentials).map_err(Error::from)?;
    reply(status, json!({"credentials": creds}))
}

async fn bind(
    State(shared): State<Arc<Shared>>,
    Path((instance_id, binding_id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    validate_id("binding", &binding_id)?;
    let body: BindBody = body_json(body)?;
    let service_id = required(body.service_id, "service_id")?;
    let plan_id = required(body.plan_id, "plan_id")?;
    let parameters = no_parameters(&body.parameters)?;
    let app_guid = body
        .bind_resource
        .and_then(|r| r.app_guid)
        .or(body.app_guid)
        .unwrap_or_default();
    check_plan(&shared, &service_id, &plan_id)?;

    let _guard = shared.lock(&instance_id).await;
    let inst = match shared.store.get_instance(&instance_id).await? {
        Some(i) if i.state == store::SUCCEEDED => i,
        Some(i) if i.state == store::IN_PROGRESS => {
            return Err(ApiError::concurrency("this instance is being provisioned"))
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Some("NotFound"),
                "no such instance",
            ))
        }
    };
    if inst.service_id != service_id || inst.plan_id != plan_id {
        return Err(ApiError::bad_request(
            "service_id and plan_id do not match the instance",
        ));
    }
    if let Some(b) = shared.store.get_binding(&binding_id).await? {
        let same = b.instance_id == instance_id
            && b.service_id == service_id
            && b.plan_id == plan_id
            && b.app_guid == app_guid
            && b.parameters == parameters;
        if !same {
            return reply(
                StatusCode::CONFLICT,
                json!({"description": "a binding with this id exists with other attributes"}),
            );
        }
        if !b.credentials.is_empty() {
            return creds_reply(StatusCode::OK, &b.credentials);
        }
        // Left half-done by a crash: finish it with the same password.
        let creds = shared.redo_binding(&b).await?.to_string();
        shared.store.set_binding_credentials(&b.id, &creds).await?;
        return creds_reply(StatusCode::CREATED, &creds);
    }
    let b = Binding {
        id: binding_id.clone(),
        instance_id: instance_id.clone(),
        service_id,
        plan_id,
        app_guid,
        parameters,
        password: crate::names::password()?,
        credentials: String::new(),
    };
    shared.store.insert_binding(&b).await?;
    match shared.redo_binding(&b).await {
        Ok(creds) => {
            let creds = creds.to_string();
            shared.store.set_binding_credentials(&b.id, &creds).await?;
            tracing::info!(instance = %instance_id, binding = %binding_id, "bound");
            creds_reply(StatusCode::CREATED, &creds)
        }
        Err(e) => {
            // Undo what was made; the binding does not exist.
            if let Ok(backend) = shared.backend(&b.service_id) {
                if let Err(u) = backend.unbind(&instance_id, &binding_id).await {
                    tracing::warn!(binding = %binding_id, error = %u, "cannot undo a failed bind");
                    return Err(e.into());
                }
            }
            shared.store.delete_binding(&binding_id).await?;
            Err(e.into())
        }
    }
}

async fn get_binding(
    State(shared): State<Arc<Shared>>,
    Path((instance_id, binding_id)): Path<(String, String)>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    validate_id("binding", &binding_id)?;
    match shared.store.get_binding(&binding_id).await? {
        Some(b) if b.instance_id == instance_id && !b.credentials.is_empty() => {
            creds_reply(StatusCode::OK, &b.credentials)
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("NotFound"),
            "no such binding",
        )),
    }
}

async fn binding_last_operation(
    State(shared): State<Arc<Shared>>,
    Path((instance_id, binding_id)): Path<(String, String)>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    validate_id("binding", &binding_id)?;
    // Bindings are made synchronously: one that exists has succeeded.
    match shared.store.get_binding(&binding_id).await? {
        Some(b) if b.instance_id == instance_id => reply(
            StatusCode::OK,
            json!({"state": store::SUCCEEDED, "description": "bound"}),
        ),
        _ => reply(StatusCode::GONE, json!({})),
    }
}

async fn unbind(
    State(shared): State<Arc<Shared>>,
    Path((instance_id, binding_id)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    validate_id("instance", &instance_id)?;
    validate_id("binding", &binding_id)?;
    let q = query(q)?;
    let (service_id, plan_id) = service_plan_query(&q)?;
    let _guard = shared.lock(&instance_id).await;
    let b = match shared.store.get_binding(&binding_id).await? {
        Some(b) if b.instance_id == instance_id => b,
        _ => return reply(StatusCode::GONE, json!({})),
    };
    if b.service_id != service_id || b.plan_id != plan_id {
        return Err(ApiError::bad_request(
            "service_id and plan_id do not match the binding",
        ));
    }
    shared
        .backend(&b.service_id)?
        .unbind(&instance_id, &binding_id)
        .await?;
    shared.store.delete_binding(&binding_id).await?;
    tracing::info!(instance = %instance_id, binding = %binding_id, "unbound");
    reply(StatusCode::OK, json!({}))
}
