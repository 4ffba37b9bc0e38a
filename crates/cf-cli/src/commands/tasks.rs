//! The task commands: `cf run-task APP [--command CMD] [--name N] [-m M]
//! [-k D] [--process TYPE] [-w]`, `cf tasks APP`, `cf terminate-task APP ID`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::common::{find_app, ok, processes, Backoff, Ctx};
use crate::error::{CliError, Result};
use crate::format::table;
use crate::size::parse_mb;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Name of the app
    pub name: String,
    /// The command to execute (default: the app's `task` process command)
    #[arg(short = 'c', long = "command")]
    pub command: Option<String>,
    /// Name to give the task (generated if omitted)
    #[arg(long = "name")]
    pub task_name: Option<String>,
    /// Memory limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// Process type to use as a template for command, memory, and disk
    #[arg(long = "process")]
    pub process: Option<String>,
    /// Wait for the task to complete before exiting
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Name of the app
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct TerminateArgs {
    /// Name of the app
    pub name: String,
    /// The task's id (its sequence id, from `cf tasks`)
    pub task_id: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Task {
    guid: String,
    sequence_id: u64,
    name: String,
    command: Option<String>,
    state: String,
    created_at: String,
    result: TaskResult,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TaskResult {
    failure_reason: Option<String>,
}

fn size(flag: Option<&String>) -> Result<Option<u64>> {
    flag.map(|s| parse_mb(s))
        .transpose()
        .map_err(|e| CliError::Usage(format!("Incorrect Usage: {e}")))
}

pub async fn run(args: RunArgs) -> Result<()> {
    let memory = size(args.memory.as_ref())?;
    let disk = size(args.disk.as_ref())?;
    let ctx = Ctx::load()?;
    let app = find_app(&ctx, &args.name).await?;
    let mut body = Map::new();
    match &args.command {
        Some(c) => {
            body.insert("command".into(), json!(c));
        }
        None => {
            // CF v8: without a command, the `task` process is the template.
            let kind = args.process.clone().unwrap_or_else(|| "task".into());
            let p = processes(&ctx, &app.guid)
                .await?
                .into_iter()
                .find(|p| p.kind == kind)
                .ok_or_else(|| CliError::other(format!("Process {kind} not found")))?;
            body.insert("template".into(), json!({"process": {"guid": p.guid}}));
        }
    }
    if let Some(n) = &args.task_name {
        body.insert("name".into(), json!(n));
    }
    if let Some(m) = memory {
        body.insert("memory_in_mb".into(), json!(m));
    }
    if let Some(d) = disk {
        body.insert("disk_in_mb".into(), json!(d));
    }
    println!("Creating task for app {} {}...", app.name, ctx.where_());
    let task: Task = ctx
        .client
        .post(&format!("/v3/apps/{}/tasks", app.guid), Value::Object(body))
        .await?;
    println!("Task has been submitted successfully for execution.");
    ok();
    println!();
    print!(
        "{}",
        crate::format::kv(
            &[
                ("task name", task.name.clone()),
                ("task id", task.sequence_id.to_string())
            ],
            13
        )
    );
    if !args.wait {
        return Ok(());
    }
    println!("\nWaiting for task to complete execution...");
    let mut backoff = Backoff::new(Duration::from_millis(500));
    loop {
        let t: Task = ctx.client.get(&format!("/v3/tasks/{}", task.guid)).await?;
        match t.state.as_str() {
            "SUCCEEDED" => {
                println!("Task has completed successfully.");
                return Ok(());
            }
            "FAILED" => {
                return Err(CliError::other(format!(
                    "Task {} failed: {}",
                    t.sequence_id,
                    t.result.failure_reason.unwrap_or_default()
                )))
            }
            _ => backoff.wait().await,
        }
    }
}

/// `Sun, 06 Dec 2026 18:40:00 UTC` (CF's RFC 1123 start time).
fn start_time(created_at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%a, %d %b %Y %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| created_at.to_string())
}

pub async fn list(args: ListArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    let app = find_app(&ctx, &args.name).await?;
    println!("Getting tasks for app {} {}...\n", app.name, ctx.where_());
    let mut tasks: Vec<Task> = ctx
        .client
        .list(&format!("/v3/apps/{}/tasks?per_page=5000", app.guid))
        .await?;
    if tasks.is_empty() {
        println!("No tasks found");
        return Ok(());
    }
    // Newest first, as CF lists them.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.sequence_id));
    let mut rows = vec![vec![
        "id".to_string(),
        "name".into(),
        "state".into(),
        "start time".into(),
        "command".into(),
    ]];
    for t in tasks {
        rows.push(vec![
            t.sequence_id.to_string(),
            t.name,
            t.state,
            start_time(&t.created_at),
            t.command.unwrap_or_else(|| "[hidden]".into()),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub async fn terminate(args: TerminateArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    let app = find_app(&ctx, &args.name).await?;
    println!(
        "Terminating task {} of app {} {}...",
        args.task_id,
        app.name,
        ctx.where_()
    );
    let found: Vec<Task> = ctx
        .client
        .list(&format!(
            "/v3/apps/{}/tasks?sequence_ids={}&per_page=1&page=1",
            app.guid, args.task_id
        ))
        .await?;
    let task = found
        .into_iter()
        .next()
        .ok_or_else(|| CliError::other(format!("Task sequence ID {} not found.", args.task_id)))?;
    let _: Value = ctx
        .client
        .put(&format!("/v3/tasks/{}/cancel", task.guid), json!({}))
        .await?;
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_read_as_cf_prints_them() {
        assert_eq!(
            start_time("2026-12-06T18:40:00.123456Z"),
            "Sun, 06 Dec 2026 18:40:00 UTC"
        );
        assert_eq!(start_time("not a time"), "not a time");
    }
}
