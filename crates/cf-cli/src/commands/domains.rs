//! Domains (CF v3 `/v3/domains`): `cf domains`, `cf create-shared-domain
//! DOMAIN [--internal]`, `cf create-private-domain ORG DOMAIN`,
//! `cf share-private-domain ORG DOMAIN`.

use serde_json::{json, Value};

use super::common::{enc, find_org, logged_in, ok, targeted_org};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct SharedArgs {
    /// Domain name
    pub domain: String,
    /// Applications that use internal routes communicate directly on the container network
    #[arg(long)]
    pub internal: bool,
}

#[derive(Debug, clap::Args)]
pub struct OrgDomainArgs {
    /// Organization
    pub org: String,
    /// Domain name
    pub domain: String,
}

/// `POST /v3/domains` body of a shared domain.
pub fn shared_domain_body(name: &str, internal: bool) -> Value {
    json!({"name": name, "internal": internal})
}

/// `POST /v3/domains` body of a private domain of an org.
pub fn private_domain_body(name: &str, org_guid: &str) -> Value {
    json!({"name": name, "relationships": {"organization": {"data": {"guid": org_guid}}}})
}

pub async fn create_shared(args: SharedArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Creating shared domain {} as {user}...", args.domain);
    let _: Value = c
        .post(
            "/v3/domains",
            shared_domain_body(&args.domain, args.internal),
        )
        .await?;
    ok();
    Ok(())
}

pub async fn create_private(args: OrgDomainArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!(
        "Creating private domain {} for org {} as {user}...",
        args.domain, args.org
    );
    let org = find_org(&c, &args.org).await?;
    let _: Value = c
        .post("/v3/domains", private_domain_body(&args.domain, &org.guid))
        .await?;
    ok();
    println!(
        "\nTIP: Domain '{}' is a private domain. Run 'cf share-private-domain' to share this domain with a different org.",
        args.domain
    );
    Ok(())
}

async fn find_domain(c: &Client, name: &str) -> Result<Named> {
    let found: Vec<Named> = c.list(&format!("/v3/domains?names={}", enc(name))).await?;
    found
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| CliError::other(format!("Domain '{name}' not found.")))
}

pub async fn share_private(args: OrgDomainArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!(
        "Sharing domain {} with org {} as {user}...",
        args.domain, args.org
    );
    let org = find_org(&c, &args.org).await?;
    let domain = find_domain(&c, &args.domain).await?;
    let _: Value = c
        .post(
            &format!(
                "/v3/domains/{}/relationships/shared_organizations",
                domain.guid
            ),
            json!({"data": [{"guid": org.guid}]}),
        )
        .await?;
    ok();
    Ok(())
}

/// The `cf domains` table from v3 domain resources: shared (no owning org)
/// or private, internal, protocols.
pub fn domains_table(domains: &[Value]) -> String {
    let mut rows = vec![vec![
        "name".to_string(),
        "availability".into(),
        "internal".into(),
        "protocols".into(),
    ]];
    for d in domains {
        let private = d
            .pointer("/relationships/organization/data/guid")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty());
        let protocols = d["supported_protocols"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "http".into());
        rows.push(vec![
            d["name"].as_str().unwrap_or("").to_string(),
            if private { "private" } else { "shared" }.to_string(),
            if d["internal"].as_bool() == Some(true) {
                "true".into()
            } else {
                String::new()
            },
            protocols,
        ]);
    }
    table(&rows)
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    let org = targeted_org(&c)?;
    println!("Getting domains in org {} as {user}...\n", org.name);
    let mut domains: Vec<Value> = c
        .list(&format!("/v3/organizations/{}/domains", org.guid))
        .await?;
    // CF sorts by name, ignoring case.
    domains.sort_by_key(|d| d["name"].as_str().unwrap_or("").to_lowercase());
    if domains.is_empty() {
        println!("No domains found.");
    } else {
        print!("{}", domains_table(&domains));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_domain_bodies() {
        assert_eq!(
            shared_domain_body("example.com", false),
            json!({"name": "example.com", "internal": false})
        );
        assert_eq!(
            private_domain_body("me.com", "o1"),
            json!({"name": "me.com", "relationships": {"organization": {"data": {"guid": "o1"}}}})
        );
    }

    #[test]
    fn renders_domains() {
        let d = vec![
            json!({"name": "localhost", "internal": false, "relationships": {"organization": {"data": null}}, "supported_protocols": ["http"]}),
            json!({"name": "apps.internal", "internal": true}),
            json!({"name": "me.com", "relationships": {"organization": {"data": {"guid": "o1"}}}, "supported_protocols": ["http", "tcp"]}),
        ];
        assert_eq!(
            domains_table(&d),
            "name            availability   internal   protocols\n\
             localhost       shared                    http\n\
             apps.internal   shared         true       http\n\
             me.com          private                   http,tcp\n"
        );
    }
}
