//! Service keys (credential bindings of type `key`): `cf
//! create-service-key INSTANCE KEY [-c PARAMS] [-w]` (`csk`), `cf
//! service-keys INSTANCE` (`sk`), `cf service-key INSTANCE KEY [--guid]`
//! and `cf delete-service-key INSTANCE KEY [-f] [-w]` (`dsk`).

use serde_json::{json, Value};

use super::{
    find_instance, follow_job, parse_params, post_create, to_one, JobEnd, Outcome, Posted, Taken,
};
use crate::commands::common::{confirm, enc, ok, Ctx};
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::ServiceBinding;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the service instance
    pub instance: String,
    /// Name of the service key
    pub key: String,
    /// Valid JSON object containing service-specific configuration parameters, provided either in-line or in a file
    #[arg(short = 'c')]
    pub params: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Name of the service instance
    pub instance: String,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Name of the service instance
    pub instance: String,
    /// Name of the service key
    pub key: String,
    /// Retrieve and display the given service-key's guid. All other output is suppressed.
    #[arg(long)]
    pub guid: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Name of the service instance
    pub instance: String,
    /// Name of the service key
    pub key: String,
    /// Force deletion without confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

pub fn key_body(instance_guid: &str, key: &str, params: Option<Value>) -> Value {
    let mut b = json!({
        "type": "key",
        "name": key,
        "relationships": {"service_instance": to_one(instance_guid)},
    });
    if let Some(p) = params {
        b["parameters"] = p;
    }
    b
}

pub async fn create_key(ctx: &Ctx, args: &CreateArgs, params: Option<Value>) -> Result<Outcome> {
    let si = find_instance(ctx, &args.instance).await?;
    let body = key_body(&si.guid, &args.key, params);
    let path = "/v3/service_credential_bindings";
    match post_create(&ctx.client, path, body, Taken::KeyName).await? {
        Posted::Taken => Ok(Outcome::Already),
        Posted::Created(loc) => Ok(Outcome::Job(follow_job(&ctx.client, loc, args.wait).await?)),
    }
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let params = parse_params(args.params.as_deref())?;
    let ctx = Ctx::load()?;
    println!(
        "Creating service key {} for service instance {} as {}...",
        args.key, args.instance, ctx.user
    );
    match create_key(&ctx, &args, params).await? {
        Outcome::Already => println!("\nService key {} already exists", args.key),
        Outcome::Job(JobEnd::Complete) => {}
        Outcome::Job(JobEnd::InProgress) => {
            ok();
            println!("Create in progress.");
            return Ok(());
        }
    }
    ok();
    Ok(())
}

async fn keys_of(
    ctx: &Ctx,
    instance_guid: &str,
    name: Option<&str>,
) -> Result<Vec<ServiceBinding>> {
    let by_name = name
        .map(|n| format!("&names={}", enc(n)))
        .unwrap_or_default();
    ctx.client
        .list(&format!(
            "/v3/service_credential_bindings?service_instance_guids={instance_guid}&type=key{by_name}&per_page=5000"
        ))
        .await
}

/// The `cf service-keys` table.
pub fn rows(keys: &[ServiceBinding]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "name".to_string(),
        "last operation".into(),
        "message".into(),
    ]];
    for k in keys {
        let l = k.last_operation.clone().unwrap_or_default();
        rows.push(vec![
            k.name.clone().unwrap_or_default(),
            l.summary(),
            l.description.unwrap_or_default(),
        ]);
    }
    rows
}

pub async fn list(args: ListArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Getting keys for service instance {} as {}...\n",
        args.instance, ctx.user
    );
    let si = find_instance(&ctx, &args.instance).await?;
    let keys = keys_of(&ctx, &si.guid, None).await?;
    if keys.is_empty() {
        println!("No service keys for service instance {}", args.instance);
    } else {
        print!("{}", table(&rows(&keys)));
    }
    Ok(())
}

async fn find_key(ctx: &Ctx, instance: &str, key: &str) -> Result<Option<ServiceBinding>> {
    let si = find_instance(ctx, instance).await?;
    Ok(keys_of(ctx, &si.guid, Some(key))
        .await?
        .into_iter()
        .find(|k| k.name.as_deref() == Some(key)))
}

pub async fn show(args: ShowArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    let not_found = || {
        CliError::other(format!(
            "No service key {} found for service instance {}",
            args.key, args.instance
        ))
    };
    if args.guid {
        let k = find_key(&ctx, &args.instance, &args.key)
            .await?
            .ok_or_else(not_found)?;
        println!("{}", k.guid);
        return Ok(());
    }
    println!(
        "Getting key {} for service instance {} as {}...\n",
        args.key, args.instance, ctx.user
    );
    let k = find_key(&ctx, &args.instance, &args.key)
        .await?
        .ok_or_else(not_found)?;
    let details: Value = ctx
        .client
        .get(&format!(
            "/v3/service_credential_bindings/{}/details",
            k.guid
        ))
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&details).unwrap_or_default()
    );
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    if !args.force && !confirm(&format!("Really delete the service key {}?", args.key)) {
        println!("Delete cancelled");
        return Ok(());
    }
    println!(
        "Deleting key {} for service instance {} as {}...",
        args.key, args.instance, ctx.user
    );
    let Some(k) = find_key(&ctx, &args.instance, &args.key).await? else {
        println!(
            "\nService key {} does not exist for service instance {}.",
            args.key, args.instance
        );
        ok();
        return Ok(());
    };
    let loc = ctx
        .client
        .delete(&format!("/v3/service_credential_bindings/{}", k.guid))
        .await?;
    let end = follow_job(&ctx.client, loc, args.wait).await?;
    ok();
    if end == JobEnd::InProgress {
        println!("Delete in progress.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{cf_error, page, Script, Server};
    use super::*;

    #[test]
    fn key_table() {
        let keys: Vec<ServiceBinding> = serde_json::from_value(json!([
            {"guid": "k1", "name": "key1", "last_operation": {"type": "create", "state": "succeeded", "description": null}},
            {"guid": "k2", "name": "key2", "last_operation": {"type": "create", "state": "failed", "description": "broker said no"}}
        ]))
        .expect("keys");
        assert_eq!(
            table(&rows(&keys)),
            "name   last operation     message\nkey1   create succeeded\nkey2   create failed      broker said no\n"
        );
    }

    #[tokio::test]
    async fn a_taken_key_name_already_exists() {
        let s = Server::start(
            Script::default()
                .on(
                    "GET",
                    "/v3/service_instances?names=db",
                    vec![page(json!([{"guid": "si-1", "name": "db", "type": "managed"}]), json!({}))],
                )
                .on(
                    "POST",
                    "/v3/service_credential_bindings",
                    vec![cf_error(422, "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name 'k'.")],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let args = CreateArgs {
            instance: "db".into(),
            key: "k".into(),
            params: None,
            wait: false,
        };
        assert_eq!(
            create_key(&s.ctx(dir.path()), &args, None)
                .await
                .expect("create"),
            Outcome::Already
        );
        let post = s
            .seen()
            .into_iter()
            .find(|r| r.method == "POST")
            .expect("post");
        assert_eq!(
            post.body,
            Some(
                json!({"type": "key", "name": "k", "relationships": {"service_instance": {"data": {"guid": "si-1"}}}})
            )
        );
    }
}
