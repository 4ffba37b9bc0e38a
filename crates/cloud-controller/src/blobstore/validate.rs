//! Archive checks for what the controller takes in: package and buildpack
//! zips, droplet tarballs (docs/architecture.md §6.5).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use proto::archive::{ArchiveLimits, Budget, LimitError};

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
