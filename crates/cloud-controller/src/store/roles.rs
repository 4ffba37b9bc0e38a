//! Roles: org roles (`space_guid = ''`) and space roles (which keep their
//! space's org in `organization_guid`).

use super::pages::{Order, Where, Window};
use super::{new_guid, now, unique, Result, Store, StoreError};

pub(super) const ROLE_COLS: &str =
    "guid, type, user_guid, organization_guid, space_guid, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Role {
    pub guid: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub user_guid: String,
    pub organization_guid: String,
    /// `""` for an org role.
    pub space_guid: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Role {
    pub fn is_space_role(&self) -> bool {
        !self.space_guid.is_empty()
    }
}

/// `GET /v3/roles` filters (each `None` = any); `visible_to` limits the
/// result to roles in orgs where that user holds a role.
#[derive(Debug, Clone, Default)]
pub struct RoleFilter {
    pub types: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    pub organization_guids: Option<Vec<String>>,
    pub user_guids: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub visible_to: Option<String>,
}

impl RoleFilter {
    fn condition(&self) -> Where {
        let mut w = Where::new();
        w.any_of("type", &self.types)
            .any_of("space_guid", &self.space_guids)
            .any_of("organization_guid", &self.organization_guids)
            .any_of("user_guid", &self.user_guids)
            .any_of("guid", &self.guids);
        if let Some(me) = &self.visible_to {
            let n = w.param(me);
            w.and(&format!(
                "organization_guid IN (SELECT organization_guid FROM roles WHERE user_guid = {n})"
            ));
        }
        w
    }
}

impl Store {
    /// Adds a role; a duplicate is `Conflict`.
    pub async fn create_role(
        &self,
        kind: &str,
        user_guid: &str,
        organization_guid: &str,
        space_guid: &str,
    ) -> Result<Role> {
        let t = now();
        let r = Role {
            guid: new_guid(),
            kind: kind.to_string(),
            user_guid: user_guid.to_string(),
            organization_guid: organization_guid.to_string(),
            space_guid: space_guid.to_string(),
            created_at: t.clone(),
            updated_at: t,
        };
        sqlx::query(&format!(
            "INSERT INTO roles ({ROLE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $6)"
        ))
        .bind(r.guid.clone())
        .bind(r.kind.clone())
        .bind(r.user_guid.clone())
        .bind(r.organization_guid.clone())
        .bind(r.space_guid.clone())
        .bind(r.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, "Role"))?;
        Ok(r)
    }

    pub async fn role(&self, guid: &str) -> Result<Role> {
        self.one(
            &format!("SELECT {ROLE_COLS} FROM roles WHERE guid = $1"),
            &[guid],
            "Role",
        )
        .await
    }

    /// Every role of one user (the authorization input).
    pub async fn roles_of_user(&self, user_guid: &str) -> Result<Vec<Role>> {
        self.all(
            &format!("SELECT {ROLE_COLS} FROM roles WHERE user_guid = $1"),
            &[user_guid],
        )
        .await
    }

    /// Roles matching the filter, filtered in SQL, in creation order.
    pub async fn roles(&self, f: &RoleFilter) -> Result<Vec<Role>> {
        let w = f.condition();
        self.all(
            &format!(
                "SELECT {ROLE_COLS} FROM roles WHERE {} ORDER BY created_at, guid",
                w.cond()
            ),
            &w.bind_refs(),
        )
        .await
    }

    /// One page of the roles matching the filter, and how many match.
    pub async fn roles_page(&self, f: &RoleFilter, win: Window) -> Result<(usize, Vec<Role>)> {
        self.page(
            ROLE_COLS,
            "roles",
            &f.condition(),
            &Order::CREATED.sql(),
            win,
        )
        .await
    }

    pub async fn delete_role(&self, guid: &str) -> Result<()> {
        let r = sqlx::query("DELETE FROM roles WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Role"));
        }
        Ok(())
    }
}
