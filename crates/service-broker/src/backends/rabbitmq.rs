//! RabbitMQ through its management HTTP API: per instance a vhost (with
//! the plan's `max-connections` limit); per binding a user with
//! configure/write/read `.*` on that vhost only. Unbind deletes the user
//! and closes its connections; deprovision deletes the vhost (which
//! closes its connections).

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::{advertised, credentials, wait_until, Advertised};
use crate::config::{PlanConfig, RabbitConfig};
use crate::names::{binding_user, instance_name, pct};
use crate::Error;

/// Largest management API response read.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

pub struct Rabbit {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port` (no trailing slash, no credentials).
    base: String,
    auth: String,
    amqp: (String, u16),
    at: Advertised,
    pub(crate) plans: Vec<PlanConfig>,
}

/// An error with its sources: "client error (Connect): tcp connect
/// error: Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Rabbit {
    pub fn new(c: &RabbitConfig, plans: Vec<PlanConfig>) -> Result<Rabbit, Error> {
        let u = url::Url::parse(&c.management_url)
            .map_err(|e| Error::Config(format!("[rabbitmq] management_url: {e}")))?;
        if u.scheme() != "http" {
            return Err(Error::Config(
                "[rabbitmq] management_url: only http:// (the management API on this machine)"
                    .into(),
            ));
        }
        let (host, port) = super::url_host_port(&c.management_url, 15672)?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = dec(u.username());
        let password = u.password().map(dec).unwrap_or_default();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let hostport = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let at = advertised(
            &c.management_url,
            c.amqp_port,
            &c.advertise_host,
            Some(c.advertise_port.unwrap_or(c.amqp_port)),
        )?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        Ok(Rabbit {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("http://{hostport}"),
            auth,
            amqp: (host, c.amqp_port),
            at,
            plans,
        })
    }

    /// One management API call: (status, body).
    async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let data = match &body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}/api/{path}", self.base))
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .header("x-reason", "unbound by the service broker")
            .body(Full::new(data))
            .map_err(|e| Error::Internal(format!("rabbitmq request: {e}")))?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| {
                Error::Backend(format!(
                    "rabbitmq management API {}: {}",
                    self.base,
                    chain(&e)
                ))
            })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| Error::Backend(format!("rabbitmq management API: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| Error::Backend("rabbitmq management API: no answer in 30 s".into()))?
    }

    /// A call that must succeed (2xx; also 404 when `missing_ok`).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        missing_ok: bool,
    ) -> Result<Bytes, Error> {
        let (status, data) = self.api(method.clone(), path, body).await?;
        if status.is_success() || (missing_ok && status == StatusCode::NOT_FOUND) {
            return Ok(data);
        }
        let text = String::from_utf8_lossy(&data[..data.len().min(300)]).into_owned();
        Err(Error::Backend(format!(
            "rabbitmq management API: {method} /api/{path}: {status}: {text}"
        )))
    }

    pub async fn probe(&self) -> Result<(), Error> {
        let whoami = self.call(Method::GET, "whoami", None, false).await?;
        let who: Value = serde_json::from_slice(&whoami)?;
        let tags = who.get("tags").map(|t| t.to_string()).unwrap_or_default();
        if !tags.contains("administrator") {
            return Err(Error::Backend(
                "the management_url's user is not an administrator".into(),
            ));
        }
        let (host, port) = &self.amqp;
        tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map_err(|e| Error::Backend(format!("AMQP port {host}:{port}: {e}")))?;
        Ok(())
    }

    pub async fn provision(&self, instance_id: &str, plan: &PlanConfig) -> Result<(), Error> {
        let vhost = pct(&instance_name(instance_id));
        self.call(
            Method::PUT,
            &format!("vhosts/{vhost}"),
            Some(json!({})),
            false,
        )
        .await?;
        self.call(
            Method::PUT,
            &format!("vhost-limits/{vhost}/max-connections"),
            Some(json!({"value": plan.connection_limit})),
            false,
        )
        .await?;
        Ok(())
    }

    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        password: &str,
        _plan: &PlanConfig,
    ) -> Result<Value, Error> {
        let name = instance_name(instance_id);
        let vhost = pct(&name);
        let user = binding_user(instance_id, binding_id);
        let (status, _) = self
            .api(Method::GET, &format!("vhosts/{vhost}"), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Error::Backend(format!("vhost {name} does not exist")));
        }
        self.call(
            Method::PUT,
            &format!("users/{}", pct(&user)),
            Some(json!({"password": password, "tags": ""})),
            false,
        )
        .await?;
        self.call(
            Method::PUT,
            &format!("permissions/{vhost}/{}", pct(&user)),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
            false,
        )
        .await?;
        Ok(credentials(
            "amqp",
            &self.at,
            &name,
            &format!("/{vhost}"),
            &user,
            password,
        ))
    }

    /// Names of the open connections of `user`.
    async fn connections_of(&self, user: &str) -> Result<Vec<String>, Error> {
        let data = self
            .call(Method::GET, "connections?columns=name,user", None, false)
            .await?;
        let list: Value = serde_json::from_slice(&data)?;
        Ok(list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("user").and_then(Value::as_str) == Some(user))
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> Result<(), Error> {
        let user = binding_user(instance_id, binding_id);
        self.call(Method::DELETE, &format!("users/{}", pct(&user)), None, true)
            .await?;
        let user_ref = &user;
        let closed = wait_until(Duration::from_secs(10), || async {
            let conns = self.connections_of(user_ref).await?;
            for c in &conns {
                self.call(
                    Method::DELETE,
                    &format!("connections/{}", pct(c)),
                    None,
                    true,
                )
                .await?;
            }
            Ok(conns.is_empty())
        })
        .await?;
        if !closed {
            tracing::warn!(%user, "rabbitmq connections still open 10 s after closing them");
        }
        Ok(())
    }

    pub async fn deprovision(&self, instance_id: &str) -> Result<(), Error> {
        let vhost = pct(&instance_name(instance_id));
        self.call(Method::DELETE, &format!("vhosts/{vhost}"), None, true)
            .await?;
        Ok(())
    }
}
