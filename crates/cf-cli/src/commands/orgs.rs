//! Orgs (CF v3 `/v3/organizations`): `cf create-org ORG [-q QUOTA]`,
//! `cf delete-org ORG [-f]`, `cf orgs`, `cf org ORG [--guid]`.

use serde_json::{json, Value};

use super::common::{confirm, delete_and_wait, enc, find_org, find_org_opt, logged_in, ok};
use crate::error::{CliError, Result};
use crate::format::{kv_auto, table};
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the org
    pub name: String,
    /// Quota to assign to the newly created org
    #[arg(short = 'q', long = "quota")]
    pub quota: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the org
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Name of the org
    pub name: String,
    /// Retrieve and display the given org's guid. All other output is suppressed.
    #[arg(long)]
    pub guid: bool,
}

/// True for the controller's answer to a second org or space of one name.
pub fn is_name_taken(e: &CliError) -> bool {
    matches!(e, CliError::Api { status: 422, detail, .. }
        if detail.contains("already exists") || detail.contains("must be unique") || detail.contains("is taken"))
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Creating org {} as {user}...", args.name);
    let org: Named = match c
        .post("/v3/organizations", json!({"name": args.name}))
        .await
    {
        Ok(o) => o,
        Err(e) if is_name_taken(&e) => {
            println!("Organization '{}' already exists.", args.name);
            ok();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let org = if org.guid.is_empty() {
        find_org(&c, &args.name).await?
    } else {
        org
    };
    ok();
    println!();
    if let Some(q) = &args.quota {
        println!("Setting org quota {q} to org {} as {user}...", org.name);
        super::quotas::apply_org_quota(&c, q, &org.guid).await?;
        ok();
        println!();
    }
    super::roles::assign_creator_org_manager(&c, &user, &org).await?;
    println!(
        "\nTIP: Use 'cf target -o \"{}\"' to target new org",
        org.name
    );
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if !args.force
        && !confirm(&format!(
            "Really delete the org {}, including its spaces, apps, service instances, routes, private domains and space-scoped service brokers?",
            args.name
        ))
    {
        println!("Delete cancelled");
        return Ok(());
    }
    println!("Deleting org {} as {user}...", args.name);
    let Some(org) = find_org_opt(&c, &args.name).await? else {
        println!("Org '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    delete_and_wait(
        &c,
        &format!("/v3/organizations/{}?recursive=true", org.guid),
    )
    .await?;
    if c.config().org.is_some_and(|t| t.guid == org.guid) {
        c.update_config(|cfg| {
            cfg.org = None;
            cfg.space = None;
        })?;
    }
    ok();
    Ok(())
}

/// A one-column `name` table of names (sorted), or `none` when empty.
pub fn name_table(names: &[String], none: &str) -> String {
    if names.is_empty() {
        return format!("{none}\n");
    }
    let mut sorted = names.to_vec();
    sorted.sort();
    let mut rows = vec![vec!["name".to_string()]];
    rows.extend(sorted.into_iter().map(|n| vec![n]));
    table(&rows)
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Getting orgs as {user}...\n");
    let orgs: Vec<Named> = c.list("/v3/organizations").await?;
    let names: Vec<String> = orgs.into_iter().map(|o| o.name).collect();
    print!("{}", name_table(&names, "No orgs found."));
    Ok(())
}

/// The `cf org` block.
pub fn org_block(name: &str, domains: &[String], quota: &str, spaces: &[String]) -> String {
    let mut spaces = spaces.to_vec();
    spaces.sort();
    kv_auto(&[
        ("name", name.to_string()),
        ("domains", domains.join(", ")),
        ("quota", quota.to_string()),
        ("spaces", spaces.join(", ")),
    ])
}

pub async fn show(args: ShowArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if args.guid {
        let org = find_org(&c, &args.name).await?;
        println!("{}", org.guid);
        return Ok(());
    }
    println!("Getting info for org {} as {user}...\n", args.name);
    let orgs: Vec<Value> = c
        .list(&format!("/v3/organizations?names={}", enc(&args.name)))
        .await?;
    let full = orgs
        .into_iter()
        .find(|o| o["name"].as_str() == Some(args.name.as_str()))
        .ok_or_else(|| CliError::other(format!("Organization '{}' not found.", args.name)))?;
    let org = Named {
        guid: full["guid"].as_str().unwrap_or_default().to_string(),
        name: args.name.clone(),
    };
    let domains: Vec<Named> = c
        .list(&format!("/v3/organizations/{}/domains", org.guid))
        .await?;
    let domains: Vec<String> = domains.into_iter().map(|d| d.name).collect();
    // The quota's name, when the user may read the quotas (best effort).
    let quota = match full
        .pointer("/relationships/quota/data/guid")
        .and_then(Value::as_str)
    {
        Some(g) => c
            .list::<Named>("/v3/organization_quotas")
            .await
            .ok()
            .and_then(|qs| qs.into_iter().find(|q| q.guid == g))
            .map(|q| q.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let spaces: Vec<Named> = c
        .list(&format!("/v3/spaces?organization_guids={}", org.guid))
        .await?;
    let spaces: Vec<String> = spaces.into_iter().map(|s| s.name).collect();
    print!("{}", org_block(&org.name, &domains, &quota, &spaces));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_org_lists() {
        assert_eq!(
            name_table(&["b".into(), "a".into()], "No orgs found."),
            "name\na\nb\n"
        );
        assert_eq!(name_table(&[], "No orgs found."), "No orgs found.\n");
        assert_eq!(
            org_block(
                "myorg",
                &["localhost".into(), "apps.internal".into()],
                "default",
                &["staging".into(), "dev".into()]
            ),
            "name:      myorg\ndomains:   localhost, apps.internal\nquota:     default\nspaces:    dev, staging\n"
        );
    }

    #[test]
    fn name_taken() {
        let e = CliError::Api {
            status: 422,
            code: Some(10008),
            title: "CF-UnprocessableEntity".into(),
            detail: "Organization 'o' already exists.".into(),
        };
        assert!(is_name_taken(&e));
        assert!(!is_name_taken(&CliError::other("x")));
    }
}
