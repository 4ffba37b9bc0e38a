//! Asynchronous jobs (`/v3/jobs/:guid`) that talk to service brokers
//! (docs/architecture.md §5.11): written before they run, updated as they
//! go, resumed at start-up while PROCESSING or POLLING.

use sqlx::FromRow;

use super::{new_guid, now, Result, Store};

/// A job's row (`/v3/jobs/:guid`).
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct JobRow {
    pub guid: String,
    pub operation: String,
    /// PROCESSING, POLLING, COMPLETE or FAILED.
    pub state: String,
    /// `service_instances`, `service_credential_bindings`, `service_brokers`.
    pub resource_type: String,
    pub resource_guid: String,
    /// JSON array of `{code, title, detail}`.
    pub errors: String,
    pub warnings: String,
    pub created_at: String,
    pub updated_at: String,
}

const JOB_COLS: &str =
    "guid, operation, state, resource_type, resource_guid, errors, warnings, created_at, updated_at";

pub const JOB_PROCESSING: &str = "PROCESSING";
pub const JOB_POLLING: &str = "POLLING";
pub const JOB_COMPLETE: &str = "COMPLETE";
pub const JOB_FAILED: &str = "FAILED";

impl Store {
    pub async fn create_job(
        &self,
        operation: &str,
        resource_type: &str,
        resource_guid: &str,
    ) -> Result<JobRow> {
        let at = now();
        let j = JobRow {
            guid: new_guid(),
            operation: operation.into(),
            state: JOB_PROCESSING.into(),
            resource_type: resource_type.into(),
            resource_guid: resource_guid.into(),
            errors: "[]".into(),
            warnings: "[]".into(),
            created_at: at.clone(),
            updated_at: at,
        };
        sqlx::query(&format!(
            "INSERT INTO jobs ({JOB_COLS}) VALUES ($1, $2, $3, $4, $5, '[]', '[]', $6, $6)"
        ))
        .bind(j.guid.clone())
        .bind(j.operation.clone())
        .bind(j.state.clone())
        .bind(j.resource_type.clone())
        .bind(j.resource_guid.clone())
        .bind(j.created_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(j)
    }

    /// A job that is already COMPLETE (work done before answering).
    pub async fn create_complete_job(&self, operation: &str) -> Result<JobRow> {
        let at = now();
        let j = JobRow {
            guid: new_guid(),
            operation: operation.into(),
            state: JOB_COMPLETE.into(),
            resource_type: String::new(),
            resource_guid: String::new(),
            errors: "[]".into(),
            warnings: "[]".into(),
            created_at: at.clone(),
            updated_at: at,
        };
        sqlx::query(&format!(
            "INSERT INTO jobs ({JOB_COLS}) VALUES ($1, $2, $3, '', '', '[]', '[]', $4, $4)"
        ))
        .bind(j.guid.clone())
        .bind(j.operation.clone())
        .bind(j.state.clone())
        .bind(j.created_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(j)
    }

    pub async fn job(&self, guid: &str) -> Result<Option<JobRow>> {
        Ok(self
            .all(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE guid = $1"),
                &[guid],
            )
            .await?
            .into_iter()
            .next())
    }

    pub async fn set_job_state(&self, guid: &str, state: &str, errors: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET state = $1, errors = $2, updated_at = $3 WHERE guid = $4")
            .bind(state.to_string())
            .bind(errors.to_string())
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs not yet COMPLETE or FAILED (resumed at start-up).
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        self.all(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE state IN ('PROCESSING', 'POLLING') ORDER BY created_at"),
            &[],
        )
        .await
    }

    /// Forgets finished jobs older than `before` (RFC 3339).
    pub async fn prune_jobs(&self, before: &str) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('COMPLETE', 'FAILED') AND updated_at < $1",
        )
        .bind(before.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}
