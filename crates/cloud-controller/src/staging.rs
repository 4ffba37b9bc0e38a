//! Staging orchestration: place, ask a DEA to stage, record the droplet.

use std::time::{Duration, Instant};

use proto::{subjects, BusError, StagingRequest, StagingResponse};
use serde_json::json;

use crate::context::{Actor, Ctx};
use crate::placement::Need;
use crate::store::{self, Build, Droplet};

/// Minimum staging limits; an app with larger quotas stages with its own
/// (Cloud Foundry's `minimum_staging_memory_mb` / `minimum_staging_disk_mb`).
const STAGING_MEMORY_MB: u64 = 1024;
const STAGING_DISK_MB: u64 = 2048;

/// The staging container's (memory, disk) in MB for an app's process quotas.
pub fn staging_limits(memory_in_mb: i64, disk_in_mb: i64) -> (u64, u64) {
    let q = |v: i64| u64::try_from(v).unwrap_or(0);
    (
        q(memory_in_mb).max(STAGING_MEMORY_MB),
        q(disk_in_mb).max(STAGING_DISK_MB),
    )
}

/// Outcome of staging, before it is recorded.
#[derive(Debug)]
enum Outcome {
    Staged {
        buildpack: Option<String>,
        start_command: String,
        sha256: String,
    },
    Failed(String),
}

/// Runs a build to completion (meant for a background task).
pub async fn run_build(ctx: Ctx, build: Build, actor: Actor) {
    let outcome = stage(&ctx, &build).await;
    if let Err(e) = record(&ctx, &build, outcome, &actor).await {
        tracing::error!(build = %build.guid, error = %e, "cannot record staging result");
        let _ = ctx
            .store
            .finish_build(
                &build.guid,
                "FAILED",
                Some("StagingError: internal error"),
                None,
            )
            .await;
    }
}

async fn stage(ctx: &Ctx, build: &Build) -> Outcome {
    let (app, process) = match (
        ctx.store.app(&build.app_guid).await,
        ctx.store.web_process(&build.app_guid).await,
    ) {
        (Ok(a), Ok(p)) => (a, p),
        _ => return Outcome::Failed("StagingError: app no longer exists".into()),
    };
    let Some(bus) = ctx.bus.clone() else {
        return Outcome::Failed("InsufficientResources: no DEA available".into());
    };
    let (memory_mb, disk_mb) = staging_limits(process.memory_in_mb, process.disk_in_mb);
    let need = Need {
        app_id: &app.guid,
        stack: &app.stack,
        memory_mb,
        disk_mb,
    };
    let picked = ctx
        .placement
        .lock()
        .ok()
        .and_then(|mut t| t.place_for_staging(&need, Instant::now()));
    let Some(dea_id) = picked else {
        return Outcome::Failed("InsufficientResources: no DEA available".into());
    };
    let timeout = ctx.cfg.staging_timeout_s;
    let ttl = i64::try_from(timeout).unwrap_or(600).saturating_add(300);
    let req = StagingRequest {
        staging_id: build.guid.clone(),
        app_id: app.guid.clone(),
        stack: app.stack.clone(),
        buildpack: app.buildpack.clone(),
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
    };
    tracing::info!(build = %build.guid, app_id = %app.guid, dea_id = %dea_id, "staging");
    ctx.api_log(
        &app.guid,
        format!("Staging app with guid {} on DEA {dea_id}", app.guid),
    )
    .await;
    let reply: Result<StagingResponse, BusError> = bus
        .request(
            subjects::staging_start(&dea_id),
            &req,
            Duration::from_secs(timeout),
        )
        .await;
    match reply {
        Err(BusError::Timeout { .. }) => Outcome::Failed(format!(
            "StagingTimeExpired: staging did not finish within {timeout} s"
        )),
        Err(e) => Outcome::Failed(format!("StagingError: {e}")),
        Ok(r) => match r.error {
            Some(err) if !err.is_empty() => Outcome::Failed(err),
            _ => {
                // Trust the bytes we received over the DEA's claim.
                let uploaded = ctx
                    .store
                    .build(&build.guid)
                    .await
                    .ok()
                    .and_then(|b| b.uploaded_sha256);
                match uploaded.or(r.droplet_sha256) {
                    Some(sha) if ctx.blobs.exists(&sha).await => Outcome::Staged {
                        buildpack: r.detected_buildpack,
                        start_command: r.start_command.unwrap_or_default(),
                        sha256: sha,
                    },
                    _ => Outcome::Failed("StagingError: the droplet was not uploaded".into()),
                }
            }
        },
    }
}

async fn record(
    ctx: &Ctx,
    build: &Build,
    outcome: Outcome,
    actor: &Actor,
) -> Result<(), store::StoreError> {
    let app = ctx.store.app(&build.app_guid).await.ok();
    match outcome {
        Outcome::Failed(error) => {
            tracing::warn!(build = %build.guid, error = %error, "staging failed");
            ctx.store
                .finish_build(&build.guid, "FAILED", Some(&error), None)
                .await?;
            ctx.api_log(&build.app_guid, format!("Staging failed: {error}"))
                .await;
            if let Some(app) = app {
                ctx.audit_app(
                    actor,
                    "audit.app.build.failed",
                    &app,
                    json!({"build_guid": build.guid, "error": error}),
                )
                .await;
            }
        }
        Outcome::Staged {
            buildpack,
            start_command,
            sha256,
        } => {
            let t = store::now();
            let d = Droplet {
                guid: store::new_guid(),
                app_guid: build.app_guid.clone(),
                package_guid: build.package_guid.clone(),
                state: "STAGED".into(),
                sha256: Some(sha256),
                process_types: json!({"web": start_command}).to_string(),
                buildpack,
                stack: app
                    .as_ref()
                    .map(|a| a.stack.clone())
                    .unwrap_or_else(|| "host".into()),
                error: None,
                created_at: t.clone(),
                updated_at: t,
            };
            ctx.store.create_droplet(&d).await?;
            ctx.store
                .finish_build(&build.guid, "STAGED", None, Some(&d.guid))
                .await?;
            tracing::info!(build = %build.guid, droplet = %d.guid, "staged");
            ctx.api_log(&build.app_guid, "Staging complete").await;
            if let Some(app) = app {
                ctx.audit_app(
                    actor,
                    "audit.app.droplet.create",
                    &app,
                    json!({"build_guid": build.guid, "droplet_guid": d.guid}),
                )
                .await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::staging_limits;

    #[test]
    fn staging_limits_are_the_app_quotas_with_a_floor() {
        assert_eq!(staging_limits(256, 1024), (1024, 2048));
        assert_eq!(staging_limits(4096, 8192), (4096, 8192));
        assert_eq!(staging_limits(-1, -1), (1024, 2048));
    }
}
