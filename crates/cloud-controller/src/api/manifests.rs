//! `POST /v3/spaces/:guid/actions/apply_manifest`: a manifest's process
//! settings applied to apps of the space. Each `processes:` entry (and the
//! app-level `instances`, `memory`, `disk_quota`, `command`, health check
//! and `timeout`, which are the web process's) goes through the same checks
//! and effects as `PATCH /v3/processes/:guid` and its scale action; a type
//! the app lacks is created with CF's defaults. Every entry is read and
//! checked before anything changes. Other fields are accepted and not
//! applied: `cf push` applies them with their own requests
//! (docs/architecture.md §6.7).

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::processes::{do_scale, do_update};
use super::BaseUrl;
use crate::context::{Actor, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::store::{AppFilter, SpaceScope};

/// Most apps, and processes per app, one manifest may name.
const MAX_APPS: usize = 100;
const MAX_PROCESSES: usize = 20;

pub fn routes() -> Router<Ctx> {
    Router::new().route(
        "/v3/spaces/{guid}/actions/apply_manifest",
        post(apply_manifest),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Manifest {
    applications: Vec<ManifestApp>,
}

/// The fields of a process, at app level (the web process) or in
/// `processes:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    instances: Option<i64>,
    memory: Option<Value>,
    disk_quota: Option<Value>,
    #[serde(rename = "health-check-type")]
    health_check_type: Option<String>,
    #[serde(rename = "health-check-http-endpoint")]
    health_check_http_endpoint: Option<String>,
    #[serde(rename = "health-check-invocation-timeout")]
    health_check_invocation_timeout: Option<i64>,
    #[serde(rename = "health-check-interval")]
    health_check_interval: Option<i64>,
    #[serde(rename = "readiness-health-check-type")]
    readiness_type: Option<String>,
    #[serde(rename = "readiness-health-check-http-endpoint")]
    readiness_endpoint: Option<String>,
    #[serde(rename = "readiness-health-check-invocation-timeout")]
    readiness_invocation_timeout: Option<i64>,
    #[serde(rename = "readiness-health-check-interval")]
    readiness_interval: Option<i64>,
    #[serde(rename = "log-rate-limit-per-second")]
    log_rate_limit: Option<Value>,
    timeout: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ManifestApp {
    name: Option<String>,
    #[serde(flatten)]
    web: ProcessFields,
    processes: Option<Vec<ProcessFields>>,
}

/// One process's change, as the bodies of the process update and scale
/// requests.
#[derive(Debug, PartialEq)]
struct Change {
    kind: String,
    update: Map<String, Value>,
    scale: Map<String, Value>,
}

/// Pure: a manifest's text into the changes per app name, or CF's 422.
fn plan(body: &[u8]) -> ApiResult<Vec<(String, Vec<Change>)>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::MessageParse("the manifest is not UTF-8 text".into()))?;
    let doc: Value = serde_norway::from_str(text)
        .map_err(|e| ApiError::MessageParse(format!("the manifest is not valid YAML: {e}")))?;
    let m: Manifest = serde_json::from_value(doc).map_err(|e| {
        ApiError::Unprocessable(format!("the manifest has a field of the wrong type: {e}"))
    })?;
    if m.applications.is_empty() {
        return Err(ApiError::Unprocessable(
            "Applications must be provided".into(),
        ));
    }
    if m.applications.len() > MAX_APPS {
        return Err(ApiError::Unprocessable(format!(
            "A manifest may name at most {MAX_APPS} applications"
        )));
    }
    let mut out = Vec::new();
    for a in m.applications {
        let name = a
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::Unprocessable("Name must not be empty".into()))?;
        let at = |e: String| ApiError::Unprocessable(format!("For application '{name}': {e}"));
        let mut changes = vec![change("web", &a.web).map_err(at)?];
        let procs = a.processes.unwrap_or_default();
        if procs.len() > MAX_PROCESSES {
            return Err(at(format!(
                "at most {MAX_PROCESSES} process types are allowed"
            )));
        }
        let mut seen = BTreeSet::new();
        for p in &procs {
            let kind = p.kind.clone().unwrap_or_default();
            check_type(&kind).map_err(at)?;
            if !seen.insert(kind.clone()) {
                return Err(at(format!("Process \"{kind}\" may only be present once")));
            }
            let c = change(&kind, p).map_err(|e| at(format!("Process \"{kind}\": {e}")))?;
            match changes.iter_mut().find(|c| c.kind == kind) {
                // The web entry wins over the app-level fields.
                Some(web) => {
                    web.update.extend(c.update);
                    web.scale.extend(c.scale);
                }
                None => changes.push(c),
            }
        }
        changes.retain(|c| c.kind != "web" || !c.update.is_empty() || !c.scale.is_empty());
        out.push((name, changes));
    }
    Ok(out)
}

/// CF's process types: lower-case letters, digits, `-` and `_`, at most 255.
fn check_type(kind: &str) -> Result<(), String> {
    if kind.is_empty() {
        return Err("Type must not be empty".into());
    }
    if proto::valid_process_type(kind) {
        Ok(())
    } else {
        Err(format!(
            "Process type \"{}\" is invalid: use lower-case letters, digits, '-' and '_' (at most 255)",
            kind.chars().take(64).collect::<String>()
        ))
    }
}

fn size(v: &Value) -> Result<i64, String> {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mb = proto::size::parse_mb(&s)?;
    i64::try_from(mb).map_err(|_| proto::size::BYTE_QUANTITY.to_string())
}

fn change(kind: &str, p: &ProcessFields) -> Result<Change, String> {
    let mut update = Map::new();
    let mut scale = Map::new();
    if let Some(c) = &p.command {
        update.insert("command".into(), json!(c));
    }
    let mut data = Map::new();
    if let Some(t) = p.timeout {
        data.insert("timeout".into(), json!(t));
    }
    if let Some(e) = &p.health_check_http_endpoint {
        data.insert("endpoint".into(), json!(e));
    }
    if let Some(t) = p.health_check_invocation_timeout {
        data.insert("invocation_timeout".into(), json!(t));
    }
    if let Some(t) = p.health_check_interval {
        data.insert("interval".into(), json!(t));
    }
    let mut ready = Map::new();
    if let Some(e) = &p.readiness_endpoint {
        ready.insert("endpoint".into(), json!(e));
    }
    if let Some(t) = p.readiness_invocation_timeout {
        ready.insert("invocation_timeout".into(), json!(t));
    }
    if let Some(t) = p.readiness_interval {
        ready.insert("interval".into(), json!(t));
    }
    match (&p.readiness_type, ready.is_empty()) {
        (Some(t), _) => {
            update.insert(
                "readiness_health_check".into(),
                json!({"type": t, "data": Value::Object(ready)}),
            );
        }
        (None, false) => {
            update.insert(
                "readiness_health_check".into(),
                json!({ "data": Value::Object(ready) }),
            );
        }
        (None, true) => {}
    }
    match (&p.health_check_type, data.is_empty()) {
        (Some(t), _) => {
            // CF v8 accepts `none` for `process`.
            let t = if t == "none" { "process" } else { t.as_str() };
            update.insert(
                "health_check".into(),
                json!({"type": t, "data": Value::Object(data)}),
            );
        }
        (None, false) => {
            update.insert(
                "health_check".into(),
                json!({ "data": Value::Object(data) }),
            );
        }
        (None, true) => {}
    }
    if let Some(i) = p.instances {
        scale.insert("instances".into(), json!(i));
    }
    if let Some(m) = &p.memory {
        scale.insert("memory_in_mb".into(), json!(size(m)?));
    }
    if let Some(d) = &p.disk_quota {
        scale.insert("disk_in_mb".into(), json!(size(d)?));
    }
    if let Some(l) = &p.log_rate_limit {
        let s = match l {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        scale.insert(
            "log_rate_limit_in_bytes_per_second".into(),
            json!(proto::size::parse_log_rate(&s)?),
        );
    }
    Ok(Change {
        kind: kind.to_string(),
        update,
        scale,
    })
}

async fn apply_manifest(
    State(ctx): State<Ctx>,
    Extension(actor): Extension<Actor>,
    Extension(perms): Extension<crate::authz::Perms>,
    base: BaseUrl,
    Path(space_guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    ctx.store.space(&space_guid).await?;
    let plan = plan(&body)?;
    let service_plan = services(&body)?;
    // Every service instance named must exist in the space.
    let mut wanted: Vec<(String, Vec<Wanted>)> = Vec::new();
    for (app_name, entries) in service_plan {
        let mut list = Vec::new();
        for (si, binding, params) in entries {
            let f = crate::store::InstanceFilter {
                guids: None,
                names: Some(vec![si.clone()]),
                space_guids: Some(vec![space_guid.clone()]),
                plan_guids: None,
                kind: None,
                scope: SpaceScope::All,
            };
            let (_, found) = ctx.store.instances_page(&f, 1, 0).await?;
            let i = found
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::NotFound(format!("Service instance '{si}'")))?;
            list.push((i, binding, params));
        }
        wanted.push((app_name, list));
    }
    // Every app first: nothing changes when one is missing.
    let mut apps = Vec::new();
    for (name, changes) in plan {
        let f = AppFilter {
            names: Some(vec![name.clone()]),
            space_guids: Some(vec![space_guid.clone()]),
            guids: None,
            scope: SpaceScope::All,
            order_by: None,
        };
        let (_, found) = ctx.store.apps_page(&f, 1, 0).await?;
        let app = found.into_iter().next().ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "For application '{name}': App not found in this space (create it first, as `cf push` does)"
            ))
        })?;
        apps.push((app, changes));
    }
    for (app, changes) in apps {
        for c in changes {
            let p = ctx.store.ensure_process(&app.guid, &c.kind).await?;
            let p = if c.update.is_empty() {
                p
            } else {
                do_update(&ctx, &actor, p, &to_body(c.update)?).await?
            };
            // What the process already has is no change (and no scale,
            // which a deployment in flight refuses).
            let mut scale = c.scale;
            for (key, now) in [
                ("instances", p.instances),
                ("memory_in_mb", p.memory_in_mb),
                ("disk_in_mb", p.disk_in_mb),
                ("log_rate_limit_in_bytes_per_second", p.log_rate_limit),
            ] {
                if scale.get(key).and_then(Value::as_i64) == Some(now) {
                    scale.remove(key);
                }
            }
            if !scale.is_empty() {
                do_scale(&ctx, &actor, p, &to_body(scale)?).await?;
            }
        }
        let app = ctx.store.app(&app.guid).await?;
        if let Some((_, list)) = wanted.iter().find(|(n, _)| *n == app.name) {
            bind_services(&ctx, &actor, &perms, &app, list).await?;
        }
        ctx.audit_app(&actor, "audit.app.apply_manifest", &app, Value::Null)
            .await;
    }
    super::jobs::accepted(&ctx, &base, "app.apply_manifest").await
}

/// A manifest's `services:` entry: a name, or `{name, binding_name,
/// parameters}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum ServiceEntry {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        binding_name: Option<String>,
        #[serde(default)]
        parameters: Option<Value>,
    },
}

/// An instance a manifest binds, with the binding's name and parameters.
type Wanted = (crate::store::Instance, Option<String>, Value);

/// What a manifest binds: per app name, (instance name, binding name,
/// parameters).
type ServicePlan = Vec<(String, Vec<(String, Option<String>, Value)>)>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServicesOnly {
    applications: Vec<AppServices>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AppServices {
    name: Option<String>,
    services: Option<Vec<ServiceEntry>>,
}

/// Most services one app of a manifest may name.
const MAX_SERVICES: usize = 50;

/// Pure: the `services:` of each app of a manifest (already checked by
/// `plan`), or CF's 422.
fn services(body: &[u8]) -> ApiResult<ServicePlan> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::MessageParse("the manifest is not UTF-8 text".into()))?;
    let doc: Value = serde_norway::from_str(text)
        .map_err(|e| ApiError::MessageParse(format!("the manifest is not valid YAML: {e}")))?;
    let m: ServicesOnly = serde_json::from_value(doc).map_err(|e| {
        ApiError::Unprocessable(format!("Services must be a list of service instance names or {{name, binding_name, parameters}}: {e}"))
    })?;
    let mut out = Vec::new();
    for a in m.applications {
        let name = a.name.unwrap_or_default();
        let list = a.services.unwrap_or_default();
        if list.len() > MAX_SERVICES {
            return Err(ApiError::Unprocessable(format!(
                "For application '{name}': at most {MAX_SERVICES} services are allowed"
            )));
        }
        let mut entries = Vec::new();
        for e in list {
            let (si, binding, params) = match e {
                ServiceEntry::Name(n) => (n, None, json!({})),
                ServiceEntry::Full {
                    name,
                    binding_name,
                    parameters,
                } => (name, binding_name, parameters.unwrap_or_else(|| json!({}))),
            };
            if si.is_empty() {
                return Err(ApiError::Unprocessable(format!(
                    "For application '{name}': Service instance name must not be empty"
                )));
            }
            if !params.is_object() {
                return Err(ApiError::Unprocessable(format!(
                    "For application '{name}': Service '{si}': parameters must be an object"
                )));
            }
            entries.push((si, binding, params));
        }
        out.push((name, entries));
    }
    Ok(out)
}

/// Binds the manifest's services that are not bound yet (CF: existing
/// instances only; bindings not listed stay), waiting for managed
/// bindings' jobs a while.
async fn bind_services(
    ctx: &Ctx,
    actor: &Actor,
    perms: &crate::authz::Perms,
    app: &crate::store::App,
    wanted: &[Wanted],
) -> ApiResult<()> {
    let bound = ctx.store.app_bindings(&app.guid).await?;
    let mut jobs = Vec::new();
    for (i, binding_name, params) in wanted {
        let done = bound.iter().any(|b| {
            b.instance_guid == i.guid
                && !(b.op_type == "create" && b.op_state == crate::store::OP_FAILED)
        });
        if done {
            continue;
        }
        let (_, job) = super::service_bindings::make(
            ctx,
            actor,
            perms,
            i,
            Some(app),
            "app",
            binding_name.as_deref(),
            &params.to_string(),
        )
        .await?;
        jobs.extend(job);
    }
    // Brokers usually bind at once; the manifest waits for them a while
    // (an asynchronous bind goes on in its job).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    for job in jobs {
        loop {
            match ctx.store.job(&job.guid).await? {
                Some(j) if j.state == crate::store::JOB_FAILED => {
                    let detail = serde_json::from_str::<Value>(&j.errors)
                        .ok()
                        .and_then(|e| e[0]["detail"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "bind failed".into());
                    return Err(ApiError::Unprocessable(format!(
                        "For application '{}': {detail}",
                        app.name
                    )));
                }
                Some(j) if j.state == crate::store::JOB_COMPLETE => break,
                _ if tokio::time::Instant::now() >= deadline => break,
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
    Ok(())
}

fn to_body(m: Map<String, Value>) -> ApiResult<Bytes> {
    serde_json::to_vec(&Value::Object(m))
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match plan(body.as_bytes()) {
            Err(ApiError::Unprocessable(m)) | Err(ApiError::MessageParse(m)) => m,
            other => panic!("expected an error for {body:?}, got {other:?}"),
        }
    }

    #[test]
    fn services_are_names_or_objects() {
        let s = services(b"applications:\n- name: a\n  services:\n  - db\n  - name: mq\n    binding_name: q\n    parameters: {x: 1}\n- name: b\n").expect("services");
        assert_eq!(s[0].0, "a");
        assert_eq!(s[0].1[0], ("db".to_string(), None, json!({})));
        assert_eq!(
            s[0].1[1],
            ("mq".to_string(), Some("q".to_string()), json!({"x": 1}))
        );
        assert!(s[1].1.is_empty());
        for bad in [
            "applications:\n- name: a\n  services: db\n",
            "applications:\n- name: a\n  services: [{binding_name: x}]\n",
            "applications:\n- name: a\n  services: ['']\n",
            "applications:\n- name: a\n  services: [{name: x, parameters: [1]}]\n",
        ] {
            assert!(services(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn processes_and_app_level_fields_become_process_changes() {
        let p = plan(
            b"applications:\n- name: a\n  instances: 2\n  memory: 128M\n  processes:\n  - type: web\n    command: ./web\n  - type: worker\n    command: ./work\n    instances: 3\n    memory: 64M\n    disk_quota: 1G\n    log-rate-limit-per-second: 2K\n    health-check-type: none\n    timeout: 5\n",
        )
        .expect("plan");
        assert_eq!(p.len(), 1);
        let (name, changes) = &p[0];
        assert_eq!(name, "a");
        assert_eq!(changes[0].kind, "web");
        assert_eq!(changes[0].update["command"], "./web");
        assert_eq!(changes[0].scale["instances"], 2);
        assert_eq!(changes[0].scale["memory_in_mb"], 128);
        assert_eq!(changes[1].kind, "worker");
        assert_eq!(changes[1].scale["instances"], 3);
        assert_eq!(changes[1].scale["disk_in_mb"], 1024);
        assert_eq!(changes[1].scale["log_rate_limit_in_bytes_per_second"], 2048);
        assert_eq!(
            changes[1].update["health_check"],
            json!({"type": "process", "data": {"timeout": 5}})
        );
    }

    #[test]
    fn readiness_and_probe_settings_become_process_fields() {
        let p = plan(b"applications:\n- name: a\n  health-check-invocation-timeout: 3\n  health-check-interval: 10\n  readiness-health-check-type: http\n  readiness-health-check-http-endpoint: /ready\n  readiness-health-check-interval: 2\n").expect("plan");
        let web = &p[0].1[0];
        assert_eq!(
            web.update["health_check"],
            json!({"data": {"invocation_timeout": 3, "interval": 10}})
        );
        assert_eq!(
            web.update["readiness_health_check"],
            json!({"type": "http", "data": {"endpoint": "/ready", "interval": 2}})
        );
    }

    #[test]
    fn an_app_with_nothing_to_change_has_no_changes() {
        let p =
            plan(b"applications:\n- name: a\n  routes: [{route: x.example.com}]\n").expect("plan");
        assert!(p[0].1.is_empty());
    }

    #[test]
    fn bad_manifests_are_refused_with_what_is_wrong() {
        let table = [
            ("applications: [", "not valid YAML"),
            ("applications: []\n", "Applications must be provided"),
            ("applications:\n- memory: 1G\n", "Name must not be empty"),
            (
                "applications:\n- name: a\n  memory: 10\n",
                "For application 'a': Byte quantity must be an integer",
            ),
            (
                "applications:\n- name: a\n  processes:\n  - command: x\n",
                "Type must not be empty",
            ),
            (
                "applications:\n- name: a\n  processes:\n  - type: Worker!\n",
                "Process type \"Worker!\" is invalid",
            ),
            (
                "applications:\n- name: a\n  processes:\n  - type: w\n  - type: w\n",
                "Process \"w\" may only be present once",
            ),
            (
                "applications:\n- name: a\n  processes:\n  - type: w\n    memory: 1.5G\n",
                "For application 'a': Process \"w\": Byte quantity",
            ),
            (
                "applications:\n- name: a\n  instances: lots\n",
                "wrong type",
            ),
        ];
        for (body, want) in table {
            let got = err(body);
            assert!(got.contains(want), "{body:?}: {got:?} lacks {want:?}");
        }
    }
}
