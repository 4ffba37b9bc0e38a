//! The cf CLI's terminal habits (issue 14, items 6 and 9), with the real
//! `cf` against a real platform: usage errors, `FAILED` after the message,
//! colour only when asked or on a terminal, no runtime internals in
//! messages, prompts read from a pipe; and CF's `CELL`, `HEALTH` and `API`
//! lines in `cf logs --recent` for an app that runs out of memory, one that
//! never listens and one that exits with status 3.

use std::time::Duration;

use anyhow::{ensure, Result};
use integration::{fixture, Platform, PlatformOptions};
use testkit::wait_for;

const T: Duration = Duration::from_secs(90);

/// One row: arguments, stdin, expected exit code, a line expected on
/// stderr (or stdout when it starts with `stdout:`), texts that must not
/// appear anywhere.
struct Case {
    args: Vec<String>,
    stdin: Option<&'static str>,
    code: i32,
    expect: String,
    never: &'static [&'static str],
}

fn case(args: &[&str], code: i32, expect: &str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        code,
        expect: expect.to_string(),
        never: &[
            "os error",
            "EOCD",
            "expected u32",
            "invalid digit",
            "panicked",
        ],
    }
}

async fn check(p: &Platform, cases: &[Case]) -> Result<()> {
    for c in cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        // In the admin's session (the platform's CF_HOME).
        let out = Platform::cf_run(&p.cf_home, &args, c.stdin).await?;
        let all = format!("{}\n{}", out.stdout, out.stderr);
        ensure!(
            out.status == c.code,
            "cf {}: exit {} (want {}):\n{all}",
            args.join(" "),
            out.status,
            c.code
        );
        let (where_, text) = match c.expect.strip_prefix("stdout:") {
            Some(t) => (&out.stdout, t),
            None => (&out.stderr, c.expect.as_str()),
        };
        ensure!(
            where_.contains(text),
            "cf {}: expected {text:?}:\n{all}",
            args.join(" ")
        );
        for bad in c.never {
            ensure!(
                !all.contains(bad),
                "cf {}: {bad:?} in the output:\n{all}",
                args.join(" ")
            );
        }
        let usage = out.stderr.starts_with("Incorrect Usage")
            || out.stderr.contains("is not a registered command");
        if c.code != 0 && !usage {
            // The message on stderr, then FAILED (uncoloured when piped).
            ensure!(
                out.stdout.trim_end().ends_with("FAILED") && !out.stdout.contains('\x1b'),
                "cf {}: no plain FAILED last on stdout:\n{all}",
                args.join(" ")
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_exit_codes_and_prompts() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let py = fixture("pyapp");
    let py = py.to_str().unwrap_or_default();
    p.cf_ok(&["push", "term", "-p", py]).await?;
    let not_zip = p.dir.path().join("notes.txt");
    std::fs::write(&not_zip, "not a zip")?;
    let not_zip = not_zip.to_str().unwrap_or_default().to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let unreachable = format!("http://{closed}");
    let mut cases = vec![
        case(
            &["push", "--bogus"],
            1,
            "Incorrect Usage: unexpected argument '--bogus'",
        ),
        case(&["push", "--bogus"], 1, "Usage: cf push"),
        case(
            &["scale", "term", "-i", "abc"],
            1,
            "Incorrect Usage: invalid value 'abc' for '-i <INSTANCES>'",
        ),
        case(
            &["pish"],
            1,
            "'pish' is not a registered command. See 'cf help -a'",
        ),
        case(&["help", "-a"], 0, "stdout:ROUTES:"),
        case(&[], 0, "stdout:Use 'cf help -a' to see all commands."),
        case(&["--version"], 0, "stdout:cf version "),
        case(&["app", "nope"], 1, "App 'nope' not found."),
        case(
            &["push", "term2", "-p", "/no/such/dir"],
            1,
            "The specified path '/no/such/dir' does not exist.",
        ),
        case(
            &["push", "term3", "-p", &not_zip],
            1,
            "is neither a directory nor a zip file",
        ),
        case(
            &["restage", "term"],
            0,
            "stdout:This action will cause app downtime.",
        ),
    ];
    // Prompts read a piped answer as they read a terminal's.
    let mut no = case(&["delete", "term"], 0, "stdout:Really delete the app term?");
    no.stdin = Some("n\n");
    cases.push(no);
    let mut scale_no = case(
        &["scale", "term", "-m", "512M"],
        0,
        "stdout:Scaling cancelled",
    );
    scale_no.stdin = Some("n\n");
    cases.push(scale_no);
    check(&p, &cases).await?;
    // Still there after both refusals, at its old size.
    let app = p.cf_ok(&["app", "term"]).await?;
    ensure!(!app.stdout.contains("512M"), "{}", app.stdout);

    // Colour when CF_COLOR says so, even through a pipe.
    let out = {
        let mut cmd = tokio::process::Command::new(integration::bin("cf")?);
        cmd.args(["app", "nope"])
            .env("CF_HOME", &p.cf_home)
            .env("CF_COLOR", "true")
            .stdin(std::process::Stdio::null());
        cmd.output().await?
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(stdout.contains("\x1b[31;1mFAILED\x1b[0m"), "{stdout:?}");

    // An API that does not answer says so, and nothing is saved.
    let home = p.cf_home("unreachable")?;
    let out = Platform::cf_run(&home, &["api", &unreachable], None).await?;
    ensure!(out.status == 1, "{out:?}");
    ensure!(
        out.stderr.contains("Request error") && out.stderr.contains(&unreachable),
        "{out:?}"
    );
    ensure!(!out.stderr.contains("os error"), "{out:?}");
    Ok(())
}

fn container_opts() -> PlatformOptions {
    PlatformOptions {
        dea_config: "backend = \"namespaces\"\nwarm_pool_size = 0\n".into(),
        ..PlatformOptions::default()
    }
}

/// `cf logs --recent` of `app` once it holds every one of `lines`.
async fn recent_with(p: &Platform, app: &str, lines: &[&str]) -> Result<String> {
    let out = wait_for(&format!("{lines:?} in the logs of {app}"), T, || async {
        let out = p.cf(&["logs", app, "--recent"]).await.ok()?;
        lines
            .iter()
            .all(|l| out.stdout.contains(l))
            .then_some(out.stdout)
    })
    .await;
    match out {
        Ok(o) => Ok(o),
        Err(e) => {
            let now = p.cf(&["logs", app, "--recent"]).await?;
            anyhow::bail!("{e}\n{}", now.stdout)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_an_instance_died_is_in_the_logs() -> Result<()> {
    if !testkit::require_root("out-of-memory lines need cgroups", &[]) {
        return Ok(());
    }
    let p = Platform::start_with(container_opts()).await?;
    p.login().await?;

    // Exit status 3: CELL's exit line and API's crash line.
    let crash = fixture("crashapp");
    let out = p
        .cf(&[
            "push",
            "crashy",
            "-p",
            crash.to_str().unwrap_or_default(),
            "-u",
            "process",
        ])
        .await?;
    ensure!(out.status != 0, "{out:?}");
    let logs = recent_with(
        &p,
        "crashy",
        &[
            "[CELL/0] OUT Exit status 3",
            "[API/0] OUT App instance exited with guid",
            "\"exit_status\"=>3",
            "[CELL/0] OUT Cell ",
        ],
    )
    .await?;
    // Ordered by time: the cell creates the container before the exit.
    let created = logs.find("creating container").unwrap_or(usize::MAX);
    let exited = logs.find("Exit status 3").unwrap_or(0);
    ensure!(created < exited, "{logs}");

    // Never listens: HEALTH says which port and why, CELL says it timed out,
    // and cf push ends with the TIP about $PORT.
    let py = fixture("pyapp");
    let out = p
        .cf(&[
            "push",
            "deaf",
            "-p",
            py.to_str().unwrap_or_default(),
            "-c",
            "python3 -c 'import time; time.sleep(600)'",
            "-t",
            "2",
        ])
        .await?;
    ensure!(out.status != 0, "{out:?}");
    recent_with(
        &p,
        "deaf",
        &[
            "[HEALTH/0] ERR Failed to make TCP connection to port ",
            ": connection refused",
            "[CELL/0] ERR Timed out after 2s: health check never passed.",
        ],
    )
    .await?;

    // Out of memory: exit 137 and the reason.
    let probe = fixture("probeapp");
    p.cf_ok(&[
        "push",
        "hog",
        "-p",
        probe.to_str().unwrap_or_default(),
        "-m",
        "64M",
    ])
    .await?;
    let _ = p.get_via_router("hog.localhost", "/alloc?mb=200").await;
    recent_with(&p, "hog", &["[CELL/0] OUT Exit status 137 (out of memory)"]).await?;

    // A stop says so too (once the health manager has it running again).
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "hog").await?;
    p.wait_running(&token, &guid, 1, T).await?;
    p.cf_ok(&["stop", "hog"]).await?;
    recent_with(
        &p,
        "hog",
        &[
            "[CELL/0] OUT Stopping instance",
            "[CELL/0] OUT Successfully destroyed container",
        ],
    )
    .await?;
    Ok(())
}
