//! `cf delete-orphaned-routes [-f]`: delete the routes of the targeted
//! space that are mapped to no app.

use super::common::{confirm, delete_and_wait, ok, Ctx};
use crate::error::Result;
use crate::models::Route;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    if !args.force && !confirm("Really delete orphaned routes?") {
        println!("Routes have not been deleted.");
        return Ok(());
    }
    println!("Deleting orphaned routes as {}...", ctx.user);
    let routes: Vec<Route> = ctx
        .client
        .list(&format!("/v3/routes?space_guids={}", ctx.space.guid))
        .await?;
    for r in routes
        .iter()
        .filter(|r| r.destinations.is_empty() && r.space_guid() == ctx.space.guid)
    {
        match delete_and_wait(&ctx.client, &format!("/v3/routes/{}", r.guid)).await {
            Ok(()) => {}
            // Deleted meanwhile by someone else: the goal is reached.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    ok();
    Ok(())
}
