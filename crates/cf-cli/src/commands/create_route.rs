//! `cf create-route DOMAIN [--hostname H] [--path P]`.

use super::common::{ok, Ctx};
use super::routes::{find_domain, RouteSpec};
use crate::error::{CliError, Result};
use crate::models::Route;
use serde_json::json;

pub async fn run(spec: RouteSpec) -> Result<()> {
    let ctx = Ctx::load()?;
    let url = spec.url();
    println!(
        "Creating route {url} for org {} / space {} as {}...",
        ctx.org.name, ctx.space.name, ctx.user
    );
    let domain = find_domain(&ctx, &spec.domain).await?;
    let mut body = json!({
        "host": spec.host(),
        "relationships": {
            "space": {"data": {"guid": ctx.space.guid}},
            "domain": {"data": {"guid": domain.guid}},
        },
    });
    let path = spec.path();
    if !path.is_empty() {
        body["path"] = json!(path);
    }
    match ctx.client.post::<Route>("/v3/routes", body).await {
        Ok(r) => {
            let shown = if r.url.is_empty() { url } else { r.url };
            println!("Route {shown} has been created.");
            ok();
            Ok(())
        }
        // CF: an existing route is a warning, not a failure.
        Err(CliError::Api {
            code: Some(10016),
            detail,
            ..
        }) => {
            eprintln!("{detail}");
            ok();
            Ok(())
        }
        Err(e) => Err(e),
    }
}
