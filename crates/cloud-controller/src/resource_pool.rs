//! CF's resource cache ("resource pool", docs/architecture.md "Resource
//! matching"): files of uploaded packages kept by sha1 in the blobstore
//! (`resources/<sha1>`), so that a push uploads only the files the
//! controller does not have. `POST /v3/resource_matches` says which of a
//! list of {sha1, size} the cache holds; a package upload names the
//! matched files in its `resources` field (path and mode) next to a zip of
//! the rest (`bits`), and the controller assembles the whole package.
//!
//! Only files between `resource_pool_minimum_size` and
//! `resource_pool_maximum_size` (CF: 64 KiB and 512 MiB) are cached and
//! matched. The cache is global, as CF's: a file matches only when the
//! caller names its sha1 and size, i.e. already knows its content.

use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use proto::archive::{ArchiveLimits, LimitError};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use zip::write::SimpleFileOptions;

use crate::blobstore::BlobStore;

/// CF's `resource_pool.minimum_size`: smaller files are never matched.
pub const DEFAULT_MINIMUM_SIZE: u64 = 64 * 1024;
/// CF's `resource_pool.maximum_size`: larger files are never matched.
pub const DEFAULT_MAXIMUM_SIZE: u64 = 512 * 1024 * 1024;
/// Most resources one `POST /v3/resource_matches` may name (CF's 5000).
pub const MAX_MATCH_RESOURCES: usize = 5000;
/// CF's mode for a resource given without one.
pub const DEFAULT_FILE_MODE: u32 = 0o744;

/// `{"value": "<sha1>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checksum {
    pub value: String,
}

/// One file as CF's v3 API names it (resource matches and the package
/// upload's `resources` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub checksum: Checksum,
    pub size_in_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// The sizes the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub min: u64,
    pub max: u64,
}

impl PoolLimits {
    pub fn allows(&self, size: u64) -> bool {
        size >= self.min && size <= self.max
    }
}

pub fn is_sha1(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// A cached file matched or uploaded again gets a fresh mtime when its
/// mtime is older than this: the garbage collector removes the least
/// recently used files first, and none within its grace period
/// (docs/architecture.md §6.8).
const REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether the cache holds the file (its sha1 with that size). A match
/// refreshes the file's mtime, so that it stays for the upload that
/// follows.
pub async fn known(blobs: &BlobStore, limits: PoolLimits, r: &Resource) -> bool {
    let sha1 = r.checksum.value.to_ascii_lowercase();
    if !is_sha1(&sha1) || !limits.allows(r.size_in_bytes) {
        return false;
    }
    // With a shared blobstore, it is the authority: the upload that
    // follows may reach another controller.
    if let Some(known) = blobs.shared_resource(&sha1, r.size_in_bytes).await {
        return known;
    }
    let path = blobs.resource_path(&sha1);
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return false;
    };
    if !meta.is_file() || meta.len() != r.size_in_bytes {
        return false;
    }
    let fresh = meta
        .modified()
        .is_ok_and(|m| crate::blobstore::age(m, std::time::SystemTime::now()) < REFRESH_AFTER);
    fresh
        || blobs
            .while_kept_async(|| crate::blobstore::touch(&path))
            .await
            .is_ok()
}

/// Why a package upload's `resources` are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// CF's `AppBitsUploadInvalid` (400).
    #[error("{0}")]
    Invalid(String),
    /// CF's `AppResourcesFilePathInvalid` (400).
    #[error("File path '{0}' is not safe.")]
    Path(String),
    /// CF's `AppResourcesFileModeInvalid` (400).
    #[error("File mode '{0}' is invalid. Minimum file mode is '0600'")]
    Mode(String),
    /// A resource the cache does not hold (422).
    #[error("{0}")]
    Missing(String),
    /// The assembled package is beyond the upload limits (422).
    #[error("{0}")]
    Refused(String),
    /// Reading the cache or writing the package failed (500).
    #[error("{0}")]
    Io(String),
}

/// A validated entry of the `resources` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub path: String,
    pub sha1: String,
    pub size: u64,
    pub mode: u32,
}

/// A relative path inside the package, `.` and empty components dropped;
/// `None` when absolute, with a `..` component, a NUL, or nothing left.
pub fn safe_path(raw: &str) -> Option<String> {
    if raw.starts_with('/') || raw.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// CF's rule: octal, at least 0600 (the owner reads and writes); the
/// permission bits are kept (no setuid, setgid or sticky bit).
pub fn parse_mode(raw: Option<&str>) -> Result<u32, ResourceError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_FILE_MODE);
    };
    let mode = u32::from_str_radix(raw, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ResourceError::Mode(raw.to_string()))?;
    if mode & 0o600 != 0o600 {
        return Err(ResourceError::Mode(raw.to_string()));
    }
    Ok(mode & 0o777)
}

/// Parses and checks the `resources` field: a JSON array of resources,
/// each with a safe path, a valid mode and a sha1, no path twice, at most
/// `max_entries` of them.
pub fn fingerprints(field: &[u8], max_entries: u64) -> Result<Vec<Fingerprint>, ResourceError> {
    let list: Vec<Resource> = serde_json::from_slice(field)
        .map_err(|e| ResourceError::Invalid(format!("invalid :resources ({e})")))?;
    if list.len() as u64 > max_entries {
        return Err(ResourceError::Refused(format!(
            "the package is refused: {}",
            LimitError::Entries { limit: max_entries }
        )));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let raw = r.path.clone().unwrap_or_default();
        let path = safe_path(&raw).ok_or_else(|| ResourceError::Path(raw.clone()))?;
        let mode = parse_mode(r.mode.as_deref())?;
        let sha1 = r.checksum.value.to_ascii_lowercase();
        if !is_sha1(&sha1) {
            return Err(ResourceError::Invalid(format!(
                "the checksum of '{path}' is not a SHA-1 (40 hex digits)"
            )));
        }
        if !seen.insert(path.clone()) {
            return Err(ResourceError::Invalid(format!(
                "the path '{path}' is given more than once"
            )));
        }
        out.push(Fingerprint {
            path,
            sha1,
            size: r.size_in_bytes,
            mode,
        });
    }
    Ok(out)
}

fn missing(f: &Fingerprint) -> ResourceError {
    ResourceError::Missing(format!(
        "Resource {} of {} bytes ('{}') is not in the resource cache; upload the file in bits",
        f.sha1, f.size, f.path
    ))
}

/// Writes the package `out`: the entries of `bits` (already validated;
/// entries a resource replaces are left out) and the cached files the
/// fingerprints name, at their paths with their modes. Checks first that
/// every resource is in the cache with its size (else
/// [`ResourceError::Missing`]) and that the package's entry count and
/// size (the zip's bytes plus the resources' bytes, as CF counts
/// `max_package_size`) are within `limits`. Blocking.
pub fn assemble(
    blobs: &BlobStore,
    pool: PoolLimits,
    bits: Option<&Path>,
    fps: &[Fingerprint],
    out: &Path,
    limits: ArchiveLimits,
) -> Result<(), ResourceError> {
    let io = |what: &str, e: &dyn std::fmt::Display| ResourceError::Io(format!("{what}: {e}"));
    let refused = |e: LimitError| ResourceError::Refused(format!("the package is refused: {e}"));
    let mut sources = Vec::with_capacity(fps.len());
    let mut total: u64 = 0;
    for f in fps {
        if !pool.allows(f.size) {
            return Err(missing(f));
        }
        let file = match std::fs::File::open(blobs.resource_path(&f.sha1)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(f)),
            Err(e) => return Err(io("reading the resource cache", &e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io("reading the resource cache", &e))?
            .len();
        if len != f.size {
            return Err(missing(f));
        }
        total = total.saturating_add(f.size);
        sources.push(file);
    }
    let mut bits_zip = match bits {
        Some(p) => {
            let file = std::fs::File::open(p).map_err(|e| io("reading the upload", &e))?;
            let len = file
                .metadata()
                .map_err(|e| io("reading the upload", &e))?
                .len();
            total = total.saturating_add(len);
            Some(
                zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
                    ResourceError::Refused(format!(
                        "the uploaded bits are not a valid zip file: {e}"
                    ))
                })?,
            )
        }
        None => None,
    };
    let entries = fps.len() as u64 + bits_zip.as_ref().map_or(0, |z| z.len() as u64);
    if entries > limits.max_entries {
        return Err(refused(LimitError::Entries {
            limit: limits.max_entries,
        }));
    }
    if total > limits.max_packed_bytes {
        return Err(refused(LimitError::Packed {
            limit: limits.max_packed_bytes,
        }));
    }
    let replaced: HashSet<&str> = fps.iter().map(|f| f.path.as_str()).collect();
    let file = std::fs::File::create(out).map_err(|e| io("writing the package", &e))?;
    let mut zw = zip::ZipWriter::new(BufWriter::new(file));
    let werr = |e: zip::result::ZipError| io("writing the package", &e);
    if let Some(z) = bits_zip.as_mut() {
        for i in 0..z.len() {
            let entry = z.by_index_raw(i).map_err(|e| {
                ResourceError::Refused(format!("the uploaded zip is corrupt (entry {i}): {e}"))
            })?;
            let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
            if replaced.contains(name.trim_start_matches("./")) {
                continue;
            }
            zw.raw_copy_file(entry).map_err(werr)?;
        }
    }
    for (f, src) in fps.iter().zip(sources) {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .unix_permissions(f.mode)
            .large_file(f.size >= u64::from(u32::MAX));
        zw.start_file(f.path.as_str(), opts).map_err(werr)?;
        let n = std::io::copy(&mut src.take(f.size), &mut zw)
            .map_err(|e| io("writing the package", &e))?;
        if n != f.size {
            return Err(missing(f));
        }
    }
    let mut w = zw.finish().map_err(werr)?;
    w.flush().map_err(|e| io("writing the package", &e))?;
    let file = w
        .into_inner()
        .map_err(|e| io("writing the package", &e.error().to_string()))?;
    file.sync_all().map_err(|e| io("writing the package", &e))?;
    Ok(())
}

/// Adds the files of a stored package to the cache: every regular file
/// within the pool's sizes, hashed here (never trusting a client's sha1),
/// written to a temp file and renamed to `resources/<sha1>`; `skip` names
/// paths known to be cached already. Returns the sha1s of the files
/// added or refreshed (to be shared: [`BlobStore::share_resources`]).
/// Blocking.
pub fn cache_package(
    blobs: &BlobStore,
    pool: PoolLimits,
    package: &Path,
    skip: &HashSet<String>,
) -> std::io::Result<Vec<String>> {
    let file = std::fs::File::open(package)?;
    let mut z =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(std::io::Error::other)?;
    let mut cached = Vec::new();
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(std::io::Error::other)?;
        let is_link = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        let size = entry.size();
        let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        if !entry.is_file() || is_link || !pool.allows(size) || skip.contains(&name) {
            continue;
        }
        let tmp = blobs.tmp_path();
        let result = (|| {
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            let mut hasher = Sha1::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut n: u64 = 0;
            let mut limited = (&mut entry).take(size.saturating_add(1));
            loop {
                let k = limited.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                n += k as u64;
                hasher.update(&buf[..k]);
                out.write_all(&buf[..k])?;
            }
            out.flush()?;
            if n != size {
                return Ok(None);
            }
            Ok::<_, std::io::Error>(Some(hex::encode(hasher.finalize())))
        })();
        match result {
            Ok(Some(sha1)) => {
                let dest = blobs.resource_path(&sha1);
                // Uploaded again: the cached file is refreshed (it was
                // used), not replaced.
                let new = blobs.while_kept(|| match crate::blobstore::touch(&dest) {
                    Ok(()) => Ok(false),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::rename(&tmp, &dest).map(|()| true)
                    }
                    Err(e) => Err(e),
                });
                match new {
                    Ok(true) => cached.push(sha1),
                    Ok(false) => {
                        let _ = std::fs::remove_file(&tmp);
                        cached.push(sha1);
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
            }
            Ok(None) => {
                let _ = std::fs::remove_file(&tmp);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_stay_inside() {
        assert_eq!(safe_path("a/b.txt").as_deref(), Some("a/b.txt"));
        assert_eq!(safe_path("./a//b.txt").as_deref(), Some("a/b.txt"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a/..", ".", "a\0b"] {
            assert_eq!(safe_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn modes_follow_cf() {
        assert_eq!(parse_mode(None), Ok(0o744));
        assert_eq!(parse_mode(Some("644")), Ok(0o644));
        assert_eq!(parse_mode(Some("0755")), Ok(0o755));
        assert_eq!(parse_mode(Some("4755")), Ok(0o755));
        for bad in ["444", "x", "99999", "-1", ""] {
            assert!(parse_mode(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_refuse_hostile_entries() {
        let sha = "a".repeat(40);
        let one = |path: &str| {
            format!(
                r#"[{{"checksum":{{"value":"{sha}"}},"size_in_bytes":70000,"path":"{path}","mode":"644"}}]"#
            )
        };
        let ok = fingerprints(one("x/y").as_bytes(), 10).expect("valid");
        assert_eq!(ok[0].path, "x/y");
        assert_eq!(ok[0].mode, 0o644);
        assert_eq!(
            fingerprints(one("../y").as_bytes(), 10),
            Err(ResourceError::Path("../y".into()))
        );
        assert!(matches!(
            fingerprints(b"{}", 10),
            Err(ResourceError::Invalid(_))
        ));
        let twice = format!(
            r#"[{{"checksum":{{"value":"{sha}"}},"size_in_bytes":1,"path":"a"}},{{"checksum":{{"value":"{sha}"}},"size_in_bytes":1,"path":"./a"}}]"#
        );
        assert!(matches!(
            fingerprints(twice.as_bytes(), 10),
            Err(ResourceError::Invalid(_))
        ));
        assert!(matches!(
            fingerprints(twice.as_bytes(), 1),
            Err(ResourceError::Refused(_))
        ));
    }
}
