//! `cf create-space SPACE [-o ORG]`: a space in the targeted org (or ORG).

use serde_json::{json, Value};

use super::common::{enc, logged_in, ok};
use crate::error::{CliError, Result};
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the space
    pub name: String,
    /// Organization (default: the targeted one)
    #[arg(short = 'o')]
    pub org: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = match &args.org {
        Some(o) => {
            let orgs: Vec<Named> = c
                .list(&format!("/v3/organizations?names={}", enc(o)))
                .await?;
            orgs.into_iter()
                .find(|x| &x.name == o)
                .ok_or_else(|| CliError::other(format!("Organization '{o}' not found.")))?
        }
        None => {
            let t = c.config().org.clone().ok_or(CliError::NoOrg)?;
            Named {
                guid: t.guid,
                name: t.name,
            }
        }
    };
    println!(
        "Creating space {} in org {} as {user}...",
        args.name, org.name
    );
    let _: Value = c
        .post(
            "/v3/spaces",
            json!({"name": args.name, "relationships": {"organization": {"data": {"guid": org.guid}}}}),
        )
        .await?;
    ok();
    println!(
        "\nTIP: Use 'cf target -o \"{}\" -s \"{}\"' to target new space",
        org.name, args.name
    );
    Ok(())
}
