//! `manifest.yml` parsing and merging with `cf push` flags.

use crate::error::{CliError, Result};
use crate::size::parse_mb;
use serde::Deserialize;
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

/// One entry of `applications:` (unknown fields are ignored).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ManifestApp {
    pub name: Option<String>,
    pub path: Option<String>,
    pub instances: Option<u32>,
    pub memory: Option<serde_norway::Value>,
    pub disk_quota: Option<serde_norway::Value>,
    pub buildpack: Option<String>,
    pub buildpacks: Option<Vec<String>>,
    pub command: Option<String>,
    pub env: Option<BTreeMap<String, serde_norway::Value>>,
    pub routes: Option<Vec<ManifestRoute>>,
    #[serde(rename = "no-route")]
    pub no_route: Option<bool>,
    #[serde(rename = "health-check-type")]
    pub health_check_type: Option<String>,
    #[serde(rename = "health-check-http-endpoint")]
    pub health_check_http_endpoint: Option<String>,
    /// Seconds an instance may take to become healthy (`-t`); not the
    /// staging timeout, which is the platform's.
    pub timeout: Option<u32>,
}

/// Flags of `cf push` that override the manifest.
#[derive(Debug, Clone, Default)]
pub struct PushFlags {
    pub name: Option<String>,
    pub path: Option<String>,
    pub instances: Option<u32>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    /// `-b`, given once or more (`-b first -b second`).
    pub buildpacks: Vec<String>,
    pub command: Option<String>,
    pub no_route: bool,
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
    pub health_check_type: Option<String>,
    pub health_check_endpoint: Option<String>,
    pub health_check_timeout: Option<u32>,
}

pub fn parse(text: &str) -> Result<Vec<ManifestApp>> {
    let m: ManifestFile =
        serde_norway::from_str(text).map_err(|e| CliError::Manifest(e.to_string()))?;
    Ok(m.applications)
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
        (Some(f), _) => parse_mb(f).map(Some).map_err(CliError::Usage),
        (None, Some(v)) => parse_mb(&yaml_scalar(v))
            .map(Some)
            .map_err(CliError::Manifest),
        (None, None) => Ok(None),
    }
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
            Ok(AppPlan {
                name,
                path,
                instances: flags.instances.or(a.instances),
                memory_mb: size(a.memory.as_ref(), flags.memory.as_ref())?,
                disk_mb: size(a.disk_quota.as_ref(), flags.disk.as_ref())?,
                buildpacks,
                command: flags.command.clone().or_else(|| a.command.clone()),
                env: a.env.iter().flatten().map(|(k, v)| (k.clone(), yaml_scalar(v))).collect(),
                routes: a.routes.iter().flatten().map(|r| r.route.clone()).collect(),
                no_route: flags.no_route || a.no_route.unwrap_or(false),
                health_check_type: flags.health_check_type.clone().or_else(|| a.health_check_type.clone()),
                health_check_endpoint: flags.endpoint.clone().or_else(|| a.health_check_http_endpoint.clone()),
                health_check_timeout: flags.timeout.or(a.timeout),
            })
        })
        .collect()
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
  memory: 128
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
