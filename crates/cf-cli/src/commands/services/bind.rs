//! `cf bind-service APP INSTANCE [-c PARAMS] [--binding-name NAME] [-w]`
//! (`bs`) and `cf unbind-service APP INSTANCE [--guid G] [-w]` (`us`):
//! app credential bindings (`/v3/service_credential_bindings`, type `app`).

use serde_json::{json, Value};

use super::{
    find_instance, follow_job, parse_params, post_create, to_one, JobEnd, Outcome, Posted, Taken,
};
use crate::commands::common::{find_app, ok, Ctx};
use crate::error::Result;
use crate::models::ServiceBinding;

#[derive(Debug, clap::Args)]
pub struct BindArgs {
    /// Name of the app
    pub app: String,
    /// Name of the service instance
    pub instance: String,
    /// Valid JSON object containing service-specific configuration parameters, provided either in-line or in a file
    #[arg(short = 'c')]
    pub params: Option<String>,
    /// Name to expose service instance to app process with (Default: service instance name)
    #[arg(long = "binding-name")]
    pub binding_name: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct UnbindArgs {
    /// Name of the app
    pub app: String,
    /// Name of the service instance
    pub instance: String,
    /// Only delete the service binding with the specified GUID
    #[arg(long)]
    pub guid: Option<String>,
    /// Wait for the operation to complete
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
}

/// The body of `POST /v3/service_credential_bindings` for an app binding.
pub fn bind_body(
    instance_guid: &str,
    app_guid: &str,
    name: Option<&str>,
    params: Option<Value>,
) -> Value {
    let mut b = json!({
        "type": "app",
        "relationships": {"service_instance": to_one(instance_guid), "app": to_one(app_guid)},
    });
    if let Some(n) = name {
        b["name"] = json!(n);
    }
    if let Some(p) = params {
        b["parameters"] = p;
    }
    b
}

pub async fn bind(ctx: &Ctx, args: &BindArgs, params: Option<Value>) -> Result<Outcome> {
    let si = find_instance(ctx, &args.instance).await?;
    let app = find_app(ctx, &args.app).await?;
    let body = bind_body(&si.guid, &app.guid, args.binding_name.as_deref(), params);
    let path = "/v3/service_credential_bindings";
    let loc = match post_create(&ctx.client, path, body, Taken::AppBound).await? {
        Posted::Taken => return Ok(Outcome::Already),
        Posted::Created(loc) => loc,
    };
    Ok(Outcome::Job(follow_job(&ctx.client, loc, args.wait).await?))
}

pub async fn run_bind(args: BindArgs) -> Result<()> {
    let params = parse_params(args.params.as_deref())?;
    let ctx = Ctx::load()?;
    let (app, si) = (&args.app, &args.instance);
    println!(
        "Binding service instance {si} to app {app} {}...",
        ctx.where_()
    );
    match bind(&ctx, &args, params).await? {
        Outcome::Already => {
            println!("App {app} is already bound to service instance {si}.");
            ok();
        }
        Outcome::Job(JobEnd::Complete) => {
            ok();
            println!("TIP: Use 'cf restage {app}' to ensure your env variable changes take effect");
        }
        Outcome::Job(JobEnd::InProgress) => {
            ok();
            println!("Binding in progress. Use 'cf service {si}' to check operation status.\n");
            println!("TIP: Once this operation succeeds, use 'cf restage {app}' to ensure your env variable changes take effect");
        }
    }
    Ok(())
}

/// The app bindings between `app` and `instance`; `None` when there are
/// none (or none with `--guid`).
pub async fn app_bindings(ctx: &Ctx, args: &UnbindArgs) -> Result<Vec<ServiceBinding>> {
    let si = find_instance(ctx, &args.instance).await?;
    let app = find_app(ctx, &args.app).await?;
    let mut found: Vec<ServiceBinding> = ctx
        .client
        .list(&format!(
            "/v3/service_credential_bindings?type=app&app_guids={}&service_instance_guids={}",
            app.guid, si.guid
        ))
        .await?;
    if let Some(g) = &args.guid {
        found.retain(|b| &b.guid == g);
    }
    Ok(found)
}

pub async fn run_unbind(args: UnbindArgs) -> Result<()> {
    let ctx = Ctx::load()?;
    let (app, si) = (&args.app, &args.instance);
    println!("Unbinding app {app} from service {si} {}...", ctx.where_());
    let bindings = app_bindings(&ctx, &args).await?;
    if bindings.is_empty() {
        match &args.guid {
            Some(g) => println!("Service binding with GUID {g} does not exist"),
            None => println!("Binding between {si} and {app} does not exist"),
        }
        ok();
        return Ok(());
    }
    for b in bindings {
        println!("Deleting service binding {}...", b.guid);
        let end = match ctx
            .client
            .delete(&format!("/v3/service_credential_bindings/{}", b.guid))
            .await
        {
            Ok(loc) => follow_job(&ctx.client, loc, args.wait).await?,
            Err(e) if e.status() == Some(404) => JobEnd::Complete,
            Err(e) => return Err(e),
        };
        ok();
        if end == JobEnd::InProgress {
            println!("Unbinding in progress. Use 'cf service {si}' to check operation status.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{cf_error, page, reply, Script, Server};
    use super::*;

    fn found() -> Script {
        Script::default()
            .on(
                "GET",
                "/v3/service_instances?names=db",
                vec![page(
                    json!([{"guid": "si-1", "name": "db", "type": "user-provided"}]),
                    json!({}),
                )],
            )
            .on(
                "GET",
                "/v3/apps?names=web",
                vec![page(json!([{"guid": "app-1", "name": "web"}]), json!({}))],
            )
    }

    fn bind_args() -> BindArgs {
        BindArgs {
            app: "web".into(),
            instance: "db".into(),
            params: None,
            binding_name: Some("pg".into()),
            wait: false,
        }
    }

    #[tokio::test]
    async fn binds_a_user_provided_instance_at_once() {
        let s = Server::start(found().on(
            "POST",
            "/v3/service_credential_bindings",
            vec![reply(201, json!({"guid": "b-1", "type": "app"}))],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let got = bind(&s.ctx(dir.path()), &bind_args(), Some(json!({"ro": true})))
            .await
            .expect("bind");
        assert_eq!(got, Outcome::Job(JobEnd::Complete));
        let post = s
            .seen()
            .into_iter()
            .find(|r| r.method == "POST")
            .expect("post");
        assert_eq!(
            post.body,
            Some(
                json!({"type": "app", "name": "pg", "parameters": {"ro": true},
                "relationships": {"service_instance": {"data": {"guid": "si-1"}}, "app": {"data": {"guid": "app-1"}}}})
            )
        );
    }

    #[tokio::test]
    async fn already_bound_is_ok() {
        let s = Server::start(found().on(
            "POST",
            "/v3/service_credential_bindings",
            vec![cf_error(
                422,
                "The app is already bound to the service instance",
            )],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let got = bind(&s.ctx(dir.path()), &bind_args(), None)
            .await
            .expect("bind");
        assert_eq!(got, Outcome::Already);
    }

    #[tokio::test]
    async fn unbind_finds_the_bindings_of_app_and_instance() {
        let s = Server::start(found().on(
            "GET",
            "/v3/service_credential_bindings?type=app&app_guids=app-1&service_instance_guids=si-1",
            vec![page(json!([{"guid": "b-1"}, {"guid": "b-2"}]), json!({}))],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let mut args = UnbindArgs {
            app: "web".into(),
            instance: "db".into(),
            guid: None,
            wait: false,
        };
        assert_eq!(
            app_bindings(&s.ctx(dir.path()), &args)
                .await
                .expect("list")
                .len(),
            2
        );
        args.guid = Some("b-3".into());
        assert!(app_bindings(&s.ctx(dir.path()), &args)
            .await
            .expect("list")
            .is_empty());
    }
}
