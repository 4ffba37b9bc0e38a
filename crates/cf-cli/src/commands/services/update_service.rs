//! `cf update-service INSTANCE [-p NEW_PLAN] [-c PARAMS] [-t TAGS] [-w]`
//! and `cf rename-service INSTANCE NEW_NAME`: `PATCH
//! /v3/service_instances/:guid` (a job when the broker is involved).

use serde_json::{json, Map, Value};

use super::create_service::find_plan;
use super::{find_instance, follow_job, parse_params, parse_tags, to_one, JobEnd};
use crate::client::ReqBody;
use crate::commands::common::{ok, Ctx};
use crate::error::{CliError, Result};
use crate::models::{Included, ServiceInstance};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the service instance
    pub name: String,
    /// Change service plan for a service instance
    #[arg(short = 'p')]
    pub plan: Option<String>,
    /// Valid JSON object containing service-specific configuration parameters, provided either in-line or in a file
    #[arg(short = 'c')]
    pub params: Option<String>,
    /// User provided tags ("a, b")
    #[arg(short = 't')]
    pub tags: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// Name of the service instance
    pub name: String,
    /// New name of the service instance
    pub new_name: String,
}

/// CF's text when a command needs the other kind of instance.
pub fn wrong_type(name: &str, required: &str) -> CliError {
    CliError::other(format!("The service instance '{name}' is not {required}"))
}

/// The `PATCH` body of an update; `None` when nothing would change (the
/// plan given is the current one and nothing else is).
pub fn update_body(
    current_plan: &str,
    new_plan: Option<&str>,
    params: Option<Value>,
    tags: Option<Vec<String>>,
) -> Option<Value> {
    let mut b = Map::new();
    if let Some(p) = new_plan.filter(|p| *p != current_plan) {
        b.insert("relationships".into(), json!({"service_plan": to_one(p)}));
    }
    if let Some(p) = params {
        b.insert("parameters".into(), p);
    }
    if let Some(t) = tags {
        b.insert("tags".into(), json!(t));
    }
    (!b.is_empty()).then_some(Value::Object(b))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Updated {
    NoChanges,
    Job(JobEnd),
}

const UPDATE_FIELDS: &str = "fields%5Bservice_plan%5D=name,guid,relationships.service_offering&fields%5Bservice_plan.service_offering%5D=name,guid,relationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=name,guid";

async fn managed_instance(ctx: &Ctx, name: &str) -> Result<(ServiceInstance, Included)> {
    let (found, pages): (Vec<ServiceInstance>, _) = ctx
        .client
        .list_included(&format!(
            "/v3/service_instances?names={}&space_guids={}&{UPDATE_FIELDS}",
            crate::commands::common::enc(name),
            ctx.space.guid
        ))
        .await?;
    let si = found
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| super::instance_not_found(name))?;
    if si.is_user_provided() {
        return Err(wrong_type(name, "managed"));
    }
    Ok((si, Included::from_pages(pages)))
}

pub async fn update(ctx: &Ctx, args: &Args, params: Option<Value>) -> Result<Updated> {
    let (si, included) = managed_instance(ctx, &args.name).await?;
    let new_plan = match &args.plan {
        Some(p) => {
            let (offering, broker) = included.offering_and_broker(si.plan_guid());
            let broker = Some(broker.as_str()).filter(|b| !b.is_empty());
            Some(find_plan(ctx, &offering, p, broker).await?.guid)
        }
        None => None,
    };
    let tags = args.tags.as_deref().map(parse_tags);
    let Some(body) = update_body(si.plan_guid(), new_plan.as_deref(), params, tags) else {
        return Ok(Updated::NoChanges);
    };
    let (loc, _) = ctx
        .client
        .write(
            reqwest::Method::PATCH,
            &format!("/v3/service_instances/{}", si.guid),
            ReqBody::Json(body),
        )
        .await?;
    Ok(Updated::Job(follow_job(&ctx.client, loc, args.wait).await?))
}

pub async fn run(args: Args) -> Result<()> {
    let params = parse_params(args.params.as_deref())?;
    let ctx = Ctx::load()?;
    let name = &args.name;
    println!("Updating service instance {name} {}...\n", ctx.where_());
    if args.plan.is_none() && params.is_none() && args.tags.is_none() {
        println!("No flags specified. No changes were made.");
        ok();
        return Ok(());
    }
    match update(&ctx, &args, params).await? {
        Updated::NoChanges => println!("No changes were made."),
        Updated::Job(JobEnd::Complete) => println!("Update of service instance {name} complete."),
        Updated::Job(JobEnd::InProgress) => println!(
            "Update in progress. Use 'cf services' or 'cf service {name}' to check operation status."
        ),
    }
    ok();
    Ok(())
}

pub async fn rename(args: RenameArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    let (old, new) = (args.name.trim(), args.new_name.trim());
    println!("Renaming service {old} to {new} {}...", ctx.where_());
    let si = match find_instance(&ctx, old).await {
        Ok(si) => si,
        Err(e) => {
            println!("TIP: Use 'cf services' to view all services in this org and space.");
            return Err(e);
        }
    };
    let (loc, _) = ctx
        .client
        .write(
            reqwest::Method::PATCH,
            &format!("/v3/service_instances/{}", si.guid),
            ReqBody::Json(json!({ "name": new })),
        )
        .await?;
    follow_job(&ctx.client, loc, false).await?;
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_bodies() {
        assert_eq!(update_body("p1", Some("p1"), None, None), None);
        assert_eq!(
            update_body("p1", Some("p2"), None, None),
            Some(json!({"relationships": {"service_plan": {"data": {"guid": "p2"}}}}))
        );
        assert_eq!(
            update_body(
                "p1",
                Some("p1"),
                Some(json!({"a": 1})),
                Some(vec!["x".into()])
            ),
            Some(json!({"parameters": {"a": 1}, "tags": ["x"]}))
        );
        assert_eq!(
            update_body("p1", None, None, Some(vec![])),
            Some(json!({"tags": []}))
        );
        assert_eq!(
            wrong_type("db", "user-provided").to_string(),
            "The service instance 'db' is not user-provided"
        );
    }
}
