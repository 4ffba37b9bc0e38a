//! The environment of an instance (docs/architecture.md §10.3).

use std::collections::BTreeMap;
use std::path::Path;

use proto::StartRequest;

pub struct EnvInput<'a> {
    pub req: &'a StartRequest,
    pub instance_id: &'a str,
    pub host_ip: &'a str,
    pub port: u16,
    /// The instance directory (`app/` and `tmp/` inside).
    pub instance_dir: &'a Path,
    /// RFC 3339.
    pub started_at: &'a str,
    pub started_at_unix: i64,
    /// `PATH` handed to the app.
    pub path: &'a str,
}

/// `KEY=VALUE` lines into pairs (lines without `=` are skipped).
pub fn parse_env_list(list: &[String]) -> Vec<(String, String)> {
    list.iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The `VCAP_APPLICATION` document: the given one plus instance facts.
pub fn vcap_application(i: &EnvInput) -> serde_json::Value {
    let mut v = match &i.req.vcap_application {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    let r = i.req;
    let mut set_default = |k: &str, val: serde_json::Value| {
        v.entry(k.to_string()).or_insert(val);
    };
    set_default("application_id", r.app_id.clone().into());
    set_default("application_name", r.app_name.clone().into());
    set_default("application_version", r.version.clone().into());
    set_default("application_uris", r.uris.clone().into());
    set_default("uris", r.uris.clone().into());
    set_default("name", r.app_name.clone().into());
    set_default("version", r.version.clone().into());
    set_default(
        "limits",
        serde_json::json!({"mem": r.limits.memory_mb, "disk": r.limits.disk_mb, "fds": r.limits.fds}),
    );
    v.insert("instance_id".into(), i.instance_id.into());
    v.insert("instance_index".into(), r.index.into());
    v.insert("host".into(), "0.0.0.0".into());
    v.insert("port".into(), i.port.into());
    v.insert("started_at".into(), i.started_at.into());
    v.insert("started_at_timestamp".into(), i.started_at_unix.into());
    v.insert("state_timestamp".into(), i.started_at_unix.into());
    serde_json::Value::Object(v)
}

/// The complete environment: user env first, platform variables win.
pub fn build_env(i: &EnvInput) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), i.path.to_string());
    env.insert("LANG".into(), "C.UTF-8".into());
    env.extend(parse_env_list(&i.req.env));
    let app = i.instance_dir.join("app");
    let addr = format!("{}:{}", i.host_ip, i.port);
    let services = i
        .req
        .vcap_services
        .clone()
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    // DATABASE_URL from the bound services, unless the app sets its own.
    if let Some(url) = proto::vcap::database_url(&services) {
        env.entry("DATABASE_URL".into()).or_insert(url);
    }
    let sys = [
        ("PORT", i.port.to_string()),
        ("VCAP_APPLICATION", vcap_application(i).to_string()),
        ("VCAP_SERVICES", services.to_string()),
        ("CF_INSTANCE_INDEX", i.req.index.to_string()),
        ("CF_INSTANCE_GUID", i.instance_id.to_string()),
        ("CF_INSTANCE_IP", i.host_ip.to_string()),
        ("CF_INSTANCE_PORT", i.port.to_string()),
        ("CF_INSTANCE_ADDR", addr),
        ("MEMORY_LIMIT", format!("{}m", i.req.limits.memory_mb)),
        ("HOME", app.display().to_string()),
        (
            "DEPS_DIR",
            i.instance_dir.join("deps").display().to_string(),
        ),
        ("TMPDIR", i.instance_dir.join("tmp").display().to_string()),
    ];
    for (k, v) in sys {
        env.insert(k.to_string(), v);
    }
    env.into_iter().collect()
}

/// Single-quotes `s` for bash.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `bash -c` script of an instance (run in `app/`): source what the
/// buildpacks and the app left for start-up — `../deps/*/profile.d/*.sh`
/// (supply buildpacks), `../profile.d/*.sh` (the final buildpack's
/// `bin/finalize`), then `.profile.d/*.sh` (the app's and a `bin/compile`
/// buildpack's) — then exec the start command. The command goes through its
/// own `bash -c` so that compound commands (`cd x && ./run`, `a; b`) keep
/// their meaning; for a simple command bash execs it directly, so the app
/// is the group leader.
pub fn start_script(command: &str) -> String {
    format!(
        "for f in ../deps/*/profile.d/*.sh ../profile.d/*.sh .profile.d/*.sh; do [ -f \"$f\" ] && [ -r \"$f\" ] && . \"$f\"; done; unset f\nexec bash -c {}\n",
        shell_quote(command)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> StartRequest {
        serde_json::from_value(serde_json::json!({
            "app_id": "a1", "app_name": "web", "version": "v1", "index": 2,
            "droplet_uri": "http://x/d", "droplet_sha256": "",
            "uris": ["web.localhost"], "env": ["FOO=bar=baz", "PORT=1", "BAD"],
            "limits": {"memory_mb": 128, "disk_mb": 512, "fds": 100},
            "start_command": "python3 app.py", "stack": "host",
            "vcap_application": {"name": "web", "space_name": "dev"}
        }))
        .expect("req")
    }

    #[test]
    fn builds_the_instance_environment() {
        let r = req();
        let input = EnvInput {
            req: &r,
            instance_id: "i-1",
            host_ip: "127.0.0.1",
            port: 61000,
            instance_dir: Path::new("/s/instances/i-1"),
            started_at: "2026-01-01T00:00:00Z",
            started_at_unix: 5,
            path: "/usr/bin:/bin",
        };
        let env: BTreeMap<_, _> = build_env(&input).into_iter().collect();
        assert_eq!(env["PORT"], "61000");
        assert_eq!(env["FOO"], "bar=baz");
        assert!(!env.contains_key("BAD"));
        assert_eq!(env["CF_INSTANCE_INDEX"], "2");
        assert_eq!(env["CF_INSTANCE_ADDR"], "127.0.0.1:61000");
        assert_eq!(env["MEMORY_LIMIT"], "128m");
        assert_eq!(env["HOME"], "/s/instances/i-1/app");
        assert_eq!(env["TMPDIR"], "/s/instances/i-1/tmp");
        assert_eq!(env["VCAP_SERVICES"], "{}");
        let v: serde_json::Value = serde_json::from_str(&env["VCAP_APPLICATION"]).expect("json");
        assert_eq!(v["space_name"], "dev");
        assert_eq!(v["instance_id"], "i-1");
        assert_eq!(v["instance_index"], 2);
        assert_eq!(v["port"], 61000);
        assert_eq!(v["application_uris"][0], "web.localhost");
        assert!(!env.contains_key("DATABASE_URL"));
    }

    #[test]
    fn bound_services_and_database_url() {
        let mut r = req();
        r.vcap_services = Some(
            serde_json::json!({"postgresql": [{"credentials": {"uri": "postgres://u:p@h:5432/d"}}]}),
        );
        let input = EnvInput {
            req: &r,
            instance_id: "i-1",
            host_ip: "127.0.0.1",
            port: 61000,
            instance_dir: Path::new("/s/instances/i-1"),
            started_at: "2026-01-01T00:00:00Z",
            started_at_unix: 5,
            path: "/usr/bin:/bin",
        };
        let env: BTreeMap<_, _> = build_env(&input).into_iter().collect();
        assert_eq!(env["DATABASE_URL"], "postgres://u:p@h:5432/d");
        let v: serde_json::Value = serde_json::from_str(&env["VCAP_SERVICES"]).expect("json");
        assert_eq!(
            v["postgresql"][0]["credentials"]["uri"],
            "postgres://u:p@h:5432/d"
        );
        // The app's own DATABASE_URL wins; VCAP_SERVICES cannot be set by it.
        let mut r2 = r.clone();
        r2.env.push("DATABASE_URL=mine".into());
        r2.env.push("VCAP_SERVICES=x".into());
        let input = EnvInput { req: &r2, ..input };
        let env: BTreeMap<_, _> = build_env(&input).into_iter().collect();
        assert_eq!(env["DATABASE_URL"], "mine");
        assert_ne!(env["VCAP_SERVICES"], "x");
    }

    #[test]
    fn quoting_and_script() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert!(start_script("python3 app.py").ends_with("exec bash -c 'python3 app.py'\n"));
        // Supply buildpacks' scripts first, then the final one's, then the app's.
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        for (dir, name, line) in [
            ("deps/0/profile.d", "a.sh", "ORDER=\"$ORDER supply\""),
            ("profile.d", "b.sh", "ORDER=\"$ORDER final\""),
            ("app/.profile.d", "c.sh", "ORDER=\"$ORDER app\""),
        ] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
            std::fs::write(root.join(dir).join(name), format!("export {line}\n")).expect("write");
        }
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(start_script("echo $ORDER"))
            .current_dir(root.join("app"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("run");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "supply final app"
        );
    }
}
