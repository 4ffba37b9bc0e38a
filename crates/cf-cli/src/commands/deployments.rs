//! Deployments (CF v3 `/v3/deployments`): `cf cancel-deployment APP`,
//! `cf continue-deployment APP [--no-wait]`, and what `cf push`,
//! `cf restart`, `cf restage` and `cf rollback` share when they are given
//! `--strategy`: checking the strategy flags, creating the deployment,
//! following it until it ends, and the texts of each ending.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{env_secs, find_app, get_waiting, ok, print_app, Backoff, Ctx};
use crate::error::{CliError, Result};
use crate::models::App;

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// Name of the app
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct ContinueArgs {
    /// Name of the app
    pub name: String,
    /// Exit when the first instance of the web process is healthy
    #[arg(long)]
    pub no_wait: bool,
}

// ---------------------------------------------------------------------------
// The deployment resource (lenient: every field has a default).

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Deployment {
    pub guid: String,
    /// Deprecated by CF in favour of `status`; read when `status` is absent.
    pub state: Option<String>,
    pub status: Status,
    pub strategy: Option<String>,
    pub options: Options,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Status {
    pub value: Option<String>,
    pub reason: Option<String>,
    pub details: Details,
    pub canary: Option<CanaryStatus>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Details {
    pub last_successful_healthcheck: Option<String>,
    pub last_status_change: Option<String>,
    /// Ours: why the platform rolled the deployment back by itself.
    pub error: Option<String>,
    /// Ours: how far the deployment got.
    pub instances: Option<Instances>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Instances {
    pub new_running: i64,
    pub new_total: i64,
    pub target: i64,
    pub old_serving: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CanaryStatus {
    pub steps: CanarySteps,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CanarySteps {
    pub current: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Options {
    pub max_in_flight: Option<i64>,
}

impl Deployment {
    /// `status.value`, or what the deprecated `state` implies.
    fn value(&self) -> &str {
        match (self.status.value.as_deref(), self.state.as_deref()) {
            (Some(v), _) if !v.is_empty() => v,
            (_, Some("DEPLOYED" | "CANCELED")) => "FINALIZED",
            _ => "ACTIVE",
        }
    }

    /// `status.reason`, or the deprecated `state` (DEPLOYING, DEPLOYED,
    /// CANCELING, CANCELED: the same words).
    fn reason(&self) -> &str {
        match (self.status.reason.as_deref(), self.state.as_deref()) {
            (Some(r), _) if !r.is_empty() => r,
            (_, Some(s)) => s,
            _ => "",
        }
    }

    fn canary_steps(&self) -> Option<CanarySteps> {
        self.status
            .canary
            .as_ref()
            .map(|c| c.steps)
            .filter(|s| s.total > 0)
    }

    fn error(&self) -> Option<&str> {
        self.status
            .details
            .error
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }
}

// ---------------------------------------------------------------------------
// Decisions and texts (pure).

/// What a deployment, as last read, means for a command waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still going: poll again.
    Waiting,
    /// FINALIZED / DEPLOYED: every new instance runs, the old ones are gone.
    Deployed,
    /// `--no-wait`: a new instance runs; the rest goes on in the background.
    FirstRunning,
    /// A canary stopped at a step (ACTIVE / PAUSED) for `cf continue-deployment`.
    Paused,
    /// The platform rolled it back by itself (`status.details.error`).
    RolledBack(String),
    /// FINALIZED / CANCELED without an error: someone canceled it.
    Canceled,
    /// FINALIZED / SUPERSEDED: a newer deployment of the app took over.
    Superseded,
    /// FINALIZED with a reason this CLI does not know.
    Ended(String),
}

/// Decides what `d` means. `no_wait`: a running new instance is enough.
/// `paused_at`: the canary step a `cf continue-deployment` moved on from
/// (the deployment may still read PAUSED at that step for a moment).
pub fn outcome(d: &Deployment, no_wait: bool, paused_at: Option<i64>) -> Outcome {
    let reason = d.reason();
    if d.value() == "FINALIZED" {
        return match (reason, d.error()) {
            ("DEPLOYED", _) => Outcome::Deployed,
            (_, Some(e)) => Outcome::RolledBack(e.to_string()),
            ("CANCELED", None) => Outcome::Canceled,
            ("SUPERSEDED", None) => Outcome::Superseded,
            (other, None) => Outcome::Ended(other.to_string()),
        };
    }
    match reason {
        "PAUSED" => {
            let step = d.canary_steps().map(|s| s.current);
            if paused_at.is_some() && step == paused_at {
                Outcome::Waiting
            } else {
                Outcome::Paused
            }
        }
        "CANCELING" => Outcome::Waiting,
        _ if no_wait
            && d.status
                .details
                .instances
                .is_some_and(|i| i.new_running >= 1) =>
        {
            Outcome::FirstRunning
        }
        _ => Outcome::Waiting,
    }
}

/// `2 of 4 new instances running, 2 old instances serving`, from the
/// deployment's `status.details.instances`; `None` when it has none.
pub fn progress_line(d: &Deployment) -> Option<String> {
    let i = d.status.details.instances?;
    let of = if i.target > 0 {
        i.target
    } else {
        i.new_total.max(0)
    };
    let (running, serving) = (i.new_running.max(0), i.old_serving.max(0));
    let old = if serving == 1 {
        "instance"
    } else {
        "instances"
    };
    Some(format!(
        "{running} of {of} new instances running, {serving} old {old} serving"
    ))
}

/// CF v8's block about an active deployment (what `cf app` shows under the
/// app while one runs), with its hint when a canary is paused.
pub fn active_block(d: &Deployment, app: &str) -> String {
    let reason = d.reason();
    let mut out = match d
        .status
        .details
        .last_status_change
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        Some(t) => format!(
            "Active deployment with status {reason} (since {})\n",
            crate::format::uploaded_time(t)
        ),
        None => format!("Active deployment with status {reason}.\n"),
    };
    let mut rows = vec![(
        "strategy",
        d.strategy.clone().unwrap_or_default().to_ascii_lowercase(),
    )];
    if let Some(m) = d.options.max_in_flight.filter(|m| *m > 0) {
        rows.push(("max-in-flight", m.to_string()));
    }
    if let Some(s) = d.canary_steps() {
        rows.push(("canary-steps", format!("{}/{}", s.current, s.total)));
    }
    out.push_str(&crate::format::kv_auto(&rows));
    if d.strategy.as_deref() == Some("canary") && reason == "PAUSED" {
        out.push_str(&format!(
            "\nPlease run `cf continue-deployment {app}` to promote the canary deployment, or `cf cancel-deployment {app}` to rollback to the previous version.\n"
        ));
    }
    out
}

/// Why a deployment that ended badly failed the command (after `FAILED`).
pub fn failure_text(o: &Outcome, app: &str) -> Option<String> {
    let why = match o {
        Outcome::RolledBack(e) => format!("Deployment was rolled back: {e}"),
        Outcome::Canceled => "Deployment has been canceled.".to_string(),
        Outcome::Superseded => "Deployment has been superseded.".to_string(),
        Outcome::Ended(r) => format!("Deployment ended with status FINALIZED and reason {r}."),
        _ => return None,
    };
    Some(format!(
        "{why}\n\nTIP: use 'cf logs {app} --recent' for more information"
    ))
}

// ---------------------------------------------------------------------------
// The strategy flags.

/// `--strategy`, as CF v8 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Rolling,
    Canary,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::Canary => "canary",
        }
    }
}

/// A checked set of deployment options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOpts {
    pub strategy: Strategy,
    pub max_in_flight: Option<u64>,
    pub instance_steps: Vec<u64>,
    pub no_wait: bool,
}

/// The strategy flags as typed, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct StrategyFlags {
    pub strategy: Option<String>,
    pub max_in_flight: Option<i64>,
    pub instance_steps: Option<String>,
    pub no_wait: bool,
}

/// Which command the flags belong to: CF words some checks differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagsOf {
    Push,
    /// `cf restart`, `cf restage`.
    Restart,
    /// `cf rollback`: rolling unless `--strategy` says otherwise.
    Rollback,
}

fn usage(msg: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("Incorrect Usage: {msg}"))
}

/// `10,50` → `[10, 50]`: whole percentages 1..=100, ascending.
pub fn parse_steps(s: &str) -> Result<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for part in s.split(',') {
        let n: i64 = part
            .trim()
            .parse()
            .map_err(|_| usage("Value for --instance-steps must be list of weights"))?;
        if !(1..=100).contains(&n) {
            return Err(usage(format!(
                "--instance-steps weights must be between 1 and 100 (got {n})"
            )));
        }
        let n = n.unsigned_abs();
        if out.last().is_some_and(|last| *last >= n) {
            return Err(usage(
                "--instance-steps weights must be in ascending order (e.g. 20,40,60)",
            ));
        }
        out.push(n);
    }
    Ok(out)
}

/// Checks the strategy flags as CF v8 does (its texts); `None` when no
/// strategy is asked for (the command restarts as before).
pub fn check_flags(of: FlagsOf, f: &StrategyFlags) -> Result<Option<DeployOpts>> {
    let strategy = match f
        .strategy
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("null") => None,
        Some("rolling") => Some(Strategy::Rolling),
        Some("canary") => Some(Strategy::Canary),
        Some(_) => return Err(usage("STRATEGY must be \"canary\", \"rolling\" or not set")),
    };
    if strategy.is_none() && of != FlagsOf::Rollback && f.max_in_flight.is_some() {
        return Err(usage(
            "'--max-in-flight' and '--strategy' must be used together.",
        ));
    }
    if let Some(m) = f.max_in_flight {
        if m < 1 {
            return Err(usage("--max-in-flight must be greater than or equal to 1"));
        }
    }
    if f.instance_steps.is_some() && strategy != Some(Strategy::Canary) {
        return Err(match of {
            FlagsOf::Push => usage(
                "The following arguments cannot be used together: --instance-steps, --strategy=rolling or --strategy not provided",
            ),
            _ => usage("'--instance-steps' and '--strategy=canary' must be used together."),
        });
    }
    let instance_steps = match &f.instance_steps {
        Some(s) => parse_steps(s)?,
        None => vec![],
    };
    let strategy = match (of, strategy) {
        (FlagsOf::Rollback, None) => Strategy::Rolling,
        (_, None) => return Ok(None),
        (_, Some(s)) => s,
    };
    Ok(Some(DeployOpts {
        strategy,
        max_in_flight: f.max_in_flight.map(i64::unsigned_abs),
        instance_steps,
        no_wait: f.no_wait,
    }))
}

// ---------------------------------------------------------------------------
// Talking to the API.

/// What the new deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The app's current droplet (`cf restart`).
    Current,
    /// A droplet just staged (`cf push`, `cf restage`).
    Droplet(String),
    /// A revision's droplet and settings (`cf rollback`).
    Revision(String),
}

/// The body of `POST /v3/deployments`.
pub fn create_body(app_guid: &str, source: &Source, opts: &DeployOpts) -> Value {
    let mut body = json!({
        "strategy": opts.strategy.name(),
        "relationships": {"app": {"data": {"guid": app_guid}}},
    });
    match source {
        Source::Current => {}
        Source::Droplet(g) => body["droplet"] = json!({ "guid": g }),
        Source::Revision(g) => body["revision"] = json!({ "guid": g }),
    }
    let mut options = serde_json::Map::new();
    if let Some(m) = opts.max_in_flight {
        options.insert("max_in_flight".into(), json!(m));
    }
    if !opts.instance_steps.is_empty() {
        let steps: Vec<Value> = opts
            .instance_steps
            .iter()
            .map(|w| json!({ "instance_weight": w }))
            .collect();
        options.insert("canary".into(), json!({ "steps": steps }));
    }
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    body
}

/// The app's newest ACTIVE deployment, else CF's error.
pub async fn active_deployment(ctx: &Ctx, app_guid: &str) -> Result<Deployment> {
    let mut all: Vec<Deployment> = ctx
        .client
        .list(&format!(
            "/v3/deployments?app_guids={app_guid}&status_values=ACTIVE"
        ))
        .await?;
    all.retain(|d| d.value() == "ACTIVE" && !d.guid.is_empty());
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    all.pop()
        .ok_or_else(|| CliError::other("No active deployment found for app."))
}

/// Polls the deployment until [`outcome`] says it ended (or paused),
/// printing a progress line whenever it changes. There is no deadline but
/// a generous safety (`CF_DEPLOYMENT_TIMEOUT`, 30 min): the platform's own
/// progress deadline ends a deployment that does not come up.
pub async fn wait(
    ctx: &Ctx,
    app: &str,
    first: Deployment,
    no_wait: bool,
    paused_at: Option<i64>,
) -> Result<(Outcome, Deployment)> {
    let started = Instant::now();
    let safety = Duration::from_secs(env_secs("CF_DEPLOYMENT_TIMEOUT", 1800));
    let mut backoff = Backoff::new(Duration::from_millis(500));
    let mut last: Option<String> = None;
    let mut away_since: Option<Instant> = None;
    let guid = first.guid.clone();
    let mut d = first;
    loop {
        if let Some(line) = progress_line(&d) {
            if last.as_deref() != Some(line.as_str()) {
                println!("{line}");
                last = Some(line);
            }
        }
        let o = outcome(&d, no_wait, paused_at);
        if o != Outcome::Waiting {
            return Ok((o, d));
        }
        if started.elapsed() > safety {
            return Err(CliError::other(format!(
                "Stopped waiting for the deployment of app {app} after {} minutes; it goes on.\n\nTIP: Run 'cf app {app}' to view app status, or 'cf cancel-deployment {app}' to stop it.",
                safety.as_secs() / 60
            )));
        }
        backoff.wait().await;
        if let Some(next) =
            get_waiting(ctx, &format!("/v3/deployments/{guid}"), &mut away_since).await?
        {
            d = next;
        }
    }
}

/// The command a deployment runs for: its first line and its ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Push,
    Restart,
    Rollback,
    Continue,
}

/// Creates the deployment of `app` running `source`, follows it, and ends
/// as CF v8 does: the app (and the active deployment while it is paused or
/// left running with `--no-wait`), or the reason it failed.
pub async fn deploy(
    ctx: &Ctx,
    app: &App,
    source: Source,
    opts: &DeployOpts,
    flavor: Flavor,
) -> Result<()> {
    if flavor == Flavor::Push {
        println!("\nStarting deployment for app {}...", app.name);
    } else {
        println!("Creating deployment for app {}...\n", app.name);
    }
    let d: Deployment = ctx
        .client
        .post("/v3/deployments", create_body(&app.guid, &source, opts))
        .await?;
    if d.guid.is_empty() {
        return Err(CliError::Decode("the new deployment has no guid".into()));
    }
    println!("Waiting for app to deploy...\n");
    let (o, last) = wait(ctx, &app.name, d, opts.no_wait, None).await?;
    finish(ctx, app, &o, &last, opts.strategy, flavor).await
}

async fn finish(
    ctx: &Ctx,
    app: &App,
    o: &Outcome,
    last: &Deployment,
    strategy: Strategy,
    flavor: Flavor,
) -> Result<()> {
    if let Some(why) = failure_text(o, &app.name) {
        return Err(CliError::other(why));
    }
    println!();
    if *o == Outcome::FirstRunning && strategy != Strategy::Canary && flavor == Flavor::Restart {
        println!("First instance restaged correctly, restaging remaining in the background\n");
    }
    print_app(ctx, &app.guid).await?;
    if *o != Outcome::Deployed {
        print!("\n{}", active_block(last, &app.name));
    }
    match flavor {
        Flavor::Rollback => ok(),
        Flavor::Continue => println!("\nTIP: Run 'cf app {}' to view app status.", app.name),
        Flavor::Push | Flavor::Restart => {}
    }
    Ok(())
}

/// `cf cancel-deployment APP`.
pub async fn cancel(args: CancelArgs) -> Result<()> {
    cancel_in(&Ctx::load()?, &args).await
}

async fn cancel_in(ctx: &Ctx, args: &CancelArgs) -> Result<()> {
    println!(
        "Canceling deployment for app {} {}...",
        args.name,
        ctx.where_()
    );
    let app = find_app(ctx, &args.name).await?;
    let d = active_deployment(ctx, &app.guid).await?;
    let _: Value = ctx
        .client
        .post(
            &format!("/v3/deployments/{}/actions/cancel", d.guid),
            json!({}),
        )
        .await?;
    ok();
    println!("TIP: Run 'cf app {}' to view app status.", args.name);
    Ok(())
}

/// `cf continue-deployment APP [--no-wait]`.
pub async fn continue_(args: ContinueArgs) -> Result<()> {
    continue_in(&Ctx::load()?, &args).await
}

async fn continue_in(ctx: &Ctx, args: &ContinueArgs) -> Result<()> {
    println!(
        "Continuing deployment for app {} {}...\n",
        args.name,
        ctx.where_()
    );
    let app = find_app(ctx, &args.name).await?;
    let d = active_deployment(ctx, &app.guid).await?;
    let paused_at = d.canary_steps().map(|s| s.current);
    let answer: Value = ctx
        .client
        .post(
            &format!("/v3/deployments/{}/actions/continue", d.guid),
            json!({}),
        )
        .await?;
    // The answer is the deployment; read it again when it is not.
    let next = match serde_json::from_value::<Deployment>(answer) {
        Ok(n) if n.guid == d.guid => n,
        _ => {
            ctx.client
                .get(&format!("/v3/deployments/{}", d.guid))
                .await?
        }
    };
    println!("Waiting for app to deploy...\n");
    let strategy = match next.strategy.as_deref() {
        Some("canary") => Strategy::Canary,
        _ => Strategy::Rolling,
    };
    let (o, last) = wait(ctx, &app.name, next, args.no_wait, paused_at).await?;
    finish(ctx, &app, &o, &last, strategy, Flavor::Continue).await
}

#[cfg(test)]
mod tests {
    use super::super::services::test_server::{cf_error, page, reply, Script, Server};
    use super::*;

    fn dep(v: Value) -> Deployment {
        serde_json::from_value(v).expect("deployment")
    }

    fn full(value: &str, reason: &str, error: Value, inst: Value) -> Deployment {
        dep(json!({
            "guid": "d-1",
            "state": "DEPLOYING",
            "status": {
                "value": value,
                "reason": reason,
                "details": {
                    "last_successful_healthcheck": "2026-11-22T03:00:00Z",
                    "last_status_change": "2026-11-22T03:00:00Z",
                    "error": error,
                    "instances": inst
                }
            },
            "strategy": "rolling",
            "options": {"max_in_flight": 1},
            "droplet": {"guid": "dr-2"},
            "previous_droplet": {"guid": "dr-1"},
            "new_processes": [{"guid": "p-2", "type": "web"}],
            "revision": null,
            "created_at": "2026-11-22T03:00:00Z",
            "updated_at": "2026-11-22T03:00:00Z",
            "relationships": {"app": {"data": {"guid": "a-1"}}},
            "links": {"self": {"href": "x"}}
        }))
    }

    fn inst(new_running: i64, new_total: i64, target: i64, old: i64) -> Value {
        json!({"new_running": new_running, "new_total": new_total, "target": target, "old_serving": old})
    }

    #[test]
    fn outcomes_of_deployment_json() {
        let none = Value::Null;
        let i = inst(0, 1, 4, 4);
        assert_eq!(
            outcome(
                &full("ACTIVE", "DEPLOYING", none.clone(), i.clone()),
                false,
                None
            ),
            Outcome::Waiting
        );
        assert_eq!(
            outcome(
                &full("FINALIZED", "DEPLOYED", none.clone(), i.clone()),
                false,
                None
            ),
            Outcome::Deployed
        );
        assert_eq!(
            outcome(
                &full("FINALIZED", "CANCELED", none.clone(), i.clone()),
                false,
                None
            ),
            Outcome::Canceled
        );
        assert_eq!(
            outcome(
                &full("FINALIZED", "SUPERSEDED", none.clone(), i.clone()),
                false,
                None
            ),
            Outcome::Superseded
        );
        let e = json!("rolled back: 3 new instances crashed; last exit status 1");
        assert_eq!(
            outcome(
                &full("FINALIZED", "CANCELED", e.clone(), i.clone()),
                false,
                None
            ),
            Outcome::RolledBack("rolled back: 3 new instances crashed; last exit status 1".into())
        );
        // An empty error is no error.
        assert_eq!(
            outcome(
                &full("FINALIZED", "CANCELED", json!(" "), i.clone()),
                false,
                None
            ),
            Outcome::Canceled
        );
        // Canceling goes on until it is FINALIZED, also with --no-wait.
        assert_eq!(
            outcome(
                &full("ACTIVE", "CANCELING", e, inst(2, 2, 4, 4)),
                true,
                None
            ),
            Outcome::Waiting
        );
        assert_eq!(
            outcome(&full("FINALIZED", "WHATEVER", none, i), false, None),
            Outcome::Ended("WHATEVER".into())
        );
    }

    #[test]
    fn no_wait_ends_at_the_first_new_instance() {
        let d = full("ACTIVE", "DEPLOYING", Value::Null, inst(0, 1, 4, 4));
        assert_eq!(outcome(&d, true, None), Outcome::Waiting);
        let d = full("ACTIVE", "DEPLOYING", Value::Null, inst(1, 2, 4, 4));
        assert_eq!(outcome(&d, true, None), Outcome::FirstRunning);
        assert_eq!(outcome(&d, false, None), Outcome::Waiting);
        // Without progress details, --no-wait waits for the end.
        let d = dep(json!({"guid": "d", "status": {"value": "ACTIVE", "reason": "DEPLOYING"}}));
        assert_eq!(outcome(&d, true, None), Outcome::Waiting);
    }

    #[test]
    fn a_paused_canary_stops_the_wait_but_not_at_the_step_just_continued() {
        let d = dep(json!({
            "guid": "d", "strategy": "canary",
            "status": {"value": "ACTIVE", "reason": "PAUSED", "details": {}, "canary": {"steps": {"current": 1, "total": 3}}}
        }));
        assert_eq!(outcome(&d, false, None), Outcome::Paused);
        assert_eq!(outcome(&d, true, None), Outcome::Paused);
        assert_eq!(outcome(&d, false, Some(1)), Outcome::Waiting);
        assert_eq!(outcome(&d, false, Some(0)), Outcome::Paused);
    }

    #[test]
    fn the_deprecated_state_alone_is_understood() {
        let s = |state: &str| outcome(&dep(json!({"guid": "d", "state": state})), false, None);
        assert_eq!(s("DEPLOYED"), Outcome::Deployed);
        assert_eq!(s("CANCELED"), Outcome::Canceled);
        assert_eq!(s("DEPLOYING"), Outcome::Waiting);
        assert_eq!(s("CANCELING"), Outcome::Waiting);
    }

    #[test]
    fn odd_json_is_read_without_failing() {
        // Nulls and missing objects everywhere.
        let d = dep(
            json!({"guid": "d", "status": {"value": null, "reason": null, "details": {"instances": null}, "canary": null}, "options": {}, "strategy": null}),
        );
        assert_eq!(outcome(&d, true, None), Outcome::Waiting);
        assert_eq!(progress_line(&d), None);
        // Counts below zero read as zero.
        let d = dep(
            json!({"status": {"details": {"instances": {"new_running": -1, "target": 2, "old_serving": -2}}}}),
        );
        assert_eq!(
            progress_line(&d).as_deref(),
            Some("0 of 2 new instances running, 0 old instances serving")
        );
    }

    #[test]
    fn progress_lines() {
        let d = full("ACTIVE", "DEPLOYING", Value::Null, inst(2, 3, 4, 2));
        assert_eq!(
            progress_line(&d).as_deref(),
            Some("2 of 4 new instances running, 2 old instances serving")
        );
        let d = full("ACTIVE", "DEPLOYING", Value::Null, inst(0, 1, 1, 1));
        assert_eq!(
            progress_line(&d).as_deref(),
            Some("0 of 1 new instances running, 1 old instance serving")
        );
        // No target yet: the new instances so far.
        let d = full("ACTIVE", "DEPLOYING", Value::Null, inst(0, 2, 0, 0));
        assert_eq!(
            progress_line(&d).as_deref(),
            Some("0 of 2 new instances running, 0 old instances serving")
        );
    }

    #[test]
    fn the_paused_canary_block_reads_like_cf() {
        let d = dep(json!({
            "guid": "d", "strategy": "canary", "options": {"max_in_flight": 2},
            "status": {"value": "ACTIVE", "reason": "PAUSED",
                "details": {"last_status_change": "2026-11-22T03:00:00Z"},
                "canary": {"steps": {"current": 1, "total": 3}}}
        }));
        assert_eq!(
            active_block(&d, "myapp"),
            "Active deployment with status PAUSED (since Sun 22 Nov 03:00:00 UTC 2026)\n\
             strategy:        canary\n\
             max-in-flight:   2\n\
             canary-steps:    1/3\n\
             \n\
             Please run `cf continue-deployment myapp` to promote the canary deployment, or `cf cancel-deployment myapp` to rollback to the previous version.\n"
        );
        let d = dep(
            json!({"guid": "d", "strategy": "rolling", "status": {"value": "ACTIVE", "reason": "DEPLOYING"}}),
        );
        assert_eq!(
            active_block(&d, "myapp"),
            "Active deployment with status DEPLOYING.\nstrategy:   rolling\n"
        );
    }

    #[test]
    fn failure_texts() {
        let t = failure_text(
            &Outcome::RolledBack("rolled back: 3 new instances crashed; last exit status 1".into()),
            "a",
        );
        assert_eq!(
            t.as_deref(),
            Some("Deployment was rolled back: rolled back: 3 new instances crashed; last exit status 1\n\nTIP: use 'cf logs a --recent' for more information")
        );
        assert_eq!(
            failure_text(&Outcome::Canceled, "a").as_deref(),
            Some("Deployment has been canceled.\n\nTIP: use 'cf logs a --recent' for more information")
        );
        assert_eq!(failure_text(&Outcome::Deployed, "a"), None);
        assert_eq!(failure_text(&Outcome::Paused, "a"), None);
        assert_eq!(failure_text(&Outcome::FirstRunning, "a"), None);
    }

    fn flags(strategy: Option<&str>, mif: Option<i64>, steps: Option<&str>) -> StrategyFlags {
        StrategyFlags {
            strategy: strategy.map(str::to_string),
            max_in_flight: mif,
            instance_steps: steps.map(str::to_string),
            no_wait: false,
        }
    }

    fn err(of: FlagsOf, f: StrategyFlags) -> String {
        match check_flags(of, &f) {
            Err(e) => e.to_string(),
            Ok(o) => panic!("accepted: {o:?}"),
        }
    }

    #[test]
    fn strategy_flags_are_checked_with_cf_texts() {
        use FlagsOf::*;
        assert_eq!(
            check_flags(Push, &flags(None, None, None)).expect("ok"),
            None
        );
        assert_eq!(
            check_flags(Push, &flags(Some("null"), None, None)).expect("ok"),
            None
        );
        assert_eq!(
            check_flags(Push, &flags(Some("Rolling"), Some(2), None)).expect("ok"),
            Some(DeployOpts {
                strategy: Strategy::Rolling,
                max_in_flight: Some(2),
                instance_steps: vec![],
                no_wait: false
            })
        );
        assert_eq!(
            check_flags(Restart, &flags(Some("canary"), None, Some("10,50"))).expect("ok"),
            Some(DeployOpts {
                strategy: Strategy::Canary,
                max_in_flight: None,
                instance_steps: vec![10, 50],
                no_wait: false
            })
        );
        assert_eq!(
            err(Push, flags(Some("blue-green"), None, None)),
            "Incorrect Usage: STRATEGY must be \"canary\", \"rolling\" or not set"
        );
        assert_eq!(
            err(Push, flags(None, Some(2), None)),
            "Incorrect Usage: '--max-in-flight' and '--strategy' must be used together."
        );
        assert_eq!(
            err(Restart, flags(Some("rolling"), Some(0), None)),
            "Incorrect Usage: --max-in-flight must be greater than or equal to 1"
        );
        assert_eq!(
            err(Push, flags(Some("rolling"), Some(-3), None)),
            "Incorrect Usage: --max-in-flight must be greater than or equal to 1"
        );
        assert_eq!(
            err(Push, flags(Some("rolling"), None, Some("10"))),
            "Incorrect Usage: The following arguments cannot be used together: --instance-steps, --strategy=rolling or --strategy not provided"
        );
        assert_eq!(
            err(Push, flags(None, None, Some("10"))),
            "Incorrect Usage: The following arguments cannot be used together: --instance-steps, --strategy=rolling or --strategy not provided"
        );
        assert_eq!(
            err(Restart, flags(Some("rolling"), None, Some("10"))),
            "Incorrect Usage: '--instance-steps' and '--strategy=canary' must be used together."
        );
        assert_eq!(
            err(Push, flags(Some("canary"), None, Some("10,x"))),
            "Incorrect Usage: Value for --instance-steps must be list of weights"
        );
        assert_eq!(
            err(Push, flags(Some("canary"), None, Some("0,50"))),
            "Incorrect Usage: --instance-steps weights must be between 1 and 100 (got 0)"
        );
        assert_eq!(
            err(Push, flags(Some("canary"), None, Some("10,101"))),
            "Incorrect Usage: --instance-steps weights must be between 1 and 100 (got 101)"
        );
        assert_eq!(
            err(Push, flags(Some("canary"), None, Some("50,10"))),
            "Incorrect Usage: --instance-steps weights must be in ascending order (e.g. 20,40,60)"
        );
        assert_eq!(
            err(Push, flags(Some("canary"), None, Some("50,50"))),
            "Incorrect Usage: --instance-steps weights must be in ascending order (e.g. 20,40,60)"
        );
        assert_eq!(
            parse_steps(" 20, 40 ,100").expect("steps"),
            vec![20, 40, 100]
        );
    }

    #[test]
    fn rollback_is_rolling_by_default_and_takes_max_in_flight_alone() {
        use FlagsOf::Rollback;
        assert_eq!(
            check_flags(Rollback, &flags(None, Some(3), None)).expect("ok"),
            Some(DeployOpts {
                strategy: Strategy::Rolling,
                max_in_flight: Some(3),
                instance_steps: vec![],
                no_wait: false
            })
        );
        assert_eq!(
            err(Rollback, flags(None, Some(0), None)),
            "Incorrect Usage: --max-in-flight must be greater than or equal to 1"
        );
        assert_eq!(
            err(Rollback, flags(None, None, Some("10"))),
            "Incorrect Usage: '--instance-steps' and '--strategy=canary' must be used together."
        );
    }

    #[test]
    fn create_bodies() {
        let rolling = DeployOpts {
            strategy: Strategy::Rolling,
            max_in_flight: None,
            instance_steps: vec![],
            no_wait: false,
        };
        assert_eq!(
            create_body("a-1", &Source::Current, &rolling),
            json!({"strategy": "rolling", "relationships": {"app": {"data": {"guid": "a-1"}}}})
        );
        assert_eq!(
            create_body("a-1", &Source::Revision("r-1".into()), &rolling)["revision"],
            json!({"guid": "r-1"})
        );
        let canary = DeployOpts {
            strategy: Strategy::Canary,
            max_in_flight: Some(2),
            instance_steps: vec![25, 50],
            no_wait: true,
        };
        assert_eq!(
            create_body("a-1", &Source::Droplet("dr-1".into()), &canary),
            json!({
                "strategy": "canary",
                "droplet": {"guid": "dr-1"},
                "options": {"max_in_flight": 2, "canary": {"steps": [{"instance_weight": 25}, {"instance_weight": 50}]}},
                "relationships": {"app": {"data": {"guid": "a-1"}}}
            })
        );
    }

    fn deploying(running: i64) -> Value {
        json!({"guid": "d-1", "strategy": "rolling", "status": {"value": "ACTIVE", "reason": "DEPLOYING",
            "details": {"instances": {"new_running": running, "new_total": 2, "target": 2, "old_serving": 2 - running}}}})
    }

    #[tokio::test]
    async fn wait_follows_the_deployment_to_its_end() {
        let s = Server::start(Script::default().on(
            "GET",
            "/v3/deployments/d-1",
            vec![
                reply(200, deploying(0)),
                reply(502, Value::Null),
                reply(200, deploying(1)),
                reply(
                    200,
                    json!({"guid": "d-1", "status": {"value": "FINALIZED", "reason": "DEPLOYED"}}),
                ),
            ],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let ctx = s.ctx(dir.path());
        let first = dep(deploying(0));
        let (o, last) = wait(&ctx, "a", first, false, None).await.expect("wait");
        assert_eq!(o, Outcome::Deployed);
        assert_eq!(last.reason(), "DEPLOYED");
        assert_eq!(s.lines().len(), 4);
    }

    #[tokio::test]
    async fn wait_ends_with_the_rollback_reason() {
        let s = Server::start(Script::default().on(
            "GET",
            "/v3/deployments/d-1",
            vec![reply(
                200,
                json!({"guid": "d-1", "status": {"value": "FINALIZED", "reason": "CANCELED",
                "details": {"error": "rolled back: 3 new instances crashed; last exit status 1"}}}),
            )],
        ))
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let (o, _) = wait(&s.ctx(dir.path()), "a", dep(deploying(0)), false, None)
            .await
            .expect("wait");
        assert_eq!(
            o,
            Outcome::RolledBack("rolled back: 3 new instances crashed; last exit status 1".into())
        );
    }

    #[tokio::test]
    async fn the_active_deployment_is_the_newest_and_none_is_cf_s_error() {
        let s = Server::start(
            Script::default()
                .on(
                    "GET",
                    "/v3/deployments?app_guids=a-1&status_values=ACTIVE",
                    vec![page(
                        json!([
                            {"guid": "old", "created_at": "2026-11-22T03:00:00Z", "status": {"value": "ACTIVE", "reason": "DEPLOYING"}},
                            {"guid": "new", "created_at": "2026-11-22T04:00:00Z", "status": {"value": "ACTIVE", "reason": "PAUSED"}}
                        ]),
                        json!({}),
                    )],
                )
                .on(
                    "GET",
                    "/v3/deployments?app_guids=a-2",
                    vec![page(json!([]), json!({}))],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let ctx = s.ctx(dir.path());
        assert_eq!(
            active_deployment(&ctx, "a-1").await.expect("active").guid,
            "new"
        );
        let e = active_deployment(&ctx, "a-2").await.expect_err("none");
        assert_eq!(e.to_string(), "No active deployment found for app.");
    }

    /// An app `a` (guid a-1) with no routes, processes or droplet, so
    /// that the `cf app` block needs nothing more.
    fn app_script() -> Script {
        Script::default()
            .on(
                "GET",
                "/v3/apps?names=a",
                vec![page(
                    json!([{"guid": "a-1", "name": "a", "state": "STARTED"}]),
                    json!({}),
                )],
            )
            .on(
                "GET",
                "/v3/apps/a-1/routes",
                vec![page(json!([]), json!({}))],
            )
            .on(
                "GET",
                "/v3/apps/a-1/processes",
                vec![page(json!([]), json!({}))],
            )
            .on(
                "GET",
                "/v3/apps/a-1/droplets/current",
                vec![cf_error(404, "no droplet")],
            )
            .on(
                "GET",
                "/v3/apps/a-1",
                vec![reply(
                    200,
                    json!({"guid": "a-1", "name": "a", "state": "STARTED"}),
                )],
            )
    }

    fn paused(step: i64) -> Value {
        json!({"guid": "d-1", "strategy": "canary", "created_at": "2026-11-22T03:00:00Z",
            "status": {"value": "ACTIVE", "reason": "PAUSED", "details": {},
                "canary": {"steps": {"current": step, "total": 3}}}})
    }

    #[tokio::test]
    async fn continue_posts_and_waits_for_the_next_pause() {
        let s = Server::start(
            app_script()
                .on(
                    "GET",
                    "/v3/deployments?app_guids=a-1&status_values=ACTIVE",
                    vec![page(json!([paused(1)]), json!({}))],
                )
                // The answer still reads the old step; the next pause ends the wait.
                .on(
                    "POST",
                    "/v3/deployments/d-1/actions/continue",
                    vec![reply(200, paused(1))],
                )
                .on(
                    "GET",
                    "/v3/deployments/d-1",
                    vec![reply(200, paused(1)), reply(200, paused(2))],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let args = ContinueArgs {
            name: "a".into(),
            no_wait: false,
        };
        continue_in(&s.ctx(dir.path()), &args)
            .await
            .expect("continue");
        let lines = s.lines();
        assert!(
            lines.contains(&"POST /v3/deployments/d-1/actions/continue".to_string()),
            "{lines:?}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| *l == "GET /v3/deployments/d-1")
                .count(),
            2,
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_continue_fails_with_the_api_detail() {
        let s = Server::start(
            app_script()
                .on(
                    "GET",
                    "/v3/deployments?app_guids=a-1&status_values=ACTIVE",
                    vec![page(json!([deploying(0)]), json!({}))],
                )
                .on(
                    "POST",
                    "/v3/deployments/d-1/actions/continue",
                    vec![cf_error(
                        422,
                        "Cannot continue a deployment with status: ACTIVE and reason: DEPLOYING.",
                    )],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let args = ContinueArgs {
            name: "a".into(),
            no_wait: false,
        };
        let e = continue_in(&s.ctx(dir.path()), &args)
            .await
            .expect_err("422");
        assert_eq!(
            e.to_string(),
            "Cannot continue a deployment with status: ACTIVE and reason: DEPLOYING."
        );
    }

    #[tokio::test]
    async fn cancel_posts_to_the_active_deployment() {
        let s = Server::start(
            app_script()
                .on(
                    "GET",
                    "/v3/deployments?app_guids=a-1&status_values=ACTIVE",
                    vec![page(json!([deploying(1)]), json!({}))],
                )
                .on(
                    "POST",
                    "/v3/deployments/d-1/actions/cancel",
                    vec![reply(200, Value::Null)],
                ),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        cancel_in(&s.ctx(dir.path()), &CancelArgs { name: "a".into() })
            .await
            .expect("cancel");
        assert_eq!(
            s.lines().last().map(String::as_str),
            Some("POST /v3/deployments/d-1/actions/cancel")
        );
    }

    #[tokio::test]
    async fn a_canceled_deploy_fails_and_a_deployed_one_prints_the_app() {
        let rolling = DeployOpts {
            strategy: Strategy::Rolling,
            max_in_flight: None,
            instance_steps: vec![],
            no_wait: false,
        };
        let app = App {
            guid: "a-1".into(),
            name: "a".into(),
            state: "STARTED".into(),
            ..App::default()
        };
        let s = Server::start(
            app_script()
                .on("POST", "/v3/deployments", vec![reply(201, deploying(0))])
                .on("GET", "/v3/deployments/d-1", vec![reply(200, json!({"guid": "d-1", "status": {"value": "FINALIZED", "reason": "CANCELED", "details": {"error": null}}}))]),
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let e = deploy(
            &s.ctx(dir.path()),
            &app,
            Source::Current,
            &rolling,
            Flavor::Restart,
        )
        .await
        .expect_err("canceled");
        assert_eq!(
            e.to_string(),
            "Deployment has been canceled.\n\nTIP: use 'cf logs a --recent' for more information"
        );
        let s = Server::start(
            app_script()
                .on("POST", "/v3/deployments", vec![reply(201, deploying(0))])
                .on("GET", "/v3/deployments/d-1", vec![reply(200, json!({"guid": "d-1", "status": {"value": "FINALIZED", "reason": "DEPLOYED"}}))]),
        )
        .await;
        deploy(
            &s.ctx(dir.path()),
            &app,
            Source::Droplet("dr-2".into()),
            &rolling,
            Flavor::Push,
        )
        .await
        .expect("deployed");
        let post = s
            .seen()
            .into_iter()
            .find(|r| r.method == "POST")
            .expect("post");
        assert_eq!(
            post.body.map(|b| b["droplet"].clone()),
            Some(json!({"guid": "dr-2"}))
        );
        assert!(s.lines().contains(&"GET /v3/apps/a-1".to_string()));
    }
}
