//! Deployments (CF's `/v3/deployments`, docs/architecture.md §5.12) and
//! the leases that let one controller at a time run the updater. A
//! deployment row is the desired state of both versions while it is
//! ACTIVE; every write after creation is conditional on the `generation`
//! the writer read, so the updater and the API (cancel, continue) never
//! overwrite each other.

use sqlx::FromRow;

use super::pages::Where;
use super::{now, readable_space_clause, App, Process, Result, SpaceScope, Store, Window};

pub const ACTIVE: &str = "ACTIVE";
pub const FINALIZED: &str = "FINALIZED";
pub const DEPLOYING: &str = "DEPLOYING";
pub const PAUSED: &str = "PAUSED";
pub const CANCELING: &str = "CANCELING";
pub const DEPLOYED: &str = "DEPLOYED";
pub const CANCELED: &str = "CANCELED";
pub const SUPERSEDED: &str = "SUPERSEDED";

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Deployment {
    pub guid: String,
    pub app_guid: String,
    pub status_value: String,
    pub status_reason: String,
    pub error: Option<String>,
    pub strategy: String,
    pub max_in_flight: i64,
    /// JSON array of instance weights (percent).
    pub canary_steps: String,
    pub canary_step: i64,
    pub failure_budget: i64,
    pub progress_deadline_s: i64,
    pub droplet_guid: String,
    pub previous_droplet_guid: Option<String>,
    pub revision_guid: Option<String>,
    pub target: i64,
    pub new_bus_id: String,
    pub new_version: String,
    pub new_instances: i64,
    pub old_bus_id: String,
    pub old_version: String,
    /// The app's environment before the deployment (restored on cancel).
    pub old_env: String,
    pub old_instances: i64,
    pub healthy: i64,
    pub failures: i64,
    pub last_healthy_at: Option<String>,
    pub last_progress_at: String,
    pub last_status_change: String,
    /// When `new_instances` / `old_instances` last changed (each unit's
    /// `updated_at` in the desired document).
    pub new_changed_at: String,
    pub old_changed_at: String,
    pub generation: i64,
    pub created_at: String,
    pub updated_at: String,
}

const COLS: &str = "guid, app_guid, status_value, status_reason, error, strategy, max_in_flight, canary_steps, canary_step, failure_budget, progress_deadline_s, droplet_guid, previous_droplet_guid, revision_guid, target, new_bus_id, new_version, new_instances, old_bus_id, old_version, old_env, old_instances, healthy, failures, last_healthy_at, last_progress_at, last_status_change, new_changed_at, old_changed_at, generation, created_at, updated_at";

impl Deployment {
    pub fn active(&self) -> bool {
        self.status_value == ACTIVE
    }

    /// The canary weights (percent), empty for a rolling deployment.
    pub fn steps(&self) -> Vec<u32> {
        serde_json::from_str(&self.canary_steps).unwrap_or_default()
    }

    /// The app as the old version's instances run it: its version,
    /// droplet and environment before the deployment.
    pub fn old_app(&self, app: &App) -> App {
        App {
            version: self.old_version.clone(),
            current_droplet_guid: self.previous_droplet_guid.clone(),
            env: self.old_env.clone(),
            ..app.clone()
        }
    }

    /// The web process as the old version's instances run it.
    pub fn old_process(&self, web: &Process) -> Process {
        Process {
            instances: self.old_instances,
            bus_guid: Some(self.old_bus_id.clone()),
            ..web.clone()
        }
    }

    /// The web process as the new version's instances run it (while the
    /// deployment is active, only `new_instances` of them are desired).
    pub fn new_process(&self, web: &Process) -> Process {
        Process {
            instances: if self.active() {
                self.new_instances
            } else {
                web.instances
            },
            ..web.clone()
        }
    }
}

/// Filters of `GET /v3/deployments`.
#[derive(Debug)]
pub struct DeploymentFilter {
    pub guids: Option<Vec<String>>,
    pub app_guids: Option<Vec<String>>,
    pub states: Option<Vec<String>>,
    pub status_values: Option<Vec<String>>,
    pub status_reasons: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// What a new deployment changes on its app, written with it in one
/// transaction.
pub struct AppChange<'a> {
    pub env: Option<&'a str>,
    /// Process type → command (a rollback restores the revision's).
    pub commands: &'a [(String, Option<String>)],
}

impl Store {
    /// Records a deployment: supersedes the app's active one, moves the
    /// app to the new droplet and version (and `change`), and gives the
    /// web process the new bus id.
    pub async fn create_deployment(&self, d: &Deployment, change: &AppChange<'_>) -> Result<()> {
        let mut tx = self.tx().await?;
        let t = now();
        sqlx::query("UPDATE deployments SET status_value = 'FINALIZED', status_reason = 'SUPERSEDED', last_status_change = $1, updated_at = $1, generation = generation + 1 WHERE app_guid = $2 AND status_value = 'ACTIVE'")
            .bind(t.clone())
            .bind(d.app_guid.clone())
            .execute(&mut *tx)
            .await?;
        let to = Runs {
            version: &d.new_version,
            droplet: Some(&d.droplet_guid),
            env: change.env,
            bus_id: &d.new_bus_id,
        };
        move_app(&mut tx, &d.app_guid, &to, &t).await?;
        for (kind, command) in change.commands {
            sqlx::query("UPDATE processes SET command = $1, updated_at = $2, lock_version = lock_version + 1 WHERE app_guid = $3 AND type = $4")
                .bind(command.clone())
                .bind(t.clone())
                .bind(d.app_guid.clone())
                .bind(kind.clone())
                .execute(&mut *tx)
                .await?;
        }
        insert(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a deployment row as it is, changing nothing else (one that
    /// finished at once: an app that was not started is simply started on
    /// the new droplet).
    pub async fn insert_deployment(&self, d: &Deployment) -> Result<()> {
        let mut tx = self.tx().await?;
        insert(&mut tx, d).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deployment(&self, guid: &str) -> Result<Deployment> {
        self.one(
            &format!("SELECT {COLS} FROM deployments WHERE guid = $1"),
            &[guid],
            "Deployment",
        )
        .await
    }

    /// The app's ACTIVE deployment, if any.
    pub async fn active_deployment(&self, app_guid: &str) -> Result<Option<Deployment>> {
        Ok(self
            .all(
                &format!("SELECT {COLS} FROM deployments WHERE app_guid = $1 AND status_value = 'ACTIVE' ORDER BY created_at DESC, guid"),
                &[app_guid],
            )
            .await?
            .into_iter()
            .next())
    }

    /// Every ACTIVE deployment (the updater's work list).
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>> {
        self.all(
            &format!("SELECT {COLS} FROM deployments WHERE status_value = 'ACTIVE' ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// The deployments whose old version still has instances desired: the
    /// app's active one and those it superseded (until it finishes).
    pub async fn old_units(&self, app_guid: &str) -> Result<Vec<Deployment>> {
        self.all(
            &format!("SELECT {COLS} FROM deployments WHERE app_guid = $1 AND old_instances > 0 AND (status_value = 'ACTIVE' OR status_reason = 'SUPERSEDED') ORDER BY created_at, guid"),
            &[app_guid],
        )
        .await
    }

    /// The deployment whose old version runs under bus id `bus_id`.
    pub async fn old_unit(&self, bus_id: &str) -> Result<Option<Deployment>> {
        Ok(self
            .all(
                &format!("SELECT {COLS} FROM deployments WHERE old_bus_id = $1 AND old_instances > 0 AND (status_value = 'ACTIVE' OR status_reason = 'SUPERSEDED') ORDER BY created_at DESC, guid"),
                &[bus_id],
            )
            .await?
            .into_iter()
            .next())
    }

    /// The process whose instances run under `bus_id` after a deployment.
    pub async fn process_by_bus_guid(&self, bus_id: &str) -> Result<Option<Process>> {
        Ok(self
            .all(
                &format!(
                    "SELECT {} FROM processes WHERE bus_guid = $1",
                    super::PROC_COLS
                ),
                &[bus_id],
            )
            .await?
            .into_iter()
            .next())
    }

    /// One page of deployments matching `f` (oldest first), and how many
    /// match in all.
    pub async fn deployments_page(
        &self,
        f: &DeploymentFilter,
        win: Window,
    ) -> Result<(usize, Vec<Deployment>)> {
        let mut w = Where::new();
        w.any_of("guid", &f.guids)
            .any_of("app_guid", &f.app_guids)
            .any_of("status_value", &f.status_values)
            .any_of("status_reason", &f.status_reasons)
            // The deprecated `state`: DEPLOYING, DEPLOYED, CANCELING, CANCELED.
            .any_of("status_reason", &f.states);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            let u = w.param(user);
            w.and(&format!(
                "app_guid IN (SELECT guid FROM apps WHERE {})",
                readable_space_clause("space_guid", &u)
            ));
        }
        self.page(COLS, "deployments", &w, "created_at, guid", win)
            .await
    }

    /// Writes the updater's (or the API's) changes to an ACTIVE deployment
    /// if nobody wrote it since `d.generation` was read; whether it did.
    /// With a `fence`, only while its lease is still held (the updater).
    pub async fn save_deployment(&self, d: &Deployment, fence: Option<&Fence>) -> Result<bool> {
        let sql = fenced("UPDATE deployments SET status_reason = $1, error = $2, canary_step = $3, new_instances = $4, old_instances = $5, healthy = $6, failures = $7, last_healthy_at = $8, last_progress_at = $9, last_status_change = $10, updated_at = $11, new_changed_at = $14, old_changed_at = $15, generation = generation + 1 WHERE guid = $12 AND generation = $13 AND status_value = 'ACTIVE'", 16, fence);
        let q = sqlx::query(&sql)
            .bind(d.status_reason.clone())
            .bind(d.error.clone())
            .bind(d.canary_step)
            .bind(d.new_instances)
            .bind(d.old_instances)
            .bind(d.healthy)
            .bind(d.failures)
            .bind(d.last_healthy_at.clone())
            .bind(d.last_progress_at.clone())
            .bind(d.last_status_change.clone())
            .bind(now())
            .bind(d.guid.clone())
            .bind(d.generation)
            .bind(d.new_changed_at.clone())
            .bind(d.old_changed_at.clone());
        let r = bind_fence(q, fence).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends an ACTIVE deployment read at `d.generation` as DEPLOYED: the
    /// old versions (its own and those it superseded) are no longer
    /// desired. Whether it ended it.
    pub async fn finish_deployment(&self, d: &Deployment, fence: Option<&Fence>) -> Result<bool> {
        let mut tx = self.tx().await?;
        let t = now();
        let sql = fenced("UPDATE deployments SET status_value = 'FINALIZED', status_reason = 'DEPLOYED', old_instances = 0, healthy = $1, last_healthy_at = $2, last_status_change = $3, updated_at = $3, generation = generation + 1 WHERE guid = $4 AND generation = $5 AND status_value = 'ACTIVE'", 6, fence);
        let q = sqlx::query(&sql)
            .bind(d.healthy)
            .bind(d.last_healthy_at.clone())
            .bind(t.clone())
            .bind(d.guid.clone())
            .bind(d.generation);
        let r = bind_fence(q, fence).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE deployments SET old_instances = 0, updated_at = $1 WHERE app_guid = $2 AND status_reason = 'SUPERSEDED'")
            .bind(t)
            .bind(d.app_guid.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends an ACTIVE deployment read at `d.generation` as CANCELED (with
    /// `d.error` when the platform rolled it back) and puts the app back
    /// on the old version: its version, droplet, environment and bus id.
    /// Whether it ended it.
    pub async fn cancel_deployment(&self, d: &Deployment, fence: Option<&Fence>) -> Result<bool> {
        let mut tx = self.tx().await?;
        let t = now();
        let sql = fenced("UPDATE deployments SET status_value = 'FINALIZED', status_reason = 'CANCELED', error = $1, new_instances = 0, failures = $2, last_status_change = $3, updated_at = $3, generation = generation + 1 WHERE guid = $4 AND generation = $5 AND status_value = 'ACTIVE'", 6, fence);
        let q = sqlx::query(&sql)
            .bind(d.error.clone())
            .bind(d.failures)
            .bind(t.clone())
            .bind(d.guid.clone())
            .bind(d.generation);
        let r = bind_fence(q, fence).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        let to = Runs {
            version: &d.old_version,
            droplet: d.previous_droplet_guid.as_deref(),
            env: Some(&d.old_env),
            bus_id: &d.old_bus_id,
        };
        move_app(&mut tx, &d.app_guid, &to, &t).await?;
        sqlx::query("UPDATE deployments SET old_instances = 0, updated_at = $1 WHERE app_guid = $2 AND status_reason = 'SUPERSEDED' AND old_bus_id <> $3")
            .bind(t)
            .bind(d.app_guid.clone())
            .bind(d.old_bus_id.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The app stopped, restarted or went away: its deployments end where
    /// they are (CANCELED, no old version desired any more). The bus ids
    /// whose instances must stop.
    pub async fn abandon_deployments(&self, app_guid: &str) -> Result<Vec<String>> {
        let olds = self.old_units(app_guid).await?;
        let t = now();
        sqlx::query("UPDATE deployments SET status_value = 'FINALIZED', status_reason = CASE WHEN status_value = 'ACTIVE' THEN 'CANCELED' ELSE status_reason END, old_instances = 0, last_status_change = CASE WHEN status_value = 'ACTIVE' THEN $1 ELSE last_status_change END, updated_at = $1, generation = generation + 1 WHERE app_guid = $2 AND (status_value = 'ACTIVE' OR old_instances > 0)")
            .bind(t)
            .bind(app_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(olds.into_iter().map(|d| d.old_bus_id).collect())
    }

    pub async fn set_deployment_revision(&self, guid: &str, revision_guid: &str) -> Result<()> {
        sqlx::query("UPDATE deployments SET revision_guid = $1 WHERE guid = $2")
            .bind(revision_guid.to_string())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- leases ----

    /// Takes or renews lease `name` for `holder` until `now + ttl_s`
    /// (Unix seconds) when it is free, expired or already `holder`'s.
    /// Returns the lease's generation when `holder` holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<Option<i64>> {
        let expires = now_s.saturating_add(ttl_s);
        sqlx::query("INSERT INTO leases (name, holder, expires_at, generation) VALUES ($1, $2, $3, 1) ON CONFLICT (name) DO NOTHING")
            .bind(name.to_string())
            .bind(holder.to_string())
            .bind(expires)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE leases SET generation = CASE WHEN holder = $1 THEN generation ELSE generation + 1 END, holder = $1, expires_at = $2 WHERE name = $3 AND (holder = $1 OR expires_at < $4)")
            .bind(holder.to_string())
            .bind(expires)
            .bind(name.to_string())
            .bind(now_s)
            .execute(&self.pool)
            .await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, generation FROM leases WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(h, g)| (h == holder).then_some(g)))
    }

    /// Gives lease `name` up (at shutdown) if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name.to_string())
            .bind(holder.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A lease holder's fencing token: a write made with it happens only
/// while `holder` still holds lease `lease` at `generation`. A holder that
/// stalled (a long pause, a partition) past its lease and lost it to
/// another controller changes nothing when it wakes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub generation: i64,
}

/// `sql` (an UPDATE ending in its WHERE clause) with the fence's check,
/// its three parameters numbered from `first`.
pub(crate) fn fenced(sql: &str, first: usize, fence: Option<&Fence>) -> String {
    match fence {
        Some(_) => format!(
            "{sql} AND EXISTS (SELECT 1 FROM leases WHERE name = ${first} AND holder = ${} AND generation = ${})",
            first + 1,
            first + 2
        ),
        None => sql.to_string(),
    }
}

pub(crate) fn bind_fence<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    fence: Option<&Fence>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match fence {
        Some(f) => q
            .bind(f.lease.clone())
            .bind(f.holder.clone())
            .bind(f.generation),
        None => q,
    }
}

async fn insert(tx: &mut sqlx::Transaction<'_, sqlx::Any>, d: &Deployment) -> Result<()> {
    sqlx::query(&format!("INSERT INTO deployments ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"))
        .bind(d.guid.clone())
        .bind(d.app_guid.clone())
        .bind(d.status_value.clone())
        .bind(d.status_reason.clone())
        .bind(d.error.clone())
        .bind(d.strategy.clone())
        .bind(d.max_in_flight)
        .bind(d.canary_steps.clone())
        .bind(d.canary_step)
        .bind(d.failure_budget)
        .bind(d.progress_deadline_s)
        .bind(d.droplet_guid.clone())
        .bind(d.previous_droplet_guid.clone())
        .bind(d.revision_guid.clone())
        .bind(d.target)
        .bind(d.new_bus_id.clone())
        .bind(d.new_version.clone())
        .bind(d.new_instances)
        .bind(d.old_bus_id.clone())
        .bind(d.old_version.clone())
        .bind(d.old_env.clone())
        .bind(d.old_instances)
        .bind(d.healthy)
        .bind(d.failures)
        .bind(d.last_healthy_at.clone())
        .bind(d.last_progress_at.clone())
        .bind(d.last_status_change.clone())
        .bind(d.new_changed_at.clone())
        .bind(d.old_changed_at.clone())
        .bind(d.generation)
        .bind(d.created_at.clone())
        .bind(d.updated_at.clone())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What an app's web instances run: its version, droplet (`None`: keep),
/// environment (`None`: keep) and the web process's bus id.
struct Runs<'a> {
    version: &'a str,
    droplet: Option<&'a str>,
    env: Option<&'a str>,
    bus_id: &'a str,
}

/// Moves the app (and its web process's bus id) to `to`, in `tx`.
async fn move_app(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    app_guid: &str,
    to: &Runs<'_>,
    t: &str,
) -> Result<()> {
    sqlx::query("UPDATE apps SET version = $1, current_droplet_guid = COALESCE($2, current_droplet_guid), env = COALESCE($3, env), state_changed_at = $4, updated_at = $4, lock_version = lock_version + 1 WHERE guid = $5")
        .bind(to.version.to_string())
        .bind(to.droplet.map(str::to_string))
        .bind(to.env.map(str::to_string))
        .bind(t.to_string())
        .bind(app_guid.to_string())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE processes SET bus_guid = $1, updated_at = $2, lock_version = lock_version + 1 WHERE app_guid = $3 AND type = 'web'",
    )
    .bind(to.bus_id.to_string())
    .bind(t.to_string())
    .bind(app_guid.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
