//! Bounds on the archives the platform takes in and unpacks: package and
//! buildpack zips, droplet and build-cache tarballs (docs/architecture.md
//! "Archive limits"). The controller checks them at upload, the DEA again
//! when it extracts. Declared sizes and counts are checked first (a zip's
//! end-of-central-directory record, its entries' sizes), then enforced while
//! streaming, since declarations may lie.

use std::io::{Read, Seek, SeekFrom};

/// Most bytes an archive may weigh as uploaded (CF's `max_package_size`).
pub const DEFAULT_MAX_PACKED_MB: u64 = 1024;
/// Most bytes an archive's files may hold once unpacked.
pub const DEFAULT_MAX_UNPACKED_MB: u64 = 4096;
/// Most entries (files, directories, links) an archive may hold.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Most an archive may expand (unpacked bytes / archive bytes), once it
/// expands beyond [`RATIO_FLOOR`].
pub const DEFAULT_MAX_RATIO: u64 = 100;
/// Small expansions are never refused for their ratio.
pub const RATIO_FLOOR: u64 = 64 * 1024 * 1024;

const MB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub max_packed_bytes: u64,
    pub max_unpacked_bytes: u64,
    pub max_entries: u64,
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits::from_config(
            DEFAULT_MAX_PACKED_MB,
            DEFAULT_MAX_UNPACKED_MB,
            DEFAULT_MAX_ENTRIES,
            DEFAULT_MAX_RATIO,
        )
    }
}

impl ArchiveLimits {
    /// From the components' config values (MB, MB, count, ratio); 0 means
    /// no limit.
    pub fn from_config(packed_mb: u64, unpacked_mb: u64, entries: u64, ratio: u64) -> Self {
        let or_max = |v: u64| if v == 0 { u64::MAX } else { v };
        ArchiveLimits {
            max_packed_bytes: or_max(packed_mb.saturating_mul(MB)),
            max_unpacked_bytes: or_max(unpacked_mb.saturating_mul(MB)),
            max_entries: or_max(entries),
            max_ratio: or_max(ratio),
        }
    }

    /// The same limits, with at most `bytes` unpacked (e.g. a disk quota).
    pub fn unpacked_at_most(mut self, bytes: u64) -> Self {
        self.max_unpacked_bytes = self.max_unpacked_bytes.min(bytes);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the archive is larger than {} MB", .limit / MB)]
    Packed { limit: u64 },
    #[error("the archive has more than {limit} entries")]
    Entries { limit: u64 },
    #[error("the archive expands to more than {} MB", .limit / MB)]
    Unpacked { limit: u64 },
    #[error("the archive expands more than {ratio} times its size")]
    Ratio { ratio: u64 },
    #[error("entry {name} holds more than the {declared} bytes it declares")]
    Lies { name: String, declared: u64 },
}

/// What an archive used up so far, against its limits.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: ArchiveLimits,
    packed: u64,
    unpacked: u64,
    entries: u64,
}

impl Budget {
    /// For an archive of `packed` bytes; refused when it is too big.
    pub fn new(limits: ArchiveLimits, packed: u64) -> Result<Budget, LimitError> {
        if packed > limits.max_packed_bytes {
            return Err(LimitError::Packed {
                limit: limits.max_packed_bytes,
            });
        }
        Ok(Budget {
            limits,
            packed,
            unpacked: 0,
            entries: 0,
        })
    }

    /// Counts one more entry.
    pub fn entry(&mut self) -> Result<(), LimitError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(LimitError::Entries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Counts `n` more unpacked bytes.
    pub fn add(&mut self, n: u64) -> Result<(), LimitError> {
        self.unpacked = self.unpacked.saturating_add(n);
        if self.unpacked > self.limits.max_unpacked_bytes {
            return Err(LimitError::Unpacked {
                limit: self.limits.max_unpacked_bytes,
            });
        }
        if self.unpacked > RATIO_FLOOR
            && self.unpacked > self.packed.max(1).saturating_mul(self.limits.max_ratio)
        {
            return Err(LimitError::Ratio {
                ratio: self.limits.max_ratio,
            });
        }
        Ok(())
    }

    /// Unpacked bytes still allowed.
    pub fn room(&self) -> u64 {
        let by_size = self.limits.max_unpacked_bytes.saturating_sub(self.unpacked);
        let by_ratio = if self.limits.max_ratio == u64::MAX {
            u64::MAX
        } else {
            RATIO_FLOOR
                .max(self.packed.max(1).saturating_mul(self.limits.max_ratio))
                .saturating_sub(self.unpacked)
        };
        by_size.min(by_ratio)
    }

    pub fn unpacked(&self) -> u64 {
        self.unpacked
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }
}

const EOCD_SIG: u64 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u64 = 0x0706_4b50;
const EOCD64_SIG: u64 = 0x0606_4b50;
const EOCD_LEN: u64 = 22;

fn u16_at(b: &[u8], i: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[i], b[i + 1]]))
}

fn u32_at(b: &[u8], i: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]))
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// The most entries any end-of-central-directory record near the end of a
/// zip declares (zip64 records included), or `None` without one. Reads only
/// the last 64 KiB (and a zip64 record), so a zip's entry count is known
/// before its central directory is parsed. A zip64 record that cannot be
/// read counts as `u64::MAX`.
pub fn zip_declared_entries<R: Read + Seek>(r: &mut R) -> std::io::Result<Option<u64>> {
    let len = r.seek(SeekFrom::End(0))?;
    let tail_len = len.min(EOCD_LEN + 65_535 + 4);
    let start = len - tail_len;
    r.seek(SeekFrom::Start(start))?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail)?;
    let mut most: Option<u64> = None;
    let n = tail.len();
    if n < EOCD_LEN as usize {
        return Ok(None);
    }
    for i in (0..=n - EOCD_LEN as usize).rev() {
        if u32_at(&tail, i) != EOCD_SIG {
            continue;
        }
        let mut count = u16_at(&tail, i + 10).max(u16_at(&tail, i + 8));
        let zip64 = count == 0xFFFF
            || u32_at(&tail, i + 12) == 0xFFFF_FFFF
            || u32_at(&tail, i + 16) == 0xFFFF_FFFF;
        if zip64 {
            count = zip64_count(r, start + i as u64).unwrap_or(u64::MAX);
        }
        most = Some(most.map_or(count, |m| m.max(count)));
    }
    Ok(most)
}

/// The entry count of the zip64 record the locator before `eocd_at` names.
fn zip64_count<R: Read + Seek>(r: &mut R, eocd_at: u64) -> Option<u64> {
    let loc_at = eocd_at.checked_sub(20)?;
    r.seek(SeekFrom::Start(loc_at)).ok()?;
    let mut loc = [0u8; 20];
    r.read_exact(&mut loc).ok()?;
    if u32_at(&loc, 0) != EOCD64_LOCATOR_SIG {
        return None;
    }
    let rec_at = u64_at(&loc, 8);
    r.seek(SeekFrom::Start(rec_at)).ok()?;
    let mut rec = [0u8; 56];
    r.read_exact(&mut rec).ok()?;
    if u32_at(&rec, 0) != EOCD64_SIG {
        return None;
    }
    Some(u64_at(&rec, 24).max(u64_at(&rec, 32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_and_refuses() {
        let l = ArchiveLimits::from_config(1, 100, 3, 10);
        assert_eq!(
            Budget::new(l, 2 * MB).err(),
            Some(LimitError::Packed { limit: MB })
        );
        let mut b = Budget::new(l, 1000).expect("fits");
        for _ in 0..3 {
            b.entry().expect("entry");
        }
        assert_eq!(b.entry(), Err(LimitError::Entries { limit: 3 }));
        // Under the ratio floor, any ratio.
        b.add(RATIO_FLOOR).expect("floor");
        assert_eq!(b.add(1), Err(LimitError::Ratio { ratio: 10 }));
        let mut big = Budget::new(l, MB).expect("fits");
        assert_eq!(big.room(), RATIO_FLOOR, "the floor, above 10 x 1 MB");
        big.add(10 * MB).expect("within");
        assert_eq!(
            Budget::new(ArchiveLimits::from_config(0, 0, 0, 0), u64::MAX)
                .expect("unlimited")
                .room(),
            u64::MAX
        );
    }

    #[test]
    fn declared_entries_of_plain_and_zip64_records() {
        // An empty zip: just the end record, declaring 7 entries.
        let mut z = vec![0u8; 22];
        z[..4].copy_from_slice(&(EOCD_SIG as u32).to_le_bytes());
        z[8..10].copy_from_slice(&7u16.to_le_bytes());
        z[10..12].copy_from_slice(&7u16.to_le_bytes());
        let mut c = std::io::Cursor::new(z.clone());
        assert_eq!(zip_declared_entries(&mut c).expect("read"), Some(7));
        // A zip64 record declaring a million.
        let mut rec = vec![0u8; 56];
        rec[..4].copy_from_slice(&(EOCD64_SIG as u32).to_le_bytes());
        rec[24..32].copy_from_slice(&1_000_000u64.to_le_bytes());
        rec[32..40].copy_from_slice(&1_000_000u64.to_le_bytes());
        let mut loc = vec![0u8; 20];
        loc[..4].copy_from_slice(&(EOCD64_LOCATOR_SIG as u32).to_le_bytes());
        loc[8..16].copy_from_slice(&0u64.to_le_bytes());
        let mut end = z;
        end[8..12].copy_from_slice(&[0xFF; 4]);
        let z64: Vec<u8> = [rec, loc, end].concat();
        let mut c = std::io::Cursor::new(z64);
        assert_eq!(zip_declared_entries(&mut c).expect("read"), Some(1_000_000));
        let mut none = std::io::Cursor::new(b"not a zip".to_vec());
        assert_eq!(zip_declared_entries(&mut none).expect("read"), None);
    }
}
