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

/// A 0600 token file and an empty unit dir in `dir`.
fn install_setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let token = dir.join("agent.token");
    std::fs::write(&token, "agent-token-for-tests-0123456789").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let units = dir.join("units");
    std::fs::create_dir_all(&units).expect("units");
    (token, units)
}

fn install(token: &Path, units: &Path, listen: &str, more: &[&str]) -> Output {
    let mut args = vec![
        "agent",
        "install",
        "--host",
        "h1",
        "--listen",
        listen,
        "--state-dir",
        "/var/lib/paas agent",
        "--token-file",
        token.to_str().expect("utf-8"),
        "--unit-dir",
        units.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(more);
    paas(&args)
}

#[test]
fn agent_install_writes_the_systemd_unit_and_prints_the_next_commands() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, units) = install_setup(dir.path());
    let out = install(&token, &units, "10.0.0.1:7070", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let unit = units.join("paas-agent.service");
    let mode = std::fs::metadata(&unit).expect("unit").permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);
    let body = std::fs::read_to_string(&unit).expect("unit");
    // Absolute paths: the binary and the token file resolved; a path with
    // a space quoted.
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_paas")).expect("binary");
    let token_abs = std::fs::canonicalize(&token).expect("token");
    let exec = format!(
        "ExecStart={} agent --host h1 --listen 10.0.0.1:7070 --state-dir \"/var/lib/paas agent\" --token-file {}\n",
        bin.display(),
        token_abs.display()
    );
    assert!(body.contains(&exec), "{exec}\n{body}");
    for line in [
        "Restart=always\n",
        "RestartSec=1\n",
        "KillMode=mixed\n",
        "TimeoutStopSec=360\n",
        "After=network-online.target\n",
        "Wants=network-online.target\n",
        "WantedBy=multi-user.target\n",
        "LimitNOFILE=65536\n",
    ] {
        assert!(body.contains(line), "{line}{body}");
    }
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with(&format!("Wrote {} (0644)", unit.display())),
        "{printed}"
    );
    assert!(printed.contains(&body), "{printed}");
    assert!(
        printed.contains("systemctl daemon-reload && systemctl enable --now paas-agent"),
        "{printed}"
    );

    // Again with the same flags: nothing changes.
    let out = install(&token, &units, "10.0.0.1:7070", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Unchanged "));

    // Other flags: the unit there is kept unless --force.
    let out = install(&token, &units, "10.0.0.1:7071", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("exists and is not the unit these flags make; --force replaces it"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&unit).expect("unit"), body);
    let out = install(&token, &units, "10.0.0.1:7071", &["--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Replaced "));
    assert!(text(&out.stdout).contains("systemctl restart paas-agent"));
    assert!(std::fs::read_to_string(&unit)
        .expect("unit")
        .contains("--listen 10.0.0.1:7071"));
}

#[test]
fn agent_install_refuses_bad_input_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, units) = install_setup(dir.path());
    let loose = dir.path().join("loose.token");
    std::fs::write(&loose, "agent-token-for-tests-0123456789").expect("token");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let tok = token.to_str().expect("utf-8");
    let unit_dir = units.to_str().expect("utf-8");
    let base = |host: &str, listen: &str, state: &str, token: &str| -> Vec<String> {
        [
            "agent",
            "install",
            "--host",
            host,
            "--listen",
            listen,
            "--state-dir",
            state,
            "--token-file",
            token,
            "--unit-dir",
            unit_dir,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            base(
                "h1",
                "10.0.0.1:7070",
                "/var/lib/paas",
                loose.to_str().expect("utf-8"),
            ),
            1,
            "must be readable by its owner only (chmod 600)",
        ),
        (
            base("h1", "10.0.0.1:7070", "/var/lib/paas", "/nonexistent/token"),
            1,
            "--token-file: agent token /nonexistent/token",
        ),
        (
            base("h1", "nowhere", "/var/lib/paas", tok),
            1,
            "--listen \"nowhere\": not an address and port",
        ),
        (
            base("h1", "10.0.0.1:0", "/var/lib/paas", tok),
            1,
            "needs a fixed port",
        ),
        (
            base("h1/x", "10.0.0.1:7070", "/var/lib/paas", tok),
            1,
            "--host \"h1/x\"",
        ),
        (
            base("h1", "10.0.0.1:7070", "var/lib/paas", tok),
            1,
            "--state-dir var/lib/paas: must be an absolute path",
        ),
        (
            {
                let mut a = base("h1", "10.0.0.1:7070", "/var/lib/paas", tok);
                a.extend(["--binary".to_string(), "/nonexistent/paas".to_string()]);
                a
            },
            1,
            "--binary /nonexistent/paas",
        ),
        (
            {
                let mut a = base("h1", "10.0.0.1:7070", "/var/lib/paas", tok);
                a.extend(["--tls-cert".to_string(), tok.to_string()]);
                a
            },
            2,
            "--tls-key",
        ),
    ];
    for (args, code, want) in cases {
        let out = paas(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        if code == 1 {
            assert!(err.starts_with("paas agent install: "), "{err}");
        }
    }
    assert_eq!(std::fs::read_dir(&units).expect("units").count(), 0);
}
