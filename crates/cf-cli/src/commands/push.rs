//! `cf push`: create/update the app, upload, stage, switch droplet, route, start.
//! Order matters: nothing of the running app changes before staging succeeds.

use super::common::{
    default_domain, domains, enc, ensure_route, find_app_opt, print_app, stage,
    wait_for_start_with, web_process, Ctx,
};
use super::deployments::{self, check_flags, DeployOpts, FlagsOf, Flavor, Source, StrategyFlags};
use crate::error::{CliError, Result};
use crate::manifest::{self, AppPlan, PushFlags};
use crate::models::{App, Domain, Package};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// App name (read from manifest.yml when omitted)
    pub name: Option<String>,
    /// Path to app directory or to a zip file
    #[arg(short = 'p', long = "path")]
    pub path: Option<String>,
    /// Number of instances
    #[arg(short = 'i', long = "instances", allow_negative_numbers = true)]
    pub instances: Option<i64>,
    /// Memory limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Disk limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'k', long = "disk")]
    pub disk: Option<String>,
    /// Custom buildpack by name (e.g. python, binary); give it more than
    /// once for several (every one but the last supplies dependencies)
    #[arg(short = 'b', long = "buildpack")]
    pub buildpack: Vec<String>,
    /// Startup command
    #[arg(short = 'c', long = "start-command")]
    pub command: Option<String>,
    /// Path to manifest
    #[arg(short = 'f', long = "manifest")]
    pub manifest: Option<PathBuf>,
    /// Ignore manifest file
    #[arg(long)]
    pub no_manifest: bool,
    /// Do not stage and start the app after pushing (only create it and
    /// upload its files)
    #[arg(long)]
    pub no_start: bool,
    /// Do not map a route to this app
    #[arg(long)]
    pub no_route: bool,
    /// Create a random route for this app (if it has none)
    #[arg(long)]
    pub random_route: bool,
    /// Stack to use (a stack is a pre-built file system, including an
    /// operating system, that can run apps)
    #[arg(short = 's', long = "stack")]
    pub stack: Option<String>,
    /// Application health check type (port, process, http)
    #[arg(short = 'u', long = "health-check-type")]
    pub health_check_type: Option<String>,
    /// Valid path on the app for an HTTP health check
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Time (in seconds) allowed to elapse between starting up an app and
    /// the first healthy response from the app (not the staging timeout)
    #[arg(short = 't', long = "app-start-timeout")]
    pub timeout: Option<u32>,
    /// Exit when the first instance of the web process is healthy
    #[arg(long)]
    pub no_wait: bool,
    /// Deployment strategy can be canary, rolling or null.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Defines the maximum number of instances that will be actively being
    /// started. Only applies when --strategy flag is specified.
    #[arg(long = "max-in-flight", allow_negative_numbers = true)]
    pub max_in_flight: Option<i64>,
    /// An array of percentage steps to deploy when using deployment strategy
    /// canary. (e.g. 20,40,60)
    #[arg(long = "instance-steps")]
    pub instance_steps: Option<String>,
    /// Variable key value pair for variable substitution (e.g.
    /// name=app1); can be given more than once
    #[arg(long = "var")]
    pub var: Vec<String>,
    /// Path to a variable substitution file for the manifest; can be given
    /// more than once
    #[arg(long = "vars-file")]
    pub vars_file: Vec<PathBuf>,
}

fn manifest_path(args: &Args, cwd: &Path) -> Option<PathBuf> {
    if args.no_manifest {
        return None;
    }
    match &args.manifest {
        Some(p) if p.is_dir() => Some(p.join("manifest.yml")),
        Some(p) => Some(p.clone()),
        None => ["manifest.yml", "manifest.yaml"]
            .iter()
            .map(|n| cwd.join(n))
            .find(|p| p.is_file()),
    }
}

/// A host name from an app name (lowercase, [a-z0-9-]).
pub fn hostname(app: &str) -> String {
    let h: String = app
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    h.trim_matches('-').to_string()
}

/// Per-push options that are not per app.
#[derive(Debug, Clone)]
struct Opts {
    no_start: bool,
    no_wait: bool,
    /// `--strategy`: a started app gets a deployment instead of a restart.
    deploy: Option<DeployOpts>,
}

/// The strategy flags of a push, checked as CF v8 checks them (`strategy`
/// is no manifest key: flags only).
fn deploy_opts(args: &Args) -> Result<Option<DeployOpts>> {
    let deploy = check_flags(
        FlagsOf::Push,
        &StrategyFlags {
            strategy: args.strategy.clone(),
            max_in_flight: args.max_in_flight,
            instance_steps: args.instance_steps.clone(),
            no_wait: args.no_wait,
        },
    )?;
    match &deploy {
        Some(d) if args.no_start => Err(CliError::Usage(format!(
            "Incorrect Usage: The following arguments cannot be used together: --no-start, --strategy={}",
            d.strategy.name()
        ))),
        _ => Ok(deploy),
    }
}

pub async fn run(args: Args) -> Result<()> {
    let deploy = deploy_opts(&args)?;
    let ctx = Ctx::load()?;
    let cwd = std::env::current_dir().map_err(|e| CliError::io("current directory", e))?;
    let vars = manifest::load_vars(&args.vars_file, &args.var)?;
    let mpath = manifest_path(&args, &cwd);
    let (apps, base) = match &mpath {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::io(format!("reading manifest {}", p.display()), e))?;
            let (apps, warnings) = manifest::parse_with_vars(&text, &vars)?;
            for w in warnings {
                eprintln!("{w}");
            }
            let base = p
                .parent()
                .map(Path::to_path_buf)
                .filter(|b| !b.as_os_str().is_empty())
                .unwrap_or(cwd.clone());
            (apps, base)
        }
        None => (vec![], cwd.clone()),
    };
    let flags = PushFlags {
        name: args.name.clone(),
        path: args.path.clone(),
        instances: args.instances,
        memory: args.memory.clone(),
        disk: args.disk.clone(),
        buildpacks: args.buildpack.clone(),
        command: args.command.clone(),
        no_route: args.no_route,
        random_route: args.random_route,
        stack: args.stack.clone(),
        health_check_type: args.health_check_type.clone(),
        endpoint: args.endpoint.clone(),
        timeout: args.timeout,
    };
    let plans = manifest::plan(&apps, &flags, &base)?;
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    println!(
        "Pushing app{} {} to org {} / space {} as {}...",
        if plans.len() > 1 { "s" } else { "" },
        names.join(", "),
        ctx.org.name,
        ctx.space.name,
        ctx.user
    );
    if let Some(p) = &mpath {
        let shown = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        println!("Applying manifest file {}...", shown.display());
    }
    // Everything is checked before anything is created or uploaded.
    let doms = domains(&ctx).await?;
    for plan in &plans {
        validate(&ctx, plan, &doms).await?;
    }
    let opts = Opts {
        no_start: args.no_start,
        no_wait: args.no_wait,
        deploy,
    };
    for plan in &plans {
        push_one(&ctx, plan, &opts).await?;
    }
    Ok(())
}

/// The checks that need the platform: the app path, buildpacks, stack and
/// route hosts.
async fn validate(ctx: &Ctx, plan: &AppPlan, doms: &[Domain]) -> Result<()> {
    if !plan.path.exists() {
        return Err(CliError::other(format!(
            "Incorrect Usage: The specified path '{}' does not exist.",
            plan.path.display()
        )));
    }
    if plan.path.is_file() {
        // A .zip/.jar/.war is uploaded as it is: it must be a zip.
        let bad = || {
            CliError::other(format!(
                "Incorrect Usage: The specified path '{}' is neither a directory nor a zip file (.zip, .jar, .war).",
                plan.path.display()
            ))
        };
        let f = std::fs::File::open(&plan.path).map_err(|_| bad())?;
        zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|_| bad())?;
    }
    // The controller lists the admin buildpacks and the DEAs' built-ins.
    for b in &plan.buildpacks {
        let found: Vec<crate::commands::buildpacks::Buildpack> = ctx
            .client
            .list(&format!("/v3/buildpacks?names={}", enc(b)))
            .await?;
        if !found.iter().any(|f| &f.name == b) {
            return Err(CliError::other(format!(
                "Buildpack \"{b}\" must be an existing admin buildpack or a built-in one; see 'cf buildpacks'"
            )));
        }
    }
    if let Some(s) = &plan.stack {
        let found: Vec<Value> = ctx
            .client
            .list(&format!("/v3/stacks?names={}", enc(s)))
            .await?;
        if !found.iter().any(|f| f["name"].as_str() == Some(s.as_str())) {
            return Err(CliError::other("Stack must be an existing stack"));
        }
    }
    if plan.no_route {
        return Ok(());
    }
    if plan.routes.is_empty() && !plan.random_route {
        manifest::check_host(&hostname(&plan.name))?;
    }
    let names: Vec<String> = doms.iter().map(|d| d.name.clone()).collect();
    for r in &plan.routes {
        let (host, _, _) = manifest::split_route(r, &names).ok_or_else(|| {
            CliError::other(format!(
                "The route '{r}' did not match any existing domains."
            ))
        })?;
        if !host.is_empty() {
            manifest::check_host(&host)?;
        }
    }
    Ok(())
}

async fn create_app(ctx: &Ctx, plan: &AppPlan) -> Result<App> {
    let mut body = json!({
        "name": plan.name,
        "relationships": {"space": {"data": {"guid": ctx.space.guid}}},
    });
    if !plan.buildpacks.is_empty() || plan.stack.is_some() {
        let mut data = json!({});
        if !plan.buildpacks.is_empty() {
            data["buildpacks"] = json!(plan.buildpacks);
        }
        if let Some(s) = &plan.stack {
            data["stack"] = json!(s);
        }
        body["lifecycle"] = json!({"type": "buildpack", "data": data});
    }
    ctx.client.post("/v3/apps", body).await
}

async fn upload(ctx: &Ctx, app: &App, path: &Path) -> Result<String> {
    println!("Packaging files to upload...");
    let p = path.to_path_buf();
    let zip = tokio::task::spawn_blocking(move || crate::zipdir::zip_path(&p))
        .await
        .map_err(|e| CliError::other(format!("packaging failed: {e}")))??;
    let pkg: Package = ctx
        .client
        .post(
            "/v3/packages",
            json!({"type": "bits", "relationships": {"app": {"data": {"guid": app.guid}}}}),
        )
        .await?;
    println!("Uploading files...");
    let mut pkg: Package = crate::resources::upload_package(&ctx.client, &pkg.guid, zip).await?;
    println!("Waiting for API to complete processing files...");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut backoff = super::common::Backoff::new(Duration::from_millis(300));
    loop {
        match pkg.state.as_str() {
            "READY" => return Ok(pkg.guid),
            "FAILED" => {
                return Err(CliError::other(format!(
                    "Package upload failed: {}",
                    pkg.data.error.unwrap_or_else(|| "unknown error".into())
                )))
            }
            _ if Instant::now() > deadline => {
                return Err(CliError::other(
                    "Timed out waiting for the package to be processed",
                ))
            }
            _ => {}
        }
        backoff.wait().await;
        pkg = ctx
            .client
            .get(&format!("/v3/packages/{}", pkg.guid))
            .await?;
    }
}

/// Environment, command and health check: before staging (buildpacks see
/// the user's variables and the command, as in CF); none of them touches
/// running instances until they restart.
async fn apply_settings(ctx: &Ctx, app: &App, plan: &AppPlan) -> Result<()> {
    if !plan.env.is_empty() {
        let vars: Map<String, Value> = plan
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let _: Value = ctx
            .client
            .patch(
                &format!("/v3/apps/{}/environment_variables", app.guid),
                json!({ "var": vars }),
            )
            .await?;
    }
    let web = web_process(ctx, &app.guid).await?;
    let mut patch = Map::new();
    if let Some(c) = &plan.command {
        patch.insert("command".into(), json!(c));
    }
    if plan.health_check_type.is_some() || plan.health_check_endpoint.is_some() {
        let kind = plan
            .health_check_type
            .clone()
            .unwrap_or_else(|| "http".into());
        let mut data = match (&plan.health_check_endpoint, kind.as_str()) {
            (Some(e), "http") => json!({ "endpoint": e }),
            _ => json!({}),
        };
        if let Some(t) = plan.health_check_timeout {
            data["timeout"] = json!(t);
        }
        patch.insert("health_check".into(), json!({"type": kind, "data": data}));
    } else if let Some(t) = plan.health_check_timeout {
        patch.insert("health_check".into(), json!({"data": {"timeout": t}}));
    }
    if !patch.is_empty() {
        let _: Value = ctx
            .client
            .patch(&format!("/v3/processes/{}", web.guid), Value::Object(patch))
            .await?;
    }
    Ok(())
}

/// The manifest's processes other than web (`processes:`), through CF's
/// `apply_manifest`: created when the app lacks them, and set. Their
/// scale is applied with the rest after staging succeeded. With
/// `services`, the manifest's `services:` go too (the controller binds
/// them, so staging sees them in VCAP_SERVICES). Waits for the job.
async fn apply_manifest(
    ctx: &Ctx,
    app: &App,
    plan: &AppPlan,
    scale: bool,
    services: bool,
) -> Result<()> {
    let services = if services { &plan.services[..] } else { &[] };
    if plan.processes.is_empty() && services.is_empty() {
        return Ok(());
    }
    let entries: Vec<Value> = plan
        .processes
        .iter()
        .map(|p| {
            let mut e = p.manifest_entry();
            if !scale {
                if let Some(o) = e.as_object_mut() {
                    for k in ["instances", "memory", "disk_quota"] {
                        o.remove(k);
                    }
                }
            }
            e
        })
        .collect();
    let entry = manifest_entry(&app.name, entries, services);
    let (job, _) = ctx
        .client
        .write(
            reqwest::Method::POST,
            &format!("/v3/spaces/{}/actions/apply_manifest", ctx.space.guid),
            crate::client::ReqBody::Json(json!({ "applications": [entry] })),
        )
        .await?;
    super::common::wait_job(&ctx.client, job).await
}

/// An app's entry in an `apply_manifest` body: its `processes:` and
/// `services:` (each left out when empty).
pub fn manifest_entry(
    name: &str,
    processes: Vec<Value>,
    services: &[manifest::ManifestService],
) -> Value {
    let mut entry = json!({ "name": name });
    if !processes.is_empty() {
        entry["processes"] = json!(processes);
    }
    if !services.is_empty() {
        entry["services"] = json!(services);
    }
    entry
}

/// Instances, memory and disk: after staging succeeded (scaling acts on
/// running instances at once).
async fn apply_scale(ctx: &Ctx, app: &App, plan: &AppPlan) -> Result<()> {
    let web = web_process(ctx, &app.guid).await?;
    // Only what changes: a push that keeps the sizes sends no scale (which
    // the API refuses while a deployment is in flight).
    let mut scale = Map::new();
    if let Some(i) = plan
        .instances
        .filter(|i| u64::from(*i) != u64::from(web.instances))
    {
        scale.insert("instances".into(), json!(i));
    }
    if let Some(m) = plan.memory_mb.filter(|m| *m != web.memory_in_mb) {
        scale.insert("memory_in_mb".into(), json!(m));
    }
    if let Some(d) = plan.disk_mb.filter(|d| *d != web.disk_in_mb) {
        scale.insert("disk_in_mb".into(), json!(d));
    }
    if !scale.is_empty() {
        let _: Value = ctx
            .client
            .post(
                &format!("/v3/processes/{}/actions/scale", web.guid),
                Value::Object(scale),
            )
            .await?;
    }
    Ok(())
}

async fn map_routes(ctx: &Ctx, app: &App, plan: &AppPlan) -> Result<()> {
    if plan.no_route {
        return Ok(());
    }
    if plan.routes.is_empty() {
        if !super::common::app_routes(ctx, &app.guid).await?.is_empty() {
            return Ok(());
        }
        println!("Mapping routes...");
        let d = default_domain(ctx).await?;
        let host = if plan.random_route {
            manifest::random_host(&hostname(&plan.name))
        } else {
            hostname(&plan.name)
        };
        ensure_route(ctx, &host, &d, "", &app.guid).await?;
        return Ok(());
    }
    println!("Mapping routes...");
    let doms = domains(ctx).await?;
    let names: Vec<String> = doms.iter().map(|d| d.name.clone()).collect();
    for r in &plan.routes {
        let (host, dname, path) = manifest::split_route(r, &names).ok_or_else(|| {
            CliError::other(format!(
                "The route '{r}' did not match any existing domains."
            ))
        })?;
        let domain = doms
            .iter()
            .find(|d| d.name == dname)
            .ok_or_else(|| CliError::other(format!("Domain '{dname}' not found.")))?;
        ensure_route(ctx, &host, domain, &path, &app.guid).await?;
    }
    Ok(())
}

async fn push_one(ctx: &Ctx, plan: &AppPlan, opts: &Opts) -> Result<()> {
    let app = match find_app_opt(ctx, &plan.name).await? {
        Some(a) => a,
        None => {
            println!("Creating app {}...", plan.name);
            create_app(ctx, plan).await?
        }
    };
    let stack_differs = plan
        .stack
        .as_ref()
        .is_some_and(|s| app.lifecycle.data.stack.as_ref() != Some(s));
    if (!plan.buildpacks.is_empty() && app.lifecycle.data.buildpacks != plan.buildpacks)
        || stack_differs
    {
        let mut data = json!({});
        if !plan.buildpacks.is_empty() {
            data["buildpacks"] = json!(plan.buildpacks);
        }
        if let Some(s) = &plan.stack {
            data["stack"] = json!(s);
        }
        let _: Value = ctx
            .client
            .patch(
                &format!("/v3/apps/{}", app.guid),
                json!({"lifecycle": {"type": "buildpack", "data": data}}),
            )
            .await?;
    }
    // A stopped (or new) app runs nothing: its sizes are applied first, so
    // one no DEA can hold is refused before anything is uploaded or staged.
    // A started app's change waits until its new droplet has staged.
    let scaled_early = app.state != "STARTED";
    if scaled_early {
        apply_scale(ctx, &app, plan).await?;
    }
    let package = upload(ctx, &app, &plan.path).await?;
    apply_settings(ctx, &app, plan).await?;
    apply_manifest(ctx, &app, plan, scaled_early, true).await?;
    if opts.no_start {
        // CF v8: `--no-start` uploads only; `cf start` stages later.
        let current: App = ctx.client.get(&format!("/v3/apps/{}", app.guid)).await?;
        if current.state == "STARTED" {
            println!("Stopping app {}...", app.name);
            let _: Value = ctx
                .client
                .post(&format!("/v3/apps/{}/actions/stop", app.guid), json!({}))
                .await?;
        }
        if !scaled_early {
            apply_scale(ctx, &app, plan).await?;
            apply_manifest(ctx, &app, plan, true, false).await?;
        }
        map_routes(ctx, &app, plan).await?;
        println!();
        return print_app(ctx, &app.guid).await;
    }
    let droplet = stage(ctx, &app.guid, &package).await?;
    if !scaled_early {
        apply_scale(ctx, &app, plan).await?;
        apply_manifest(ctx, &app, plan, true, false).await?;
    }
    // `--strategy` on a started app: the new droplet replaces the running
    // instances step by step (the droplet becomes current when the
    // deployment is done). A stopped or new app starts as without one.
    if let Some(deploy) = &opts.deploy {
        let current: App = ctx.client.get(&format!("/v3/apps/{}", app.guid)).await?;
        if current.state == "STARTED" {
            map_routes(ctx, &app, plan).await?;
            return deployments::deploy(
                ctx,
                &current,
                Source::Droplet(droplet),
                deploy,
                Flavor::Push,
            )
            .await;
        }
    }
    super::common::set_current_droplet(ctx, &app.guid, &droplet).await?;
    map_routes(ctx, &app, plan).await?;
    let current: App = ctx.client.get(&format!("/v3/apps/{}", app.guid)).await?;
    let action = if current.state == "STARTED" {
        "restart"
    } else {
        "start"
    };
    let _: Value = ctx
        .client
        .post(
            &format!("/v3/apps/{}/actions/{action}", app.guid),
            json!({}),
        )
        .await?;
    wait_for_start_with(ctx, &current, !opts.no_wait, plan.health_check_timeout).await?;
    print_app(ctx, &app.guid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_entries_carry_processes_and_services() {
        use manifest::ManifestService;
        let services = vec![
            ManifestService::Name("db".into()),
            ManifestService::Binding {
                name: "cache".into(),
                binding_name: Some("redis".into()),
                parameters: None,
            },
        ];
        assert_eq!(
            manifest_entry("a", vec![], &services),
            json!({"name": "a", "services": ["db", {"name": "cache", "binding_name": "redis"}]})
        );
        assert_eq!(
            manifest_entry("a", vec![json!({"type": "worker"})], &[]),
            json!({"name": "a", "processes": [{"type": "worker"}]})
        );
    }

    fn args(extra: &[&str]) -> Args {
        use clap::Parser;
        let mut all = vec!["cf", "push", "a"];
        all.extend_from_slice(extra);
        match crate::Cli::try_parse_from(all) {
            Ok(crate::Cli {
                command: crate::Command::Push(a),
            }) => *a,
            other => panic!("{extra:?}: {other:?}"),
        }
    }

    #[test]
    fn strategy_flags_parse_and_are_checked() {
        let d = deploy_opts(&args(&[
            "--strategy",
            "canary",
            "--max-in-flight",
            "2",
            "--instance-steps",
            "10,50",
            "--no-wait",
        ]))
        .expect("ok")
        .expect("deploy");
        assert_eq!(
            (
                d.strategy.name(),
                d.max_in_flight,
                d.instance_steps,
                d.no_wait
            ),
            ("canary", Some(2), vec![10, 50], true)
        );
        assert_eq!(deploy_opts(&args(&[])).expect("ok"), None);
        let e = |extra: &[&str]| deploy_opts(&args(extra)).expect_err("refused").to_string();
        assert_eq!(
            e(&["--max-in-flight", "-1", "--strategy", "rolling"]),
            "Incorrect Usage: --max-in-flight must be greater than or equal to 1"
        );
        assert_eq!(
            e(&["--max-in-flight", "3"]),
            "Incorrect Usage: '--max-in-flight' and '--strategy' must be used together."
        );
        assert_eq!(
            e(&["--strategy", "rolling", "--no-start"]),
            "Incorrect Usage: The following arguments cannot be used together: --no-start, --strategy=rolling"
        );
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("MyApp"), "myapp");
        assert_eq!(hostname("my_app.v2"), "my-app-v2");
    }
}
