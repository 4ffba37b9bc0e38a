//! Passwords (argon2) and HS256 JWTs signed with the controller's own keys
//! (the key ring and its `kid` header: `crate::keys`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Refresh tokens live 30 days.
pub const REFRESH_TTL_S: u64 = 30 * 24 * 3600;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt =
        SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub jti: String,
    pub sub: String,
    pub user_id: String,
    pub user_name: String,
    pub client_id: String,
    pub cid: String,
    pub scope: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub kind: TokenKind,
    /// The user's token generation when issued (UAA's `rev_sig`): a
    /// password change bumps it, so older tokens stop working.
    #[serde(default)]
    pub rev: i64,
}

impl Claims {
    /// A token of the cf client for a user with `scope`.
    pub fn new(
        user_guid: &str,
        user_name: &str,
        scope: Vec<String>,
        kind: TokenKind,
        ttl_s: u64,
        now: i64,
    ) -> Claims {
        Claims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sub: user_guid.to_string(),
            user_id: user_guid.to_string(),
            user_name: user_name.to_string(),
            client_id: "cf".into(),
            cid: "cf".into(),
            scope,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl_s).unwrap_or(i64::MAX)),
            iss: "cloud-controller".into(),
            kind,
            rev: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("wrong token kind")]
    Kind,
    /// The `kid` names no key of the ring (never one, or retired and gone).
    #[error("unknown signing key")]
    UnknownKey,
}

fn mac(key: &[u8], data: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).ok()?;
    m.update(data);
    Some(m)
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    mac(key, data)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// Constant-time check of an HMAC-SHA256 tag.
pub fn hmac_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    mac(key, data).is_some_and(|m| m.verify_slice(tag).is_ok())
}

/// Signs `claims` with `key`; `kid` (the key's id) goes in the header.
pub fn sign(claims: &Claims, kid: Option<&str>, key: &[u8]) -> String {
    let header = match kid {
        Some(kid) => serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
        None => serde_json::json!({"alg": "HS256", "typ": "JWT"}),
    };
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

/// The `kid` of a token's header (`None` without one, as tokens from
/// before key ids); malformed when the header is not a JWT header.
pub fn token_kid(token: &str) -> Result<Option<String>, TokenError> {
    let h = token.split('.').next().ok_or(TokenError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenError::Malformed)?,
    )
    .map_err(|_| TokenError::Malformed)?;
    match header.get("kid") {
        None => Ok(None),
        Some(serde_json::Value::String(k)) => Ok(Some(k.clone())),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// Verifies signature, algorithm, expiry (against `now`, unix seconds) and kind.
pub fn verify(token: &str, key: &[u8], kind: TokenKind, now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenError::Malformed)?,
    )
    .map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    if !hmac_verify(key, format!("{h}.{p}").as_bytes(), &sig) {
        return Err(TokenError::Signature);
    }
    let claims: Claims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenError::Malformed)?,
    )
    .map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.kind != kind {
        return Err(TokenError::Kind);
    }
    Ok(claims)
}

/// Extracts the token from an `Authorization: bearer <jwt>` header value
/// (scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn sign_and_verify() {
        let c = Claims::new(
            "u1",
            "admin",
            vec!["openid".into()],
            TokenKind::Access,
            60,
            1000,
        );
        let t = sign(&c, None, KEY);
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(token_kid(&t), Ok(None));
        assert_eq!(verify(&t, KEY, TokenKind::Access, 1001), Ok(c.clone()));
        let t = sign(&c, Some("k1"), KEY);
        assert_eq!(token_kid(&t), Ok(Some("k1".into())));
        assert_eq!(verify(&t, KEY, TokenKind::Access, 1001), Ok(c));
        assert_eq!(token_kid("%%%.a.b"), Err(TokenError::Malformed));
    }

    #[test]
    fn rejects_bad_tokens() {
        let c = Claims::new(
            "u1",
            "admin",
            vec!["openid".into()],
            TokenKind::Access,
            60,
            1000,
        );
        let t = sign(&c, None, KEY);
        assert_eq!(
            verify(&t, KEY, TokenKind::Access, 1060),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&t, b"other", TokenKind::Access, 1001),
            Err(TokenError::Signature)
        );
        assert_eq!(
            verify(&t, KEY, TokenKind::Refresh, 1001),
            Err(TokenError::Kind)
        );
        assert_eq!(
            verify("abc", KEY, TokenKind::Access, 1001),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify("a.b.c", KEY, TokenKind::Access, 1001),
            Err(TokenError::Malformed)
        );
        // Tampered payload.
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let forged = Claims {
            user_name: "root".into(),
            ..c
        };
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(
            verify(&parts.join("."), KEY, TokenKind::Access, 1001),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("bearer"), None);
    }

    #[test]
    fn passwords() {
        let h = hash_password("s3cret").expect("hash");
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "not-a-hash"));
    }
}
