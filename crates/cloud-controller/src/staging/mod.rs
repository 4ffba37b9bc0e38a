//! Staging as long-running work (docs/architecture.md "Staging"). A build's
//! state lives in the database. One loop per controller hands new builds to
//! DEAs (`staging.<dea>.start`, answered at once) and ends the builds whose
//! DEA went quiet or whose timeout passed; DEAs name their builds in flight
//! on `staging.active` and report each result on `staging.finished` until a
//! controller records it. A controller restarted meanwhile picks up where
//! the database says.

pub mod watch;

use std::time::{Duration, Instant};

use proto::{
    subjects, StagingAccepted, StagingErrorId, StagingFailure, StagingRequest, StagingResult,
    StagingStop,
};
use serde_json::json;

use crate::context::{Actor, Ctx};
use crate::placement::Need;
use crate::store::{self, Build, BuildState, Droplet, DropletState, Lifecycle, StoreError};

pub use watch::{Watch, LOST_AFTER};

/// Minimum staging limits; an app with larger quotas stages with its own
/// (Cloud Foundry's `minimum_staging_memory_mb` / `minimum_staging_disk_mb`).
pub const STAGING_MEMORY_MB: u64 = 1024;
pub const STAGING_DISK_MB: u64 = 2048;
/// How long a DEA may take to answer `staging.<dea>.start`.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);
/// DEAs tried for one build before it fails.
const MAX_ATTEMPTS: usize = 3;
/// The controller ends a build this long after its deadline when the DEA
/// did not (it stops builds at the deadline itself).
const DEADLINE_GRACE: Duration = Duration::from_secs(10);
/// How often the loop looks at the builds in flight without being woken.
const PASS_EVERY: Duration = Duration::from_secs(1);

/// The staging container's (memory, disk) in MB for an app's process quotas.
pub fn staging_limits(memory_in_mb: i64, disk_in_mb: i64) -> (u64, u64) {
    let q = |v: i64| u64::try_from(v).unwrap_or(0);
    (
        q(memory_in_mb).max(STAGING_MEMORY_MB),
        q(disk_in_mb).max(STAGING_DISK_MB),
    )
}

/// Runs the staging loop until aborted.
pub fn spawn_loop(ctx: Ctx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = pass(&ctx).await {
                tracing::warn!(error = %e, "staging pass failed");
            }
            tokio::select! {
                _ = ctx.staging.wake.notified() => {}
                _ = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
    })
}

/// One look at every build in flight: hand new ones to a DEA, end those
/// past their deadline or whose DEA was lost.
async fn pass(ctx: &Ctx) -> Result<(), StoreError> {
    let now = Instant::now();
    let wall = chrono::Utc::now();
    let builds = ctx.store.staging_builds().await?;
    ctx.staging
        .keep_only(&builds.iter().map(|b| b.guid.as_str()).collect());
    for b in builds {
        let Some(dea) = b.dea_id.clone() else {
            if ctx.staging.begin_dispatch(&b.guid) {
                let c = ctx.clone();
                tokio::spawn(async move {
                    let guid = b.guid.clone();
                    if let Err(e) = dispatch(&c, b).await {
                        tracing::warn!(build = %guid, error = %e, "cannot hand the build to a DEA");
                    }
                    c.staging.end_dispatch(&guid);
                });
            }
            continue;
        };
        let deadline = b
            .staging_deadline
            .as_deref()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
        let expired = deadline.is_some_and(|d| {
            wall > d + chrono::Duration::from_std(DEADLINE_GRACE).unwrap_or_default()
        });
        let failure = if expired {
            Some(StagingFailure::new(
                StagingErrorId::StagingTimeExpired,
                format!(
                    "staging did not finish within {} s (the platform's staging timeout)",
                    ctx.cfg.staging_timeout_s
                ),
            ))
        } else if ctx.staging.lost(&b.guid, &dea, now) {
            Some(StagingFailure::new(
                StagingErrorId::StagingError,
                format!(
                    "the DEA {dea} staging this build was lost (not heard from for {} s); push again to stage on another DEA",
                    LOST_AFTER.as_secs()
                ),
            ))
        } else {
            None
        };
        if let Some(f) = failure {
            ctx.publish(
                subjects::staging_stop(&dea),
                &StagingStop {
                    staging_id: b.guid.clone(),
                    reason: f.clone(),
                },
            )
            .await;
            end_failed(ctx, &b, &f).await?;
        }
    }
    Ok(())
}

/// Hands a build no DEA has yet to one that accepts it (up to
/// `MAX_ATTEMPTS` DEAs), or fails it.
async fn dispatch(ctx: &Ctx, build: Build) -> Result<(), StoreError> {
    let (app, process) = match (
        ctx.store.app(&build.app_guid).await,
        ctx.store.web_process(&build.app_guid).await,
    ) {
        (Ok(a), Ok(p)) => (a, p),
        _ => {
            let f = StagingFailure::new(StagingErrorId::StagingError, "the app no longer exists");
            return end_failed(ctx, &build, &f).await;
        }
    };
    let Some(bus) = ctx.bus.clone() else {
        let f = StagingFailure::new(
            StagingErrorId::InsufficientResources,
            "no message bus: no DEA can be reached",
        );
        return end_failed(ctx, &build, &f).await;
    };
    let (memory_mb, disk_mb) = staging_limits(process.memory_in_mb, process.disk_in_mb);
    let need = Need {
        app_id: &app.guid,
        stack: &app.stack,
        memory_mb,
        disk_mb,
    };
    let timeout = ctx.cfg.staging_timeout_s.max(1);
    let ttl = i64::try_from(timeout).unwrap_or(900).saturating_add(300);
    let egress = ctx
        .store
        .egress_rules(&app.space_guid, Lifecycle::Staging)
        .await?;
    let req = StagingRequest {
        staging_id: build.guid.clone(),
        app_id: app.guid.clone(),
        stack: app.stack.clone(),
        buildpacks: app.buildpacks(),
        env: app
            .env_map()
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect(),
        memory_mb,
        disk_mb,
        package_uri: ctx.signed_url(
            "GET",
            &format!("/internal/v1/packages/{}/download", build.package_guid),
            ttl,
        ),
        droplet_upload_uri: ctx.signed_url(
            "PUT",
            &format!("/internal/v1/droplets/{}/upload", build.guid),
            ttl,
        ),
        cache_download_uri: Some(ctx.signed_url(
            "GET",
            &format!("/internal/v1/buildpack_cache/{}", app.guid),
            ttl,
        )),
        cache_upload_uri: Some(ctx.signed_url(
            "PUT",
            &format!("/internal/v1/buildpack_cache/{}", app.guid),
            ttl,
        )),
        start_command: process.command.clone().filter(|c| !c.is_empty()),
        admin_buildpacks: crate::api::buildpacks::for_staging(ctx, &app.stack, ttl).await,
        timeout_s: timeout,
        egress: Some(egress),
        vcap_services: Some(ctx.vcap_services(&app.guid).await?),
    };
    let mut avoid: Vec<String> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    while avoid.len() < MAX_ATTEMPTS {
        let picked = match ctx.placement.lock() {
            Ok(mut t) => t.place_for_staging(&need, &build.guid, &avoid, Instant::now()),
            Err(_) => return Ok(()),
        };
        let dea_id = match picked {
            Ok(d) => d,
            Err(no_room) if refusals.is_empty() => {
                let f = StagingFailure::new(
                    StagingErrorId::InsufficientResources,
                    format!("{no_room} to stage this app"),
                );
                return end_failed(ctx, &build, &f).await;
            }
            Err(_) => break,
        };
        let deadline = (chrono::Utc::now()
            + chrono::Duration::seconds(i64::try_from(timeout).unwrap_or(900)))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if !ctx
            .store
            .claim_build(&build.guid, &dea_id, &deadline)
            .await?
        {
            forget_promise(ctx, &build.guid);
            return Ok(());
        }
        ctx.staging.seen(&build.guid, &dea_id, Instant::now());
        tracing::info!(build = %build.guid, app_id = %app.guid, dea_id = %dea_id, "staging");
        let answer: Result<StagingAccepted, proto::BusError> = bus
            .request(subjects::staging_start(&dea_id), &req, ACCEPT_TIMEOUT)
            .await;
        match answer {
            Ok(a) if a.error.is_none() => {
                ctx.staging.seen(&build.guid, &dea_id, Instant::now());
                ctx.api_log(
                    &app.guid,
                    format!("Staging app with guid {} on DEA {dea_id}", app.guid),
                )
                .await;
                return Ok(());
            }
            Ok(a) => {
                let why = a.error.map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(build = %build.guid, dea_id = %dea_id, error = %why, "DEA refused the build");
                refusals.push(format!("{dea_id}: {why}"));
            }
            Err(e) => {
                tracing::warn!(build = %build.guid, dea_id = %dea_id, error = %e, "DEA did not accept the build");
                refusals.push(format!("{dea_id}: did not answer ({e})"));
            }
        }
        forget_promise(ctx, &build.guid);
        ctx.store.unclaim_build(&build.guid, &dea_id).await?;
        avoid.push(dea_id);
    }
    let f = StagingFailure::new(
        StagingErrorId::StagingError,
        format!("no DEA took the build: {}", refusals.join("; ")),
    );
    end_failed(ctx, &build, &f).await
}

fn forget_promise(ctx: &Ctx, id: &str) {
    if let Ok(mut t) = ctx.placement.lock() {
        t.forget(id);
    }
}

fn actor_of(b: &Build) -> Actor {
    Actor {
        guid: b.created_by_guid.clone(),
        name: b.created_by_name.clone(),
        kind: "user",
    }
}

/// Fails a build still `STAGING` (once: a later ending changes nothing).
async fn end_failed(ctx: &Ctx, build: &Build, f: &StagingFailure) -> Result<(), StoreError> {
    ctx.staging.forget(&build.guid);
    forget_promise(ctx, &build.guid);
    if !ctx
        .store
        .fail_build(&build.guid, f.id.as_str(), &f.message)
        .await?
    {
        return Ok(());
    }
    tracing::warn!(build = %build.guid, error = %f, "staging failed");
    ctx.api_log(&build.app_guid, format!("Staging failed: {f}"))
        .await;
    if let Ok(app) = ctx.store.app(&build.app_guid).await {
        ctx.audit_app(
            &actor_of(build),
            "audit.app.build.failed",
            &app,
            json!({"build_guid": build.guid, "error": f.to_string()}),
        )
        .await;
    }
    Ok(())
}

/// Records a DEA's result (`staging.finished`). `Ok` means the DEA may stop
/// sending it: stored now, or the build had already ended (or is gone).
pub async fn record(ctx: &Ctx, r: &StagingResult) -> Result<(), StoreError> {
    let build = match ctx.store.build(&r.staging_id).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if build.state != BuildState::Staging {
        ctx.staging.forget(&build.guid);
        return Ok(());
    }
    // Only the DEA the build was handed to speaks for it (one that did not
    // answer in time and was replaced may still report).
    if build.dea_id.as_deref().is_some_and(|d| d != r.dea_id) {
        tracing::warn!(build = %build.guid, from = %r.dea_id, "ignoring a result from a DEA the build is not on");
        return Ok(());
    }
    if let Some(f) = &r.error {
        return end_failed(ctx, &build, f).await;
    }
    // Trust the bytes we received over the DEA's claim.
    let sha = build.uploaded_sha256.clone().or(r.droplet_sha256.clone());
    let sha = match sha {
        Some(s) if ctx.blobs.exists(&s).await => s,
        _ => {
            let f =
                StagingFailure::new(StagingErrorId::StagingError, "the droplet was not uploaded");
            return end_failed(ctx, &build, &f).await;
        }
    };
    let app = ctx.store.app(&build.app_guid).await.ok();
    let t = store::now();
    let d = Droplet {
        guid: store::new_guid(),
        app_guid: build.app_guid.clone(),
        package_guid: build.package_guid.clone(),
        state: DropletState::Staged,
        sha256: Some(sha),
        process_types: json!({"web": r.start_command.clone().unwrap_or_default()}).to_string(),
        buildpack: r.detected_buildpack().map(str::to_string),
        stack: app
            .as_ref()
            .map(|a| a.stack.clone())
            .unwrap_or_else(|| "host".into()),
        error: None,
        created_at: t.clone(),
        updated_at: t,
        buildpacks: serde_json::to_string(&r.buildpacks).ok(),
        config_vars: serde_json::to_string(&r.config_vars).ok(),
    };
    ctx.staging.forget(&build.guid);
    if !ctx.store.finish_staged(&build.guid, &d).await? {
        return Ok(());
    }
    tracing::info!(build = %build.guid, droplet = %d.guid, "staged");
    ctx.api_log(&build.app_guid, "Staging complete").await;
    if let Some(app) = app {
        ctx.audit_app(
            &actor_of(&build),
            "audit.app.droplet.create",
            &app,
            json!({"build_guid": build.guid, "droplet_guid": d.guid}),
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_limits_are_the_app_quotas_with_a_floor() {
        assert_eq!(staging_limits(256, 1024), (1024, 2048));
        assert_eq!(staging_limits(4096, 8192), (4096, 8192));
        assert_eq!(staging_limits(-1, -1), (1024, 2048));
    }
}
