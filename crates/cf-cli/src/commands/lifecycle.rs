//! `cf start`, `cf stop`, `cf restart`.

use super::common::{find_app, print_app, stage_if_unstaged, wait_for_start, Ctx};
use crate::error::{CliError, Result};
use serde_json::{json, Value};

pub async fn start(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Starting app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    if app.state == "STARTED" {
        println!("App '{name}' is already started.\n\nOK");
        return Ok(());
    }
    stage_if_unstaged(&ctx, &app).await?;
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/start", app.guid), json!({}))
        .await
        .map_err(no_droplet_hint)?;
    wait_for_start(&ctx, &app).await?;
    print_app(&ctx, &app.guid).await
}

fn no_droplet_hint(e: CliError) -> CliError {
    match e {
        CliError::Api {
            status: 422,
            detail,
            ..
        } if detail.to_ascii_lowercase().contains("droplet") => CliError::other(format!(
            "{detail}\n\nTIP: push the app first with 'cf push'"
        )),
        other => other,
    }
}

pub async fn stop(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Stopping app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    if app.state == "STOPPED" {
        println!("App '{name}' is already stopped.\n\nOK");
        return Ok(());
    }
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/stop", app.guid), json!({}))
        .await?;
    super::common::ok();
    Ok(())
}

pub async fn restart(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Restarting app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    stage_if_unstaged(&ctx, &app).await?;
    let _: Value = ctx
        .client
        .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
        .await
        .map_err(no_droplet_hint)?;
    wait_for_start(&ctx, &app).await?;
    print_app(&ctx, &app.guid).await
}
