//! `cf version`.

/// `cf version X.Y.Z` (the binary's crate version).
pub fn line() -> String {
    format!("cf version {}", env!("CARGO_PKG_VERSION"))
}

pub fn run() {
    println!("{}", line());
}

#[cfg(test)]
mod tests {
    #[test]
    fn prints_cf_version() {
        assert!(super::line().starts_with("cf version "));
    }
}
