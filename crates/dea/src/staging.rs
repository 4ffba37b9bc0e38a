//! Staging (ARCHITECTURE §5, conventions "Staging"): package → buildpack
//! detect/compile/release → droplet, all output streamed as STG logs.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::{LogSource, LogStream, StagingRequest, StagingResponse};
use tokio::sync::mpsc;

use crate::backend::{Backend, Container, ContainerSpec, ExitInfo, ProcessSpec};
use crate::buildpacks;
use crate::env::parse_env_list;
use crate::error::{DeaError, Result};
use crate::outbox::{spawn_line_reader, Outbox};

pub const NO_APP_DETECTED: &str =
    "NoAppDetectedError: An app was not successfully detected by any available buildpack";
pub const NO_START_COMMAND: &str = "no start command: specify one with -c or a Procfile";
const TAIL_LINES: usize = 20;

#[derive(Clone)]
pub struct Stager {
    pub backend: Arc<dyn Backend>,
    pub outbox: Outbox,
    pub http: reqwest::Client,
    pub state_dir: PathBuf,
    pub step_timeout: Duration,
}

/// Result of building a droplet from a prepared `app/` and `cache/`.
#[derive(Debug)]
pub struct Built {
    pub buildpack: String,
    pub start_command: String,
    pub droplet: Vec<u8>,
    pub sha256: String,
}

/// A buildpack laid out at `<staging root>/buildpacks/<dir>`.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub dir: String,
}

/// The shell line running a buildpack script. The process starts in
/// `<root>/app`, so `..` is the staging root wherever the backend shows it
/// (the host path for `process`, `/home/vcap` inside a namespaced
/// container): paths are computed in the shell, not on the host.
fn bp_script(dir: &str, script: &str, with_cache: bool) -> String {
    let args = if with_cache {
        r#" "$PWD/app" "$PWD/cache""#
    } else {
        r#" "$PWD/app""#
    };
    format!(
        r#"cd .. && export HOME="$PWD" TMPDIR="$PWD/tmp" && exec "$PWD/buildpacks/{dir}/bin/{script}"{args}"#
    )
}

struct StepOutput {
    exit: ExitInfo,
    stdout: Vec<String>,
    tail: VecDeque<String>,
}

/// Keeps ids usable as directory names.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Stager {
    fn log(&self, app_id: &str, line: &str) {
        self.outbox
            .log(app_id, LogSource::Stg, None, LogStream::Stdout, line);
    }

    /// Runs one staging and always produces a reply.
    pub async fn handle(&self, req: StagingRequest) -> StagingResponse {
        let dir = self
            .state_dir
            .join("staging")
            .join(sanitize(&req.staging_id));
        let result = self.stage(&req, &dir).await;
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot clean staging dir");
            }
        }
        match result {
            Ok(b) => {
                tracing::info!(staging_id = %req.staging_id, app_id = %req.app_id, buildpack = %b.buildpack, "staging done");
                StagingResponse {
                    staging_id: req.staging_id,
                    detected_buildpack: Some(b.buildpack),
                    start_command: Some(b.start_command),
                    droplet_sha256: Some(b.sha256),
                    error: None,
                }
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(staging_id = %req.staging_id, app_id = %req.app_id, error = %msg, "staging failed");
                self.outbox.log(
                    &req.app_id,
                    LogSource::Stg,
                    None,
                    LogStream::Stderr,
                    &format!("Staging failed: {msg}"),
                );
                StagingResponse {
                    staging_id: req.staging_id,
                    detected_buildpack: None,
                    start_command: None,
                    droplet_sha256: None,
                    error: Some(msg),
                }
            }
        }
    }

    async fn stage(&self, req: &StagingRequest, dir: &Path) -> Result<Built> {
        let _ = tokio::fs::remove_dir_all(dir).await;
        // Everything the container needs is laid out under its root first
        // (host side: the container reaches neither the controller nor the
        // DEA's files), so a backend may map or re-own the root as a whole.
        let candidates = self.prepare(req, dir).await?;
        let container = self
            .backend
            .create(ContainerSpec {
                id: format!("staging-{}", sanitize(&req.staging_id)),
                root: dir.to_path_buf(),
                memory_mb: req.memory_mb,
                disk_mb: req.disk_mb,
            })
            .await?;
        let result = self.stage_in(req, &container, &candidates).await;
        if let Err(e) = self.backend.destroy(&container).await {
            tracing::warn!(error = %e, "cannot destroy staging container");
        }
        result
    }

    /// Lays out `<dir>/{app,cache,tmp,buildpacks/N}`: the package, the
    /// previous build cache, and the buildpacks to try (in order).
    async fn prepare(&self, req: &StagingRequest, dir: &Path) -> Result<Vec<Candidate>> {
        let app = dir.join("app");
        let cache = dir.join("cache");
        for d in [&app, &cache, &dir.join("tmp"), &dir.join("buildpacks")] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| DeaError::io(d, e))?;
        }
        self.log(&req.app_id, "-----> Downloading app package");
        let pkg = dir.join("package.zip");
        if crate::http::download(&self.http, &req.package_uri, &pkg)
            .await?
            .is_none()
        {
            return Err(DeaError::Staging("app package not found".into()));
        }
        let (p, a) = (pkg.clone(), app.clone());
        let skipped = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&p).map_err(|e| DeaError::io(&p, e))?;
            crate::archive::unzip_safe(std::io::BufReader::new(f), &a)
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
            match crate::http::download(&self.http, uri, &tgz).await {
                Ok(Some(_)) => {
                    self.log(&req.app_id, "-----> Downloaded build cache");
                    let (t, cd) = (tgz.clone(), cache.clone());
                    let r = tokio::task::spawn_blocking(move || {
                        let f = std::fs::File::open(&t).map_err(|e| DeaError::io(&t, e))?;
                        crate::archive::untar_gz_safe(std::io::BufReader::new(f), &cd)
                    })
                    .await;
                    if !matches!(r, Ok(Ok(_))) {
                        tracing::warn!(staging_id = %req.staging_id, "ignoring unreadable build cache");
                    }
                    let _ = tokio::fs::remove_file(&tgz).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot download build cache"),
            }
        }
        self.lay_out_buildpacks(req, dir).await
    }

    /// Copies the buildpacks to try into `<dir>/buildpacks/<n>`: the requested
    /// one, or every admin buildpack (position order) then the built-ins.
    async fn lay_out_buildpacks(&self, req: &StagingRequest, dir: &Path) -> Result<Vec<Candidate>> {
        let requested = req
            .buildpack
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "default" && *s != "null");
        let admin: Vec<&proto::AdminBuildpack> = match requested {
            Some(name) => req
                .admin_buildpacks
                .iter()
                .filter(|b| b.name == name)
                .take(1)
                .collect(),
            None => req.admin_buildpacks.iter().collect(),
        };
        let mut out = Vec::new();
        let cache_dir = self.state_dir.join("admin_buildpacks");
        for bp in admin {
            if requested.is_none() {
                self.log(
                    &req.app_id,
                    &format!("-----> Fetching buildpack {}", bp.name),
                );
            }
            let src = buildpacks::admin::ensure(&self.http, &cache_dir, bp).await?;
            let dst = dir.join("buildpacks").join(out.len().to_string());
            tokio::task::spawn_blocking(move || buildpacks::admin::copy_dir(&src, &dst))
                .await
                .map_err(|e| DeaError::Staging(format!("copy task: {e}")))??;
            out.push(Candidate {
                name: bp.name.clone(),
                dir: out.len().to_string(),
            });
        }
        let builtins: Vec<&buildpacks::Builtin> = match requested {
            Some(_) if !out.is_empty() => Vec::new(),
            Some(name) => vec![buildpacks::builtin(name)
                .ok_or_else(|| DeaError::Staging(format!("buildpack {name} not found")))?],
            None => buildpacks::BUILTINS
                .iter()
                .filter(|b| b.detectable)
                .collect(),
        };
        for b in builtins {
            let dst = dir.join("buildpacks").join(out.len().to_string());
            buildpacks::install_one(b, &dst)?;
            out.push(Candidate {
                name: b.name.to_string(),
                dir: out.len().to_string(),
            });
        }
        if requested.is_none()
            && req
                .start_command
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
            && !out.iter().any(|c| c.name == buildpacks::FALLBACK)
        {
            if let Some(b) = buildpacks::builtin(buildpacks::FALLBACK) {
                let dst = dir.join("buildpacks").join(out.len().to_string());
                buildpacks::install_one(b, &dst)?;
                out.push(Candidate {
                    name: b.name.to_string(),
                    dir: out.len().to_string(),
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
    ) -> Result<Built> {
        let built = self.build(req, c, candidates).await?;

        self.log(&req.app_id, "-----> Uploading droplet");
        let size = built.droplet.len();
        crate::http::upload(&self.http, &req.droplet_upload_uri, built.droplet.clone()).await?;
        self.log(
            &req.app_id,
            &format!(
                "-----> Uploaded droplet ({:.1}M)",
                size as f64 / 1_048_576.0
            ),
        );
        if let Some(uri) = req.cache_upload_uri.as_deref().filter(|u| !u.is_empty()) {
            let cd = c.root.join("cache");
            let tgz = tokio::task::spawn_blocking(move || {
                crate::archive::tar_gz(Vec::new(), &[(".", &cd)], &[])
            })
            .await
            .map_err(|e| DeaError::Staging(format!("cache tar task: {e}")))?;
            match tgz {
                Ok(bytes) => {
                    if let Err(e) = crate::http::upload(&self.http, uri, bytes).await {
                        tracing::warn!(error = %e, "cannot upload build cache");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot pack build cache"),
            }
        }
        Ok(built)
    }

    /// Detect, compile, release and pack `<container>/app` into a droplet.
    pub async fn build(
        &self,
        req: &StagingRequest,
        c: &Container,
        candidates: &[Candidate],
    ) -> Result<Built> {
        let app = c.root.join("app");
        let explicit = req
            .buildpack
            .as_deref()
            .map(str::trim)
            .is_some_and(|s| !s.is_empty() && s != "default" && s != "null");
        let bp = if explicit {
            candidates
                .first()
                .ok_or_else(|| DeaError::Staging("no buildpack to run".into()))?
        } else {
            self.detect(req, c, candidates).await?
        };
        let name = bp.name.clone();
        self.log(&req.app_id, &format!("-----> Using buildpack {name}"));

        let out = self
            .step(req, c, bp_script(&bp.dir, "compile", true), true)
            .await?;
        if !out.exit.success() {
            let tail: Vec<String> = out.tail.into_iter().collect();
            return Err(DeaError::Staging(format!(
                "BuildpackCompileFailed: {}",
                tail.join("\n")
            )));
        }

        let out = self
            .step(req, c, bp_script(&bp.dir, "release", false), false)
            .await?;
        if !out.exit.success() {
            return Err(DeaError::Staging(format!(
                "BuildpackReleaseFailed: {}",
                out.exit.description()
            )));
        }
        let release = buildpacks::release_web(&out.stdout.join("\n"))?;
        let procfile = tokio::fs::read_to_string(app.join("Procfile"))
            .await
            .ok()
            .and_then(|t| buildpacks::procfile_web(&t));
        let start_command = buildpacks::choose_start_command(
            req.start_command.as_deref(),
            procfile.as_deref(),
            release.as_deref(),
        )
        .ok_or_else(|| DeaError::Staging(NO_START_COMMAND.into()))?;
        // Nothing of the build may still be writing while the droplet is packed.
        if let Err(e) = self.backend.stop(c, Duration::from_millis(500)).await {
            tracing::warn!(error = %e, "cannot stop staging processes");
        }

        let info = proto::droplet::StagingInfo {
            detected_buildpack: name.clone(),
            start_command: start_command.clone(),
        };
        let root = c.root.clone();
        let droplet = tokio::task::spawn_blocking(move || {
            crate::archive::tar_gz(
                Vec::new(),
                &[(proto::droplet::APP_DIR, &root.join("app"))],
                &[(proto::droplet::STAGING_INFO_FILE, info.to_yaml().as_bytes())],
            )
        })
        .await
        .map_err(|e| DeaError::Staging(format!("droplet tar task: {e}")))??;
        let sha256 = crate::http::sha256_hex(&droplet);
        Ok(Built {
            buildpack: name,
            start_command,
            droplet,
            sha256,
        })
    }

    /// The first candidate whose `bin/detect` exits 0.
    async fn detect<'a>(
        &self,
        req: &StagingRequest,
        c: &Container,
        candidates: &'a [Candidate],
    ) -> Result<&'a Candidate> {
        for cand in candidates {
            if self
                .step(req, c, bp_script(&cand.dir, "detect", false), false)
                .await?
                .exit
                .success()
            {
                return Ok(cand);
            }
        }
        // Nothing detected, but the user said how to run it.
        let has_command = req
            .start_command
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        candidates
            .iter()
            .find(|c| has_command && c.name == buildpacks::FALLBACK)
            .ok_or_else(|| DeaError::Staging(NO_APP_DETECTED.into()))
    }

    fn step_env(&self, req: &StagingRequest, c: &Container) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), host_path()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        env.extend(parse_env_list(&req.env));
        env.extend([
            ("HOME".to_string(), c.root.display().to_string()),
            (
                "TMPDIR".to_string(),
                c.root.join("tmp").display().to_string(),
            ),
            ("MEMORY_LIMIT".to_string(), format!("{}m", req.memory_mb)),
            ("CF_STACK".to_string(), req.stack.clone()),
        ]);
        env
    }

    /// Runs one buildpack script, streaming its lines as STG logs (stdout
    /// only when `echo_stdout`: detect and release print machine-readable
    /// answers, not progress).
    async fn step(
        &self,
        req: &StagingRequest,
        c: &Container,
        script: String,
        echo_stdout: bool,
    ) -> Result<StepOutput> {
        let spec = ProcessSpec {
            script,
            env: self.step_env(req, c),
            cwd: c.root.join("app"),
        };
        let sp = self.backend.spawn(c, spec).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        spawn_line_reader(sp.stdout, LogStream::Stdout, tx.clone());
        spawn_line_reader(sp.stderr, LogStream::Stderr, tx);
        let wait = sp.wait;
        let run = async {
            let mut stdout = Vec::new();
            let mut tail = VecDeque::new();
            while let Some((stream, line)) = rx.recv().await {
                if echo_stdout || stream == LogStream::Stderr {
                    self.outbox
                        .log(&req.app_id, LogSource::Stg, None, stream, &line);
                }
                if stream == LogStream::Stdout {
                    stdout.push(line.clone());
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            let exit = wait.await?;
            Ok::<_, DeaError>(StepOutput { exit, stdout, tail })
        };
        match tokio::time::timeout(self.step_timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.backend.stop(c, Duration::from_secs(1)).await;
                Err(DeaError::Staging(format!(
                    "staging timed out after {}s",
                    self.step_timeout.as_secs()
                )))
            }
        }
    }
}

/// The DEA's own PATH (the host's runtimes), or a sane default.
pub fn host_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpack_scripts_resolve_paths_from_the_working_dir() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canon");
        let bin = root.join("buildpacks/3/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        std::fs::write(
            bin.join("compile"),
            "#!/bin/sh\necho \"$1|$2|$HOME|$TMPDIR\"\n",
        )
        .expect("write");
        std::fs::set_permissions(bin.join("compile"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(bp_script("3", "compile", true))
            .current_dir(root.join("app"))
            .output()
            .expect("run");
        let r = root.display();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{r}/app|{r}/cache|{r}|{r}/tmp")
        );
    }

    #[test]
    fn sanitizes_ids() {
        assert_eq!(sanitize("../a b"), "___a_b");
        assert_eq!(sanitize("ab-1_2"), "ab-1_2");
    }
}
