//! Application security groups (CF `/v3/security_groups`): named lists of
//! egress allow rules, on for every space when globally enabled for a
//! lifecycle (`running`, `staging`), else for the spaces bound to them.

use proto::EgressRule;

use super::pages::{any_via, Order, Where, Window};
use super::{new_guid, now, unique, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SecurityGroup {
    pub guid: String,
    pub name: String,
    /// JSON array of rules.
    pub rules: String,
    pub running_default: i64,
    pub staging_default: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl SecurityGroup {
    pub fn rules_vec(&self) -> Vec<EgressRule> {
        serde_json::from_str(&self.rules).unwrap_or_default()
    }

    /// Whether the group applies to every space for `lifecycle`.
    pub fn global(&self, lifecycle: Lifecycle) -> bool {
        match lifecycle {
            Lifecycle::Running => self.running_default != 0,
            Lifecycle::Staging => self.staging_default != 0,
        }
    }
}

/// When a group's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Running,
    Staging,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Running => "running",
            Lifecycle::Staging => "staging",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        match s {
            "running" => Some(Lifecycle::Running),
            "staging" => Some(Lifecycle::Staging),
            _ => None,
        }
    }
}

/// `GET /v3/security_groups` filters (each `None` = any): names, guids,
/// the global flags, and the spaces a group is bound to for a lifecycle
/// (a global group is not bound to them).
#[derive(Debug, Clone, Default)]
pub struct SecurityGroupFilter {
    pub names: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub globally_enabled_running: Option<bool>,
    pub globally_enabled_staging: Option<bool>,
    pub running_space_guids: Option<Vec<String>>,
    pub staging_space_guids: Option<Vec<String>>,
}

/// The column of a lifecycle's global flag.
fn global_flag(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Running => "running_default",
        Lifecycle::Staging => "staging_default",
    }
}

/// The groups that apply to a space for a lifecycle: global or bound to
/// it (`space`: the placeholder bound to the space's guid).
fn applies_to_space(lifecycle: Lifecycle, space: &str) -> String {
    format!(
        "{} = 1 OR guid IN (SELECT security_group_guid FROM security_group_spaces WHERE space_guid = {space} AND lifecycle = '{}')",
        global_flag(lifecycle),
        lifecycle.as_str()
    )
}

const SG_COLS: &str = "guid, name, rules, running_default, staging_default, created_at, updated_at";

/// Settings key set once the default groups were made (deleting them later
/// is the operator's choice and sticks).
const SEEDED: &str = "default_security_groups_seeded";

impl Store {
    pub async fn create_security_group(
        &self,
        name: &str,
        rules: &[EgressRule],
        running: bool,
        staging: bool,
    ) -> Result<SecurityGroup> {
        let t = now();
        let g = SecurityGroup {
            guid: new_guid(),
            name: name.to_string(),
            rules: serde_json::to_string(rules).unwrap_or_else(|_| "[]".into()),
            running_default: i64::from(running),
            staging_default: i64::from(staging),
            created_at: t.clone(),
            updated_at: t,
        };
        sqlx::query(&format!(
            "INSERT INTO security_groups ({SG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $6)"
        ))
        .bind(g.guid.clone())
        .bind(g.name.clone())
        .bind(g.rules.clone())
        .bind(g.running_default)
        .bind(g.staging_default)
        .bind(g.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Security group with name '{name}'")))?;
        Ok(g)
    }

    pub async fn security_groups(&self) -> Result<Vec<SecurityGroup>> {
        self.all(
            &format!("SELECT {SG_COLS} FROM security_groups ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// Groups matching `f`, in creation order.
    pub async fn security_groups_page(
        &self,
        f: &SecurityGroupFilter,
        win: Window,
    ) -> Result<(usize, Vec<SecurityGroup>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names).any_of("guid", &f.guids);
        for (flag, lifecycle) in [
            (f.globally_enabled_running, Lifecycle::Running),
            (f.globally_enabled_staging, Lifecycle::Staging),
        ] {
            if let Some(on) = flag {
                let col = global_flag(lifecycle);
                w.and(&if on {
                    format!("{col} <> 0")
                } else {
                    format!("{col} = 0")
                });
            }
        }
        for (spaces, lifecycle) in [
            (&f.running_space_guids, Lifecycle::Running),
            (&f.staging_space_guids, Lifecycle::Staging),
        ] {
            let bindings = format!(
                "(SELECT security_group_guid, space_guid FROM security_group_spaces WHERE lifecycle = '{}') b",
                lifecycle.as_str()
            );
            any_via(
                &mut w,
                "guid",
                (&bindings, "b.security_group_guid", "b.space_guid"),
                spaces,
            );
        }
        self.page(SG_COLS, "security_groups", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// The groups that apply to a space for a lifecycle (global or bound
    /// to it), in creation order: how many, and the window.
    pub async fn space_security_groups_page(
        &self,
        space_guid: &str,
        lifecycle: Lifecycle,
        win: Window,
    ) -> Result<(usize, Vec<SecurityGroup>)> {
        let mut w = Where::new();
        let s = w.param(space_guid);
        w.and(&applies_to_space(lifecycle, &s));
        self.page(SG_COLS, "security_groups", &w, &Order::CREATED.sql(), win)
            .await
    }

    pub async fn security_group(&self, guid: &str) -> Result<SecurityGroup> {
        self.one(
            &format!("SELECT {SG_COLS} FROM security_groups WHERE guid = $1"),
            &[guid],
            "Security group",
        )
        .await
    }

    /// Writes name, rules and the global flags.
    pub async fn update_security_group(&self, g: &SecurityGroup) -> Result<SecurityGroup> {
        let r = sqlx::query("UPDATE security_groups SET name = $1, rules = $2, running_default = $3, staging_default = $4, updated_at = $5 WHERE guid = $6")
            .bind(g.name.clone())
            .bind(g.rules.clone())
            .bind(g.running_default)
            .bind(g.staging_default)
            .bind(now())
            .bind(g.guid.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("Security group with name '{}'", g.name)))?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Security group"));
        }
        self.security_group(&g.guid).await
    }

    /// Deletes the group and its bindings.
    pub async fn delete_security_group(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM security_group_spaces WHERE security_group_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM security_groups WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Security group"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Binds the group to a space for a lifecycle (binding twice is fine).
    pub async fn bind_security_group(
        &self,
        guid: &str,
        space_guid: &str,
        lifecycle: Lifecycle,
    ) -> Result<()> {
        sqlx::query("INSERT INTO security_group_spaces (security_group_guid, space_guid, lifecycle) VALUES ($1, $2, $3) ON CONFLICT (security_group_guid, space_guid, lifecycle) DO NOTHING")
            .bind(guid.to_string())
            .bind(space_guid.to_string())
            .bind(lifecycle.as_str().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `false` when it was not bound.
    pub async fn unbind_security_group(
        &self,
        guid: &str,
        space_guid: &str,
        lifecycle: Lifecycle,
    ) -> Result<bool> {
        let r = sqlx::query("DELETE FROM security_group_spaces WHERE security_group_guid = $1 AND space_guid = $2 AND lifecycle = $3")
            .bind(guid.to_string())
            .bind(space_guid.to_string())
            .bind(lifecycle.as_str().to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The spaces the group is bound to for a lifecycle.
    pub async fn security_group_spaces(
        &self,
        guid: &str,
        lifecycle: Lifecycle,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT space_guid FROM security_group_spaces WHERE security_group_guid = $1 AND lifecycle = $2 ORDER BY space_guid")
            .bind(guid.to_string())
            .bind(lifecycle.as_str().to_string())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The groups that apply to a space for a lifecycle: the global ones
    /// and those bound to it.
    pub async fn space_security_groups(
        &self,
        space_guid: &str,
        lifecycle: Lifecycle,
    ) -> Result<Vec<SecurityGroup>> {
        self.all(
            &format!(
                "SELECT {SG_COLS} FROM security_groups WHERE {} ORDER BY created_at, guid",
                applies_to_space(lifecycle, "$1")
            ),
            &[space_guid],
        )
        .await
    }

    /// Every rule that applies to a space for a lifecycle.
    pub async fn egress_rules(
        &self,
        space_guid: &str,
        lifecycle: Lifecycle,
    ) -> Result<Vec<EgressRule>> {
        Ok(self
            .space_security_groups(space_guid, lifecycle)
            .await?
            .iter()
            .flat_map(SecurityGroup::rules_vec)
            .collect())
    }

    /// Makes CF's default groups once: `public_networks` and `dns`, both on
    /// for running and staging everywhere.
    pub async fn seed_security_groups(&self, dns: &[EgressRule]) -> Result<()> {
        let done = self.setting_or_insert(SEEDED, "no").await?;
        if done == "yes" {
            return Ok(());
        }
        for (name, rules) in [
            ("public_networks", proto::egress::public_networks()),
            ("dns", dns.to_vec()),
        ] {
            match self.create_security_group(name, &rules, true, true).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        sqlx::query("UPDATE settings SET value = 'yes' WHERE key = $1")
            .bind(SEEDED.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
