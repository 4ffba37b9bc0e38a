//! `cf routes`.

use super::common::Ctx;
use crate::error::Result;
use crate::format::table;
use crate::models::{App, Domain, Named, Route};
use std::collections::HashMap;

pub async fn run() -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Getting routes for org {} / space {} as {}...\n",
        ctx.org.name, ctx.space.name, ctx.user
    );
    let routes: Vec<Route> = ctx
        .client
        .list(&format!("/v3/routes?space_guids={}", ctx.space.guid))
        .await?;
    let routes: Vec<Route> = routes
        .into_iter()
        .filter(|r| r.space_guid().is_empty() || r.space_guid() == ctx.space.guid)
        .collect();
    if routes.is_empty() {
        println!("No routes found.");
        return Ok(());
    }
    let domains: HashMap<String, String> = ctx
        .client
        .list::<Domain>("/v3/domains")
        .await?
        .into_iter()
        .map(|d| (d.guid, d.name))
        .collect();
    let apps: HashMap<String, String> = ctx
        .client
        .list::<App>(&format!("/v3/apps?space_guids={}", ctx.space.guid))
        .await?
        .into_iter()
        .map(|a| (a.guid, a.name))
        .collect();
    let mut spaces: HashMap<String, String> =
        HashMap::from([(ctx.space.guid.clone(), ctx.space.name.clone())]);
    let mut rows = vec![vec![
        "space".to_string(),
        "host".into(),
        "domain".into(),
        "path".into(),
        "apps".into(),
    ]];
    for r in &routes {
        let sg = r.space_guid().to_string();
        if !sg.is_empty() && !spaces.contains_key(&sg) {
            let s: Option<Named> = ctx.client.get_opt(&format!("/v3/spaces/{sg}")).await?;
            spaces.insert(sg.clone(), s.map(|s| s.name).unwrap_or_default());
        }
        let app_names: Vec<String> = r
            .destinations
            .iter()
            .map(|d| {
                apps.get(&d.app.guid)
                    .cloned()
                    .unwrap_or_else(|| d.app.guid.clone())
            })
            .collect();
        rows.push(vec![
            spaces
                .get(&sg)
                .cloned()
                .unwrap_or_else(|| ctx.space.name.clone()),
            r.host.clone(),
            domains.get(r.domain_guid()).cloned().unwrap_or_default(),
            r.path.clone(),
            app_names.join(", "),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}
