//! Users: `cf create-user USERNAME PASSWORD | --origin ORIGIN |
//! --password-prompt` (UAA SCIM `POST /Users`, then
//! `POST /v3/users {guid}`) and `cf delete-user USERNAME [-f] [--origin O]`
//! (UAA `GET /Users?filter=...`, `DELETE /v3/users/:guid` and its job, UAA
//! `DELETE /Users/:id`).

use serde_json::{json, Value};

use super::common::{ask, confirm, enc, logged_in, ok, uaa_url, wait_job};
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Username
    pub username: String,
    /// Password (not with --origin of an external identity provider)
    pub password: Option<String>,
    /// Origin for mapping a user account to a user in an external identity provider
    #[arg(long)]
    pub origin: Option<String>,
    /// Prompt interactively for password
    #[arg(long)]
    pub password_prompt: bool,
}

/// The password and origin of `create-user`, or the usage error.
pub fn create_inputs(args: &CreateArgs) -> Result<(Option<String>, String)> {
    let origin = args
        .origin
        .clone()
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| "uaa".to_string());
    match (&args.password, args.password_prompt) {
        (Some(_), true) => Err(CliError::Usage(
            "Incorrect Usage: The following arguments cannot be used together: --password-prompt, PASSWORD".into(),
        )),
        (None, false) if origin == "uaa" => Err(CliError::Usage(
            "Incorrect Usage: the required argument `PASSWORD` was not provided".into(),
        )),
        (p, _) => Ok((p.clone(), origin)),
    }
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Username
    pub username: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
    /// Origin (identity provider) of the user, when several have the name
    #[arg(long)]
    pub origin: Option<String>,
}

/// The SCIM body of a new UAA user (name and email are the user name, as
/// the CF CLI sends them).
pub fn scim_user_body(username: &str, password: &str, origin: &str) -> Value {
    json!({
        "userName": username,
        "password": password,
        "origin": origin,
        "name": {"givenName": username, "familyName": username},
        "emails": [{"value": username, "primary": true}],
    })
}

/// `/Users?filter=userName eq "U"[ and origin eq "O"]`, URL-encoded.
pub fn users_filter_path(username: &str, origin: Option<&str>) -> String {
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut filter = format!("userName eq \"{}\"", q(username));
    if let Some(o) = origin {
        filter.push_str(&format!(" and origin eq \"{}\"", q(o)));
    }
    format!("/Users?filter={}", enc(&filter))
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let (password, origin) = create_inputs(&args)?;
    let (c, user) = logged_in()?;
    let password = match password {
        Some(p) => p,
        None if args.password_prompt => ask("Password", true)?.unwrap_or_default(),
        None => String::new(),
    };
    println!("Creating user {} as {user}...", args.username);
    let uaa = uaa_url(&c)?;
    let created: Value = match c
        .post(
            &format!("{uaa}/Users"),
            scim_user_body(&args.username, &password, &origin),
        )
        .await
    {
        Ok(v) => v,
        Err(e) if e.status() == Some(409) => {
            println!("User '{}' already exists.", args.username);
            ok();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let id = created["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CliError::Decode("the new UAA user has no id".into()))?;
    let _: Value = c.post("/v3/users", json!({"guid": id})).await?;
    ok();
    println!("\nTIP: Assign roles with 'cf set-org-role' and 'cf set-space-role'.");
    Ok(())
}

/// The UAA ids of the matches: (id, origin).
pub fn scim_matches(list: &Value, username: &str) -> Vec<(String, String)> {
    list["resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|u| {
                    u["userName"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(username))
                })
                .filter_map(|u| {
                    Some((
                        u["id"].as_str()?.to_string(),
                        u["origin"].as_str().unwrap_or("uaa").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    if !args.force && !confirm(&format!("Really delete the user {}?", args.username)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!("Deleting user {} as {user}...", args.username);
    let uaa = uaa_url(&c)?;
    let found: Value = c
        .get(&format!(
            "{uaa}{}",
            users_filter_path(&args.username, args.origin.as_deref())
        ))
        .await?;
    let matches = scim_matches(&found, &args.username);
    let id = match matches.as_slice() {
        [] => {
            println!("User '{}' does not exist.", args.username);
            ok();
            return Ok(());
        }
        [(id, _)] => id.clone(),
        many => {
            let origins: Vec<String> = many.iter().map(|(_, o)| format!("'{o}'")).collect();
            return Err(CliError::other(format!(
                "The user exists in multiple origins. Specify an origin for the requested user from: {}.",
                origins.join(", ")
            )));
        }
    };
    match c.delete(&format!("/v3/users/{id}")).await {
        Ok(loc) => wait_job(&c, loc).await?,
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e),
    }
    match c.delete(&format!("{uaa}/Users/{id}")).await {
        Ok(_) => {}
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e),
    }
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_scim_requests() {
        assert_eq!(
            scim_user_body("bob", "pw", "uaa"),
            json!({"userName": "bob", "password": "pw", "origin": "uaa",
                "name": {"givenName": "bob", "familyName": "bob"},
                "emails": [{"value": "bob", "primary": true}]})
        );
        assert_eq!(
            users_filter_path("bob", None),
            "/Users?filter=userName%20eq%20%22bob%22"
        );
        assert_eq!(
            users_filter_path("bob", Some("uaa")),
            "/Users?filter=userName%20eq%20%22bob%22%20and%20origin%20eq%20%22uaa%22"
        );
    }

    #[test]
    fn create_user_inputs() {
        let a = |p: Option<&str>, o: Option<&str>, prompt: bool| CreateArgs {
            username: "bob".into(),
            password: p.map(str::to_string),
            origin: o.map(str::to_string),
            password_prompt: prompt,
        };
        assert_eq!(
            create_inputs(&a(Some("pw"), None, false)).ok(),
            Some((Some("pw".into()), "uaa".into()))
        );
        assert_eq!(
            create_inputs(&a(None, Some("ldap"), false)).ok(),
            Some((None, "ldap".into()))
        );
        assert_eq!(
            create_inputs(&a(None, None, true)).ok(),
            Some((None, "uaa".into()))
        );
        assert!(create_inputs(&a(None, None, false)).is_err());
        assert!(create_inputs(&a(Some("pw"), None, true)).is_err());
    }

    #[test]
    fn reads_scim_matches() {
        let v = json!({"resources": [
            {"id": "1", "userName": "bob", "origin": "uaa"},
            {"id": "2", "userName": "bobby", "origin": "uaa"}],
            "totalResults": 2});
        assert_eq!(scim_matches(&v, "bob"), vec![("1".into(), "uaa".into())]);
        assert!(scim_matches(&json!({}), "bob").is_empty());
    }
}
