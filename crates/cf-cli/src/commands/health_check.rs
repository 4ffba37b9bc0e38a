//! `cf get-health-check APP_NAME` and `cf set-health-check APP_NAME
//! (process | port | http [--endpoint PATH]) [--process PROCESS]
//! [--invocation-timeout N]` (the process's v3 `health_check`).

use super::common::{find_app, ok, processes, Ctx};
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::Process;
use serde_json::{json, Value};

/// Each health check attempt of a DEA waits at most this long (seconds);
/// it is not configurable per process.
/// The per-probe timeout when none is set (the DEA's default).
pub const INVOCATION_TIMEOUT_S: u64 = 1;

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Name of the app
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Process,
    Port,
    Http,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Process => "process",
            Kind::Port => "port",
            Kind::Http => "http",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Name of the app
    pub name: String,
    /// Health check type
    #[arg(value_enum)]
    pub kind: Kind,
    /// Path on the app
    #[arg(long, default_value = "/")]
    pub endpoint: String,
    /// App process to update
    #[arg(long, default_value = "web")]
    pub process: String,
    /// Time (in seconds) that controls individual health check invocations
    #[arg(long = "invocation-timeout")]
    pub invocation_timeout: Option<u64>,
}

/// The `cf get-health-check` table.
pub fn health_table(procs: &[Process]) -> String {
    let mut rows = vec![vec![
        "process".to_string(),
        "health check".into(),
        "endpoint (for http)".into(),
        "invocation timeout".into(),
    ]];
    for p in procs {
        let endpoint = if p.health_check.kind == "http" {
            p.health_check.data.endpoint.clone().unwrap_or_default()
        } else {
            String::new()
        };
        rows.push(vec![
            p.kind.clone(),
            p.health_check.kind.clone(),
            endpoint,
            p.health_check
                .data
                .invocation_timeout
                .unwrap_or(INVOCATION_TIMEOUT_S)
                .to_string(),
        ]);
    }
    table(&rows)
}

/// The `PATCH /v3/processes/:guid` body.
pub fn health_body(kind: Kind, endpoint: &str, invocation_timeout: Option<u64>) -> Value {
    let mut data = match kind {
        Kind::Http => json!({ "endpoint": endpoint }),
        _ => json!({}),
    };
    if let Some(t) = invocation_timeout {
        data["invocation_timeout"] = json!(t);
    }
    json!({"health_check": {"type": kind.as_str(), "data": data}})
}

pub async fn get(args: GetArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Getting health check type for app {} {}...\n",
        args.name,
        ctx.where_()
    );
    let app = find_app(&ctx, &args.name).await?;
    let mut procs = processes(&ctx, &app.guid).await?;
    if procs.is_empty() {
        println!("App has no processes");
        return Ok(());
    }
    procs.sort_by(|a, b| (a.kind != "web", &a.kind).cmp(&(b.kind != "web", &b.kind)));
    print!("{}", health_table(&procs));
    Ok(())
}

pub async fn set(args: SetArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    if args.invocation_timeout == Some(0) {
        return Err(CliError::Usage(
            "Incorrect Usage: Value for flag 'invocation-timeout' must be an integer greater than or equal to 1".into(),
        ));
    }
    if args.kind == Kind::Http && !args.endpoint.starts_with('/') {
        return Err(CliError::Usage(
            "Incorrect Usage: The endpoint must be a path starting with '/'".into(),
        ));
    }
    println!(
        "Updating health check type for app {} process {} {}...\n",
        args.name,
        args.process,
        ctx.where_()
    );
    let app = find_app(&ctx, &args.name).await?;
    let procs = processes(&ctx, &app.guid).await?;
    let Some(p) = procs.iter().find(|p| p.kind == args.process) else {
        return Err(CliError::other(format!(
            "Process {} not found",
            args.process
        )));
    };
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/processes/{}", p.guid),
            health_body(args.kind, &args.endpoint, args.invocation_timeout),
        )
        .await?;
    ok();
    if app.state == "STARTED" {
        println!("TIP: An app restart is required for the change to take effect.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_bodies() {
        let procs: Vec<Process> = serde_json::from_value(json!([
            {"guid": "p1", "type": "web", "health_check": {"type": "http", "data": {"endpoint": "/health", "timeout": null, "invocation_timeout": 5}}},
            {"guid": "p2", "type": "worker", "health_check": {"type": "process", "data": {"endpoint": null}}}
        ]))
        .expect("procs");
        assert_eq!(
            health_table(&procs),
            "process   health check   endpoint (for http)   invocation timeout\n\
             web       http           /health               5\n\
             worker    process                              1\n"
        );
        assert_eq!(
            health_body(Kind::Http, "/h", None),
            json!({"health_check": {"type": "http", "data": {"endpoint": "/h"}}})
        );
        assert_eq!(
            health_body(Kind::Port, "/", Some(3)),
            json!({"health_check": {"type": "port", "data": {"invocation_timeout": 3}}})
        );
    }
}
