//! `cf route DOMAIN [--hostname H] [--path P]`: a route and its destinations.

use super::common::{find_route, Ctx};
use super::routes::{find_domain, route_not_found, RouteSpec};
use crate::error::{CliError, Result};
use crate::format::{kv_auto, table};
use crate::models::{App, Route};
use std::collections::HashMap;

/// The block after the "Showing route" line: key/values, then the
/// destinations table (none when the route is mapped to no app).
pub fn route_block(route: &Route, domain: &str, app_names: &HashMap<String, String>) -> String {
    let mut out = kv_auto(&[
        ("domain", domain.to_string()),
        ("host", route.host.clone()),
        (
            "port",
            route.port.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("path", route.path.clone()),
        ("protocol", route.protocol.clone().unwrap_or_default()),
        ("options", String::new()),
    ]);
    out.push_str("\nDestinations:\n");
    if !route.destinations.is_empty() {
        let mut rows = vec![vec![
            "app".to_string(),
            "process".into(),
            "port".into(),
            "app-protocol".into(),
        ]];
        for d in &route.destinations {
            rows.push(vec![
                app_names.get(&d.app.guid).cloned().unwrap_or_default(),
                d.app.process.kind.clone(),
                d.port.map(|p| p.to_string()).unwrap_or_default(),
                d.protocol.clone().unwrap_or_default(),
            ]);
        }
        for line in table(&rows).lines() {
            out.push('\t');
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

pub async fn run(spec: RouteSpec) -> Result<()> {
    let ctx = Ctx::load()?;
    let domain = find_domain(&ctx, &spec.domain).await?;
    println!("Showing route {} {}...\n", spec.url(), ctx.where_());
    let (host, path) = (spec.host(), spec.path());
    let route = find_route(&ctx, &host, &domain, &path)
        .await?
        .ok_or_else(|| CliError::other(route_not_found(&host, &domain.name, &path)))?;
    let mut names = HashMap::new();
    let sg = route.space_guid();
    if !route.destinations.is_empty() && !sg.is_empty() {
        let apps: Vec<App> = ctx
            .client
            .list(&format!("/v3/apps?space_guids={sg}"))
            .await?;
        names.extend(apps.into_iter().map(|a| (a.guid, a.name)));
    }
    print!("{}", route_block(&route, &domain.name, &names));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_has_the_cf_layout() {
        let route: Route = serde_json::from_value(serde_json::json!({
            "guid": "r1", "host": "shared", "path": "", "protocol": "http", "port": null,
            "destinations": [{"guid": "d1", "app": {"guid": "a1", "process": {"type": "web"}},
                              "port": 8080, "protocol": "http1"}]
        }))
        .expect("route");
        let names = HashMap::from([("a1".to_string(), "sh1".to_string())]);
        assert_eq!(
            route_block(&route, "localhost", &names),
            "domain:     localhost\nhost:       shared\nport:\npath:\nprotocol:   http\noptions:\n\nDestinations:\n\
             \tapp   process   port   app-protocol\n\tsh1   web       8080   http1\n"
        );
    }
}
