//! Persistent state: sqlx over the `Any` driver, so one schema and one set of
//! queries serve SQLite and Postgres. Timestamps are RFC 3339 text, ids are
//! uuid text, booleans are BIGINT 0/1.

mod buildpacks;
mod builds;
pub mod deployments;
mod gc;
mod jobs;
mod keys;
mod locate;
mod models;
mod orgs;
mod pages;
mod quotas;
pub mod revisions;
mod roles;
mod security_groups;
pub mod services;
mod states;
pub mod tasks;
mod tokens;
mod users;

pub use buildpacks::{Buildpack, BuildpackFilter, BuildpackUpdate};
pub use deployments::{Deployment, DeploymentFilter};
pub use gc::{BlobVersion, BlobVersions};
pub use jobs::{JobRow, JOB_COMPLETE, JOB_FAILED, JOB_POLLING, JOB_PROCESSING};
pub use keys::{SigningKeyRow, LEGACY_KID};
pub use locate::{Located, Target};
pub use models::*;
pub use orgs::{readable_space_clause, ADMIN_GROUPS, SYSTEM_ORG};
pub use pages::{
    BuildFilter, DomainFilter, DropletFilter, EventFilter, Order, OrgFilter, PackageFilter,
    ProcessFilter, RouteFilter, SpaceFilter, UserFilter, Window,
};
pub use quotas::{Quota, QuotaFilter, QuotaKind, QuotaLimits, Usage, DEFAULT_QUOTA};
pub use revisions::{Revision, RevisionContent};
pub use roles::{Role, RoleFilter};
pub use security_groups::{Lifecycle, SecurityGroup, SecurityGroupFilter};
pub use services::{
    Binding, BindingFilter, Broker, BrokerFilter, CatalogOffering, CatalogPlan, Instance,
    InstanceFilter, NewBinding, NewInstance, Offering, OfferingFilter, Plan, PlanFilter, MANAGED,
    OP_FAILED, OP_INITIAL, OP_IN_PROGRESS, OP_SUCCEEDED, USER_PROVIDED,
};
pub use states::{AppState, BuildState, BuildpackState, DropletState, PackageState, UnknownState};
pub use tasks::{NewTask, Task, TaskFilter};
pub use users::{CcUser, NewUser};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, FromRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Another writer changed the row since it was read (optimistic
    /// locking: `lock_version`).
    #[error("{0} was changed by another request")]
    Stale(&'static str),
    #[error("password hashing: {0}")]
    Hash(String),
}

/// Which spaces a list may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpaceScope {
    All,
    /// Spaces readable by this user (filtered in SQL).
    ReadableBy(String),
}

/// `GET /v3/apps` filters (each `None` = any) and the caller's scope.
#[derive(Debug, Clone)]
pub struct AppFilter {
    pub names: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub scope: SpaceScope,
    /// A column (checked by the caller against a fixed list) and whether
    /// descending; default: creation order.
    pub order_by: Option<(&'static str, bool)>,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// RFC 3339 UTC with microseconds (sorts lexicographically).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Appends ` AND col IN ($n, ...)` for a list filter (`None`: any value;
/// empty: none), binding the values after those in `binds`.
pub(crate) fn push_in(
    cond: &mut String,
    binds: &mut Vec<String>,
    col: &str,
    vals: &Option<Vec<String>>,
) {
    let Some(vals) = vals else {
        return;
    };
    if vals.is_empty() {
        cond.push_str(" AND 1 = 0");
        return;
    }
    let marks: Vec<String> = vals
        .iter()
        .map(|v| {
            binds.push(v.clone());
            format!("${}", binds.len())
        })
        .collect();
    cond.push_str(&format!(" AND {col} IN ({})", marks.join(", ")));
}

fn unique(e: sqlx::Error, what: impl Into<String>) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.into());
        }
    }
    StoreError::Db(e)
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// SQLite: transactions start with `BEGIN IMMEDIATE` ([`Store::tx`]).
    sqlite: bool,
}

const APP_COLS: &str = "guid, name, space_guid, state, version, buildpack, stack, env, current_droplet_guid, state_changed_at, created_at, updated_at, lock_version";
/// The columns a new process row is written with (the health-check
/// columns of 0008 take their defaults).
const PROC_INSERT_COLS: &str = "guid, app_guid, type, command, instances, memory_in_mb, disk_in_mb, health_check_type, health_check_timeout, health_check_endpoint, created_at, updated_at";
pub(crate) const PROC_COLS: &str = "guid, app_guid, type, command, instances, memory_in_mb, disk_in_mb, health_check_type, health_check_timeout, health_check_endpoint, created_at, updated_at, health_check_invocation_timeout, health_check_interval, readiness_type, readiness_endpoint, readiness_invocation_timeout, readiness_interval, log_rate_limit, bus_guid, lock_version";
/// A new app's memory when the controller's config does not say
/// (`default_app_memory_mb`; CF's default, 1G).
pub const DEFAULT_APP_MEMORY_MB: u64 = 1024;

const PKG_COLS: &str = "guid, app_guid, type, state, sha256, error, created_at, updated_at";
const BUILD_COLS: &str = "guid, app_guid, package_guid, state, error, droplet_guid, uploaded_sha256, created_by_guid, created_by_name, created_at, updated_at, dea_id, staging_deadline, error_id";
const DROPLET_COLS: &str = "guid, app_guid, package_guid, state, sha256, process_types, buildpack, stack, error, created_at, updated_at, buildpacks, config_vars";
const ROUTE_COLS: &str = "guid, host, domain_guid, path, space_guid, created_at, updated_at";
const EVENT_COLS: &str = "guid, type, actor_guid, actor_type, actor_name, target_guid, target_type, target_name, data, space_guid, organization_guid, created_at";

impl Store {
    /// Connects and runs the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 10 })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool, sqlite })
    }

    /// A transaction that will write. SQLite: `BEGIN IMMEDIATE`, which
    /// takes the write lock at the start (waiting the busy timeout for it).
    /// A plain (deferred) `BEGIN` that reads and then writes must upgrade
    /// its read snapshot to the write lock, and when another connection
    /// wrote in between (the deployment updater's lease, every 500 ms)
    /// SQLite fails that upgrade at once with "database is locked",
    /// without waiting.
    async fn tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn all<T>(&self, sql: &str, binds: &[&str]) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut q = sqlx::query_as::<_, T>(sql);
        for b in binds {
            q = q.bind(b.to_string());
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    async fn one<T>(&self, sql: &str, binds: &[&str], what: &'static str) -> Result<T>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.all(sql, binds)
            .await?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound(what))
    }

    // ---- settings ----

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2")
            .bind(key.to_string())
            .bind(value.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Returns the stored value, inserting `value` first if the key is new.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key.to_string())
        .bind(value.to_string())
        .execute(&self.pool)
        .await?;
        let row: (String,) = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }

    // ---- apps and processes ----

    /// Creates an app (STOPPED) with its web process of
    /// [`DEFAULT_APP_MEMORY_MB`].
    pub async fn create_app(
        &self,
        name: &str,
        space_guid: &str,
        buildpack: Option<&str>,
        stack: &str,
        env: &str,
    ) -> Result<App> {
        self.create_app_sized(
            name,
            space_guid,
            buildpack,
            stack,
            env,
            DEFAULT_APP_MEMORY_MB,
        )
        .await
    }

    /// Creates an app (STOPPED) with its web process of `memory_mb`.
    pub async fn create_app_sized(
        &self,
        name: &str,
        space_guid: &str,
        buildpack: Option<&str>,
        stack: &str,
        env: &str,
        memory_mb: u64,
    ) -> Result<App> {
        self.space(space_guid).await?;
        let t = now();
        let app = App {
            guid: new_guid(),
            name: name.to_string(),
            space_guid: space_guid.to_string(),
            state: AppState::Stopped,
            version: new_guid(),
            buildpack: buildpack.map(str::to_string),
            stack: stack.to_string(),
            env: env.to_string(),
            current_droplet_guid: None,
            state_changed_at: t.clone(),
            created_at: t.clone(),
            updated_at: t.clone(),
            lock_version: 0,
        };
        let mut tx = self.tx().await?;
        sqlx::query(&format!("INSERT INTO apps ({APP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10, 0)"))
            .bind(app.guid.clone())
            .bind(app.name.clone())
            .bind(app.space_guid.clone())
            .bind(app.state.as_str())
            .bind(app.version.clone())
            .bind(app.buildpack.clone())
            .bind(app.stack.clone())
            .bind(app.env.clone())
            .bind(None::<String>)
            .bind(t.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, format!("App with the name '{name}'")))?;
        sqlx::query(&format!("INSERT INTO processes ({PROC_INSERT_COLS}) VALUES ($1, $2, 'web', NULL, 1, $4, 1024, 'port', NULL, NULL, $3, $3)"))
            .bind(new_guid())
            .bind(app.guid.clone())
            .bind(t)
            .bind(i64::try_from(memory_mb.max(1)).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(app)
    }

    /// One page of apps matching `f`, and how many match in all; filtered,
    /// counted and cut in SQL.
    pub async fn apps_page(
        &self,
        f: &AppFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<App>)> {
        let mut cond = String::from("1 = 1");
        let mut binds: Vec<String> = Vec::new();
        push_in(&mut cond, &mut binds, "name", &f.names);
        push_in(&mut cond, &mut binds, "space_guid", &f.space_guids);
        push_in(&mut cond, &mut binds, "guid", &f.guids);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            binds.push(user.clone());
            let n = format!("${}", binds.len());
            cond.push_str(&format!(" AND {}", readable_space_clause("space_guid", &n)));
        }
        let refs: Vec<&str> = binds.iter().map(String::as_str).collect();
        let count_sql = format!("SELECT COUNT(*) FROM apps WHERE {cond}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &refs {
            count = count.bind(b.to_string());
        }
        let total = usize::try_from(count.fetch_one(&self.pool).await?).unwrap_or(0);
        let apps = self
            .all(
                &format!(
                    "SELECT {APP_COLS} FROM apps WHERE {cond} ORDER BY {order} LIMIT {} OFFSET {}",
                    limit.min(5000),
                    offset,
                    order = match f.order_by {
                        Some((col, true)) => format!("{col} DESC, guid DESC"),
                        Some((col, false)) => format!("{col}, guid"),
                        None => "created_at, guid".to_string(),
                    }
                ),
                &refs,
            )
            .await?;
        Ok((total, apps))
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        self.all(
            &format!("SELECT {APP_COLS} FROM apps ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    pub async fn app(&self, guid: &str) -> Result<App> {
        self.one(
            &format!("SELECT {APP_COLS} FROM apps WHERE guid = $1"),
            &[guid],
            "App",
        )
        .await
    }

    /// The write of every mutable column of `app` (and a new
    /// `updated_at`), only at the version it was read at; `None` when the
    /// row is gone or was written since.
    async fn write_app<'e, X>(x: X, app: &App) -> Result<Option<App>>
    where
        X: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let mut app = app.clone();
        app.updated_at = now();
        let r = sqlx::query("UPDATE apps SET name = $1, state = $2, version = $3, buildpack = $4, stack = $5, env = $6, current_droplet_guid = $7, state_changed_at = $8, updated_at = $9, lock_version = lock_version + 1 WHERE guid = $10 AND lock_version = $11")
            .bind(app.name.clone())
            .bind(app.state.as_str())
            .bind(app.version.clone())
            .bind(app.buildpack.clone())
            .bind(app.stack.clone())
            .bind(app.env.clone())
            .bind(app.current_droplet_guid.clone())
            .bind(app.state_changed_at.clone())
            .bind(app.updated_at.clone())
            .bind(app.guid.clone())
            .bind(app.lock_version)
            .execute(x)
            .await
            .map_err(|e| unique(e, format!("App with the name '{}'", app.name)))?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        app.lock_version += 1;
        Ok(Some(app))
    }

    /// Writes `app` back, only if no one wrote it since it was read (its
    /// `lock_version` is still the row's): else [`StoreError::Stale`] and
    /// nothing is written. A read-modify-write goes through
    /// [`Store::modify_app`].
    pub async fn update_app(&self, app: &App) -> Result<App> {
        match Self::write_app(&self.pool, app).await? {
            Some(app) => Ok(app),
            None => {
                self.app(&app.guid).await?;
                Err(StoreError::Stale("App"))
            }
        }
    }

    /// Row `guid` of `table` read in `tx` and locked until it ends: `FOR
    /// UPDATE` on Postgres; on SQLite, `BEGIN IMMEDIATE` ([`Store::tx`])
    /// has locked the whole database already.
    async fn locked<T>(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cols: &str,
        table: &str,
        guid: &str,
        what: &'static str,
    ) -> Result<T>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let lock = if self.sqlite { "" } else { " FOR UPDATE" };
        sqlx::query_as(&format!("SELECT {cols} FROM {table} WHERE guid = $1{lock}"))
            .bind(guid.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound(what))
    }

    /// Read-modify-write of an app that loses no concurrent update: in one
    /// transaction, reads the app with its row locked (other writers of
    /// it, in this controller or another on the same database, wait),
    /// lets `change` modify it (or refuse with its own error: nothing is
    /// written) and writes it back.
    pub async fn modify_app<E: From<StoreError>>(
        &self,
        guid: &str,
        change: impl FnOnce(&mut App) -> std::result::Result<(), E>,
    ) -> std::result::Result<App, E> {
        let mut tx = self.tx().await?;
        let mut app: App = self.locked(&mut tx, APP_COLS, "apps", guid, "App").await?;
        change(&mut app)?;
        let app = Self::write_app(&mut *tx, &app)
            .await?
            .ok_or(StoreError::Stale("App"))?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(app)
    }

    /// Deletes the app and everything that belongs to it.
    pub async fn delete_app(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        for table in [
            "processes",
            "packages",
            "builds",
            "droplets",
            "route_destinations",
            "tasks",
            "revisions",
            "app_features",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_guid = $1"))
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM apps WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("App"));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn processes_of(&self, app_guid: &str) -> Result<Vec<Process>> {
        self.all(
            &format!(
                "SELECT {PROC_COLS} FROM processes WHERE app_guid = $1 ORDER BY created_at, guid"
            ),
            &[app_guid],
        )
        .await
    }

    pub async fn process(&self, guid: &str) -> Result<Process> {
        self.one(
            &format!("SELECT {PROC_COLS} FROM processes WHERE guid = $1"),
            &[guid],
            "Process",
        )
        .await
    }

    pub async fn web_process(&self, app_guid: &str) -> Result<Process> {
        self.one(
            &format!("SELECT {PROC_COLS} FROM processes WHERE app_guid = $1 AND type = 'web'"),
            &[app_guid],
            "Process",
        )
        .await
    }

    /// An app's process of type `kind`, created when the app has none with
    /// CF's defaults for a type other than web: 0 instances, the `process`
    /// health check, the web process's memory and disk.
    pub async fn ensure_process(&self, app_guid: &str, kind: &str) -> Result<Process> {
        let procs = self.processes_of(app_guid).await?;
        if let Some(p) = procs.iter().find(|p| p.kind == kind) {
            return Ok(p.clone());
        }
        let web = procs.iter().find(|p| p.kind == "web");
        let t = now();
        let p = Process {
            guid: new_guid(),
            app_guid: app_guid.to_string(),
            kind: kind.to_string(),
            command: None,
            instances: 0,
            memory_in_mb: web.map_or(1024, |w| w.memory_in_mb),
            disk_in_mb: web.map_or(1024, |w| w.disk_in_mb),
            health_check_type: "process".into(),
            health_check_timeout: None,
            health_check_endpoint: None,
            created_at: t.clone(),
            updated_at: t,
            ..Process::defaults()
        };
        sqlx::query(&format!("INSERT INTO processes ({PROC_INSERT_COLS}) VALUES ($1, $2, $3, NULL, 0, $4, $5, 'process', NULL, NULL, $6, $6) ON CONFLICT (app_guid, type) DO NOTHING"))
            .bind(p.guid.clone())
            .bind(p.app_guid.clone())
            .bind(p.kind.clone())
            .bind(p.memory_in_mb)
            .bind(p.disk_in_mb)
            .bind(p.created_at.clone())
            .execute(&self.pool)
            .await?;
        // Another request may have created it meanwhile: read what is stored.
        self.processes_of(app_guid)
            .await?
            .into_iter()
            .find(|p| p.kind == kind)
            .ok_or(StoreError::NotFound("Process"))
    }

    /// The app and process that a bus id names: an app's guid names its
    /// web process, a process guid any other process (`Process::bus_id`).
    pub async fn unit(&self, bus_id: &str) -> Result<(App, Process)> {
        // A deployment's units first: the web process's new bus id, then
        // an old version still desired (docs/architecture.md §5.12).
        if let Some(web) = self.process_by_bus_guid(bus_id).await? {
            let app = self.app(&web.app_guid).await?;
            return Ok(match self.active_deployment(&app.guid).await? {
                Some(d) => (app, d.new_process(&web)),
                None => (app, web),
            });
        }
        if let Some(d) = self.old_unit(bus_id).await? {
            let app = self.app(&d.app_guid).await?;
            let web = self.web_process(&app.guid).await?;
            return Ok((d.old_app(&app), d.old_process(&web)));
        }
        match self.app(bus_id).await {
            Ok(app) => {
                let web = self.web_process(&app.guid).await?;
                if web.bus_id() != app.guid {
                    return Err(StoreError::NotFound("Process"));
                }
                Ok((app, web))
            }
            Err(StoreError::NotFound(_)) => {
                let p = self.process(bus_id).await?;
                if p.kind == "web" {
                    return Err(StoreError::NotFound("Process"));
                }
                Ok((self.app(&p.app_guid).await?, p))
            }
            Err(e) => Err(e),
        }
    }

    /// The write of every mutable column of `p` (as [`Store::write_app`]).
    async fn write_process<'e, X>(x: X, p: &Process) -> Result<Option<Process>>
    where
        X: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let mut p = p.clone();
        p.updated_at = now();
        let r = sqlx::query("UPDATE processes SET command = $1, instances = $2, memory_in_mb = $3, disk_in_mb = $4, health_check_type = $5, health_check_timeout = $6, health_check_endpoint = $7, updated_at = $8, health_check_invocation_timeout = $10, health_check_interval = $11, readiness_type = $12, readiness_endpoint = $13, readiness_invocation_timeout = $14, readiness_interval = $15, log_rate_limit = $16, lock_version = lock_version + 1 WHERE guid = $9 AND lock_version = $17")
            .bind(p.command.clone())
            .bind(p.instances)
            .bind(p.memory_in_mb)
            .bind(p.disk_in_mb)
            .bind(p.health_check_type.clone())
            .bind(p.health_check_timeout)
            .bind(p.health_check_endpoint.clone())
            .bind(p.updated_at.clone())
            .bind(p.guid.clone())
            .bind(p.health_check_invocation_timeout)
            .bind(p.health_check_interval)
            .bind(p.readiness_type.clone())
            .bind(p.readiness_endpoint.clone())
            .bind(p.readiness_invocation_timeout)
            .bind(p.readiness_interval)
            .bind(p.log_rate_limit)
            .bind(p.lock_version)
            .execute(x)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        p.lock_version += 1;
        Ok(Some(p))
    }

    /// Writes `p` back, only if no one wrote it since it was read (as
    /// [`Store::update_app`]); a read-modify-write goes through
    /// [`Store::modify_process`].
    pub async fn update_process(&self, p: &Process) -> Result<Process> {
        match Self::write_process(&self.pool, p).await? {
            Some(p) => Ok(p),
            None => {
                self.process(&p.guid).await?;
                Err(StoreError::Stale("Process"))
            }
        }
    }

    /// [`Store::modify_app`] for a process.
    pub async fn modify_process<E: From<StoreError>>(
        &self,
        guid: &str,
        change: impl FnOnce(&mut Process) -> std::result::Result<(), E>,
    ) -> std::result::Result<Process, E> {
        let mut tx = self.tx().await?;
        let mut p: Process = self
            .locked(&mut tx, PROC_COLS, "processes", guid, "Process")
            .await?;
        change(&mut p)?;
        let p = Self::write_process(&mut *tx, &p)
            .await?
            .ok_or(StoreError::Stale("Process"))?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(p)
    }

    // ---- packages ----

    pub async fn create_package(&self, app_guid: &str) -> Result<Package> {
        let t = now();
        let p = Package {
            guid: new_guid(),
            app_guid: app_guid.to_string(),
            kind: "bits".into(),
            state: PackageState::AwaitingUpload,
            sha256: None,
            error: None,
            created_at: t.clone(),
            updated_at: t,
        };
        sqlx::query(&format!(
            "INSERT INTO packages ({PKG_COLS}) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $5)"
        ))
        .bind(p.guid.clone())
        .bind(p.app_guid.clone())
        .bind(p.kind.clone())
        .bind(p.state.as_str())
        .bind(p.created_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(p)
    }

    pub async fn package(&self, guid: &str) -> Result<Package> {
        self.one(
            &format!("SELECT {PKG_COLS} FROM packages WHERE guid = $1"),
            &[guid],
            "Package",
        )
        .await
    }

    pub async fn packages_of(&self, app_guid: &str) -> Result<Vec<Package>> {
        self.all(
            &format!(
                "SELECT {PKG_COLS} FROM packages WHERE app_guid = $1 ORDER BY created_at, guid"
            ),
            &[app_guid],
        )
        .await
    }

    /// Sets a package's state.
    pub async fn set_package_state(
        &self,
        guid: &str,
        state: PackageState,
        sha256: Option<&str>,
        error: Option<&str>,
    ) -> Result<Package> {
        sqlx::query("UPDATE packages SET state = $1, sha256 = $2, error = $3, updated_at = $4 WHERE guid = $5")
            .bind(state.as_str())
            .bind(sha256.map(str::to_string))
            .bind(error.map(str::to_string))
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        self.package(guid).await
    }

    // ---- droplets ----

    pub async fn droplet(&self, guid: &str) -> Result<Droplet> {
        self.one(
            &format!("SELECT {DROPLET_COLS} FROM droplets WHERE guid = $1"),
            &[guid],
            "Droplet",
        )
        .await
    }

    pub async fn droplets_of(&self, app_guid: &str) -> Result<Vec<Droplet>> {
        self.all(
            &format!(
                "SELECT {DROPLET_COLS} FROM droplets WHERE app_guid = $1 ORDER BY created_at, guid"
            ),
            &[app_guid],
        )
        .await
    }

    // ---- routes ----

    pub async fn create_route(
        &self,
        host: &str,
        domain_guid: &str,
        path: &str,
        space_guid: &str,
    ) -> Result<Route> {
        let domain = self.domain(domain_guid).await?;
        self.space(space_guid).await?;
        let t = now();
        let r = Route {
            guid: new_guid(),
            host: host.to_string(),
            domain_guid: domain_guid.to_string(),
            path: path.to_string(),
            space_guid: space_guid.to_string(),
            created_at: t.clone(),
            updated_at: t,
        };
        let url = RouteUrl {
            route: r.clone(),
            domain: domain.name,
        }
        .url();
        sqlx::query(&format!(
            "INSERT INTO routes ({ROUTE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $6)"
        ))
        .bind(r.guid.clone())
        .bind(r.host.clone())
        .bind(r.domain_guid.clone())
        .bind(r.path.clone())
        .bind(r.space_guid.clone())
        .bind(r.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, format!("Route {url}")))?;
        Ok(r)
    }

    pub async fn routes(&self) -> Result<Vec<Route>> {
        self.all(
            &format!("SELECT {ROUTE_COLS} FROM routes ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    pub async fn route(&self, guid: &str) -> Result<Route> {
        self.one(
            &format!("SELECT {ROUTE_COLS} FROM routes WHERE guid = $1"),
            &[guid],
            "Route",
        )
        .await
    }

    pub async fn delete_route(&self, guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM route_destinations WHERE route_guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM routes WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Route"));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn destinations(&self, route_guid: &str) -> Result<Vec<RouteDestination>> {
        self.all("SELECT guid, route_guid, app_guid, process_type, created_at FROM route_destinations WHERE route_guid = $1 ORDER BY created_at, guid", &[route_guid]).await
    }

    pub async fn all_destinations(&self) -> Result<Vec<RouteDestination>> {
        self.all("SELECT guid, route_guid, app_guid, process_type, created_at FROM route_destinations ORDER BY created_at, guid", &[]).await
    }

    /// Adds a destination unless the app is already one (idempotent).
    pub async fn add_destination(&self, route_guid: &str, app_guid: &str) -> Result<()> {
        sqlx::query("INSERT INTO route_destinations (guid, route_guid, app_guid, process_type, created_at) VALUES ($1, $2, $3, 'web', $4) ON CONFLICT (route_guid, app_guid, process_type) DO NOTHING")
            .bind(new_guid())
            .bind(route_guid.to_string())
            .bind(app_guid.to_string())
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a destination by its guid; returns it.
    pub async fn remove_destination(
        &self,
        route_guid: &str,
        dest_guid: &str,
    ) -> Result<RouteDestination> {
        let d: RouteDestination = self
            .one("SELECT guid, route_guid, app_guid, process_type, created_at FROM route_destinations WHERE route_guid = $1 AND guid = $2", &[route_guid, dest_guid], "Destination")
            .await?;
        sqlx::query("DELETE FROM route_destinations WHERE guid = $1")
            .bind(dest_guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(d)
    }

    /// The routes mapped to an app, with domain names.
    pub async fn app_routes(&self, app_guid: &str) -> Result<Vec<RouteUrl>> {
        let routes: Vec<Route> = self
            .all("SELECT r.guid, r.host, r.domain_guid, r.path, r.space_guid, r.created_at, r.updated_at FROM routes r JOIN route_destinations d ON d.route_guid = r.guid WHERE d.app_guid = $1 ORDER BY r.created_at, r.guid", &[app_guid])
            .await?;
        let domains = self.domains().await?;
        let mut out = Vec::new();
        for route in routes {
            if out.iter().any(|u: &RouteUrl| u.route.guid == route.guid) {
                continue;
            }
            let domain = domains
                .iter()
                .find(|d| d.guid == route.domain_guid)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            out.push(RouteUrl { route, domain });
        }
        Ok(out)
    }

    // ---- audit events ----

    pub async fn add_event(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query(&format!("INSERT INTO audit_events ({EVENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
            .bind(e.guid.clone())
            .bind(e.kind.clone())
            .bind(e.actor_guid.clone())
            .bind(e.actor_type.clone())
            .bind(e.actor_name.clone())
            .bind(e.target_guid.clone())
            .bind(e.target_type.clone())
            .bind(e.target_name.clone())
            .bind(e.data.clone())
            .bind(e.space_guid.clone())
            .bind(e.organization_guid.clone())
            .bind(e.created_at.clone())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn events(&self) -> Result<Vec<AuditEvent>> {
        self.all(
            &format!("SELECT {EVENT_COLS} FROM audit_events ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// Events of one kind about one target since an RFC 3339 time, oldest first.
    pub async fn target_events_since(
        &self,
        target_guid: &str,
        kind: &str,
        since: &str,
    ) -> Result<Vec<AuditEvent>> {
        self.all(
            &format!("SELECT {EVENT_COLS} FROM audit_events WHERE target_guid = $1 AND type = $2 AND created_at >= $3 ORDER BY created_at, guid"),
            &[target_guid, kind, since],
        )
        .await
    }

    pub async fn event(&self, guid: &str) -> Result<AuditEvent> {
        self.one(
            &format!("SELECT {EVENT_COLS} FROM audit_events WHERE guid = $1"),
            &[guid],
            "Event",
        )
        .await
    }
}
