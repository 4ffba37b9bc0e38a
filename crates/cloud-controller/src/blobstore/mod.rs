//! Content-addressed blobs (sha256), per-app buildpack caches and the
//! resource cache: files on the controller's disk, and, when
//! `blobstore_url` names one, the shared blobstore behind them
//! ([`shared`], docs/architecture.md §6.9). With a shared blobstore every
//! file is stored there before it is committed locally, and a file missing
//! locally is fetched from it: the local directory is a cache.

mod shared;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use shared::{Entry, SharedBlobs, SharedError};
pub use validate::{validate_tgz, validate_zip};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blobstore io: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("the upload is larger than {} MB", .0 / (1024 * 1024))]
    TooBig(u64),
    #[error(transparent)]
    Shared(#[from] SharedError),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Held shared while a file is moved into place (or a resource file is
    /// refreshed), exclusively while the garbage collector re-checks a
    /// file's age and removes it ([`crate::blob_gc`]): a blob committed
    /// again in between is never removed.
    gate: Arc<tokio::sync::RwLock<()>>,
    /// The shared blobstore, when there is one.
    shared: Option<SharedBlobs>,
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
    /// A blobstore on local disk only.
    pub async fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        Self::open_shared(data_dir, None).await
    }

    /// A blobstore under `data_dir`, backed by `shared` when given.
    pub async fn open_shared(
        data_dir: &Path,
        shared: Option<SharedBlobs>,
    ) -> Result<BlobStore, BlobError> {
        let root = data_dir.to_path_buf();
        for d in [BLOBS_DIR, TMP_DIR, CACHE_DIR, RESOURCES_DIR] {
            tokio::fs::create_dir_all(root.join(d)).await?;
        }
        Ok(BlobStore {
            root,
            gate: Arc::default(),
            shared,
        })
    }

    /// The controller's blobstore: under its data dir, shared through
    /// `blobstore_url` when set.
    pub async fn for_config(cfg: &crate::Config) -> Result<BlobStore, BlobError> {
        let shared = match cfg.blobstore_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => Some(SharedBlobs::connect(url).await?),
            _ => None,
        };
        Self::open_shared(&cfg.data_dir, shared).await
    }

    /// The shared blobstore, if any.
    pub fn shared(&self) -> Option<&SharedBlobs> {
        self.shared.as_ref()
    }

    /// One of the blobstore's directories ([`BLOBS_DIR`], [`TMP_DIR`],
    /// [`CACHE_DIR`], [`RESOURCES_DIR`]).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(blob_key(sha256))
    }

    /// The resource cache's file of a sha1 (`resources/<sha1>`; see
    /// [`crate::resource_pool`]).
    pub fn resource_path(&self, sha1: &str) -> PathBuf {
        self.root.join(resource_key(sha1))
    }

    /// A fresh temp file name (in the same filesystem as the blobs).
    pub fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }

    pub fn cache_path(&self, app_guid: &str) -> PathBuf {
        self.root.join(cache_key(app_guid))
    }

    /// Whether blob `sha256` is stored (locally or shared).
    pub async fn exists(&self, sha256: &str) -> bool {
        if sha256.is_empty() {
            return false;
        }
        if tokio::fs::metadata(self.path(sha256)).await.is_ok() {
            return true;
        }
        match &self.shared {
            Some(s) => matches!(s.size(&blob_key(sha256)).await, Ok(Some(_))),
            None => false,
        }
    }

    /// The local file of blob `sha256`, fetched from the shared blobstore
    /// when missing here (its content checked against its name). The path
    /// names no file when the blob is stored nowhere.
    pub async fn blob_file(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        let path = self.path(sha256);
        self.fetch_missing(&blob_key(sha256), &path, Some(sha256))
            .await?;
        Ok(path)
    }

    /// The local file of an app's build cache, fetched as
    /// [`BlobStore::blob_file`] does.
    pub async fn cache_file(&self, app_guid: &str) -> Result<PathBuf, BlobError> {
        let path = self.cache_path(app_guid);
        self.fetch_missing(&cache_key(app_guid), &path, None)
            .await?;
        Ok(path)
    }

    /// Fetches each resource-cache file (by sha1) missing here from the
    /// shared blobstore; those stored nowhere stay missing.
    pub async fn fetch_resources(&self, sha1s: &[String]) -> Result<(), BlobError> {
        for sha1 in sha1s {
            let path = self.resource_path(sha1);
            self.fetch_missing(&resource_key(sha1), &path, None).await?;
        }
        Ok(())
    }

    /// With a shared blobstore: whether it holds resource `sha1` with
    /// `size` bytes (refreshing it when it does). `None` without one.
    pub async fn shared_resource(&self, sha1: &str, size: u64) -> Option<bool> {
        let shared = self.shared.as_ref()?;
        let key = resource_key(sha1);
        Some(match shared.size(&key).await {
            Ok(Some(s)) if s == size => shared.touch(&key).await.unwrap_or(false),
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the shared blobstore about a resource");
                false
            }
        })
    }

    /// Stores these resource-cache files (by sha1, already local) in the
    /// shared blobstore, or refreshes them there.
    pub async fn share_resources(&self, sha1s: &[String]) -> Result<(), BlobError> {
        if let Some(shared) = &self.shared {
            for sha1 in sha1s {
                shared
                    .put_once(&resource_key(sha1), &self.resource_path(sha1))
                    .await?;
            }
        }
        Ok(())
    }

    async fn fetch_missing(
        &self,
        key: &str,
        path: &Path,
        sha256: Option<&str>,
    ) -> Result<(), BlobError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if tokio::fs::metadata(path).await.is_ok() {
            return Ok(());
        }
        let tmp = self.tmp_path();
        match shared.fetch(key, &tmp, sha256).await {
            Ok(true) => {
                tracing::debug!(key, "fetched from the shared blobstore");
                self.move_fresh(&tmp, path.to_path_buf()).await
            }
            Ok(false) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Ok(())
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e.into())
            }
        }
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
    /// With a shared blobstore, the file is stored there first: a blob
    /// committed is never on one host alone.
    pub async fn commit(&self, staged: &Staged) -> Result<(), BlobError> {
        if let Some(shared) = &self.shared {
            shared
                .put_once(&blob_key(&staged.sha256), &staged.path)
                .await?;
        }
        self.move_fresh(&staged.path, self.path(&staged.sha256))
            .await
    }

    /// Moves a staged file to the app's buildpack cache (stored in the
    /// shared blobstore first, when there is one).
    pub async fn commit_cache(&self, staged: &Staged, app_guid: &str) -> Result<(), BlobError> {
        if let Some(shared) = &self.shared {
            shared
                .put_replace(&cache_key(app_guid), &staged.path)
                .await?;
        }
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
        if let Some(shared) = &self.shared {
            shared
                .remove_if_idle(&cache_key(app_guid), i64::MAX)
                .await?;
        }
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

/// The shared blobstore's key of blob `sha256` (its local path under the
/// data dir).
pub fn blob_key(sha256: &str) -> String {
    let safe: String = sha256.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    format!("{BLOBS_DIR}/{safe}")
}

/// The shared blobstore's key of an app's build cache.
pub fn cache_key(app_guid: &str) -> String {
    let safe: String = app_guid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{CACHE_DIR}/{safe}.tgz")
}

/// The shared blobstore's key of a resource-cache file.
pub fn resource_key(sha1: &str) -> String {
    let safe: String = sha1.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    format!("{RESOURCES_DIR}/{safe}")
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
