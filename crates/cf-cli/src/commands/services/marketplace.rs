//! `cf marketplace [-e OFFERING] [-b BROKER] [--no-plans]` (`m`): the
//! available plans (`GET /v3/service_plans?available=true`, with their
//! offerings and brokers included), by offering.

use super::indented;
use crate::commands::common::{client, enc, Ctx};
use crate::error::Result;
use crate::format::table;
use crate::models::{Included, ServicePlan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show plan details for a particular service offering
    #[arg(short = 'e', conflicts_with = "no_plans")]
    pub offering: Option<String>,
    /// Only show details for a particular service broker
    #[arg(short = 'b')]
    pub broker: Option<String>,
    /// Hide plan information for service offerings
    #[arg(long = "no-plans")]
    pub no_plans: bool,
}

/// An offering with its plans, in the order the API listed them.
#[derive(Debug, Clone, Default)]
pub struct Offering {
    pub name: String,
    pub description: String,
    pub broker: String,
    pub plans: Vec<ServicePlan>,
}

/// Group plans by their offering (offering and broker from `included`).
pub fn group(plans: Vec<ServicePlan>, included: &Included) -> Vec<Offering> {
    let mut out: Vec<(String, Offering)> = Vec::new();
    for p in plans {
        let guid = p.offering_guid().to_string();
        if let Some((_, o)) = out.iter_mut().find(|(g, _)| *g == guid) {
            o.plans.push(p);
            continue;
        }
        let offering = included.offering(&guid);
        let broker = offering
            .and_then(|o| included.broker(o.broker_guid()))
            .map(|b| b.name.clone())
            .unwrap_or_default();
        out.push((
            guid,
            Offering {
                name: offering.map(|o| o.name.clone()).unwrap_or_default(),
                description: offering
                    .and_then(|o| o.description.clone())
                    .unwrap_or_default(),
                broker,
                plans: vec![p],
            },
        ));
    }
    out.into_iter().map(|(_, o)| o).collect()
}

/// `USD 9.99/MONTHLY, EUR 8.50/MONTHLY`.
fn costs(p: &ServicePlan) -> String {
    p.costs
        .iter()
        .map(|c| {
            format!(
                "{} {:.2}/{}",
                c["currency"].as_str().unwrap_or(""),
                c["amount"].as_f64().unwrap_or(0.0),
                c["unit"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The offerings table (`offering plans description broker`, or without
/// `plans` for `--no-plans`) and its TIP.
pub fn offerings_text(offerings: &[Offering], no_plans: bool) -> String {
    let mut rows = vec![if no_plans {
        vec!["offering", "description", "broker"]
    } else {
        vec!["offering", "plans", "description", "broker"]
    }
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>()];
    for o in offerings {
        let plans = o
            .plans
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(if no_plans {
            vec![o.name.clone(), o.description.clone(), o.broker.clone()]
        } else {
            vec![
                o.name.clone(),
                plans,
                o.description.clone(),
                o.broker.clone(),
            ]
        });
    }
    format!(
        "\n{}\nTIP: Use 'cf marketplace -e SERVICE_OFFERING' to view descriptions of individual plans of a given service offering.\n",
        table(&rows)
    )
}

/// `-e`: a `broker: B` line and a plans table per offering.
pub fn plans_text(offerings: &[Offering]) -> String {
    let mut out = String::new();
    for o in offerings {
        let mut rows = vec![["plan", "description", "free or paid", "costs"]
            .map(String::from)
            .to_vec()];
        for p in &o.plans {
            rows.push(vec![
                p.name.clone(),
                p.description.clone().unwrap_or_default(),
                if p.free { "free" } else { "paid" }.into(),
                costs(p),
            ]);
        }
        out.push_str(&format!("\nbroker: {}\n", o.broker));
        out.push_str(&indented("   ", &rows));
    }
    out
}

/// `Getting all service offerings from marketplace...` and its variants.
pub fn message(args: &Args, place: Option<&str>) -> String {
    let mut s = match &args.offering {
        None => "Getting all service offerings from marketplace".to_string(),
        Some(e) => format!("Getting service plan information for service offering {e}"),
    };
    if let Some(b) = &args.broker {
        s.push_str(if args.offering.is_none() {
            " for "
        } else {
            " from "
        });
        s.push_str(&format!("service broker {b}"));
    }
    if let Some(p) = place {
        s.push(' ');
        s.push_str(p);
    }
    s.push_str("...");
    s
}

pub async fn run(args: Args) -> Result<()> {
    // Logged in: the targeted space's plans; else the public ones.
    let logged_in = client()?.config().access_token.is_some();
    let ctx = if logged_in { Some(Ctx::load()?) } else { None };
    let c = match &ctx {
        Some(ctx) => ctx.client.clone(),
        None => client()?,
    };
    let place = ctx.as_ref().map(Ctx::where_);
    println!("{}", message(&args, place.as_deref()));
    let mut q = String::from("/v3/service_plans?per_page=5000&available=true");
    if let Some(ctx) = &ctx {
        q.push_str(&format!("&space_guids={}", ctx.space.guid));
    }
    if let Some(e) = &args.offering {
        q.push_str(&format!("&service_offering_names={}", enc(e)));
    }
    if let Some(b) = &args.broker {
        q.push_str(&format!("&service_broker_names={}", enc(b)));
    }
    q.push_str("&include=service_offering&fields%5Bservice_offering.service_broker%5D=name,guid");
    let (plans, pages) = c.list_included::<ServicePlan>(&q).await?;
    let offerings = group(plans, &Included::from_pages(pages));
    if offerings.is_empty() {
        println!("\nNo service offerings found.");
        return Ok(());
    }
    match args.offering {
        None => print!("{}", offerings_text(&offerings, args.no_plans)),
        Some(_) => print!("{}", plans_text(&offerings)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Offering> {
        let plans: Vec<ServicePlan> = serde_json::from_value(json!([
            {"guid": "p1", "name": "small", "description": "1 GB", "free": true, "relationships": {"service_offering": {"data": {"guid": "o1"}}}},
            {"guid": "p2", "name": "large", "description": "8 GB", "free": false,
             "costs": [{"amount": 9.5, "currency": "USD", "unit": "MONTHLY"}],
             "relationships": {"service_offering": {"data": {"guid": "o1"}}}},
            {"guid": "p3", "name": "std", "description": null, "free": true, "relationships": {"service_offering": {"data": {"guid": "o2"}}}}
        ]))
        .expect("plans");
        let included = Included::from_pages(vec![json!({
            "service_offerings": [
                {"guid": "o1", "name": "postgres", "description": "SQL", "relationships": {"service_broker": {"data": {"guid": "b1"}}}},
                {"guid": "o2", "name": "redis", "description": "KV", "relationships": {"service_broker": {"data": {"guid": "b1"}}}}
            ],
            "service_brokers": [{"guid": "b1", "name": "local"}]
        })]);
        group(plans, &included)
    }

    #[test]
    fn offerings_table_and_no_plans() {
        let o = sample();
        assert_eq!(o.len(), 2);
        let text = offerings_text(&o, false);
        assert!(text.starts_with(
            "\noffering   plans          description   broker\npostgres   small, large   SQL           local\nredis      std            KV            local\n\nTIP: "
        ), "{text}");
        assert!(offerings_text(&o, true)
            .starts_with("\noffering   description   broker\npostgres   SQL           local\n"));
    }

    #[test]
    fn plans_of_one_offering() {
        let o = sample();
        assert_eq!(
            plans_text(&o[..1]),
            "\nbroker: local\n   plan    description   free or paid   costs\n   small   1 GB          free\n   large   8 GB          paid           USD 9.50/MONTHLY\n"
        );
    }

    #[test]
    fn messages() {
        let a = Args {
            offering: None,
            broker: Some("b".into()),
            no_plans: false,
        };
        assert_eq!(
            message(&a, Some("in org o / space s as u")),
            "Getting all service offerings from marketplace for service broker b in org o / space s as u..."
        );
        let a = Args {
            offering: Some("db".into()),
            broker: Some("b".into()),
            no_plans: false,
        };
        assert_eq!(
            message(&a, None),
            "Getting service plan information for service offering db from service broker b..."
        );
    }
}
