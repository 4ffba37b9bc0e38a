//! `cf delete-service INSTANCE [-f] [-w]` (`ds`): `DELETE
//! /v3/service_instances/:guid` (a job for a managed instance, 204 for a
//! user-provided one).

use super::{find_instance_opt, follow_job, JobEnd, Outcome};
use crate::commands::common::{confirm, ok, Ctx};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the service instance
    pub name: String,
    /// Force deletion without confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

pub async fn delete(ctx: &Ctx, name: &str, wait: bool) -> Result<Outcome> {
    let Some(si) = find_instance_opt(ctx, name).await? else {
        return Ok(Outcome::Already);
    };
    let loc = match ctx
        .client
        .delete(&format!("/v3/service_instances/{}", si.guid))
        .await
    {
        Ok(loc) => loc,
        Err(e) if e.status() == Some(404) => return Ok(Outcome::Already),
        Err(e) => return Err(e),
    };
    Ok(Outcome::Job(follow_job(&ctx.client, loc, wait).await?))
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let name = &args.name;
    if !args.force {
        println!("This action impacts all resources scoped to this service instance, including service bindings, service keys and route bindings.");
        println!("This will remove the service instance from any spaces where it has been shared.");
        if !confirm(&format!("Really delete the service instance {name}?")) {
            println!("Delete cancelled");
            return Ok(());
        }
    }
    println!("Deleting service instance {name} {}...\n", ctx.where_());
    match delete(&ctx, name, args.wait).await? {
        Outcome::Already => println!("Service instance {name} did not exist."),
        Outcome::Job(JobEnd::Complete) => println!("Service instance {name} deleted."),
        Outcome::Job(JobEnd::InProgress) => println!(
            "Delete in progress. Use 'cf services' or 'cf service {name}' to check operation status."
        ),
    }
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{accepted, page, reply, Script, Server};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_missing_instance_did_not_exist() {
        let s = Server::start(Script::default().on(
            "GET",
            "/v3/service_instances?names=gone",
            vec![page(json!([]), json!({}))],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(
            delete(&s.ctx(dir.path()), "gone", false)
                .await
                .expect("delete"),
            Outcome::Already
        );
        assert!(!s.lines().iter().any(|l| l.starts_with("DELETE")));
    }

    #[tokio::test]
    async fn user_provided_is_done_at_once_managed_follows_the_job() {
        let si = |kind: &str| {
            page(
                json!([{"guid": "si-1", "name": "db", "type": kind}]),
                json!({}),
            )
        };
        let s = Server::start(
            Script::default()
                .on(
                    "GET",
                    "/v3/service_instances?names=db&space_guids=space-guid",
                    vec![si("user-provided")],
                )
                .on(
                    "DELETE",
                    "/v3/service_instances/si-1",
                    vec![reply(204, json!(null))],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(
            delete(&s.ctx(dir.path()), "db", false)
                .await
                .expect("delete"),
            Outcome::Job(JobEnd::Complete)
        );
        let s = Server::start(
            Script::default()
                .on("GET", "/v3/service_instances?names=db", vec![si("managed")])
                .on("DELETE", "/v3/service_instances/si-1", vec![accepted("j")])
                .on(
                    "GET",
                    "/v3/jobs/j",
                    vec![reply(200, json!({"guid": "j", "state": "POLLING"}))],
                ),
        )
        .await;
        assert_eq!(
            delete(&s.ctx(dir.path()), "db", false)
                .await
                .expect("delete"),
            Outcome::Job(JobEnd::InProgress)
        );
    }
}
