//! The token signing key ring on record (`signing_keys`), shared by every
//! controller on the database.

use super::{Result, Store};

/// One signing key as stored (the secret is redacted from `Debug`).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// The kid of the key tokens issued before key ids were signed with.
pub const LEGACY_KID: &str = "legacy";

impl Store {
    /// Every key on record, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        Ok(sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, secret, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Makes sure there is an active key: on a database from before key
    /// ids, the `jwt_signing_key` setting becomes the key `legacy` (and the
    /// setting goes, so the secret is kept in one place); on a new one,
    /// `fresh` (kid, secret) becomes the first key. Safe when several
    /// controllers start at once.
    pub async fn seed_signing_keys(&self, fresh: (&str, &str), now: i64) -> Result<()> {
        if let Some(old) = self.setting("jwt_signing_key").await? {
            sqlx::query(
                "INSERT INTO signing_keys (kid, secret, created_at, retired_at) \
                 SELECT $1, $2, $3, NULL WHERE NOT EXISTS (SELECT 1 FROM signing_keys) \
                 ON CONFLICT (kid) DO NOTHING",
            )
            .bind(LEGACY_KID.to_string())
            .bind(old)
            .bind(now)
            .execute(&self.pool)
            .await?;
            sqlx::query("DELETE FROM settings WHERE key = 'jwt_signing_key'")
                .execute(&self.pool)
                .await?;
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, secret, created_at, retired_at) \
             SELECT $1, $2, $3, NULL WHERE NOT EXISTS \
             (SELECT 1 FROM signing_keys WHERE retired_at IS NULL) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(fresh.0.to_string())
        .bind(fresh.1.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rotation: `new` (kid, secret) becomes the active key and every
    /// earlier one is retired at `now`; with `revoke_previous` the earlier
    /// keys are deleted at once instead (every token they signed is
    /// refused). Retired keys older than `keep_s` go too.
    pub async fn rotate_signing_key(
        &self,
        new: (&str, &str),
        now: i64,
        keep_s: i64,
        revoke_previous: bool,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        if revoke_previous {
            sqlx::query("DELETE FROM signing_keys")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, secret, created_at, retired_at) VALUES ($1, $2, $3, NULL)",
        )
        .bind(new.0.to_string())
        .bind(new.1.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.prune_signing_keys(now, keep_s).await
    }

    /// Deletes the keys retired more than `keep_s` before `now`: every
    /// token they signed has expired.
    pub async fn prune_signing_keys(&self, now: i64, keep_s: i64) -> Result<()> {
        sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(now.saturating_sub(keep_s))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
