//! `cf push`: create/update the app, upload, stage, switch droplet, route, start.
//! Order matters: nothing of the running app changes before staging succeeds.

use super::common::{
    default_domain, domains, ensure_route, find_app_opt, print_app, stage, wait_for_start,
    web_process, Ctx,
};
use crate::error::{CliError, Result};
use crate::manifest::{self, AppPlan, PushFlags};
use crate::models::{App, Package};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// App name (read from manifest.yml when omitted)
    pub name: Option<String>,
    /// Path to app directory or to a zip file
    #[arg(short = 'p')]
    pub path: Option<String>,
    /// Number of instances
    #[arg(short = 'i')]
    pub instances: Option<u32>,
    /// Memory limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit (e.g. 256M, 1024M, 1G)
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// Custom buildpack by name (e.g. python, binary); give it more than
    /// once for several (every one but the last supplies dependencies)
    #[arg(short = 'b')]
    pub buildpack: Vec<String>,
    /// Startup command
    #[arg(short = 'c')]
    pub command: Option<String>,
    /// Path to manifest
    #[arg(short = 'f')]
    pub manifest: Option<PathBuf>,
    /// Ignore manifest file
    #[arg(long)]
    pub no_manifest: bool,
    /// Do not start an app after pushing
    #[arg(long)]
    pub no_start: bool,
    /// Do not map a route to this app
    #[arg(long)]
    pub no_route: bool,
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

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let cwd = std::env::current_dir().map_err(|e| CliError::io("current directory", e))?;
    let (apps, base) = match manifest_path(&args, &cwd) {
        Some(p) => {
            let apps = manifest::load(&p)?;
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
        health_check_type: args.health_check_type.clone(),
        endpoint: args.endpoint.clone(),
        timeout: args.timeout,
    };
    let plans = manifest::plan(&apps, &flags, &base)?;
    for plan in &plans {
        push_one(&ctx, plan, args.no_start).await?;
    }
    Ok(())
}

async fn create_app(ctx: &Ctx, plan: &AppPlan) -> Result<App> {
    let mut body = json!({
        "name": plan.name,
        "relationships": {"space": {"data": {"guid": ctx.space.guid}}},
    });
    if !plan.buildpacks.is_empty() {
        body["lifecycle"] = json!({"type": "buildpack", "data": {"buildpacks": plan.buildpacks}});
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

/// Instances, memory and disk: after staging succeeded (scaling acts on
/// running instances at once).
async fn apply_scale(ctx: &Ctx, app: &App, plan: &AppPlan) -> Result<()> {
    let web = web_process(ctx, &app.guid).await?;
    let mut scale = Map::new();
    if let Some(i) = plan.instances {
        scale.insert("instances".into(), json!(i));
    }
    if let Some(m) = plan.memory_mb {
        scale.insert("memory_in_mb".into(), json!(m));
    }
    if let Some(d) = plan.disk_mb {
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
        ensure_route(ctx, &hostname(&plan.name), &d, "", &app.guid).await?;
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

async fn push_one(ctx: &Ctx, plan: &AppPlan, no_start: bool) -> Result<()> {
    println!(
        "Pushing app {} to org {} / space {} as {}...",
        plan.name, ctx.org.name, ctx.space.name, ctx.user
    );
    if !plan.path.exists() {
        return Err(CliError::other(format!(
            "Incorrect Usage: The specified path '{}' does not exist.",
            plan.path.display()
        )));
    }
    let app = match find_app_opt(ctx, &plan.name).await? {
        Some(a) => a,
        None => {
            println!("Creating app {}...", plan.name);
            create_app(ctx, plan).await?
        }
    };
    let package = upload(ctx, &app, &plan.path).await?;
    if !plan.buildpacks.is_empty() && app.lifecycle.data.buildpacks != plan.buildpacks {
        let _: Value = ctx
            .client
            .patch(&format!("/v3/apps/{}", app.guid), json!({"lifecycle": {"type": "buildpack", "data": {"buildpacks": plan.buildpacks}}}))
            .await?;
    }
    apply_settings(ctx, &app, plan).await?;
    let droplet = stage(ctx, &app.guid, &package).await?;
    apply_scale(ctx, &app, plan).await?;
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/apps/{}/relationships/current_droplet", app.guid),
            json!({"data": {"guid": droplet}}),
        )
        .await?;
    map_routes(ctx, &app, plan).await?;
    let current: App = ctx.client.get(&format!("/v3/apps/{}", app.guid)).await?;
    if current.state == "STARTED" {
        if no_start {
            println!("Stopping app {}...", app.name);
            let _: Value = ctx
                .client
                .post(&format!("/v3/apps/{}/actions/stop", app.guid), json!({}))
                .await?;
        } else {
            let _: Value = ctx
                .client
                .post(&format!("/v3/apps/{}/actions/restart", app.guid), json!({}))
                .await?;
            wait_for_start(ctx, &current).await?;
        }
    } else if !no_start {
        let _: Value = ctx
            .client
            .post(&format!("/v3/apps/{}/actions/start", app.guid), json!({}))
            .await?;
        wait_for_start(ctx, &current).await?;
    } else {
        println!();
    }
    print_app(ctx, &app.guid).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname("MyApp"), "myapp");
        assert_eq!(hostname("my_app.v2"), "my-app-v2");
    }
}
