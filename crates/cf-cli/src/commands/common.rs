//! Helpers shared by the commands: target context, app lookup, staging,
//! routes, waiting for instances, the `cf app` view.

use crate::client::Client;
use crate::config::{cf_home, Config, Target};
use crate::error::{CliError, Result};
use crate::format::{since, AppView, InstanceView, ProcessView};
use crate::models::{App, Build, Domain, Droplet, Job, Named, Process, ProcessStat, Route};
use futures_util::StreamExt;
use proto::{LogMessage, LogSource};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A client plus the targeted org, space and user.
pub struct Ctx {
    pub client: Client,
    pub org: Target,
    pub space: Target,
    pub user: String,
}

pub fn client() -> Result<Client> {
    let home = cf_home();
    Client::new(Config::load(&home)?, home)
}

impl Ctx {
    pub fn load() -> Result<Ctx> {
        let client = client()?;
        let (org, space, user) = client.config().target()?;
        Ok(Ctx {
            client,
            org,
            space,
            user,
        })
    }

    /// `in org O / space S as U`
    pub fn where_(&self) -> String {
        format!(
            "in org {} / space {} as {}",
            self.org.name, self.space.name, self.user
        )
    }
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn find_app_opt(ctx: &Ctx, name: &str) -> Result<Option<App>> {
    let apps: Vec<App> = ctx
        .client
        .list(&format!(
            "/v3/apps?names={}&space_guids={}",
            enc(name),
            ctx.space.guid
        ))
        .await?;
    Ok(apps.into_iter().find(|a| a.name == name))
}

pub async fn find_app(ctx: &Ctx, name: &str) -> Result<App> {
    find_app_opt(ctx, name)
        .await?
        .ok_or_else(|| CliError::AppNotFound(name.to_string()))
}

pub async fn processes(ctx: &Ctx, app_guid: &str) -> Result<Vec<Process>> {
    ctx.client
        .list(&format!("/v3/apps/{app_guid}/processes"))
        .await
}

pub async fn web_process(ctx: &Ctx, app_guid: &str) -> Result<Process> {
    processes(ctx, app_guid)
        .await?
        .into_iter()
        .find(|p| p.kind == "web")
        .ok_or_else(|| CliError::other("The app has no web process."))
}

pub async fn stats(ctx: &Ctx, process_guid: &str) -> Result<Vec<ProcessStat>> {
    let v: crate::models::List<ProcessStat> = ctx
        .client
        .get(&format!("/v3/processes/{process_guid}/stats"))
        .await?;
    Ok(v.resources)
}

pub async fn domains(ctx: &Ctx) -> Result<Vec<Domain>> {
    ctx.client.list("/v3/domains").await
}

/// The org's default domain, else the first non-internal domain.
pub async fn default_domain(ctx: &Ctx) -> Result<Domain> {
    if let Ok(Some(d)) = ctx
        .client
        .get_opt::<Domain>(&format!(
            "/v3/organizations/{}/domains/default",
            ctx.org.guid
        ))
        .await
    {
        if !d.guid.is_empty() {
            return Ok(d);
        }
    }
    domains(ctx)
        .await?
        .into_iter()
        .find(|d| !d.internal)
        .ok_or_else(|| CliError::other("No domains available. The platform has no shared domain."))
}

pub async fn app_routes(ctx: &Ctx, app_guid: &str) -> Result<Vec<Route>> {
    ctx.client
        .list(&format!("/v3/apps/{app_guid}/routes"))
        .await
}

/// Route URLs for display (domain names looked up only when `url` is absent).
pub async fn route_urls(ctx: &Ctx, routes: &[Route]) -> Result<Vec<String>> {
    let need_domains = routes.iter().any(|r| r.url.is_empty());
    let doms = if need_domains {
        domains(ctx).await?
    } else {
        vec![]
    };
    Ok(routes
        .iter()
        .map(|r| {
            let d = doms
                .iter()
                .find(|d| d.guid == r.domain_guid())
                .map(|d| d.name.as_str())
                .unwrap_or("");
            r.display_url(d)
        })
        .collect())
}

pub async fn find_route(
    ctx: &Ctx,
    host: &str,
    domain: &Domain,
    path: &str,
) -> Result<Option<Route>> {
    let mut q = format!("/v3/routes?domain_guids={}", domain.guid);
    if !host.is_empty() {
        q.push_str(&format!("&hosts={}", enc(host)));
    }
    if !path.is_empty() {
        q.push_str(&format!("&paths={}", enc(path)));
    }
    let routes: Vec<Route> = ctx.client.list(&q).await?;
    Ok(routes.into_iter().find(|r| {
        r.host == host
            && r.domain_guid() == domain.guid
            && r.path.trim_end_matches('/') == path.trim_end_matches('/')
    }))
}

/// Make sure the route exists and sends to `app_guid`. Returns the URL.
pub async fn ensure_route(
    ctx: &Ctx,
    host: &str,
    domain: &Domain,
    path: &str,
    app_guid: &str,
) -> Result<String> {
    let route = match find_route(ctx, host, domain, path).await? {
        Some(r) => r,
        None => {
            let mut body = json!({
                "host": host,
                "relationships": {"space": {"data": {"guid": ctx.space.guid}}, "domain": {"data": {"guid": domain.guid}}}
            });
            if !path.is_empty() {
                body["path"] = json!(path);
            }
            ctx.client.post::<Route>("/v3/routes", body).await?
        }
    };
    if !route.destinations.iter().any(|d| d.app.guid == app_guid) {
        let _: Value = ctx
            .client
            .post(
                &format!("/v3/routes/{}/destinations", route.guid),
                json!({"destinations": [{"app": {"guid": app_guid}}]}),
            )
            .await?;
    }
    Ok(route.display_url(&domain.name))
}

/// Read an ndjson log stream, calling `f` for each message (empty lines and
/// malformed lines are skipped). Returns when the stream ends.
pub async fn read_log_stream(resp: reqwest::Response, mut f: impl FnMut(LogMessage)) -> Result<()> {
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Ok(m) = serde_json::from_slice::<LogMessage>(&line) {
                f(m);
            }
        }
    }
    Ok(())
}

/// Create a build for `package_guid`, print the STG lines of the log stream
/// (opened first), wait for STAGED/FAILED and return the droplet guid.
pub async fn stage(ctx: &Ctx, app_guid: &str, package_guid: &str) -> Result<String> {
    println!("\nStaging app and tracing logs...");
    // The controller's own line when a build ends wakes the build poll at
    // once (the poll alone would see it up to a back-off step later).
    let ended = std::sync::Arc::new(tokio::sync::Notify::new());
    let logs = match ctx
        .client
        .stream(&format!("/v3/apps/{app_guid}/logs/stream"))
        .await
    {
        Ok(resp) => {
            let ended = ended.clone();
            Some(tokio::spawn(read_log_stream(resp, move |m| {
                if m.source == LogSource::Stg {
                    let mut out = std::io::stdout();
                    let _ = writeln!(out, "   {}", m.line.trim_end_matches(['\n', '\r']));
                    let _ = out.flush();
                } else if m.source == LogSource::Api
                    && (m.line.starts_with("Staging complete")
                        || m.line.starts_with("Staging failed"))
                {
                    ended.notify_one();
                }
            })))
        }
        Err(e) => {
            eprintln!("Warning: could not stream staging logs: {e}");
            None
        }
    };
    let result = poll_build(ctx, package_guid, &ended).await;
    if let Some(task) = logs {
        // Let lines already in flight arrive, then stop reading.
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
    }
    result
}

async fn poll_build(ctx: &Ctx, package_guid: &str, ended: &tokio::sync::Notify) -> Result<String> {
    let build: Build = ctx
        .client
        .post("/v3/builds", json!({"package": {"guid": package_guid}}))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(env_secs("CF_STAGING_TIMEOUT", 900));
    let mut b = build;
    let mut backoff = Backoff::new(Duration::from_millis(500));
    // The API may be away for a while (a controller restart): the build
    // goes on meanwhile, so keep asking.
    let mut away_since: Option<Instant> = None;
    loop {
        match b.state.as_str() {
            "STAGED" => {
                return b
                    .droplet
                    .map(|d| d.guid)
                    .filter(|g| !g.is_empty())
                    .ok_or_else(|| CliError::other("The build is staged but has no droplet."))
            }
            "FAILED" => {
                let error = b.error.unwrap_or_else(|| "unknown error".into());
                let tip = if error.starts_with("NoAppDetectedError") {
                    "TIP: Use 'cf buildpacks' to see a list of supported buildpacks."
                } else {
                    "TIP: Use 'cf logs APP --recent' for the whole staging log."
                };
                return Err(CliError::other(format!(
                    "Error staging application: {error}\n\n{tip}"
                )));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(CliError::other(
                "Error staging application: staging timed out",
            ));
        }
        tokio::select! {
            _ = backoff.wait() => {}
            _ = ended.notified() => {}
        }
        if let Some(next) =
            get_waiting(ctx, &format!("/v3/builds/{}", b.guid), &mut away_since).await?
        {
            b = next;
        }
    }
}

/// An error that says the API is away for now (connection refused, the
/// router with no route or no backend for it), not that the request is
/// wrong.
/// GET `path` while waiting for something to finish: `None` while the
/// API is briefly away (said once on stderr), its error once it has been
/// away `CF_API_OUTAGE_TIMEOUT` (120 s).
pub async fn get_waiting<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    path: &str,
    away_since: &mut Option<Instant>,
) -> Result<Option<T>> {
    match ctx.client.get(path).await {
        Ok(v) => {
            *away_since = None;
            Ok(Some(v))
        }
        Err(e) if transient(&e) => {
            let since = *away_since.get_or_insert_with(|| {
                eprintln!("The API is not answering ({e}); waiting for it...");
                Instant::now()
            });
            if since.elapsed() > Duration::from_secs(env_secs("CF_API_OUTAGE_TIMEOUT", 120)) {
                return Err(e);
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub fn transient(e: &CliError) -> bool {
    match e {
        CliError::Http(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        CliError::Api {
            status: 502..=504, ..
        } => true,
        // The router's own 404 (no route: the controller is not registered
        // right now) carries no CF error code.
        CliError::Api {
            status: 404,
            code: None,
            ..
        } => true,
        _ => false,
    }
}

pub fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn state_rank(s: &str) -> u8 {
    match s {
        "RUNNING" => 4,
        "STARTING" => 3,
        "CRASHED" => 2,
        _ => 1,
    }
}

/// Best state per index `0..instances`: (running, starting, crashed, down).
pub fn count_states(instances: u32, stats: &[ProcessStat]) -> (u32, u32, u32, u32) {
    let mut c = (0, 0, 0, 0);
    for i in 0..instances {
        let best = stats
            .iter()
            .filter(|s| s.index == i)
            .map(|s| s.state.to_ascii_uppercase())
            .max_by_key(|s| state_rank(s));
        match best.as_deref() {
            Some("RUNNING") => c.0 += 1,
            Some("STARTING") => c.1 += 1,
            Some("CRASHED") => c.2 += 1,
            _ => c.3 += 1,
        }
    }
    c
}

pub fn progress_line(
    instances: u32,
    (running, starting, crashed, down): (u32, u32, u32, u32),
) -> String {
    let mut s = format!("{running} of {instances} running");
    for (n, what) in [(starting, "starting"), (crashed, "crashed"), (down, "down")] {
        if n > 0 {
            s.push_str(&format!(", {n} {what}"));
        }
    }
    s
}

/// How often `wait_for_start` repeats an unchanged progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Poll the app's processes until every instance runs. Fails when all
/// instances of a process stay crashed for a few seconds or after
/// `CF_STARTUP_TIMEOUT` seconds (60).
pub async fn wait_for_start(ctx: &Ctx, app: &App) -> Result<()> {
    wait_for_start_with(ctx, app, true, None).await
}

/// [`wait_for_start`], until every instance runs (`all`) or the first one
/// does (`cf push --no-wait`); waits at least `health_timeout` seconds
/// (the app's `-t`) when that is longer than `CF_STARTUP_TIMEOUT`.
pub async fn wait_for_start_with(
    ctx: &Ctx,
    app: &App,
    all: bool,
    health_timeout: Option<u32>,
) -> Result<()> {
    println!("Waiting for app {} to start...\n", app.name);
    let started = Instant::now();
    let secs = env_secs("CF_STARTUP_TIMEOUT", 60).max(health_timeout.map_or(0, u64::from));
    let deadline = started + Duration::from_secs(secs);
    let mut last = String::new();
    let mut last_at = Instant::now();
    let mut all_crashed_since: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500));
    let fail = |why: &str| {
        CliError::other(format!(
            "{why}\n\nTIP: use 'cf logs {} --recent' for more information",
            app.name
        ))
    };
    loop {
        // Every process type with instances (web first); `--no-wait`
        // waits for the first web instance only.
        let mut procs = processes(ctx, &app.guid).await?;
        procs.retain(|p| p.instances > 0 && (all || p.kind == "web"));
        procs.sort_by_key(|p| p.kind != "web");
        if procs.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        let mut st = Vec::new();
        let (mut done, mut all_crashed) = (true, false);
        for p in &procs {
            let s = stats(ctx, &p.guid).await.unwrap_or_default();
            let counts = count_states(p.instances, &s);
            let line = progress_line(p.instances, counts);
            lines.push(if procs.len() > 1 {
                format!("{}: {line}", p.kind)
            } else {
                line
            });
            done &= counts.0 == p.instances || (!all && counts.0 > 0);
            all_crashed |= counts.2 == p.instances;
            st.extend(s);
        }
        let line = lines.join("; ");
        // A line when the counts change, and every few seconds while
        // waiting, so a slow start never looks hung.
        if line != last || last_at.elapsed() >= PROGRESS_EVERY {
            println!("{line}");
            last = line;
            last_at = Instant::now();
        }
        if done {
            println!();
            return Ok(());
        }
        // CF's InsufficientResources: no DEA can ever hold an instance, so
        // waiting is pointless.
        if let Some(d) = st.iter().find_map(|s| {
            s.details
                .as_deref()
                .filter(|d| s.state == "DOWN" && d.starts_with("insufficient resources"))
        }) {
            return Err(fail(&format!(
                "Start unsuccessful: app {} cannot be placed: {d}",
                app.name
            )));
        }
        if all_crashed {
            let since = *all_crashed_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3)
                && started.elapsed() > Duration::from_secs(3)
            {
                return Err(fail(&format!(
                    "Start unsuccessful: all instances of app {} crashed",
                    app.name
                )));
            }
        } else {
            all_crashed_since = None;
        }
        if Instant::now() > deadline {
            return Err(fail(&format!(
                "Start app timeout: app {} did not start within {} seconds\n\nTIP: Application must be listening on the right port. Instead of hard coding the port, use the $PORT environment variable.",
                app.name,
                (deadline - started).as_secs()
            )));
        }
        backoff.wait().await;
    }
}

/// What `cf start` does first in CF v8: when the app's newest uploaded
/// package has no droplet yet (`cf push --no-start`), stage it and make
/// its droplet current. Nothing to do when it was staged already, or when
/// nothing was uploaded (the start request then says so).
pub async fn stage_if_unstaged(ctx: &Ctx, app: &App) -> Result<()> {
    let Some(package) = unstaged_package(ctx, app).await? else {
        return Ok(());
    };
    let droplet = stage(ctx, &app.guid, &package).await?;
    set_current_droplet(ctx, &app.guid, &droplet).await?;
    Ok(())
}

/// The app's newest uploaded package when it has no droplet yet (see
/// [`stage_if_unstaged`]).
pub async fn unstaged_package(ctx: &Ctx, app: &App) -> Result<Option<String>> {
    let mut packages: Vec<crate::models::Package> = ctx
        .client
        .list(&format!("/v3/apps/{}/packages", app.guid))
        .await?;
    packages.retain(|p| p.state == "READY");
    packages.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let Some(package) = packages.pop() else {
        return Ok(None);
    };
    let droplets: Vec<Value> = ctx
        .client
        .list(&format!("/v3/apps/{}/droplets", app.guid))
        .await?;
    let staged = droplets.iter().any(|d| {
        d["state"] == "STAGED"
            && d["links"]["package"]["href"]
                .as_str()
                .is_some_and(|h| h.ends_with(&format!("/{}", package.guid)))
    });
    Ok((!staged).then_some(package.guid))
}

/// Makes `droplet` the app's current droplet.
pub async fn set_current_droplet(ctx: &Ctx, app_guid: &str, droplet: &str) -> Result<()> {
    let _: Value = ctx
        .client
        .patch(
            &format!("/v3/apps/{app_guid}/relationships/current_droplet"),
            json!({"data": {"guid": droplet}}),
        )
        .await?;
    Ok(())
}

/// Everything the `cf app` block shows.
pub async fn app_view(ctx: &Ctx, app: &App, with_stats: bool) -> Result<AppView> {
    let routes = app_routes(ctx, &app.guid).await?;
    let urls = route_urls(ctx, &routes).await?;
    let droplet: Option<Droplet> = ctx
        .client
        .get_opt(&format!("/v3/apps/{}/droplets/current", app.guid))
        .await
        .unwrap_or(None);
    let now = chrono::Utc::now();
    let mut views = Vec::new();
    for p in processes(ctx, &app.guid).await? {
        let st = if with_stats {
            stats(ctx, &p.guid).await.unwrap_or_default()
        } else {
            vec![]
        };
        let mut stats: Vec<InstanceView> = st
            .iter()
            .map(|s| InstanceView {
                index: s.index,
                state: s.state.clone(),
                // CF shows since (now - uptime) in every state but DOWN.
                since: if s.uptime > 0 || s.state != "DOWN" {
                    since(now, s.uptime)
                } else {
                    String::new()
                },
                cpu: s.usage.cpu,
                mem: s.usage.mem,
                mem_quota: s.mem_quota.unwrap_or(p.memory_in_mb << 20),
                disk: s.usage.disk,
                disk_quota: s.disk_quota.unwrap_or(p.disk_in_mb << 20),
                details: s.details.clone().filter(|d| !d.is_empty()),
            })
            .collect();
        stats.sort_by_key(|s| s.index);
        let command = p
            .command
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| {
                droplet
                    .as_ref()
                    .and_then(|d| d.process_types.get(&p.kind).cloned())
            })
            .unwrap_or_default();
        views.push(ProcessView {
            kind: p.kind.clone(),
            instances: p.instances,
            memory_mb: p.memory_in_mb,
            disk_mb: p.disk_in_mb,
            command,
            stats,
        });
    }
    views.sort_by_key(|p| p.kind != "web");
    let buildpacks = match &droplet {
        Some(d) if !d.buildpacks.is_empty() => {
            d.buildpacks.iter().map(|b| b.name.clone()).collect()
        }
        _ => app.lifecycle.data.buildpacks.clone(),
    };
    Ok(AppView {
        name: app.name.clone(),
        state: app.state.clone(),
        routes: urls,
        last_uploaded: droplet
            .as_ref()
            .map(|d| d.created_at.clone())
            .filter(|s| !s.is_empty()),
        stack: droplet
            .as_ref()
            .and_then(|d| d.stack.clone())
            .or_else(|| app.lifecycle.data.stack.clone())
            .unwrap_or_default(),
        buildpacks,
        processes: views,
    })
}

pub async fn print_app(ctx: &Ctx, app_guid: &str) -> Result<()> {
    let app: App = ctx.client.get(&format!("/v3/apps/{app_guid}")).await?;
    let view = app_view(ctx, &app, true).await?;
    print!("{}", crate::format::app_block(&view));
    Ok(())
}

/// Wait for a job (from a 202's Location) to finish.
pub async fn wait_job(client: &Client, location: Option<String>) -> Result<()> {
    let Some(loc) = location else { return Ok(()) };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job: Job = client.get(&loc).await?;
        match job.state.as_str() {
            "COMPLETE" => return Ok(()),
            "FAILED" => return Err(CliError::other(job_detail(&job))),
            _ if Instant::now() > deadline => {
                return Err(CliError::other("Timed out waiting for the job to complete"))
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// What a failed job says: its first error's `detail`.
pub fn job_detail(job: &Job) -> String {
    job.errors
        .first()
        .and_then(|e| e.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or("job failed")
        .to_string()
}

/// Ask `prompt [yN]:` on stdout and read one line from stdin (also when it is
/// not a terminal, so `echo y | cf delete app` works; EOF means no).
pub fn confirm(prompt: &str) -> bool {
    print!("{prompt} [yN]: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => {
            println!();
            false
        }
        Ok(_) => {
            if !stdin_is_tty() {
                println!();
            }
            matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        }
    }
}

/// Ask `label: ` and read one line (terminal echo off when `secret`). Reads
/// stdin also when it is not a terminal, so answers can be piped in; `None`
/// at end of input.
pub fn ask(label: &str, secret: bool) -> Result<Option<String>> {
    print!("{label}: ");
    let _ = std::io::stdout().flush();
    let echo_off = secret && stdin_is_tty() && set_echo(false);
    let mut line = String::new();
    let r = std::io::stdin().read_line(&mut line);
    if echo_off {
        set_echo(true);
    }
    if echo_off || !stdin_is_tty() {
        println!();
    }
    match r.map_err(|e| CliError::io("reading stdin", e))? {
        0 => Ok(None),
        _ => Ok(Some(line.trim_end_matches(['\n', '\r']).to_string())),
    }
}

/// Turn terminal echo on/off on stdin; true when it changed.
pub fn set_echo(on: bool) -> bool {
    // SAFETY: termios is a plain C struct; tcgetattr fills it for fd 0.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return false;
        }
        if on {
            t.c_lflag |= libc::ECHO;
        } else {
            t.c_lflag &= !libc::ECHO;
        }
        libc::tcsetattr(0, libc::TCSANOW, &t) == 0
    }
}

/// The claims of a JWT (its middle part), without checking the signature.
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One string claim of the stored access token (`user_id`, `origin`, ...).
pub fn token_claim(client: &Client, claim: &str) -> Option<String> {
    let tok = client.config().access_token?;
    jwt_claims(&tok)?.get(claim)?.as_str().map(str::to_string)
}

/// The UAA base URL (`links.uaa.href` of the API root), else the API itself.
pub fn uaa_url(client: &Client) -> Result<String> {
    let cfg = client.config();
    let api = cfg.api()?.to_string();
    Ok(cfg
        .uaa
        .clone()
        .unwrap_or(api)
        .trim_end_matches('/')
        .to_string())
}

pub async fn find_org_opt(client: &Client, name: &str) -> Result<Option<Named>> {
    let orgs: Vec<Named> = client
        .list(&format!("/v3/organizations?names={}", enc(name)))
        .await?;
    Ok(orgs.into_iter().find(|o| o.name == name))
}

/// An org by name, else `Organization 'X' not found.`
pub async fn find_org(client: &Client, name: &str) -> Result<Named> {
    find_org_opt(client, name)
        .await?
        .ok_or_else(|| CliError::other(format!("Organization '{name}' not found.")))
}

pub async fn find_space_opt(client: &Client, org_guid: &str, name: &str) -> Result<Option<Named>> {
    let spaces: Vec<Named> = client
        .list(&format!(
            "/v3/spaces?names={}&organization_guids={org_guid}",
            enc(name)
        ))
        .await?;
    Ok(spaces.into_iter().find(|s| s.name == name))
}

/// A space of an org by name, else `Space 'X' not found.`
pub async fn find_space(client: &Client, org_guid: &str, name: &str) -> Result<Named> {
    find_space_opt(client, org_guid, name)
        .await?
        .ok_or_else(|| CliError::other(format!("Space '{name}' not found.")))
}

/// The targeted org, else the "No org targeted" error.
pub fn targeted_org(client: &Client) -> Result<Named> {
    let t = client.config().org.ok_or(CliError::NoOrg)?;
    Ok(Named {
        guid: t.guid,
        name: t.name,
    })
}

/// DELETE something that answers 202 with a job, and wait for the job.
pub async fn delete_and_wait(client: &Client, path: &str) -> Result<()> {
    let loc = client.delete(path).await?;
    wait_job(client, loc).await
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

pub fn ok() {
    use crate::terminal::{color_enabled, paint, Style};
    println!("{}", paint("OK", Style::Ok, color_enabled()));
}

/// A logged-in client and the user name (no org/space needed).
pub fn logged_in() -> Result<(Client, String)> {
    let c = client()?;
    let cfg = c.config();
    cfg.api()?;
    if cfg.access_token.is_none() {
        return Err(CliError::NotLoggedIn);
    }
    let user = cfg.user_name().to_string();
    Ok((c, user))
}

/// Delays between polls of something that usually finishes quickly: 25 ms,
/// doubling up to `max`, so fast operations are seen fast and slow ones are
/// not hammered.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(25).min(max),
            max,
        }
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(index: u32, state: &str) -> ProcessStat {
        ProcessStat {
            index,
            state: state.into(),
            ..ProcessStat::default()
        }
    }

    #[test]
    fn counts_best_state_per_index() {
        let s = vec![
            st(0, "RUNNING"),
            st(1, "STARTING"),
            st(1, "CRASHED"),
            st(2, "CRASHED"),
        ];
        assert_eq!(count_states(4, &s), (1, 1, 1, 1));
        assert_eq!(
            progress_line(4, count_states(4, &s)),
            "1 of 4 running, 1 starting, 1 crashed, 1 down"
        );
        assert_eq!(progress_line(3, (0, 3, 0, 0)), "0 of 3 running, 3 starting");
    }

    #[test]
    fn url_encoding() {
        assert_eq!(enc("my app/x"), "my%20app%2Fx");
        assert_eq!(enc("a-b_c.d"), "a-b_c.d");
    }
}
