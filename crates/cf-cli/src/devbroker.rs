//! `cf dev start`'s service broker (docs/service-broker.md): which of this
//! machine's PostgreSQL, MySQL (MariaDB), Redis and RabbitMQ answer, the
//! broker's config for those, and its registration (as `local`, every plan
//! enabled) with the controller.

use std::time::Duration;

use serde_json::{json, Value};

use crate::devenv::{toml_str, write_private, Layout};
use crate::error::{CliError, Result};

/// The component name (its pid, log and addr files).
pub const COMPONENT: &str = "service-broker";
/// The name the broker is registered under.
pub const BROKER_NAME: &str = "local";
const USER: &str = "broker";

/// A backend: offering label, config section, what is probed.
pub struct Backend {
    pub label: &'static str,
    section: &'static str,
    probe: &'static str,
    hint: &'static str,
}

pub const BACKENDS: [Backend; 4] = [
    Backend {
        label: "postgresql",
        section: "[postgresql]\nadmin_url = \"postgres://postgres@127.0.0.1:5432/postgres\"\n",
        probe: "127.0.0.1:5432",
        hint: "PostgreSQL",
    },
    Backend {
        label: "mysql",
        section: "[mysql]\nadmin_url = \"mysql://root@127.0.0.1:3306\"\n",
        probe: "127.0.0.1:3306",
        hint: "MySQL or MariaDB",
    },
    Backend {
        label: "redis",
        section: "[redis]\nurl = \"redis://127.0.0.1:6379\"\n",
        probe: "127.0.0.1:6379",
        hint: "Redis",
    },
    Backend {
        label: "rabbitmq",
        section: "[rabbitmq]\nmanagement_url = \"http://guest:guest@127.0.0.1:15672\"\namqp_port = 5672\n",
        probe: "127.0.0.1:15672",
        hint: "RabbitMQ's management API (rabbitmq-plugins enable rabbitmq_management)",
    },
];

/// Each backend and why it is skipped (`None`: it answered).
pub async fn probe() -> Vec<(&'static Backend, Option<String>)> {
    let mut out = Vec::new();
    for b in &BACKENDS {
        let why = match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(b.probe),
        )
        .await
        {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{} on {} did not answer: {e}", b.hint, b.probe)),
            Err(_) => Some(format!(
                "{} on {} did not answer within 1s",
                b.hint, b.probe
            )),
        };
        out.push((b, why));
    }
    out
}

/// The broker's password, made once and kept (0600) in the dev dir, so a
/// restart keeps the registration valid.
pub fn password(l: &Layout) -> Result<String> {
    let path = l.dir.join("broker").join("password");
    if let Ok(p) = std::fs::read_to_string(&path) {
        let p = p.trim().to_string();
        if p.len() >= 16 {
            return Ok(p);
        }
    }
    std::fs::create_dir_all(l.dir.join("broker"))
        .map_err(|e| CliError::io("creating the broker's dir", e))?;
    let p = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &format!("{p}\n"))?;
    Ok(p)
}

/// The broker's config: the backends that answered.
pub fn config(l: &Layout, password: &str, labels: &[&str]) -> String {
    let mut s = format!(
        "listen = \"127.0.0.1:0\"\naddr_file = {}\nusername = {}\npassword = {}\nstate_url = {}\n",
        toml_str(&l.addr(COMPONENT).display().to_string()),
        toml_str(USER),
        toml_str(password),
        toml_str(&format!(
            "sqlite://{}",
            l.dir.join("broker").join("state.db").display()
        )),
    );
    for b in BACKENDS.iter().filter(|b| labels.contains(&b.label)) {
        s.push_str(b.section);
        // Apps in containers reach the servers through the DEA's host
        // services address; apps on the host through 127.0.0.1.
        if crate::devenv::containers() {
            s.push_str(&format!(
                "advertise_host = {}\n",
                toml_str(crate::devenv::HOST_SERVICES_ADDRESS)
            ));
            if b.label == "redis" {
                s.push_str(&format!(
                    "guard_listen = \"127.0.0.1:{}\"\n",
                    crate::devenv::REDIS_GUARD_PORT
                ));
            }
        }
    }
    s
}

/// The offerings the broker lists (GET /v2/catalog).
pub async fn catalog(http: &reqwest::Client, url: &str, password: &str) -> Result<Vec<String>> {
    let v: Value = http
        .get(format!("{url}/v2/catalog"))
        .basic_auth(USER, Some(password))
        .header("X-Broker-API-Version", "2.17")
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(v["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Registers the broker at `url` as `local` (or points the existing
/// registration at it) and enables every plan of it for all orgs.
pub async fn register(
    http: &reqwest::Client,
    cc: &str,
    url: &str,
    password: &str,
) -> Result<usize> {
    let token: Value = http
        .post(format!("{cc}/oauth/token"))
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "admin"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .ok_or_else(|| CliError::other("the controller gave the admin no token"))?
        .to_string();
    let api = |m: reqwest::Method, path: &str| {
        http.request(m, format!("{cc}{path}"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
    };
    let auth = json!({"type": "basic", "credentials": {"username": USER, "password": password}});
    let existing: Value = api(
        reqwest::Method::GET,
        &format!("/v3/service_brokers?names={BROKER_NAME}"),
    )
    .send()
    .await?
    .json()
    .await?;
    let r = match existing["resources"][0]["guid"].as_str() {
        Some(g) => {
            api(reqwest::Method::PATCH, &format!("/v3/service_brokers/{g}"))
                .json(&json!({"url": url, "authentication": auth}))
                .send()
                .await?
        }
        None => {
            api(reqwest::Method::POST, "/v3/service_brokers")
                .json(&json!({"name": BROKER_NAME, "url": url, "authentication": auth}))
                .send()
                .await?
        }
    };
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status();
    if !status.is_success() {
        let body = r.text().await.unwrap_or_default();
        return Err(CliError::other(format!(
            "registering the service broker: {status}: {body}"
        )));
    }
    if let Some(loc) = location {
        let job = loc.rsplit('/').next().unwrap_or_default().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let j: Value = api(reqwest::Method::GET, &format!("/v3/jobs/{job}"))
                .send()
                .await?
                .json()
                .await?;
            match j["state"].as_str() {
                Some("COMPLETE") => break,
                Some("FAILED") => {
                    return Err(CliError::other(format!(
                        "registering the service broker: {}",
                        j["errors"][0]["detail"]
                            .as_str()
                            .unwrap_or("the job failed")
                    )))
                }
                _ if std::time::Instant::now() > deadline => {
                    return Err(CliError::other(
                        "registering the service broker: its catalog was not synced within 60s",
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    let plans: Value = api(
        reqwest::Method::GET,
        &format!("/v3/service_plans?service_broker_names={BROKER_NAME}&per_page=5000"),
    )
    .send()
    .await?
    .json()
    .await?;
    let mut n = 0;
    for p in plans["resources"].as_array().into_iter().flatten() {
        let Some(g) = p["guid"].as_str() else {
            continue;
        };
        api(
            reqwest::Method::POST,
            &format!("/v3/service_plans/{g}/visibility"),
        )
        .json(&json!({"type": "public"}))
        .send()
        .await?
        .error_for_status()?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_only_the_backends_that_answered() {
        let l = Layout::new(std::path::PathBuf::from("/tmp/devx"));
        let text = config(&l, "pw\"x", &["postgresql", "redis"]);
        let v: toml::Value = toml::from_str(&text).expect("toml");
        assert_eq!(v["password"].as_str(), Some("pw\"x"));
        assert_eq!(v["listen"].as_str(), Some("127.0.0.1:0"));
        assert!(v.get("postgresql").is_some() && v.get("redis").is_some());
        assert!(v.get("mysql").is_none() && v.get("rabbitmq").is_none());
        assert!(v["state_url"]
            .as_str()
            .is_some_and(|s| s.starts_with("sqlite:///tmp/devx/broker/")));
    }
}
