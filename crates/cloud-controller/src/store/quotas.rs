//! Organization and space quotas, and what an org or space uses.

use serde::{Deserialize, Serialize};

use super::pages::{Order, Where, Window};
use super::{new_guid, now, unique, Result, Store, StoreError};

const QUOTA_COLS: &str = "guid, kind, name, organization_guid, total_memory_in_mb, per_process_memory_in_mb, total_instances, total_routes, total_apps, created_at, updated_at";

/// The quota every new org gets (CF's `default`): 100 GiB of memory and
/// 1,000 routes; the rest unlimited.
pub const DEFAULT_QUOTA: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    Organization,
    Space,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Organization => "organization",
            QuotaKind::Space => "space",
        }
    }
}

/// Limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    pub total_memory_in_mb: Option<i64>,
    pub per_process_memory_in_mb: Option<i64>,
    pub total_instances: Option<i64>,
    pub total_routes: Option<i64>,
    pub total_apps: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Quota {
    pub guid: String,
    pub kind: String,
    pub name: String,
    /// The owning org of a space quota; `""` for an org quota.
    pub organization_guid: String,
    pub total_memory_in_mb: Option<i64>,
    pub per_process_memory_in_mb: Option<i64>,
    pub total_instances: Option<i64>,
    pub total_routes: Option<i64>,
    pub total_apps: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl Quota {
    pub fn limits(&self) -> QuotaLimits {
        QuotaLimits {
            total_memory_in_mb: self.total_memory_in_mb,
            per_process_memory_in_mb: self.per_process_memory_in_mb,
            total_instances: self.total_instances,
            total_routes: self.total_routes,
            total_apps: self.total_apps,
        }
    }
}

/// `GET /v3/organization_quotas` and `/v3/space_quotas` filters;
/// `visible_orgs`: only space quotas of these orgs (`None`: any; the
/// caller's orgs for a user who does not read everything).
#[derive(Debug, Clone)]
pub struct QuotaFilter {
    pub kind: QuotaKind,
    pub names: Option<Vec<String>>,
    pub organization_guids: Option<Vec<String>>,
    pub visible_orgs: Option<Vec<String>>,
}

/// What an org or a space uses: memory and instances of started apps,
/// routes, apps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_in_mb: i64,
    pub instances: i64,
    pub routes: i64,
    pub apps: i64,
}

impl Store {
    pub async fn create_quota(
        &self,
        kind: QuotaKind,
        name: &str,
        organization_guid: &str,
        l: &QuotaLimits,
    ) -> Result<Quota> {
        let t = now();
        let q = Quota {
            guid: new_guid(),
            kind: kind.as_str().into(),
            name: name.to_string(),
            organization_guid: organization_guid.to_string(),
            total_memory_in_mb: l.total_memory_in_mb,
            per_process_memory_in_mb: l.per_process_memory_in_mb,
            total_instances: l.total_instances,
            total_routes: l.total_routes,
            total_apps: l.total_apps,
            created_at: t.clone(),
            updated_at: t,
        };
        sqlx::query(&format!("INSERT INTO quotas ({QUOTA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"))
            .bind(q.guid.clone())
            .bind(q.kind.clone())
            .bind(q.name.clone())
            .bind(q.organization_guid.clone())
            .bind(q.total_memory_in_mb)
            .bind(q.per_process_memory_in_mb)
            .bind(q.total_instances)
            .bind(q.total_routes)
            .bind(q.total_apps)
            .bind(q.created_at.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("Quota Definition '{name}'")))?;
        Ok(q)
    }

    pub async fn quota(&self, kind: QuotaKind, guid: &str) -> Result<Quota> {
        self.one(
            &format!("SELECT {QUOTA_COLS} FROM quotas WHERE guid = $1 AND kind = $2"),
            &[guid, kind.as_str()],
            match kind {
                QuotaKind::Organization => "Organization quota",
                QuotaKind::Space => "Space quota",
            },
        )
        .await
    }

    /// Quotas matching `f`, in creation order.
    pub async fn quotas_page(&self, f: &QuotaFilter, win: Window) -> Result<(usize, Vec<Quota>)> {
        let mut w = Where::new();
        let k = w.param(f.kind.as_str());
        w.and(&format!("kind = {k}"));
        w.any_of("name", &f.names)
            .any_of("organization_guid", &f.organization_guids)
            .any_of("organization_guid", &f.visible_orgs);
        self.page(QUOTA_COLS, "quotas", &w, &Order::CREATED.sql(), win)
            .await
    }

    pub async fn update_quota(&self, q: &Quota) -> Result<Quota> {
        let mut q = q.clone();
        q.updated_at = now();
        sqlx::query("UPDATE quotas SET name = $1, total_memory_in_mb = $2, per_process_memory_in_mb = $3, total_instances = $4, total_routes = $5, total_apps = $6, updated_at = $7 WHERE guid = $8")
            .bind(q.name.clone())
            .bind(q.total_memory_in_mb)
            .bind(q.per_process_memory_in_mb)
            .bind(q.total_instances)
            .bind(q.total_routes)
            .bind(q.total_apps)
            .bind(q.updated_at.clone())
            .bind(q.guid.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("Quota Definition '{}'", q.name)))?;
        Ok(q)
    }

    /// Deletes a quota no org or space uses.
    pub async fn delete_quota(&self, guid: &str) -> Result<()> {
        let users: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM organizations WHERE quota_guid = $1) + (SELECT COUNT(*) FROM spaces WHERE quota_guid = $1)")
            .bind(guid.to_string())
            .fetch_one(&self.pool)
            .await?;
        if users > 0 {
            return Err(StoreError::Conflict("in use".into()));
        }
        sqlx::query("DELETE FROM quotas WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The `default` org quota, created on first use.
    pub async fn default_org_quota(&self) -> Result<Quota> {
        let t = now();
        sqlx::query(&format!("INSERT INTO quotas ({QUOTA_COLS}) VALUES ($1, 'organization', $2, '', 102400, NULL, NULL, 1000, NULL, $3, $3) ON CONFLICT (kind, organization_guid, name) DO NOTHING"))
            .bind(new_guid())
            .bind(DEFAULT_QUOTA.to_string())
            .bind(t)
            .execute(&self.pool)
            .await?;
        self.one(
            &format!("SELECT {QUOTA_COLS} FROM quotas WHERE kind = 'organization' AND organization_guid = '' AND name = $1"),
            &[DEFAULT_QUOTA],
            "Organization quota",
        )
        .await
    }

    pub async fn set_org_quota(&self, org_guid: &str, quota_guid: &str) -> Result<()> {
        sqlx::query("UPDATE organizations SET quota_guid = $1 WHERE guid = $2")
            .bind(quota_guid.to_string())
            .bind(org_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_space_quota(&self, space_guid: &str, quota_guid: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE spaces SET quota_guid = $1 WHERE guid = $2")
            .bind(quota_guid.map(str::to_string))
            .bind(space_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What the org (`space` false) or space uses, leaving out process
    /// `except` (the one about to change).
    pub async fn usage(&self, guid: &str, space: bool, except: &str) -> Result<Usage> {
        let scope = if space {
            "a.space_guid = $1"
        } else {
            "a.space_guid IN (SELECT guid FROM spaces WHERE organization_guid = $1)"
        };
        let (memory, instances): (i64, i64) = sqlx::query_as(&format!(
            "SELECT CAST(COALESCE(SUM(p.instances * p.memory_in_mb), 0) AS BIGINT), CAST(COALESCE(SUM(p.instances), 0) AS BIGINT) \
             FROM processes p JOIN apps a ON a.guid = p.app_guid WHERE a.state = 'STARTED' AND p.guid <> $2 AND {scope}"
        ))
        .bind(guid.to_string())
        .bind(except.to_string())
        .fetch_one(&self.pool)
        .await?;
        let route_scope = if space {
            "space_guid = $1"
        } else {
            "space_guid IN (SELECT guid FROM spaces WHERE organization_guid = $1)"
        };
        let routes: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM routes WHERE {route_scope}"))
                .bind(guid.to_string())
                .fetch_one(&self.pool)
                .await?;
        let apps: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM apps a WHERE {scope}"))
            .bind(guid.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(Usage {
            memory_in_mb: memory,
            instances,
            routes,
            apps,
        })
    }
}
