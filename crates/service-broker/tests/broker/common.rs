//! A broker on port 0 with its state in a temp dir, an HTTP client for
//! it, and a guard that deletes what a test made on the servers even when
//! the test fails.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use service_broker::{Backend, Broker, Config, Kind, Options};

pub const PASSWORD: &str = "test-broker-password";

pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::all_local(PASSWORD);
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.state_url = format!("sqlite://{}", dir.join("state.db").display());
    c
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn plan_id(kind: Kind, name: &str) -> String {
    kind.default_plans()
        .into_iter()
        .find(|p| p.name == name)
        .expect("plan")
        .id
}

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub dir: tempfile::TempDir,
    pub url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestBroker {
        Self::start_changed(options, |_| {}).await
    }

    /// A broker whose config `change` alters first.
    pub async fn start_changed(options: Options, change: impl FnOnce(&mut Config)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        change(&mut c);
        let broker = service_broker::start_with(c, options)
            .await
            .expect("start broker");
        for s in broker.statuses() {
            assert!(
                s.skipped.is_none(),
                "a backend of this machine is missing: {s}"
            );
        }
        TestBroker {
            url: broker.url(),
            broker: Some(broker),
            dir,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// Stops this broker and starts another on the same state.
    pub async fn restart(&mut self, options: Options) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("shutdown");
        }
        let broker = service_broker::start_with(config(self.dir.path()), options)
            .await
            .expect("restart broker");
        self.url = broker.url();
        self.broker = Some(broker);
    }

    /// A request with basic auth and the version header unless `headers`
    /// says otherwise: (status, JSON body).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        auth: Option<(&str, &str)>,
        version: Option<&str>,
    ) -> (u16, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some((u, p)) = auth {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("authorization", format!("Basic {b}"));
        }
        if let Some(v) = version {
            req = req.header("x-broker-api-version", v);
        }
        let data = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = req.body(Full::new(data)).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(120), self.client.request(req))
            .await
            .expect("broker answers in time")
            .expect("request");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
        (status, json)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body, Some(("broker", PASSWORD)), Some("2.17"))
            .await
    }

    pub async fn provision(
        &self,
        kind: Kind,
        instance: &str,
        accepts_incomplete: bool,
    ) -> (u16, Value) {
        let q = if accepts_incomplete {
            "?accepts_incomplete=true"
        } else {
            ""
        };
        self.call(
            "PUT",
            &format!("/v2/service_instances/{instance}{q}"),
            Some(json!({
                "service_id": kind.service_id(),
                "plan_id": plan_id(kind, "small"),
                "organization_guid": "org-1",
                "space_guid": "space-1",
                "context": {"platform": "cloudfoundry"},
            })),
        )
        .await
    }

    pub async fn bind(&self, kind: Kind, instance: &str, binding: &str) -> (u16, Value) {
        self.call(
            "PUT",
            &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
            Some(json!({
                "service_id": kind.service_id(),
                "plan_id": plan_id(kind, "small"),
                "app_guid": "app-1",
                "bind_resource": {"app_guid": "app-1"},
            })),
        )
        .await
    }

    pub async fn unbind(&self, kind: Kind, instance: &str, binding: &str) -> (u16, Value) {
        self.call(
            "DELETE",
            &format!(
                "/v2/service_instances/{instance}/service_bindings/{binding}?service_id={}&plan_id={}",
                kind.service_id(),
                plan_id(kind, "small")
            ),
            None,
        )
        .await
    }

    pub async fn deprovision(&self, kind: Kind, instance: &str) -> (u16, Value) {
        self.call(
            "DELETE",
            &format!(
                "/v2/service_instances/{instance}?service_id={}&plan_id={}",
                kind.service_id(),
                plan_id(kind, "small")
            ),
            None,
        )
        .await
    }
}

/// Checks the credentials' shape and returns them.
pub fn creds(body: &Value, scheme: &str) -> Value {
    let c = body["credentials"].clone();
    let uri = c["uri"].as_str().expect("uri");
    assert_eq!(c["url"], c["uri"], "{c}");
    assert!(uri.starts_with(&format!("{scheme}://")), "{uri}");
    assert_eq!(c["hostname"], "127.0.0.1");
    assert!(c["port"].as_u64().is_some());
    assert!(c["name"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(c["username"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(c["password"].as_str().expect("password").len() >= 24);
    c
}

pub fn s<'a>(c: &'a Value, key: &str) -> &'a str {
    c[key].as_str().expect("string credential")
}

/// Deletes, on drop, the instances and bindings a test registered,
/// directly on the servers (also after a failure or panic).
pub struct Cleanup {
    made: Vec<(Kind, String, Vec<String>)>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup { made: Vec::new() }
    }

    pub fn instance(&mut self, kind: Kind, id: &str) {
        self.made.push((kind, id.to_string(), Vec::new()));
    }

    pub fn binding(&mut self, id: &str, binding: &str) {
        if let Some(m) = self.made.iter_mut().find(|m| m.1 == id) {
            m.2.push(binding.to_string());
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let made = std::mem::take(&mut self.made);
        if made.is_empty() {
            return;
        }
        let dir = std::env::temp_dir();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let config = config(&dir);
                for (kind, id, bindings) in made {
                    let Ok(Some(b)) = Backend::from_config(kind, &config) else {
                        continue;
                    };
                    for binding in bindings {
                        let _ = b.unbind(&id, &binding).await;
                    }
                    let _ = b.deprovision(&id).await;
                    b.close().await;
                }
            });
        });
        let _ = done.join();
    }
}
