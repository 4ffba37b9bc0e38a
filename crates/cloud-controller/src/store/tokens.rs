//! Refresh tokens on record: reusable until they expire or are revoked.

use super::{Result, Store};

impl Store {
    /// Records a refresh token (and forgets expired ones).
    pub async fn add_refresh_token(
        &self,
        jti: &str,
        user_guid: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (jti, user_guid, expires_at) VALUES ($1, $2, $3)")
            .bind(jti.to_string())
            .bind(user_guid.to_string())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether refresh token `jti` of `user_guid` is on record and unexpired.
    pub async fn refresh_token_live(&self, jti: &str, user_guid: &str, now: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM refresh_tokens WHERE jti = $1 AND user_guid = $2 AND expires_at >= $3",
        )
        .bind(jti.to_string())
        .bind(user_guid.to_string())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Revokes refresh token `jti`, when `user_guid` (or anyone, with
    /// `None`) owns it; whether there was one.
    pub async fn revoke_refresh_token(&self, jti: &str, user_guid: Option<&str>) -> Result<bool> {
        let r = match user_guid {
            Some(u) => {
                sqlx::query("DELETE FROM refresh_tokens WHERE jti = $1 AND user_guid = $2")
                    .bind(jti.to_string())
                    .bind(u.to_string())
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM refresh_tokens WHERE jti = $1")
                    .bind(jti.to_string())
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }
}
