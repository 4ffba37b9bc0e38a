//! Quota enforcement: a pure check of limits against usage, and the
//! lookups that feed it on app create, scale, start and route creation.

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::store::{App, Process, QuotaKind, QuotaLimits, Space, Usage};

/// What a change adds to an org's or space's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ask {
    /// Memory and instances of started processes after the change.
    pub memory_in_mb: i64,
    pub instances: i64,
    /// The memory of one instance of the changed process.
    pub instance_memory_in_mb: Option<i64>,
    pub routes: i64,
    pub apps: i64,
}

/// Which limit a change breaks, as CF names it; `space` picks the space
/// quota's names.
pub fn exceeded(l: &QuotaLimits, used: &Usage, ask: &Ask, space: bool) -> Option<&'static str> {
    let over = |limit: Option<i64>, now: i64, add: i64| {
        add > 0 && limit.is_some_and(|l| now.saturating_add(add) > l)
    };
    if let (Some(limit), Some(m)) = (l.per_process_memory_in_mb, ask.instance_memory_in_mb) {
        if m > limit {
            return Some(if space {
                "memory space_instance_limit_exceeded"
            } else {
                "memory instance_limit_exceeded"
            });
        }
    }
    if over(l.total_memory_in_mb, used.memory_in_mb, ask.memory_in_mb) {
        return Some(if space {
            "memory space_quota_exceeded"
        } else {
            "memory quota_exceeded"
        });
    }
    if over(l.total_instances, used.instances, ask.instances) {
        return Some(if space {
            "instances space_app_instance_limit_exceeded"
        } else {
            "instances app_instance_limit_exceeded"
        });
    }
    if over(l.total_routes, used.routes, ask.routes) {
        return Some(if space {
            "routes space_quota_exceeded"
        } else {
            "routes quota_exceeded"
        });
    }
    if over(l.total_apps, used.apps, ask.apps) {
        return Some(if space {
            "apps space_quota_exceeded"
        } else {
            "apps quota_exceeded"
        });
    }
    None
}

/// Checks `ask` against the space's org quota and its space quota;
/// `except` is the process being changed (left out of usage).
async fn check(ctx: &Ctx, space: &Space, ask: Ask, except: &str) -> ApiResult<()> {
    let org = ctx.store.org(&space.organization_guid).await?;
    if let Some(q) = &org.quota_guid {
        if let Ok(q) = ctx.store.quota(QuotaKind::Organization, q).await {
            let used = ctx.store.usage(&org.guid, false, except).await?;
            if let Some(e) = exceeded(&q.limits(), &used, &ask, false) {
                return Err(ApiError::Unprocessable(e.into()));
            }
        }
    }
    if let Some(q) = &space.quota_guid {
        if let Ok(q) = ctx.store.quota(QuotaKind::Space, q).await {
            let used = ctx.store.usage(&space.guid, true, except).await?;
            if let Some(e) = exceeded(&q.limits(), &used, &ask, true) {
                return Err(ApiError::Unprocessable(e.into()));
            }
        }
    }
    Ok(())
}

pub async fn check_new_app(ctx: &Ctx, space: &Space) -> ApiResult<()> {
    check(
        ctx,
        space,
        Ask {
            apps: 1,
            ..Ask::default()
        },
        "",
    )
    .await
}

pub async fn check_new_route(ctx: &Ctx, space: &Space) -> ApiResult<()> {
    check(
        ctx,
        space,
        Ask {
            routes: 1,
            ..Ask::default()
        },
        "",
    )
    .await
}

/// Process `p` (as it will be) of `app`; `running` when the app is or
/// will be started (only then do its instances count).
pub async fn check_process(ctx: &Ctx, app: &App, p: &Process, running: bool) -> ApiResult<()> {
    let space = ctx.store.space(&app.space_guid).await?;
    let ask = if running {
        Ask {
            memory_in_mb: p.instances.saturating_mul(p.memory_in_mb),
            instances: p.instances,
            instance_memory_in_mb: Some(p.memory_in_mb),
            ..Ask::default()
        }
    } else {
        Ask {
            instance_memory_in_mb: Some(p.memory_in_mb),
            ..Ask::default()
        }
    };
    check(ctx, &space, ask, &p.guid).await
}

/// A task of `memory_in_mb` for `app` (CF counts running tasks' memory:
/// one may not take what the quota has left).
pub async fn check_task(ctx: &Ctx, app: &App, memory_in_mb: i64) -> ApiResult<()> {
    let space = ctx.store.space(&app.space_guid).await?;
    let ask = Ask {
        memory_in_mb,
        instance_memory_in_mb: Some(memory_in_mb),
        ..Ask::default()
    };
    check(ctx, &space, ask, "").await
}

/// Starting `app`: every process of it counts.
pub async fn check_start(ctx: &Ctx, app: &App) -> ApiResult<()> {
    for p in ctx.store.processes_of(&app.guid).await? {
        check_process(ctx, app, &p, true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let l = QuotaLimits {
            total_memory_in_mb: Some(1024),
            per_process_memory_in_mb: Some(512),
            total_instances: Some(4),
            total_routes: Some(2),
            total_apps: Some(3),
        };
        let used = Usage {
            memory_in_mb: 512,
            instances: 2,
            routes: 2,
            apps: 3,
        };
        let mem = |m, i| Ask {
            memory_in_mb: m * i,
            instances: i,
            instance_memory_in_mb: Some(m),
            ..Ask::default()
        };
        assert_eq!(exceeded(&l, &used, &mem(256, 2), false), None);
        assert_eq!(
            exceeded(&l, &used, &mem(256, 3), false),
            Some("memory quota_exceeded")
        );
        assert_eq!(
            exceeded(&l, &used, &mem(1024, 1), true),
            Some("memory space_instance_limit_exceeded")
        );
        assert_eq!(
            exceeded(&l, &used, &mem(1, 3), false),
            Some("instances app_instance_limit_exceeded")
        );
        let route = Ask {
            routes: 1,
            ..Ask::default()
        };
        assert_eq!(
            exceeded(&l, &used, &route, false),
            Some("routes quota_exceeded")
        );
        let app = Ask {
            apps: 1,
            ..Ask::default()
        };
        assert_eq!(
            exceeded(&l, &used, &app, false),
            Some("apps quota_exceeded")
        );
        // Unlimited, and shrinking is always fine.
        assert_eq!(
            exceeded(&QuotaLimits::default(), &used, &mem(99999, 99), false),
            None
        );
        assert_eq!(exceeded(&l, &used, &Ask::default(), false), None);
    }
}
