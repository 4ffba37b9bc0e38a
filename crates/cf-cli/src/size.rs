//! Memory/disk sizes: parse `256M`, `1G`, `512MB` and print `256M` / `1G`.

pub use proto::size::{parse_mb, BYTE_QUANTITY};

/// Megabytes as `256M`, `1G`.
pub fn format_mb(mb: u64) -> String {
    if mb >= 1024 && mb.is_multiple_of(1024) {
        format!("{}G", mb / 1024)
    } else {
        format!("{mb}M")
    }
}

/// Bytes in the CF CLI's style: `0`, `512B`, `12K`, `20.1M`, `1G`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    if bytes == 0 {
        return "0".into();
    }
    for (size, unit) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            let s = format!("{v:.1}");
            let s = s.strip_suffix(".0").unwrap_or(&s);
            return format!("{s}{unit}");
        }
    }
    format!("{bytes}B")
}

/// `1.21 KiB`, `3.40 MiB` for upload progress.
pub fn format_kib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(format_mb(256), "256M");
        assert_eq!(format_mb(1024), "1G");
        assert_eq!(format_mb(1536), "1536M");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(12 * 1024 * 1024), "12M");
        assert_eq!(format_bytes(21_076_377), "20.1M");
        assert_eq!(format_bytes(1 << 30), "1G");
        assert_eq!(format_kib(1239), "1.21 KiB");
    }
}
