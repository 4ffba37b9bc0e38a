//! Admin buildpacks: rows, and the position bookkeeping of Cloud Foundry
//! (positions are always 1..n without gaps; creating or moving a buildpack to
//! position p shifts the ones at p and after down by one; deleting closes the
//! gap; a position past the end means last).

use sqlx::{Any, Transaction};

use super::pages::{Where, Window};
use super::{new_guid, now, unique, BuildpackState, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Buildpack {
    pub guid: String,
    pub name: String,
    /// `""` = any stack.
    pub stack: String,
    pub position: i64,
    pub enabled: i64,
    pub locked: i64,
    /// `AWAITING_UPLOAD` or `READY`.
    #[sqlx(try_from = "String")]
    pub state: BuildpackState,
    pub filename: Option<String>,
    pub sha256: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Buildpack {
    pub fn is_enabled(&self) -> bool {
        self.enabled != 0
    }

    pub fn is_locked(&self) -> bool {
        self.locked != 0
    }
}

/// What may change on a buildpack (`None` = keep).
#[derive(Debug, Clone, Default)]
pub struct BuildpackUpdate {
    pub name: Option<String>,
    pub position: Option<i64>,
    pub enabled: Option<bool>,
    pub locked: Option<bool>,
}

/// `GET /v3/buildpacks` filters (each `None` = any; `stacks` matches the
/// stack a buildpack is restricted to, never "any stack").
#[derive(Debug, Clone)]
pub struct BuildpackFilter {
    pub names: Option<Vec<String>>,
    pub stacks: Option<Vec<String>>,
}

const BP_COLS: &str =
    "guid, name, stack, position, enabled, locked, state, filename, sha256, created_at, updated_at";

/// Puts `guid` at 1-based `position` in `order` (removing it first if it is
/// there). Positions below 1 mean first, past the end mean last.
pub fn reorder(order: &mut Vec<String>, guid: &str, position: i64) {
    order.retain(|g| g != guid);
    let idx = usize::try_from(position.max(1) - 1)
        .unwrap_or(0)
        .min(order.len());
    order.insert(idx, guid.to_string());
}

async fn current_order(tx: &mut Transaction<'_, Any>) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT guid FROM buildpacks ORDER BY position, created_at, guid")
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Writes positions 1..n in `order`.
async fn renumber(tx: &mut Transaction<'_, Any>, order: &[String], t: &str) -> Result<()> {
    for (i, guid) in order.iter().enumerate() {
        let pos = i64::try_from(i).unwrap_or(i64::MAX - 1) + 1;
        sqlx::query(
            "UPDATE buildpacks SET position = $1, updated_at = $2 WHERE guid = $3 AND position <> $1",
        )
        .bind(pos)
        .bind(t.to_string())
        .bind(guid.clone())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Commits on success; rolls back at once on error (a dropped transaction
/// would keep SQLite's write lock until its connection is reused).
async fn finish(tx: Transaction<'_, Any>, r: Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(tx.commit().await?),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

impl Store {
    /// Every buildpack in position order.
    pub async fn buildpacks(&self) -> Result<Vec<Buildpack>> {
        self.all(
            &format!("SELECT {BP_COLS} FROM buildpacks ORDER BY position, created_at, guid"),
            &[],
        )
        .await
    }

    /// Buildpacks matching `f` in position order: how many, and the window.
    pub async fn buildpacks_page(
        &self,
        f: &BuildpackFilter,
        win: Window,
    ) -> Result<(usize, Vec<Buildpack>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names).any_of("stack", &f.stacks);
        self.page(BP_COLS, "buildpacks", &w, "position, created_at, guid", win)
            .await
    }

    /// The last position taken by a buildpack (0 when none).
    pub async fn last_buildpack_position(&self) -> Result<i64> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM buildpacks")
            .fetch_one(&self.pool)
            .await?;
        Ok(last.unwrap_or(0))
    }

    pub async fn buildpack(&self, guid: &str) -> Result<Buildpack> {
        self.one(
            &format!("SELECT {BP_COLS} FROM buildpacks WHERE guid = $1"),
            &[guid],
            "Buildpack",
        )
        .await
    }

    /// Creates a buildpack awaiting its bits, at `position` (shifting the others).
    pub async fn create_buildpack(
        &self,
        name: &str,
        stack: &str,
        position: i64,
        enabled: bool,
        locked: bool,
    ) -> Result<Buildpack> {
        let t = now();
        let guid = new_guid();
        let mut tx = self.tx().await?;
        // An error rolls back at once (the write lock is the
        // transaction's from its start: `Store::tx`).
        let r = async {
            sqlx::query(&format!(
                "INSERT INTO buildpacks ({BP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, '{awaiting}', NULL, NULL, $7, $7)",
                awaiting = BuildpackState::AwaitingUpload,
            ))
            .bind(guid.clone())
            .bind(name.to_string())
            .bind(stack.to_string())
            .bind(0i64)
            .bind(i64::from(enabled))
            .bind(i64::from(locked))
            .bind(t.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, format!("Buildpack with name '{name}' and stack '{stack}'")))?;
            let mut order = current_order(&mut tx).await?;
            reorder(&mut order, &guid, position);
            renumber(&mut tx, &order, &t).await
        }
        .await;
        finish(tx, r).await?;
        self.buildpack(&guid).await
    }

    pub async fn update_buildpack(&self, guid: &str, u: &BuildpackUpdate) -> Result<Buildpack> {
        let bp = self.buildpack(guid).await?;
        let t = now();
        let name = u.name.clone().unwrap_or_else(|| bp.name.clone());
        let mut tx = self.tx().await?;
        let r = async {
            sqlx::query(
                "UPDATE buildpacks SET name = $1, enabled = $2, locked = $3, updated_at = $4 WHERE guid = $5",
            )
            .bind(name.clone())
            .bind(u.enabled.map(i64::from).unwrap_or(bp.enabled))
            .bind(u.locked.map(i64::from).unwrap_or(bp.locked))
            .bind(t.clone())
            .bind(guid.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                unique(
                    e,
                    format!("Buildpack with name '{name}' and stack '{}'", bp.stack),
                )
            })?;
            if let Some(p) = u.position {
                let mut order = current_order(&mut tx).await?;
                reorder(&mut order, guid, p);
                renumber(&mut tx, &order, &t).await?;
            }
            Ok(())
        }
        .await;
        finish(tx, r).await?;
        self.buildpack(guid).await
    }

    /// Records uploaded bits: the buildpack becomes `READY`.
    pub async fn set_buildpack_bits(
        &self,
        guid: &str,
        filename: &str,
        sha256: &str,
    ) -> Result<Buildpack> {
        let n = sqlx::query(&format!(
            "UPDATE buildpacks SET state = '{ready}', filename = $1, sha256 = $2, updated_at = $3 WHERE guid = $4",
            ready = BuildpackState::Ready,
        ))
        .bind(filename.to_string())
        .bind(sha256.to_string())
        .bind(now())
        .bind(guid.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("Buildpack"));
        }
        self.buildpack(guid).await
    }

    /// Deletes a buildpack and closes the gap in positions.
    pub async fn delete_buildpack(&self, guid: &str) -> Result<()> {
        let t = now();
        let mut tx = self.tx().await?;
        let r = async {
            let n = sqlx::query("DELETE FROM buildpacks WHERE guid = $1")
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("Buildpack"));
            }
            let order = current_order(&mut tx).await?;
            renumber(&mut tx, &order, &t).await
        }
        .await;
        finish(tx, r).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::reorder;

    fn order(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reorder_inserts_moves_and_clamps() {
        let mut o = order(&["a", "b", "c"]);
        reorder(&mut o, "n", 2);
        assert_eq!(o, order(&["a", "n", "b", "c"]));
        reorder(&mut o, "n", 99);
        assert_eq!(o, order(&["a", "b", "c", "n"]));
        reorder(&mut o, "c", 0);
        assert_eq!(o, order(&["c", "a", "b", "n"]));
        reorder(&mut o, "a", 3);
        assert_eq!(o, order(&["c", "b", "a", "n"]));
        let mut e = Vec::new();
        reorder(&mut e, "x", 5);
        assert_eq!(e, order(&["x"]));
    }
}
