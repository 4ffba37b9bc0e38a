//! Tests that need root (namespaces, cgroups, iptables) never pass
//! silently: under `CI=true` a missing requirement fails the test, naming
//! it; outside CI the test says on one line that it was skipped and why.

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

/// What a root-only test does.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    /// Outside CI: the line to print.
    Skip(String),
    /// Under CI: the panic message.
    Fail(String),
}

/// The rule, purely: `root`, each of `needs` (what it is, whether it is
/// there), and whether this is CI.
pub fn verdict(test: &str, root: bool, needs: &[(&str, bool)], ci: bool) -> Verdict {
    let mut missing = Vec::new();
    if !root {
        missing.push("root");
    }
    missing.extend(needs.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what));
    if missing.is_empty() {
        return Verdict::Run;
    }
    reason_verdict(test, &format!("needs {}", missing.join(", ")), ci)
}

fn reason_verdict(test: &str, reason: &str, ci: bool) -> Verdict {
    if ci {
        Verdict::Fail(format!("{test} cannot run under CI=true: it {reason}"))
    } else {
        Verdict::Skip(format!(
            "SKIPPED {test}: it {reason} (run as root to include it; under CI=true this fails)"
        ))
    }
}

/// Whether a root-only test can run: root, and each of `needs`. When not,
/// under CI the test fails naming what is missing; elsewhere it prints one
/// `SKIPPED <test>: ...` line and the caller returns:
/// `if !testkit::require_root("namespaces", &[("cgroups, ip, iptables", available())]) { return; }`
pub fn require_root(test: &str, needs: &[(&str, bool)]) -> bool {
    act(verdict(test, is_root(), needs, in_ci()))
}

/// Under CI: panics with `reason`; elsewhere prints one SKIPPED line.
pub fn skip_or_fail(test: &str, reason: &str) {
    act(reason_verdict(test, reason, in_ci()));
}

/// Prints `line` straight to stderr, past the test harness's capture, so
/// that it shows in the summary of a passing run (a skipped test says so).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn act(v: Verdict) -> bool {
    match v {
        Verdict::Run => true,
        Verdict::Skip(line) => {
            say(&line);
            false
        }
        Verdict::Fail(msg) => panic!("{msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_only_tests_fail_under_ci_and_skip_aloud_elsewhere() {
        let ipt = [("iptables", false)];
        type Case<'a> = (bool, &'a [(&'a str, bool)], bool, &'a str);
        let cases: [Case; 5] = [
            (true, &[], true, "run"),
            (false, &[], true, "fail: it needs root"),
            (false, &[], false, "skip: it needs root"),
            (true, &ipt, true, "fail: it needs iptables"),
            (false, &ipt, false, "skip: it needs root, iptables"),
        ];
        for (root, needs, ci, want) in cases {
            let got = match verdict("t", root, needs, ci) {
                Verdict::Run => "run".to_string(),
                Verdict::Fail(m) => {
                    assert!(m.starts_with("t cannot run under CI=true"), "{m}");
                    format!("fail: {}", m.rsplit_once(": ").map_or("", |x| x.1))
                }
                Verdict::Skip(l) => {
                    assert!(l.starts_with("SKIPPED t: "), "{l}");
                    let reason = l.trim_start_matches("SKIPPED t: ");
                    format!("skip: {}", reason.split(" (").next().unwrap_or(""))
                }
            };
            assert_eq!(got, want, "root={root} ci={ci}");
        }
    }

    #[test]
    #[ignore = "run as a non-root user by under_ci_a_root_only_test_fails_when_not_root"]
    fn root_only_probe() {
        // As a root-only test starts; its body would follow.
        let _ = require_root("root_only_probe", &[]);
    }

    /// This test binary's root-only probe, run as `nobody` (when we are
    /// root) with CI=true, fails and names what is missing.
    #[test]
    fn under_ci_a_root_only_test_fails_when_not_root() {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd
            .args(["--ignored", "--exact", "root::tests::root_only_probe"])
            .env("CI", "true")
            .current_dir("/")
            .output()
            .expect("run the probe");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "the probe passed:\n{text}");
        assert!(
            text.contains("root_only_probe cannot run under CI=true: it needs root"),
            "{text}"
        );
    }
}
