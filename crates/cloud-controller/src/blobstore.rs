//! Content-addressed blobs (sha256) on local disk, plus per-app buildpack caches.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blobstore io: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload interrupted: {0}")]
    Body(String),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A blob written to a temp file, not yet committed.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl BlobStore {
    pub async fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        let root = data_dir.to_path_buf();
        for d in ["blobs", "tmp", "buildpack_cache"] {
            tokio::fs::create_dir_all(root.join(d)).await?;
        }
        Ok(BlobStore { root })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        let safe: String = sha256.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        self.root.join("blobs").join(safe)
    }

    pub fn cache_path(&self, app_guid: &str) -> PathBuf {
        let safe: String = app_guid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.root
            .join("buildpack_cache")
            .join(format!("{safe}.tgz"))
    }

    pub async fn exists(&self, sha256: &str) -> bool {
        !sha256.is_empty() && tokio::fs::metadata(self.path(sha256)).await.is_ok()
    }

    /// Streams chunks into a temp file, hashing as it goes.
    pub async fn stage<S, E>(&self, mut body: S) -> Result<Staged, BlobError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    drop(file);
                    let _ = tokio::fs::remove_file(&path).await;
                    return Err(BlobError::Body(e.to_string()));
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(Staged {
            path,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// Moves a staged file to its content address.
    pub async fn commit(&self, staged: &Staged) -> Result<(), BlobError> {
        tokio::fs::rename(&staged.path, self.path(&staged.sha256)).await?;
        Ok(())
    }

    /// Moves a staged file to the app's buildpack cache.
    pub async fn commit_cache(&self, staged: &Staged, app_guid: &str) -> Result<(), BlobError> {
        tokio::fs::rename(&staged.path, self.cache_path(app_guid)).await?;
        Ok(())
    }

    pub async fn discard(&self, staged: &Staged) {
        let _ = tokio::fs::remove_file(&staged.path).await;
    }
}

/// Checks that a file is a readable zip: central directory and every entry's
/// data (CRC-checked). Blocking; run it on a blocking thread.
pub fn validate_zip(path: &Path) -> Result<usize, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open upload: {e}"))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| format!("the uploaded bits are not a valid zip file: {e}"))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("the uploaded zip is corrupt (entry {i}): {e}"))?;
        let name = entry
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("entry {i}"));
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| format!("the uploaded zip is corrupt ({name}): {e}"))?;
    }
    Ok(archive.len())
}
