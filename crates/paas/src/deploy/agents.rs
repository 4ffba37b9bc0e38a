//! The real hosts: their agents over HTTP with the deployment's token.

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

pub struct AgentHosts {
    m: Manifest,
    secrets: Secrets,
    token: String,
    http: reqwest::Client,
}

impl AgentHosts {
    pub fn new(m: &Manifest, secrets: &Secrets, token: &str) -> Result<AgentHosts, String> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AgentHosts {
            m: m.clone(),
            secrets: secrets.clone(),
            token: token.to_string(),
            http,
        })
    }

    fn url(&self, host: &str, path: &str) -> Result<String, String> {
        let h = self
            .m
            .host(host)
            .ok_or_else(|| format!("{host} is not in the manifest"))?;
        Ok(format!("http://{}{path}", socket(h.address, h.agent_port)))
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
            .map_err(|e| format!("agent of {host}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("agent of {host} answered {}", r.status()));
        }
        r.json().await.map_err(|e| format!("agent of {host}: {e}"))
    }

    async fn put_desired(&self, host: &str, d: &Desired) -> Result<(), String> {
        let r = self
            .http
            .put(self.url(host, "/v1/desired")?)
            .bearer_auth(&self.token)
            .json(d)
            .send()
            .await
            .map_err(|e| format!("agent of {host}: {e}"))?;
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
