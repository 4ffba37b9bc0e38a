//! Issue 16 (tasks, revisions): `cf run-task`, `cf tasks`,
//! `cf terminate-task` and `cf revisions` with the real `cf` against a real
//! platform: a task runs once in a container of its own from the app's
//! droplet, with the app's env, and ends SUCCEEDED or FAILED with CF's
//! reason; its lines are tagged `APP/TASK/<name>/0`.

use std::time::Duration;

use anyhow::Result;
use integration::{wait_for, Platform};

const T: Duration = Duration::from_secs(60);

/// Pushes `name`: a web app (binary buildpack) serving `index.txt` ("web").
async fn push_web(p: &Platform, name: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.txt"), "web\n")?;
    let d = dir.path().to_str().unwrap_or_default().to_string();
    let cmd = "python3 -m http.server $PORT";
    p.cf_ok(&[
        "push", name, "-p", &d, "-b", "binary", "-c", cmd, "-m", "64M",
    ])
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_tasks_and_terminate_task() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    push_web(&p, "jobs").await?;
    p.cf_ok(&["set-env", "jobs", "GREETING", "hello"]).await?;

    // A task that succeeds: the app's files and env, its own log tag.
    let out = p
        .cf_ok(&[
            "run-task",
            "jobs",
            "--command",
            "cat index.txt; echo task-says-$GREETING",
            "--name",
            "greet",
            "-m",
            "32M",
            "--wait",
        ])
        .await?;
    for want in [
        "Creating task for app jobs in org dev / space dev as admin...",
        "Task has been submitted successfully for execution.",
        "task name:   greet",
        "task id:     1",
        "Task has completed successfully.",
    ] {
        assert!(out.stdout.contains(want), "{want}: {}", out.stdout);
    }
    wait_for("the task's lines in cf logs --recent", T, || async {
        let out = p.cf(&["logs", "jobs", "--recent"]).await.ok()?;
        (out.stdout
            .contains("[APP/TASK/greet/0] OUT task-says-hello")
            && out.stdout.contains("[APP/TASK/greet/0] OUT web"))
        .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;

    // A task that fails: exit 1 with CF's reason.
    let out = p
        .cf(&["run-task", "jobs", "-c", "exit 3", "--name", "bad", "-w"])
        .await?;
    assert_eq!(out.status, 1, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("Task 2 failed: APP/TASK/bad: Exited with status 3"),
        "{}",
        out.stderr
    );

    // A long task, terminated.
    p.cf_ok(&["run-task", "jobs", "-c", "sleep 300", "--name", "long"])
        .await?;
    let out = p.cf_ok(&["terminate-task", "jobs", "3"]).await?;
    assert!(
        out.stdout
            .contains("Terminating task 3 of app jobs in org dev / space dev as admin..."),
        "{}",
        out.stdout
    );
    let listed = wait_for("task 3 FAILED", T, || async {
        let out = p.cf(&["tasks", "jobs"]).await.ok()?;
        out.stdout
            .lines()
            .any(|l| l.starts_with("3 ") && l.contains("long") && l.contains("FAILED"))
            .then_some(out.stdout)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;
    // Newest first, CF's columns.
    let lines: Vec<&str> = listed.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("id "))
        .unwrap_or_default();
    assert!(
        lines[header].contains("name") && lines[header].contains("start time"),
        "{listed}"
    );
    assert!(lines[header + 1].starts_with("3 "), "{listed}");
    assert!(
        lines[header + 2].starts_with("2 ") && lines[header + 2].contains("FAILED"),
        "{listed}"
    );
    assert!(
        lines[header + 3].starts_with("1 ") && lines[header + 3].contains("SUCCEEDED"),
        "{listed}"
    );
    let out = p.cf(&["terminate-task", "jobs", "9"]).await?;
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("Task sequence ID 9 not found."),
        "{}",
        out.stderr
    );

    // The app itself was never touched.
    let (status, body) = p.get_via_router("jobs.localhost", "/index.txt").await?;
    assert_eq!((status, body.as_str()), (200, "web\n"));

    // Revisions: the push's, then the restart with the new variable's.
    p.cf_ok(&["restart", "jobs"]).await?;
    let out = p.cf_ok(&["revisions", "jobs"]).await?;
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("revision "))
        .collect();
    assert!(
        rows.len() == 3
            && rows[1].starts_with("2(deployed)")
            && rows[1].contains("New environment variables deployed.")
            && rows[2].starts_with("1 ")
            && rows[2].contains("Initial revision.")
            && rows[2].contains("true"),
        "{}",
        out.stdout
    );
    Ok(())
}

/// A task whose DEA is killed (a lost machine) fails, and is not run again
/// (CF never re-runs a task silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_dea_is_killed_fails() -> Result<()> {
    // The process backend: a DEA killed with -9 leaves no network set-up
    // that only `dea container-cleanup` removes (as the fault tests).
    let mut p = Platform::start_with(integration::PlatformOptions {
        deas: 1,
        dea_config: "backend = \"process\"\n".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    push_web(&p, "lostjobs").await?;
    p.cf_ok(&[
        "run-task",
        "lostjobs",
        "-c",
        "sleep 300",
        "--name",
        "doomed",
        "-m",
        "32M",
    ])
    .await?;
    task_state(&p, "lostjobs", "RUNNING").await?;
    p.kill_dea_hard(0);
    // Failed by the controller's sweep, within LOST_AFTER and a margin.
    task_state(&p, "lostjobs", "FAILED").await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "lostjobs").await?;
    let tasks = p.api_get(&token, &format!("/v3/apps/{guid}/tasks")).await?;
    let reason = tasks["resources"][0]["result"]["failure_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.starts_with("Cell lost") || reason.starts_with("Task lost"),
        "{tasks}"
    );
    Ok(())
}

/// Waits until `cf tasks APP` shows task 1 in `want`.
async fn task_state(p: &Platform, app: &str, want: &str) -> Result<()> {
    wait_for(
        &format!("task 1 {want}"),
        Duration::from_secs(60),
        || async {
            let out = p.cf(&["tasks", app]).await.ok()?;
            out.stdout
                .lines()
                .any(|l| l.starts_with("1 ") && l.contains(want))
                .then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))
}
