//! `cf buildpacks`, `cf create-buildpack NAME PATH POSITION [--disable]`,
//! `cf delete-buildpack NAME [-f]` (admin buildpacks, CF v3 `/v3/buildpacks`).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{confirm, enc, logged_in, ok, wait_job};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::format::table;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Buildpack {
    pub guid: String,
    pub name: String,
    pub stack: Option<String>,
    pub position: i64,
    pub enabled: bool,
    pub locked: bool,
    pub state: String,
    pub filename: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the buildpack
    pub name: String,
    /// A zip file, or a directory to zip (bin/detect, bin/compile, bin/release)
    pub path: PathBuf,
    /// Position in the detection order (1 = tried first)
    pub position: i64,
    /// Disable the buildpack from being used for staging
    #[arg(long)]
    pub disable: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the buildpack
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

/// The table `cf buildpacks` prints.
pub fn buildpacks_table(bps: &[Buildpack]) -> String {
    let mut rows = vec![vec![
        "position".to_string(),
        "name".into(),
        "stack".into(),
        "enabled".into(),
        "locked".into(),
        "state".into(),
        "filename".into(),
    ]];
    for b in bps {
        rows.push(vec![
            b.position.to_string(),
            b.name.clone(),
            b.stack.clone().unwrap_or_default(),
            b.enabled.to_string(),
            b.locked.to_string(),
            b.state.clone(),
            b.filename.clone().unwrap_or_default(),
        ]);
    }
    table(&rows)
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Getting buildpacks as {user}...\n");
    let bps: Vec<Buildpack> = c.list("/v3/buildpacks?per_page=5000").await?;
    if bps.is_empty() {
        println!("No buildpacks found");
        return Ok(());
    }
    print!("{}", buildpacks_table(&bps));
    Ok(())
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if args.position < 1 {
        return Err(CliError::Usage(
            "Incorrect Usage: POSITION must be an integer greater than or equal to 1".into(),
        ));
    }
    let bits = crate::zipdir::zip_path(&args.path)?;
    println!("Creating buildpack {} as {user}...", args.name);
    let bp: Buildpack = c
        .post(
            "/v3/buildpacks",
            json!({"name": args.name, "position": args.position, "enabled": !args.disable}),
        )
        .await?;
    ok();
    println!();
    println!("Uploading buildpack {} as {user}...", args.name);
    let filename = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| n.ends_with(".zip"))
        .unwrap_or_else(|| format!("{}.zip", args.name));
    let uploaded = upload(&c, &bp.guid, bits, filename).await;
    if let Err(e) = uploaded {
        // Leave no buildpack without bits behind.
        let _ = c.delete(&format!("/v3/buildpacks/{}", bp.guid)).await;
        return Err(e);
    }
    println!("Done uploading");
    ok();
    Ok(())
}

/// POST the zip as multipart field `bits`, keeping its file name.
async fn upload(c: &Client, guid: &str, bits: Vec<u8>, filename: String) -> Result<Value> {
    let cfg = c.config();
    let url = format!(
        "{}/v3/buildpacks/{guid}/upload",
        cfg.api()?.trim_end_matches('/')
    );
    let part = reqwest::multipart::Part::bytes(bits)
        .file_name(filename)
        .mime_str("application/zip")?;
    let mut rb = c
        .http()
        .post(url)
        .multipart(reqwest::multipart::Form::new().part("bits", part));
    if let Some(t) = &cfg.access_token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await?;
    c.read(resp).await
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if !args.force && !confirm(&format!("Really delete the buildpack {}?", args.name)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!("Deleting buildpack {} as {user}...", args.name);
    let found: Vec<Buildpack> = c
        .list(&format!("/v3/buildpacks?names={}", enc(&args.name)))
        .await?;
    let Some(bp) = found.into_iter().find(|b| b.name == args.name) else {
        println!("Buildpack '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    let job = c.delete(&format!("/v3/buildpacks/{}", bp.guid)).await?;
    wait_job(&c, job).await?;
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_buildpacks_in_order() {
        let bps: Vec<Buildpack> = serde_json::from_value(json!([
            {"guid": "a", "name": "first", "stack": null, "position": 1, "enabled": true,
             "locked": false, "state": "READY", "filename": "first.zip"},
            {"guid": "b", "name": "second", "stack": "host", "position": 2, "enabled": false,
             "locked": false, "state": "AWAITING_UPLOAD", "filename": null}
        ]))
        .expect("parse");
        let t = buildpacks_table(&bps);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("position"));
        assert!(lines[1].contains("first") && lines[1].contains("first.zip"));
        assert!(lines[2].contains("second") && lines[2].contains("false"));
    }
}
