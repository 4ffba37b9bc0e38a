//! `paas agent install` (docs/operations.md "Installing the agent on a
//! host"): writes the systemd unit `paas-agent.service` that runs this
//! host's agent with the given flags and keeps it up.
//!
//! Check, then write: [`check`] refuses bad flags before anything is
//! written (the token file and the TLS key readable by their owner only,
//! the certificate and key loadable, absolute paths), [`unit_text`] is the
//! unit (pure), [`write_unit`] puts it in place (0644) without replacing a
//! different unit unless asked. Nothing here runs `systemctl`: the
//! operator does, with the commands printed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::tls::{self, TlsFiles};
use super::AgentError;

/// The unit's file name.
pub const UNIT_NAME: &str = "paas-agent.service";
/// Where units go by default.
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// How long systemd waits for the agent to drain and stop its components
/// before it kills what is left: more than the rendered drains of a host
/// with every role, one after the other (dea 180 s, router 35 s,
/// controller, health manager and NATS 30 s each: 305 s).
pub const TIMEOUT_STOP_S: u64 = 360;
/// Open files for the agent and its components (a router or a DEA holds
/// many connections).
pub const LIMIT_NOFILE: u64 = 65536;

/// What `paas agent install` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallArgs {
    pub host: String,
    pub listen: String,
    pub state_dir: PathBuf,
    pub token_file: PathBuf,
    pub unit_dir: PathBuf,
    /// The `paas` binary the unit runs (default: this one).
    pub binary: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    /// Replace an existing, different unit.
    pub force: bool,
}

/// A checked unit: what its `ExecStart` runs, every path absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    pub binary: String,
    pub host: String,
    pub listen: SocketAddr,
    pub state_dir: String,
    pub token_file: String,
    /// The certificate and key files, for HTTPS.
    pub tls: Option<(String, String)>,
}

/// Why `paas agent install` refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("--host {0:?}: the host's name in the manifest: 1 to 63 letters, digits, '-', '_' or '.', not starting with '.'")]
    Host(String),
    #[error("--listen {0:?}: not an address and port (like 10.0.0.1:7070)")]
    Listen(String),
    #[error("--listen {0}: needs a fixed port (the manifest's agent_port), not 0")]
    ListenPort(SocketAddr),
    #[error("--{flag} {path}: {why}")]
    Path {
        flag: &'static str,
        path: String,
        why: String,
    },
    #[error("--token-file: {0}")]
    Token(#[source] AgentError),
    #[error("--tls-cert/--tls-key: {0}")]
    Tls(#[source] tls::TlsError),
    #[error("{path} exists and is not the unit these flags make; --force replaces it")]
    Exists { path: String },
    #[error("cannot write {path}: {source}{hint}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
}

fn path_err(flag: &'static str, path: &Path, why: impl ToString) -> InstallError {
    InstallError::Path {
        flag,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// A path as unit text: UTF-8, no control characters (a unit line cannot
/// carry them).
fn unit_path(flag: &'static str, path: &Path) -> Result<String, InstallError> {
    let Some(s) = path.to_str() else {
        return Err(path_err(
            flag,
            path,
            "not UTF-8: a unit file cannot name it",
        ));
    };
    if s.chars().any(char::is_control) {
        return Err(path_err(
            flag,
            path,
            "holds a control character: a unit file cannot name it",
        ));
    }
    Ok(s.to_string())
}

/// An existing file's absolute, resolved path.
fn existing_file(flag: &'static str, path: &Path) -> Result<PathBuf, InstallError> {
    let abs = std::fs::canonicalize(path).map_err(|e| path_err(flag, path, e))?;
    if !abs.is_file() {
        return Err(path_err(flag, path, "not a file"));
    }
    Ok(abs)
}

/// Checks the flags (reading the token, certificate and key files as the
/// agent will) and resolves every path.
pub fn check(args: &InstallArgs) -> Result<UnitSpec, InstallError> {
    if !crate::deploy::manifest::plain(&args.host) {
        return Err(InstallError::Host(args.host.clone()));
    }
    let listen: SocketAddr = args
        .listen
        .trim()
        .parse()
        .map_err(|_| InstallError::Listen(args.listen.clone()))?;
    if listen.port() == 0 {
        return Err(InstallError::ListenPort(listen));
    }
    if !args.state_dir.is_absolute() {
        return Err(path_err(
            "state-dir",
            &args.state_dir,
            "must be an absolute path",
        ));
    }
    if args.state_dir.exists() && !args.state_dir.is_dir() {
        return Err(path_err("state-dir", &args.state_dir, "not a directory"));
    }
    let state_dir = unit_path("state-dir", &args.state_dir)?;
    super::read_token(&args.token_file).map_err(InstallError::Token)?;
    let token_file = unit_path(
        "token-file",
        &existing_file("token-file", &args.token_file)?,
    )?;
    let tls = match &args.tls {
        None => None,
        Some(files) => {
            tls::server_config(files).map_err(InstallError::Tls)?;
            let cert = unit_path("tls-cert", &existing_file("tls-cert", &files.cert)?)?;
            let key = unit_path("tls-key", &existing_file("tls-key", &files.key)?)?;
            Some((cert, key))
        }
    };
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| path_err("binary", Path::new("(this program)"), e))?,
    };
    let binary = existing_file("binary", &binary)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&binary)
            .map_err(|e| path_err("binary", &binary, e))?
            .permissions()
            .mode();
        if mode & 0o111 == 0 {
            return Err(path_err("binary", &binary, "not executable"));
        }
    }
    let binary = unit_path("binary", &binary)?;
    if !args.unit_dir.is_dir() {
        return Err(path_err("unit-dir", &args.unit_dir, "not a directory"));
    }
    Ok(UnitSpec {
        binary,
        host: args.host.clone(),
        listen,
        state_dir,
        token_file,
        tls,
    })
}

/// One `ExecStart` argument: `%` and `$` doubled (systemd's specifiers
/// and variables), and in double quotes with `\` and `"` escaped when it
/// holds a space, a quote, a backslash or a `;`, or is empty.
pub fn exec_arg(a: &str) -> String {
    quote(&a.replace('%', "%%").replace('$', "$$"))
}

/// The `ExecStart` executable: as [`exec_arg`], but `$` left alone
/// (systemd expands specifiers in it, not variables).
pub fn exec_path(p: &str) -> String {
    quote(&p.replace('%', "%%"))
}

fn quote(escaped: &str) -> String {
    let quote = escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if !quote {
        return escaped.to_string();
    }
    let mut out = String::with_capacity(escaped.len() + 2);
    out.push('"');
    for c in escaped.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The agent's command line, as the unit's `ExecStart` runs it.
pub fn exec_start(u: &UnitSpec) -> String {
    let listen = u.listen.to_string();
    let mut words: Vec<&str> = vec![
        "agent",
        "--host",
        &u.host,
        "--listen",
        &listen,
        "--state-dir",
        &u.state_dir,
        "--token-file",
        &u.token_file,
    ];
    if let Some((cert, key)) = &u.tls {
        words.extend(["--tls-cert", cert, "--tls-key", key]);
    }
    std::iter::once(exec_path(&u.binary))
        .chain(words.into_iter().map(exec_arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unit file's text.
pub fn unit_text(u: &UnitSpec) -> String {
    format!(
        "\
# Written by `paas agent install` (docs/operations.md \"Host agent\").
[Unit]
Description=paas host agent ({host})
After=network-online.target
Wants=network-online.target
# Always restart it: no start rate limit to give up at.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={exec}
Restart=always
RestartSec=1
# SIGTERM to the agent alone: it drains and stops its components itself;
# whatever of the unit is left then (or after TimeoutStopSec) gets SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop}
LimitNOFILE={nofile}

[Install]
WantedBy=multi-user.target
",
        host = u.host,
        exec = exec_start(u),
        stop = TIMEOUT_STOP_S,
        nofile = LIMIT_NOFILE,
    )
}

/// What [`write_unit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    New,
    /// The same unit was there already.
    Unchanged,
    /// A different unit was there (`--force`).
    Replaced,
}

/// Puts `text` at `<dir>/paas-agent.service` (0644, through a temporary
/// file and a rename). A different unit there is replaced only with
/// `force`.
pub fn write_unit(dir: &Path, text: &str, force: bool) -> Result<(PathBuf, Written), InstallError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(UNIT_NAME);
    let werr = |p: &Path, source: std::io::Error| {
        let hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
            " (run it as root, or give --unit-dir)"
        } else {
            ""
        };
        InstallError::Write {
            path: p.display().to_string(),
            source,
            hint,
        }
    };
    let written = match std::fs::read(&path) {
        Ok(old) if old == text.as_bytes() => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| werr(&path, e))?
                .permissions()
                .mode();
            if mode & 0o7777 == 0o644 {
                return Ok((path, Written::Unchanged));
            }
            Written::Unchanged
        }
        Ok(_) if !force => {
            return Err(InstallError::Exists {
                path: path.display().to_string(),
            })
        }
        Ok(_) => Written::Replaced,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::New,
        Err(e) => return Err(werr(&path, e)),
    };
    let tmp = dir.join(format!(".{UNIT_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        // Whatever the umask took away.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(&path, e));
    }
    Ok((path, written))
}

/// What `paas agent install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub path: PathBuf,
    pub written: Written,
    pub text: String,
    pub spec: UnitSpec,
}

/// Checks the flags, then writes the unit.
pub fn install(args: &InstallArgs) -> Result<Installed, InstallError> {
    let spec = check(args)?;
    let text = unit_text(&spec);
    let (path, written) = write_unit(&args.unit_dir, &text, args.force)?;
    Ok(Installed {
        path,
        written,
        text,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::{Manifest, Role};
    use crate::deploy::render::{render, Secrets};
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> UnitSpec {
        UnitSpec {
            binary: "/usr/local/bin/paas".into(),
            host: "h1".into(),
            listen: "10.0.0.1:7070".parse().expect("addr"),
            state_dir: "/var/lib/paas-agent".into(),
            token_file: "/etc/paas/agent-token".into(),
            tls: None,
        }
    }

    #[test]
    fn exec_words_are_quoted_and_escaped_for_systemd() {
        for (word, want) in [
            ("/usr/local/bin/paas", "/usr/local/bin/paas"),
            ("h1", "h1"),
            ("[::1]:7070", "[::1]:7070"),
            ("/opt/my paas/bin/paas", "\"/opt/my paas/bin/paas\""),
            ("/var/lib/100%", "/var/lib/100%%"),
            ("/var/lib/%n", "/var/lib/%%n"),
            ("/tmp/$HOME", "/tmp/$$HOME"),
            ("/tmp/${X}", "/tmp/$${X}"),
            ("/a\"b", "\"/a\\\"b\""),
            ("/a\\b", "\"/a\\\\b\""),
            ("/it's", "\"/it's\""),
            ("/a;b", "\"/a;b\""),
            ("/50% off", "\"/50%% off\""),
            ("", "\"\""),
        ] {
            assert_eq!(exec_arg(word), want, "{word:?}");
        }
        // The executable: specifiers, no variables.
        for (path, want) in [
            ("/usr/local/bin/paas", "/usr/local/bin/paas"),
            ("/opt/$x/paas", "/opt/$x/paas"),
            ("/opt/100%/paas", "/opt/100%%/paas"),
            ("/opt/my $x/paas", "\"/opt/my $x/paas\""),
        ] {
            assert_eq!(exec_path(path), want, "{path:?}");
        }
    }

    #[test]
    fn unit_text_for_each_kind_of_flags() {
        let with_tls = UnitSpec {
            tls: Some((
                "/etc/paas/agent.pem".into(),
                "/etc/paas/agent-key.pem".into(),
            )),
            ..spec()
        };
        let odd_paths = UnitSpec {
            binary: "/opt/paas $tools/paas".into(),
            state_dir: "/srv/state 100%".into(),
            token_file: "/etc/paas/$token".into(),
            listen: "[fd00::1]:7070".parse().expect("addr"),
            ..spec()
        };
        let cases = [
            (
                spec(),
                "ExecStart=/usr/local/bin/paas agent --host h1 --listen 10.0.0.1:7070 \
                 --state-dir /var/lib/paas-agent --token-file /etc/paas/agent-token\n",
            ),
            (
                with_tls,
                "ExecStart=/usr/local/bin/paas agent --host h1 --listen 10.0.0.1:7070 \
                 --state-dir /var/lib/paas-agent --token-file /etc/paas/agent-token \
                 --tls-cert /etc/paas/agent.pem --tls-key /etc/paas/agent-key.pem\n",
            ),
            (
                odd_paths,
                "ExecStart=\"/opt/paas $tools/paas\" agent --host h1 --listen [fd00::1]:7070 \
                 --state-dir \"/srv/state 100%%\" --token-file /etc/paas/$$token\n",
            ),
        ];
        for (u, exec) in cases {
            let text = unit_text(&u);
            assert!(text.contains(exec), "{exec}\n{text}");
            assert_eq!(text.matches("ExecStart=").count(), 1, "{text}");
            assert!(
                text.contains(&format!("Description=paas host agent ({})\n", u.host)),
                "{text}"
            );
            for line in [
                "[Unit]\n",
                "After=network-online.target\n",
                "Wants=network-online.target\n",
                "StartLimitIntervalSec=0\n",
                "[Service]\n",
                "Restart=always\n",
                "RestartSec=1\n",
                "KillMode=mixed\n",
                "KillSignal=SIGTERM\n",
                "TimeoutStopSec=360\n",
                "LimitNOFILE=65536\n",
                "[Install]\n",
                "WantedBy=multi-user.target\n",
            ] {
                assert!(text.contains(line), "{line}{text}");
            }
        }
    }

    /// systemd must wait longer than a host with every role takes to drain.
    #[test]
    fn the_stop_timeout_covers_every_drain_in_turn() {
        let m = Manifest::parse(
            r#"
name: prod
release: {version: v1}
database_url: postgres://cc@10.0.0.1/cc
hosts:
  - {name: h1, address: 10.0.0.1, roles: [nats, controller, router, health_manager, dea]}
update: {canaries: 1, max_in_flight: 1, watch_time: 30s}
"#,
        )
        .expect("manifest");
        let secrets = Secrets::generate(&m);
        let total: u64 = Role::ALL
            .iter()
            .map(|r| render(&m, &secrets, &m.hosts[0], *r, "v1").drain.timeout_s)
            .sum();
        assert!(total < TIMEOUT_STOP_S, "{total} s of drains");
    }

    fn args(dir: &Path) -> InstallArgs {
        let token = dir.join("token");
        std::fs::write(&token, "agent-token-for-tests-0123456789").expect("token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let bin = dir.join("paas");
        std::fs::write(&bin, "#!/bin/sh\n").expect("bin");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        InstallArgs {
            host: "h1".into(),
            listen: "10.0.0.1:7070".into(),
            state_dir: dir.join("state"),
            token_file: token,
            unit_dir: dir.to_path_buf(),
            binary: Some(bin),
            tls: None,
            force: false,
        }
    }

    #[test]
    fn bad_flags_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = args(dir.path());
        let loose = dir.path().join("loose-token");
        std::fs::write(&loose, "agent-token-for-tests-0123456789").expect("token");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let plain_bin = dir.path().join("not-executable");
        std::fs::write(&plain_bin, "x").expect("write");
        std::fs::set_permissions(&plain_bin, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let cases: Vec<(InstallArgs, &str)> = vec![
            (
                InstallArgs {
                    host: "../h1".into(),
                    ..good.clone()
                },
                "--host \"../h1\"",
            ),
            (
                InstallArgs {
                    listen: "10.0.0.1".into(),
                    ..good.clone()
                },
                "not an address and port",
            ),
            (
                InstallArgs {
                    listen: "10.0.0.1:0".into(),
                    ..good.clone()
                },
                "needs a fixed port",
            ),
            (
                InstallArgs {
                    state_dir: "state".into(),
                    ..good.clone()
                },
                "--state-dir state: must be an absolute path",
            ),
            (
                InstallArgs {
                    state_dir: dir.path().join("state\nExecStartPre=/bin/evil"),
                    ..good.clone()
                },
                "control character",
            ),
            (
                InstallArgs {
                    token_file: loose,
                    ..good.clone()
                },
                "chmod 600",
            ),
            (
                InstallArgs {
                    token_file: dir.path().join("absent"),
                    ..good.clone()
                },
                "--token-file",
            ),
            (
                InstallArgs {
                    binary: Some(plain_bin),
                    ..good.clone()
                },
                "not executable",
            ),
            (
                InstallArgs {
                    unit_dir: dir.path().join("no-such-dir"),
                    ..good.clone()
                },
                "--unit-dir",
            ),
            (
                InstallArgs {
                    tls: Some(TlsFiles {
                        cert: dir.path().join("cert.pem"),
                        key: dir.path().join("key.pem"),
                    }),
                    ..good.clone()
                },
                "--tls-cert/--tls-key",
            ),
        ];
        for (a, want) in cases {
            let e = install(&a).expect_err(want);
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        assert!(!dir.path().join(UNIT_NAME).exists());
    }

    #[test]
    fn a_unit_is_written_once_and_a_different_one_kept_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = args(dir.path());
        let first = install(&a).expect("install");
        assert_eq!(first.written, Written::New);
        let mode = std::fs::metadata(&first.path)
            .expect("unit")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
        assert_eq!(
            std::fs::read_to_string(&first.path).expect("unit"),
            first.text
        );
        assert_eq!(install(&a).expect("again").written, Written::Unchanged);

        let other = InstallArgs {
            listen: "10.0.0.1:7071".into(),
            ..a.clone()
        };
        let e = install(&other).expect_err("differs");
        assert!(matches!(e, InstallError::Exists { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(&first.path).expect("unit"),
            first.text,
            "kept"
        );
        let forced = install(&InstallArgs {
            force: true,
            ..other
        })
        .expect("forced");
        assert_eq!(forced.written, Written::Replaced);
        assert!(std::fs::read_to_string(&forced.path)
            .expect("unit")
            .contains("--listen 10.0.0.1:7071"));
        assert!(!dir.path().join(format!(".{UNIT_NAME}.tmp")).exists());
    }
}
