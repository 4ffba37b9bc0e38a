//! Memory/disk sizes: parse `256M`, `1G`, `512MB` and print `256M` / `1G`.

/// CF's message for a size without a (known) unit or with a fraction.
pub const BYTE_QUANTITY: &str =
    "Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB";

/// Parse a size to megabytes. As in CF, the unit is required (`-m 10` is an
/// error, not ten megabytes).
pub fn parse_mb(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let invalid = || BYTE_QUANTITY.to_string();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| invalid())?;
    let mult = match unit.trim() {
        "M" | "MB" => 1,
        "G" | "GB" => 1024,
        "T" | "TB" => 1024 * 1024,
        _ => return Err(invalid()),
    };
    let mb = n.checked_mul(mult).ok_or_else(invalid)?;
    if mb == 0 {
        return Err(format!("Invalid size '{s}': must be greater than 0"));
    }
    Ok(mb)
}

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
    fn parses_sizes() {
        assert_eq!(parse_mb("256M"), Ok(256));
        assert_eq!(parse_mb("256m"), Ok(256));
        assert_eq!(parse_mb("512MB"), Ok(512));
        assert_eq!(parse_mb("1G"), Ok(1024));
        assert_eq!(parse_mb("2gb"), Ok(2048));
        assert_eq!(parse_mb("256"), Err(BYTE_QUANTITY.to_string()));
        assert_eq!(parse_mb("10"), Err(BYTE_QUANTITY.to_string()));
        assert_eq!(parse_mb(" 64M "), Ok(64));
        assert!(parse_mb("").is_err());
        assert!(parse_mb("M").is_err());
        assert!(parse_mb("12X").is_err());
        assert!(parse_mb("-1M").is_err());
        assert!(parse_mb("0M").is_err());
        assert!(parse_mb("1.5G").is_err());
    }

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
