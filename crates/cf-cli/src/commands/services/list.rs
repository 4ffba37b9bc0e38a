//! `cf services [--no-apps]` (`s`): the targeted space's service
//! instances with their offering, plan and broker (`fields[...]` of `GET
//! /v3/service_instances`) and bound apps (`GET
//! /v3/service_credential_bindings?include=app`).

use std::collections::BTreeMap;

use crate::commands::common::Ctx;
use crate::error::Result;
use crate::format::table;
use crate::models::{Included, ServiceBinding, ServiceInstance};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not retrieve bound apps information.
    #[arg(long = "no-apps")]
    pub no_apps: bool,
}

/// The fields of plan, offering and broker the instance lists ask for.
pub const INSTANCE_FIELDS: &str = "fields%5Bservice_plan%5D=guid,name,relationships.service_offering&fields%5Bservice_plan.service_offering%5D=guid,name,relationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=guid,name";

/// `yes`, `no`, or empty when the instance does not say (user-provided).
pub fn upgrade_available(u: Option<bool>) -> &'static str {
    match u {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    }
}

/// The `cf services` table.
pub fn rows(
    instances: &[ServiceInstance],
    included: &Included,
    bound: &BTreeMap<String, Vec<String>>,
    show_apps: bool,
) -> Vec<Vec<String>> {
    let mut head = vec!["name", "offering", "plan"];
    if show_apps {
        head.push("bound apps");
    }
    head.extend(["last operation", "broker", "upgrade available"]);
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for si in instances {
        let (offering, broker) = if si.is_user_provided() {
            ("user-provided".to_string(), String::new())
        } else {
            included.offering_and_broker(si.plan_guid())
        };
        let plan = included
            .plan(si.plan_guid())
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let mut row = vec![si.name.clone(), offering, plan];
        if show_apps {
            row.push(
                bound
                    .get(&si.guid)
                    .map(|a| a.join(", "))
                    .unwrap_or_default(),
            );
        }
        row.push(
            si.last_operation
                .as_ref()
                .map(|l| l.summary())
                .unwrap_or_default(),
        );
        row.push(broker);
        row.push(upgrade_available(si.upgrade_available).into());
        rows.push(row);
    }
    rows
}

/// Instance guid → the names of its bound apps.
pub fn bound_apps(
    bindings: &[ServiceBinding],
    included: &Included,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in bindings {
        if let Some(app) = included.app(b.app_guid()) {
            out.entry(b.instance_guid().to_string())
                .or_default()
                .push(app.name.clone());
        }
    }
    out
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Getting service instances {}...\n", ctx.where_());
    let (instances, pages): (Vec<ServiceInstance>, _) = ctx
        .client
        .list_included(&format!(
            "/v3/service_instances?space_guids={}&{INSTANCE_FIELDS}&order_by=name&per_page=5000",
            ctx.space.guid
        ))
        .await?;
    if instances.is_empty() {
        println!("No service instances found.");
        return Ok(());
    }
    let included = Included::from_pages(pages);
    let bound = if args.no_apps {
        BTreeMap::new()
    } else {
        let guids: Vec<&str> = instances.iter().map(|i| i.guid.as_str()).collect();
        let (bindings, pages): (Vec<ServiceBinding>, _) = ctx
            .client
            .list_included(&format!(
                "/v3/service_credential_bindings?service_instance_guids={}&type=app&include=app&per_page=5000",
                guids.join(",")
            ))
            .await?;
        bound_apps(&bindings, &Included::from_pages(pages))
    };
    print!(
        "{}",
        table(&rows(&instances, &included, &bound, !args.no_apps))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_cf_services_table() {
        let instances: Vec<ServiceInstance> = serde_json::from_value(json!([
            {"guid": "i1", "name": "mydb", "type": "managed", "upgrade_available": false,
             "last_operation": {"type": "create", "state": "succeeded", "description": null},
             "relationships": {"service_plan": {"data": {"guid": "p1"}}}},
            {"guid": "i2", "name": "creds", "type": "user-provided",
             "last_operation": {"type": "create", "state": "succeeded"}}
        ]))
        .expect("instances");
        let included = Included::from_pages(vec![json!({
            "service_plans": [{"guid": "p1", "name": "small", "relationships": {"service_offering": {"data": {"guid": "o1"}}}}],
            "service_offerings": [{"guid": "o1", "name": "postgres", "relationships": {"service_broker": {"data": {"guid": "b1"}}}}],
            "service_brokers": [{"guid": "b1", "name": "pg-broker"}]
        })]);
        let bindings: Vec<ServiceBinding> = serde_json::from_value(json!([
            {"guid": "x1", "relationships": {"app": {"data": {"guid": "a1"}}, "service_instance": {"data": {"guid": "i1"}}}},
            {"guid": "x2", "relationships": {"app": {"data": {"guid": "a2"}}, "service_instance": {"data": {"guid": "i1"}}}}
        ]))
        .expect("bindings");
        let apps = Included::from_pages(vec![
            json!({"apps": [{"guid": "a1", "name": "web"}, {"guid": "a2", "name": "worker"}]}),
        ]);
        let bound = bound_apps(&bindings, &apps);
        assert_eq!(
            table(&rows(&instances, &included, &bound, true)),
            "name    offering        plan    bound apps    last operation     broker      upgrade available\n\
             mydb    postgres        small   web, worker   create succeeded   pg-broker   no\n\
             creds   user-provided                         create succeeded\n"
        );
        let short = table(&rows(&instances, &included, &bound, false));
        assert!(
            short.starts_with("name    offering        plan    last operation"),
            "{short}"
        );
    }
}
