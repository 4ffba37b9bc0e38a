//! The deployer's executor: carries a plan out wave by wave through a
//! [`Hosts`] seam (the agents over HTTP, or [`super::sim::SimHosts`]),
//! judges each wave, rolls back when the rollout stops, and records every
//! step in the timeline before the next one, so that a deployer killed
//! at any point resumes (or finishes its rollback) when started again.

use std::time::Duration;

use super::manifest::{Manifest, Role};
use super::plan::{plan, plan_rollback, Change, Done, Wave};
use super::rollout::{judge, Event as PhaseEvent, Outcome, Phase, Tally, Verdict};
use super::state::Actual;
use super::timeline::{Timeline, TimelineError, What};

/// What the deployer needs of the hosts.
#[allow(async_fn_in_trait)]
pub trait Hosts {
    /// What every host runs now.
    async fn actual(&mut self) -> Result<Actual, String>;
    /// Moves `host`'s components in `changes` to their `to` versions
    /// (draining each first), leaving its other components alone, and
    /// waits up to `watch` for them to be healthy: how it went, and what
    /// the host said.
    async fn apply(&self, host: &str, changes: &[Change], watch: Duration) -> (Outcome, String);
    /// Stops and removes a component.
    async fn retire(&mut self, host: &str, role: Role) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    #[error("cannot read the hosts' state: {0}")]
    Hosts(String),
    #[error("deployment #{deployment} of release {release} is unfinished; deploy {release} again to resume it (or roll it back)")]
    Unfinished { deployment: u64, release: String },
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub deployment: u64,
    pub phase: Phase,
    pub reason: Option<String>,
}

/// Deploys the manifest's release: a new deployment, or the timeline's
/// unfinished one carried on (its update resumed when it is the same
/// release, its rollback finished when it was rolling back).
pub async fn deploy<H: Hosts>(
    m: &Manifest,
    hosts: &mut H,
    t: &mut Timeline,
) -> Result<Ended, DeployError> {
    let last = t.last();
    let (n, resumed, done) = match last {
        Some(l) if l.phase == Phase::RollingBack => {
            return finish_rollback(m, hosts, t, l.deployment, &l.done, &l.undone, None).await;
        }
        Some(l) if l.phase.must_resume() && l.release == m.release.version => {
            (l.deployment, true, l.done)
        }
        Some(l) if l.phase.must_resume() => {
            return Err(DeployError::Unfinished {
                deployment: l.deployment,
                release: l.release,
            })
        }
        Some(l) => (l.deployment + 1, false, Vec::new()),
        None => (1, false, Vec::new()),
    };
    t.record(
        n,
        What::Started {
            release: m.release.version.clone(),
            resumed,
        },
    )?;
    let mut done = done;
    let actual = hosts.actual().await.map_err(DeployError::Hosts)?;
    let p = plan(m, &actual);
    let mut tally = Tally::default();
    for (i, wave) in p.waves.iter().enumerate() {
        t.record(
            n,
            What::Wave {
                n: i + 1,
                group: wave.group,
                canary: wave.canary,
                rollback: false,
            },
        )?;
        let results = run_wave(m, hosts, t, n, wave, false, &mut done).await?;
        if let Verdict::RollBack { reason } =
            judge(wave.canary, &results, m.update.failure_budget, &mut tally)
        {
            let phase = Phase::Updating
                .after(PhaseEvent::Stop)
                .unwrap_or(Phase::RollingBack);
            t.record(
                n,
                What::Phase {
                    phase,
                    reason: Some(reason.clone()),
                },
            )?;
            return finish_rollback(m, hosts, t, n, &done, &[], Some(reason)).await;
        }
    }
    for (host, role) in &p.retire {
        if let Err(e) = hosts.retire(host, *role).await {
            tracing::warn!(host = %host, role = %role, error = %e, "cannot retire");
        }
        t.record(
            n,
            What::Retired {
                host: host.clone(),
                role: *role,
            },
        )?;
    }
    let phase = Phase::Updating
        .after(PhaseEvent::Finished)
        .unwrap_or(Phase::Done);
    t.record(
        n,
        What::Phase {
            phase,
            reason: None,
        },
    )?;
    Ok(Ended {
        deployment: n,
        phase,
        reason: None,
    })
}

/// Rolls back the changes in `done` not yet in `undone`.
async fn finish_rollback<H: Hosts>(
    m: &Manifest,
    hosts: &mut H,
    t: &mut Timeline,
    n: u64,
    done: &[Done],
    undone: &[Done],
    reason: Option<String>,
) -> Result<Ended, DeployError> {
    // A change its rollback already reverted is not reverted again.
    let left: Vec<Done> = done
        .iter()
        .filter(|d| {
            !undone.iter().any(|u| {
                u.host == d.host
                    && u.change.role == d.change.role
                    && u.change.from.as_deref() == Some(d.change.to.as_str())
                    && Some(u.change.to.as_str()) == d.change.from.as_deref()
            })
        })
        .cloned()
        .collect();
    let (waves, retire) = plan_rollback(m, &left);
    let mut reverted = Vec::new();
    let mut failed = None;
    for (i, wave) in waves.iter().enumerate() {
        t.record(
            n,
            What::Wave {
                n: i + 1,
                group: wave.group,
                canary: wave.canary,
                rollback: true,
            },
        )?;
        let results = run_wave(m, hosts, t, n, wave, true, &mut reverted).await?;
        if let Some((host, Outcome::Failed(why))) = results
            .iter()
            .find(|(_, o)| matches!(o, Outcome::Failed(_)))
        {
            failed = Some(format!("rollback of {host} failed: {why}"));
            break;
        }
    }
    if failed.is_none() {
        for (host, role) in &retire {
            if let Err(e) = hosts.retire(host, *role).await {
                failed = Some(format!("cannot retire {role} on {host}: {e}"));
                break;
            }
            t.record(
                n,
                What::Retired {
                    host: host.clone(),
                    role: *role,
                },
            )?;
        }
    }
    let (phase, why) = match failed {
        None => (
            Phase::RollingBack
                .after(PhaseEvent::RolledBack)
                .unwrap_or(Phase::RolledBack),
            reason,
        ),
        Some(f) => (
            Phase::RollingBack
                .after(PhaseEvent::RollbackFailed)
                .unwrap_or(Phase::Failed),
            Some(f),
        ),
    };
    t.record(
        n,
        What::Phase {
            phase,
            reason: why.clone(),
        },
    )?;
    Ok(Ended {
        deployment: n,
        phase,
        reason: why,
    })
}

/// Applies a wave's steps, its hosts at once (each recorded as applying
/// first), and records each result.
async fn run_wave<H: Hosts>(
    m: &Manifest,
    hosts: &mut H,
    t: &mut Timeline,
    n: u64,
    wave: &Wave,
    rollback: bool,
    done: &mut Vec<Done>,
) -> Result<Vec<(String, Outcome)>, DeployError> {
    for step in &wave.steps {
        t.record(
            n,
            What::Applying {
                host: step.host.clone(),
                group: wave.group,
                canary: wave.canary,
                rollback,
                changes: step.changes.clone(),
            },
        )?;
        // A step counts as changed once sent: a failed one is rolled back too.
        for c in &step.changes {
            done.push(Done {
                group: wave.group,
                canary: wave.canary,
                host: step.host.clone(),
                change: c.clone(),
            });
        }
    }
    let shared: &H = hosts;
    let outcomes = futures_util::future::join_all(
        wave.steps
            .iter()
            .map(|step| shared.apply(&step.host, &step.changes, m.update.watch_time)),
    )
    .await;
    let mut results = Vec::new();
    for (step, (outcome, output)) in wave.steps.iter().zip(outcomes) {
        t.record(
            n,
            What::Step {
                host: step.host.clone(),
                group: wave.group,
                canary: wave.canary,
                rollback,
                changes: step.changes.clone(),
                ok: outcome == Outcome::Healthy,
                output,
            },
        )?;
        results.push((step.host.clone(), outcome));
    }
    Ok(results)
}

/// Rolls the last finished deployment back (`paas rollback`): every change
/// it made, reversed, with the same care.
pub async fn rollback<H: Hosts>(
    m: &Manifest,
    hosts: &mut H,
    t: &mut Timeline,
) -> Result<Option<Ended>, DeployError> {
    let Some(last) = t.last() else {
        return Ok(None);
    };
    if last.phase == Phase::RolledBack {
        return Ok(None);
    }
    let phase = match last.phase.after(PhaseEvent::Rollback) {
        Ok(p) => p,
        Err(e) => return Err(DeployError::Hosts(e.to_string())),
    };
    t.record(
        last.deployment,
        What::Phase {
            phase,
            reason: Some("asked for by the operator".into()),
        },
    )?;
    finish_rollback(
        m,
        hosts,
        t,
        last.deployment,
        &last.done,
        &last.undone,
        Some("asked for by the operator".into()),
    )
    .await
    .map(Some)
}
