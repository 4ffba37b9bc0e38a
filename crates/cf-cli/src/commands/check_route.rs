//! `cf check-route DOMAIN [--hostname H] [--path P]`.

use super::common::{find_route, ok, Ctx};
use super::routes::{find_domain, RouteSpec};
use crate::error::Result;

pub async fn run(spec: RouteSpec) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Checking for route...");
    let domain = find_domain(&ctx, &spec.domain).await?;
    let found = find_route(&ctx, &spec.host(), &domain, &spec.path()).await?;
    let url = spec.url();
    if found.is_some() {
        println!("Route '{url}' does exist.");
    } else {
        println!("Route '{url}' does not exist.");
    }
    ok();
    Ok(())
}
