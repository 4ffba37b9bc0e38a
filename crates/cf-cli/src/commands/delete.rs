//! `cf delete NAME [-f] [-r]`.

use super::common::{app_routes, confirm, find_app_opt, ok, wait_job, Ctx};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
    /// Also delete any mapped routes
    #[arg(short = 'r')]
    pub routes: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    if !args.force && !confirm(&format!("Really delete the app {}?", args.name)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!("Deleting app {} {}...", args.name, ctx.where_());
    let Some(app) = find_app_opt(&ctx, &args.name).await? else {
        println!("App '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    let routes = app_routes(&ctx, &app.guid).await?;
    for r in &routes {
        if args.routes {
            let job = ctx.client.delete(&format!("/v3/routes/{}", r.guid)).await;
            match job {
                Ok(loc) => wait_job(&ctx.client, loc).await?,
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        } else {
            for d in r
                .destinations
                .iter()
                .filter(|d| d.app.guid == app.guid && !d.guid.is_empty())
            {
                match ctx
                    .client
                    .delete(&format!("/v3/routes/{}/destinations/{}", r.guid, d.guid))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let loc = ctx.client.delete(&format!("/v3/apps/{}", app.guid)).await?;
    wait_job(&ctx.client, loc).await?;
    ok();
    Ok(())
}
