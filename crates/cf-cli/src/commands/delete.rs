//! `cf delete NAME [-f] [-r]`.

use super::common::{app_routes, confirm, find_app_opt, ok, route_urls, wait_job, Ctx};
use crate::error::{CliError, Result};
use crate::models::Route;

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

/// The first route that also sends to another app (CF refuses `delete -r`
/// then: deleting it would cut the other app off).
pub fn shared_route<'a>(routes: &'a [Route], app_guid: &str) -> Option<&'a Route> {
    routes
        .iter()
        .find(|r| r.destinations.iter().any(|d| d.app.guid != app_guid))
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    if !args.force {
        let prompt = if args.routes {
            println!("Deleting the app and associated routes will make apps with this route, in any org, unreachable.");
            format!("Really delete the app {} and associated routes?", args.name)
        } else {
            format!("Really delete the app {}?", args.name)
        };
        if !confirm(&prompt) {
            println!("App '{}' has not been deleted.", args.name);
            return Ok(());
        }
    }
    println!("Deleting app {} {}...", args.name, ctx.where_());
    let Some(app) = find_app_opt(&ctx, &args.name).await? else {
        eprintln!("App '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    let routes = if args.routes {
        app_routes(&ctx, &app.guid).await?
    } else {
        Vec::new()
    };
    if let Some(r) = shared_route(&routes, &app.guid) {
        let url = route_urls(&ctx, std::slice::from_ref(r))
            .await?
            .pop()
            .unwrap_or_default();
        return Err(CliError::other(format!(
            "App '{}' was not deleted because route '{url}' is mapped to more than one app.\n\nTIP: Run 'cf delete {}' to delete the app and 'cf delete-route' to delete the route.",
            app.name, app.name
        )));
    }
    // The controller removes the app's destinations with the app.
    let loc = ctx.client.delete(&format!("/v3/apps/{}", app.guid)).await?;
    wait_job(&ctx.client, loc).await?;
    for r in &routes {
        match ctx.client.delete(&format!("/v3/routes/{}", r.guid)).await {
            Ok(loc) => wait_job(&ctx.client, loc).await?,
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(apps: &[&str]) -> Route {
        serde_json::from_value(serde_json::json!({
            "guid": "r", "host": "h",
            "destinations": apps.iter().map(|a| serde_json::json!({"guid": "d", "app": {"guid": a}})).collect::<Vec<_>>()
        }))
        .expect("route")
    }

    #[test]
    fn finds_routes_shared_with_other_apps() {
        let own = [route(&["a"]), route(&["a", "a"])];
        assert!(shared_route(&own, "a").is_none());
        let shared = [route(&["a"]), route(&["a", "b"])];
        assert!(shared_route(&shared, "a").is_some());
    }
}
