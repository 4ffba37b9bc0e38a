//! Memory and disk sizes as CF writes them (`256M`, `1G`), in megabytes:
//! one parser for the CLI's flags and manifests and the controller's
//! `apply_manifest`.

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

/// CF's message for a log rate without a (known) unit.
pub const BYTE_RATE: &str =
    "Byte quantity must be an integer with a unit of measurement like B, K, KB, M, MB, G, or GB";

/// A log rate limit to bytes a second: `1K`, `512B`, `1M`; `-1` is
/// unlimited and `0` nothing, as in CF.
pub fn parse_log_rate(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_uppercase();
    if t == "-1" {
        return Ok(-1);
    }
    if t == "0" {
        return Ok(0);
    }
    let invalid = || BYTE_RATE.to_string();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: i64 = num.parse().map_err(|_| invalid())?;
    let mult: i64 = match unit.trim() {
        "B" => 1,
        "K" | "KB" => 1024,
        "M" | "MB" => 1024 * 1024,
        "G" | "GB" => 1024 * 1024 * 1024,
        _ => return Err(invalid()),
    };
    n.checked_mul(mult).ok_or_else(invalid)
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
