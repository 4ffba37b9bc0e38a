//! `cf restage NAME`: new build from the latest package, then restart.

use super::common::{find_app, print_app, stage, wait_for_start, Ctx};
use crate::error::{CliError, Result};
use crate::models::Package;
use serde_json::{json, Value};

pub async fn run(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("This action will cause app downtime.\n");
    println!("Restaging app {name} {}...", ctx.where_());
    let app = find_app(&ctx, name).await?;
    let mut packages: Vec<Package> = ctx
        .client
        .list(&format!("/v3/apps/{}/packages", app.guid))
        .await?;
    packages.retain(|p| p.state == "READY");
    packages.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let package = packages.pop().ok_or_else(|| {
        CliError::other(format!(
            "App '{name}' has no uploaded package; use 'cf push' first."
        ))
    })?;
    let droplet = stage(&ctx, &app.guid, &package.guid).await?;
    super::common::set_current_droplet(&ctx, &app.guid, &droplet).await?;
    if app.state == "STARTED" {
        let _: Value = ctx
            .client
            .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
            .await?;
        wait_for_start(&ctx, &app).await?;
    } else {
        println!();
    }
    print_app(&ctx, &app.guid).await
}
