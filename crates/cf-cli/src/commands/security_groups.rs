//! Application security groups (CF v3 `/v3/security_groups`):
//! `cf security-groups`, `cf security-group NAME`,
//! `cf create-security-group NAME RULES.json`,
//! `cf update-security-group NAME RULES.json`, `cf delete-security-group NAME
//! [-f]`, `cf bind-security-group NAME ORG [--space SPACE] [--lifecycle
//! running|staging]`, `cf unbind-security-group NAME ORG SPACE [--lifecycle
//! ...]`, `cf bind-running-security-group NAME`, `cf
//! bind-staging-security-group NAME`, their `unbind-` forms, and `cf
//! running-security-groups` / `cf staging-security-groups`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{confirm, enc, logged_in, ok, wait_job};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::Named;

const DYNAMIC_TIP: &str = "TIP: Changes apply at once to running apps (as CF's dynamic security groups do) and to the next staging of an app.";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Global {
    running: bool,
    staging: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct GuidRef {
    guid: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ToMany {
    data: Vec<GuidRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Relationships {
    running_spaces: ToMany,
    staging_spaces: ToMany,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Group {
    guid: String,
    name: String,
    globally_enabled: Global,
    rules: Vec<Value>,
    relationships: Relationships,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct SpaceRes {
    guid: String,
    name: String,
    relationships: Value,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// Name of the security group
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// Name of the security group
    pub name: String,
    /// Path to a JSON file with the rules: `[{"protocol": "tcp",
    /// "destination": "10.0.0.0/24", "ports": "5432"}]`
    pub path: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the security group
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lifecycle {
    Running,
    Staging,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Running => "running",
            Lifecycle::Staging => "staging",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BindArgs {
    /// Name of the security group
    pub name: String,
    /// The org of the space(s)
    pub org: String,
    /// One space of the org (default: every space of the org)
    #[arg(long)]
    pub space: Option<String>,
    /// When the rules apply
    #[arg(long, value_enum, default_value = "running")]
    pub lifecycle: Lifecycle,
}

#[derive(Debug, clap::Args)]
pub struct UnbindArgs {
    /// Name of the security group
    pub name: String,
    /// The org of the space
    pub org: String,
    /// The space
    pub space: String,
    /// When the rules applied
    #[arg(long, value_enum, default_value = "running")]
    pub lifecycle: Lifecycle,
}

async fn find(c: &Client, name: &str) -> Result<Group> {
    let found: Vec<Group> = c
        .list(&format!("/v3/security_groups?names={}", enc(name)))
        .await?;
    found
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| CliError::other(format!("Security group '{name}' not found.")))
}

/// Reads and checks a rules file (a JSON array of objects).
fn read_rules(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "Incorrect Usage: Invalid JSON in {}: {e}",
            path.display()
        ))
    })?;
    if !v.as_array().is_some_and(|a| a.iter().all(Value::is_object)) {
        return Err(CliError::Usage(format!(
            "Incorrect Usage: {} must hold a JSON array of rules",
            path.display()
        )));
    }
    Ok(v)
}

/// Space guid → (org name, space name).
async fn space_names(c: &Client) -> Result<HashMap<String, (String, String)>> {
    let orgs: Vec<Named> = c.list("/v3/organizations?per_page=5000").await?;
    let spaces: Vec<SpaceRes> = c.list("/v3/spaces?per_page=5000").await?;
    Ok(spaces
        .into_iter()
        .map(|s| {
            let org = s.relationships["organization"]["data"]["guid"]
                .as_str()
                .unwrap_or_default();
            let org = orgs
                .iter()
                .find(|o| o.guid == org)
                .map(|o| o.name.clone())
                .unwrap_or_default();
            (s.guid, (org, s.name))
        })
        .collect())
}

/// The rows of `cf security-groups`: one per group, lifecycle and place.
fn rows(groups: &[Group], names: &HashMap<String, (String, String)>) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "name".to_string(),
        "organization".into(),
        "space".into(),
        "lifecycle".into(),
    ]];
    for g in groups {
        let mut any = false;
        for (on, spaces, l) in [
            (
                g.globally_enabled.running,
                &g.relationships.running_spaces,
                "running",
            ),
            (
                g.globally_enabled.staging,
                &g.relationships.staging_spaces,
                "staging",
            ),
        ] {
            if on {
                rows.push(vec![
                    g.name.clone(),
                    "<all>".into(),
                    "<all>".into(),
                    l.into(),
                ]);
                any = true;
            }
            for s in &spaces.data {
                let (org, space) = names
                    .get(&s.guid)
                    .cloned()
                    .unwrap_or_else(|| (String::new(), s.guid.clone()));
                rows.push(vec![g.name.clone(), org, space, l.into()]);
                any = true;
            }
        }
        if !any {
            rows.push(vec![
                g.name.clone(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    rows
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Getting security groups as {user}...\n");
    let groups: Vec<Group> = c.list("/v3/security_groups?per_page=5000").await?;
    if groups.is_empty() {
        println!("No security groups.");
        return Ok(());
    }
    let names = space_names(&c).await?;
    print!("{}", table(&rows(&groups, &names)));
    Ok(())
}

pub async fn show(args: NameArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!(
        "Getting info for security group {} as {user}...\n",
        args.name
    );
    let g = find(&c, &args.name).await?;
    println!("name:    {}", g.name);
    println!("rules:");
    println!(
        "{}",
        serde_json::to_string_pretty(&g.rules).unwrap_or_default()
    );
    let names = space_names(&c).await?;
    let r = rows(std::slice::from_ref(&g), &names);
    if r.len() > 1 && !r[1][3].is_empty() {
        println!();
        print!(
            "{}",
            table(&r[..].iter().map(|x| x[1..].to_vec()).collect::<Vec<_>>())
        );
    } else {
        println!("\nNo spaces assigned");
    }
    Ok(())
}

pub async fn create(args: RulesArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let rules = read_rules(&args.path)?;
    println!("Creating security group {} as {user}...", args.name);
    let _: Value = c
        .post(
            "/v3/security_groups",
            json!({"name": args.name, "rules": rules}),
        )
        .await?;
    ok();
    Ok(())
}

pub async fn update(args: RulesArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let rules = read_rules(&args.path)?;
    println!("Updating security group {} as {user}...", args.name);
    let g = find(&c, &args.name).await?;
    let _: Value = c
        .patch(
            &format!("/v3/security_groups/{}", g.guid),
            json!({"rules": rules}),
        )
        .await?;
    ok();
    println!("\n{DYNAMIC_TIP}");
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if !args.force && !confirm(&format!("Really delete the security group {}?", args.name)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!("Deleting security group {} as {user}...", args.name);
    let g = match find(&c, &args.name).await {
        Ok(g) => g,
        Err(_) => {
            println!("Security group '{}' does not exist.", args.name);
            ok();
            return Ok(());
        }
    };
    let job = c.delete(&format!("/v3/security_groups/{}", g.guid)).await?;
    wait_job(&c, job).await?;
    ok();
    Ok(())
}

/// The spaces of `org` (one when `space` is given).
async fn org_spaces(c: &Client, org: &str, space: Option<&str>) -> Result<Vec<Named>> {
    let orgs: Vec<Named> = c
        .list(&format!("/v3/organizations?names={}", enc(org)))
        .await?;
    let o = orgs
        .into_iter()
        .find(|o| o.name == org)
        .ok_or_else(|| CliError::other(format!("Organization '{org}' not found.")))?;
    let spaces: Vec<Named> = c
        .list(&format!("/v3/spaces?organization_guids={}", o.guid))
        .await?;
    match space {
        None => Ok(spaces),
        Some(s) => spaces
            .into_iter()
            .find(|x| x.name == s)
            .map(|x| vec![x])
            .ok_or_else(|| CliError::other(format!("Space '{s}' not found."))),
    }
}

pub async fn bind(args: BindArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let g = find(&c, &args.name).await?;
    let spaces = org_spaces(&c, &args.org, args.space.as_deref()).await?;
    for s in &spaces {
        println!(
            "Assigning {} security group {} to space {} in org {} as {user}...",
            args.lifecycle.as_str(),
            g.name,
            s.name,
            args.org
        );
    }
    let data: Vec<Value> = spaces.iter().map(|s| json!({"guid": s.guid})).collect();
    let _: Value = c
        .post(
            &format!(
                "/v3/security_groups/{}/relationships/{}_spaces",
                g.guid,
                args.lifecycle.as_str()
            ),
            json!({ "data": data }),
        )
        .await?;
    ok();
    println!("\n{DYNAMIC_TIP}");
    Ok(())
}

pub async fn unbind(args: UnbindArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let g = find(&c, &args.name).await?;
    let spaces = org_spaces(&c, &args.org, Some(&args.space)).await?;
    println!(
        "Removing {} security group {} from org {} / space {} as {user}...",
        args.lifecycle.as_str(),
        g.name,
        args.org,
        args.space
    );
    for s in spaces {
        c.delete(&format!(
            "/v3/security_groups/{}/relationships/{}_spaces/{}",
            g.guid,
            args.lifecycle.as_str(),
            s.guid
        ))
        .await?;
    }
    ok();
    println!("\n{DYNAMIC_TIP}");
    Ok(())
}

/// `bind-`/`unbind-running-security-group` and the staging forms: the
/// group's global flag for one lifecycle.
pub async fn set_global(name: &str, lifecycle: Lifecycle, on: bool) -> Result<()> {
    let (c, user) = logged_in()?;
    let g = find(&c, name).await?;
    if on {
        println!(
            "Binding security group {} to {} as {user}...",
            g.name,
            lifecycle.as_str()
        );
    } else {
        println!(
            "Unbinding security group {} from defaults for {} as {user}...",
            g.name,
            lifecycle.as_str()
        );
    }
    let _: Value = c
        .patch(
            &format!("/v3/security_groups/{}", g.guid),
            json!({"globally_enabled": {lifecycle.as_str(): on}}),
        )
        .await?;
    ok();
    println!("\n{DYNAMIC_TIP}");
    Ok(())
}

/// `cf running-security-groups` / `cf staging-security-groups`.
pub async fn globals(lifecycle: Lifecycle) -> Result<()> {
    let (c, user) = logged_in()?;
    println!(
        "Getting global {} security groups as {user}...\n",
        lifecycle.as_str()
    );
    let groups: Vec<Group> = c
        .list(&format!(
            "/v3/security_groups?globally_enabled_{}=true&per_page=5000",
            lifecycle.as_str()
        ))
        .await?;
    if groups.is_empty() {
        println!("No global {} security groups.", lifecycle.as_str());
        return Ok(());
    }
    let mut rows = vec![vec!["name".to_string()]];
    rows.extend(groups.into_iter().map(|g| vec![g.name]));
    print!("{}", table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_group_place_and_lifecycle() {
        let groups: Vec<Group> = serde_json::from_value(json!([
            {"guid": "g1", "name": "public_networks", "globally_enabled": {"running": true, "staging": true},
             "rules": [], "relationships": {"running_spaces": {"data": []}, "staging_spaces": {"data": []}}},
            {"guid": "g2", "name": "db", "globally_enabled": {"running": false, "staging": false},
             "rules": [], "relationships": {"running_spaces": {"data": [{"guid": "s1"}]}, "staging_spaces": {"data": []}}},
            {"guid": "g3", "name": "unused", "globally_enabled": {"running": false, "staging": false},
             "rules": [], "relationships": {"running_spaces": {"data": []}, "staging_spaces": {"data": []}}}
        ]))
        .expect("parse");
        let names = HashMap::from([("s1".to_string(), ("dev".to_string(), "web".to_string()))]);
        let r = rows(&groups, &names);
        assert_eq!(r.len(), 5);
        assert_eq!(r[1], vec!["public_networks", "<all>", "<all>", "running"]);
        assert_eq!(r[2][3], "staging");
        assert_eq!(r[3], vec!["db", "dev", "web", "running"]);
        assert_eq!(r[4], vec!["unused", "", "", ""]);
    }

    #[test]
    fn rules_files_must_be_json_arrays_of_objects() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ok = tmp.path().join("ok.json");
        std::fs::write(&ok, r#"[{"protocol":"all","destination":"1.1.1.1"}]"#).expect("write");
        assert!(read_rules(&ok).is_ok());
        for (name, text) in [("bad", "{nope"), ("obj", r#"{"a":1}"#), ("nums", "[1]")] {
            let p = tmp.path().join(name);
            std::fs::write(&p, text).expect("write");
            assert!(matches!(read_rules(&p), Err(CliError::Usage(_))), "{name}");
        }
    }
}
