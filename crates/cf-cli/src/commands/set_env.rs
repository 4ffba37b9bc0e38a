//! `cf set-env NAME K V`, `cf unset-env NAME K`.

use super::common::{find_app, ok, Ctx};
use crate::error::Result;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Name of the app
    pub name: String,
    /// Variable name
    pub env_name: String,
    /// Variable value
    #[arg(allow_hyphen_values = true)]
    pub value: String,
}

#[derive(Debug, clap::Args)]
pub struct UnsetArgs {
    /// Name of the app
    pub name: String,
    /// Variable name
    pub env_name: String,
}

pub async fn set(a: SetArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Setting env variable {} for app {} {}...",
        a.env_name,
        a.name,
        ctx.where_()
    );
    let app = find_app(&ctx, &a.name).await?;
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/apps/{}/environment_variables", app.guid),
            json!({"var": {a.env_name: a.value}}),
        )
        .await?;
    ok();
    println!(
        "TIP: Use 'cf restage {}' to ensure your env variable changes take effect",
        a.name
    );
    Ok(())
}

pub async fn unset(a: UnsetArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Removing env variable {} from app {} {}...",
        a.env_name,
        a.name,
        ctx.where_()
    );
    let app = find_app(&ctx, &a.name).await?;
    let cur: Value = ctx
        .client
        .get(&format!("/v3/apps/{}/environment_variables", app.guid))
        .await?;
    if cur.pointer(&format!("/var/{}", a.env_name)).is_none() {
        println!("Env variable {} was not set.", a.env_name);
        ok();
        return Ok(());
    }
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/apps/{}/environment_variables", app.guid),
            json!({"var": {a.env_name: null}}),
        )
        .await?;
    ok();
    println!(
        "TIP: Use 'cf restage {}' to ensure your env variable changes take effect",
        a.name
    );
    Ok(())
}
