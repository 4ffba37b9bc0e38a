//! `cf start`, `cf stop`, `cf restart` (`--strategy`: a deployment of the
//! current droplet instead of stopping every instance).

use super::common::{
    find_app, print_app, stage, stage_if_unstaged, unstaged_package, wait_for_start,
    wait_for_start_with, Ctx,
};
use super::deployments::{self, check_flags, FlagsOf, Flavor, Source, StrategyFlags};
use crate::error::{CliError, Result};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Name of the app
    pub name: String,
    /// Deployment strategy can be canary, rolling or null.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Defines the maximum number of instances that will be actively
    /// restarted at any given time. Only applies when --strategy flag is
    /// specified.
    #[arg(long = "max-in-flight", allow_negative_numbers = true)]
    pub max_in_flight: Option<i64>,
    /// An array of percentage steps to deploy when using deployment strategy
    /// canary. (e.g. 20,40,60)
    #[arg(long = "instance-steps")]
    pub instance_steps: Option<String>,
    /// Exit when the first instance of the web process is healthy
    #[arg(long)]
    pub no_wait: bool,
}

pub async fn start(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Starting app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    if app.state == "STARTED" {
        println!("App '{name}' is already started.\n\nOK");
        return Ok(());
    }
    stage_if_unstaged(&ctx, &app).await?;
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/start", app.guid), json!({}))
        .await
        .map_err(no_droplet_hint)?;
    wait_for_start(&ctx, &app).await?;
    print_app(&ctx, &app.guid).await
}

fn no_droplet_hint(e: CliError) -> CliError {
    match e {
        CliError::Api {
            status: 422,
            detail,
            ..
        } if detail.to_ascii_lowercase().contains("droplet") => CliError::other(format!(
            "{detail}\n\nTIP: push the app first with 'cf push'"
        )),
        other => other,
    }
}

pub async fn stop(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Stopping app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    if app.state == "STOPPED" {
        println!("App '{name}' is already stopped.\n\nOK");
        return Ok(());
    }
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/stop", app.guid), json!({}))
        .await?;
    super::common::ok();
    Ok(())
}

pub async fn restart(args: RestartArgs) -> Result<()> {
    let deploy = check_flags(
        FlagsOf::Restart,
        &StrategyFlags {
            strategy: args.strategy.clone(),
            max_in_flight: args.max_in_flight,
            instance_steps: args.instance_steps.clone(),
            no_wait: args.no_wait,
        },
    )?;
    let name = args.name.as_str();
    let ctx = Ctx::load()?;
    println!("Restarting app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    // A strategy replaces a started app's instances step by step; a
    // stopped app has none to keep, so it starts as without one (CF too).
    if let Some(opts) = deploy.filter(|_| app.state == "STARTED") {
        let source = match unstaged_package(&ctx, &app).await? {
            Some(package) => {
                let droplet = stage(&ctx, &app.guid, &package).await?;
                println!();
                Source::Droplet(droplet)
            }
            None => Source::Current,
        };
        return deployments::deploy(&ctx, &app, source, &opts, Flavor::Restart).await;
    }
    stage_if_unstaged(&ctx, &app).await?;
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
        .await
        .map_err(no_droplet_hint)?;
    wait_for_start_with(&ctx, &app, !args.no_wait, None).await?;
    print_app(&ctx, &app.guid).await
}
