//! The route authority: the controller's assignments of routes to apps
//! (`GET /internal/v1/route_assignments`), fetched over HTTP/1.1 with the
//! internal token. With an authority configured, the registry admits a
//! `router.register` only for routes assigned to its app (docs/router.md).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use proto::assignments::RouteAssignments;

/// Where the assignments come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// `host:port` of the controller (plain HTTP on the internal network).
    pub addr: String,
    pub token: String,
}

/// The largest assignments document accepted.
const MAX_BYTES: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

impl Authority {
    /// From the config's `route_authority_url` (`http://host:port`).
    pub fn new(url: &str, token: &str) -> Result<Authority, String> {
        let addr = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("route_authority_url must be http://host:port, not {url}"))?
            .trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') {
            return Err(format!(
                "route_authority_url must be http://host:port, not {url}"
            ));
        }
        Ok(Authority {
            addr: addr.to_string(),
            token: token.to_string(),
        })
    }

    pub async fn fetch(&self) -> Result<RouteAssignments, String> {
        tokio::time::timeout(TIMEOUT, self.fetch_inner())
            .await
            .map_err(|_| format!("no answer from {} within {TIMEOUT:?}", self.addr))?
    }

    async fn fetch_inner(&self) -> Result<RouteAssignments, String> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let driver = tokio::spawn(conn);
        let req = http::Request::get("/internal/v1/route_assignments")
            .header(http::header::HOST, &self.addr)
            .header(
                http::header::AUTHORIZATION,
                format!("bearer {}", self.token),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(format!("route assignments: HTTP {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("route assignments: {e}"))
    }
}

/// Splits a registration into the part `a` admits and the part it does
/// not (each `None` when it holds no route).
pub fn admit(
    a: &RouteAssignments,
    reg: &proto::RouteRegistration,
) -> (
    Option<proto::RouteRegistration>,
    Option<proto::RouteRegistration>,
) {
    let (ok, refused): (Vec<String>, Vec<String>) = reg
        .uris
        .iter()
        .cloned()
        .partition(|u| a.allows(u, reg.app_id.as_deref()));
    let part = |uris: Vec<String>| {
        (!uris.is_empty()).then(|| proto::RouteRegistration {
            uris,
            ..reg.clone()
        })
    };
    (part(ok), part(refused))
}

/// Registrations waiting for fresher assignments, at most this many.
const MAX_PENDING: usize = 4096;
/// Fresh assignments are fetched at most this often on demand.
pub const MIN_REFRESH: Duration = Duration::from_millis(250);

/// The registry's gate: the latest assignments and the registrations that
/// wait for newer ones (a route just mapped may be registered before the
/// router has heard of it). No I/O: the registry fetches and feeds back.
#[derive(Debug, Default)]
pub struct Gate {
    assignments: Option<RouteAssignments>,
    /// Registrations waiting, with when they came.
    pending: std::collections::VecDeque<(Instant, proto::RouteRegistration)>,
    /// Refused after fresh assignments (for the log and metrics).
    pub refused: u64,
}

impl Gate {
    /// The part of `reg` to register now; the rest waits for the next
    /// assignments. `true` when the caller should fetch them.
    pub fn check(
        &mut self,
        reg: &proto::RouteRegistration,
        now: Instant,
    ) -> (Option<proto::RouteRegistration>, bool) {
        let (ok, wait) = match &self.assignments {
            Some(a) => admit(a, reg),
            None => (None, Some(reg.clone())),
        };
        let fetch = wait.is_some();
        if let Some(w) = wait {
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
                self.refused += 1;
            }
            self.pending.push_back((now, w));
        }
        (ok, fetch)
    }

    /// Whether an unregistration is of routes assigned to its app.
    pub fn may_unregister(
        &self,
        reg: &proto::RouteRegistration,
    ) -> Option<proto::RouteRegistration> {
        self.assignments.as_ref().and_then(|a| admit(a, reg).0)
    }

    /// New assignments, read by a fetch that started at `asked`: the
    /// waiting registrations they admit. What they refuse is dropped and
    /// counted, unless it came after the fetch started (the assignments
    /// may predate its route): that waits for the next fetch, which the
    /// returned `true` asks for.
    pub fn refreshed(
        &mut self,
        a: RouteAssignments,
        asked: Instant,
    ) -> (Vec<proto::RouteRegistration>, bool) {
        let mut out = Vec::new();
        let mut keep = std::collections::VecDeque::new();
        for (at, reg) in self.pending.drain(..) {
            let (ok, refused) = admit(&a, &reg);
            out.extend(ok);
            if let Some(r) = refused {
                if at >= asked {
                    keep.push_back((at, r));
                } else {
                    self.refused += 1;
                    tracing::debug!(uris = ?r.uris, app_id = ?r.app_id, host = %r.host, port = r.port, "registration refused: route not assigned to the app");
                }
            }
        }
        self.pending = keep;
        self.assignments = Some(a);
        (out, !self.pending.is_empty())
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn splits_a_registration() {
        let a = RouteAssignments {
            routes: BTreeMap::from([("x.localhost".to_string(), vec!["app".to_string()])]),
            reserved: vec![],
        };
        let reg = proto::RouteRegistration {
            host: "127.0.0.1".into(),
            port: 1,
            uris: vec!["x.localhost".into(), "api.sys.localhost".into()],
            app_id: Some("app".into()),
            instance_id: None,
            tags: Default::default(),
            stale_threshold_s: None,
        };
        let (ok, refused) = admit(&a, &reg);
        assert_eq!(ok.map(|r| r.uris), Some(vec!["x.localhost".to_string()]));
        assert_eq!(
            refused.map(|r| r.uris),
            Some(vec!["api.sys.localhost".to_string()])
        );
        assert!(Authority::new("https://x", "t").is_err());
        // The gate holds what it cannot admit yet, until assignments come.
        let mut g = Gate::default();
        let t0 = Instant::now();
        let (now, fetch) = g.check(&reg, t0);
        assert!(now.is_none() && fetch);
        let asked = t0 + Duration::from_millis(1);
        let (later, again) = g.refreshed(a.clone(), asked);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].uris, vec!["x.localhost".to_string()]);
        assert_eq!((g.pending(), g.refused, again), (0, 1, false));
        // A registration that came while the fetch was under way may be of
        // a route newer than the answer: it waits for one more fetch.
        let (now, fetch) = g.check(&reg, asked + Duration::from_millis(1));
        assert_eq!(now.map(|r| r.uris), Some(vec!["x.localhost".to_string()]));
        assert!(fetch, "the refused part waits for newer assignments");
        let (later, again) = g.refreshed(a.clone(), asked);
        assert!(later.is_empty());
        assert_eq!((g.pending(), g.refused, again), (1, 1, true));
        let (_, again) = g.refreshed(a, asked + Duration::from_secs(1));
        assert_eq!((g.pending(), g.refused, again), (0, 2, false));
        assert_eq!(
            Authority::new("http://127.0.0.1:9/", "t").map(|a| a.addr),
            Ok("127.0.0.1:9".to_string())
        );
    }
}
