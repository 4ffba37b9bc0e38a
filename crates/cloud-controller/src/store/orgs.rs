//! Organizations, spaces and domains, and the platform's first records.

use super::{new_guid, now, unique, Domain, Organization, Result, Space, Store, StoreError};

pub(super) const ORG_COLS: &str = "guid, name, created_at, updated_at, quota_guid, suspended";
pub(super) const SPACE_COLS: &str =
    "guid, name, organization_guid, created_at, updated_at, quota_guid";
pub(super) const DOMAIN_COLS: &str =
    "guid, name, internal, created_at, updated_at, organization_guid";

/// The scopes an admin holds beyond every user's.
pub const ADMIN_GROUPS: &str = "cloud_controller.admin scim.read scim.write uaa.admin";

/// The org that owns the system domain and the API's own route.
pub const SYSTEM_ORG: &str = "system";

impl Store {
    // ---- bootstrap ----

    /// Idempotent: the admin user (with admin scopes), the default org
    /// quota, org `dev` with space `dev`, org `system` with space `system`
    /// owning the system domain and the reserved `api` route, and the
    /// shared apps domain.
    pub async fn bootstrap(
        &self,
        admin: &str,
        password: &str,
        system_domain: &str,
        apps_domain: &str,
    ) -> Result<()> {
        let admin_user = match self.user_by_name(admin).await? {
            Some(u) => u,
            None => match self
                .create_uaa_user(&super::users::NewUser {
                    username: admin,
                    password,
                    groups: ADMIN_GROUPS,
                    ..Default::default()
                })
                .await
            {
                Ok(u) => u,
                Err(StoreError::Conflict(_)) => self
                    .user_by_name(admin)
                    .await?
                    .ok_or(StoreError::NotFound("User"))?,
                Err(e) => return Err(e),
            },
        };
        if !admin_user.groups().any(|g| g == "cloud_controller.admin") {
            self.set_user_groups(&admin_user.guid, ADMIN_GROUPS).await?;
        }
        self.add_cc_user(&admin_user.guid).await?;
        let quota = self.default_org_quota().await?;
        // `dev` first: lists are ordered by creation.
        for name in ["dev", SYSTEM_ORG] {
            let t = now();
            sqlx::query(&format!("INSERT INTO organizations ({ORG_COLS}) VALUES ($1, $2, $3, $3, $4, 0) ON CONFLICT (name) DO NOTHING"))
                .bind(new_guid())
                .bind(name.to_string())
                .bind(t.clone())
                .bind(quota.guid.clone())
                .execute(&self.pool)
                .await?;
            let org = self
                .org_by_name(name)
                .await?
                .ok_or(StoreError::NotFound("Organization"))?;
            sqlx::query(&format!("INSERT INTO spaces ({SPACE_COLS}) VALUES ($1, $2, $3, $4, $4, NULL) ON CONFLICT (organization_guid, name) DO NOTHING"))
                .bind(new_guid())
                .bind(name.to_string())
                .bind(org.guid)
                .bind(t.clone())
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("UPDATE organizations SET quota_guid = $1 WHERE quota_guid IS NULL")
            .bind(quota.guid.clone())
            .execute(&self.pool)
            .await?;
        let system = self
            .org_by_name(SYSTEM_ORG)
            .await?
            .ok_or(StoreError::NotFound("Organization"))?;
        let t = now();
        for (d, owner) in [
            (system_domain, Some(system.guid.clone())),
            (apps_domain, None),
        ] {
            sqlx::query(&format!("INSERT INTO domains ({DOMAIN_COLS}) VALUES ($1, $2, 0, $3, $3, $4) ON CONFLICT (name) DO NOTHING"))
                .bind(new_guid())
                .bind(d.to_string())
                .bind(t.clone())
                .bind(owner.clone())
                .execute(&self.pool)
                .await?;
            sqlx::query("UPDATE domains SET organization_guid = $1 WHERE name = $2")
                .bind(owner)
                .bind(d.to_string())
                .execute(&self.pool)
                .await?;
        }
        // The API's own route: a real record in the system space, so no one
        // else can take the host.
        let space = self
            .space_in_org(&system.guid, SYSTEM_ORG)
            .await?
            .ok_or(StoreError::NotFound("Space"))?;
        if let Some(domain) = self.domain_by_name(system_domain).await? {
            sqlx::query("INSERT INTO routes (guid, host, domain_guid, path, space_guid, created_at, updated_at) VALUES ($1, 'api', $2, '', $3, $4, $4) ON CONFLICT (host, domain_guid, path) DO NOTHING")
                .bind(new_guid())
                .bind(domain.guid)
                .bind(space.guid)
                .bind(t)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    // ---- organizations ----

    pub async fn orgs(&self) -> Result<Vec<Organization>> {
        self.all(
            &format!("SELECT {ORG_COLS} FROM organizations ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    pub async fn org(&self, guid: &str) -> Result<Organization> {
        self.one(
            &format!("SELECT {ORG_COLS} FROM organizations WHERE guid = $1"),
            &[guid],
            "Organization",
        )
        .await
    }

    pub async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        Ok(self
            .all(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE name = $1"),
                &[name],
            )
            .await?
            .into_iter()
            .next())
    }

    /// A new org under the default quota.
    pub async fn create_org(&self, name: &str) -> Result<Organization> {
        let quota = self.default_org_quota().await?;
        let t = now();
        let o = Organization {
            guid: new_guid(),
            name: name.to_string(),
            created_at: t.clone(),
            updated_at: t,
            quota_guid: Some(quota.guid),
            suspended: 0,
        };
        sqlx::query(&format!(
            "INSERT INTO organizations ({ORG_COLS}) VALUES ($1, $2, $3, $3, $4, 0)"
        ))
        .bind(o.guid.clone())
        .bind(o.name.clone())
        .bind(o.created_at.clone())
        .bind(o.quota_guid.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Organization '{name}'")))?;
        Ok(o)
    }

    pub async fn update_org(&self, o: &Organization) -> Result<Organization> {
        let mut o = o.clone();
        o.updated_at = now();
        sqlx::query("UPDATE organizations SET name = $1, suspended = $2, quota_guid = $3, updated_at = $4 WHERE guid = $5")
            .bind(o.name.clone())
            .bind(o.suspended)
            .bind(o.quota_guid.clone())
            .bind(o.updated_at.clone())
            .bind(o.guid.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("Organization '{}'", o.name)))?;
        Ok(o)
    }

    /// Deletes an empty org (no spaces left) with its roles, space quotas
    /// and private domains.
    pub async fn delete_org(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        for sql in [
            "DELETE FROM roles WHERE organization_guid = $1",
            "DELETE FROM quotas WHERE kind = 'space' AND organization_guid = $1",
            "DELETE FROM domain_shares WHERE organization_guid = $1",
            "DELETE FROM domain_shares WHERE domain_guid IN (SELECT guid FROM domains WHERE organization_guid = $1)",
            "DELETE FROM domains WHERE organization_guid = $1",
        ] {
            sqlx::query(sql)
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM organizations WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Organization"));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- spaces ----

    pub async fn spaces(&self) -> Result<Vec<Space>> {
        self.all(
            &format!("SELECT {SPACE_COLS} FROM spaces ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    pub async fn spaces_of_org(&self, org_guid: &str) -> Result<Vec<Space>> {
        self.all(
            &format!("SELECT {SPACE_COLS} FROM spaces WHERE organization_guid = $1 ORDER BY created_at, guid"),
            &[org_guid],
        )
        .await
    }

    pub async fn space_in_org(&self, org_guid: &str, name: &str) -> Result<Option<Space>> {
        Ok(self
            .all(
                &format!(
                    "SELECT {SPACE_COLS} FROM spaces WHERE organization_guid = $1 AND name = $2"
                ),
                &[org_guid, name],
            )
            .await?
            .into_iter()
            .next())
    }

    pub async fn create_space(&self, name: &str, org_guid: &str) -> Result<Space> {
        self.org(org_guid).await?;
        let t = now();
        let s = Space {
            guid: new_guid(),
            name: name.to_string(),
            organization_guid: org_guid.to_string(),
            created_at: t.clone(),
            updated_at: t,
            quota_guid: None,
        };
        sqlx::query(&format!(
            "INSERT INTO spaces ({SPACE_COLS}) VALUES ($1, $2, $3, $4, $4, NULL)"
        ))
        .bind(s.guid.clone())
        .bind(s.name.clone())
        .bind(s.organization_guid.clone())
        .bind(s.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Space '{name}'")))?;
        Ok(s)
    }

    pub async fn space(&self, guid: &str) -> Result<Space> {
        self.one(
            &format!("SELECT {SPACE_COLS} FROM spaces WHERE guid = $1"),
            &[guid],
            "Space",
        )
        .await
    }

    pub async fn update_space(&self, s: &Space) -> Result<Space> {
        let mut s = s.clone();
        s.updated_at = now();
        sqlx::query(
            "UPDATE spaces SET name = $1, quota_guid = $2, updated_at = $3 WHERE guid = $4",
        )
        .bind(s.name.clone())
        .bind(s.quota_guid.clone())
        .bind(s.updated_at.clone())
        .bind(s.guid.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Space '{}'", s.name)))?;
        Ok(s)
    }

    /// Deletes a space with no apps left, with its routes and roles.
    pub async fn delete_space(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        for sql in [
            "DELETE FROM route_destinations WHERE route_guid IN (SELECT guid FROM routes WHERE space_guid = $1)",
            "DELETE FROM routes WHERE space_guid = $1",
            "DELETE FROM roles WHERE space_guid = $1",
            "DELETE FROM security_group_spaces WHERE space_guid = $1",
        ] {
            sqlx::query(sql)
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM spaces WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Space"));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- domains ----

    pub async fn domains(&self) -> Result<Vec<Domain>> {
        self.all(
            &format!("SELECT {DOMAIN_COLS} FROM domains ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// Whether `org_guid` may put routes on the domain.
    pub async fn domain_usable_by(&self, d: &Domain, org_guid: &str) -> Result<bool> {
        match &d.organization_guid {
            None => Ok(true),
            Some(owner) if owner == org_guid => Ok(true),
            Some(_) => Ok(self
                .domain_shared_with(&d.guid)
                .await?
                .iter()
                .any(|o| o == org_guid)),
        }
    }

    pub async fn domain_shared_with(&self, domain_guid: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .all(
                "SELECT organization_guid FROM domain_shares WHERE domain_guid = $1 ORDER BY organization_guid",
                &[domain_guid],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn domain(&self, guid: &str) -> Result<Domain> {
        self.one(
            &format!("SELECT {DOMAIN_COLS} FROM domains WHERE guid = $1"),
            &[guid],
            "Domain",
        )
        .await
    }

    pub async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>> {
        Ok(self
            .all(
                &format!("SELECT {DOMAIN_COLS} FROM domains WHERE name = $1"),
                &[name],
            )
            .await?
            .into_iter()
            .next())
    }

    /// A shared domain (`owner` `None`) or an org's private one.
    pub async fn create_domain(
        &self,
        name: &str,
        internal: bool,
        owner: Option<&str>,
    ) -> Result<Domain> {
        let t = now();
        let d = Domain {
            guid: new_guid(),
            name: name.to_string(),
            internal: i64::from(internal),
            created_at: t.clone(),
            updated_at: t,
            organization_guid: owner.map(str::to_string),
        };
        sqlx::query(&format!(
            "INSERT INTO domains ({DOMAIN_COLS}) VALUES ($1, $2, $3, $4, $4, $5)"
        ))
        .bind(d.guid.clone())
        .bind(d.name.clone())
        .bind(d.internal)
        .bind(d.created_at.clone())
        .bind(d.organization_guid.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Domain '{name}'")))?;
        Ok(d)
    }

    pub async fn share_domain(&self, domain_guid: &str, org_guid: &str) -> Result<()> {
        sqlx::query("INSERT INTO domain_shares (domain_guid, organization_guid) VALUES ($1, $2) ON CONFLICT (domain_guid, organization_guid) DO NOTHING")
            .bind(domain_guid.to_string())
            .bind(org_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn unshare_domain(&self, domain_guid: &str, org_guid: &str) -> Result<()> {
        sqlx::query("DELETE FROM domain_shares WHERE domain_guid = $1 AND organization_guid = $2")
            .bind(domain_guid.to_string())
            .bind(org_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_domain(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM domain_shares WHERE domain_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM domains WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Domain"));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// SQL condition: `col` (a space guid) is a space whose content the user
/// bound at `param` may read: a role in it, or org manager of its org.
pub fn readable_space_clause(col: &str, param: &str) -> String {
    format!(
        "({col} IN (SELECT space_guid FROM roles WHERE user_guid = {param} AND space_guid <> '') \
         OR {col} IN (SELECT s.guid FROM spaces s JOIN roles r ON r.organization_guid = s.organization_guid \
         WHERE r.user_guid = {param} AND r.type = 'organization_manager' AND r.space_guid = ''))"
    )
}
