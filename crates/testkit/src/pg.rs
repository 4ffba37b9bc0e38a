//! A Postgres database per test, created fresh and dropped on drop.

use sqlx::Connection;

/// The machine's Postgres (127.0.0.1:5432, user `postgres`, trust).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A uniquely named database; dropped (with its connections) on drop.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    /// Creates the database; fails when Postgres is not reachable.
    pub async fn create() -> anyhow::Result<PgDb> {
        sqlx::any::install_default_drivers();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(PG_ADMIN_URL)
            .await
            .map_err(|e| anyhow::anyhow!("Postgres must be reachable at {PG_ADMIN_URL}: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(PgDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }

    async fn drop_database(name: &str) -> anyhow::Result<()> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(PG_ADMIN_URL).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(())
    }
}

impl Drop for PgDb {
    /// Drops the database from a thread of its own (a runtime of its own),
    /// so it works inside and outside async tests.
    fn drop(&mut self) {
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(PgDb::drop_database(&name))
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("testkit: cannot drop database {}: {e}", self.name);
        }
    }
}
