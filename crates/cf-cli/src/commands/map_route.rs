//! `cf map-route NAME DOMAIN [--hostname H] [--path P]` and `cf unmap-route`.

use super::common::{ensure_route, find_app, find_route, ok, Ctx};
use super::routes::{find_domain, norm_path, route_not_found};
use crate::error::{CliError, Result};
use crate::models::route_url;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Domain of the route
    pub domain: String,
    /// Hostname for the HTTP route
    #[arg(long, short = 'n')]
    pub hostname: Option<String>,
    /// Path for the HTTP route
    #[arg(long)]
    pub path: Option<String>,
}

pub async fn map(a: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let host = a.hostname.clone().unwrap_or_default();
    let path = norm_path(a.path.as_deref());
    let url = route_url(&host, &a.domain, &path);
    println!("Mapping route {url} to app {} {}...", a.name, ctx.where_());
    let app = find_app(&ctx, &a.name).await?;
    let d = find_domain(&ctx, &a.domain).await?;
    ensure_route(&ctx, &host, &d, &path, &app.guid).await?;
    ok();
    Ok(())
}

pub async fn unmap(a: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let host = a.hostname.clone().unwrap_or_default();
    let path = norm_path(a.path.as_deref());
    let url = route_url(&host, &a.domain, &path);
    println!(
        "Removing route {url} from app {} {}...",
        a.name,
        ctx.where_()
    );
    let app = find_app(&ctx, &a.name).await?;
    let d = find_domain(&ctx, &a.domain).await?;
    let route = find_route(&ctx, &host, &d, &path)
        .await?
        .ok_or_else(|| CliError::other(route_not_found(&host, &a.domain, &path)))?;
    let mut removed = false;
    for dest in route.destinations.iter().filter(|d| d.app.guid == app.guid) {
        let _ = ctx
            .client
            .delete(&format!(
                "/v3/routes/{}/destinations/{}",
                route.guid, dest.guid
            ))
            .await?;
        removed = true;
    }
    if !removed {
        println!("Route to be unmapped is not currently mapped to the application.");
    }
    ok();
    Ok(())
}
