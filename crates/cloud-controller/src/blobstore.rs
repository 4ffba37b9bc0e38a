//! Content-addressed blobs (sha256) on local disk, plus per-app buildpack caches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::io::{Read, Seek, SeekFrom};

use futures_util::{Stream, StreamExt};
use proto::archive::{ArchiveLimits, Budget, LimitError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blobstore io: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("the upload is larger than {} MB", .0 / (1024 * 1024))]
    TooBig(u64),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Held shared while a file is moved into place (or a resource file is
    /// refreshed), exclusively while the garbage collector re-checks a
    /// file's age and removes it ([`crate::blob_gc`]): a blob committed
    /// again in between is never removed.
    gate: Arc<tokio::sync::RwLock<()>>,
}

/// The blobstore's directories under the data dir.
pub const BLOBS_DIR: &str = "blobs";
pub const TMP_DIR: &str = "tmp";
pub const CACHE_DIR: &str = "buildpack_cache";
pub const RESOURCES_DIR: &str = "resources";

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
        for d in [BLOBS_DIR, TMP_DIR, CACHE_DIR, RESOURCES_DIR] {
            tokio::fs::create_dir_all(root.join(d)).await?;
        }
        Ok(BlobStore {
            root,
            gate: Arc::default(),
        })
    }

    /// One of the blobstore's directories ([`BLOBS_DIR`], [`TMP_DIR`],
    /// [`CACHE_DIR`], [`RESOURCES_DIR`]).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        let safe: String = sha256.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        self.root.join("blobs").join(safe)
    }

    /// The resource cache's file of a sha1 (`resources/<sha1>`; see
    /// [`crate::resource_pool`]).
    pub fn resource_path(&self, sha1: &str) -> PathBuf {
        let safe: String = sha1.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        self.root.join("resources").join(safe)
    }

    /// A fresh temp file name (in the same filesystem as the blobs).
    pub fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
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

    /// Streams chunks into a temp file, hashing as it goes; at most `max`
    /// bytes (beyond them the file is removed and [`BlobError::TooBig`]
    /// answered, having written no more than `max`).
    pub async fn stage<S, E>(&self, mut body: S, max: u64) -> Result<Staged, BlobError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.tmp_path();
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
            size += chunk.len() as u64;
            if size > max {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(BlobError::TooBig(max));
            }
            hasher.update(&chunk);
            if let Err(e) = file.write_all(&chunk).await {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e.into());
            }
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(Staged {
            path,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// Moves a staged file to its content address, its mtime now (the
    /// garbage collector's grace period runs from here).
    pub async fn commit(&self, staged: &Staged) -> Result<(), BlobError> {
        self.move_fresh(&staged.path, self.path(&staged.sha256))
            .await
    }

    /// Moves a staged file to the app's buildpack cache.
    pub async fn commit_cache(&self, staged: &Staged, app_guid: &str) -> Result<(), BlobError> {
        self.move_fresh(&staged.path, self.cache_path(app_guid))
            .await
    }

    async fn move_fresh(&self, from: &Path, to: PathBuf) -> Result<(), BlobError> {
        let from = from.to_path_buf();
        let _shared = self.gate.read().await;
        tokio::task::spawn_blocking(move || {
            touch(&from)?;
            std::fs::rename(&from, &to)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// Runs `f` (blocking) while no file is being removed by the garbage
    /// collector: for refreshing a resource file that must not go.
    pub fn while_kept<R>(&self, f: impl FnOnce() -> R) -> R {
        let _shared = self.gate.blocking_read();
        f()
    }

    /// As [`BlobStore::while_kept`], from async code.
    pub async fn while_kept_async<R>(&self, f: impl FnOnce() -> R) -> R {
        let _shared = self.gate.read().await;
        f()
    }

    /// Removes `path` if it is still a regular file at least `grace` old
    /// (checked again here, with no commit in progress): its size, or
    /// `None` when kept or gone. Used by [`crate::blob_gc`].
    pub async fn remove_if_idle(
        &self,
        path: &Path,
        grace: Duration,
    ) -> Result<Option<u64>, BlobError> {
        let _exclusive = self.gate.write().await;
        let meta = match tokio::fs::symlink_metadata(path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() || age(meta.modified()?, SystemTime::now()) < grace {
            return Ok(None);
        }
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an app's build cache (the app is deleted): its size, if
    /// there was one.
    pub async fn remove_cache(&self, app_guid: &str) -> Result<Option<u64>, BlobError> {
        let path = self.cache_path(app_guid);
        let size = match tokio::fs::metadata(&path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn discard(&self, staged: &Staged) {
        let _ = tokio::fs::remove_file(&staged.path).await;
    }
}

/// How old a file modified at `modified` is at `now` (zero when its mtime
/// is in the future).
pub fn age(modified: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(modified).unwrap_or_default()
}

/// Sets a file's mtime to now. Blocking.
pub fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// A file already written (e.g. an assembled package) as a [`Staged`]
/// blob: its sha256 and size. Blocking.
pub fn staged_file(path: PathBuf) -> std::io::Result<Staged> {
    let mut file = std::fs::File::open(&path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok(Staged {
        path,
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// Checks that a file is a readable zip within `limits`: the entry count
/// its end record declares (before the central directory is parsed), the
/// sizes its entries declare, then every entry's data (CRC-checked),
/// inflated into nothing, no entry beyond its declared size and the whole
/// within the limits. Blocking; run it on a blocking thread.
pub fn validate_zip(path: &Path, limits: ArchiveLimits) -> Result<usize, String> {
    let refused = |e: LimitError| format!("the uploaded zip is refused: {e}");
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open upload: {e}"))?;
    let packed = file
        .metadata()
        .map_err(|e| format!("cannot open upload: {e}"))?
        .len();
    let mut budget = Budget::new(limits, packed).map_err(refused)?;
    match proto::archive::zip_declared_entries(&mut file) {
        Ok(Some(n)) if n > limits.max_entries => {
            return Err(refused(LimitError::Entries {
                limit: limits.max_entries,
            }))
        }
        Ok(_) => {}
        Err(e) => return Err(format!("cannot read upload: {e}")),
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read upload: {e}"))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        tracing::debug!(error = %e, "upload is not a zip");
        "the uploaded bits are not a valid zip file".to_string()
    })?;
    let mut declared = Budget::new(limits, packed).map_err(refused)?;
    for i in 0..archive.len() {
        declared.entry().map_err(refused)?;
        let size = archive
            .by_index_raw(i)
            .map_err(|e| format!("the uploaded zip is corrupt (entry {i}): {e}"))?
            .size();
        declared.add(size).map_err(refused)?;
    }
    for i in 0..archive.len() {
        budget.entry().map_err(refused)?;
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("the uploaded zip is corrupt (entry {i}): {e}"))?;
        let name = entry
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("entry {i}"));
        let size = entry.size();
        let cap = size.min(budget.room()).saturating_add(1);
        let n = std::io::copy(&mut (&mut entry).take(cap), &mut std::io::sink())
            .map_err(|e| format!("the uploaded zip is corrupt ({name}): {e}"))?;
        if n > size {
            return Err(refused(LimitError::Lies {
                name,
                declared: size,
            }));
        }
        budget.add(n).map_err(refused)?;
    }
    Ok(archive.len())
}

/// Checks that a file is a gzipped tarball within `limits` (a droplet):
/// entries counted and their sizes summed as the tarball streams by, the
/// inflated stream itself capped. Blocking; run it on a blocking thread.
pub fn validate_tgz(path: &Path, limits: ArchiveLimits) -> Result<u64, String> {
    let refused = |e: LimitError| format!("the droplet is refused: {e}");
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open upload: {e}"))?;
    let packed = file
        .metadata()
        .map_err(|e| format!("cannot open upload: {e}"))?
        .len();
    let mut budget = Budget::new(limits, packed).map_err(refused)?;
    // Headers and padding: at most 1.5 KB per entry beyond the contents.
    let overhead = limits
        .max_entries
        .saturating_mul(1536)
        .saturating_add(1 << 20);
    let inflated = flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .take(budget.room().saturating_add(overhead));
    let mut ar = tar::Archive::new(inflated);
    let entries = ar
        .entries()
        .map_err(|e| format!("the droplet is not a gzipped tarball: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("the droplet is corrupt: {e}"))?;
        budget.entry().map_err(refused)?;
        budget
            .add(entry.header().size().unwrap_or(0))
            .map_err(refused)?;
    }
    Ok(budget.entries())
}
