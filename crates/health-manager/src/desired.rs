//! Desired state: the controller's `/internal/v1/desired`, paged.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::desired::{DesiredApp, DesiredPage};

use crate::HmError;

/// The last good copy of the desired state.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub apps: BTreeMap<String, DesiredApp>,
    /// Unix seconds when the fetch started; `None` = never fetched.
    pub fetched_at: Option<f64>,
}

impl Desired {
    pub fn new(apps: Vec<DesiredApp>, fetched_at: f64) -> Desired {
        Desired {
            apps: apps.into_iter().map(|a| (a.app_id.clone(), a)).collect(),
            fetched_at: Some(fetched_at),
        }
    }
}

/// Unix seconds of an RFC 3339 time; unparsable = long ago.
pub fn unix_time(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_millis()) / 1000.0)
        .unwrap_or(0.0)
}

const MAX_PAGES: usize = 10_000;

/// An error with its whole source chain (reqwest hides the cause otherwise).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Fetches desired state from the controller.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Fetcher {
    pub fn new(cc_url: &str, token: &str) -> Result<Fetcher, HmError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| HmError::Desired(chain(&e)))?;
        Ok(Fetcher {
            http,
            url: format!("{}/internal/v1/desired", cc_url.trim_end_matches('/')),
            token: token.to_string(),
        })
    }

    /// Every page, following `next_token`.
    pub async fn fetch(&self, now: f64) -> Result<Desired, HmError> {
        let mut apps = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut req = self.http.get(&self.url).bearer_auth(&self.token);
            if let Some(t) = &token {
                req = req.query(&[("token", t)]);
            }
            let resp = req.send().await.map_err(|e| HmError::Desired(chain(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(HmError::Desired(format!("{} answered {status}", self.url)));
            }
            let page: DesiredPage = resp.json().await.map_err(|e| HmError::Desired(chain(&e)))?;
            apps.extend(page.apps);
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(Desired::new(apps, now)),
            }
        }
        Err(HmError::Desired(format!("{}: too many pages", self.url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(unix_time("1970-01-01T00:01:40Z"), 100.0);
        assert_eq!(unix_time("1970-01-01T00:01:40.500+00:00"), 100.5);
        assert_eq!(unix_time("garbage"), 0.0);
    }
}
