//! Memory and disk sizes as CF writes them (`256M`, `1G`), in megabytes:
//! one parser for the CLI's flags and manifests and the controller's
//! `apply_manifest`.

/// CF's message for a size without a (known) unit or with a fraction.
pub const BYTE_QUANTITY: &str =
    "Byte quantity must be an integer with a unit of measurement like M, MB, G, or GB";

/// `<digits><unit>` (case ignored) to the number times the unit's factor
/// from `units`; `None` when it is not that.
fn scaled(s: &str, units: &[(&str, u64)]) -> Option<u64> {
    let t = s.trim().to_ascii_uppercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let (_, factor) = units.iter().find(|(u, _)| *u == unit.trim())?;
    n.checked_mul(*factor)
}

/// Parse a size to megabytes. As in CF, the unit is required (`-m 10` is an
/// error, not ten megabytes).
pub fn parse_mb(s: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("M", 1),
        ("MB", 1),
        ("G", 1024),
        ("GB", 1024),
        ("T", 1024 * 1024),
        ("TB", 1024 * 1024),
    ];
    match scaled(s, UNITS) {
        None => Err(BYTE_QUANTITY.to_string()),
        Some(0) => Err(format!("Invalid size '{s}': must be greater than 0")),
        Some(mb) => Ok(mb),
    }
}

/// CF's message for a log rate without a (known) unit.
pub const BYTE_RATE: &str =
    "Byte quantity must be an integer with a unit of measurement like B, K, KB, M, MB, G, or GB";

/// A log rate limit to bytes a second: `1K`, `512B`, `1M`; `-1` is
/// unlimited and `0` nothing, as in CF.
pub fn parse_log_rate(s: &str) -> Result<i64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("B", 1),
        ("K", 1 << 10),
        ("KB", 1 << 10),
        ("M", 1 << 20),
        ("MB", 1 << 20),
        ("G", 1 << 30),
        ("GB", 1 << 30),
    ];
    match s.trim() {
        "-1" => Ok(-1),
        "0" => Ok(0),
        _ => scaled(s, UNITS)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| BYTE_RATE.to_string()),
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
    fn parses_log_rates() {
        assert_eq!(parse_log_rate("1K"), Ok(1024));
        assert_eq!(parse_log_rate("512b"), Ok(512));
        assert_eq!(parse_log_rate("2MB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_log_rate("-1"), Ok(-1));
        assert_eq!(parse_log_rate("0"), Ok(0));
        assert_eq!(parse_log_rate("100"), Err(BYTE_RATE.to_string()));
        assert!(parse_log_rate("-2").is_err());
        assert!(parse_log_rate("1.5K").is_err());
    }
}
