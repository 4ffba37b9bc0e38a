//! `cf delete-route DOMAIN [--hostname H] [--path P] [-f]`.

use super::common::{confirm, delete_and_wait, find_route, ok, Ctx};
use super::routes::{find_domain, route_not_found, RouteSpec};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub route: RouteSpec,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let url = args.route.url();
    println!("This action impacts all apps using this route.");
    println!("Deleting this route will make apps unreachable via this route.");
    if !args.force && !confirm(&format!("Really delete the route {url}?")) {
        println!("'{url}' has not been deleted.");
        return Ok(());
    }
    println!("Deleting route {url}...");
    let domain = find_domain(&ctx, &args.route.domain).await?;
    let (host, path) = (args.route.host(), args.route.path());
    let Some(route) = find_route(&ctx, &host, &domain, &path).await? else {
        println!(
            "Unable to delete. {}",
            route_not_found(&host, &domain.name, &path)
        );
        ok();
        return Ok(());
    };
    delete_and_wait(&ctx.client, &format!("/v3/routes/{}", route.guid)).await?;
    ok();
    Ok(())
}
