//! Roles (CF v3 `/v3/roles`): `cf set-org-role`, `cf unset-org-role`,
//! `cf set-space-role`, `cf unset-space-role`, `cf org-users`,
//! `cf space-users`, and the role assignments `cf create-org` and
//! `cf create-space` make for their creator.

use serde_json::{json, Value};

use super::common::{delete_and_wait, enc, find_org, find_space, logged_in, ok, token_claim};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::models::Named;

/// The org roles `set-org-role` takes, as (CLI name, v3 type).
pub const ORG_ROLES: [(&str, &str); 3] = [
    ("OrgManager", "organization_manager"),
    ("BillingManager", "organization_billing_manager"),
    ("OrgAuditor", "organization_auditor"),
];

/// The space roles `set-space-role` takes, as (CLI name, v3 type).
pub const SPACE_ROLES: [(&str, &str); 4] = [
    ("SpaceManager", "space_manager"),
    ("SpaceDeveloper", "space_developer"),
    ("SpaceAuditor", "space_auditor"),
    ("SpaceSupporter", "space_supporter"),
];

/// (CLI name, v3 type) of a role name given by the user (any case).
pub fn role_type(
    name: &str,
    table: &[(&'static str, &'static str)],
) -> Result<(&'static str, &'static str)> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            let names: Vec<String> = table.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            let list = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("{} and {last}", rest.join(", "))
                }
                _ => names.join(""),
            };
            CliError::Usage(format!("Incorrect Usage: ROLE must be {list}"))
        })
}

/// Who gets a role: a user by name and origin, or a client / user by guid.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    Name { username: String, origin: String },
    Guid(String),
}

impl Who {
    pub fn from_args(user: &str, origin: Option<&str>, client: bool) -> Who {
        if client {
            Who::Guid(user.to_string())
        } else {
            Who::Name {
                username: user.to_string(),
                origin: origin.unwrap_or("uaa").to_string(),
            }
        }
    }

    fn data(&self) -> Value {
        match self {
            Who::Name { username, origin } => json!({"username": username, "origin": origin}),
            Who::Guid(g) => json!({"guid": g}),
        }
    }

    fn name(&self) -> &str {
        match self {
            Who::Name { username, .. } => username,
            Who::Guid(g) => g,
        }
    }
}

/// Where a role applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope<'a> {
    Org(&'a str),
    Space(&'a str),
}

/// The `POST /v3/roles` body.
pub fn role_body(kind: &str, who: &Who, scope: Scope) -> Value {
    let (key, guid) = match scope {
        Scope::Org(g) => ("organization", g),
        Scope::Space(g) => ("space", g),
    };
    json!({
        "type": kind,
        "relationships": {
            "user": {"data": who.data()},
            key: {"data": {"guid": guid}},
        }
    })
}

/// True for the controller's duplicate-role message, `User '.*' already has '.*' role`.
pub fn is_already_has(detail: &str) -> bool {
    let Some(rest) = detail.find("User '").map(|i| &detail[i + 6..]) else {
        return false;
    };
    let Some(rest) = rest.find("' already has '").map(|i| &rest[i + 15..]) else {
        return false;
    };
    rest.contains("' role")
}

/// Create a role. `Ok(Some(text))` when the user already had it (the CLI
/// shows that text and carries on).
pub async fn create_role(
    c: &Client,
    kind: &str,
    who: &Who,
    scope: Scope<'_>,
) -> Result<Option<String>> {
    match c
        .post::<Value>("/v3/roles", role_body(kind, who, scope))
        .await
    {
        Ok(_) => Ok(None),
        Err(CliError::Api {
            status: 422,
            detail,
            ..
        }) if is_already_has(&detail) => Ok(Some(detail)),
        Err(e) => Err(e),
    }
}

/// The org user role a space role needs first; like the CF CLI, a duplicate,
/// a 403 (a space manager may not create org roles) or an unknown user is
/// not an error here (the space role request reports what matters).
pub async fn ensure_org_user(c: &Client, who: &Who, org_guid: &str) -> Result<()> {
    match create_role(c, "organization_user", who, Scope::Org(org_guid)).await {
        Ok(_) => Ok(()),
        Err(CliError::Api {
            status: 403 | 404, ..
        }) => Ok(()),
        Err(CliError::Api {
            status: 422,
            detail,
            ..
        }) if detail.contains("No user exists")
            || detail.contains("not found")
            || detail.contains("does not exist") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Create an org role, printing the warning for a duplicate.
async fn assign_org_role(c: &Client, kind: &str, who: &Who, org_guid: &str) -> Result<()> {
    if kind != "organization_user" {
        ensure_org_user(c, who, org_guid).await?;
    }
    if let Some(w) = create_role(c, kind, who, Scope::Org(org_guid)).await? {
        println!("{w}");
    }
    Ok(())
}

/// Create a space role (after the org user role), printing the warning for a duplicate.
async fn assign_space_role(
    c: &Client,
    kind: &str,
    who: &Who,
    org_guid: &str,
    space_guid: &str,
) -> Result<()> {
    ensure_org_user(c, who, org_guid).await?;
    if let Some(w) = create_role(c, kind, who, Scope::Space(space_guid)).await? {
        println!("{w}");
    }
    Ok(())
}

/// The logged-in user as a role holder (name and the token's origin).
pub fn current_user(c: &Client, user: &str) -> Who {
    Who::Name {
        username: user.to_string(),
        origin: token_claim(c, "origin").unwrap_or_else(|| "uaa".to_string()),
    }
}

/// `cf create-org`: make the creator OrgManager of the new org.
pub async fn assign_creator_org_manager(c: &Client, user: &str, org: &Named) -> Result<()> {
    println!(
        "Assigning role OrgManager to user {user} in org {} as {user}...",
        org.name
    );
    assign_org_role(c, "organization_manager", &current_user(c, user), &org.guid).await?;
    ok();
    Ok(())
}

/// `cf create-space`: make the creator SpaceManager and SpaceDeveloper.
pub async fn assign_creator_space_roles(
    c: &Client,
    user: &str,
    org: &Named,
    space: &Named,
) -> Result<()> {
    let who = current_user(c, user);
    for (name, kind) in [
        ("SpaceManager", "space_manager"),
        ("SpaceDeveloper", "space_developer"),
    ] {
        println!(
            "Assigning role {name} to user {user} in org {} / space {} as {user}...",
            org.name, space.name
        );
        assign_space_role(c, kind, &who, &org.guid, &space.guid).await?;
        ok();
        println!();
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct OrgRoleArgs {
    /// Username (or client id with --client)
    pub user: String,
    /// Organization
    pub org: String,
    /// OrgManager, BillingManager or OrgAuditor
    pub role: String,
    /// Assign the role to a client-id of a (non-user) service account
    #[arg(long)]
    pub client: bool,
    /// Identity provider of the user (default: uaa)
    #[arg(long)]
    pub origin: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SpaceRoleArgs {
    /// Username (or client id with --client)
    pub user: String,
    /// Organization
    pub org: String,
    /// Space
    pub space: String,
    /// SpaceManager, SpaceDeveloper, SpaceAuditor or SpaceSupporter
    pub role: String,
    /// Assign the role to a client-id of a (non-user) service account
    #[arg(long)]
    pub client: bool,
    /// Identity provider of the user (default: uaa)
    #[arg(long)]
    pub origin: Option<String>,
}

pub async fn set_org_role(args: OrgRoleArgs) -> Result<()> {
    let (name, kind) = role_type(&args.role, &ORG_ROLES)?;
    let (c, me) = logged_in()?;
    let who = Who::from_args(&args.user, args.origin.as_deref(), args.client);
    println!(
        "Assigning role {name} to user {} in org {} as {me}...",
        who.name(),
        args.org
    );
    let org = find_org(&c, &args.org).await?;
    assign_org_role(&c, kind, &who, &org.guid).await?;
    ok();
    Ok(())
}

pub async fn set_space_role(args: SpaceRoleArgs) -> Result<()> {
    let (name, kind) = role_type(&args.role, &SPACE_ROLES)?;
    let (c, me) = logged_in()?;
    let who = Who::from_args(&args.user, args.origin.as_deref(), args.client);
    println!(
        "Assigning role {name} to user {} in org {} / space {} as {me}...",
        who.name(),
        args.org,
        args.space
    );
    let org = find_org(&c, &args.org).await?;
    let space = find_space(&c, &org.guid, &args.space).await?;
    assign_space_role(&c, kind, &who, &org.guid, &space.guid).await?;
    ok();
    Ok(())
}

/// The v3 user guid of `who` (`GET /v3/users?usernames=U&origins=O`).
async fn user_guid(c: &Client, who: &Who) -> Result<String> {
    match who {
        Who::Guid(g) => Ok(g.clone()),
        Who::Name { username, origin } => {
            let users: Vec<Value> = c
                .list(&format!(
                    "/v3/users?usernames={}&origins={}",
                    enc(username),
                    enc(origin)
                ))
                .await?;
            users
                .iter()
                .find(|u| u["username"].as_str() == Some(username.as_str()))
                .and_then(|u| u["guid"].as_str())
                .map(str::to_string)
                .ok_or_else(|| CliError::other(format!("User '{username}' does not exist.")))
        }
    }
}

/// Delete the role `kind` of `who` in the org or space, if it has it.
async fn remove_role(c: &Client, kind: &str, who: &Who, scope: Scope<'_>) -> Result<()> {
    let user = user_guid(c, who).await?;
    let filter = match scope {
        Scope::Org(g) => format!("organization_guids={g}"),
        Scope::Space(g) => format!("space_guids={g}"),
    };
    let roles: Vec<Value> = c
        .list(&format!(
            "/v3/roles?types={kind}&user_guids={user}&{filter}"
        ))
        .await?;
    let found = roles.iter().find(|r| {
        r["type"].as_str() == Some(kind)
            && r.pointer("/relationships/user/data/guid")
                .and_then(Value::as_str)
                == Some(&user)
    });
    if let Some(guid) = found.and_then(|r| r["guid"].as_str()) {
        delete_and_wait(c, &format!("/v3/roles/{guid}")).await?;
    }
    Ok(())
}

pub async fn unset_org_role(args: OrgRoleArgs) -> Result<()> {
    let (name, kind) = role_type(&args.role, &ORG_ROLES)?;
    let (c, me) = logged_in()?;
    let who = Who::from_args(&args.user, args.origin.as_deref(), args.client);
    println!(
        "Removing role {name} from user {} in org {} as {me}...",
        who.name(),
        args.org
    );
    let org = find_org(&c, &args.org).await?;
    remove_role(&c, kind, &who, Scope::Org(&org.guid)).await?;
    ok();
    Ok(())
}

pub async fn unset_space_role(args: SpaceRoleArgs) -> Result<()> {
    let (name, kind) = role_type(&args.role, &SPACE_ROLES)?;
    let (c, me) = logged_in()?;
    let who = Who::from_args(&args.user, args.origin.as_deref(), args.client);
    println!(
        "Removing role {name} from user {} in org {} / space {} as {me}...",
        who.name(),
        args.org,
        args.space
    );
    let org = find_org(&c, &args.org).await?;
    let space = find_space(&c, &org.guid, &args.space).await?;
    remove_role(&c, kind, &who, Scope::Space(&space.guid)).await?;
    ok();
    Ok(())
}

/// Every page of a roles list with `include=user`: (roles, included users).
async fn roles_with_users(c: &Client, path: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut roles = Vec::new();
    let mut users = Vec::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    while let Some(p) = next.take() {
        let page: Value = c.get(&p).await?;
        if let Some(r) = page["resources"].as_array() {
            roles.extend(r.iter().cloned());
        }
        if let Some(u) = page.pointer("/included/users").and_then(Value::as_array) {
            users.extend(u.iter().cloned());
        }
        pages += 1;
        next = page
            .pointer("/pagination/next/href")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty() && pages < 1000)
            .map(str::to_string);
    }
    Ok((roles, users))
}

/// The `org-users` / `space-users` body: a heading per role, then
/// `  name (origin)` for each holder or `  No HEADING found`.
pub fn render_role_groups(groups: &[(&str, &str)], roles: &[Value], users: &[Value]) -> String {
    let mut out = String::new();
    for (heading, kind) in groups {
        out.push_str(heading);
        out.push('\n');
        let mut holders: Vec<(String, String)> = roles
            .iter()
            .filter(|r| r["type"].as_str() == Some(kind))
            .filter_map(|r| {
                r.pointer("/relationships/user/data/guid")
                    .and_then(Value::as_str)
            })
            .filter_map(|g| users.iter().find(|u| u["guid"].as_str() == Some(g)))
            .map(|u| {
                let name = u["presentation_name"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .or_else(|| u["username"].as_str())
                    .or_else(|| u["guid"].as_str())
                    .unwrap_or("")
                    .to_string();
                let origin = u["origin"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("client")
                    .to_string();
                (name, origin)
            })
            .collect();
        holders.sort();
        holders.dedup();
        if holders.is_empty() {
            out.push_str(&format!("  No {heading} found\n"));
        }
        for (name, origin) in holders {
            out.push_str(&format!("  {name} ({origin})\n"));
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, clap::Args)]
pub struct OrgUsersArgs {
    /// Organization
    pub org: String,
    /// List all users in the org, including Org Users
    #[arg(short = 'a', long = "all-roles")]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpaceUsersArgs {
    /// Organization
    pub org: String,
    /// Space
    pub space: String,
}

pub async fn org_users(args: OrgUsersArgs) -> Result<()> {
    let (c, me) = logged_in()?;
    println!("Getting users in org {} as {me}...\n", args.org);
    let org = find_org(&c, &args.org).await?;
    let mut groups = vec![
        ("ORG MANAGER", "organization_manager"),
        ("BILLING MANAGER", "organization_billing_manager"),
        ("ORG AUDITOR", "organization_auditor"),
    ];
    if args.all {
        groups.push(("USERS", "organization_user"));
    }
    let types: Vec<&str> = groups.iter().map(|(_, t)| *t).collect();
    let (roles, users) = roles_with_users(
        &c,
        &format!(
            "/v3/roles?organization_guids={}&types={}&include=user",
            org.guid,
            types.join(",")
        ),
    )
    .await?;
    print!("{}", render_role_groups(&groups, &roles, &users));
    Ok(())
}

pub async fn space_users(args: SpaceUsersArgs) -> Result<()> {
    let (c, me) = logged_in()?;
    println!(
        "Getting users in org {} / space {} as {me}...\n",
        args.org, args.space
    );
    let org = find_org(&c, &args.org).await?;
    let space = find_space(&c, &org.guid, &args.space).await?;
    let groups = [
        ("SPACE MANAGER", "space_manager"),
        ("SPACE DEVELOPER", "space_developer"),
        ("SPACE AUDITOR", "space_auditor"),
        ("SPACE SUPPORTER", "space_supporter"),
    ];
    let types: Vec<&str> = groups.iter().map(|(_, t)| *t).collect();
    let (roles, users) = roles_with_users(
        &c,
        &format!(
            "/v3/roles?space_guids={}&types={}&include=user",
            space.guid,
            types.join(",")
        ),
    )
    .await?;
    print!("{}", render_role_groups(&groups, &roles, &users));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_role_names() {
        assert_eq!(
            role_type("OrgManager", &ORG_ROLES).ok(),
            Some(("OrgManager", "organization_manager"))
        );
        assert_eq!(
            role_type("billingmanager", &ORG_ROLES).ok(),
            Some(("BillingManager", "organization_billing_manager"))
        );
        assert_eq!(
            role_type("SpaceSupporter", &SPACE_ROLES).ok(),
            Some(("SpaceSupporter", "space_supporter"))
        );
        let e = role_type("SpaceDeveloper", &ORG_ROLES).expect_err("not an org role");
        assert_eq!(
            e.to_string(),
            "Incorrect Usage: ROLE must be \"OrgManager\", \"BillingManager\" and \"OrgAuditor\""
        );
    }

    #[test]
    fn builds_role_bodies() {
        let who = Who::from_args("bob", None, false);
        assert_eq!(
            role_body("organization_manager", &who, Scope::Org("o1")),
            json!({"type": "organization_manager", "relationships": {
                "user": {"data": {"username": "bob", "origin": "uaa"}},
                "organization": {"data": {"guid": "o1"}}}})
        );
        let who = Who::from_args("my-client", None, true);
        assert_eq!(
            role_body("space_developer", &who, Scope::Space("s1")),
            json!({"type": "space_developer", "relationships": {
                "user": {"data": {"guid": "my-client"}},
                "space": {"data": {"guid": "s1"}}}})
        );
        let who = Who::from_args("x", Some("ldap"), false);
        assert_eq!(
            role_body("space_auditor", &who, Scope::Space("s"))["relationships"]["user"]["data"]
                ["origin"],
            "ldap"
        );
    }

    #[test]
    fn recognises_duplicate_roles() {
        assert!(is_already_has(
            "User 'bob' already has 'organization_manager' role in organization 'o'."
        ));
        assert!(is_already_has(
            "User 'bob' already has 'space_developer' role in space 's'."
        ));
        assert!(!is_already_has("User 'bob' not found"));
        assert!(!is_already_has("already has 'x' role"));
    }

    #[test]
    fn renders_role_groups() {
        let roles = vec![
            json!({"type": "organization_manager", "relationships": {"user": {"data": {"guid": "u2"}}}}),
            json!({"type": "organization_manager", "relationships": {"user": {"data": {"guid": "u1"}}}}),
            json!({"type": "organization_auditor", "relationships": {"user": {"data": {"guid": "c1"}}}}),
            json!({"type": "organization_user", "relationships": {"user": {"data": {"guid": "u1"}}}}),
        ];
        let users = vec![
            json!({"guid": "u1", "username": "admin", "presentation_name": "admin", "origin": "uaa"}),
            json!({"guid": "u2", "username": "bob", "presentation_name": "bob", "origin": "ldap"}),
            json!({"guid": "c1", "username": null, "presentation_name": "my-client", "origin": null}),
        ];
        let groups = [
            ("ORG MANAGER", "organization_manager"),
            ("BILLING MANAGER", "organization_billing_manager"),
            ("ORG AUDITOR", "organization_auditor"),
        ];
        assert_eq!(
            render_role_groups(&groups, &roles, &users),
            "ORG MANAGER\n  admin (uaa)\n  bob (ldap)\n\nBILLING MANAGER\n  No BILLING MANAGER found\n\nORG AUDITOR\n  my-client (client)\n\n"
        );
    }
}
