//! Which URLs a DEA fetches from and uploads to (docs/architecture.md §7.3):
//! only blob URLs of the controller's internal API, signed and not expired.
//! A start or staging request naming anything else (an attacker's server,
//! a cloud metadata address, another internal endpoint) is refused before
//! any connection is made. The signature itself is checked by the
//! controller when the URL is used; the DEA checks the shape, the origin
//! and the expiry.

use proto::{StagingRequest, StartRequest};

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing {what} URL: {reason}")]
pub struct Refused {
    pub what: &'static str,
    pub reason: String,
}

/// The controllers' internal API origins (`scheme://host:port`) this DEA
/// trusts (`controller_urls` in its config). None configured: no check at
/// all (tests with their own blob servers); the DEA warns at start.
/// `cf dev start` and the test harness always configure it.
#[derive(Debug, Clone, Default)]
pub struct BlobUrls {
    origins: Vec<String>,
}

impl BlobUrls {
    pub fn new(controller_urls: &[String]) -> BlobUrls {
        BlobUrls {
            origins: controller_urls
                .iter()
                .filter_map(|u| reqwest::Url::parse(u).ok())
                .map(|u| u.origin().ascii_serialization())
                .collect(),
        }
    }

    /// Whether requests are checked (some origin configured).
    pub fn enforced(&self) -> bool {
        !self.origins.is_empty()
    }

    /// Checks one URL at `now` (unix seconds).
    pub fn check(&self, what: &'static str, url: &str, now: i64) -> Result<(), Refused> {
        let refuse = |reason: &str| Refused {
            what,
            reason: reason.to_string(),
        };
        let u = reqwest::Url::parse(url).map_err(|_| refuse("not a URL"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(refuse("not http(s)"));
        }
        if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
            return Err(refuse("credentials or a fragment in the URL"));
        }
        if !self.origins.contains(&u.origin().ascii_serialization()) {
            return Err(refuse("not the controller's internal API"));
        }
        if !u.path().starts_with("/internal/v1/") {
            return Err(refuse("not a blob path"));
        }
        let (mut expires, mut signature) = (None, None);
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "expires" if expires.is_none() => expires = Some(v.into_owned()),
                "signature" if signature.is_none() => signature = Some(v.into_owned()),
                _ => return Err(refuse("unexpected query parameter")),
            }
        }
        let expires: i64 = expires
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| refuse("no expiry"))?;
        if expires < now {
            return Err(refuse("expired"));
        }
        let sig = signature.ok_or_else(|| refuse("not signed"))?;
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse("not signed"));
        }
        Ok(())
    }

    /// Every URL of a start request (none when not [`enforced`](Self::enforced)).
    pub fn check_start(&self, req: &StartRequest, now: i64) -> Result<(), Refused> {
        if !self.enforced() {
            return Ok(());
        }
        self.check("droplet", &req.droplet_uri, now)
    }

    /// Every URL of a staging request (none when not enforced).
    pub fn check_staging(&self, req: &StagingRequest, now: i64) -> Result<(), Refused> {
        if !self.enforced() {
            return Ok(());
        }
        self.check("package", &req.package_uri, now)?;
        self.check("droplet upload", &req.droplet_upload_uri, now)?;
        for u in [&req.cache_download_uri, &req.cache_upload_uri]
            .into_iter()
            .flatten()
            .filter(|u| !u.is_empty())
        {
            self.check("build cache", u, now)?;
        }
        for b in &req.admin_buildpacks {
            self.check("buildpack", &b.uri, now)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_signed_controller_blob_urls() {
        let p = BlobUrls::new(&["http://127.0.0.1:9023".into()]);
        let ok = format!(
            "http://127.0.0.1:9023/internal/v1/droplets/d/download?expires=100&signature={SIG}"
        );
        assert_eq!(p.check("droplet", &ok, 50), Ok(()));
        let table: &[(String, &str)] = &[
            (format!("http://127.0.0.1:6666/internal/v1/droplets/d/download?expires=100&signature={SIG}"), "not the controller's internal API"),
            (format!("http://evil.example/internal/v1/x?expires=100&signature={SIG}"), "not the controller's internal API"),
            (format!("http://169.254.169.254/internal/v1/x?expires=100&signature={SIG}"), "not the controller's internal API"),
            (format!("file:///etc/passwd?expires=100&signature={SIG}"), "not http(s)"),
            (format!("http://127.0.0.1:9023/v3/apps?expires=100&signature={SIG}"), "not a blob path"),
            (format!("http://127.0.0.1:9023/internal/v1/../../v3/apps?expires=100&signature={SIG}"), "not a blob path"),
            ("http://127.0.0.1:9023/internal/v1/droplets/d/download".into(), "no expiry"),
            ("http://127.0.0.1:9023/internal/v1/droplets/d/download?expires=100".into(), "not signed"),
            ("http://127.0.0.1:9023/internal/v1/droplets/d/download?expires=100&signature=zz".into(), "not signed"),
            (format!("http://127.0.0.1:9023/internal/v1/d?expires=10&signature={SIG}"), "expired"),
            (format!("http://u:p@127.0.0.1:9023/internal/v1/d?expires=100&signature={SIG}"), "credentials or a fragment in the URL"),
            (format!("http://127.0.0.1:9023/internal/v1/d?expires=100&signature={SIG}&x=1"), "unexpected query parameter"),
            ("not a url".into(), "not a URL"),
        ];
        for (url, why) in table {
            let e = p.check("droplet", url, 50).expect_err(url);
            assert_eq!(e.reason, *why, "{url}");
        }
        assert!(p.enforced());
        assert!(!BlobUrls::new(&[]).enforced());
    }
}
