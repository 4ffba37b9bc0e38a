//! What the blob garbage collector asks the database
//! (`crate::blob_gc`, docs/architecture.md §6.8): which blobs and build
//! caches rows still name, and the packages and droplets of each app
//! beyond the newest few.

use std::collections::HashSet;

use super::{BuildState, DropletState, PackageState, Result, Store};

/// A package or droplet that holds a blob, for expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobVersion {
    pub app_guid: String,
    pub guid: String,
    pub created_at: String,
}

/// Every app's READY packages and STAGED droplets, and those never expired
/// whatever their age.
#[derive(Debug, Clone, Default)]
pub struct BlobVersions {
    pub packages: Vec<BlobVersion>,
    pub droplets: Vec<BlobVersion>,
    /// Current droplets, their packages, and packages of builds in flight.
    pub protected: HashSet<String>,
}

impl Store {
    /// Every blob sha256 a row names: packages, droplets, droplets
    /// uploaded by builds still STAGING (a STAGED build's is its droplet's,
    /// recorded in the same transaction; a FAILED build's is garbage), admin
    /// buildpacks (lower case).
    pub async fn referenced_blobs(&self) -> Result<HashSet<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT sha256 FROM packages WHERE sha256 IS NOT NULL \
             UNION SELECT sha256 FROM droplets WHERE sha256 IS NOT NULL \
             UNION SELECT uploaded_sha256 FROM builds WHERE uploaded_sha256 IS NOT NULL AND state = $1 \
             UNION SELECT sha256 FROM buildpacks WHERE sha256 IS NOT NULL",
        )
        .bind(BuildState::Staging.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0.to_ascii_lowercase()).collect())
    }

    /// Every app's guid (their build caches stay).
    pub async fn app_guids(&self) -> Result<HashSet<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT guid FROM apps")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The packages and droplets that hold blobs, per app.
    pub async fn blob_versions(&self) -> Result<BlobVersions> {
        let version = |(app_guid, guid, created_at): (String, String, String)| BlobVersion {
            app_guid,
            guid,
            created_at,
        };
        let packages: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT app_guid, guid, created_at FROM packages WHERE state = $1 AND sha256 IS NOT NULL",
        )
        .bind(PackageState::Ready.as_str())
        .fetch_all(&self.pool)
        .await?;
        let droplets: Vec<(String, String, String)> =
            sqlx::query_as("SELECT app_guid, guid, created_at FROM droplets WHERE state = $1")
                .bind(DropletState::Staged.as_str())
                .fetch_all(&self.pool)
                .await?;
        let protected: Vec<(String,)> = sqlx::query_as(
            "SELECT current_droplet_guid FROM apps WHERE current_droplet_guid IS NOT NULL \
             UNION SELECT d.package_guid FROM droplets d JOIN apps a ON a.current_droplet_guid = d.guid \
             UNION SELECT package_guid FROM builds WHERE state = $1",
        )
        .bind(BuildState::Staging.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(BlobVersions {
            packages: packages.into_iter().map(version).collect(),
            droplets: droplets.into_iter().map(version).collect(),
            protected: protected.into_iter().map(|r| r.0).collect(),
        })
    }

    /// Deletes an expired droplet's row, unless an app made it current
    /// meanwhile. Whether it was deleted.
    pub async fn delete_expired_droplet(&self, guid: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM droplets WHERE guid = $1 \
             AND NOT EXISTS (SELECT 1 FROM apps WHERE current_droplet_guid = $1)",
        )
        .bind(guid.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes an expired package's row, unless a build is staging it or
    /// the current droplet of an app was built from it. Whether it was
    /// deleted.
    pub async fn delete_expired_package(&self, guid: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM packages WHERE guid = $1 \
             AND NOT EXISTS (SELECT 1 FROM builds WHERE package_guid = $1 AND state = $2) \
             AND NOT EXISTS (SELECT 1 FROM droplets d JOIN apps a ON a.current_droplet_guid = d.guid WHERE d.package_guid = $1)",
        )
        .bind(guid.to_string())
        .bind(BuildState::Staging.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
