//! Spaces (CF v3 `/v3/spaces`): `cf spaces`, `cf space SPACE [--guid]`,
//! `cf delete-space SPACE [-o ORG] [-f]` (`cf create-space` is in
//! `create_space.rs`).

use serde_json::Value;

use super::common::{
    confirm, delete_and_wait, enc, find_org, find_space, find_space_opt, logged_in, ok,
    targeted_org,
};
use crate::error::{CliError, Result};
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

/// What `cf space` shows.
#[derive(Debug, Clone, Default)]
pub struct SpaceView {
    pub name: String,
    pub org: String,
    pub apps: Vec<String>,
    pub services: Vec<String>,
    pub quota: String,
    pub running_groups: Vec<String>,
    pub staging_groups: Vec<String>,
}

/// The `cf space` block.
pub fn space_block(v: &SpaceView) -> String {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.join(", ")
    };
    kv_auto(&[
        ("name", v.name.clone()),
        ("org", v.org.clone()),
        ("apps", sorted(&v.apps)),
        ("services", sorted(&v.services)),
        ("space quota", v.quota.clone()),
        ("running security groups", sorted(&v.running_groups)),
        ("staging security groups", sorted(&v.staging_groups)),
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
    let found: Vec<Value> = c
        .list(&format!(
            "/v3/spaces?names={}&organization_guids={}",
            enc(&args.name),
            org.guid
        ))
        .await?;
    let full = found
        .into_iter()
        .find(|s| s["name"].as_str() == Some(args.name.as_str()))
        .ok_or_else(|| CliError::other(format!("Space '{}' not found.", args.name)))?;
    let space = Named {
        guid: full["guid"].as_str().unwrap_or_default().to_string(),
        name: args.name.clone(),
    };
    let apps: Vec<Named> = c
        .list(&format!("/v3/apps?space_guids={}", space.guid))
        .await?;
    let apps: Vec<String> = apps.into_iter().map(|a| a.name).collect();
    // Services and security groups are shown when the platform (and the
    // user's roles) let us read them: best effort.
    let names = |r: Result<Vec<Named>>| -> Vec<String> {
        r.map(|v| v.into_iter().map(|s| s.name).collect())
            .unwrap_or_default()
    };
    let services = names(
        c.list(&format!("/v3/service_instances?space_guids={}", space.guid))
            .await,
    );
    let mut groups = Vec::new();
    for lifecycle in ["running", "staging"] {
        let mut g = names(
            c.list(&format!(
                "/v3/security_groups?{lifecycle}_space_guids={}",
                space.guid
            ))
            .await,
        );
        g.extend(names(
            c.list(&format!(
                "/v3/security_groups?globally_enabled_{lifecycle}=true"
            ))
            .await,
        ));
        g.sort();
        g.dedup();
        groups.push(g);
    }
    let quota = match full
        .pointer("/relationships/quota/data/guid")
        .and_then(Value::as_str)
    {
        Some(g) => names(
            c.list(&format!("/v3/space_quotas?organization_guids={}", org.guid))
                .await
                .map(|qs: Vec<Named>| qs.into_iter().filter(|q| q.guid == g).collect()),
        )
        .pop()
        .unwrap_or_default(),
        None => String::new(),
    };
    print!(
        "{}",
        space_block(&SpaceView {
            name: space.name,
            org: org.name,
            apps,
            services,
            quota,
            running_groups: groups.first().cloned().unwrap_or_default(),
            staging_groups: groups.get(1).cloned().unwrap_or_default(),
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_space_block() {
        let v = SpaceView {
            name: "dev".into(),
            org: "myorg".into(),
            apps: vec!["b".into(), "a".into()],
            quota: "small".into(),
            running_groups: vec!["public".into(), "dns".into()],
            ..SpaceView::default()
        };
        assert_eq!(
            space_block(&v),
            "name:                      dev\norg:                       myorg\napps:                      a, b\nservices:\nspace quota:               small\nrunning security groups:   dns, public\nstaging security groups:\n"
        );
    }
}
