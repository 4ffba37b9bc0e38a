//! Plan access (CF's plan visibility): `cf enable-service-access OFFERING
//! [-b BROKER] [-p PLAN] [-o ORG]`, `cf disable-service-access` (same
//! flags) and `cf service-access [-b BROKER] [-e OFFERING] [-o ORG]`.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{indented, needs_broker, offering_not_found, plan_not_found};
use crate::client::Client;
use crate::commands::common::{enc, find_org, logged_in, ok};
use crate::error::{CliError, Result};
use crate::models::{Included, Named, ServiceOffering, ServicePlan};

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Service offering
    pub offering: String,
    /// Only the offering of this service broker (required when the offering name is ambiguous)
    #[arg(short = 'b')]
    pub broker: Option<String>,
    /// Only this service plan
    #[arg(short = 'p')]
    pub plan: Option<String>,
    /// Only this organization
    #[arg(short = 'o')]
    pub org: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Access for plans of a particular broker
    #[arg(short = 'b')]
    pub broker: Option<String>,
    /// Access for plans of a particular service offering
    #[arg(short = 'e')]
    pub offering: Option<String>,
    /// Plans accessible by a particular organization
    #[arg(short = 'o')]
    pub org: Option<String>,
}

/// `Enabling access to all plans of service offering X for all orgs as U...`
/// and its variants.
pub fn set_message(op: &str, args: &SetArgs, user: &str) -> String {
    let mut s = format!("{op} access to ");
    match &args.plan {
        Some(p) => s.push_str(&format!("plan {p} ")),
        None => s.push_str("all plans "),
    }
    s.push_str(&format!("of service offering {} ", args.offering));
    if let Some(b) = &args.broker {
        s.push_str(&format!("from broker {b} "));
    }
    match &args.org {
        Some(o) => s.push_str(&format!("for org {o} ")),
        None => s.push_str("for all orgs "),
    }
    s.push_str(&format!("as {user}..."));
    s
}

/// `Getting service access for broker B and service offering E and
/// organization O as U...` (the parts given).
pub fn list_message(args: &ListArgs, user: &str) -> String {
    let mut parts = Vec::new();
    if let Some(b) = &args.broker {
        parts.push(format!("broker {b}"));
    }
    if let Some(e) = &args.offering {
        parts.push(format!("service offering {e}"));
    }
    if let Some(o) = &args.org {
        parts.push(format!("organization {o}"));
    }
    let mut s = String::from("Getting service access");
    if !parts.is_empty() {
        s.push_str(&format!(" for {}", parts.join(" and ")));
    }
    s.push_str(&format!(" as {user}..."));
    s
}

/// The offering and the plans whose access changes.
async fn target_plans(c: &Client, args: &SetArgs) -> Result<Vec<ServicePlan>> {
    let by_broker = args
        .broker
        .as_ref()
        .map(|b| format!("&service_broker_names={}", enc(b)))
        .unwrap_or_default();
    let offerings: Vec<ServiceOffering> = c
        .list(&format!(
            "/v3/service_offerings?names={}{by_broker}",
            enc(&args.offering)
        ))
        .await?;
    let offering = match offerings.as_slice() {
        [] => return Err(offering_not_found(&args.offering, args.broker.as_deref())),
        [o] => o,
        _ => return Err(needs_broker(&args.offering)),
    };
    let by_name = args
        .plan
        .as_ref()
        .map(|p| format!("&names={}", enc(p)))
        .unwrap_or_default();
    let plans: Vec<ServicePlan> = c
        .list(&format!(
            "/v3/service_plans?service_offering_guids={}{by_name}",
            offering.guid
        ))
        .await?;
    if plans.is_empty() {
        return Err(match &args.plan {
            Some(p) => plan_not_found(p, &args.offering, None),
            None => CliError::other(format!(
                "No service plans found for service offering '{}'.",
                args.offering
            )),
        });
    }
    if plans[0].visibility_type == "space" {
        return Err(CliError::other(
            "You cannot change access for space-scoped service plans.",
        ));
    }
    Ok(plans)
}

/// `Did not update plan P as it already has visibility V.` lines.
fn print_skipped(skipped: &[String], visibility: &str) {
    if skipped.is_empty() {
        return;
    }
    println!();
    for p in skipped {
        println!("Did not update plan {p} as it already has visibility {visibility}.");
    }
    println!();
}

/// What enabling does to one plan: the visibility to POST, or `None`
/// (skipped: a public plan stays public when one org is enabled).
pub fn enable_visibility(plan: &ServicePlan, org_guid: Option<&str>) -> Option<Value> {
    match org_guid {
        Some(_) if plan.visibility_type == "public" => None,
        Some(g) => Some(json!({"type": "organization", "organizations": [{"guid": g}]})),
        None => Some(json!({"type": "public"})),
    }
}

pub async fn enable(args: SetArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("{}", set_message("Enabling", &args, &user));
    let plans = target_plans(&c, &args).await?;
    let org = match &args.org {
        Some(o) => Some(find_org(&c, o).await?),
        None => None,
    };
    let mut skipped = Vec::new();
    for p in &plans {
        match enable_visibility(p, org.as_ref().map(|o| o.guid.as_str())) {
            Some(v) => {
                let _: Value = c
                    .post(&format!("/v3/service_plans/{}/visibility", p.guid), v)
                    .await?;
            }
            None => skipped.push(p.name.clone()),
        }
    }
    print_skipped(&skipped, "all");
    ok();
    Ok(())
}

pub async fn disable(args: SetArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("{}", set_message("Disabling", &args, &user));
    let plans = target_plans(&c, &args).await?;
    let mut skipped = Vec::new();
    match &args.org {
        Some(o) => {
            let org = find_org(&c, o).await?;
            if plans.iter().any(|p| p.visibility_type == "public") {
                return Err(CliError::other(
                    "Cannot remove organization level access for public plans.",
                ));
            }
            for p in &plans {
                if p.visibility_type == "admin" {
                    skipped.push(p.name.clone());
                    continue;
                }
                c.delete(&format!(
                    "/v3/service_plans/{}/visibility/{}",
                    p.guid, org.guid
                ))
                .await?;
            }
        }
        None => {
            for p in &plans {
                if p.visibility_type == "admin" {
                    skipped.push(p.name.clone());
                    continue;
                }
                let _: Value = c
                    .post(
                        &format!("/v3/service_plans/{}/visibility", p.guid),
                        json!({"type": "admin"}),
                    )
                    .await?;
            }
        }
    }
    print_skipped(&skipped, "none");
    ok();
    Ok(())
}

/// `all`, `none` or `limited`.
pub fn access(visibility_type: &str) -> &'static str {
    match visibility_type {
        "public" => "all",
        "admin" => "none",
        _ => "limited",
    }
}

/// One row of `cf service-access`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanAccess {
    pub broker: String,
    pub offering: String,
    pub plan: String,
    pub visibility_type: String,
    pub details: Vec<String>,
}

/// The `cf service-access` text: a `broker: B` table per broker, sorted by
/// broker, offering and plan.
pub fn render(mut rows: Vec<PlanAccess>) -> String {
    rows.sort_by(|a, b| (&a.broker, &a.offering, &a.plan).cmp(&(&b.broker, &b.offering, &b.plan)));
    let mut out = String::new();
    let mut i = 0;
    while i < rows.len() {
        let broker = rows[i].broker.clone();
        let group: Vec<&PlanAccess> = rows[i..]
            .iter()
            .take_while(|r| r.broker == broker)
            .collect();
        let last = if group[0].visibility_type == "space" {
            "space"
        } else {
            "orgs"
        };
        let mut table = vec![vec![
            "offering".to_string(),
            "plan".into(),
            "access".into(),
            last.into(),
        ]];
        for r in &group {
            table.push(vec![
                r.offering.clone(),
                r.plan.clone(),
                access(&r.visibility_type).into(),
                r.details.join(","),
            ]);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("broker: {broker}\n"));
        out.push_str(&indented("   ", &table));
        i += group.len();
    }
    out
}

pub async fn list(args: ListArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("{}\n", list_message(&args, &user));
    let org = match &args.org {
        Some(o) => Some(find_org(&c, o).await?),
        None => None,
    };
    let mut offering_q = vec!["fields%5Bservice_broker%5D=name,guid".to_string()];
    let mut plan_q = vec!["include=space.organization".to_string()];
    if let Some(b) = &args.broker {
        offering_q.push(format!("service_broker_names={}", enc(b)));
        plan_q.push(format!("service_broker_names={}", enc(b)));
    }
    if let Some(e) = &args.offering {
        offering_q.push(format!("names={}", enc(e)));
        plan_q.push(format!("service_offering_names={}", enc(e)));
    }
    if let Some(o) = &org {
        plan_q.push(format!("organization_guids={}", o.guid));
    }
    let (offerings, pages): (Vec<ServiceOffering>, _) = c
        .list_included(&format!(
            "/v3/service_offerings?{}&per_page=5000",
            offering_q.join("&")
        ))
        .await?;
    if offerings.is_empty() && (args.broker.is_some() || args.offering.is_some()) {
        return Err(match (&args.offering, &args.broker) {
            (Some(e), b) => offering_not_found(e, b.as_deref()),
            (None, Some(b)) => CliError::other(format!(
                "No service offerings found for service broker '{b}'."
            )),
            (None, None) => CliError::other("No service offerings found."),
        });
    }
    let brokers = Included::from_pages(pages);
    let offerings: HashMap<String, (String, String)> = offerings
        .iter()
        .map(|o| {
            let b = brokers
                .broker(o.broker_guid())
                .map(|b| b.name.clone())
                .unwrap_or_default();
            (o.guid.clone(), (o.name.clone(), b))
        })
        .collect();
    let (plans, pages): (Vec<ServicePlan>, _) = c
        .list_included(&format!(
            "/v3/service_plans?{}&per_page=5000",
            plan_q.join("&")
        ))
        .await?;
    let places = Included::from_pages(pages);
    let mut rows = Vec::new();
    for p in plans {
        let Some((offering, broker)) = offerings.get(p.offering_guid()) else {
            continue;
        };
        let details = match p.visibility_type.as_str() {
            "organization" => {
                let v: Value = c
                    .get(&format!("/v3/service_plans/{}/visibility", p.guid))
                    .await?;
                let orgs: Vec<Named> =
                    serde_json::from_value(v["organizations"].clone()).unwrap_or_default();
                orgs.into_iter().map(|o| o.name).collect()
            }
            "space" => {
                let space_guid = crate::models::related_guid(&p.relationships, "space");
                let space = places.spaces.iter().find(|s| s.guid == space_guid);
                let org_guid = space
                    .map(|s| crate::models::related_guid(&s.relationships, "organization"))
                    .unwrap_or("");
                let org = places.organizations.iter().find(|o| o.guid == org_guid);
                vec![format!(
                    "{} (org: {})",
                    space.map(|s| s.name.as_str()).unwrap_or(""),
                    org.map(|o| o.name.as_str()).unwrap_or("")
                )]
            }
            _ => vec![],
        };
        rows.push(PlanAccess {
            broker: broker.clone(),
            offering: offering.clone(),
            plan: p.name,
            visibility_type: p.visibility_type,
            details,
        });
    }
    if rows.is_empty() {
        println!("No service plans found.");
        return Ok(());
    }
    print!("{}", render(rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(plan: Option<&str>, broker: Option<&str>, org: Option<&str>) -> SetArgs {
        SetArgs {
            offering: "db".into(),
            broker: broker.map(Into::into),
            plan: plan.map(Into::into),
            org: org.map(Into::into),
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            set_message("Enabling", &set(None, None, None), "admin"),
            "Enabling access to all plans of service offering db for all orgs as admin..."
        );
        assert_eq!(
            set_message("Disabling", &set(Some("small"), Some("b"), Some("o")), "admin"),
            "Disabling access to plan small of service offering db from broker b for org o as admin..."
        );
        let l = ListArgs {
            broker: Some("b".into()),
            offering: None,
            org: Some("o".into()),
        };
        assert_eq!(
            list_message(&l, "admin"),
            "Getting service access for broker b and organization o as admin..."
        );
    }

    #[test]
    fn enable_visibilities() {
        let plan = |v: &str| ServicePlan {
            visibility_type: v.into(),
            ..ServicePlan::default()
        };
        assert_eq!(
            enable_visibility(&plan("admin"), None),
            Some(json!({"type": "public"}))
        );
        assert_eq!(enable_visibility(&plan("public"), Some("o1")), None);
        assert_eq!(
            enable_visibility(&plan("admin"), Some("o1")),
            Some(json!({"type": "organization", "organizations": [{"guid": "o1"}]}))
        );
    }

    #[test]
    fn access_tables_by_broker() {
        let row = |b: &str, o: &str, p: &str, v: &str, d: &[&str]| PlanAccess {
            broker: b.into(),
            offering: o.into(),
            plan: p.into(),
            visibility_type: v.into(),
            details: d.iter().map(|s| s.to_string()).collect(),
        };
        let text = render(vec![
            row("b2", "mq", "tiny", "admin", &[]),
            row("b1", "db", "small", "public", &[]),
            row("b1", "db", "large", "organization", &["o1", "o2"]),
        ]);
        assert_eq!(
            text,
            "broker: b1\n   offering   plan    access    orgs\n   db         large   limited   o1,o2\n   db         small   all\n\nbroker: b2\n   offering   plan   access   orgs\n   mq         tiny   none\n"
        );
    }
}
