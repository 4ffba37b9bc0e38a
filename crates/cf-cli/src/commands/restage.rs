//! `cf restage NAME [--strategy S] [--max-in-flight N] [--instance-steps
//! W,...] [--no-wait]`: a new build from the latest package, then a
//! restart, or with `--strategy` a deployment of the new droplet.

use super::common::{find_app, print_app, stage, wait_for_start_with, Ctx};
use super::deployments::{self, check_flags, FlagsOf, Flavor, Source, StrategyFlags};
use crate::error::{CliError, Result};
use crate::models::Package;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Deployment strategy can be canary, rolling or null.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Defines the maximum number of instances that will be actively being
    /// restaged. Only applies when --strategy flag is specified.
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

pub async fn run(args: Args) -> Result<()> {
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
    if deploy.is_none() {
        println!("This action will cause app downtime.\n");
    }
    println!("Restaging app {name} {}...", ctx.where_());
    let app = find_app(&ctx, name).await?;
    let mut packages: Vec<Package> = ctx
        .client
        .list(&format!("/v3/apps/{}/packages", app.guid))
        .await?;
    packages.retain(|p| p.state == "READY");
    packages.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let package = packages.pop().ok_or_else(|| {
        CliError::other(format!(
            "App '{name}' has no uploaded package; use 'cf push' first."
        ))
    })?;
    let droplet = stage(&ctx, &app.guid, &package.guid).await?;
    // A stopped app has no instances to replace: as without a strategy.
    if let Some(opts) = deploy.filter(|_| app.state == "STARTED") {
        println!();
        return deployments::deploy(&ctx, &app, Source::Droplet(droplet), &opts, Flavor::Restart)
            .await;
    }
    super::common::set_current_droplet(&ctx, &app.guid, &droplet).await?;
    if app.state == "STARTED" {
        let _: Value = ctx
            .client
            .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
            .await?;
        wait_for_start_with(&ctx, &app, !args.no_wait, None).await?;
    } else {
        println!();
    }
    print_app(&ctx, &app.guid).await
}
