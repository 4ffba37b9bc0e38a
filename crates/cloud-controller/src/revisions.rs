//! Recording revisions (docs/architecture.md §5.10): each start or restart
//! of an app whose `revisions` feature is on records a new revision when
//! its droplet, environment or process commands differ from the newest
//! one's. The API is `api/revisions.rs`; the store `store/revisions.rs`.

use crate::context::Ctx;
use crate::store::revisions::{describe, MAX_REVISIONS};
use crate::store::{App, Revision, RevisionContent, StoreError};

/// What the app would run with now.
pub async fn content(ctx: &Ctx, app: &App) -> Result<Option<RevisionContent>, StoreError> {
    let Some(droplet_guid) = app.current_droplet_guid.clone() else {
        return Ok(None);
    };
    let commands = ctx
        .store
        .processes_of(&app.guid)
        .await?
        .into_iter()
        .map(|p| (p.kind, p.command.filter(|c| !c.is_empty())))
        .collect();
    Ok(Some(RevisionContent {
        droplet_guid,
        env: app.env_map(),
        commands,
    }))
}

/// A rollback to `to` always records a new revision (CF's "Rolled back to
/// revision N.").
pub async fn record_rollback(ctx: &Ctx, app: &App, to: &Revision) -> Result<Revision, StoreError> {
    let next = content(ctx, app).await?.unwrap_or_else(|| to.content());
    let r = ctx
        .store
        .create_revision(
            &app.guid,
            &next,
            &format!("Rolled back to revision {}.", to.version),
        )
        .await?;
    tracing::info!(app_id = %app.guid, version = r.version, to = to.version, "rollback revision recorded");
    Ok(r)
}

/// After a deployment that recorded revision `deployed` was canceled (the
/// app back on its previous droplet and environment): a new revision, so
/// the deployed one is right again: "Rolled back to revision N." naming
/// the newest earlier revision with what the app runs now, or CF's usual
/// description when there is none. Nothing when a newer revision exists.
pub async fn record_cancel(
    ctx: &Ctx,
    app: &App,
    deployed: Option<&str>,
) -> Result<Option<Revision>, StoreError> {
    let Some(deployed) = deployed else {
        return Ok(None);
    };
    if !ctx.store.app_feature(&app.guid, "revisions").await? {
        return Ok(None);
    }
    let latest = ctx.store.latest_revision(&app.guid).await?;
    if latest.as_ref().map(|r| r.guid.as_str()) != Some(deployed) {
        return Ok(None);
    }
    let Some(now) = content(ctx, app).await? else {
        return Ok(None);
    };
    let (_, all) = ctx
        .store
        .revisions_page(
            &app.guid,
            None,
            usize::try_from(MAX_REVISIONS).unwrap_or(100),
            0,
        )
        .await?;
    match all
        .iter()
        .rev()
        .find(|r| r.guid != deployed && r.content() == now)
    {
        Some(to) => record_rollback(ctx, app, to).await.map(Some),
        None => record(ctx, app).await,
    }
}

/// A new revision when what the app runs with changed; the new one, if any.
pub async fn record(ctx: &Ctx, app: &App) -> Result<Option<Revision>, StoreError> {
    if !ctx.store.app_feature(&app.guid, "revisions").await? {
        return Ok(None);
    }
    let Some(next) = content(ctx, app).await? else {
        return Ok(None);
    };
    let prev = ctx.store.latest_revision(&app.guid).await?;
    let Some(description) = describe(prev.as_ref().map(Revision::content).as_ref(), &next) else {
        return Ok(None);
    };
    let r = ctx
        .store
        .create_revision(&app.guid, &next, &description)
        .await?;
    tracing::info!(app_id = %app.guid, version = r.version, description = %r.description, "revision recorded");
    Ok(Some(r))
}
