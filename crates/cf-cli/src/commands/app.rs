//! `cf app NAME`.

use super::common::{find_app, print_app, Ctx};
use crate::error::Result;

pub async fn run(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Showing health and status for app {name} {}...\n",
        ctx.where_()
    );
    let app = find_app(&ctx, name).await?;
    print_app(&ctx, &app.guid).await
}
