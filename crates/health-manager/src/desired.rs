//! Desired state: the controller's `/internal/v1/desired`, paged.
//!
//! Times are the HM's own clock ([`crate::clock::Clock`]). The controller's
//! `updated_at` is only compared with itself: an app whose `updated_at`
//! differs from the previous copy's (or that is new) changed when the HM
//! received that copy.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::desired::{DesiredApp, DesiredPage};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::HmError;

/// One fetch of every page, stamped with the HM's monotonic clock.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub apps: Vec<DesiredApp>,
    /// When the fetch started (instances first seen before are known to it).
    pub started: Instant,
    /// When the last page arrived (every change it shows happened before).
    pub done: Instant,
}

/// The last good copy of the desired state.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub apps: BTreeMap<String, DesiredApp>,
    /// HM clock: when the fetch started; `None` = never fetched.
    pub fetched_at: Option<f64>,
    /// HM clock: when the HM received the copy that first showed an app's
    /// current `updated_at`. Apps absent here have not changed while the HM
    /// watched.
    pub changed_at: BTreeMap<String, f64>,
}

impl Desired {
    /// A copy fetched at `fetched_at` (HM clock) with no app known to have
    /// changed recently.
    pub fn new(apps: Vec<DesiredApp>, fetched_at: f64) -> Desired {
        Desired {
            apps: apps.into_iter().map(|a| (a.app_id.clone(), a)).collect(),
            fetched_at: Some(fetched_at),
            changed_at: BTreeMap::new(),
        }
    }

    /// The next copy: `fetched` replaces this one; an app whose `updated_at`
    /// is new (or every app, on the first copy: the HM does not know when
    /// they changed) is marked changed when `fetched` arrived.
    pub fn update(&self, fetched: Fetched, clock: &Clock) -> Desired {
        let done = clock.at(fetched.done);
        let mut next = Desired::new(fetched.apps, clock.at(fetched.started));
        for (id, app) in &next.apps {
            let changed = match self.apps.get(id) {
                Some(prev) if prev.updated_at == app.updated_at => self.changed_at.get(id).copied(),
                _ => Some(done),
            };
            if let Some(t) = changed {
                next.changed_at.insert(id.clone(), t);
            }
        }
        next
    }

    /// Whose log the HM writes about the process `app_id`: its app's (for a
    /// process other than web), else `app_id` itself.
    pub fn log_guid<'a>(&'a self, app_id: &'a str) -> &'a str {
        self.apps
            .get(app_id)
            .and_then(|a| a.log_guid.as_deref())
            .unwrap_or(app_id)
    }

    /// HM clock: when the app last changed while the HM watched, if it did.
    pub fn changed_at(&self, app_id: &str) -> Option<f64> {
        self.changed_at.get(app_id).copied()
    }
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
    /// `tls_ca_file`: a CA trusted besides the webpki roots (HTTPS `cc_url`).
    pub fn new(
        cc_url: &str,
        token: &str,
        tls_ca_file: Option<&std::path::Path>,
    ) -> Result<Fetcher, HmError> {
        let http = proto::https::client_builder(&proto::https::verify_with_ca(tls_ca_file))
            .map_err(|e| HmError::Desired(e.to_string()))?
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| HmError::Desired(chain(&e)))?;
        Ok(Fetcher {
            http,
            url: format!("{}/internal/v1/desired", cc_url.trim_end_matches('/')),
            token: token.to_string(),
        })
    }

    /// Every page, following `next_token`, stamped with when the fetch
    /// started and ended.
    pub async fn fetch(&self) -> Result<Fetched, HmError> {
        let started = Instant::now();
        let apps = self.fetch_apps().await?;
        Ok(Fetched {
            apps,
            started,
            done: Instant::now(),
        })
    }

    async fn fetch_apps(&self) -> Result<Vec<DesiredApp>, HmError> {
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
                _ => return Ok(apps),
            }
        }
        Err(HmError::Desired(format!("{}: too many pages", self.url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, updated_at: &str) -> DesiredApp {
        DesiredApp {
            app_id: id.into(),
            name: id.into(),
            version: "v1".into(),
            instances: 1,
            state: "STARTED".into(),
            updated_at: updated_at.into(),
            log_guid: None,
        }
    }

    #[test]
    fn hm_lines_about_a_worker_go_to_its_app() {
        let mut worker = app("proc-guid", "t");
        worker.log_guid = Some("app-guid".into());
        let d = Desired::new(vec![app("app-guid", "t"), worker], 0.0);
        assert_eq!(d.log_guid("proc-guid"), "app-guid");
        assert_eq!(d.log_guid("app-guid"), "app-guid");
        assert_eq!(d.log_guid("gone"), "gone");
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_stamped_when_the_hm_sees_them_whatever_updated_at_says() {
        let clock = Clock::start();
        let fetch = |apps: Vec<DesiredApp>| {
            let done = Instant::now();
            Fetched {
                apps,
                started: done - Duration::from_millis(500),
                done,
            }
        };
        tokio::time::advance(Duration::from_secs(10)).await;
        // First copy: every app counts as just changed, whatever its
        // updated_at (the controller's clock may be far off the HM's).
        let d1 = Desired::default().update(
            fetch(vec![
                app("a", "2001-01-01T00:00:00Z"),
                app("b", "2999-01-01T00:00:00Z"),
            ]),
            &clock,
        );
        assert_eq!(d1.fetched_at, Some(9.5));
        assert_eq!(d1.changed_at("a"), Some(10.0));
        assert_eq!(d1.changed_at("b"), Some(10.0));
        tokio::time::advance(Duration::from_secs(2)).await;
        // b changed (its updated_at moved, here backwards), c is new, a did not change.
        let d2 = d1.update(
            fetch(vec![
                app("a", "2001-01-01T00:00:00Z"),
                app("b", "1999-01-01T00:00:00Z"),
                app("c", "2001-01-01T00:00:00Z"),
            ]),
            &clock,
        );
        assert_eq!(d2.fetched_at, Some(11.5));
        assert_eq!(d2.changed_at("a"), Some(10.0));
        assert_eq!(d2.changed_at("b"), Some(12.0));
        assert_eq!(d2.changed_at("c"), Some(12.0));
        // Apps of `new` copies have no known change.
        assert_eq!(Desired::new(vec![app("a", "x")], 1.0).changed_at("a"), None);
    }
}
