//! Services (docs/architecture.md §5.11): the jobs that talk to brokers
//! (catalog sync, provision, update, deprovision, bind, unbind), with
//! last-operation polling, the maximum polling duration and orphan
//! mitigation; and an app's `VCAP_SERVICES`. A job's row is written before
//! it runs and after each step, so a controller that restarts resumes it
//! (`resume`); the broker's operations are idempotent by id.

pub mod osb;
pub mod vcap;

use std::time::Duration;

use serde_json::{json, Value};

use crate::context::Ctx;
use crate::store::{
    self, Binding, Instance, JobRow, Offering, Plan, StoreError, JOB_COMPLETE, JOB_FAILED,
    JOB_POLLING, OP_FAILED, OP_IN_PROGRESS, OP_SUCCEEDED,
};
use osb::{Identity, Ids, OsbError, Outcome};

pub const OP_BROKER_SYNC: &str = "service_broker.catalog.synchronize";
pub const OP_BROKER_DELETE: &str = "service_broker.delete";
pub const OP_INSTANCE_CREATE: &str = "service_instance.create";
pub const OP_INSTANCE_UPDATE: &str = "service_instance.update";
pub const OP_INSTANCE_DELETE: &str = "service_instance.delete";
pub const OP_BINDING_CREATE: &str = "service_bindings.create";
pub const OP_BINDING_DELETE: &str = "service_bindings.delete";

/// What a job does.
#[derive(Debug, Clone)]
pub enum Work {
    SyncCatalog,
    DeleteBroker,
    Provision,
    /// A new plan (broker ids are read from it) and parameters; not
    /// resumable after a restart (the job then fails).
    Update {
        plan_guid: Option<String>,
        parameters: Option<Value>,
    },
    Deprovision,
    Bind,
    Unbind,
}

impl Work {
    pub fn operation(&self) -> &'static str {
        match self {
            Work::SyncCatalog => OP_BROKER_SYNC,
            Work::DeleteBroker => OP_BROKER_DELETE,
            Work::Provision => OP_INSTANCE_CREATE,
            Work::Update { .. } => OP_INSTANCE_UPDATE,
            Work::Deprovision => OP_INSTANCE_DELETE,
            Work::Bind => OP_BINDING_CREATE,
            Work::Unbind => OP_BINDING_DELETE,
        }
    }

    fn resource_type(&self) -> &'static str {
        match self {
            Work::SyncCatalog | Work::DeleteBroker => "service_brokers",
            Work::Provision | Work::Update { .. } | Work::Deprovision => "service_instances",
            Work::Bind | Work::Unbind => "service_credential_bindings",
        }
    }

    /// The work of a job row found unfinished at start-up.
    fn resumed(operation: &str) -> Option<Work> {
        Some(match operation {
            OP_BROKER_SYNC => Work::SyncCatalog,
            OP_BROKER_DELETE => Work::DeleteBroker,
            OP_INSTANCE_CREATE => Work::Provision,
            OP_INSTANCE_DELETE => Work::Deprovision,
            OP_BINDING_CREATE => Work::Bind,
            OP_BINDING_DELETE => Work::Unbind,
            _ => return None,
        })
    }
}

/// A CF error a failed job carries.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub code: u32,
    pub title: &'static str,
    pub detail: String,
}

impl JobError {
    fn unable(detail: String) -> JobError {
        JobError {
            code: 10009,
            title: "CF-UnableToPerform",
            detail,
        }
    }

    fn internal(e: impl std::fmt::Display) -> JobError {
        tracing::error!(error = %e, "service job");
        JobError {
            code: 10001,
            title: "UnknownError",
            detail: "An unknown error occurred.".into(),
        }
    }

    /// A catalog fetch's failure, as CF reports it on the broker's job.
    fn catalog(e: &OsbError) -> JobError {
        let (code, title) = match e {
            OsbError::Unreachable => (10001, "CF-ServiceBrokerApiUnreachable"),
            OsbError::Rejected { .. } | OsbError::Conflict(_) | OsbError::Unprocessable { .. } => {
                (270020, "CF-ServiceBrokerRequestRejected")
            }
            OsbError::Malformed(_) => (270021, "CF-ServiceBrokerRequestMalformed"),
            OsbError::CatalogInvalid(_) => (270012, "CF-ServiceBrokerCatalogInvalid"),
        };
        JobError {
            code,
            title,
            detail: e.to_string(),
        }
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::internal(e)
    }
}

type JobResult = Result<(), JobError>;

/// Writes a job row and runs it in the background.
pub async fn start(
    ctx: &Ctx,
    work: Work,
    resource_guid: &str,
    who: Identity,
) -> Result<JobRow, StoreError> {
    let job = ctx
        .store
        .create_job(work.operation(), work.resource_type(), resource_guid)
        .await?;
    spawn(ctx.clone(), job.clone(), work, who);
    Ok(job)
}

fn spawn(ctx: Ctx, job: JobRow, work: Work, who: Identity) {
    tokio::spawn(async move {
        let result = run(&ctx, &job, &work, &who).await;
        let (state, errors) = match result {
            Ok(()) => (JOB_COMPLETE, json!([])),
            Err(e) => (
                JOB_FAILED,
                json!([{"code": e.code, "title": e.title, "detail": e.detail}]),
            ),
        };
        if let Err(e) = ctx
            .store
            .set_job_state(&job.guid, state, &errors.to_string())
            .await
        {
            tracing::error!(job = %job.guid, error = %e, "cannot record a job's end");
        }
        tracing::info!(job = %job.guid, operation = %job.operation, resource = %job.resource_guid, state, "service job ended");
    });
}

/// Resumes the jobs a stopped controller left unfinished.
pub async fn resume(ctx: &Ctx) -> Result<usize, StoreError> {
    let jobs = ctx.store.unfinished_jobs().await?;
    let n = jobs.len();
    for job in jobs {
        match Work::resumed(&job.operation) {
            Some(work) => spawn(ctx.clone(), job, work, Identity::default()),
            None => {
                let errors = json!([{"code": 10009, "title": "CF-UnableToPerform",
                    "detail": format!("{} was interrupted by a restart of the cloud controller; try again", job.operation)}]);
                if job.operation == OP_INSTANCE_UPDATE {
                    let _ = ctx
                        .store
                        .set_instance_op(&job.resource_guid, OP_FAILED, "interrupted", None)
                        .await;
                }
                ctx.store
                    .set_job_state(&job.guid, JOB_FAILED, &errors.to_string())
                    .await?;
            }
        }
    }
    Ok(n)
}

async fn run(ctx: &Ctx, job: &JobRow, work: &Work, who: &Identity) -> JobResult {
    let g = job.resource_guid.as_str();
    match work {
        Work::SyncCatalog => sync_catalog(ctx, g).await,
        Work::DeleteBroker => Ok(ctx.store.delete_broker(g).await?),
        Work::Provision => provision(ctx, job, g, who).await,
        Work::Update {
            plan_guid,
            parameters,
        } => update(ctx, job, g, plan_guid.as_deref(), parameters.as_ref(), who).await,
        Work::Deprovision => deprovision(ctx, job, g, who).await,
        Work::Bind => bind(ctx, job, g, who).await,
        Work::Unbind => unbind(ctx, job, g, who)
            .await
            .map_err(|e| JobError::unable(format!("unbind could not be completed: {e}"))),
    }
}

fn osb_broker(b: &store::Broker) -> osb::Broker {
    osb::Broker {
        url: b.url.clone(),
        username: b.username.clone(),
        password: b.password.clone(),
    }
}

fn client(ctx: &Ctx) -> Result<&osb::Client, JobError> {
    ctx.osb().map_err(JobError::internal)
}

async fn sync_catalog(ctx: &Ctx, broker_guid: &str) -> JobResult {
    let b = ctx.store.broker(broker_guid).await?;
    let catalog = client(ctx)?
        .catalog(&osb_broker(&b))
        .await
        .map_err(|e| JobError::catalog(&e))?;
    ctx.store.sync_catalog(&b.guid, &catalog).await?;
    Ok(())
}

/// A managed instance's plan, offering and broker.
struct Managed {
    plan: Plan,
    offering: Offering,
    broker: osb::Broker,
}

async fn managed(ctx: &Ctx, plan_guid: Option<&str>) -> Result<Managed, JobError> {
    let plan_guid =
        plan_guid.ok_or_else(|| JobError::internal("a managed instance has no plan"))?;
    let plan = ctx.store.plan(plan_guid).await?;
    let offering = ctx.store.offering(&plan.offering_guid).await?;
    let broker = ctx.store.broker(&offering.broker_guid).await?;
    Ok(Managed {
        plan,
        offering,
        broker: osb_broker(&broker),
    })
}

/// OSB's `context` for an instance (CF's profile).
async fn context(ctx: &Ctx, i: &Instance) -> Result<Value, StoreError> {
    let space = ctx.store.space(&i.space_guid).await?;
    let org = ctx.store.org(&space.organization_guid).await?;
    Ok(json!({
        "platform": "cloudfoundry",
        "organization_guid": org.guid,
        "organization_name": org.name,
        "space_guid": space.guid,
        "space_name": space.name,
        "instance_name": i.name,
    }))
}

fn parse_object(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

/// How a poll ended.
enum Polled {
    Succeeded,
    Failed(String),
    /// 410 (only a delete's poll takes it as success).
    Gone,
    TimedOut,
}

/// Polls `last_operation` until it ends or the plan's (or the platform's)
/// maximum polling duration since `since` (RFC 3339) passes. An
/// unreachable broker is polled again: a broker restarted mid-operation
/// answers once it is back.
async fn poll(
    ctx: &Ctx,
    job: &JobRow,
    m: &Managed,
    ids: &Ids<'_>,
    op: Option<&str>,
    since: &str,
) -> Result<Polled, JobError> {
    ctx.store
        .set_job_state(&job.guid, JOB_POLLING, "[]")
        .await?;
    let max_s = m
        .plan
        .maximum_polling_duration
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(ctx.cfg.broker_max_poll_s);
    let started = chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let deadline =
        started + chrono::Duration::seconds(i64::try_from(max_s).unwrap_or(i64::MAX / 2));
    // Quick first polls (most brokers finish in moments), doubling up to
    // the configured interval; a broker's Retry-After wins.
    let interval = Duration::from_secs(ctx.cfg.broker_poll_interval_s.max(1));
    let mut backoff = Duration::from_millis(250).min(interval);
    let mut wait = backoff;
    let http = client(ctx)?;
    loop {
        let left = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return Ok(Polled::TimedOut);
        }
        tokio::time::sleep(wait.min(left)).await;
        if chrono::Utc::now() >= deadline {
            return Ok(Polled::TimedOut);
        }
        backoff = (backoff * 2).min(interval);
        wait = backoff;
        match http.last_operation(&m.broker, ids, op).await {
            Ok(last) => {
                if let Some(r) = last.retry_after {
                    wait = r.clamp(Duration::from_secs(1), Duration::from_secs(3600));
                }
                match last.state.as_str() {
                    "succeeded" => return Ok(Polled::Succeeded),
                    "failed" => return Ok(Polled::Failed(last.description)),
                    "gone" => return Ok(Polled::Gone),
                    _ => {}
                }
            }
            Err(e) => {
                tracing::info!(job = %job.guid, error = %e, "last_operation failed; polling again");
            }
        }
    }
}

/// OSB orphan mitigation: deletes what a failed create may have left at
/// the broker, a few times, in the background.
fn mitigate(ctx: &Ctx, broker: osb::Broker, ids: (String, Option<String>, String, String)) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let Ok(http) = ctx.osb() else { return };
        let (instance_id, binding_id, service_id, plan_id) = ids;
        let ids = Ids {
            instance_id: &instance_id,
            binding_id: binding_id.as_deref(),
            service_id: &service_id,
            plan_id: &plan_id,
        };
        let mut wait = Duration::from_secs(1);
        for _ in 0..6 {
            match http.delete(&broker, &ids, &Identity::default()).await {
                Ok(_) => {
                    tracing::info!(instance = %instance_id, binding = ?binding_id, "orphan mitigation: deleted at the broker");
                    return;
                }
                Err(e) => {
                    tracing::warn!(instance = %instance_id, binding = ?binding_id, error = %e, "orphan mitigation failed; trying again")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    });
}

fn owned_ids(ids: &Ids<'_>) -> (String, Option<String>, String, String) {
    (
        ids.instance_id.to_string(),
        ids.binding_id.map(str::to_string),
        ids.service_id.to_string(),
        ids.plan_id.to_string(),
    )
}

async fn provision(ctx: &Ctx, job: &JobRow, guid: &str, who: &Identity) -> JobResult {
    let i = ctx.store.instance(guid).await?;
    let m = managed(ctx, i.plan_guid.as_deref()).await?;
    let ids = Ids {
        instance_id: &i.guid,
        binding_id: None,
        service_id: &m.offering.broker_id,
        plan_id: &m.plan.broker_id,
    };
    let fail = |what: String| JobError::unable(format!("provision could not be completed: {what}"));
    // A resumed job that was polling goes on polling; otherwise the PUT is
    // sent (again: brokers answer a repeat by id).
    let op = if job.state == JOB_POLLING && i.op_state == OP_IN_PROGRESS {
        i.broker_operation.clone()
    } else {
        ctx.store
            .set_instance_op(&i.guid, OP_IN_PROGRESS, "", None)
            .await?;
        let space = ctx.store.space(&i.space_guid).await?;
        match client(ctx)?
            .provision(
                &m.broker,
                &ids,
                &space.organization_guid,
                &space.guid,
                context(ctx, &i).await?,
                &parse_object(&i.parameters),
                who,
            )
            .await
        {
            Ok(Outcome::Done(dashboard)) => {
                let mut done = ctx.store.instance(&i.guid).await?;
                done.dashboard_url = dashboard;
                ctx.store.update_instance(&done).await?;
                ctx.store
                    .set_instance_op(&i.guid, OP_SUCCEEDED, "", None)
                    .await?;
                return Ok(());
            }
            Ok(Outcome::InProgress(op)) => {
                ctx.store
                    .set_instance_op(&i.guid, OP_IN_PROGRESS, "", op.as_deref())
                    .await?;
                op
            }
            Ok(Outcome::Gone) => None,
            Err(e) => {
                if e.needs_orphan_mitigation() {
                    mitigate(ctx, m.broker.clone(), owned_ids(&ids));
                }
                ctx.store
                    .set_instance_op(&i.guid, OP_FAILED, &e.to_string(), None)
                    .await?;
                return Err(fail(e.to_string()));
            }
        }
    };
    let i = ctx.store.instance(guid).await?;
    match poll(ctx, job, &m, &ids, op.as_deref(), &i.op_created_at).await? {
        Polled::Succeeded => {
            ctx.store
                .set_instance_op(&i.guid, OP_SUCCEEDED, "", None)
                .await?;
            Ok(())
        }
        Polled::Failed(d) => {
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            Err(fail(d))
        }
        Polled::Gone => {
            let d = "the service broker no longer knows the instance".to_string();
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            Err(fail(d))
        }
        Polled::TimedOut => {
            mitigate(ctx, m.broker.clone(), owned_ids(&ids));
            let d = "Service Broker failed to provision within the required time.".to_string();
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            Err(JobError::unable(d))
        }
    }
}

/// An instance update's or delete's answer, polled to its end: done, or
/// the broker's words (`verb`: what timed out).
async fn settle(
    ctx: &Ctx,
    job: &JobRow,
    m: &Managed,
    ids: &Ids<'_>,
    i: &Instance,
    outcome: Result<Outcome<()>, OsbError>,
    verb: &str,
) -> Result<Result<(), String>, JobError> {
    Ok(match outcome {
        Ok(Outcome::Done(())) | Ok(Outcome::Gone) => Ok(()),
        Ok(Outcome::InProgress(op)) => {
            ctx.store
                .set_instance_op(&i.guid, OP_IN_PROGRESS, "", op.as_deref())
                .await?;
            match poll(ctx, job, m, ids, op.as_deref(), &i.op_created_at).await? {
                Polled::Succeeded | Polled::Gone => Ok(()),
                Polled::Failed(d) => Err(d),
                Polled::TimedOut => Err(format!(
                    "Service Broker failed to {verb} within the required time."
                )),
            }
        }
        Err(e) => Err(e.to_string()),
    })
}

async fn update(
    ctx: &Ctx,
    job: &JobRow,
    guid: &str,
    plan_guid: Option<&str>,
    parameters: Option<&Value>,
    who: &Identity,
) -> JobResult {
    let i = ctx.store.instance(guid).await?;
    let old = managed(ctx, i.plan_guid.as_deref()).await?;
    let new = match plan_guid {
        Some(p) => managed(ctx, Some(p)).await?,
        None => managed(ctx, i.plan_guid.as_deref()).await?,
    };
    let ids = Ids {
        instance_id: &i.guid,
        binding_id: None,
        service_id: &new.offering.broker_id,
        plan_id: &new.plan.broker_id,
    };
    let fail = |what: String| JobError::unable(format!("update could not be completed: {what}"));
    let params = parameters.cloned().unwrap_or_else(|| json!({}));
    let outcome = client(ctx)?
        .update(
            &new.broker,
            &ids,
            &old.plan.broker_id,
            &params,
            context(ctx, &i).await?,
            who,
        )
        .await;
    let result = settle(ctx, job, &new, &ids, &i, outcome, "update").await?;
    match result {
        Ok(()) => {
            let mut done = ctx.store.instance(&i.guid).await?;
            if let Some(p) = plan_guid {
                done.plan_guid = Some(p.to_string());
            }
            if let Some(v) = parameters {
                done.parameters = v.to_string();
            }
            ctx.store.update_instance(&done).await?;
            ctx.store
                .set_instance_op(&i.guid, OP_SUCCEEDED, "", None)
                .await?;
            Ok(())
        }
        Err(d) => {
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            Err(fail(d))
        }
    }
}

async fn deprovision(ctx: &Ctx, job: &JobRow, guid: &str, who: &Identity) -> JobResult {
    let i = match ctx.store.instance(guid).await {
        Ok(i) => i,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let fail =
        |what: String| JobError::unable(format!("deprovision could not be completed: {what}"));
    // Bindings go first (the spec: a platform deletes them before the
    // instance).
    for b in ctx.store.bindings_of_instance(&i.guid).await? {
        if let Err(e) = unbind(ctx, job, &b.guid, who).await {
            let d = format!("unbind of {} failed: {e}", b.guid);
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            return Err(fail(d));
        }
    }
    if !i.is_managed() {
        ctx.store.delete_instance(&i.guid).await?;
        return Ok(());
    }
    let m = managed(ctx, i.plan_guid.as_deref()).await?;
    let ids = Ids {
        instance_id: &i.guid,
        binding_id: None,
        service_id: &m.offering.broker_id,
        plan_id: &m.plan.broker_id,
    };
    let outcome = if job.state == JOB_POLLING && i.broker_operation.is_some() {
        Ok(Outcome::InProgress(i.broker_operation.clone()))
    } else {
        client(ctx)?.delete(&m.broker, &ids, who).await
    };
    let result = settle(ctx, job, &m, &ids, &i, outcome, "deprovision").await?;
    match result {
        Ok(()) => {
            ctx.store.delete_instance(&i.guid).await?;
            Ok(())
        }
        Err(d) => {
            ctx.store
                .set_instance_op(&i.guid, OP_FAILED, &d, None)
                .await?;
            Err(fail(d))
        }
    }
}

async fn bind(ctx: &Ctx, job: &JobRow, guid: &str, who: &Identity) -> JobResult {
    let b = ctx.store.binding(guid).await?;
    let i = ctx.store.instance(&b.instance_guid).await?;
    let m = managed(ctx, i.plan_guid.as_deref()).await?;
    let ids = Ids {
        instance_id: &i.guid,
        binding_id: Some(&b.guid),
        service_id: &m.offering.broker_id,
        plan_id: &m.plan.broker_id,
    };
    let fail = |what: String| JobError::unable(format!("bind could not be completed: {what}"));
    let http = client(ctx)?;
    let op = if job.state == JOB_POLLING && b.op_state == OP_IN_PROGRESS {
        b.broker_operation.clone()
    } else {
        ctx.store
            .set_binding_op(&b.guid, "create", OP_IN_PROGRESS, "", None)
            .await?;
        let mut context = context(ctx, &i).await?;
        if let Some(a) = &b.app_guid {
            if let Ok(app) = ctx.store.app(a).await {
                context["app_guid"] = json!(app.guid);
                context["app_name"] = json!(app.name);
            }
        }
        match http
            .bind(
                &m.broker,
                &ids,
                b.app_guid.as_deref(),
                context,
                &parse_object(&b.parameters),
                who,
            )
            .await
        {
            Ok(Outcome::Done(r)) => {
                save_bind(ctx, &b, &r).await?;
                return Ok(());
            }
            Ok(Outcome::InProgress(op)) => {
                ctx.store
                    .set_binding_op(&b.guid, "create", OP_IN_PROGRESS, "", op.as_deref())
                    .await?;
                op
            }
            Ok(Outcome::Gone) => None,
            Err(e) => {
                if e.needs_orphan_mitigation() {
                    mitigate(ctx, m.broker.clone(), owned_ids(&ids));
                }
                ctx.store
                    .set_binding_op(&b.guid, "create", OP_FAILED, &e.to_string(), None)
                    .await?;
                return Err(fail(e.to_string()));
            }
        }
    };
    let b = ctx.store.binding(guid).await?;
    let failed = match poll(ctx, job, &m, &ids, op.as_deref(), &b.op_created_at).await? {
        Polled::Succeeded => match http.fetch_binding(&m.broker, &ids).await {
            Ok(r) => {
                save_bind(ctx, &b, &r).await?;
                return Ok(());
            }
            Err(e) => {
                mitigate(ctx, m.broker.clone(), owned_ids(&ids));
                e.to_string()
            }
        },
        Polled::Failed(d) => d,
        Polled::Gone => "the service broker no longer knows the binding".into(),
        Polled::TimedOut => {
            mitigate(ctx, m.broker.clone(), owned_ids(&ids));
            "Service Broker failed to bind within the required time.".into()
        }
    };
    ctx.store
        .set_binding_op(&b.guid, "create", OP_FAILED, &failed, None)
        .await?;
    Err(fail(failed))
}

async fn save_bind(ctx: &Ctx, b: &Binding, r: &osb::BindResult) -> Result<(), StoreError> {
    ctx.store
        .set_binding_credentials(
            &b.guid,
            &r.credentials.to_string(),
            r.syslog_drain_url.as_deref(),
            &r.volume_mounts.to_string(),
        )
        .await?;
    ctx.store
        .set_binding_op(&b.guid, "create", OP_SUCCEEDED, "", None)
        .await
}

/// Unbinds at the broker (managed instances) and deletes the row; the
/// error is the broker's words.
async fn unbind(ctx: &Ctx, job: &JobRow, guid: &str, who: &Identity) -> Result<(), String> {
    let b = match ctx.store.binding(guid).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(JobError::internal(e).detail),
    };
    let run = async {
        let i = ctx.store.instance(&b.instance_guid).await?;
        // Nothing to undo at the broker: a user-provided instance, or a
        // binding whose create never got through.
        if !i.is_managed() || (b.op_type == "create" && b.op_state == OP_FAILED) {
            ctx.store.delete_binding(&b.guid).await?;
            return Ok(Ok(()));
        }
        let m = managed(ctx, i.plan_guid.as_deref())
            .await
            .map_err(|e| StoreError::Conflict(e.detail))?;
        let ids = Ids {
            instance_id: &i.guid,
            binding_id: Some(&b.guid),
            service_id: &m.offering.broker_id,
            plan_id: &m.plan.broker_id,
        };
        let http = ctx.osb().map_err(StoreError::Conflict)?;
        let outcome =
            if job.state == JOB_POLLING && b.op_type == "delete" && b.broker_operation.is_some() {
                Ok(Outcome::InProgress(b.broker_operation.clone()))
            } else {
                ctx.store
                    .set_binding_op(&b.guid, "delete", OP_IN_PROGRESS, "", None)
                    .await?;
                http.delete(&m.broker, &ids, who).await
            };
        let result: Result<(), String> = match outcome {
            Ok(Outcome::Done(())) | Ok(Outcome::Gone) => Ok(()),
            Ok(Outcome::InProgress(op)) => {
                ctx.store
                    .set_binding_op(&b.guid, "delete", OP_IN_PROGRESS, "", op.as_deref())
                    .await?;
                let since = ctx.store.binding(&b.guid).await?.op_created_at;
                match poll(ctx, job, &m, &ids, op.as_deref(), &since)
                    .await
                    .map_err(|e| StoreError::Conflict(e.detail))?
                {
                    Polled::Succeeded | Polled::Gone => Ok(()),
                    Polled::Failed(d) => Err(d),
                    Polled::TimedOut => {
                        Err("Service Broker failed to unbind within the required time.".into())
                    }
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match &result {
            Ok(()) => ctx.store.delete_binding(&b.guid).await?,
            Err(d) => {
                ctx.store
                    .set_binding_op(&b.guid, "delete", OP_FAILED, d, None)
                    .await?
            }
        }
        Ok::<_, StoreError>(result)
    };
    match run.await {
        Ok(r) => r,
        Err(e) => Err(JobError::internal(e).detail),
    }
}

/// Finished jobs are kept this long for polling, then forgotten.
const KEEP_FINISHED_JOBS: chrono::Duration = chrono::Duration::hours(24);

/// Forgets finished jobs older than a day, every hour (the first pass at
/// start-up): the `jobs` table stays bounded.
pub fn spawn_job_pruning(ctx: Ctx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = (chrono::Utc::now() - KEEP_FINISHED_JOBS)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            match ctx.store.prune_jobs(&before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "forgot finished jobs"),
                Err(e) => tracing::warn!(error = %e, "cannot prune finished jobs"),
            }
        }
    })
}

/// Unbinds every binding of an app being deleted (in jobs; a
/// user-provided instance's at once).
pub async fn unbind_app(ctx: &Ctx, app_guid: &str) -> Result<(), StoreError> {
    for b in ctx.store.app_bindings(app_guid).await? {
        start(ctx, Work::Unbind, &b.guid, Identity::default()).await?;
    }
    Ok(())
}

/// Deletes the service instances of a space being deleted: user-provided
/// ones at once, managed ones in deprovision jobs (unless one is already
/// running).
pub async fn delete_space_instances(ctx: &Ctx, space_guid: &str) -> Result<(), StoreError> {
    for i in ctx.store.instances_in_space(space_guid).await? {
        if !i.is_managed() {
            ctx.store.delete_instance(&i.guid).await?;
        } else if ctx.store.begin_instance_op(&i.guid, "delete").await? {
            start(ctx, Work::Deprovision, &i.guid, Identity::default()).await?;
        }
    }
    Ok(())
}

/// A binding, its instance and (managed) its plan and offering.
type BoundRow = (Binding, Instance, Option<(Plan, Offering)>);

impl Ctx {
    /// The `VCAP_SERVICES` of app `app_guid`: its app bindings whose create
    /// succeeded.
    pub async fn vcap_services(&self, app_guid: &str) -> Result<Value, StoreError> {
        let bindings: Vec<Binding> = self
            .store
            .app_bindings(app_guid)
            .await?
            .into_iter()
            .filter(|b| !(b.op_type == "create" && b.op_state != OP_SUCCEEDED))
            .collect();
        if bindings.is_empty() {
            return Ok(json!({}));
        }
        let mut rows: Vec<BoundRow> = Vec::new();
        for b in bindings {
            let i = match self.store.instance(&b.instance_guid).await {
                Ok(i) => i,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let managed = match &i.plan_guid {
                Some(p) => {
                    let plan = self.store.plan(p).await?;
                    let offering = self.store.offering(&plan.offering_guid).await?;
                    Some((plan, offering))
                }
                None => None,
            };
            rows.push((b, i, managed));
        }
        let bound: Vec<vcap::Bound<'_>> = rows
            .iter()
            .map(|(b, i, m)| vcap::Bound {
                binding: b,
                instance: i,
                plan: m.as_ref().map(|(p, _)| p),
                offering: m.as_ref().map(|(_, o)| o),
            })
            .collect();
        Ok(vcap::vcap_services(&bound))
    }
}
