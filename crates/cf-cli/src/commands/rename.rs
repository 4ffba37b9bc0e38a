//! `cf rename APP_NAME NEW_APP_NAME`.

use super::common::{find_app, ok, Ctx};
use crate::error::Result;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Current name of the app
    pub name: String,
    /// New name of the app
    pub new_name: String,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Renaming app {} to {} {}...",
        args.name,
        args.new_name,
        ctx.where_()
    );
    let app = find_app(&ctx, &args.name).await?;
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/apps/{}", app.guid),
            json!({"name": args.new_name}),
        )
        .await?;
    ok();
    Ok(())
}
