//! Tests that need root (namespaces, cgroups, iptables) never pass
//! silently: under `CI=true` a missing requirement fails the test; outside
//! CI the test says on one line that it was skipped and why.

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the suite runs in CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").ok().as_deref(),
        Some("true") | Some("1")
    )
}

/// Whether a root-only test can run: root, and each of `needs` (what it
/// is, whether it is there). When not, under CI the test fails naming what
/// is missing; elsewhere it prints one `SKIPPED <test>: ...` line and the
/// caller returns:
/// `if !testkit::require_root("namespaces", &[("cgroups, ip, iptables", available())]) { return; }`
pub fn require_root(test: &str, needs: &[(&str, bool)]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    missing.extend(needs.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what));
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(test, &format!("needs {}", missing.join(", ")));
    false
}

/// Under CI: panics with `reason`; elsewhere prints one SKIPPED line.
pub fn skip_or_fail(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test} cannot run under CI=true: it {reason}");
    }
    eprintln!("SKIPPED {test}: it {reason} (run as root to include it; under CI=true this fails)");
}
