//! `cf create-user-provided-service NAME [-p CREDENTIALS] [-l
//! SYSLOG_DRAIN_URL] [-r ROUTE_SERVICE_URL] [-t TAGS]` (`cups`) and `cf
//! update-user-provided-service` (`uups`): user-provided instances (`POST`
//! / `PATCH /v3/service_instances`, no broker, no job).

use serde_json::{json, Map, Value};

use super::update_service::wrong_type;
use super::{
    credentials_value, find_instance, parse_credentials, parse_tags, post_create, to_one, Posted,
    Taken,
};
use crate::commands::common::{ok, Ctx};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the service instance
    pub name: String,
    /// Credentials, provided inline or in a file, to be exposed in the VCAP_SERVICES environment variable for bound applications ("a, b" to be asked for each)
    #[arg(short = 'p')]
    pub credentials: Option<String>,
    /// URL to which logs for bound applications will be streamed
    #[arg(short = 'l')]
    pub syslog_drain_url: Option<String>,
    /// URL to which requests for bound routes will be forwarded. Scheme for this URL must be https
    #[arg(short = 'r')]
    pub route_service_url: Option<String>,
    /// User provided tags ("a, b")
    #[arg(short = 't')]
    pub tags: Option<String>,
}

/// The fields given (credentials already asked for): the body of a
/// `PATCH`, and of a `POST` with `type`, `name` and the space added.
pub fn fields(args: &Args, credentials: Option<Value>) -> Map<String, Value> {
    let mut b = Map::new();
    if let Some(c) = credentials {
        b.insert("credentials".into(), c);
    }
    if let Some(l) = &args.syslog_drain_url {
        b.insert("syslog_drain_url".into(), json!(l));
    }
    if let Some(r) = &args.route_service_url {
        b.insert("route_service_url".into(), json!(r));
    }
    if let Some(t) = &args.tags {
        b.insert("tags".into(), json!(parse_tags(t)));
    }
    b
}

pub fn create_body(args: &Args, space_guid: &str, credentials: Option<Value>) -> Value {
    let mut b = fields(args, credentials);
    b.insert("type".into(), json!("user-provided"));
    b.insert("name".into(), json!(args.name));
    b.insert("relationships".into(), json!({"space": to_one(space_guid)}));
    Value::Object(b)
}

/// `-p`, parsed and (for a list of names) asked for.
fn credentials(args: &Args) -> Result<Option<Value>> {
    args.credentials
        .as_deref()
        .map(parse_credentials)
        .transpose()?
        .flatten()
        .map(credentials_value)
        .transpose()
}

/// `true` when the name was taken already.
pub async fn create_upsi(ctx: &Ctx, body: Value) -> Result<bool> {
    let posted = post_create(
        &ctx.client,
        "/v3/service_instances",
        body,
        Taken::InstanceName,
    )
    .await?;
    Ok(posted == Posted::Taken)
}

pub async fn create(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let creds = credentials(&args)?;
    let name = &args.name;
    println!("Creating user provided service {name} {}...", ctx.where_());
    if create_upsi(&ctx, create_body(&args, &ctx.space.guid, creds)).await? {
        println!("Service instance {name} already exists");
    }
    ok();
    Ok(())
}

pub async fn update(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let creds = credentials(&args)?;
    let name = &args.name;
    println!("Updating user provided service {name} {}...", ctx.where_());
    let body = fields(&args, creds);
    if body.is_empty() {
        println!("No flags specified. No changes were made.");
        ok();
        return Ok(());
    }
    let si = find_instance(&ctx, name).await?;
    if !si.is_user_provided() {
        return Err(wrong_type(name, "user-provided"));
    }
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/service_instances/{}", si.guid),
            Value::Object(body),
        )
        .await?;
    ok();
    println!(
        "TIP: Use 'cf restage' for any bound apps to ensure your env variable changes take effect"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{cf_error, Script, Server};
    use super::*;

    fn args() -> Args {
        Args {
            name: "creds".into(),
            credentials: Some(r#"{"user": "u"}"#.into()),
            syslog_drain_url: Some("syslog://logs:514".into()),
            route_service_url: None,
            tags: Some("a, b".into()),
        }
    }

    #[test]
    fn bodies() {
        let a = args();
        let creds = credentials(&a).expect("creds");
        assert_eq!(
            create_body(&a, "s1", creds),
            json!({"type": "user-provided", "name": "creds",
                "relationships": {"space": {"data": {"guid": "s1"}}},
                "credentials": {"user": "u"}, "syslog_drain_url": "syslog://logs:514", "tags": ["a", "b"]})
        );
        let none = Args {
            credentials: None,
            syslog_drain_url: None,
            tags: None,
            ..args()
        };
        assert!(fields(&none, None).is_empty());
    }

    #[tokio::test]
    async fn a_taken_name_already_exists() {
        let s = Server::start(Script::default().on(
            "POST",
            "/v3/service_instances",
            vec![cf_error(422, "The service instance name is taken: creds.")],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        assert!(create_upsi(&s.ctx(dir.path()), json!({}))
            .await
            .expect("create"));
    }
}
