//! MySQL / MariaDB: per instance a database (utf8mb4); per binding a user
//! `'name'@'%'` with ALL PRIVILEGES on that database only and at most the
//! plan's connections (MAX_USER_CONNECTIONS). Unbind locks the account,
//! kills its connections and drops it.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Executor};

use super::{advertised, credentials, wait_until, Advertised};
use crate::config::{MysqlConfig, PlanConfig};
use crate::names::{binding_user, instance_name, my_grant_db, my_ident, sql_literal};
use crate::Error;

pub struct Mysql {
    pub(crate) pool: MySqlPool,
    at: Advertised,
    pub(crate) plans: Vec<PlanConfig>,
}

fn account(user: &str) -> String {
    format!("{}@'%'", sql_literal(user))
}

impl Mysql {
    pub fn new(c: &MysqlConfig, plans: Vec<PlanConfig>) -> Result<Mysql, Error> {
        let admin = MySqlConnectOptions::from_str(&c.admin_url)
            .map_err(|e| Error::Config(format!("[mysql] admin_url: {e}")))?
            .log_statements(tracing::log::LevelFilter::Off);
        let at = advertised(&c.admin_url, 3306, &c.advertise_host, c.advertise_port)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(admin);
        Ok(Mysql { pool, at, plans })
    }

    pub async fn probe(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn exec(&self, sql: &str) -> Result<(), Error> {
        self.pool.execute(sql).await?;
        Ok(())
    }

    /// Kills the connections whose `column` (USER or DB) is `value` and
    /// waits up to 10 s for them to be gone.
    async fn kill(&self, column: &str, value: &str) -> Result<(), Error> {
        let list = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE {column} = ? AND ID <> CONNECTION_ID()"
        );
        let gone = wait_until(Duration::from_secs(10), || async {
            let ids: Vec<i64> = sqlx::query_scalar(&list)
                .bind(value)
                .fetch_all(&self.pool)
                .await?;
            for id in &ids {
                // Fails when it ended meanwhile (1094, unknown thread):
                // the next round checks again.
                if let Err(e) = self
                    .pool
                    .execute(format!("KILL CONNECTION {id}").as_str())
                    .await
                {
                    tracing::debug!(id, error = %e, "KILL CONNECTION");
                }
            }
            Ok(ids.is_empty())
        })
        .await?;
        if !gone {
            tracing::warn!(%column, %value, "connections still there 10 s after KILL");
        }
        Ok(())
    }

    pub async fn provision(&self, instance_id: &str, _plan: &PlanConfig) -> Result<(), Error> {
        let db = instance_name(instance_id);
        self.exec(&format!(
            "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
            my_ident(&db)
        ))
        .await
    }

    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        password: &str,
        plan: &PlanConfig,
    ) -> Result<Value, Error> {
        let db = instance_name(instance_id);
        let user = binding_user(instance_id, binding_id);
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&db)
        .fetch_one(&self.pool)
        .await?;
        if exists == 0 {
            return Err(Error::Backend(format!("database {db} does not exist")));
        }
        let acct = account(&user);
        let pw = sql_literal(password);
        let limit = plan.connection_limit;
        self.exec(&format!(
            "CREATE USER IF NOT EXISTS {acct} IDENTIFIED BY {pw} WITH MAX_USER_CONNECTIONS {limit}"
        ))
        .await?;
        self.exec(&format!(
            "ALTER USER {acct} IDENTIFIED BY {pw} WITH MAX_USER_CONNECTIONS {limit} ACCOUNT UNLOCK"
        ))
        .await?;
        self.exec(&format!(
            "GRANT ALL PRIVILEGES ON {}.* TO {acct}",
            my_grant_db(&db)
        ))
        .await?;
        Ok(credentials(
            "mysql",
            &self.at,
            &db,
            &format!("/{db}"),
            &user,
            password,
        ))
    }

    async fn drop_user(&self, user: &str) -> Result<(), Error> {
        let acct = account(user);
        self.exec(&format!("ALTER USER IF EXISTS {acct} ACCOUNT LOCK"))
            .await?;
        self.kill("USER", user).await?;
        self.exec(&format!("DROP USER IF EXISTS {acct}")).await
    }

    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> Result<(), Error> {
        self.drop_user(&binding_user(instance_id, binding_id)).await
    }

    pub async fn deprovision(&self, instance_id: &str) -> Result<(), Error> {
        let db = instance_name(instance_id);
        // Users left with a grant on it (bindings not deleted first).
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CAST(User AS CHAR) FROM mysql.db WHERE Db = ? AND User LIKE 'cfu\\_%'",
        )
        .bind(db.replace('_', "\\_"))
        .fetch_all(&self.pool)
        .await?;
        for user in users {
            self.drop_user(&user).await?;
        }
        self.kill("DB", &db).await?;
        self.exec(&format!("DROP DATABASE IF EXISTS {}", my_ident(&db)))
            .await
    }
}
