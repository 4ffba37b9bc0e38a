//! Users: the UAA side (`users`: names, password hashes, scopes) and the
//! controller's own records (`cc_users`, `POST /v3/users`).

use super::{new_guid, now, unique, Result, Store, StoreError, User};

const USER_COLS: &str = "guid, username, password_hash, created_at, origin, groups, given_name, family_name, email, token_generation";

/// What `POST /Users` gives.
#[derive(Debug, Clone, Default)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub origin: &'a str,
    pub given_name: &'a str,
    pub family_name: &'a str,
    pub email: &'a str,
    pub groups: &'a str,
}

/// A controller user record, with its UAA name when the UAA user exists.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CcUser {
    pub guid: String,
    pub created_at: String,
    pub updated_at: String,
    pub username: Option<String>,
    pub origin: Option<String>,
}

impl Store {
    /// A plain user (origin `uaa`, no extra scopes).
    pub async fn create_user(&self, username: &str, password: &str) -> Result<User> {
        self.create_uaa_user(&NewUser {
            username,
            password,
            ..Default::default()
        })
        .await
    }

    pub async fn create_uaa_user(&self, new: &NewUser<'_>) -> Result<User> {
        let hash = crate::auth::hash_password(new.password).map_err(StoreError::Hash)?;
        let u = User {
            guid: new_guid(),
            username: new.username.to_string(),
            password_hash: hash,
            created_at: now(),
            origin: if new.origin.is_empty() {
                "uaa".into()
            } else {
                new.origin.to_string()
            },
            groups: new.groups.to_string(),
            given_name: new.given_name.to_string(),
            family_name: new.family_name.to_string(),
            email: new.email.to_string(),
            token_generation: 0,
        };
        sqlx::query(&format!(
            "INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)"
        ))
        .bind(u.guid.clone())
        .bind(u.username.clone())
        .bind(u.password_hash.clone())
        .bind(u.created_at.clone())
        .bind(u.origin.clone())
        .bind(u.groups.clone())
        .bind(u.given_name.clone())
        .bind(u.family_name.clone())
        .bind(u.email.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("user {}", new.username)))?;
        Ok(u)
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        Ok(self
            .all(
                &format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
                &[name],
            )
            .await?
            .into_iter()
            .next())
    }

    pub async fn user(&self, guid: &str) -> Result<Option<User>> {
        Ok(self
            .all(
                &format!("SELECT {USER_COLS} FROM users WHERE guid = $1"),
                &[guid],
            )
            .await?
            .into_iter()
            .next())
    }

    /// UAA users, optionally only the one named `username`.
    pub async fn users(&self, username: Option<&str>) -> Result<Vec<User>> {
        match username {
            Some(n) => {
                self.all(
                    &format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
                    &[n],
                )
                .await
            }
            None => {
                self.all(
                    &format!("SELECT {USER_COLS} FROM users ORDER BY created_at, guid"),
                    &[],
                )
                .await
            }
        }
    }

    /// Sets a user's extra scopes (space-separated).
    pub async fn set_user_groups(&self, guid: &str, groups: &str) -> Result<()> {
        sqlx::query("UPDATE users SET groups = $1 WHERE guid = $2")
            .bind(groups.to_string())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A new password: older access tokens stop working (their generation
    /// is behind) and every refresh token is revoked.
    pub async fn set_password(&self, guid: &str, password: &str) -> Result<()> {
        let hash = crate::auth::hash_password(password).map_err(StoreError::Hash)?;
        let mut tx = self.tx().await?;
        let r = sqlx::query(
            "UPDATE users SET password_hash = $1, token_generation = token_generation + 1 WHERE guid = $2",
        )
        .bind(hash)
        .bind(guid.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("User"));
        }
        sqlx::query("DELETE FROM refresh_tokens WHERE user_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the UAA user with its refresh tokens; the controller record
    /// and roles go with `delete_cc_user`.
    pub async fn delete_user(&self, guid: &str) -> Result<User> {
        let u = self.user(guid).await?.ok_or(StoreError::NotFound("User"))?;
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE user_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u)
    }

    // ---- controller users ----

    /// Adds a controller user record (idempotent); returns it.
    pub async fn add_cc_user(&self, guid: &str) -> Result<CcUser> {
        let t = now();
        sqlx::query("INSERT INTO cc_users (guid, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (guid) DO NOTHING")
            .bind(guid.to_string())
            .bind(t)
            .execute(&self.pool)
            .await?;
        self.cc_user(guid).await
    }

    pub async fn cc_user(&self, guid: &str) -> Result<CcUser> {
        self.one(
            "SELECT c.guid, c.created_at, c.updated_at, u.username, u.origin FROM cc_users c LEFT JOIN users u ON u.guid = c.guid WHERE c.guid = $1",
            &[guid],
            "User",
        )
        .await
    }

    /// Deletes the controller record and every role of the user.
    pub async fn delete_cc_user(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM roles WHERE user_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM cc_users WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("User"));
        }
        tx.commit().await?;
        Ok(())
    }
}
