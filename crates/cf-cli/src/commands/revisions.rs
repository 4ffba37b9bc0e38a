//! `cf revisions APP`: the app's revisions, newest first, the deployed one
//! marked, as CF v8 prints them.

use serde::Deserialize;

use super::common::{find_app, Ctx};
use crate::error::Result;
use crate::format::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Revision {
    guid: String,
    version: u64,
    description: String,
    deployable: bool,
    created_at: String,
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let app = find_app(&ctx, &args.name).await?;
    println!(
        "Getting revisions for app {} {}...\n",
        app.name,
        ctx.where_()
    );
    let mut all: Vec<Revision> = ctx
        .client
        .list(&format!("/v3/apps/{}/revisions?per_page=5000", app.guid))
        .await?;
    if all.is_empty() {
        println!("No revisions found");
        return Ok(());
    }
    let deployed: Vec<Revision> = ctx
        .client
        .list(&format!("/v3/apps/{}/revisions/deployed", app.guid))
        .await?;
    all.sort_by_key(|r| std::cmp::Reverse(r.version));
    let mut rows = vec![vec![
        "revision".to_string(),
        "description".into(),
        "deployable".into(),
        "revision guid".into(),
        "created at".into(),
    ]];
    for r in all {
        let mark = if deployed.iter().any(|d| d.guid == r.guid) {
            "(deployed)"
        } else {
            ""
        };
        rows.push(vec![
            format!("{}{mark}", r.version),
            r.description,
            r.deployable.to_string(),
            r.guid,
            crate::format::uploaded_time(&r.created_at),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}
