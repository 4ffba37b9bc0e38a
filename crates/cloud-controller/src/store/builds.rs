//! Builds and the droplets they make. A build is long-running work whose
//! state lives here: created `STAGING`, handed to one DEA (`dea_id`, with
//! the deadline of the platform's staging timeout), then ended exactly once,
//! `STAGED` with its droplet or `FAILED` with CF's error id and a
//! description, whichever ending comes first (the DEA's result, the
//! timeout, a lost DEA).

use super::{
    new_guid, now, Build, BuildState, Droplet, Result, Store, StoreError, BUILD_COLS, DROPLET_COLS,
};

impl Store {
    pub async fn create_build(
        &self,
        app_guid: &str,
        package_guid: &str,
        actor_guid: &str,
        actor_name: &str,
    ) -> Result<Build> {
        let t = now();
        let b = Build {
            guid: new_guid(),
            app_guid: app_guid.to_string(),
            package_guid: package_guid.to_string(),
            state: BuildState::Staging,
            error: None,
            droplet_guid: None,
            uploaded_sha256: None,
            created_by_guid: actor_guid.to_string(),
            created_by_name: actor_name.to_string(),
            created_at: t.clone(),
            updated_at: t,
            dea_id: None,
            staging_deadline: None,
            error_id: None,
        };
        sqlx::query(&format!("INSERT INTO builds ({BUILD_COLS}) VALUES ($1, $2, $3, $4, NULL, NULL, NULL, $5, $6, $7, $7, NULL, NULL, NULL)"))
            .bind(b.guid.clone())
            .bind(b.app_guid.clone())
            .bind(b.package_guid.clone())
            .bind(b.state.as_str())
            .bind(b.created_by_guid.clone())
            .bind(b.created_by_name.clone())
            .bind(b.created_at.clone())
            .execute(&self.pool)
            .await?;
        Ok(b)
    }

    pub async fn build(&self, guid: &str) -> Result<Build> {
        self.one(
            &format!("SELECT {BUILD_COLS} FROM builds WHERE guid = $1"),
            &[guid],
            "Build",
        )
        .await
    }

    /// Every build, or every build of one app, oldest first.
    pub async fn builds(&self, app_guid: Option<&str>) -> Result<Vec<Build>> {
        match app_guid {
            Some(a) => {
                self.all(
                    &format!("SELECT {BUILD_COLS} FROM builds WHERE app_guid = $1 ORDER BY created_at, guid"),
                    &[a],
                )
                .await
            }
            None => {
                self.all(
                    &format!("SELECT {BUILD_COLS} FROM builds ORDER BY created_at, guid"),
                    &[],
                )
                .await
            }
        }
    }

    /// Every build still `STAGING`, oldest first.
    pub async fn staging_builds(&self) -> Result<Vec<Build>> {
        self.all(
            &format!(
                "SELECT {BUILD_COLS} FROM builds WHERE state = '{staging}' ORDER BY created_at, guid",
                staging = BuildState::Staging,
            ),
            &[],
        )
        .await
    }

    /// Hands a `STAGING` build that no DEA has to `dea_id`; `false` when
    /// another controller (or an earlier pass) took it.
    pub async fn claim_build(&self, guid: &str, dea_id: &str, deadline: &str) -> Result<bool> {
        let r = sqlx::query(&format!("UPDATE builds SET dea_id = $1, staging_deadline = $2, updated_at = $3 WHERE guid = $4 AND state = '{staging}' AND dea_id IS NULL", staging = BuildState::Staging))
            .bind(dea_id.to_string())
            .bind(deadline.to_string())
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes a build back from a DEA that did not accept it.
    pub async fn unclaim_build(&self, guid: &str, dea_id: &str) -> Result<()> {
        sqlx::query(&format!("UPDATE builds SET dea_id = NULL, updated_at = $1 WHERE guid = $2 AND state = '{staging}' AND dea_id = $3", staging = BuildState::Staging))
            .bind(now())
            .bind(guid.to_string())
            .bind(dea_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_build_uploaded(&self, guid: &str, sha256: &str) -> Result<()> {
        let r =
            sqlx::query("UPDATE builds SET uploaded_sha256 = $1, updated_at = $2 WHERE guid = $3")
                .bind(sha256.to_string())
                .bind(now())
                .bind(guid.to_string())
                .execute(&self.pool)
                .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound("Build"));
        }
        Ok(())
    }

    /// Ends a `STAGING` build as `FAILED`; `false` when it had already
    /// ended (nothing changes then).
    pub async fn fail_build(&self, guid: &str, error_id: &str, description: &str) -> Result<bool> {
        let r = sqlx::query(&format!("UPDATE builds SET state = '{failed}', error_id = $1, error = $2, updated_at = $3 WHERE guid = $4 AND state = '{staging}'", failed = BuildState::Failed, staging = BuildState::Staging))
            .bind(error_id.to_string())
            .bind(description.to_string())
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a `STAGING` build as `STAGED` with its droplet, in one
    /// transaction; `false` when it had already ended (nothing is stored).
    pub async fn finish_staged(&self, build_guid: &str, d: &Droplet) -> Result<bool> {
        let mut tx = self.tx().await?;
        let r = sqlx::query(&format!("UPDATE builds SET state = '{staged}', droplet_guid = $1, updated_at = $2 WHERE guid = $3 AND state = '{staging}'", staged = BuildState::Staged, staging = BuildState::Staging))
            .bind(d.guid.clone())
            .bind(now())
            .bind(build_guid.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(&format!("INSERT INTO droplets ({DROPLET_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)"))
            .bind(d.guid.clone())
            .bind(d.app_guid.clone())
            .bind(d.package_guid.clone())
            .bind(d.state.as_str())
            .bind(d.sha256.clone())
            .bind(d.process_types.clone())
            .bind(d.buildpack.clone())
            .bind(d.stack.clone())
            .bind(d.error.clone())
            .bind(d.created_at.clone())
            .bind(d.buildpacks.clone())
            .bind(d.config_vars.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
