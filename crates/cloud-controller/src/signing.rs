//! Signed, expiring blob URLs for DEAs: HMAC-SHA256 over
//! `METHOD\npath\nexpires`, as `?expires=<unix>&signature=<hex>`.

use crate::auth::{hmac_sha256, hmac_verify};

fn message(method: &str, path: &str, expires: i64) -> String {
    format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, expires)
}

/// Returns `base + path + ?expires=..&signature=..`.
pub fn sign_url(key: &[u8], base: &str, method: &str, path: &str, expires: i64) -> String {
    let sig = hex::encode(hmac_sha256(key, message(method, path, expires).as_bytes()));
    format!("{base}{path}?expires={expires}&signature={sig}")
}

/// Checks a signature for `method path` with the query's `expires` and
/// `signature` at time `now` (unix seconds).
pub fn verify(
    key: &[u8],
    method: &str,
    path: &str,
    expires: Option<&str>,
    signature: Option<&str>,
    now: i64,
) -> bool {
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    if expires < now {
        return false;
    }
    let Ok(tag) = hex::decode(signature) else {
        return false;
    };
    hmac_verify(key, message(method, path, expires).as_bytes(), &tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String) {
        let q = url.split_once('?').expect("query").1;
        let mut e = String::new();
        let mut s = String::new();
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("expires", v)) => e = v.into(),
                Some(("signature", v)) => s = v.into(),
                _ => {}
            }
        }
        (e, s)
    }

    #[test]
    fn valid_signature_accepted() {
        let url = sign_url(
            b"k",
            "http://127.0.0.1:1",
            "GET",
            "/internal/v1/packages/p/download",
            100,
        );
        assert!(url.starts_with(
            "http://127.0.0.1:1/internal/v1/packages/p/download?expires=100&signature="
        ));
        let (e, s) = parts(&url);
        assert!(verify(
            b"k",
            "GET",
            "/internal/v1/packages/p/download",
            Some(&e),
            Some(&s),
            50
        ));
        assert!(verify(
            b"k",
            "get",
            "/internal/v1/packages/p/download",
            Some(&e),
            Some(&s),
            100
        ));
    }

    #[test]
    fn bad_signatures_rejected() {
        let url = sign_url(b"k", "", "GET", "/a", 100);
        let (e, s) = parts(&url);
        assert!(
            !verify(b"k", "GET", "/a", Some(&e), Some(&s), 101),
            "expired"
        );
        assert!(
            !verify(b"k", "PUT", "/a", Some(&e), Some(&s), 50),
            "other method"
        );
        assert!(
            !verify(b"k", "GET", "/b", Some(&e), Some(&s), 50),
            "other path"
        );
        assert!(
            !verify(b"x", "GET", "/a", Some(&e), Some(&s), 50),
            "other key"
        );
        assert!(
            !verify(b"k", "GET", "/a", Some("200"), Some(&s), 50),
            "extended expiry"
        );
        assert!(!verify(b"k", "GET", "/a", None, Some(&s), 50));
        assert!(!verify(b"k", "GET", "/a", Some(&e), Some("zz"), 50));
    }
}
