//! The pure parts of a staging: which buildpacks run in which role, the
//! shell line of each buildpack phase, the build's environment, and the
//! errors a failed phase reads as (docs/buildpacks.md).

use std::collections::{BTreeMap, VecDeque};

use proto::{StagingErrorId, StagingFailure};

use crate::backend::ExitInfo;
use crate::error::{DeaError, Result};

/// A buildpack laid out at `<staging root>/buildpacks/<dir>`, with the
/// scripts it has (looked at on the host before the container ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub dir: String,
    pub has_supply: bool,
    pub has_finalize: bool,
}

/// A phase of CF's buildpack contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Detect,
    /// `bin/supply <app> <cache> <deps> <index>`.
    Supply {
        index: usize,
    },
    /// `bin/finalize <app> <cache> <deps> <index> <profile.d>`.
    Finalize {
        index: usize,
    },
    /// `bin/compile <app> <cache>`, after `supplies` supply buildpacks.
    Compile {
        supplies: usize,
    },
    Release,
}

impl Phase {
    pub fn script(self) -> &'static str {
        match self {
            Phase::Detect => "detect",
            Phase::Supply { .. } => "supply",
            Phase::Finalize { .. } => "finalize",
            Phase::Compile { .. } => "compile",
            Phase::Release => "release",
        }
    }
}

/// The build cache directory a buildpack gets: `cache/final` for the final
/// one (as in CF), `cache/supply-<name>` for each supplier.
pub fn cache_dir(name: &str, last: bool) -> String {
    if last {
        "final".to_string()
    } else {
        format!("supply-{}", sanitize(name))
    }
}

/// Keeps ids and names usable as single path components.
pub fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// The shell line running one phase. The process starts in `<root>/app`,
/// so `..` is the staging root wherever the backend shows it (the host path
/// for `process`, `/home/vcap` inside a namespaced container): paths are
/// computed by the shell, not on the host.
pub fn phase_script(c: &Candidate, phase: Phase, cache: &str) -> String {
    let bin = format!(r#""$PWD/buildpacks/{}/bin/{}""#, c.dir, phase.script());
    let app = r#""$PWD/app""#;
    let cache = format!(r#""$PWD/cache/{cache}""#);
    let deps = r#""$PWD/deps""#;
    let (pre, args) = match phase {
        Phase::Detect | Phase::Release => (String::new(), app.to_string()),
        Phase::Supply { index } => (String::new(), format!("{app} {cache} {deps} {index}")),
        Phase::Finalize { index } => (
            String::new(),
            format!(r#"{app} {cache} {deps} {index} "$PWD/profile.d""#),
        ),
        Phase::Compile { supplies } => {
            // What the supply buildpacks installed is on the PATH of a
            // compile-style final buildpack.
            let bins: String = (0..supplies)
                .map(|i| format!(r#"$PWD/deps/{i}/bin:"#))
                .collect();
            let pre = if bins.is_empty() {
                String::new()
            } else {
                format!(r#" PATH="{bins}$PATH""#)
            };
            (pre, format!("{app} {cache}"))
        }
    };
    format!(
        r#"cd .. && export HOME="$PWD" TMPDIR="$PWD/tmp" DEPS_DIR="$PWD/deps"{pre} && exec {bin} {args}"#
    )
}

/// Packs the droplet inside the container, as the container's user, onto
/// stdout: `app/`, `deps/`, `profile.d/` and `staging_info.yml` (from
/// `PAAS_STAGING_INFO`). The host only reads the stream: it never opens a
/// path the build could have replaced.
pub const PACK_DROPLET: &str = r#"cd .. && mkdir -p deps profile.d && printf '%s\n' "$PAAS_STAGING_INFO" > staging_info.yml && exec tar --create --gzip --file=- app deps profile.d staging_info.yml"#;

/// Packs the build cache inside the container onto stdout.
pub const PACK_CACHE: &str = r#"cd ../cache && exec tar --create --gzip --file=- ."#;

/// Prints the app's Procfile, read inside the container.
pub const READ_PROCFILE: &str =
    r#"cd .. && if [ -f app/Procfile ]; then exec cat app/Procfile; fi"#;

/// User variables never handed to buildpacks: shell start-up files and
/// options, and what the dynamic loader or libc read from the environment
/// (glibc's list of variables it ignores in set-uid programs). Cloud
/// Foundry passes the rest of the user's environment to buildpacks.
const DROPPED: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "BASH_XTRACEFD",
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
];

/// Whether a user variable is dropped from the build's environment.
pub fn dropped(name: &str) -> bool {
    DROPPED.contains(&name)
        || name.starts_with("LD_")
        || name.starts_with("BASH_FUNC_")
        || name.starts_with("MALLOC_")
}

/// The user's variables a build gets, and the names left out.
pub fn user_env(vars: Vec<(String, String)>) -> (Vec<(String, String)>, Vec<String>) {
    let (left_out, kept): (Vec<_>, Vec<_>) = vars.into_iter().partition(|(k, _)| dropped(k));
    let mut names: Vec<String> = left_out.into_iter().map(|(k, _)| k).collect();
    names.sort();
    names.dedup();
    (kept, names)
}

/// The buildpacks named in the request (`default` and `null` mean none).
pub fn requested(buildpacks: &[String]) -> Vec<String> {
    buildpacks
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty() && *b != "default" && *b != "null")
        .map(str::to_string)
        .collect()
}

/// Lines of a failed phase's output quoted in its error.
pub const ERROR_TAIL: usize = 10;
/// Longest line quoted in an error.
const ERROR_LINE: usize = 300;

/// The error of a buildpack phase that did not exit 0: what failed, how,
/// and the last lines it printed (the whole output is in the staging log).
pub fn phase_failed(
    name: &str,
    phase: Phase,
    exit: &ExitInfo,
    tail: &VecDeque<String>,
) -> StagingFailure {
    let id = match phase {
        Phase::Release => StagingErrorId::BuildpackReleaseFailed,
        _ => StagingErrorId::BuildpackCompileFailed,
    };
    let mut msg = format!("{name}: bin/{} {}", phase.script(), exit.description());
    let lines: Vec<&String> = tail
        .iter()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(ERROR_TAIL)
        .rev()
        .collect();
    if !lines.is_empty() {
        msg.push_str("; last lines of its output:");
        for l in lines {
            let l = l.trim_end();
            let cut: String = l.chars().take(ERROR_LINE).collect();
            msg.push_str("\n  ");
            msg.push_str(&cut);
        }
    }
    StagingFailure::new(id, msg)
}

/// What `bin/release` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Release {
    pub web: Option<String>,
    /// The app's default environment (user variables win).
    pub config_vars: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct ReleaseDoc {
    #[serde(default)]
    default_process_types: Option<BTreeMap<String, String>>,
    #[serde(default)]
    config_vars: Option<BTreeMap<String, serde_norway::Value>>,
}

/// Parses a `bin/release` YAML document.
pub fn parse_release(name: &str, yaml: &str) -> Result<Release> {
    if yaml.trim().is_empty() {
        return Ok(Release::default());
    }
    let doc: ReleaseDoc = serde_norway::from_str(yaml).map_err(|e| {
        DeaError::Failed(StagingFailure::new(
            StagingErrorId::BuildpackReleaseFailed,
            format!("{name}: bin/release printed invalid YAML: {e}"),
        ))
    })?;
    let web = doc
        .default_process_types
        .and_then(|m| m.get("web").cloned())
        .filter(|s| !s.trim().is_empty());
    let config_vars = doc
        .config_vars
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| valid_env_name(k))
        .filter_map(|(k, v)| {
            let v = match v {
                serde_norway::Value::String(s) => s,
                serde_norway::Value::Number(n) => n.to_string(),
                serde_norway::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k, v))
        })
        .collect();
    Ok(Release { web, config_vars })
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_env_name(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(dir: &str) -> Candidate {
        Candidate {
            name: "bp".into(),
            dir: dir.into(),
            has_supply: true,
            has_finalize: true,
        }
    }

    /// Runs a phase line with bash in a scratch root whose buildpack prints
    /// its arguments and environment.
    fn run(phase: Phase, cache: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canon");
        let bin = root.join("buildpacks/3/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        let script = bin.join(phase.script());
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"$*|$HOME|$TMPDIR|$DEPS_DIR|${PATH%%:*}\"\n",
        )
        .expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(phase_script(&cand("3"), phase, cache))
            .current_dir(root.join("app"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("run");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .replace(&root.display().to_string(), "R")
    }

    #[test]
    fn phase_lines_pass_the_contract_arguments() {
        assert_eq!(run(Phase::Detect, "final"), "R/app|R|R/tmp|R/deps|/usr/bin");
        assert_eq!(
            run(Phase::Supply { index: 0 }, "supply-a"),
            "R/app R/cache/supply-a R/deps 0|R|R/tmp|R/deps|/usr/bin"
        );
        assert_eq!(
            run(Phase::Finalize { index: 1 }, "final"),
            "R/app R/cache/final R/deps 1 R/profile.d|R|R/tmp|R/deps|/usr/bin"
        );
        assert_eq!(
            run(Phase::Compile { supplies: 2 }, "final"),
            "R/app R/cache/final|R|R/tmp|R/deps|R/deps/0/bin"
        );
        assert_eq!(
            run(Phase::Release, "final"),
            "R/app|R|R/tmp|R/deps|/usr/bin"
        );
    }

    #[test]
    fn loader_and_shell_startup_variables_are_dropped() {
        let vars = vec![
            ("BASH_ENV".to_string(), "x".to_string()),
            ("LD_PRELOAD".into(), "x".into()),
            ("LD_LIBRARY_PATH".into(), "x".into()),
            ("BASH_FUNC_f%%".into(), "() { :; }".into()),
            ("ENV".into(), "x".into()),
            ("GREETING".into(), "hi".into()),
            ("PIP_INDEX_URL".into(), "http://x".into()),
        ];
        let (kept, dropped) = user_env(vars);
        assert_eq!(
            kept.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["GREETING", "PIP_INDEX_URL"]
        );
        assert_eq!(
            dropped,
            vec![
                "BASH_ENV",
                "BASH_FUNC_f%%",
                "ENV",
                "LD_LIBRARY_PATH",
                "LD_PRELOAD"
            ]
        );
    }

    #[test]
    fn failed_phases_name_the_buildpack_the_phase_and_the_status() {
        let tail: VecDeque<String> = (0..30).map(|i| format!("line {i}")).collect();
        let f = phase_failed(
            "python",
            Phase::Compile { supplies: 0 },
            &ExitInfo {
                code: Some(1),
                signal: None,
            },
            &tail,
        );
        assert_eq!(f.id, StagingErrorId::BuildpackCompileFailed);
        assert!(
            f.message.starts_with(
                "python: bin/compile exited with status 1; last lines of its output:\n  line 20\n"
            ),
            "{}",
            f.message
        );
        assert!(f.message.ends_with("  line 29"));
        let f = phase_failed(
            "x",
            Phase::Release,
            &ExitInfo {
                code: None,
                signal: Some(9),
            },
            &VecDeque::new(),
        );
        assert_eq!(
            f.to_string(),
            "BuildpackReleaseFailed - x: bin/release killed by signal 9"
        );
    }

    #[test]
    fn release_documents() {
        let r = parse_release(
            "bp",
            "default_process_types:\n  web: ./run\nconfig_vars:\n  A: b\n  N: 3\n  bad-name: x\n",
        )
        .expect("ok");
        assert_eq!(r.web.as_deref(), Some("./run"));
        assert_eq!(
            r.config_vars,
            BTreeMap::from([("A".into(), "b".into()), ("N".into(), "3".into())])
        );
        assert_eq!(parse_release("bp", "").expect("ok"), Release::default());
        assert_eq!(
            parse_release("bp", "default_process_types: {}\n")
                .expect("ok")
                .web,
            None
        );
        let e = parse_release("bp", "- [").expect_err("bad");
        assert!(e
            .to_string()
            .starts_with("BuildpackReleaseFailed - bp: bin/release printed invalid YAML"));
    }

    #[test]
    fn names_and_requests() {
        assert_eq!(sanitize("../a b"), "_a_b");
        assert_eq!(sanitize("ab-1_2.x"), "ab-1_2.x");
        assert_eq!(cache_dir("my bp", false), "supply-my_bp");
        assert_eq!(cache_dir("x", true), "final");
        assert_eq!(
            requested(&["default".into(), " python ".into(), "".into()]),
            vec!["python"]
        );
        assert!(valid_env_name("_A1") && !valid_env_name("1A") && !valid_env_name(""));
    }
}
