//! `cf create-space SPACE [-o ORG] [-q QUOTA]`: a space in the targeted org
//! (or ORG); like the CF CLI, the creator then becomes its SpaceManager and
//! SpaceDeveloper.

use serde_json::json;

use super::common::{find_org, logged_in, ok, targeted_org};
use crate::error::Result;
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the space
    pub name: String,
    /// Organization (default: the targeted one)
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// Quota to assign to the newly created space
    #[arg(short = 'q', long = "quota")]
    pub quota: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = match &args.org {
        Some(o) => find_org(&c, o).await?,
        None => targeted_org(&c)?,
    };
    println!(
        "Creating space {} in org {} as {user}...",
        args.name, org.name
    );
    let space: Named = match c
        .post(
            "/v3/spaces",
            json!({"name": args.name, "relationships": {"organization": {"data": {"guid": org.guid}}}}),
        )
        .await
    {
        Ok(s) => s,
        Err(e) if super::orgs::is_name_taken(&e) => {
            println!("Space '{}' already exists.", args.name);
            ok();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let space = if space.guid.is_empty() {
        super::common::find_space(&c, &org.guid, &args.name).await?
    } else {
        space
    };
    ok();
    println!();
    if let Some(q) = &args.quota {
        println!(
            "Setting space quota {q} to space {} as {user}...",
            space.name
        );
        super::quotas::apply_space_quota(&c, q, &org.guid, &space.guid).await?;
        ok();
        println!();
    }
    super::roles::assign_creator_space_roles(&c, &user, &org, &space).await?;
    println!(
        "TIP: Use 'cf target -o \"{}\" -s \"{}\"' to target new space",
        org.name, space.name
    );
    Ok(())
}
