//! `cf create-service OFFERING PLAN INSTANCE [-b BROKER] [-c PARAMS]
//! [-t TAGS] [-w]` (`cs`): finds the plan (`GET /v3/service_plans`), then
//! `POST /v3/service_instances` (managed) and follows its job.

use serde_json::{json, Value};

use super::{
    follow_job, needs_broker, offering_not_found, parse_params, parse_tags, plan_not_found,
    post_create, to_one, JobEnd, Outcome, Posted, Taken,
};
use crate::commands::common::{enc, ok, Ctx};
use crate::error::Result;
use crate::models::{ServiceOffering, ServicePlan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Service offering (see 'cf marketplace')
    pub offering: String,
    /// Service plan
    pub plan: String,
    /// Name of the new service instance
    pub name: String,
    /// Create a service instance from a particular broker. Required when service offering name is ambiguous
    #[arg(short = 'b')]
    pub broker: Option<String>,
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

/// The one plan named `plan` of `offering` (and `broker`), else CF's
/// errors: an unknown offering, an unknown plan, or an offering several
/// brokers serve.
pub async fn find_plan(
    ctx: &Ctx,
    offering: &str,
    plan: &str,
    broker: Option<&str>,
) -> Result<ServicePlan> {
    let by_broker = broker
        .map(|b| format!("&service_broker_names={}", enc(b)))
        .unwrap_or_default();
    let mut plans: Vec<ServicePlan> = ctx
        .client
        .list(&format!(
            "/v3/service_plans?names={}&service_offering_names={}{by_broker}",
            enc(plan),
            enc(offering)
        ))
        .await?;
    match plans.len() {
        1 => Ok(plans.remove(0)),
        0 => {
            // Say which is missing: the offering, or its plan.
            let offerings: Vec<ServiceOffering> = ctx
                .client
                .list(&format!(
                    "/v3/service_offerings?names={}{by_broker}",
                    enc(offering)
                ))
                .await?;
            if offerings.is_empty() {
                Err(offering_not_found(offering, broker))
            } else {
                Err(plan_not_found(plan, offering, broker))
            }
        }
        _ => Err(needs_broker(offering)),
    }
}

/// The body of `POST /v3/service_instances` for a managed instance.
pub fn body(
    name: &str,
    space_guid: &str,
    plan_guid: &str,
    params: Option<Value>,
    tags: Option<Vec<String>>,
) -> Value {
    let mut b = json!({
        "type": "managed",
        "name": name,
        "relationships": {"space": to_one(space_guid), "service_plan": to_one(plan_guid)},
    });
    if let Some(p) = params {
        b["parameters"] = p;
    }
    if let Some(t) = tags {
        b["tags"] = json!(t);
    }
    b
}

/// Everything after the intro line: the requests and the job.
pub async fn create(ctx: &Ctx, args: &Args, params: Option<Value>) -> Result<Outcome> {
    let plan = find_plan(ctx, &args.offering, &args.plan, args.broker.as_deref()).await?;
    let tags = args.tags.as_deref().map(parse_tags);
    let b = body(&args.name, &ctx.space.guid, &plan.guid, params, tags);
    let loc =
        match post_create(&ctx.client, "/v3/service_instances", b, Taken::InstanceName).await? {
            Posted::Taken => return Ok(Outcome::Already),
            Posted::Created(loc) => loc,
        };
    println!();
    Ok(Outcome::Job(follow_job(&ctx.client, loc, args.wait).await?))
}

pub async fn run(mut args: Args) -> Result<()> {
    let params = parse_params(args.params.as_deref())?;
    let ctx = Ctx::load()?;
    args.name = args.name.trim().to_string();
    let name = args.name.clone();
    println!("Creating service instance {name} {}...", ctx.where_());
    match create(&ctx, &args, params).await? {
        Outcome::Already => {
            ok();
            println!("Service instance {name} already exists");
            return Ok(());
        }
        Outcome::Job(JobEnd::Complete) => println!("Service instance {name} created."),
        Outcome::Job(JobEnd::InProgress) => println!(
            "Create in progress. Use 'cf services' or 'cf service {name}' to check operation status."
        ),
    }
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{accepted, cf_error, page, reply, Script, Server};
    use super::*;

    fn args(wait: bool) -> Args {
        Args {
            offering: "db".into(),
            plan: "small".into(),
            name: "mydb".into(),
            broker: None,
            params: None,
            tags: Some("a, b".into()),
            wait,
        }
    }

    fn plans() -> Script {
        Script::default().on(
            "GET",
            "/v3/service_plans?names=small&service_offering_names=db",
            vec![page(
                json!([{"guid": "plan-1", "name": "small"}]),
                json!({}),
            )],
        )
    }

    #[tokio::test]
    async fn creates_and_follows_the_job_to_complete() {
        let s = Server::start(
            plans()
                .on("POST", "/v3/service_instances", vec![accepted("j1")])
                .on(
                    "GET",
                    "/v3/jobs/j1",
                    vec![
                        reply(200, json!({"guid": "j1", "state": "PROCESSING"})),
                        reply(200, json!({"guid": "j1", "state": "COMPLETE"})),
                    ],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let ctx = s.ctx(dir.path());
        let got = create(&ctx, &args(false), Some(json!({"ram_gb": 4})))
            .await
            .expect("create");
        assert_eq!(got, Outcome::Job(JobEnd::Complete));
        let post = s
            .seen()
            .into_iter()
            .find(|r| r.method == "POST")
            .expect("post");
        assert_eq!(
            post.body,
            Some(json!({
                "type": "managed", "name": "mydb",
                "relationships": {"space": {"data": {"guid": "space-guid"}}, "service_plan": {"data": {"guid": "plan-1"}}},
                "parameters": {"ram_gb": 4}, "tags": ["a", "b"]
            }))
        );
        assert_eq!(
            s.lines()
                .iter()
                .filter(|l| l.starts_with("GET /v3/jobs/j1"))
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn polling_without_wait_is_in_progress_and_failed_is_an_error() {
        let s = Server::start(
            plans()
                .on("POST", "/v3/service_instances", vec![accepted("j1")])
                .on(
                    "GET",
                    "/v3/jobs/j1",
                    vec![reply(200, json!({"guid": "j1", "state": "POLLING"}))],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let got = create(&s.ctx(dir.path()), &args(false), None)
            .await
            .expect("create");
        assert_eq!(got, Outcome::Job(JobEnd::InProgress));

        let s = Server::start(
            plans()
                .on("POST", "/v3/service_instances", vec![accepted("j2")])
                .on(
                    "GET",
                    "/v3/jobs/j2",
                    vec![
                        reply(200, json!({"guid": "j2", "state": "POLLING"})),
                        reply(200, json!({"guid": "j2", "state": "FAILED", "errors": [{"code": 10009, "title": "CF-UnableToPerform", "detail": "provision could not be completed: boom"}]})),
                    ],
                ),
        )
        .await;
        let e = create(&s.ctx(dir.path()), &args(true), None)
            .await
            .expect_err("failed job");
        assert_eq!(
            e.to_string(),
            "Job (j2) failed: provision could not be completed: boom"
        );
    }

    #[tokio::test]
    async fn a_taken_name_is_already_exists() {
        let s = Server::start(plans().on(
            "POST",
            "/v3/service_instances",
            vec![cf_error(422, "The service instance name is taken: mydb.")],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let got = create(&s.ctx(dir.path()), &args(false), None)
            .await
            .expect("create");
        assert_eq!(got, Outcome::Already);
    }

    #[tokio::test]
    async fn unknown_plan_and_offering_say_which() {
        let none = || vec![page(json!([]), json!({}))];
        let s = Server::start(Script::default().on("GET", "/v3/service_plans", none()).on(
            "GET",
            "/v3/service_offerings",
            vec![page(json!([{"guid": "o", "name": "db"}]), json!({}))],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let e = create(&s.ctx(dir.path()), &args(false), None)
            .await
            .expect_err("plan");
        assert_eq!(
            e.to_string(),
            "The plan 'small' could not be found for service offering 'db'."
        );
        let s = Server::start(Script::default().on("GET", "/v3/service_plans", none()).on(
            "GET",
            "/v3/service_offerings",
            none(),
        ))
        .await;
        let e = create(&s.ctx(dir.path()), &args(false), None)
            .await
            .expect_err("offering");
        assert_eq!(e.to_string(), "Service offering 'db' not found.");
        assert!(!s.lines().iter().any(|l| l.starts_with("POST")));
    }
}
