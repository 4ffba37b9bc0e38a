//! The token signing key ring (docs/architecture.md §17 "Signing keys"), as
//! UAA has it: tokens name the key that signed them in their `kid` header;
//! the controller signs with the active key and verifies with the key the
//! `kid` names. A rotation makes a new active key; the earlier ones keep
//! verifying until every token they signed has expired, then go. A token
//! without `kid` (issued before key ids) is checked with the key `legacy`.
//!
//! The ring lives in the database (`signing_keys`), so every controller on
//! it shares one. Each keeps a copy: reloaded before signing, when a token
//! names a key it does not know (one reload serves every request waiting
//! for one, at most five a second) and when older than [`REFRESH`]. Secrets are never logged (`Debug` redacts them) nor served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::auth::{self, Claims, TokenError, TokenKind};
use crate::store::{SigningKeyRow, Store, StoreError, LEGACY_KID};

/// How old a controller's copy of the ring may get before it is reloaded.
pub const REFRESH: Duration = Duration::from_secs(10);
/// The shortest time between two reloads for tokens of unknown keys.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_millis(200);
/// Added to the longest token lifetime before a retired key goes: a token
/// signed by a controller that had not yet seen the rotation.
pub const GRACE_S: i64 = 60;

/// Key material: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A new random secret (256 bits, as 64 hex digits; its bytes are the key).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A new key id.
pub fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Secret,
    pub created_at: i64,
    /// When it stopped signing (`None`: it may still sign).
    pub retired_at: Option<i64>,
}

/// What an operator may see of a key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub active: bool,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// When it stops verifying (`None` while it signs).
    pub expires_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no active signing key on record")]
    NoActiveKey,
}

/// The keys, with the active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    active: usize,
    /// How long a retired key keeps verifying.
    keep_s: i64,
}

impl KeyRing {
    /// The ring of `rows`; the active key is the newest one not retired.
    pub fn new(rows: Vec<SigningKeyRow>, keep_s: i64) -> Result<KeyRing, KeyError> {
        let keys: Vec<SigningKey> = rows
            .into_iter()
            .map(|r| SigningKey {
                kid: r.kid,
                secret: Secret(r.secret.into_bytes()),
                created_at: r.created_at,
                retired_at: r.retired_at,
            })
            .collect();
        let active = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.retired_at.is_none())
            .max_by(|(_, a), (_, b)| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .map(|(i, _)| i)
            .ok_or(KeyError::NoActiveKey)?;
        Ok(KeyRing {
            keys,
            active,
            keep_s,
        })
    }

    pub fn active(&self) -> &SigningKey {
        &self.keys[self.active]
    }

    /// Signs with the active key, naming it in `kid`.
    pub fn sign(&self, claims: &Claims) -> String {
        let k = self.active();
        auth::sign(claims, Some(&k.kid), &k.secret)
    }

    /// Whether the ring holds a key `kid` (usable or not).
    pub fn has(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// The key `kid` when it may still verify at `now`: not retired, or
    /// retired less than the longest token lifetime ago.
    pub fn usable(&self, kid: &str, now: i64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .filter(|k| self.expires_at(k).is_none_or(|e| now < e))
    }

    fn expires_at(&self, k: &SigningKey) -> Option<i64> {
        k.retired_at.map(|r| r.saturating_add(self.keep_s))
    }

    /// Checks a token with the key its `kid` names (`legacy` without one):
    /// an unknown or expired key is [`TokenError::UnknownKey`].
    pub fn verify(&self, token: &str, kind: TokenKind, now: i64) -> Result<Claims, TokenError> {
        let kid = auth::token_kid(token)?;
        let key = self
            .usable(kid.as_deref().unwrap_or(LEGACY_KID), now)
            .ok_or(TokenError::UnknownKey)?;
        auth::verify(token, &key.secret, kind, now)
    }

    /// The keys as an operator may see them, oldest first.
    pub fn info(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                kid: k.kid.clone(),
                active: i == self.active,
                created_at: k.created_at,
                retired_at: k.retired_at,
                expires_at: self.expires_at(k),
            })
            .collect()
    }
}

/// How long a retired key keeps verifying: the longest token lifetime and
/// [`GRACE_S`].
pub fn keep_s(access_ttl_s: u64, refresh_ttl_s: u64) -> i64 {
    i64::try_from(access_ttl_s.max(refresh_ttl_s))
        .unwrap_or(i64::MAX)
        .saturating_add(GRACE_S)
}

/// A controller's copy of the ring.
#[derive(Debug)]
pub struct Keys {
    ring: RwLock<Arc<KeyRing>>,
    loaded: Mutex<Instant>,
    /// Bumped by every reload.
    generation: AtomicU64,
    /// Held while reloading for a token of an unknown key.
    unknown_kid: tokio::sync::Mutex<()>,
    keep_s: i64,
}

impl Keys {
    /// Seeds the ring on record if needed (the legacy key, or a first
    /// one), drops expired keys and loads it.
    pub async fn open(store: &Store, keep_s: i64, now: i64) -> Result<Keys, KeyError> {
        store
            .seed_signing_keys((&new_kid(), &random_secret()), now)
            .await?;
        store.prune_signing_keys(now, keep_s).await?;
        let ring = KeyRing::new(store.signing_keys().await?, keep_s)?;
        Ok(Keys {
            ring: RwLock::new(Arc::new(ring)),
            loaded: Mutex::new(Instant::now()),
            generation: AtomicU64::new(0),
            unknown_kid: tokio::sync::Mutex::new(()),
            keep_s,
        })
    }

    /// The current copy.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn keep_s(&self) -> i64 {
        self.keep_s
    }

    fn age(&self) -> Duration {
        self.loaded
            .lock()
            .map(|l| l.elapsed())
            .unwrap_or(Duration::MAX)
    }

    /// Reads the ring from the database, first deleting the keys whose
    /// tokens have all expired.
    pub async fn reload(&self, store: &Store) -> Result<Arc<KeyRing>, KeyError> {
        let now = chrono::Utc::now().timestamp();
        store.prune_signing_keys(now, self.keep_s).await?;
        self.load(store).await
    }

    /// Reads the ring from the database (no write: expired keys are
    /// refused by time until the next [`Keys::reload`] deletes them).
    async fn load(&self, store: &Store) -> Result<Arc<KeyRing>, KeyError> {
        let ring = Arc::new(KeyRing::new(store.signing_keys().await?, self.keep_s)?);
        match self.ring.write() {
            Ok(mut r) => *r = ring.clone(),
            Err(poisoned) => *poisoned.into_inner() = ring.clone(),
        }
        if let Ok(mut l) = self.loaded.lock() {
            *l = Instant::now();
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(ring)
    }

    /// Signs with the active key on record (reloaded first, so a rotation
    /// by another controller takes effect at once).
    pub async fn sign(&self, store: &Store, claims: &Claims) -> Result<String, KeyError> {
        Ok(self.load(store).await?.sign(claims))
    }

    /// Checks a token with the ring, reloaded when old or when the token
    /// names a key this copy does not hold (requests waiting for such a
    /// reload share one, and reloads are at least [`UNKNOWN_KID_RELOAD`]
    /// apart, so made-up key ids cannot flood the database). A failed
    /// reload keeps the copy (logged).
    pub async fn verify(
        &self,
        store: &Store,
        token: &str,
        kind: TokenKind,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let mut ring = self.ring();
        if self.age() >= REFRESH {
            ring = self.reload_or_keep(store).await;
        }
        let seen = self.generation.load(Ordering::SeqCst);
        match ring.verify(token, kind, now) {
            Err(TokenError::UnknownKey) => {
                let Some(kid) = auth::token_kid(token)? else {
                    return Err(TokenError::UnknownKey);
                };
                if ring.has(&kid) {
                    // Known but expired: no reload brings it back.
                    return Err(TokenError::UnknownKey);
                }
                let _one = self.unknown_kid.lock().await;
                if self.generation.load(Ordering::SeqCst) == seen {
                    let wait = UNKNOWN_KID_RELOAD.saturating_sub(self.age());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    self.reload_or_keep(store).await;
                }
                self.ring().verify(token, kind, now)
            }
            other => other,
        }
    }

    async fn reload_or_keep(&self, store: &Store) -> Arc<KeyRing> {
        match self.reload(store).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the signing keys; keeping the last ones");
                self.ring()
            }
        }
    }

    /// Rotation: a new active key; the earlier ones verify until their
    /// tokens expire, or (with `revoke_previous`, for a leaked key) go at
    /// once. Returns the new ring.
    pub async fn rotate(
        &self,
        store: &Store,
        revoke_previous: bool,
    ) -> Result<Arc<KeyRing>, KeyError> {
        let now = chrono::Utc::now().timestamp();
        store
            .rotate_signing_key(
                (&new_kid(), &random_secret()),
                now,
                self.keep_s,
                revoke_previous,
            )
            .await?;
        self.reload(store).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, secret: &str, created_at: i64, retired_at: Option<i64>) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.into(),
            secret: secret.into(),
            created_at,
            retired_at,
        }
    }

    fn claims(now: i64, ttl: u64) -> Claims {
        Claims::new("u1", "admin", vec![], TokenKind::Access, ttl, now)
    }

    #[test]
    fn signs_with_the_active_key_and_verifies_with_the_named_one() {
        // k1 retired at 100; keys kept 50 s after retirement.
        let old = KeyRing::new(vec![row("k1", "s1", 0, None)], 50).expect("ring");
        let t_old = old.sign(&claims(90, 40));
        let ring = KeyRing::new(
            vec![row("k1", "s1", 0, Some(100)), row("k2", "s2", 100, None)],
            50,
        )
        .expect("ring");
        assert_eq!(ring.active().kid, "k2");
        let t_new = ring.sign(&claims(101, 40));
        assert_eq!(auth::token_kid(&t_new), Ok(Some("k2".into())));
        assert_eq!(auth::token_kid(&t_old), Ok(Some("k1".into())));
        // The old token stays valid until it expires...
        assert!(ring.verify(&t_old, TokenKind::Access, 110).is_ok());
        assert_eq!(
            ring.verify(&t_old, TokenKind::Access, 130),
            Err(TokenError::Expired)
        );
        assert!(ring.verify(&t_new, TokenKind::Access, 130).is_ok());
        // ...and its key verifies nothing once kept long enough.
        let long = KeyRing::new(vec![row("k1", "s1", 0, None)], 50)
            .expect("ring")
            .sign(&claims(99, 1000));
        assert!(ring.verify(&long, TokenKind::Access, 149).is_ok());
        assert_eq!(
            ring.verify(&long, TokenKind::Access, 150),
            Err(TokenError::UnknownKey)
        );
        let info = ring.info();
        assert_eq!(info[0].expires_at, Some(150));
        assert!(!info[0].active && info[1].active);
        assert_eq!(info[1].expires_at, None);
    }

    #[test]
    fn unknown_kid_and_forged_kid_are_refused() {
        let ring = KeyRing::new(vec![row("k2", "s2", 100, None)], 50).expect("ring");
        let other = KeyRing::new(vec![row("k9", "s9", 0, None)], 50).expect("ring");
        assert_eq!(
            ring.verify(&other.sign(&claims(100, 40)), TokenKind::Access, 101),
            Err(TokenError::UnknownKey)
        );
        // A token naming k2 but signed with another secret.
        let forged = auth::sign(&claims(100, 40), Some("k2"), b"s9");
        assert_eq!(
            ring.verify(&forged, TokenKind::Access, 101),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn a_token_without_kid_is_checked_with_the_legacy_key() {
        let before = auth::sign(&claims(90, 40), None, b"old-secret");
        let ring = KeyRing::new(
            vec![
                row(LEGACY_KID, "old-secret", 0, Some(100)),
                row("k2", "s2", 100, None),
            ],
            50,
        )
        .expect("ring");
        assert!(ring.verify(&before, TokenKind::Access, 101).is_ok());
        // Without a legacy key, a token without kid is refused.
        let fresh = KeyRing::new(vec![row("k2", "s2", 100, None)], 50).expect("ring");
        assert_eq!(
            fresh.verify(&before, TokenKind::Access, 101),
            Err(TokenError::UnknownKey)
        );
        // A token without kid signed by another key is not let through by
        // the legacy key.
        let other = auth::sign(&claims(90, 40), None, b"s2");
        assert_eq!(
            ring.verify(&other, TokenKind::Access, 101),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn no_active_key_is_an_error_and_secrets_are_not_printed() {
        assert!(matches!(
            KeyRing::new(vec![row("k1", "s1", 0, Some(1))], 50),
            Err(KeyError::NoActiveKey)
        ));
        let ring = KeyRing::new(vec![row("k1", "topsecret", 0, None)], 50).expect("ring");
        let printed = format!("{ring:?} {:?}", row("k1", "topsecret", 0, None));
        assert!(!printed.contains("topsecret"), "{printed}");
    }

    #[test]
    fn the_newest_unretired_key_is_active() {
        // Two controllers seeding at once may leave two unretired keys:
        // every controller picks the same one.
        let ring =
            KeyRing::new(vec![row("b", "s", 5, None), row("a", "s", 5, None)], 50).expect("ring");
        assert_eq!(ring.active().kid, "b");
        assert_eq!(keep_s(3600, 2_592_000), 2_592_000 + GRACE_S);
    }
}
