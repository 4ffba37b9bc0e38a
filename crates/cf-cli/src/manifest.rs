//! `manifest.yml` parsing and merging with `cf push` flags.

use crate::error::{CliError, Result};
use crate::size::parse_mb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
struct ManifestFile {
    #[serde(default)]
    applications: Vec<ManifestApp>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ManifestRoute {
    pub route: String,
}

/// One entry of `processes:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ManifestProcess {
    #[serde(rename = "type")]
    pub kind: String,
    pub command: Option<String>,
    pub instances: Option<i64>,
    pub memory: Option<serde_norway::Value>,
    pub disk_quota: Option<serde_norway::Value>,
    #[serde(rename = "health-check-type")]
    pub health_check_type: Option<String>,
    #[serde(rename = "health-check-http-endpoint")]
    pub health_check_http_endpoint: Option<String>,
    pub timeout: Option<u32>,
    #[serde(flatten)]
    pub extras: Extras,
}

/// The process fields `cf push` applies through `apply_manifest`: the
/// liveness probe's and the readiness check's settings and the log rate
/// limit (manifest fields of an app or of a process).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Extras {
    #[serde(
        rename = "health-check-invocation-timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_invocation_timeout: Option<u32>,
    #[serde(
        rename = "health-check-interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_interval: Option<u32>,
    #[serde(
        rename = "readiness-health-check-type",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_health_check_type: Option<String>,
    #[serde(
        rename = "readiness-health-check-http-endpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_health_check_http_endpoint: Option<String>,
    #[serde(
        rename = "readiness-health-check-invocation-timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_health_check_invocation_timeout: Option<u32>,
    #[serde(
        rename = "readiness-health-check-interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_health_check_interval: Option<u32>,
    #[serde(
        rename = "log-rate-limit-per-second",
        skip_serializing_if = "Option::is_none"
    )]
    pub log_rate_limit_per_second: Option<serde_norway::Value>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        *self == Extras::default()
    }

    /// `other`'s settings where this has none.
    pub fn or(self, other: &Extras) -> Extras {
        Extras {
            health_check_invocation_timeout: self
                .health_check_invocation_timeout
                .or(other.health_check_invocation_timeout),
            health_check_interval: self.health_check_interval.or(other.health_check_interval),
            readiness_health_check_type: self
                .readiness_health_check_type
                .or(other.readiness_health_check_type.clone()),
            readiness_health_check_http_endpoint: self
                .readiness_health_check_http_endpoint
                .or(other.readiness_health_check_http_endpoint.clone()),
            readiness_health_check_invocation_timeout: self
                .readiness_health_check_invocation_timeout
                .or(other.readiness_health_check_invocation_timeout),
            readiness_health_check_interval: self
                .readiness_health_check_interval
                .or(other.readiness_health_check_interval),
            log_rate_limit_per_second: self
                .log_rate_limit_per_second
                .or(other.log_rate_limit_per_second.clone()),
        }
    }

    /// Into an `apply_manifest` process entry (the manifest's own names).
    fn put(&self, v: &mut serde_json::Value) {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(self) {
            for (k, x) in fields {
                v[k] = x;
            }
        }
    }
}

/// One entry of `applications:` (unknown fields are ignored, with a
/// warning from [`parse_with_vars`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ManifestApp {
    pub name: Option<String>,
    pub path: Option<String>,
    pub instances: Option<i64>,
    pub memory: Option<serde_norway::Value>,
    pub disk_quota: Option<serde_norway::Value>,
    pub buildpack: Option<String>,
    pub buildpacks: Option<Vec<String>>,
    pub command: Option<String>,
    pub env: Option<BTreeMap<String, serde_norway::Value>>,
    pub routes: Option<Vec<ManifestRoute>>,
    #[serde(rename = "no-route")]
    pub no_route: Option<bool>,
    #[serde(rename = "random-route")]
    pub random_route: Option<bool>,
    pub stack: Option<String>,
    #[serde(rename = "health-check-type")]
    pub health_check_type: Option<String>,
    #[serde(rename = "health-check-http-endpoint")]
    pub health_check_http_endpoint: Option<String>,
    /// Seconds an instance may take to become healthy (`-t`); not the
    /// staging timeout, which is the platform's.
    pub timeout: Option<u32>,
    pub processes: Option<Vec<ManifestProcess>>,
    /// Service instances to bind (they must exist: `cf create-service`).
    pub services: Option<Vec<ManifestService>>,
    #[serde(flatten)]
    pub extras: Extras,
}

/// One entry of `services:`: an instance name, or CF's long form with a
/// binding name and binding parameters. Sent as it is in the app's
/// `apply_manifest` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ManifestService {
    Name(String),
    Binding {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binding_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<serde_json::Map<String, serde_json::Value>>,
    },
}

/// The fields of an app entry this CLI reads; any other is ignored with a
/// warning.
const APP_FIELDS: &[&str] = &[
    "name",
    "path",
    "instances",
    "memory",
    "disk_quota",
    "buildpack",
    "buildpacks",
    "command",
    "env",
    "routes",
    "no-route",
    "random-route",
    "stack",
    "health-check-type",
    "health-check-http-endpoint",
    "timeout",
    "processes",
    "services",
];

const PROCESS_FIELDS: &[&str] = &[
    "type",
    "command",
    "instances",
    "memory",
    "disk_quota",
    "health-check-type",
    "health-check-http-endpoint",
    "timeout",
];

/// The [`Extras`] fields, read at app level and in `processes:` alike.
const EXTRA_FIELDS: &[&str] = &[
    "health-check-invocation-timeout",
    "health-check-interval",
    "readiness-health-check-type",
    "readiness-health-check-http-endpoint",
    "readiness-health-check-invocation-timeout",
    "readiness-health-check-interval",
    "log-rate-limit-per-second",
];

/// The health check types CF v8 accepts.
pub const HEALTH_CHECK_TYPES: [&str; 3] = ["port", "process", "http"];

/// Flags of `cf push` that override the manifest.
#[derive(Debug, Clone, Default)]
pub struct PushFlags {
    pub name: Option<String>,
    pub path: Option<String>,
    pub instances: Option<i64>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    /// `-b`, given once or more (`-b first -b second`).
    pub buildpacks: Vec<String>,
    pub command: Option<String>,
    pub no_route: bool,
    pub random_route: bool,
    pub stack: Option<String>,
    pub health_check_type: Option<String>,
    pub endpoint: Option<String>,
    /// `-t`: the app's start (health check) timeout.
    pub timeout: Option<u32>,
}

/// Everything `cf push` needs for one app, after merging.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppPlan {
    pub name: String,
    pub path: PathBuf,
    pub instances: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_mb: Option<u64>,
    pub buildpacks: Vec<String>,
    pub command: Option<String>,
    pub env: BTreeMap<String, String>,
    pub routes: Vec<String>,
    pub no_route: bool,
    pub random_route: bool,
    pub stack: Option<String>,
    pub health_check_type: Option<String>,
    pub health_check_endpoint: Option<String>,
    pub health_check_timeout: Option<u32>,
    /// The manifest's processes other than `web`.
    pub processes: Vec<ProcessPlan>,
    /// `services:`, bound by the controller's `apply_manifest`.
    pub services: Vec<ManifestService>,
}

/// A process from a manifest's `processes:` (other than web), or the web
/// process's probe settings (kind `web`, nothing else set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessPlan {
    pub kind: String,
    pub command: Option<String>,
    pub instances: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_mb: Option<u64>,
    pub health_check_type: Option<String>,
    pub health_check_endpoint: Option<String>,
    pub health_check_timeout: Option<u32>,
    pub extras: Extras,
}

impl ProcessPlan {
    /// Its entry in an `apply_manifest` body.
    pub fn manifest_entry(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "type": self.kind });
        let mut put = |k: &str, x: serde_json::Value| {
            v[k] = x;
        };
        if let Some(c) = &self.command {
            put("command", c.clone().into());
        }
        if let Some(i) = self.instances {
            put("instances", i.into());
        }
        if let Some(m) = self.memory_mb {
            put("memory", format!("{m}M").into());
        }
        if let Some(d) = self.disk_mb {
            put("disk_quota", format!("{d}M").into());
        }
        if let Some(t) = &self.health_check_type {
            put("health-check-type", t.clone().into());
        }
        if let Some(e) = &self.health_check_endpoint {
            put("health-check-http-endpoint", e.clone().into());
        }
        if let Some(t) = self.health_check_timeout {
            put("timeout", t.into());
        }
        self.extras.put(&mut v);
        v
    }
}

pub fn parse(text: &str) -> Result<Vec<ManifestApp>> {
    Ok(parse_with_vars(text, &BTreeMap::new())?.0)
}

/// Parse a manifest, replacing `((name))` with `vars` first (a whole value
/// `((x))` takes the variable's YAML type; inside a string it is spliced in).
/// Returns the apps and warnings about fields that are ignored. A variable
/// that is not given is CF's "Expected to find variables: a, b".
pub fn parse_with_vars(
    text: &str,
    vars: &BTreeMap<String, serde_norway::Value>,
) -> Result<(Vec<ManifestApp>, Vec<String>)> {
    let raw: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| CliError::Manifest(e.to_string()))?;
    let mut missing = Vec::new();
    let value = interpolate(raw, vars, &mut missing);
    if !missing.is_empty() {
        let mut seen = Vec::new();
        for m in missing {
            if !seen.contains(&m) {
                seen.push(m);
            }
        }
        return Err(CliError::Other(format!(
            "Expected to find variables: {}",
            seen.join(", ")
        )));
    }
    let warnings = unknown_fields(&value);
    let m: ManifestFile = if value.is_null() {
        ManifestFile::default()
    } else {
        serde_norway::from_value(value).map_err(|e| CliError::Manifest(e.to_string()))?
    };
    Ok((m.applications, warnings))
}

/// `--vars-file` files (YAML maps), then `--var k=v` (the value read as a
/// YAML scalar, so `--var n=2` is a number): later ones win.
pub fn load_vars(
    files: &[PathBuf],
    kv: &[String],
) -> Result<BTreeMap<String, serde_norway::Value>> {
    let mut vars = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::io(format!("reading vars file {}", f.display()), e))?;
        let m: BTreeMap<String, serde_norway::Value> = serde_norway::from_str(&text)
            .map_err(|e| CliError::other(format!("Invalid vars file {}: {e}", f.display())))?;
        vars.extend(m);
    }
    for item in kv {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "Incorrect Usage: --var must be in the format KEY=VALUE (got '{item}')"
            ))
        })?;
        let value = serde_norway::from_str::<serde_norway::Value>(v)
            .ok()
            .filter(|v| {
                !matches!(
                    v,
                    serde_norway::Value::Mapping(_) | serde_norway::Value::Sequence(_)
                )
            })
            .unwrap_or_else(|| serde_norway::Value::String(v.to_string()));
        vars.insert(k.to_string(), value);
    }
    Ok(vars)
}

fn var_name(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("((")?.strip_suffix("))")?;
    (!inner.is_empty() && !inner.contains("((") && !inner.contains("))")).then_some(inner.trim())
}

fn interpolate(
    v: serde_norway::Value,
    vars: &BTreeMap<String, serde_norway::Value>,
    missing: &mut Vec<String>,
) -> serde_norway::Value {
    use serde_norway::Value;
    match v {
        Value::String(s) => {
            if let Some(name) = var_name(&s) {
                return match vars.get(name) {
                    Some(val) => val.clone(),
                    None => {
                        missing.push(name.to_string());
                        Value::String(s)
                    }
                };
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("((") {
                let Some(j) = rest[i + 2..].find("))") else {
                    break;
                };
                let name = rest[i + 2..i + 2 + j].trim();
                out.push_str(&rest[..i]);
                match vars.get(name) {
                    Some(val) => out.push_str(&yaml_scalar(val)),
                    None => {
                        missing.push(name.to_string());
                        out.push_str(&rest[i..i + 4 + j]);
                    }
                }
                rest = &rest[i + 4 + j..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .map(|x| interpolate(x, vars, missing))
                .collect(),
        ),
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, x)| (k, interpolate(x, vars, missing)))
                .collect(),
        ),
        other => other,
    }
}

fn unknown_fields(v: &serde_norway::Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(apps) = v.get("applications").and_then(|a| a.as_sequence()) else {
        return out;
    };
    for app in apps {
        let Some(m) = app.as_mapping() else { continue };
        let name = app
            .get("name")
            .map(yaml_scalar)
            .unwrap_or_else(|| "(unnamed)".into());
        for k in m.keys() {
            let k = yaml_scalar(k);
            if !APP_FIELDS.contains(&k.as_str()) && !EXTRA_FIELDS.contains(&k.as_str()) {
                out.push(format!(
                    "Warning: the manifest field '{k}' of app '{name}' is not supported and is ignored."
                ));
            }
        }
        for p in app
            .get("processes")
            .and_then(|p| p.as_sequence())
            .into_iter()
            .flatten()
        {
            for k in p.as_mapping().into_iter().flat_map(|m| m.keys()) {
                let k = yaml_scalar(k);
                if !PROCESS_FIELDS.contains(&k.as_str()) && !EXTRA_FIELDS.contains(&k.as_str()) {
                    out.push(format!(
                        "Warning: the manifest field '{k}' of a process of app '{name}' is not supported and is ignored."
                    ));
                }
            }
        }
    }
    out
}

pub fn load(path: &Path) -> Result<Vec<ManifestApp>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(format!("reading manifest {}", path.display()), e))?;
    parse(&text)
}

fn yaml_scalar(v: &serde_norway::Value) -> String {
    match v {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn size(v: Option<&serde_norway::Value>, flag: Option<&String>) -> Result<Option<u64>> {
    match (flag, v) {
        (Some(f), _) => parse_mb(f)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("Incorrect Usage: {e}"))),
        (None, Some(v)) => parse_mb(&yaml_scalar(v))
            .map(Some)
            .map_err(CliError::Manifest),
        (None, None) => Ok(None),
    }
}

fn instances(n: Option<i64>) -> Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| CliError::Usage("Instances must be greater than or equal to 0".into())),
    }
}

fn health_check_type(t: Option<String>, from_flag: bool) -> Result<Option<String>> {
    match t {
        Some(t) if !HEALTH_CHECK_TYPES.contains(&t.to_ascii_lowercase().as_str()) => {
            Err(CliError::Usage(if from_flag {
                r#"Incorrect Usage: HEALTH_CHECK_TYPE must be "port", "process", or "http""#.into()
            } else {
                format!(r#"Health check type must be "port", "process", or "http" (got '{t}')"#)
            }))
        }
        other => Ok(other.map(|t| t.to_ascii_lowercase())),
    }
}

/// CF's checks of an app name (as the controller's): not blank, at most
/// 255 characters, no control characters.
pub fn check_app_name(name: &str) -> Result<()> {
    let bad = |m: &str| Err(CliError::other(m.to_string()));
    if name.trim().is_empty() {
        return bad("Name can't be blank");
    }
    if name.chars().count() > 255 {
        return bad("Name is too long (maximum is 255 characters)");
    }
    if name.chars().any(char::is_control) {
        return bad("Name must not contain control characters");
    }
    Ok(())
}

/// CF's checks of a route's host (the controller's texts).
pub fn check_host(host: &str) -> Result<()> {
    if host.len() > 63 {
        return Err(CliError::other(format!(
            "Host cannot exceed 63 characters (host '{host}')"
        )));
    }
    if host != "*"
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(CliError::other(format!(
            r#"Host must be either "*" or contain only alphanumeric characters, "_", or "-" (host '{host}')"#
        )));
    }
    Ok(())
}

/// Merge the manifest's apps (possibly none) with the flags. `base` is the
/// directory relative paths in the manifest refer to.
pub fn plan(apps: &[ManifestApp], flags: &PushFlags, base: &Path) -> Result<Vec<AppPlan>> {
    let selected: Vec<ManifestApp> = match (&flags.name, apps.is_empty()) {
        (_, true) => vec![ManifestApp::default()],
        (Some(n), false) => {
            let found: Vec<_> = apps
                .iter()
                .filter(|a| a.name.as_deref() == Some(n))
                .cloned()
                .collect();
            if found.is_empty() && apps.len() == 1 {
                // A single-app manifest pushed under another name: CF applies it.
                vec![apps[0].clone()]
            } else if found.is_empty() {
                return Err(CliError::Manifest(format!(
                    "Could not find app named '{n}' in manifest"
                )));
            } else {
                found
            }
        }
        (None, false) => apps.to_vec(),
    };
    if selected.len() > 1
        && (flags.path.is_some() || flags.command.is_some() || flags.instances.is_some())
    {
        return Err(CliError::Usage(
            "Incorrect Usage: Command line flags (except -f and --no-start) cannot be applied when pushing multiple apps from a manifest file.".into(),
        ));
    }
    selected
        .iter()
        .map(|a| {
            let name = flags
                .name
                .clone()
                .or_else(|| a.name.clone())
                .ok_or_else(|| CliError::Usage("Incorrect Usage: the required argument `APP_NAME` was not provided (no manifest.yml found)".into()))?;
            check_app_name(&name)?;
            // `processes:`: the web entry fills what the app level leaves
            // open; the others are applied with `apply_manifest`.
            let procs = a.processes.clone().unwrap_or_default();
            let web = procs.iter().find(|p| p.kind == "web").cloned().unwrap_or_default();
            let mut processes = procs
                .iter()
                .filter(|p| p.kind != "web")
                .map(|p| process_plan(&name, p))
                .collect::<Result<Vec<_>>>()?;
            // The web process's probe and readiness settings (app level,
            // or its entry) also go through `apply_manifest`.
            let web_extras = web.extras.clone().or(&a.extras);
            check_probe_types(&web_extras)?;
            if !web_extras.is_empty() {
                processes.push(ProcessPlan {
                    kind: "web".into(),
                    extras: web_extras,
                    ..ProcessPlan::default()
                });
            }
            let path = match (&flags.path, &a.path) {
                (Some(p), _) => PathBuf::from(p),
                (None, Some(p)) => base.join(p),
                (None, None) => base.to_path_buf(),
            };
            let buildpacks = match (&flags.buildpacks[..], &a.buildpacks, &a.buildpack) {
                ([_, ..], _, _) => flags.buildpacks.clone(),
                ([], Some(bs), _) => bs.clone(),
                ([], None, Some(b)) => vec![b.clone()],
                _ => vec![],
            };
            let buildpacks = buildpacks.into_iter().filter(|b| b != "default" && b != "null").collect();
            let hc_flag = health_check_type(flags.health_check_type.clone(), true)?;
            let hc_manifest = health_check_type(
                a.health_check_type.clone().or(web.health_check_type.clone()),
                false,
            )?;
            Ok(AppPlan {
                name,
                path,
                instances: instances(flags.instances.or(a.instances).or(web.instances))?,
                memory_mb: size(a.memory.as_ref().or(web.memory.as_ref()), flags.memory.as_ref())?,
                disk_mb: size(a.disk_quota.as_ref().or(web.disk_quota.as_ref()), flags.disk.as_ref())?,
                buildpacks,
                command: flags.command.clone().or_else(|| a.command.clone()).or(web.command),
                env: a.env.iter().flatten().map(|(k, v)| (k.clone(), yaml_scalar(v))).collect(),
                routes: a.routes.iter().flatten().map(|r| r.route.clone()).collect(),
                no_route: flags.no_route || a.no_route.unwrap_or(false),
                random_route: flags.random_route || a.random_route.unwrap_or(false),
                stack: flags.stack.clone().or_else(|| a.stack.clone()),
                health_check_type: hc_flag.or(hc_manifest),
                health_check_endpoint: flags
                    .endpoint
                    .clone()
                    .or_else(|| a.health_check_http_endpoint.clone())
                    .or(web.health_check_http_endpoint),
                health_check_timeout: flags.timeout.or(a.timeout).or(web.timeout),
                processes,
                services: a.services.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// A `processes:` entry other than web, checked before anything is created.
fn process_plan(app: &str, p: &ManifestProcess) -> Result<ProcessPlan> {
    let at = |e: String| CliError::Manifest(format!("app '{app}', process '{}': {e}", p.kind));
    if !proto::valid_process_type(&p.kind) {
        return Err(at(
            "a process type is lower-case letters, digits, '-' and '_'".into(),
        ));
    }
    let mb = |v: Option<&serde_norway::Value>| {
        v.map(|v| parse_mb(&yaml_scalar(v)).map_err(at)).transpose()
    };
    Ok(ProcessPlan {
        kind: p.kind.clone(),
        command: p.command.clone(),
        instances: instances(p.instances)?,
        memory_mb: mb(p.memory.as_ref())?,
        disk_mb: mb(p.disk_quota.as_ref())?,
        health_check_type: health_check_type(p.health_check_type.clone(), false)?,
        health_check_endpoint: p.health_check_http_endpoint.clone(),
        health_check_timeout: p.timeout,
        extras: {
            check_probe_types(&p.extras)?;
            p.extras.clone()
        },
    })
}

fn check_probe_types(p: &Extras) -> Result<()> {
    if let Some(l) = &p.log_rate_limit_per_second {
        proto::size::parse_log_rate(&yaml_scalar(l)).map_err(CliError::Manifest)?;
    }
    health_check_type(p.readiness_health_check_type.clone(), false).map(|_| ())
}

/// A random route host as CF's `--random-route`: the app's host name and
/// two random words (`myapp-brave-otter`).
pub fn random_host(app_host: &str) -> String {
    const ADJECTIVES: &[&str] = &[
        "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively",
        "merry", "nimble", "proud", "quiet", "rapid", "shiny", "silly", "sunny", "swift", "tidy",
        "vivid", "wise", "witty", "zany", "bold", "bright", "clever", "cosy", "fuzzy", "lucky",
    ];
    const NOUNS: &[&str] = &[
        "otter", "badger", "falcon", "panda", "koala", "lynx", "heron", "bison", "gecko", "llama",
        "walrus", "puffin", "raven", "tapir", "wombat", "zebra", "camel", "eagle", "ferret",
        "hare", "ibis", "jaguar", "lemur", "moose", "newt", "okapi", "quokka", "seal", "toad",
        "yak",
    ];
    let r = uuid::Uuid::new_v4();
    let b = r.as_bytes();
    let a = ADJECTIVES[usize::from(b[0]) % ADJECTIVES.len()];
    let n = NOUNS[usize::from(b[1]) % NOUNS.len()];
    let base: String = app_host.chars().take(63 - a.len() - n.len() - 2).collect();
    format!("{}-{a}-{n}", base.trim_end_matches('-'))
}

/// Split a manifest route `host.domain[:port][/path]` against the known
/// domain names: the longest domain that is a suffix wins.
pub fn split_route(route: &str, domains: &[String]) -> Option<(String, String, String)> {
    let route = route
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let (hostpart, path) = match route.find('/') {
        Some(i) => (&route[..i], route[i..].trim_end_matches('/').to_string()),
        None => (route, String::new()),
    };
    let hostpart = hostpart
        .split(':')
        .next()
        .unwrap_or(hostpart)
        .to_ascii_lowercase();
    let mut best: Option<&String> = None;
    for d in domains {
        let dl = d.to_ascii_lowercase();
        let matches = hostpart == dl || hostpart.ends_with(&format!(".{dl}"));
        if matches && best.is_none_or(|b| b.len() < d.len()) {
            best = Some(d);
        }
    }
    let domain = best?;
    let host = if hostpart.len() == domain.len() {
        String::new()
    } else {
        hostpart[..hostpart.len() - domain.len() - 1].to_string()
    };
    Some((host, domain.clone(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
applications:
- name: myapp
  path: ./src
  instances: 3
  memory: 256M
  disk_quota: 1G
  buildpacks: [python]
  command: python3 app.py
  env: {GREETING: hello, COUNT: 3}
  routes:
  - route: myapp.localhost
  health-check-type: http
  health-check-http-endpoint: /health
  stack: cflinuxfs4
  random-field: ignored
- name: other
  memory: 128M
"#;

    #[test]
    fn parses_the_cli_md_manifest() {
        let apps = parse(SAMPLE).expect("parse");
        assert_eq!(apps.len(), 2);
        let plans = plan(&apps, &PushFlags::default(), Path::new("/base")).expect("plan");
        let p = &plans[0];
        assert_eq!(p.name, "myapp");
        assert_eq!(p.path, PathBuf::from("/base/./src"));
        assert_eq!(p.instances, Some(3));
        assert_eq!(p.memory_mb, Some(256));
        assert_eq!(p.disk_mb, Some(1024));
        assert_eq!(p.buildpacks, vec!["python".to_string()]);
        assert_eq!(p.command.as_deref(), Some("python3 app.py"));
        assert_eq!(p.env.get("GREETING").map(String::as_str), Some("hello"));
        assert_eq!(p.env.get("COUNT").map(String::as_str), Some("3"));
        assert_eq!(p.routes, vec!["myapp.localhost".to_string()]);
        assert_eq!(p.health_check_type.as_deref(), Some("http"));
        assert_eq!(p.health_check_endpoint.as_deref(), Some("/health"));
        assert_eq!(plans[1].name, "other");
        assert_eq!(plans[1].memory_mb, Some(128));
        assert_eq!(plans[1].path, PathBuf::from("/base"));
    }

    #[test]
    fn flags_override_the_manifest() {
        let apps = parse(SAMPLE).expect("parse");
        let flags = PushFlags {
            name: Some("myapp".into()),
            instances: Some(1),
            memory: Some("512MB".into()),
            buildpacks: vec!["binary".into()],
            path: Some("/elsewhere".into()),
            no_route: true,
            ..PushFlags::default()
        };
        let plans = plan(&apps, &flags, Path::new("/base")).expect("plan");
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!(p.instances, Some(1));
        assert_eq!(p.memory_mb, Some(512));
        assert_eq!(p.disk_mb, Some(1024));
        assert_eq!(p.buildpacks, vec!["binary".to_string()]);
        assert_eq!(p.path, PathBuf::from("/elsewhere"));
        assert!(p.no_route);
    }

    #[test]
    fn flags_alone_without_manifest() {
        let flags = PushFlags {
            name: Some("a".into()),
            memory: Some("1G".into()),
            ..PushFlags::default()
        };
        let plans = plan(&[], &flags, Path::new("/cwd")).expect("plan");
        assert_eq!(plans[0].name, "a");
        assert_eq!(plans[0].memory_mb, Some(1024));
        assert_eq!(plans[0].path, PathBuf::from("/cwd"));
        assert!(plan(&[], &PushFlags::default(), Path::new("/")).is_err());
    }

    #[test]
    fn several_buildpacks_and_the_start_timeout() {
        let apps =
            parse("applications:\n- name: a\n  buildpacks: [supplier, python]\n  timeout: 120\n")
                .expect("parse");
        let p = &plan(&apps, &PushFlags::default(), Path::new("/")).expect("plan")[0];
        assert_eq!(p.buildpacks, vec!["supplier", "python"]);
        // `timeout` / `-t` is the app's start (health check) timeout, not
        // the staging timeout, which is the platform's.
        assert_eq!(p.health_check_timeout, Some(120));
        let flags = PushFlags {
            buildpacks: vec!["a".into(), "b".into()],
            timeout: Some(30),
            ..PushFlags::default()
        };
        let p = &plan(&apps, &flags, Path::new("/")).expect("plan")[0];
        assert_eq!(
            (p.buildpacks.clone(), p.health_check_timeout),
            (vec!["a".to_string(), "b".to_string()], Some(30))
        );
    }

    #[test]
    fn vars_are_substituted_with_their_types() {
        let text = "applications:\n- name: ((name))\n  instances: ((n))\n  memory: ((mem))\n  env: {URL: \"http://((host)):80/x\"}\n  random-route: true\n  stack: host\n";
        let vars = load_vars(
            &[],
            &[
                "name=web".into(),
                "n=2".into(),
                "mem=64M".into(),
                "host=db".into(),
            ],
        )
        .expect("vars");
        let (apps, warnings) = parse_with_vars(text, &vars).expect("parse");
        assert!(warnings.is_empty(), "{warnings:?}");
        let p = &plan(&apps, &PushFlags::default(), Path::new("/")).expect("plan")[0];
        assert_eq!(p.name, "web");
        assert_eq!(p.instances, Some(2));
        assert_eq!(p.memory_mb, Some(64));
        assert_eq!(p.env.get("URL").map(String::as_str), Some("http://db:80/x"));
        assert!(p.random_route);
        assert_eq!(p.stack.as_deref(), Some("host"));
    }

    #[test]
    fn missing_vars_are_named() {
        let text = "applications:\n- name: ((a))\n  command: run ((b)) ((a))\n";
        let e = parse_with_vars(text, &BTreeMap::new()).expect_err("missing");
        assert_eq!(e.to_string(), "Expected to find variables: a, b");
    }

    #[test]
    fn vars_files_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("vars.yml");
        std::fs::write(&f, "a: 1\nb: from-file\n").expect("write");
        let vars = load_vars(&[f], &["b=from-flag".into()]).expect("vars");
        assert_eq!(vars.get("a"), Some(&serde_norway::Value::from(1)));
        assert_eq!(vars.get("b"), Some(&serde_norway::Value::from("from-flag")));
        assert!(load_vars(&[], &["novalue".into()]).is_err());
    }

    #[test]
    fn unknown_fields_warn() {
        let (_, w) = parse_with_vars(
            "applications:\n- name: a\n  sidecars: []\n  processes:\n  - type: web\n    foo: 1\n",
            &BTreeMap::new(),
        )
        .expect("parse");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("'sidecars'") && w[1].contains("'foo'"),
            "{w:?}"
        );
    }

    #[test]
    fn services_short_and_long_form() {
        let (apps, w) = parse_with_vars(
            "applications:\n- name: a\n  services:\n  - db\n  - name: cache\n    binding_name: redis\n    parameters: {ttl: 60}\n  - name: plain\n",
            &BTreeMap::new(),
        )
        .expect("parse");
        assert!(w.is_empty(), "{w:?}");
        let p = &plan(&apps, &PushFlags::default(), Path::new("/")).expect("plan")[0];
        assert_eq!(
            serde_json::to_value(&p.services).expect("json"),
            serde_json::json!(["db", {"name": "cache", "binding_name": "redis", "parameters": {"ttl": 60}}, {"name": "plain"}])
        );
        assert!(parse("applications:\n- name: a\n  services: [{binding_name: x}]\n").is_err());
    }

    #[test]
    fn processes_web_applies_others_become_process_plans() {
        let apps = parse("applications:\n- name: a\n  processes:\n  - type: web\n    command: ./run\n    instances: 2\n    memory: 128M\n    health-check-type: process\n").expect("parse");
        let p = &plan(&apps, &PushFlags::default(), Path::new("/")).expect("plan")[0];
        assert_eq!(p.command.as_deref(), Some("./run"));
        assert_eq!((p.instances, p.memory_mb), (Some(2), Some(128)));
        assert_eq!(p.health_check_type.as_deref(), Some("process"));
        assert!(p.processes.is_empty());
        // The web entry is found by its type, wherever it is.
        let apps = parse("applications:\n- name: a\n  processes:\n  - type: worker\n    command: ./work\n    instances: 3\n    memory: 64M\n    health-check-type: process\n  - type: web\n    command: ./web\n").expect("parse");
        let p = &plan(&apps, &PushFlags::default(), Path::new("/")).expect("plan")[0];
        assert_eq!(p.command.as_deref(), Some("./web"));
        assert_eq!(p.processes.len(), 1);
        let w = &p.processes[0];
        assert_eq!(
            (w.kind.as_str(), w.instances, w.memory_mb),
            ("worker", Some(3), Some(64))
        );
        assert_eq!(
            w.manifest_entry(),
            serde_json::json!({"type": "worker", "command": "./work", "instances": 3, "memory": "64M", "health-check-type": "process"})
        );
        for (bad, want) in [
            ("  - type: worker\n    memory: 10\n", "Byte quantity"),
            ("  - type: Worker\n", "lower-case letters"),
            (
                "  - type: worker\n    health-check-type: tcp\n",
                "Health check type must be",
            ),
        ] {
            let apps =
                parse(&format!("applications:\n- name: a\n  processes:\n{bad}")).expect("parse");
            let e = plan(&apps, &PushFlags::default(), Path::new("/")).expect_err(bad);
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_of_flags_and_fields() {
        let flags = |f: PushFlags| {
            plan(
                &[],
                &PushFlags {
                    name: Some("a".into()),
                    ..f
                },
                Path::new("/"),
            )
        };
        let e = flags(PushFlags {
            memory: Some("10".into()),
            ..PushFlags::default()
        })
        .expect_err("unit");
        assert!(e.to_string().contains(crate::size::BYTE_QUANTITY), "{e}");
        let e = flags(PushFlags {
            health_check_type: Some("none".into()),
            ..PushFlags::default()
        })
        .expect_err("none");
        assert!(
            e.to_string()
                .contains(r#"HEALTH_CHECK_TYPE must be "port", "process", or "http""#),
            "{e}"
        );
        assert!(flags(PushFlags {
            instances: Some(-1),
            ..PushFlags::default()
        })
        .is_err());
        let long = "x".repeat(256);
        let e = plan(
            &[],
            &PushFlags {
                name: Some(long),
                ..PushFlags::default()
            },
            Path::new("/"),
        )
        .expect_err("long");
        assert!(e.to_string().contains("Name is too long"), "{e}");
        assert!(check_host("ok-host_1").is_ok());
        assert!(check_host("*").is_ok());
        assert!(check_host("bad.host").is_err());
        assert!(check_host(&"h".repeat(64)).is_err());
        let h = random_host("myapp");
        assert!(h.starts_with("myapp-") && h.split('-').count() == 3, "{h}");
        assert!(check_host(&random_host(&"a".repeat(70))).is_ok());
    }

    #[test]
    fn bad_manifests_are_errors() {
        assert!(parse("applications: 5").is_err());
        let apps = parse("applications:\n- name: a\n  memory: lots\n").expect("parse");
        assert!(plan(&apps, &PushFlags::default(), Path::new("/")).is_err());
        let apps = parse(SAMPLE).expect("parse");
        let flags = PushFlags {
            name: Some("missing".into()),
            ..PushFlags::default()
        };
        assert!(plan(&apps, &flags, Path::new("/")).is_err());
    }

    #[test]
    fn splits_routes_by_longest_domain() {
        let domains = vec!["localhost".to_string(), "apps.localhost".to_string()];
        assert_eq!(
            split_route("myapp.localhost", &domains),
            Some(("myapp".into(), "localhost".into(), String::new()))
        );
        assert_eq!(
            split_route("a.apps.localhost/api/", &domains),
            Some(("a".into(), "apps.localhost".into(), "/api".into()))
        );
        assert_eq!(
            split_route("apps.localhost", &domains),
            Some((String::new(), "apps.localhost".into(), String::new()))
        );
        assert_eq!(split_route("x.example.com", &domains), None);
    }
}
