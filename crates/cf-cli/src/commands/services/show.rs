//! `cf service INSTANCE [--guid] [--params]`: one instance's details, the
//! status of its last operation and its bound apps.

use serde_json::Value;

use super::{find_instance, instance_not_found};
use crate::commands::common::{enc, Ctx};
use crate::error::Result;
use crate::format::kv_auto;
use crate::models::{Included, ServiceBinding, ServiceInstance};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the service instance
    pub name: String,
    /// Retrieve and display the given service instances's guid. All other output is suppressed.
    #[arg(long, conflicts_with = "params")]
    pub guid: bool,
    /// Retrieve and display the given service instances's parameters. All other output is suppressed.
    #[arg(long)]
    pub params: bool,
}

const INDENT: &str = "   ";

const DETAIL_FIELDS: &str = "fields%5Bservice_plan%5D=name,guid,relationships.service_offering&fields%5Bservice_plan.service_offering%5D=name,guid,description,tags,documentation_url,relationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=name,guid";

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("{INDENT}{l}\n")).collect()
}

/// The key/value block of an instance (user-provided or managed).
pub fn properties(si: &ServiceInstance, included: &Included) -> String {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    if si.is_user_provided() {
        return kv_auto(&[
            ("name", si.name.clone()),
            ("guid", si.guid.clone()),
            ("type", si.kind.clone()),
            ("tags", si.tags.join(", ")),
            ("route service url", s(&si.route_service_url)),
            ("syslog drain url", s(&si.syslog_drain_url)),
        ]);
    }
    let plan = included.plan(si.plan_guid());
    let offering = plan.and_then(|p| included.offering(p.offering_guid()));
    let broker = offering.and_then(|o| included.broker(o.broker_guid()));
    kv_auto(&[
        ("name", si.name.clone()),
        ("guid", si.guid.clone()),
        ("type", si.kind.clone()),
        ("broker", broker.map(|b| b.name.clone()).unwrap_or_default()),
        (
            "offering",
            offering.map(|o| o.name.clone()).unwrap_or_default(),
        ),
        ("plan", plan.map(|p| p.name.clone()).unwrap_or_default()),
        ("tags", si.tags.join(", ")),
        (
            "offering tags",
            offering.map(|o| o.tags.join(", ")).unwrap_or_default(),
        ),
        (
            "description",
            offering.map(|o| s(&o.description)).unwrap_or_default(),
        ),
        (
            "documentation",
            offering
                .map(|o| s(&o.documentation_url))
                .unwrap_or_default(),
        ),
        ("dashboard url", s(&si.dashboard_url)),
    ])
}

/// `Showing status of last operation:` and what follows.
pub fn last_operation(si: &ServiceInstance) -> String {
    let mut out = String::from("Showing status of last operation:\n");
    match &si.last_operation {
        Some(l) if !l.kind.is_empty() => out.push_str(&indent(&kv_auto(&[
            ("status", l.summary()),
            ("message", l.description.clone().unwrap_or_default()),
            ("started", l.created_at.clone().unwrap_or_default()),
            ("updated", l.updated_at.clone().unwrap_or_default()),
        ]))),
        _ => out.push_str(&format!(
            "{INDENT}There is no last operation available for this service instance.\n"
        )),
    }
    out
}

/// `Showing bound apps:` and the bindings' table (by app name, newest first).
pub fn bound_apps(bindings: &[ServiceBinding], included: &Included) -> String {
    let mut out = String::from("Showing bound apps:\n");
    if bindings.is_empty() {
        out.push_str(&format!(
            "{INDENT}There are no bound apps for this service instance.\n"
        ));
        return out;
    }
    let mut rows: Vec<(String, &ServiceBinding)> = bindings
        .iter()
        .map(|b| {
            let app = included
                .app(b.app_guid())
                .map(|a| a.name.clone())
                .unwrap_or_default();
            (app, b)
        })
        .collect();
    rows.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| y.created_at.cmp(&x.created_at)));
    let mut table = vec![[
        "name",
        "binding name",
        "status",
        "message",
        "guid",
        "created_at",
    ]
    .map(String::from)
    .to_vec()];
    for (app, b) in rows {
        let l = b.last_operation.clone().unwrap_or_default();
        table.push(vec![
            app,
            b.name.clone().unwrap_or_default(),
            l.summary(),
            l.description.unwrap_or_default(),
            b.guid.clone(),
            b.created_at.clone(),
        ]);
    }
    out.push_str(&super::indented(INDENT, &table));
    out
}

/// `Showing upgrade status:` and what follows.
pub fn upgrades(si: &ServiceInstance) -> String {
    let line = match si.upgrade_available {
        Some(true) => "There is an upgrade available for this service.",
        Some(false) => "There is no upgrade available for this service.",
        None => "Upgrades are not supported by this broker.",
    };
    format!("Showing upgrade status:\n{INDENT}{line}\n")
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    if args.guid {
        println!("{}", find_instance(&ctx, &args.name).await?.guid);
        return Ok(());
    }
    if args.params {
        let si = find_instance(&ctx, &args.name).await?;
        let p: Value = ctx
            .client
            .get(&format!("/v3/service_instances/{}/parameters", si.guid))
            .await?;
        println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
        return Ok(());
    }
    println!(
        "Showing info of service {} {}...\n",
        args.name,
        ctx.where_()
    );
    let (found, pages): (Vec<ServiceInstance>, _) = ctx
        .client
        .list_included(&format!(
            "/v3/service_instances?names={}&space_guids={}&{DETAIL_FIELDS}",
            enc(&args.name),
            ctx.space.guid
        ))
        .await?;
    let si = found
        .into_iter()
        .find(|i| i.name == args.name)
        .ok_or_else(|| instance_not_found(&args.name))?;
    let included = Included::from_pages(pages);
    let (bindings, pages): (Vec<ServiceBinding>, _) = ctx
        .client
        .list_included(&format!(
            "/v3/service_credential_bindings?service_instance_guids={}&type=app&include=app&per_page=5000",
            si.guid
        ))
        .await?;
    let apps = Included::from_pages(pages);
    println!("{}", properties(&si, &included));
    println!("{}", last_operation(&si));
    println!("{}", bound_apps(&bindings, &apps));
    if !si.is_user_provided() {
        println!(
            "Showing sharing info:\n{INDENT}This service instance is not currently being shared.\n"
        );
        println!("{}", upgrades(&si));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_user_provided_and_managed_blocks() {
        let upsi: ServiceInstance = serde_json::from_value(json!({
            "guid": "g1", "name": "creds", "type": "user-provided", "tags": ["a", "b"],
            "syslog_drain_url": "syslog://x", "route_service_url": null
        }))
        .expect("upsi");
        assert_eq!(
            properties(&upsi, &Included::default()),
            "name:                creds\nguid:                g1\ntype:                user-provided\ntags:                a, b\nroute service url:\nsyslog drain url:    syslog://x\n"
        );
        assert_eq!(
            last_operation(&upsi),
            "Showing status of last operation:\n   There is no last operation available for this service instance.\n"
        );
        let managed: ServiceInstance = serde_json::from_value(json!({
            "guid": "g2", "name": "db", "type": "managed", "upgrade_available": false,
            "last_operation": {"type": "create", "state": "in progress", "description": "50%", "created_at": "t0", "updated_at": "t1"},
            "relationships": {"service_plan": {"data": {"guid": "p1"}}}
        }))
        .expect("managed");
        let inc = Included::from_pages(vec![json!({
            "service_plans": [{"guid": "p1", "name": "small", "relationships": {"service_offering": {"data": {"guid": "o1"}}}}],
            "service_offerings": [{"guid": "o1", "name": "pg", "description": "Postgres", "tags": ["sql"], "relationships": {"service_broker": {"data": {"guid": "b1"}}}}],
            "service_brokers": [{"guid": "b1", "name": "broker"}]
        })]);
        let p = properties(&managed, &inc);
        assert!(
            p.contains("broker:          broker\n")
                && p.contains("offering tags:   sql\n")
                && p.contains("plan:            small\n"),
            "{p}"
        );
        assert_eq!(
            last_operation(&managed),
            "Showing status of last operation:\n   status:    create in progress\n   message:   50%\n   started:   t0\n   updated:   t1\n"
        );
        assert!(upgrades(&managed).contains("There is no upgrade available"));
        let bindings: Vec<ServiceBinding> = serde_json::from_value(json!([
            {"guid": "b1", "name": null, "created_at": "2026-01-01", "last_operation": {"type": "create", "state": "succeeded"},
             "relationships": {"app": {"data": {"guid": "a1"}}}}
        ]))
        .expect("bindings");
        let apps = Included::from_pages(vec![json!({"apps": [{"guid": "a1", "name": "web"}]})]);
        assert_eq!(
            bound_apps(&bindings, &apps),
            "Showing bound apps:\n   name   binding name   status             message   guid   created_at\n   web                   create succeeded             b1     2026-01-01\n"
        );
        assert!(bound_apps(&[], &apps).contains("There are no bound apps"));
    }
}
