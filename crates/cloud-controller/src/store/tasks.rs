//! One-off tasks (CF's `/v3/tasks`, docs/architecture.md §5.9): created
//! `PENDING`, `RUNNING` once placed on a DEA (`dea_id`), then ended exactly
//! once: `SUCCEEDED`, or `FAILED` with a `failure_reason`; `CANCELING`
//! between a cancel and the DEA's report. Every change of state is a
//! conditional update, so two reports (the DEA's, a lost DEA's sweep)
//! cannot both end a task.

use sqlx::FromRow;

use super::deployments::{bind_fence, fenced, Fence};
use super::{new_guid, now, push_in, readable_space_clause, Result, SpaceScope, Store, StoreError};

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Task {
    pub guid: String,
    pub app_guid: String,
    pub name: String,
    pub command: String,
    pub state: String,
    pub memory_in_mb: i64,
    pub disk_in_mb: i64,
    pub sequence_id: i64,
    pub failure_reason: Option<String>,
    pub droplet_guid: String,
    pub dea_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const PENDING: &str = "PENDING";
pub const RUNNING: &str = "RUNNING";
pub const CANCELING: &str = "CANCELING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";

impl Task {
    pub fn is_done(&self) -> bool {
        self.state == SUCCEEDED || self.state == FAILED
    }
}

const TASK_COLS: &str = "guid, app_guid, name, command, state, memory_in_mb, disk_in_mb, sequence_id, failure_reason, droplet_guid, dea_id, created_at, updated_at";

/// What a new task is.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub app_guid: &'a str,
    pub name: &'a str,
    pub command: &'a str,
    pub memory_in_mb: i64,
    pub disk_in_mb: i64,
    pub droplet_guid: &'a str,
}

/// `GET /v3/tasks` filters (each `None` = any) and the caller's scope.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    pub guids: Option<Vec<String>>,
    pub names: Option<Vec<String>>,
    pub states: Option<Vec<String>>,
    pub app_guids: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    pub sequence_ids: Option<Vec<i64>>,
    pub scope: SpaceScope,
}

impl Store {
    /// A new `PENDING` task with the app's next sequence id.
    pub async fn create_task(&self, t: &NewTask<'_>) -> Result<Task> {
        // Two creations at once may pick the same sequence id: the unique
        // index refuses the second, which tries again.
        for _ in 0..5 {
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(sequence_id), 0) + 1 FROM tasks WHERE app_guid = $1",
            )
            .bind(t.app_guid.to_string())
            .fetch_one(&self.pool)
            .await?;
            let at = now();
            let task = Task {
                guid: new_guid(),
                app_guid: t.app_guid.to_string(),
                name: t.name.to_string(),
                command: t.command.to_string(),
                state: PENDING.into(),
                memory_in_mb: t.memory_in_mb,
                disk_in_mb: t.disk_in_mb,
                sequence_id: next,
                failure_reason: None,
                droplet_guid: t.droplet_guid.to_string(),
                dea_id: None,
                created_at: at.clone(),
                updated_at: at,
            };
            let r = sqlx::query(&format!(
                "INSERT INTO tasks ({TASK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, $10, $10)"
            ))
            .bind(task.guid.clone())
            .bind(task.app_guid.clone())
            .bind(task.name.clone())
            .bind(task.command.clone())
            .bind(task.state.clone())
            .bind(task.memory_in_mb)
            .bind(task.disk_in_mb)
            .bind(task.sequence_id)
            .bind(task.droplet_guid.clone())
            .bind(task.created_at.clone())
            .execute(&self.pool)
            .await;
            match r {
                Ok(_) => return Ok(task),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict("Task sequence id".into()))
    }

    pub async fn task(&self, guid: &str) -> Result<Task> {
        self.one(
            &format!("SELECT {TASK_COLS} FROM tasks WHERE guid = $1"),
            &[guid],
            "Task",
        )
        .await
    }

    /// The task `guid`, if there is one (a bus id may name a task).
    pub async fn task_opt(&self, guid: &str) -> Result<Option<Task>> {
        match self.task(guid).await {
            Ok(t) => Ok(Some(t)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of tasks matching `f` (newest sequence first within an
    /// app, as CF lists them by creation), and how many match in all.
    pub async fn tasks_page(
        &self,
        f: &TaskFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Task>)> {
        let mut cond = String::from("1 = 1");
        let mut binds: Vec<String> = Vec::new();
        push_in(&mut cond, &mut binds, "guid", &f.guids);
        push_in(&mut cond, &mut binds, "name", &f.names);
        push_in(&mut cond, &mut binds, "state", &f.states);
        push_in(&mut cond, &mut binds, "app_guid", &f.app_guids);
        if let Some(ids) = &f.sequence_ids {
            // Parsed integers, so written into the statement.
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            if list.is_empty() {
                cond.push_str(" AND 1 = 0");
            } else {
                cond.push_str(&format!(" AND sequence_id IN ({})", list.join(", ")));
            }
        }
        let mut app_cond = String::from("1 = 1");
        push_in(&mut app_cond, &mut binds, "space_guid", &f.space_guids);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            binds.push(user.clone());
            let n = format!("${}", binds.len());
            app_cond.push_str(&format!(" AND {}", readable_space_clause("space_guid", &n)));
        }
        cond.push_str(&format!(
            " AND app_guid IN (SELECT guid FROM apps WHERE {app_cond})"
        ));
        let refs: Vec<&str> = binds.iter().map(String::as_str).collect();
        let count_sql = format!("SELECT COUNT(*) FROM tasks WHERE {cond}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &refs {
            count = count.bind(b.to_string());
        }
        let total = usize::try_from(count.fetch_one(&self.pool).await?).unwrap_or(0);
        let tasks = self
            .all(
                &format!(
                    "SELECT {TASK_COLS} FROM tasks WHERE {cond} ORDER BY created_at, sequence_id, guid LIMIT {} OFFSET {offset}",
                    limit.min(5000)
                ),
                &refs,
            )
            .await?;
        Ok((total, tasks))
    }

    /// Tasks in one of `states` (the controller's sweep of lost tasks).
    pub async fn tasks_in_states(&self, states: &[&str]) -> Result<Vec<Task>> {
        let marks: Vec<String> = (1..=states.len()).map(|i| format!("${i}")).collect();
        self.all(
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE state IN ({}) ORDER BY created_at, guid",
                marks.join(", ")
            ),
            states,
        )
        .await
    }

    /// The app's tasks that are not done (stopped with the app).
    pub async fn live_tasks_of(&self, app_guid: &str) -> Result<Vec<Task>> {
        self.all(
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE app_guid = $1 AND state IN ('PENDING', 'RUNNING', 'CANCELING') ORDER BY created_at, guid"
            ),
            &[app_guid],
        )
        .await
    }

    /// Moves task `guid` from one of `from` to `to` (with `reason` for
    /// FAILED, `dea_id` for RUNNING); whether it moved.
    pub async fn set_task_state(
        &self,
        guid: &str,
        from: &[&str],
        to: &str,
        reason: Option<&str>,
        dea_id: Option<&str>,
    ) -> Result<bool> {
        let marks: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "UPDATE tasks SET state = $1, failure_reason = COALESCE($2, failure_reason), dea_id = COALESCE($3, dea_id), updated_at = $4 WHERE guid = $5 AND state IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(to.to_string())
            .bind(reason.map(str::to_string))
            .bind(dea_id.map(str::to_string))
            .bind(now())
            .bind(guid.to_string());
        for f in from {
            q = q.bind(f.to_string());
        }
        Ok(q.execute(&self.pool).await?.rows_affected() > 0)
    }

    /// A `RUNNING` or `CANCELING` task its DEA lost marked `FAILED` with
    /// `reason`, only while `fence`'s lease is still held (the sweep): a
    /// controller that stalled past its lease fails nothing.
    pub async fn fail_lost_task(&self, guid: &str, reason: &str, fence: &Fence) -> Result<bool> {
        let sql = fenced(
            "UPDATE tasks SET state = $1, failure_reason = $2, updated_at = $3 WHERE guid = $4 AND state IN ($5, $6)",
            7,
            Some(fence),
        );
        let q = sqlx::query(&sql)
            .bind(FAILED.to_string())
            .bind(reason.to_string())
            .bind(now())
            .bind(guid.to_string())
            .bind(RUNNING.to_string())
            .bind(CANCELING.to_string());
        Ok(bind_fence(q, Some(fence))
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}
