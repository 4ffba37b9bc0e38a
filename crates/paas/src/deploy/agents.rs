//! The real hosts: their agents over HTTP with the deployment's token, or
//! over HTTPS when the manifest names the agents' CA (`certificates.ca`):
//! then every agent's certificate must chain to that CA alone and name the
//! host's address (docs/operations.md "TLS between the deployer and the
//! agents").

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::execute::Hosts;
use super::manifest::{socket, Manifest, Role};
use super::plan::Change;
use super::render::{render, Secrets};
use super::rollout::Outcome;
use super::state::Actual;
use crate::agent::spec::{AgentStatus, ComponentStatus, Desired, State};

/// How often a step's health is polled.
const POLL: Duration = Duration::from_millis(250);
/// A changed component that crashed this many times after its first
/// start fails its step at once.
const CRASHES_TO_FAIL: u32 = 2;
/// One call to an agent gives up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the client for the agents could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("certificates.ca: {0}")]
    Ca(#[from] proto::https::HttpsError),
    #[error("certificates.ca: {path}: {source}")]
    CaBad {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The deployer's client for the agents: plain HTTP without `ca`; with it,
/// HTTPS only, trusting the certificates of the PEM file `ca` and nothing
/// else (no built-in roots).
pub fn agent_client(ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let builder = reqwest::Client::builder().timeout(CALL_TIMEOUT);
    let Some(ca) = ca else {
        return Ok(builder.build()?);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in proto::https::read_pem_certs(ca)? {
        roots.add(cert).map_err(|source| ClientError::CaBad {
            path: ca.display().to_string(),
            source,
        })?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(builder
        .tls_backend_preconfigured(config)
        .https_only(true)
        .build()?)
}

/// A failed call in words: reqwest's, with the certificate problem or the
/// deepest cause (which its own text leaves out).
pub fn why(e: &reqwest::Error) -> String {
    if let Some(p) = proto::https::cert_problem(e) {
        return format!("{e}: {p}");
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = None;
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        cause = Some(c);
        cur = c.source();
    }
    match cause {
        Some(c) => format!("{e}: {c}"),
        None => e.to_string(),
    }
}

pub struct AgentHosts {
    m: Manifest,
    secrets: Secrets,
    token: String,
    http: reqwest::Client,
    /// `https` with the agents' CA, else `http`.
    scheme: &'static str,
}

impl AgentHosts {
    /// The manifest's agents; over HTTPS trusting `ca` alone when given.
    pub fn new(
        m: &Manifest,
        secrets: &Secrets,
        token: &str,
        ca: Option<&Path>,
    ) -> Result<AgentHosts, ClientError> {
        Ok(AgentHosts {
            m: m.clone(),
            secrets: secrets.clone(),
            token: token.to_string(),
            http: agent_client(ca)?,
            scheme: if ca.is_some() { "https" } else { "http" },
        })
    }

    fn url(&self, host: &str, path: &str) -> Result<String, String> {
        let h = self
            .m
            .host(host)
            .ok_or_else(|| format!("{host} is not in the manifest"))?;
        Ok(format!(
            "{}://{}{path}",
            self.scheme,
            socket(h.address, h.agent_port)
        ))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        host: &str,
        path: &str,
    ) -> Result<T, String> {
        let r = self
            .http
            .get(self.url(host, path)?)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("agent of {host}: {}", why(&e)))?;
        if !r.status().is_success() {
            return Err(format!("agent of {host} answered {}", r.status()));
        }
        r.json()
            .await
            .map_err(|e| format!("agent of {host}: {}", why(&e)))
    }

    async fn put_desired(&self, host: &str, d: &Desired) -> Result<(), String> {
        let r = self
            .http
            .put(self.url(host, "/v1/desired")?)
            .bearer_auth(&self.token)
            .json(d)
            .send()
            .await
            .map_err(|e| format!("agent of {host}: {}", why(&e)))?;
        if !r.status().is_success() {
            let code = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(format!(
                "agent of {host} refused the desired state ({code}): {}",
                body.chars().take(500).collect::<String>()
            ));
        }
        Ok(())
    }

    /// One host's status.
    pub async fn status(&self, host: &str) -> Result<AgentStatus, String> {
        self.get(host, "/v1/status").await
    }
}

fn describe(c: Option<&ComponentStatus>) -> String {
    match c {
        None => "not running".into(),
        Some(c) => format!(
            "{:?} (restarts {}{})",
            c.state,
            c.restarts,
            c.last_error
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default()
        )
        .to_lowercase(),
    }
}

impl Hosts for AgentHosts {
    async fn actual(&mut self) -> Result<Actual, String> {
        let mut a = Actual::default();
        for h in self.m.hosts.clone() {
            // A host whose agent does not answer runs nothing we know of.
            let Ok(s) = self.status(&h.name).await else {
                continue;
            };
            for c in s.components {
                a.set(&h.name, c.role, &c.version, c.state == State::Running);
            }
        }
        Ok(a)
    }

    async fn apply(&self, host: &str, changes: &[Change], watch: Duration) -> (Outcome, String) {
        let Some(h) = self.m.host(host).cloned() else {
            return (
                Outcome::Failed(format!("{host} is not in the manifest")),
                String::new(),
            );
        };
        let mut desired: Desired = match self.get(host, "/v1/desired").await {
            Ok(d) => d,
            Err(e) => return (Outcome::Failed(e), String::new()),
        };
        for c in changes {
            let spec = render(&self.m, &self.secrets, &h, c.role, &c.to);
            desired.components.retain(|x| x.role != c.role);
            desired.components.push(spec);
        }
        if let Err(e) = self.put_desired(host, &desired).await {
            return (Outcome::Failed(e), String::new());
        }
        let deadline = tokio::time::Instant::now() + watch;
        loop {
            let status = self.status(host).await;
            if let Ok(s) = &status {
                let healthy = changes.iter().all(|c| {
                    s.components
                        .iter()
                        .any(|x| x.role == c.role && x.version == c.to && x.state == State::Running)
                });
                if healthy {
                    return (
                        Outcome::Healthy,
                        s.events.last().cloned().unwrap_or_default(),
                    );
                }
                // One that keeps crashing fails now, not at the end of the
                // watch time: the rollback starts sooner.
                let crashing = changes.iter().find_map(|c| {
                    s.components.iter().find(|x| {
                        x.role == c.role
                            && x.version == c.to
                            && matches!(x.state, State::Crashed | State::Failed)
                            && x.restarts >= CRASHES_TO_FAIL
                    })
                });
                if let Some(x) = crashing {
                    return (
                        Outcome::Failed(format!(
                            "{} {} not healthy: crashed on start {} times ({})",
                            x.role,
                            x.version,
                            x.restarts + 1,
                            x.last_error.as_deref().unwrap_or("no error given")
                        )),
                        s.events.join(" | "),
                    );
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let why = match &status {
                    Ok(s) => changes
                        .iter()
                        .map(|c| {
                            let now = s
                                .components
                                .iter()
                                .find(|x| x.role == c.role && x.version == c.to);
                            format!(
                                "{} {} not healthy within {}s: {}",
                                c.role,
                                c.to,
                                watch.as_secs(),
                                describe(now)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    Err(e) => e.clone(),
                };
                let output = status.map(|s| s.events.join(" | ")).unwrap_or_default();
                return (Outcome::Failed(why), output);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn retire(&mut self, host: &str, role: Role) -> Result<(), String> {
        let mut desired: Desired = self.get(host, "/v1/desired").await?;
        desired.components.retain(|c| c.role != role);
        self.put_desired(host, &desired).await
    }
}
