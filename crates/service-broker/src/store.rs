//! The broker's own state in SQLite: instances (with their last
//! operation) and bindings (with their credentials, so an identical
//! repeat or `GET` returns them again). A row is written before the work
//! on the servers starts, so a broker restarted in the middle finds it and
//! finishes (or undoes) it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::Error;

/// `state` of an instance's last operation (OSB's words).
pub const IN_PROGRESS: &str = "in progress";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
/// A deprovisioned instance (kept so polling it answers 410 Gone).
pub const GONE: &str = "gone";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub service_id: String,
    pub plan_id: String,
    pub organization_guid: String,
    pub space_guid: String,
    /// Canonical JSON of the request's `parameters` (`{}` when none).
    pub parameters: String,
    pub state: String,
    /// The operation id handed out in a 202 (`provision-<n>`).
    pub operation: String,
    pub description: String,
    /// Provisioned in the background (accepts_incomplete).
    pub is_async: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    pub instance_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub app_guid: String,
    pub parameters: String,
    /// The password chosen before the work started (the work is redone
    /// with it after a crash).
    pub password: String,
    /// JSON credentials; empty until the binding is ready.
    pub credentials: String,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS instances (
        id TEXT PRIMARY KEY,
        service_id TEXT NOT NULL,
        plan_id TEXT NOT NULL,
        organization_guid TEXT NOT NULL,
        space_guid TEXT NOT NULL,
        parameters TEXT NOT NULL,
        state TEXT NOT NULL,
        operation TEXT NOT NULL,
        description TEXT NOT NULL,
        is_async INTEGER NOT NULL,
        updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bindings (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        service_id TEXT NOT NULL,
        plan_id TEXT NOT NULL,
        app_guid TEXT NOT NULL,
        parameters TEXT NOT NULL,
        password TEXT NOT NULL,
        credentials TEXT NOT NULL,
        updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bindings_instance ON bindings (instance_id)",
];

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl Store {
    /// Opens (creating if missing) the SQLite database at `url`.
    pub async fn open(url: &str) -> Result<Store, Error> {
        if !url.starts_with("sqlite:") {
            return Err(Error::Config(format!(
                "state_url must be a sqlite: URL, not {:?}",
                url.split(':').next().unwrap_or("")
            )));
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn instance(row: &sqlx::sqlite::SqliteRow) -> Result<Instance, Error> {
        Ok(Instance {
            id: row.try_get("id")?,
            service_id: row.try_get("service_id")?,
            plan_id: row.try_get("plan_id")?,
            organization_guid: row.try_get("organization_guid")?,
            space_guid: row.try_get("space_guid")?,
            parameters: row.try_get("parameters")?,
            state: row.try_get("state")?,
            operation: row.try_get("operation")?,
            description: row.try_get("description")?,
            is_async: row.try_get::<i64, _>("is_async")? != 0,
        })
    }

    fn binding(row: &sqlx::sqlite::SqliteRow) -> Result<Binding, Error> {
        Ok(Binding {
            id: row.try_get("id")?,
            instance_id: row.try_get("instance_id")?,
            service_id: row.try_get("service_id")?,
            plan_id: row.try_get("plan_id")?,
            app_guid: row.try_get("app_guid")?,
            parameters: row.try_get("parameters")?,
            password: row.try_get("password")?,
            credentials: row.try_get("credentials")?,
        })
    }

    pub async fn get_instance(&self, id: &str) -> Result<Option<Instance>, Error> {
        let row = sqlx::query("SELECT * FROM instances WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::instance).transpose()
    }

    /// Writes `i` (a new instance, or one replacing a gone or failed one).
    pub async fn put_instance(&self, i: &Instance) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO instances (id, service_id, plan_id, organization_guid, space_guid,
                parameters, state, operation, description, is_async, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET service_id = excluded.service_id,
                plan_id = excluded.plan_id, organization_guid = excluded.organization_guid,
                space_guid = excluded.space_guid, parameters = excluded.parameters,
                state = excluded.state, operation = excluded.operation,
                description = excluded.description, is_async = excluded.is_async,
                updated_at = excluded.updated_at",
        )
        .bind(&i.id)
        .bind(&i.service_id)
        .bind(&i.plan_id)
        .bind(&i.organization_guid)
        .bind(&i.space_guid)
        .bind(&i.parameters)
        .bind(&i.state)
        .bind(&i.operation)
        .bind(&i.description)
        .bind(i64::from(i.is_async))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_instance_state(
        &self,
        id: &str,
        state: &str,
        description: &str,
    ) -> Result<(), Error> {
        sqlx::query("UPDATE instances SET state = ?, description = ?, updated_at = ? WHERE id = ?")
            .bind(state)
            .bind(description)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Instances whose provisioning had not finished (resumed at start).
    pub async fn unfinished_instances(&self) -> Result<Vec<Instance>, Error> {
        let rows = sqlx::query("SELECT * FROM instances WHERE state = ? ORDER BY updated_at")
            .bind(IN_PROGRESS)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::instance).collect()
    }

    pub async fn get_binding(&self, id: &str) -> Result<Option<Binding>, Error> {
        let row = sqlx::query("SELECT * FROM bindings WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::binding).transpose()
    }

    pub async fn bindings_of(&self, instance_id: &str) -> Result<Vec<Binding>, Error> {
        let rows = sqlx::query("SELECT * FROM bindings WHERE instance_id = ? ORDER BY id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::binding).collect()
    }

    pub async fn all_bindings(&self) -> Result<Vec<Binding>, Error> {
        let rows = sqlx::query("SELECT * FROM bindings ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::binding).collect()
    }

    /// Inserts a new binding (credentials empty until ready).
    pub async fn insert_binding(&self, b: &Binding) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO bindings (id, instance_id, service_id, plan_id, app_guid, parameters,
                password, credentials, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&b.id)
        .bind(&b.instance_id)
        .bind(&b.service_id)
        .bind(&b.plan_id)
        .bind(&b.app_guid)
        .bind(&b.parameters)
        .bind(&b.password)
        .bind(&b.credentials)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_binding_credentials(&self, id: &str, credentials: &str) -> Result<(), Error> {
        sqlx::query("UPDATE bindings SET credentials = ?, updated_at = ? WHERE id = ?")
            .bind(credentials)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_binding(&self, id: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM bindings WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
