//! `cf rollback APP --version N [-f] [--strategy S] [--max-in-flight N]
//! [--instance-steps W,...]`: a deployment of revision N (its droplet and
//! settings), rolling unless `--strategy` says otherwise, as CF v8.

use serde::Deserialize;

use super::common::{confirm, find_app, stdin_is_tty, Ctx};
use super::deployments::{self, check_flags, FlagsOf, Flavor, Source, StrategyFlags};
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Roll back to the specified revision
    #[arg(long = "version", value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// Force rollback without confirmation
    #[arg(short = 'f')]
    pub force: bool,
    /// Deployment strategy can be canary or rolling. When not specified, it
    /// defaults to rolling.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Defines the maximum number of instances that will be actively being
    /// rolled back.
    #[arg(long = "max-in-flight", allow_negative_numbers = true)]
    pub max_in_flight: Option<i64>,
    /// An array of percentage steps to deploy when using deployment strategy
    /// canary. (e.g. 20,40,60)
    #[arg(long = "instance-steps")]
    pub instance_steps: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Revision {
    guid: String,
    version: u64,
}

/// The revision of `version` among those the API listed.
fn pick(revisions: Vec<Revision>, version: u64) -> Result<Revision> {
    revisions
        .into_iter()
        .find(|r| r.version == version && !r.guid.is_empty())
        .ok_or_else(|| CliError::other(format!("Revision '{version}' not found")))
}

pub async fn run(args: Args) -> Result<()> {
    let opts = check_flags(
        FlagsOf::Rollback,
        &StrategyFlags {
            strategy: args.strategy.clone(),
            max_in_flight: args.max_in_flight,
            instance_steps: args.instance_steps.clone(),
            no_wait: false,
        },
    )?
    .ok_or_else(|| CliError::other("a rollback always has a strategy"))?;
    let ctx = Ctx::load()?;
    let app = find_app(&ctx, &args.name).await?;
    let revisions: Vec<Revision> = ctx
        .client
        .list(&format!(
            "/v3/apps/{}/revisions?versions={}",
            app.guid, args.version
        ))
        .await?;
    let revision = pick(revisions, args.version)?;
    let n = args.version;
    if !args.force {
        println!(
            "Rolling '{}' back to revision '{n}' will create a new revision. The new revision will use the settings from revision '{n}'.",
            args.name
        );
        // Without a terminal nobody can answer: that is a no (`-f` to go on).
        let yes = if stdin_is_tty() {
            confirm("Are you sure you want to continue?")
        } else {
            println!("Are you sure you want to continue? [yN]:");
            false
        };
        if !yes {
            println!(
                "App '{}' has not been rolled back to revision '{n}'.",
                args.name
            );
            return Ok(());
        }
    }
    println!(
        "Rolling back to revision {n} for app {} {}...",
        args.name,
        ctx.where_()
    );
    deployments::deploy(
        &ctx,
        &app,
        Source::Revision(revision.guid),
        &opts,
        Flavor::Rollback,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asked_version_or_cf_s_error() {
        let revs = vec![
            Revision {
                guid: "r-2".into(),
                version: 2,
            },
            Revision {
                guid: "r-3".into(),
                version: 3,
            },
        ];
        assert_eq!(pick(revs.clone(), 3).expect("found").guid, "r-3");
        assert_eq!(
            pick(revs, 7).expect_err("missing").to_string(),
            "Revision '7' not found"
        );
        assert_eq!(
            pick(vec![], 1).expect_err("none").to_string(),
            "Revision '1' not found"
        );
    }
}
