//! Spaces (CF v3 `/v3/spaces`): `cf spaces`, `cf space SPACE [--guid]`,
//! `cf delete-space SPACE [-o ORG] [-f]` (`cf create-space` is in
//! `create_space.rs`).

use serde_json::Value;

use super::common::{
    confirm, delete_and_wait, enc, find_org, find_space, find_space_opt, logged_in, ok,
    targeted_org,
};
use crate::error::Result;
use crate::format::kv_auto;
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the space
    pub name: String,
    /// Organization (default: the targeted one)
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Name of the space
    pub name: String,
    /// Retrieve and display the given space's guid. All other output is suppressed.
    #[arg(long)]
    pub guid: bool,
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = match &args.org {
        Some(o) => find_org(&c, o).await?,
        None => targeted_org(&c)?,
    };
    if !args.force && !confirm(&format!("Really delete the space {}?", args.name)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!(
        "Deleting space {} in org {} as {user}...",
        args.name, org.name
    );
    let Some(space) = find_space_opt(&c, &org.guid, &args.name).await? else {
        println!("Space '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    delete_and_wait(&c, &format!("/v3/spaces/{}", space.guid)).await?;
    let was_targeted = c.config().space.is_some_and(|t| t.guid == space.guid);
    if was_targeted {
        c.update_config(|cfg| cfg.space = None)?;
    }
    ok();
    if was_targeted {
        println!("TIP: No space targeted, use 'cf target -s' to target a space.");
    }
    Ok(())
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    let org = targeted_org(&c)?;
    println!("Getting spaces in org {} as {user}...\n", org.name);
    let spaces: Vec<Named> = c
        .list(&format!("/v3/spaces?organization_guids={}", org.guid))
        .await?;
    let names: Vec<String> = spaces.into_iter().map(|s| s.name).collect();
    print!("{}", super::orgs::name_table(&names, "No spaces found."));
    Ok(())
}

/// The `cf space` block.
pub fn space_block(
    name: &str,
    org: &str,
    apps: &[String],
    services: &[String],
    quota: &str,
) -> String {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.join(", ")
    };
    kv_auto(&[
        ("name", name.to_string()),
        ("org", org.to_string()),
        ("apps", sorted(apps)),
        ("services", sorted(services)),
        ("space quota", quota.to_string()),
    ])
}

pub async fn show(args: ShowArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = targeted_org(&c)?;
    if args.guid {
        let space = find_space(&c, &org.guid, &args.name).await?;
        println!("{}", space.guid);
        return Ok(());
    }
    println!(
        "Getting info for space {} in org {} as {user}...\n",
        args.name, org.name
    );
    let space = find_space(&c, &org.guid, &args.name).await?;
    let full: Value = c.get(&format!("/v3/spaces/{}", space.guid)).await?;
    let apps: Vec<Named> = c
        .list(&format!("/v3/apps?space_guids={}", enc(&space.guid)))
        .await?;
    let apps: Vec<String> = apps.into_iter().map(|a| a.name).collect();
    // Services are shown when the platform has them (best effort).
    let services: Vec<String> = c
        .list::<Named>(&format!("/v3/service_instances?space_guids={}", space.guid))
        .await
        .map(|v| v.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    let quota = match full
        .pointer("/relationships/quota/data/guid")
        .and_then(Value::as_str)
    {
        Some(g) => c
            .get_opt::<Named>(&format!("/v3/space_quotas/{g}"))
            .await?
            .map(|q| q.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    print!(
        "{}",
        space_block(&space.name, &org.name, &apps, &services, &quota)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_space_block() {
        assert_eq!(
            space_block("dev", "myorg", &["b".into(), "a".into()], &[], "small"),
            "name:          dev\norg:           myorg\napps:          a, b\nservices:\nspace quota:   small\n"
        );
    }
}
