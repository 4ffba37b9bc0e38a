//! One staging (docs/architecture.md §8, docs/buildpacks.md): the package, the
//! build cache and the buildpacks are laid out on the host, then the build
//! runs in a container: detect (or the named chain of buildpacks: supply,
//! then finalize or compile), release, and the droplet and the cache packed
//! *inside* the container onto a pipe. The host never opens a path the
//! build could have replaced.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::{
    BuildpackUsed, LogSource, LogStream, StagingErrorId, StagingFailure, StagingRequest,
    StagingResult,
};
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::plan::{self, Candidate, Phase};
use super::slots::Slots;
use crate::backend::{Backend, Container, ContainerSpec, ExitInfo, ProcessSpec};
use crate::buildpacks;
use crate::env::parse_env_list;
use crate::error::{DeaError, Result};
use crate::outbox::{spawn_line_reader, Outbox, LINE_CHANNEL};
use proto::archive::ArchiveLimits;

pub const NO_START_COMMAND: &str = "no start command: specify one with -c or a Procfile";
/// Lines kept for an error's quote.
const TAIL_LINES: usize = 20;
/// Most of a phase's stdout kept for parsing (detect, release, Procfile).
const CAPTURE_BYTES: usize = 1024 * 1024;
/// Most a build cache may weigh.
const MAX_CACHE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Clone)]
pub struct Stager {
    pub backend: Arc<dyn Backend>,
    pub outbox: Outbox,
    pub http: reqwest::Client,
    pub state_dir: PathBuf,
    /// Named in results and errors.
    pub dea_id: String,
    /// Host variables every build gets (package index settings: pip's and
    /// npm's), from the DEA's `staging_env_passthrough`.
    pub passthrough: Vec<(String, String)>,
    /// Bounds on the package, buildpack and cache archives.
    pub limits: ArchiveLimits,
    /// Builds at once (`max_concurrent_stagings`); the others wait.
    pub slots: Arc<Slots>,
}

/// A built droplet, packed into a host file.
#[derive(Debug)]
pub struct Built {
    pub buildpacks: Vec<BuildpackUsed>,
    pub start_command: String,
    pub config_vars: BTreeMap<String, String>,
    pub droplet: PathBuf,
    pub sha256: String,
    pub size: u64,
}

struct StepOutput {
    exit: ExitInfo,
    stdout: Vec<String>,
    tail: VecDeque<String>,
}

fn mb(bytes: u64) -> String {
    format!("{:.1}M", bytes as f64 / 1_048_576.0)
}

fn failure(id: StagingErrorId, msg: impl Into<String>) -> DeaError {
    DeaError::Failed(StagingFailure::new(id, msg))
}

impl Stager {
    fn log(&self, app_id: &str, line: &str) {
        self.outbox
            .log(app_id, LogSource::Stg, None, LogStream::Stdout, line);
    }

    fn work_dir(&self, req: &StagingRequest) -> PathBuf {
        self.state_dir
            .join("staging")
            .join(plan::sanitize(&req.staging_id))
    }

    /// Runs one staging to its end (its timeout included).
    pub async fn handle(&self, req: StagingRequest) -> StagingResult {
        self.run(req, std::future::pending()).await
    }

    /// Runs one staging until it ends, `stop` resolves (with the reason) or
    /// the request's timeout passes; always produces a result, and leaves no
    /// container and no files behind.
    pub async fn run(
        &self,
        req: StagingRequest,
        stop: impl Future<Output = StagingFailure>,
    ) -> StagingResult {
        let dir = self.work_dir(&req);
        let out_dir = self.state_dir.join("staging-out");
        let timeout = Duration::from_secs(req.timeout_s.max(1));
        let deadline = tokio::time::Instant::now() + timeout;
        let expired = async move {
            tokio::time::sleep_until(deadline).await;
            StagingFailure::new(
                StagingErrorId::StagingTimeExpired,
                format!(
                    "staging did not finish within {} s (the platform's staging timeout); the build was stopped",
                    timeout.as_secs()
                ),
            )
        };
        let stop = async move {
            tokio::select! {
                f = stop => f,
                f = expired => f,
            }
        };
        tokio::pin!(stop);
        let droplet = out_dir.join(format!("{}.tgz", plan::sanitize(&req.staging_id)));
        let slot = tokio::select! {
            s = self.slots.acquire(|ahead| {
                self.log(
                    &req.app_id,
                    &format!(
                        "-----> Waiting for a staging slot: {ahead} ahead ({} building on this DEA at once)",
                        self.slots.max()
                    ),
                )
            }) => Ok(s),
            f = stop.as_mut() => Err(DeaError::Failed(f)),
        };
        let result = match slot {
            Ok(_slot) => self.stage(&req, &dir, &droplet, &mut stop).await,
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&droplet).await;
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot clean staging dir");
            }
        }
        match result {
            Ok(b) => {
                tracing::info!(staging_id = %req.staging_id, app_id = %req.app_id, buildpack = ?b.buildpacks.last(), "staging done");
                StagingResult {
                    staging_id: req.staging_id,
                    dea_id: self.dea_id.clone(),
                    buildpacks: b.buildpacks,
                    start_command: Some(b.start_command),
                    droplet_sha256: Some(b.sha256),
                    config_vars: b.config_vars,
                    error: None,
                }
            }
            Err(e) => {
                let f = e.into_failure();
                tracing::warn!(staging_id = %req.staging_id, app_id = %req.app_id, error = %f, "staging failed");
                self.outbox.log(
                    &req.app_id,
                    LogSource::Stg,
                    None,
                    LogStream::Stderr,
                    &format!("Staging failed: {f}"),
                );
                StagingResult::failed(&req.staging_id, &self.dea_id, f)
            }
        }
    }

    async fn stage(
        &self,
        req: &StagingRequest,
        dir: &Path,
        droplet: &Path,
        stop: &mut std::pin::Pin<&mut impl Future<Output = StagingFailure>>,
    ) -> Result<Built> {
        let _ = tokio::fs::remove_dir_all(dir).await;
        if let Some(parent) = droplet.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| DeaError::io(parent, e))?;
        }
        // Everything the container needs is laid out under its root first
        // (host side: the container reaches neither the controller nor the
        // DEA's files), so a backend may map or re-own the root as a whole.
        let candidates = tokio::select! {
            r = self.prepare(req, dir) => r?,
            f = stop.as_mut() => return Err(DeaError::Failed(f)),
        };
        let container = self
            .backend
            .create(ContainerSpec {
                id: format!("staging-{}", plan::sanitize(&req.staging_id)),
                root: dir.to_path_buf(),
                memory_mb: req.memory_mb,
                disk_mb: req.disk_mb,
                egress: req.egress.clone(),
            })
            .await?;
        let result = tokio::select! {
            r = self.stage_in(req, &container, &candidates, droplet) => r,
            f = stop.as_mut() => Err(DeaError::Failed(f)),
        };
        if let Err(e) = self.backend.destroy(&container).await {
            tracing::warn!(error = %e, "cannot destroy staging container");
        }
        result
    }

    /// Lays out `<dir>/{app,cache,deps,profile.d,tmp,buildpacks/N}`: the
    /// package, the previous build cache, and the buildpacks to try (in
    /// order).
    async fn prepare(&self, req: &StagingRequest, dir: &Path) -> Result<Vec<Candidate>> {
        let app = dir.join("app");
        let cache = dir.join("cache");
        for d in [
            &app,
            &cache,
            &dir.join("tmp"),
            &dir.join("buildpacks"),
            &dir.join("deps"),
            &dir.join("profile.d"),
        ] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| DeaError::io(d, e))?;
        }
        let limits = self
            .limits
            .unpacked_at_most(req.disk_mb.saturating_mul(1024 * 1024));
        self.log(&req.app_id, "-----> Downloading app package");
        let pkg = dir.join("package.zip");
        if crate::http::download(&self.http, &req.package_uri, &pkg, limits.max_packed_bytes)
            .await?
            .is_none()
        {
            return Err(DeaError::Staging("app package not found".into()));
        }
        let (p, a) = (pkg.clone(), app.clone());
        let skipped = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&p).map_err(|e| DeaError::io(&p, e))?;
            crate::archive::unzip_safe(std::io::BufReader::new(f), &a, limits)
        })
        .await
        .map_err(|e| DeaError::Staging(format!("unzip task: {e}")))??;
        let _ = tokio::fs::remove_file(&pkg).await;
        if skipped > 0 {
            self.log(
                &req.app_id,
                &format!("-----> Skipped {skipped} unsafe entries of the package (paths or links leaving the app)"),
            );
        }

        if let Some(uri) = req.cache_download_uri.as_deref().filter(|u| !u.is_empty()) {
            let tgz = dir.join("cache.tgz");
            match crate::http::download(&self.http, uri, &tgz, MAX_CACHE_BYTES).await {
                Ok(Some(_)) => {
                    let size = tokio::fs::metadata(&tgz)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    let (t, cd) = (tgz.clone(), cache.clone());
                    let cache_limits = self.limits.unpacked_at_most(MAX_CACHE_BYTES);
                    let r = tokio::task::spawn_blocking(move || {
                        let f = std::fs::File::open(&t).map_err(|e| DeaError::io(&t, e))?;
                        crate::archive::untar_gz_safe(
                            std::io::BufReader::new(f),
                            &cd,
                            cache_limits,
                            size,
                        )
                    })
                    .await;
                    if matches!(r, Ok(Ok(_))) {
                        self.log(
                            &req.app_id,
                            &format!("-----> Restored the build cache ({})", mb(size)),
                        );
                    } else {
                        tracing::warn!(staging_id = %req.staging_id, "ignoring unreadable build cache");
                        let _ = tokio::fs::remove_dir_all(&cache).await;
                        let _ = tokio::fs::create_dir_all(&cache).await;
                    }
                    let _ = tokio::fs::remove_file(&tgz).await;
                }
                Ok(None) => self.log(&req.app_id, "-----> No build cache yet"),
                Err(e) => tracing::warn!(error = %e, "cannot download build cache"),
            }
        }
        let candidates = self.lay_out_buildpacks(req, dir).await?;
        // The cache directories the chain uses; anything else in the cache
        // is dropped, as in CF. (Decided now: before the container ran.)
        let requested = plan::requested(&req.buildpacks);
        let mut keep = vec!["final".to_string()];
        if !requested.is_empty() {
            let n = candidates.len();
            for (i, c) in candidates.iter().enumerate() {
                keep.push(plan::cache_dir(&c.name, i + 1 == n));
            }
        }
        if let Ok(mut rd) = tokio::fs::read_dir(&cache).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let name = e.file_name().to_string_lossy().to_string();
                if !keep.contains(&name) {
                    let p = e.path();
                    let _ = match e.file_type().await {
                        Ok(t) if t.is_dir() => tokio::fs::remove_dir_all(&p).await,
                        _ => tokio::fs::remove_file(&p).await,
                    };
                }
            }
        }
        let chain = if requested.is_empty() {
            1
        } else {
            candidates.len()
        };
        for d in keep
            .iter()
            .map(|k| cache.join(k))
            .chain((0..chain).map(|i| dir.join("deps").join(i.to_string())))
        {
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(|e| DeaError::io(&d, e))?;
        }
        Ok(candidates)
    }

    /// Copies the buildpacks into `<dir>/buildpacks/<n>`: the named chain,
    /// or every admin buildpack (position order) then the built-ins to
    /// detect from.
    async fn lay_out_buildpacks(&self, req: &StagingRequest, dir: &Path) -> Result<Vec<Candidate>> {
        let requested = plan::requested(&req.buildpacks);
        let cache_dir = self.state_dir.join("admin_buildpacks");
        let mut out: Vec<Candidate> = Vec::new();
        let names: Vec<Option<&str>> = if requested.is_empty() {
            req.admin_buildpacks
                .iter()
                .map(|b| Some(b.name.as_str()))
                .chain(
                    buildpacks::BUILTINS
                        .iter()
                        .filter(|b| b.detectable)
                        .map(|b| Some(b.name)),
                )
                .collect()
        } else {
            requested.iter().map(|n| Some(n.as_str())).collect()
        };
        for name in names.into_iter().flatten() {
            let dst = dir.join("buildpacks").join(out.len().to_string());
            if let Some(bp) = req.admin_buildpacks.iter().find(|b| b.name == name) {
                if requested.is_empty() {
                    self.log(
                        &req.app_id,
                        &format!("-----> Fetching buildpack {}", bp.name),
                    );
                }
                let src =
                    buildpacks::admin::ensure(&self.http, &cache_dir, bp, self.limits).await?;
                let d = dst.clone();
                tokio::task::spawn_blocking(move || buildpacks::admin::copy_dir(&src, &d))
                    .await
                    .map_err(|e| DeaError::Staging(format!("copy task: {e}")))??;
            } else if let Some(b) = buildpacks::builtin(name) {
                buildpacks::install_one(b, &dst)?;
            } else {
                let builtin: Vec<&str> = buildpacks::BUILTINS.iter().map(|b| b.name).collect();
                return Err(DeaError::Staging(format!(
                    "buildpack {name} not found (admin buildpacks: {}; built-in: {})",
                    if req.admin_buildpacks.is_empty() {
                        "none".to_string()
                    } else {
                        req.admin_buildpacks
                            .iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    builtin.join(", ")
                )));
            }
            let bin = dst.join("bin");
            out.push(Candidate {
                name: name.to_string(),
                dir: out.len().to_string(),
                has_supply: bin.join("supply").is_file(),
                has_finalize: bin.join("finalize").is_file(),
            });
        }
        if requested.is_empty()
            && has_start_command(req)
            && !out.iter().any(|c| c.name == buildpacks::FALLBACK)
        {
            if let Some(b) = buildpacks::builtin(buildpacks::FALLBACK) {
                let dst = dir.join("buildpacks").join(out.len().to_string());
                buildpacks::install_one(b, &dst)?;
                out.push(Candidate {
                    name: b.name.to_string(),
                    dir: out.len().to_string(),
                    has_supply: false,
                    has_finalize: false,
                });
            }
        }
        Ok(out)
    }

    async fn stage_in(
        &self,
        req: &StagingRequest,
        c: &Container,
        candidates: &[Candidate],
        droplet: &Path,
    ) -> Result<Built> {
        let built = self.build(req, c, candidates, droplet).await?;
        self.log(&req.app_id, "-----> Uploading droplet");
        crate::http::upload_file(&self.http, &req.droplet_upload_uri, &built.droplet).await?;
        self.log(
            &req.app_id,
            &format!("-----> Uploaded droplet ({})", mb(built.size)),
        );
        if let Some(uri) = req.cache_upload_uri.as_deref().filter(|u| !u.is_empty()) {
            let tgz = droplet.with_extension("cache.tgz");
            let packed = self
                .pack(
                    req,
                    c,
                    plan::PACK_CACHE,
                    self.clean_env(c),
                    &tgz,
                    MAX_CACHE_BYTES,
                )
                .await;
            match packed {
                Ok((_, size)) => match crate::http::upload_file(&self.http, uri, &tgz).await {
                    Ok(()) => self.log(
                        &req.app_id,
                        &format!("-----> Saved the build cache ({})", mb(size)),
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot upload build cache"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot pack build cache"),
            }
            let _ = tokio::fs::remove_file(&tgz).await;
        }
        Ok(built)
    }

    /// Runs the buildpacks, then packs the droplet into `droplet`.
    pub async fn build(
        &self,
        req: &StagingRequest,
        c: &Container,
        candidates: &[Candidate],
        droplet: &Path,
    ) -> Result<Built> {
        let (user, dropped) = plan::user_env(parse_env_list(&req.env));
        if !dropped.is_empty() {
            self.log(
                &req.app_id,
                &format!(
                    "-----> Not passing {} to buildpacks (shell start-up and loader variables)",
                    dropped.join(", ")
                ),
            );
        }
        let env = self.step_env(req, c, user);
        let requested = plan::requested(&req.buildpacks);
        let (chain, used): (Vec<&Candidate>, Vec<BuildpackUsed>) = if requested.is_empty() {
            let (cand, out) = self.detect(req, c, candidates, &env).await?;
            (
                vec![cand],
                vec![BuildpackUsed {
                    name: cand.name.clone(),
                    detect_output: Some(out),
                }],
            )
        } else {
            (
                candidates.iter().collect(),
                candidates
                    .iter()
                    .map(|c| BuildpackUsed {
                        name: c.name.clone(),
                        detect_output: None,
                    })
                    .collect(),
            )
        };
        let Some((last, supplies)) = chain.split_last() else {
            return Err(DeaError::Staging("no buildpack to run".into()));
        };
        for (i, bp) in supplies.iter().enumerate() {
            if !bp.has_supply {
                return Err(failure(
                    StagingErrorId::BuildpackCompileFailed,
                    format!(
                        "{}: cannot supply dependencies for another buildpack (it has no bin/supply); only the last buildpack of a push may lack it",
                        bp.name
                    ),
                ));
            }
            self.log(
                &req.app_id,
                &format!("-----> Supplying with buildpack {}", bp.name),
            );
            self.phase(
                req,
                c,
                &env,
                bp,
                Phase::Supply { index: i },
                &plan::cache_dir(&bp.name, false),
                true,
            )
            .await?;
        }
        let n = supplies.len();
        self.log(
            &req.app_id,
            &format!("-----> Using buildpack {}", last.name),
        );
        if last.has_finalize {
            if last.has_supply {
                self.phase(
                    req,
                    c,
                    &env,
                    last,
                    Phase::Supply { index: n },
                    "final",
                    true,
                )
                .await?;
            }
            self.phase(
                req,
                c,
                &env,
                last,
                Phase::Finalize { index: n },
                "final",
                true,
            )
            .await?;
        } else {
            if n > 0 {
                self.log(
                    &req.app_id,
                    &format!(
                        "-----> {} has no bin/finalize: running its bin/compile, with what the other buildpacks supplied on its PATH",
                        last.name
                    ),
                );
            }
            self.phase(
                req,
                c,
                &env,
                last,
                Phase::Compile { supplies: n },
                "final",
                true,
            )
            .await?;
        }
        let out = self
            .phase(req, c, &env, last, Phase::Release, "final", false)
            .await?;
        let release = plan::parse_release(&last.name, &out.stdout.join("\n"))?;
        let procfile = {
            let out = self
                .step(
                    req,
                    c,
                    plan::READ_PROCFILE.to_string(),
                    self.clean_env(c),
                    false,
                )
                .await?;
            out.exit
                .success()
                .then(|| buildpacks::procfile_web(&out.stdout.join("\n")))
                .flatten()
        };
        let start_command = buildpacks::choose_start_command(
            req.start_command.as_deref(),
            procfile.as_deref(),
            release.web.as_deref(),
        )
        .ok_or_else(|| DeaError::Staging(NO_START_COMMAND.into()))?;
        // Nothing of the build may still be writing while the droplet is packed.
        if let Err(e) = self.backend.stop(c, Duration::from_millis(500)).await {
            tracing::warn!(error = %e, "cannot stop staging processes");
        }
        let info = proto::droplet::StagingInfo {
            detected_buildpack: last.name.clone(),
            start_command: start_command.clone(),
        };
        let mut env = self.clean_env(c);
        env.push((
            "PAAS_STAGING_INFO".into(),
            info.to_yaml().trim_end().to_string(),
        ));
        // The controller takes droplets up to its upload limit.
        let limit = req
            .disk_mb
            .saturating_mul(1024 * 1024)
            .min(self.limits.max_packed_bytes);
        let (sha256, size) = self
            .pack(req, c, plan::PACK_DROPLET, env, droplet, limit)
            .await
            .map_err(|e| match e {
                DeaError::Failed(f) => DeaError::Failed(f),
                other => DeaError::Staging(format!("cannot pack the droplet: {other}")),
            })?;
        Ok(Built {
            buildpacks: used,
            start_command,
            config_vars: release.config_vars,
            droplet: droplet.to_path_buf(),
            sha256,
            size,
        })
    }

    /// Runs one buildpack phase (its stdout in the log when `echo`); a
    /// non-zero exit is the build's error.
    #[allow(clippy::too_many_arguments)]
    async fn phase(
        &self,
        req: &StagingRequest,
        c: &Container,
        env: &[(String, String)],
        bp: &Candidate,
        phase: Phase,
        cache: &str,
        echo: bool,
    ) -> Result<StepOutput> {
        let out = self
            .step(
                req,
                c,
                plan::phase_script(bp, phase, cache),
                env.to_vec(),
                echo,
            )
            .await?;
        if out.exit.success() {
            Ok(out)
        } else {
            Err(DeaError::Failed(plan::phase_failed(
                &bp.name, phase, &out.exit, &out.tail,
            )))
        }
    }

    /// The first candidate whose `bin/detect` exits 0, with what it printed.
    async fn detect<'a>(
        &self,
        req: &StagingRequest,
        c: &Container,
        candidates: &'a [Candidate],
        env: &[(String, String)],
    ) -> Result<(&'a Candidate, String)> {
        for cand in candidates {
            let out = self
                .step(
                    req,
                    c,
                    plan::phase_script(cand, Phase::Detect, "final"),
                    env.to_vec(),
                    false,
                )
                .await?;
            if out.exit.success() {
                let first = out
                    .stdout
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().to_string())
                    .unwrap_or_else(|| cand.name.clone());
                return Ok((cand, first));
            }
        }
        // Nothing detected, but the user said how to run it.
        candidates
            .iter()
            .find(|c| has_start_command(req) && c.name == buildpacks::FALLBACK)
            .map(|c| (c, c.name.clone()))
            .ok_or_else(|| DeaError::Failed(StagingFailure::no_app_detected()))
    }

    /// The environment of buildpack phases: the host's package index
    /// settings, the user's variables (minus shell start-up and loader
    /// ones), then the platform's.
    fn step_env(
        &self,
        req: &StagingRequest,
        c: &Container,
        user: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), host_path()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        env.extend(self.passthrough.iter().cloned());
        env.extend(user);
        env.extend([
            ("HOME".to_string(), c.root.display().to_string()),
            (
                "TMPDIR".to_string(),
                c.root.join("tmp").display().to_string(),
            ),
            (
                "DEPS_DIR".to_string(),
                c.root.join("deps").display().to_string(),
            ),
            ("MEMORY_LIMIT".to_string(), format!("{}m", req.memory_mb)),
            ("CF_STACK".to_string(), req.stack.clone()),
        ]);
        // Bound services, as CF's stager sees them.
        let services = req
            .vcap_services
            .clone()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(url) = proto::vcap::database_url(&services) {
            if !env.iter().any(|(k, _)| k == "DATABASE_URL") {
                env.push(("DATABASE_URL".to_string(), url));
            }
        }
        env.push(("VCAP_SERVICES".to_string(), services.to_string()));
        env
    }

    /// The environment of the platform's own steps (packing, Procfile):
    /// nothing from the user (`TAR_OPTIONS`, `GZIP` ...).
    fn clean_env(&self, c: &Container) -> Vec<(String, String)> {
        vec![
            ("PATH".to_string(), host_path()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("HOME".to_string(), c.root.display().to_string()),
        ]
    }

    /// Runs one script in the container, streaming its lines as STG logs
    /// (stdout only when `echo_stdout`: detect, release and the Procfile
    /// print answers, not progress).
    async fn step(
        &self,
        req: &StagingRequest,
        c: &Container,
        script: String,
        env: Vec<(String, String)>,
        echo_stdout: bool,
    ) -> Result<StepOutput> {
        let spec = ProcessSpec {
            script,
            env,
            cwd: c.root.join("app"),
        };
        let sp = self.backend.spawn(c, spec).await?;
        let (tx, mut rx) = mpsc::channel(LINE_CHANNEL);
        spawn_line_reader(sp.stdout, LogStream::Stdout, tx.clone());
        spawn_line_reader(sp.stderr, LogStream::Stderr, tx);
        let mut stdout = Vec::new();
        let mut captured = 0usize;
        let mut tail = VecDeque::new();
        while let Some((stream, line)) = rx.recv().await {
            if echo_stdout || stream == LogStream::Stderr {
                self.outbox
                    .log(&req.app_id, LogSource::Stg, None, stream, &line);
            }
            if stream == LogStream::Stdout && captured < CAPTURE_BYTES {
                captured += line.len() + 1;
                stdout.push(line.clone());
            }
            push_tail(&mut tail, line);
        }
        let exit = sp.wait.await?;
        Ok(StepOutput { exit, stdout, tail })
    }

    /// Runs a packing script in the container and writes what it prints
    /// to `dest` (a host file the container cannot reach), at most `limit`
    /// bytes; returns the sha256 and the size.
    async fn pack(
        &self,
        req: &StagingRequest,
        c: &Container,
        script: &str,
        env: Vec<(String, String)>,
        dest: &Path,
        limit: u64,
    ) -> Result<(String, u64)> {
        let sp = self
            .backend
            .spawn(
                c,
                ProcessSpec {
                    script: script.to_string(),
                    env,
                    cwd: c.root.join("app"),
                },
            )
            .await?;
        let (tx, mut rx) = mpsc::channel(LINE_CHANNEL);
        spawn_line_reader(sp.stderr, LogStream::Stderr, tx);
        let outbox = self.outbox.clone();
        let app_id = req.app_id.clone();
        let errors = tokio::spawn(async move {
            let mut tail = VecDeque::new();
            while let Some((stream, line)) = rx.recv().await {
                outbox.log(&app_id, LogSource::Stg, None, stream, &line);
                push_tail(&mut tail, line);
            }
            tail
        });
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| DeaError::io(dest, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut size: u64 = 0;
        let mut over = false;
        if let Some(mut r) = sp.stdout {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf).await.map_err(|e| DeaError::io(dest, e))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > limit {
                    over = true;
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| DeaError::io(dest, e))?;
            }
        }
        file.flush().await.map_err(|e| DeaError::io(dest, e))?;
        if over {
            let _ = self.backend.stop(c, Duration::ZERO).await;
            let _ = sp.wait.await;
            return Err(DeaError::Staging(format!(
                "more than {} MB (the staging disk limit)",
                limit / (1024 * 1024)
            )));
        }
        let exit = sp.wait.await?;
        let tail = errors.await.unwrap_or_default();
        if !exit.success() {
            let last: Vec<String> = tail.into_iter().collect();
            return Err(DeaError::Staging(format!(
                "packing {}: {}",
                exit.description(),
                last.join("; ")
            )));
        }
        Ok((hex::encode(hasher.finalize()), size))
    }
}

/// Keeps the last [`TAIL_LINES`] lines (quoted in an error).
fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// Whether the user gave a start command (`-c`, manifest): then the
/// fallback buildpack runs what nothing else detected.
fn has_start_command(req: &StagingRequest) -> bool {
    req.start_command
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
}

/// The DEA's own PATH (the host's runtimes), or a sane default.
pub fn host_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}
