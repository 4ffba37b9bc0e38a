//! `paas` as an operator runs it: the dry run's plan from a manifest and a
//! recorded state, `paas status`, and bad input refused with the field
//! named and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output};

const MANIFEST: &str = r#"
name: lab
release: {version: v2, dir: /opt/paas/releases}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: h1, address: 10.0.0.1, roles: [nats, controller, router, health_manager]}
  - {name: h2, address: 10.0.0.2, roles: [nats, dea]}
  - {name: h3, address: 10.0.0.3, roles: [nats, dea]}
  - {name: h4, address: 10.0.0.4, roles: [dea]}
update: {canaries: 1, max_in_flight: 1, failure_budget: 0, watch_time: 30s}
"#;

fn paas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paas"))
        .args(args)
        .output()
        .expect("run paas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p.display().to_string()
}

#[test]
fn dry_run_plans_a_first_deploy_then_an_upgrade_from_the_recorded_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "lab.yml", MANIFEST);
    let out = paas(&["deploy", "--dry-run", &m]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.starts_with("Deployment lab: release v2 (first deploy, 4 hosts)"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "  wave 1: h1 [nats (new) -> v2]; h2 [nats (new) -> v2]; h3 [nats (new) -> v2]"
        ),
        "{plan}"
    );

    // The recorded state (.paas/lab/state.json beside the manifest): all on v1.
    let mut hosts = serde_json::Map::new();
    for (h, roles) in [
        (
            "h1",
            &["nats", "controller", "router", "health_manager"][..],
        ),
        ("h2", &["nats", "dea"][..]),
        ("h3", &["nats", "dea"][..]),
        ("h4", &["dea"][..]),
    ] {
        let comps: serde_json::Map<String, serde_json::Value> = roles
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    serde_json::json!({"version": "v1", "healthy": true}),
                )
            })
            .collect();
        hosts.insert(h.into(), serde_json::json!({ "components": comps }));
    }
    let state_dir = dir.path().join(".paas").join("lab");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let state = serde_json::json!({ "hosts": hosts }).to_string();
    write(&state_dir, "state.json", &state);
    let out = paas(&["deploy", "--dry-run", &m]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("(upgrade, 4 hosts)"), "{plan}");
    assert!(plan.contains("  wave 1 (canary): h1 [nats v1 -> v2]\n  wave 2: h2 [nats v1 -> v2]\n  wave 3: h3 [nats v1 -> v2]\n"), "{plan}");
    assert!(plan.contains("group 4: dea\n"), "{plan}");

    let out = paas(&["status", &m]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(status.contains("h4"), "{status}");
    assert_eq!(status.matches("outdated").count(), 9, "{status}");

    // Carrying a plan out needs the agents' token: refused plainly, state
    // untouched.
    let out = paas(&["deploy", &m]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("agent_token_file: needed to reach the host agents"),
        "{}",
        text(&out.stderr)
    );
    let out = paas(&["events", &m]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "No deployment of lab yet.\n");
    let after = std::fs::read_to_string(state_dir.join("state.json")).expect("state");
    assert_eq!(after, state);
}

#[test]
fn bad_manifests_and_states_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (MANIFEST.replace("10.0.0.4", "10.0.0.3"), "hosts[3].address"),
        (
            MANIFEST.replace("max_in_flight: 1", "max_in_flight: lots"),
            "max_in_flight must be",
        ),
        (
            MANIFEST.replace("postgres://cc@10.0.0.1/cc", "sqlite://x"),
            "database_url",
        ),
        ("{[".to_string(), "not valid YAML"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let m = write(dir.path(), &format!("bad{i}.yml"), body);
        let out = paas(&["deploy", "--dry-run", &m]);
        assert_eq!(out.status.code(), Some(1), "{want}");
        assert!(
            text(&out.stderr).contains(want),
            "{want}: {}",
            text(&out.stderr)
        );
    }
    let out = paas(&["status", "/nonexistent/lab.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/lab.yml"));
    let m = write(dir.path(), "lab.yml", MANIFEST);
    let state = write(dir.path(), "state.json", "not json");
    let out = paas(&["deploy", "--dry-run", "--state", &state, &m]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a deployment state"),
        "{}",
        text(&out.stderr)
    );
}
