//! `cf scale NAME [--process TYPE] [-i N] [-m M] [-k D] [-l RATE] [-f]`.

use super::common::{confirm, find_app, print_app, processes, wait_for_start, Ctx};
use crate::error::{CliError, Result};
use crate::size::parse_mb;
use serde_json::{json, Map, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Number of instances
    #[arg(short = 'i')]
    pub instances: Option<u32>,
    /// Memory limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// Log rate limit per second, in bytes (e.g. 128B, 4K, 1M); -1 for unlimited
    #[arg(short = 'l', allow_negative_numbers = true)]
    pub log_rate_limit: Option<String>,
    /// Force restart of app without prompt
    #[arg(short = 'f')]
    pub force: bool,
    /// App process to scale
    #[arg(long = "process", default_value = "web")]
    pub process: String,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let memory = args
        .memory
        .as_deref()
        .map(parse_mb)
        .transpose()
        .map_err(|e| CliError::Usage(format!("Incorrect Usage: {e}")))?;
    let disk = args
        .disk
        .as_deref()
        .map(parse_mb)
        .transpose()
        .map_err(|e| CliError::Usage(format!("Incorrect Usage: {e}")))?;
    let log_rate = args
        .log_rate_limit
        .as_deref()
        .map(proto::size::parse_log_rate)
        .transpose()
        .map_err(|e| CliError::Usage(format!("Incorrect Usage: {e}")))?;
    let app = find_app(&ctx, &args.name).await?;
    let target = processes(&ctx, &app.guid)
        .await?
        .into_iter()
        .find(|p| p.kind == args.process)
        .ok_or_else(|| {
            CliError::other(format!(
                "Process {} not found for app {}",
                args.process, args.name
            ))
        })?;
    if args.instances.is_none() && memory.is_none() && disk.is_none() && log_rate.is_none() {
        println!(
            "Showing current scale of app {} {}...\n",
            args.name,
            ctx.where_()
        );
        // CF v8: the `cf app` block (its process part is the scale).
        print_app(&ctx, &app.guid).await?;
        return Ok(());
    }
    let restart =
        (memory.is_some() || disk.is_some() || log_rate.is_some()) && app.state == "STARTED";
    if restart
        && !args.force
        && !confirm(&format!(
            "This will cause the app to restart. Are you sure you want to scale {}?",
            args.name
        ))
    {
        println!("Scaling cancelled");
        return Ok(());
    }
    println!("Scaling app {} {}...", args.name, ctx.where_());
    let mut body = Map::new();
    if let Some(i) = args.instances {
        body.insert("instances".into(), json!(i));
    }
    if let Some(m) = memory {
        body.insert("memory_in_mb".into(), json!(m));
    }
    if let Some(d) = disk {
        body.insert("disk_in_mb".into(), json!(d));
    }
    if let Some(l) = log_rate {
        body.insert("log_rate_limit_in_bytes_per_second".into(), json!(l));
    }
    let _: Value = ctx
        .client
        .post(
            &format!("/v3/processes/{}/actions/scale", target.guid),
            Value::Object(body),
        )
        .await?;
    if restart {
        println!("Stopping app...\nRestarting app...");
        let _: Value = ctx
            .client
            .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
            .await?;
        wait_for_start(&ctx, &app).await?;
        return print_app(&ctx, &app.guid).await;
    }
    super::common::ok();
    Ok(())
}
