//! The shared blobstore (docs/architecture.md §6.9): every controller's
//! blobs, build caches and resource-cache files kept as Postgres large
//! objects, so that losing a controller host loses nothing and any
//! controller serves what another stored.
//!
//! One table names them: `shared_blobs (key, loid, size, touched_at)`,
//! `key` being the file's path in a local blobstore (`blobs/<sha256>`,
//! `buildpack_cache/<app>.tgz`, `resources/<sha1>`). A large object is
//! written inside the transaction that inserts its row: a write that fails
//! or loses a race leaves nothing behind. `touched_at` (Unix seconds) is the
//! shared copy of a local file's mtime: set when stored or stored again,
//! and what the garbage collector's grace period runs from.

use std::path::Path;

use sha2::{Digest, Sha256};
use sqlx::postgres::{types::Oid, PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes moved per `lo_put` / `lo_get` call.
const CHUNK: usize = 1 << 20;
/// Serialises the table's creation among controllers starting at once.
const SCHEMA_LOCK: i64 = 0x7061_6173_626c_6f62; // "paasblob"

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared blobstore: {0}")]
    Db(#[from] sqlx::Error),
    #[error("shared blobstore: {0}")]
    Io(#[from] std::io::Error),
    /// A stored object whose bytes do not match its row or its name.
    #[error("shared blobstore: {key} is corrupt ({why})")]
    Corrupt { key: String, why: String },
}

/// A stored object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub touched_at: i64,
}

#[derive(Debug, Clone)]
pub struct SharedBlobs {
    pool: PgPool,
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

impl SharedBlobs {
    /// Connects to `url` (`postgres://...`) and creates the table if it is
    /// missing.
    pub async fn connect(url: &str) -> Result<SharedBlobs, SharedError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS shared_blobs (key TEXT PRIMARY KEY, loid OID NOT NULL, size BIGINT NOT NULL, touched_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SharedBlobs { pool })
    }

    /// Stores `path` under `key` unless the key is already there (content
    /// addressed: same key, same bytes), in which case its `touched_at` is
    /// refreshed. Whether it was written.
    pub async fn put_once(&self, key: &str, path: &Path) -> Result<bool, SharedError> {
        if self.touch(key).await? {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        let (loid, size) = write_object(&mut tx, path).await?;
        let inserted = sqlx::query(
            "INSERT INTO shared_blobs (key, loid, size, touched_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(loid)
        .bind(size)
        .bind(now_s())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Another controller stored it meanwhile: the rollback drops
            // this copy's large object.
            tx.rollback().await?;
            self.touch(key).await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores `path` under `key`, replacing what was there (a build cache).
    pub async fn put_replace(&self, key: &str, path: &Path) -> Result<(), SharedError> {
        let mut tx = self.pool.begin().await?;
        let (loid, size) = write_object(&mut tx, path).await?;
        let old: Option<Oid> =
            sqlx::query_scalar("SELECT loid FROM shared_blobs WHERE key = $1 FOR UPDATE")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO shared_blobs (key, loid, size, touched_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET loid = EXCLUDED.loid, size = EXCLUDED.size, touched_at = EXCLUDED.touched_at",
        )
        .bind(key)
        .bind(loid)
        .bind(size)
        .bind(now_s())
        .execute(&mut *tx)
        .await?;
        if let Some(old) = old {
            sqlx::query("SELECT lo_unlink($1)")
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Refreshes `key`'s `touched_at`; whether it exists.
    pub async fn touch(&self, key: &str) -> Result<bool, SharedError> {
        let n = sqlx::query("UPDATE shared_blobs SET touched_at = $1 WHERE key = $2")
            .bind(now_s())
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The size of `key`, if stored.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, SharedError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM shared_blobs WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(size.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// Copies `key` into the file `dest` (created or truncated); checks
    /// the size its row records and, when `sha256` is given, the content.
    /// `false` when the key is not stored. The whole read sees one
    /// snapshot: an object removed meanwhile is still read whole.
    pub async fn fetch(
        &self,
        key: &str,
        dest: &Path,
        sha256: Option<&str>,
    ) -> Result<bool, SharedError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT loid, size FROM shared_blobs WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let loid: Oid = row.try_get("loid")?;
        let size: i64 = row.try_get("size")?;
        let mut file = tokio::fs::File::create(dest).await?;
        let mut hasher = Sha256::new();
        let mut offset: i64 = 0;
        loop {
            let chunk: Vec<u8> = sqlx::query_scalar("SELECT lo_get($1, $2, $3)")
                .bind(loid)
                .bind(offset)
                .bind(CHUNK as i32)
                .fetch_one(&mut *tx)
                .await?;
            if chunk.is_empty() {
                break;
            }
            offset = offset.saturating_add(chunk.len() as i64);
            if offset > size {
                break;
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        tx.commit().await?;
        let corrupt = |why: String| SharedError::Corrupt {
            key: key.to_string(),
            why,
        };
        if offset != size {
            return Err(corrupt(format!("{offset} bytes, its row says {size}")));
        }
        if let Some(want) = sha256 {
            let got = hex::encode(hasher.finalize());
            if !got.eq_ignore_ascii_case(want) {
                return Err(corrupt(format!("its content hashes to {got}")));
            }
        }
        Ok(true)
    }

    /// Every stored object whose key starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, SharedError> {
        let rows = sqlx::query(
            "SELECT key, size, touched_at FROM shared_blobs WHERE starts_with(key, $1) ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    key: r.try_get("key")?,
                    size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                    touched_at: r.try_get("touched_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(SharedError::from)
    }

    /// Removes `key` if it was last touched before `before` (Unix seconds;
    /// `i64::MAX`: whenever): its size, or `None` when kept or gone. The
    /// age is checked by the DELETE itself, so an object stored again
    /// meanwhile (its `touched_at` refreshed) stays.
    pub async fn remove_if_idle(&self, key: &str, before: i64) -> Result<Option<u64>, SharedError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "DELETE FROM shared_blobs WHERE key = $1 AND touched_at < $2 RETURNING loid, size",
        )
        .bind(key)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let loid: Oid = row.try_get("loid")?;
        let size: i64 = row.try_get("size")?;
        sqlx::query("SELECT lo_unlink($1)")
            .bind(loid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(u64::try_from(size).unwrap_or(0)))
    }

    /// Sets `key`'s `touched_at` (tests age objects with it).
    pub async fn set_touched_at(&self, key: &str, at: i64) -> Result<bool, SharedError> {
        let n = sqlx::query("UPDATE shared_blobs SET touched_at = $1 WHERE key = $2")
            .bind(at)
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

/// Writes the file at `path` into a new large object inside `tx`: its
/// oid and size.
async fn write_object(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    path: &Path,
) -> Result<(Oid, i64), SharedError> {
    let loid: Oid = sqlx::query_scalar("SELECT lo_create(0)")
        .fetch_one(&mut **tx)
        .await?;
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset: i64 = 0;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        sqlx::query("SELECT lo_put($1, $2, $3)")
            .bind(loid)
            .bind(offset)
            .bind(&buf[..filled])
            .execute(&mut **tx)
            .await?;
        offset = offset.saturating_add(filled as i64);
        if filled < buf.len() {
            break;
        }
    }
    Ok((loid, offset))
}
