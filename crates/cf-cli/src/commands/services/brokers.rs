//! Service brokers: `cf create-service-broker NAME USERNAME PASSWORD URL
//! [--space-scoped] [--update-if-exists]` (`csb`), `cf service-brokers`,
//! `cf update-service-broker NAME USERNAME PASSWORD URL`, `cf
//! delete-service-broker NAME [-f]`, `cf rename-service-broker NAME
//! NEW_NAME`. Every write answers with a job (the catalog fetch), followed
//! to its end.

use serde_json::{json, Value};

use super::{finish_job, to_one};
use crate::client::{Client, ReqBody};
use crate::commands::common::{ask, confirm, enc, logged_in, ok, Ctx};
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::ServiceBroker;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the service broker
    pub name: String,
    /// Username for the broker's basic authentication
    pub username: String,
    /// Password (omit it to give it in CF_BROKER_PASSWORD or at the prompt), then the URL
    pub password_or_url: String,
    /// URL of the broker
    pub url: Option<String>,
    /// Make the broker's service plans only visible within the targeted space
    #[arg(long)]
    pub space_scoped: bool,
    /// If the broker already exists, update it rather than failing. Ignores --space-scoped.
    #[arg(long)]
    pub update_if_exists: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Name of the service broker
    pub name: String,
    /// Username for the broker's basic authentication
    pub username: String,
    /// Password (omit it to give it in CF_BROKER_PASSWORD or at the prompt), then the URL
    pub password_or_url: String,
    /// URL of the broker
    pub url: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the service broker
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// Name of the service broker
    pub name: String,
    /// New name of the service broker
    pub new_name: String,
}

/// `(password, url)` from `PASSWORD URL`, or from `URL` alone with the
/// password in `env_password` (CF_BROKER_PASSWORD) or, failing that, asked
/// for.
pub fn password_and_url(
    password_or_url: &str,
    url: Option<&str>,
    env_password: Option<String>,
) -> Result<(String, String)> {
    if let Some(u) = url {
        return Ok((password_or_url.to_string(), u.to_string()));
    }
    let password = match env_password {
        Some(p) => p,
        None => ask("Service Broker Password", true)?.unwrap_or_default(),
    };
    Ok((password, password_or_url.to_string()))
}

fn credentials(username: &str, password: &str) -> Value {
    json!({"type": "basic", "credentials": {"username": username, "password": password}})
}

/// The body of `POST /v3/service_brokers`.
pub fn create_body(
    name: &str,
    username: &str,
    password: &str,
    url: &str,
    space_guid: Option<&str>,
) -> Value {
    let mut b =
        json!({"name": name, "url": url, "authentication": credentials(username, password)});
    if let Some(s) = space_guid {
        b["relationships"] = json!({"space": to_one(s)});
    }
    b
}

pub async fn find_opt(c: &Client, name: &str) -> Result<Option<ServiceBroker>> {
    let found: Vec<ServiceBroker> = c
        .list(&format!("/v3/service_brokers?names={}", enc(name)))
        .await?;
    Ok(found.into_iter().find(|b| b.name == name))
}

async fn find(c: &Client, name: &str) -> Result<ServiceBroker> {
    find_opt(c, name).await?.ok_or_else(|| {
        CliError::other(format!(
            "Service broker '{name}' not found.\nTIP: Use 'cf service-brokers' to see a list of available brokers."
        ))
    })
}

/// A write to a broker, its job followed to the end.
async fn write_and_wait(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<()> {
    let (loc, _) = c.write(method, path, ReqBody::Json(body)).await?;
    finish_job(c, loc).await
}

async fn update_broker(
    c: &Client,
    user: &str,
    broker: &ServiceBroker,
    username: &str,
    password: &str,
    url: &str,
) -> Result<()> {
    println!("Updating service broker {} as {user}...", broker.name);
    write_and_wait(
        c,
        reqwest::Method::PATCH,
        &format!("/v3/service_brokers/{}", broker.guid),
        json!({"url": url, "authentication": credentials(username, password)}),
    )
    .await?;
    ok();
    Ok(())
}

fn env_password() -> Option<String> {
    std::env::var("CF_BROKER_PASSWORD").ok()
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let space = if args.space_scoped {
        Some(Ctx::load()?)
    } else {
        None
    };
    let (password, url) =
        password_and_url(&args.password_or_url, args.url.as_deref(), env_password())?;
    if args.update_if_exists {
        if let Some(b) = find_opt(&c, &args.name).await? {
            return update_broker(&c, &user, &b, &args.username, &password, &url).await;
        }
    }
    match &space {
        Some(ctx) => println!("Creating service broker {} {}...", args.name, ctx.where_()),
        None => println!("Creating service broker {} as {user}...", args.name),
    }
    let body = create_body(
        &args.name,
        &args.username,
        &password,
        &url,
        space.as_ref().map(|s| s.space.guid.as_str()),
    );
    write_and_wait(&c, reqwest::Method::POST, "/v3/service_brokers", body).await?;
    ok();
    Ok(())
}

pub async fn list() -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Getting service brokers as {user}...\n");
    let brokers: Vec<ServiceBroker> = c.list("/v3/service_brokers?per_page=5000").await?;
    if brokers.is_empty() {
        println!("No service brokers found");
        return Ok(());
    }
    let mut rows = vec![vec!["name".to_string(), "url".to_string()]];
    rows.extend(brokers.into_iter().map(|b| vec![b.name, b.url]));
    print!("{}", table(&rows));
    Ok(())
}

pub async fn update(args: UpdateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let (password, url) =
        password_and_url(&args.password_or_url, args.url.as_deref(), env_password())?;
    let b = find(&c, &args.name).await?;
    update_broker(&c, &user, &b, &args.username, &password, &url).await
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let (c, _) = logged_in()?;
    if !args.force && !confirm(&format!("Really delete the service broker {}?", args.name)) {
        println!("'{}' has not been deleted.", args.name);
        return Ok(());
    }
    println!("Deleting service broker {}...", args.name);
    let Some(b) = find_opt(&c, &args.name).await? else {
        println!("Service broker '{}' does not exist.", args.name);
        ok();
        return Ok(());
    };
    let loc = c.delete(&format!("/v3/service_brokers/{}", b.guid)).await?;
    finish_job(&c, loc).await?;
    ok();
    Ok(())
}

pub async fn rename(args: RenameArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let b = find(&c, &args.name).await?;
    println!(
        "Renaming service broker {} to {} as {user}...",
        args.name, args.new_name
    );
    write_and_wait(
        &c,
        reqwest::Method::PATCH,
        &format!("/v3/service_brokers/{}", b.guid),
        json!({ "name": args.new_name }),
    )
    .await?;
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_from_args_or_environment() {
        assert_eq!(
            password_and_url("pw", Some("http://b"), Some("env".into())).expect("args"),
            ("pw".to_string(), "http://b".to_string())
        );
        assert_eq!(
            password_and_url("http://b", None, Some("env".into())).expect("env"),
            ("env".to_string(), "http://b".to_string())
        );
    }

    #[test]
    fn broker_bodies() {
        assert_eq!(
            create_body("b", "u", "p", "http://b", None),
            json!({"name": "b", "url": "http://b", "authentication": {"type": "basic", "credentials": {"username": "u", "password": "p"}}})
        );
        assert_eq!(
            create_body("b", "u", "p", "http://b", Some("s1"))["relationships"],
            json!({"space": {"data": {"guid": "s1"}}})
        );
    }
}
