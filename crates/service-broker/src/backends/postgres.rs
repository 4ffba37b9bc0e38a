//! PostgreSQL: per instance a NOLOGIN role owning a database of the same
//! name (CONNECTION LIMIT from the plan, PUBLIC's rights revoked); per
//! binding a LOGIN role that is a member of the owner and whose sessions
//! start as the owner (`SET role`), so every binding of an instance owns
//! and sees the same tables. Needs PostgreSQL 13 or newer.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use super::{advertised, credentials, wait_until, Advertised};
use crate::config::{PlanConfig, PostgresConfig};
use crate::names::{binding_user, instance_name, pg_ident as q, sql_literal};
use crate::Error;

pub struct Postgres {
    pub(crate) pool: PgPool,
    admin: PgConnectOptions,
    at: Advertised,
    pub(crate) plans: Vec<PlanConfig>,
}

impl Postgres {
    pub fn new(c: &PostgresConfig, plans: Vec<PlanConfig>) -> Result<Postgres, Error> {
        let admin = PgConnectOptions::from_str(&c.admin_url)
            .map_err(|e| Error::Config(format!("[postgresql] admin_url: {e}")))?
            .log_statements(tracing::log::LevelFilter::Off);
        let at = advertised(&c.admin_url, 5432, &c.advertise_host, c.advertise_port)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(admin.clone());
        Ok(Postgres {
            pool,
            admin,
            at,
            plans,
        })
    }

    pub async fn probe(&self) -> Result<(), Error> {
        let ok: bool = sqlx::query_scalar(
            "SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        if !ok {
            return Err(Error::Backend(
                "the admin_url's user may not create roles and databases".into(),
            ));
        }
        Ok(())
    }

    async fn role_exists(&self, role: &str) -> Result<bool, Error> {
        Ok(sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        )
        .bind(role)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn database_exists(&self, db: &str) -> Result<bool, Error> {
        Ok(sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(db)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn exec(&self, sql: &str) -> Result<(), Error> {
        self.pool.execute(sql).await?;
        Ok(())
    }

    /// Runs `sql` unless it fails with SQLSTATE `ignore` (a concurrent
    /// creator won).
    async fn exec_ignoring(&self, sql: &str, ignore: &str) -> Result<(), Error> {
        match self.pool.execute(sql).await {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(ignore) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn provision(&self, instance_id: &str, plan: &PlanConfig) -> Result<(), Error> {
        let db = instance_name(instance_id);
        if !self.role_exists(&db).await? {
            self.exec_ignoring(&format!("CREATE ROLE {} NOLOGIN", q(&db)), "42710")
                .await?;
        }
        if !self.database_exists(&db).await? {
            self.exec_ignoring(
                &format!(
                    "CREATE DATABASE {} OWNER {} CONNECTION LIMIT {}",
                    q(&db),
                    q(&db),
                    plan.connection_limit
                ),
                "42P04",
            )
            .await?;
        }
        self.exec(&format!(
            "ALTER DATABASE {} CONNECTION LIMIT {}",
            q(&db),
            plan.connection_limit
        ))
        .await?;
        self.exec(&format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", q(&db)))
            .await?;
        Ok(())
    }

    /// Terminates the sessions matching `filter` (`usename = $1` or
    /// `datname = $1`) and waits up to 10 s for them to end.
    async fn terminate(&self, column: &str, value: &str) -> Result<(), Error> {
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {column} = $1 AND pid <> pg_backend_pid()"
        );
        let count = format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE {column} = $1 AND pid <> pg_backend_pid()"
        );
        let gone = wait_until(Duration::from_secs(10), || async {
            sqlx::query(&kill).bind(value).execute(&self.pool).await?;
            let n: i64 = sqlx::query_scalar(&count)
                .bind(value)
                .fetch_one(&self.pool)
                .await?;
            Ok(n == 0)
        })
        .await?;
        if !gone {
            tracing::warn!(%column, %value, "sessions still there 10 s after pg_terminate_backend");
        }
        Ok(())
    }

    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        password: &str,
        _plan: &PlanConfig,
    ) -> Result<Value, Error> {
        let db = instance_name(instance_id);
        let user = binding_user(instance_id, binding_id);
        if !self.database_exists(&db).await? {
            return Err(Error::Backend(format!("database {db} does not exist")));
        }
        let attrs = format!("LOGIN INHERIT PASSWORD {}", sql_literal(password));
        if self.role_exists(&user).await? {
            self.exec(&format!("ALTER ROLE {} {attrs}", q(&user)))
                .await?;
        } else {
            self.exec_ignoring(&format!("CREATE ROLE {} {attrs}", q(&user)), "42710")
                .await?;
            self.exec(&format!("ALTER ROLE {} {attrs}", q(&user)))
                .await?;
        }
        self.exec(&format!("GRANT {} TO {}", q(&db), q(&user)))
            .await?;
        // Sessions act as the owner: what one binding creates, the others
        // own too.
        self.exec(&format!(
            "ALTER ROLE {} SET role = {}",
            q(&user),
            sql_literal(&db)
        ))
        .await?;
        Ok(credentials(
            "postgres",
            &self.at,
            &db,
            &format!("/{db}"),
            &user,
            password,
        ))
    }

    async fn drop_login_role(&self, db: &str, user: &str) -> Result<(), Error> {
        if !self.role_exists(user).await? {
            return Ok(());
        }
        self.exec(&format!("ALTER ROLE {} NOLOGIN", q(user)))
            .await?;
        self.terminate("usename", user).await?;
        if self.database_exists(db).await? {
            // REASSIGN/DROP OWNED act in the database connected to.
            let mut conn = self.admin.clone().database(db).connect().await?;
            if self.role_exists(db).await? {
                conn.execute(format!("REASSIGN OWNED BY {} TO {}", q(user), q(db)).as_str())
                    .await?;
            }
            conn.execute(format!("DROP OWNED BY {}", q(user)).as_str())
                .await?;
            conn.close().await?;
        }
        self.exec(&format!("DROP ROLE IF EXISTS {}", q(user))).await
    }

    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> Result<(), Error> {
        let db = instance_name(instance_id);
        let user = binding_user(instance_id, binding_id);
        self.drop_login_role(&db, &user).await
    }

    pub async fn deprovision(&self, instance_id: &str) -> Result<(), Error> {
        let db = instance_name(instance_id);
        if self.database_exists(&db).await? {
            self.exec(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                q(&db)
            ))
            .await?;
            self.terminate("datname", &db).await?;
            self.exec(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", q(&db)))
                .await?;
        }
        // Login roles left (bindings the platform did not delete first).
        let members: Vec<String> = sqlx::query_scalar(
            "SELECT m.rolname::text FROM pg_auth_members a
               JOIN pg_roles m ON m.oid = a.member JOIN pg_roles o ON o.oid = a.roleid
              WHERE o.rolname = $1 AND m.rolname LIKE 'cfu\\_%'",
        )
        .bind(&db)
        .fetch_all(&self.pool)
        .await?;
        for user in members {
            self.drop_login_role(&db, &user).await?;
        }
        self.exec(&format!("DROP ROLE IF EXISTS {}", q(&db))).await
    }
}
