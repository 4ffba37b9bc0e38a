//! `cf apps`.

use super::common::{app_view, Ctx};
use crate::error::Result;
use crate::format::apps_table;
use crate::models::App;

pub async fn run() -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Getting apps in org {} / space {} as {}...\n",
        ctx.org.name, ctx.space.name, ctx.user
    );
    let mut apps: Vec<App> = ctx
        .client
        .list(&format!(
            "/v3/apps?space_guids={}&order_by=name",
            ctx.space.guid
        ))
        .await?;
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    if apps.is_empty() {
        println!("No apps found");
        return Ok(());
    }
    let mut views = Vec::new();
    for a in &apps {
        views.push(app_view(&ctx, a, true).await?);
    }
    print!("{}", apps_table(&views));
    Ok(())
}
