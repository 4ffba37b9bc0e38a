//! Revisions (CF's `/v3/revisions`, docs/architecture.md §5.10): what an
//! app ran with, numbered per app from 1, the newest `MAX_REVISIONS` kept;
//! and the per-app features (`revisions` on by default).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sqlx::FromRow;

use super::{new_guid, now, Result, Store, StoreError};

/// CF keeps the newest 100 revisions of an app.
pub const MAX_REVISIONS: i64 = 100;

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Revision {
    pub guid: String,
    pub app_guid: String,
    pub version: i64,
    pub droplet_guid: String,
    /// JSON object of the app's environment variables.
    pub environment_variables: String,
    /// JSON object: process type → its command (null: the droplet's).
    pub commands: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Revision {
    pub fn content(&self) -> RevisionContent {
        RevisionContent {
            droplet_guid: self.droplet_guid.clone(),
            env: serde_json::from_str(&self.environment_variables).unwrap_or_default(),
            commands: serde_json::from_str(&self.commands).unwrap_or_default(),
        }
    }
}

/// What a revision records of an app.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RevisionContent {
    pub droplet_guid: String,
    pub env: Map<String, Value>,
    pub commands: BTreeMap<String, Option<String>>,
}

/// Pure: CF's description of what changed from `prev` to `next`; `None`
/// when nothing did (no new revision then).
pub fn describe(prev: Option<&RevisionContent>, next: &RevisionContent) -> Option<String> {
    let Some(prev) = prev else {
        return Some("Initial revision.".into());
    };
    let mut parts = Vec::new();
    if prev.droplet_guid != next.droplet_guid {
        parts.push("New droplet deployed.".to_string());
    }
    if prev.env != next.env {
        parts.push("New environment variables deployed.".to_string());
    }
    for (kind, cmd) in &next.commands {
        let before = prev.commands.get(kind).cloned().flatten();
        let what = match (before, cmd) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if &a != b => "updated",
            _ => continue,
        };
        parts.push(format!("Custom start command {what} for '{kind}' process."));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

const REVISION_COLS: &str = "guid, app_guid, version, droplet_guid, environment_variables, commands, description, created_at, updated_at";

impl Store {
    pub async fn latest_revision(&self, app_guid: &str) -> Result<Option<Revision>> {
        Ok(self
            .all(
                &format!("SELECT {REVISION_COLS} FROM revisions WHERE app_guid = $1 ORDER BY version DESC LIMIT 1"),
                &[app_guid],
            )
            .await?
            .into_iter()
            .next())
    }

    /// A new revision with the app's next version; the oldest beyond
    /// [`MAX_REVISIONS`] are removed.
    pub async fn create_revision(
        &self,
        app_guid: &str,
        content: &RevisionContent,
        description: &str,
    ) -> Result<Revision> {
        let env = Value::Object(content.env.clone()).to_string();
        let commands = serde_json::to_string(&content.commands).unwrap_or_else(|_| "{}".into());
        for _ in 0..5 {
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM revisions WHERE app_guid = $1",
            )
            .bind(app_guid.to_string())
            .fetch_one(&self.pool)
            .await?;
            let at = now();
            let r = Revision {
                guid: new_guid(),
                app_guid: app_guid.to_string(),
                version: next,
                droplet_guid: content.droplet_guid.clone(),
                environment_variables: env.clone(),
                commands: commands.clone(),
                description: description.to_string(),
                created_at: at.clone(),
                updated_at: at,
            };
            let res = sqlx::query(&format!(
                "INSERT INTO revisions ({REVISION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
            ))
            .bind(r.guid.clone())
            .bind(r.app_guid.clone())
            .bind(r.version)
            .bind(r.droplet_guid.clone())
            .bind(r.environment_variables.clone())
            .bind(r.commands.clone())
            .bind(r.description.clone())
            .bind(r.created_at.clone())
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => {
                    sqlx::query("DELETE FROM revisions WHERE app_guid = $1 AND version <= $2")
                        .bind(app_guid.to_string())
                        .bind(next - MAX_REVISIONS)
                        .execute(&self.pool)
                        .await?;
                    return Ok(r);
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict("Revision version".into()))
    }

    pub async fn revision(&self, guid: &str) -> Result<Revision> {
        self.one(
            &format!("SELECT {REVISION_COLS} FROM revisions WHERE guid = $1"),
            &[guid],
            "Revision",
        )
        .await
    }

    /// One page of the app's revisions (oldest first), with `versions`
    /// when given, and how many match.
    pub async fn revisions_page(
        &self,
        app_guid: &str,
        versions: Option<&[i64]>,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Revision>)> {
        let cond = match versions {
            None => String::new(),
            Some([]) => " AND 1 = 0".into(),
            // Parsed integers, so written into the statement.
            Some(v) => format!(
                " AND version IN ({})",
                v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM revisions WHERE app_guid = $1{cond}"
        ))
        .bind(app_guid.to_string())
        .fetch_one(&self.pool)
        .await?;
        let rows = self
            .all(
                &format!(
                    "SELECT {REVISION_COLS} FROM revisions WHERE app_guid = $1{cond} ORDER BY version LIMIT {} OFFSET {offset}",
                    limit.min(5000)
                ),
                &[app_guid],
            )
            .await?;
        Ok((usize::try_from(total).unwrap_or(0), rows))
    }

    /// Whether the app's feature `name` is on (no row: on).
    pub async fn app_feature(&self, app_guid: &str, name: &str) -> Result<bool> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT enabled FROM app_features WHERE app_guid = $1 AND name = $2",
        )
        .bind(app_guid.to_string())
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(v.is_none_or(|e| e != 0))
    }

    pub async fn set_app_feature(&self, app_guid: &str, name: &str, enabled: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_features (app_guid, name, enabled) VALUES ($1, $2, $3) ON CONFLICT (app_guid, name) DO UPDATE SET enabled = $3",
        )
        .bind(app_guid.to_string())
        .bind(name.to_string())
        .bind(i64::from(enabled))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(droplet: &str, env: Value, web: Option<&str>) -> RevisionContent {
        RevisionContent {
            droplet_guid: droplet.into(),
            env: env.as_object().cloned().unwrap_or_default(),
            commands: BTreeMap::from([("web".to_string(), web.map(str::to_string))]),
        }
    }

    #[test]
    fn descriptions_say_what_changed_as_cf() {
        let a = content("d1", serde_json::json!({"A": "1"}), None);
        let table: &[(Option<&RevisionContent>, RevisionContent, Option<&str>)] = &[
            (None, a.clone(), Some("Initial revision.")),
            (Some(&a), a.clone(), None),
            (Some(&a), content("d2", serde_json::json!({"A": "1"}), None), Some("New droplet deployed.")),
            (Some(&a), content("d1", serde_json::json!({"A": "2"}), None), Some("New environment variables deployed.")),
            (Some(&a), content("d1", serde_json::json!({"A": "1"}), Some("./x")), Some("Custom start command added for 'web' process.")),
            (
                Some(&content("d1", serde_json::json!({"A": "1"}), Some("./x"))),
                content("d2", serde_json::json!({}), Some("./y")),
                Some("New droplet deployed. New environment variables deployed. Custom start command updated for 'web' process."),
            ),
            (
                Some(&content("d1", serde_json::json!({"A": "1"}), Some("./x"))),
                a.clone(),
                Some("Custom start command removed for 'web' process."),
            ),
        ];
        for (prev, next, want) in table {
            assert_eq!(
                describe(*prev, next).as_deref(),
                *want,
                "{prev:?} -> {next:?}"
            );
        }
    }
}
