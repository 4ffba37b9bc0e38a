//! Pieces of `cf dev`: component configs (pure), binary lookup, process
//! spawning (setsid, logs, pid files), liveness and signalling by pid.

use crate::error::{CliError, Result};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Components in start order (stop goes in reverse).
pub const COMPONENTS: [&str; 5] = [
    "nats",
    "cloud-controller",
    "router",
    "dea",
    "health-manager",
];

/// Binary name of a component (`dea1`, `dea2`... are more DEAs).
pub fn binary_name(component: &str) -> &str {
    if component == "nats" {
        "nats-server"
    } else if is_extra_dea(component) {
        "dea"
    } else {
        component
    }
}

/// Component name of the `i`th DEA: `dea`, then `dea1`, `dea2`...
pub fn dea_name(i: usize) -> String {
    match i {
        0 => "dea".to_string(),
        i => format!("dea{i}"),
    }
}

/// `dea1`, `dea2`...: the DEAs after the first (`cf dev start --deas N`).
pub fn is_extra_dea(component: &str) -> bool {
    component
        .strip_prefix("dea")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The extra DEAs that have pid files, in order.
pub fn extra_deas(l: &Layout) -> Vec<String> {
    let mut out: Vec<(usize, String)> = std::fs::read_dir(l.dir.join("pids"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_suffix(".pid")?.to_string();
                    let n = name.strip_prefix("dea")?.parse::<usize>().ok()?;
                    is_extra_dea(&name).then_some((n, name))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, n)| n).collect()
}

/// The directory layout under the dev dir.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Layout {
        Layout { dir }
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn log(&self, c: &str) -> PathBuf {
        self.logs().join(format!("{c}.log"))
    }
    pub fn pid(&self, c: &str) -> PathBuf {
        self.dir.join("pids").join(format!("{c}.pid"))
    }
    pub fn config(&self, c: &str) -> PathBuf {
        self.dir.join("config").join(format!("{c}.toml"))
    }
    pub fn addr(&self, c: &str) -> PathBuf {
        self.dir.join("run").join(format!("{c}.addr"))
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("dev.json")
    }
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // 0700: configs, the database, keys and logs are the operator's only.
        for d in ["", "logs", "pids", "config", "run", "cc", "dea", "nats"] {
            let p = self.dir.join(d);
            std::fs::create_dir_all(&p)
                .and_then(|()| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)))
                .map_err(|e| CliError::io(format!("creating {}", p.display()), e))?;
        }
        Ok(())
    }
}

/// What `cf dev start` chose; saved as `dev.json` for status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DevState {
    pub router_port: u16,
    pub nats_port: u16,
    pub api_url: String,
    pub cc_addr: String,
    pub router_admin_addr: String,
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_doc(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} = {}\n", toml_str(v)))
        .collect()
}

/// Config files per docs/conventions.md.
pub fn cc_config(l: &Layout, nats_url: &str, token: &str) -> String {
    toml_doc(&[
        ("listen", "127.0.0.1:0".into()),
        (
            "addr_file",
            l.addr("cloud-controller").display().to_string(),
        ),
        ("internal_listen", "127.0.0.1:0".into()),
        (
            "internal_addr_file",
            l.addr("cloud-controller-internal").display().to_string(),
        ),
        ("nats_url", nats_url.into()),
        ("data_dir", l.dir.join("cc").display().to_string()),
        ("internal_api_token", token.into()),
    ])
}

/// The router's config; `cc_url` and `token` make the controller the
/// route authority (only assigned routes are admitted).
pub fn router_config(l: &Layout, nats_url: &str, port: u16, cc_url: &str, token: &str) -> String {
    toml_doc(&[
        ("listen", format!("127.0.0.1:{port}")),
        ("addr_file", l.addr("router").display().to_string()),
        ("admin_listen", "127.0.0.1:0".into()),
        (
            "admin_addr_file",
            l.addr("router-admin").display().to_string(),
        ),
        ("nats_url", nats_url.into()),
        ("route_authority_url", cc_url.into()),
        ("route_authority_token", token.into()),
    ])
}

pub fn dea_config(l: &Layout, nats_url: &str) -> String {
    toml_doc(&[
        ("nats_url", nats_url.into()),
        ("state_dir", l.dir.join("dea").display().to_string()),
        ("addr_file", l.addr("dea").display().to_string()),
    ]) + "allow_unisolated_process_backend = true\n"
}

/// Config of the `i`th DEA when several run: its own state dir and zone.
pub fn dea_config_n(l: &Layout, nats_url: &str, i: usize) -> String {
    let name = dea_name(i);
    toml_doc(&[
        ("nats_url", nats_url.into()),
        ("state_dir", l.dir.join(&name).display().to_string()),
        ("addr_file", l.addr(&name).display().to_string()),
        ("zone", format!("z{i}")),
    ]) + "allow_unisolated_process_backend = true\n"
}

pub fn hm_config(l: &Layout, nats_url: &str, cc_url: &str, token: &str) -> String {
    toml_doc(&[
        ("nats_url", nats_url.into()),
        ("cc_url", cc_url.into()),
        ("internal_api_token", token.into()),
        ("addr_file", l.addr("health-manager").display().to_string()),
    ])
}

/// Writes `text` to `path`, readable by its owner only (0600): configs and
/// nats.conf hold passwords and tokens.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e| CliError::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    // An older file keeps its mode through open(2): set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// Find a component's binary: nats-server on PATH or /usr/sbin; the others
/// next to the running `cf`, else on PATH.
pub fn find_binary(component: &str) -> Result<PathBuf> {
    let name = binary_name(component);
    if component == "nats" {
        return proto::nats_server::find()
            .ok_or_else(|| CliError::other(proto::nats_server::NOT_FOUND));
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(p) = proto::service::executable_in(name, exe_dir.clone()) {
        return Ok(p);
    }
    proto::service::which(name, &[]).ok_or_else(|| {
        let dir = exe_dir.map(|d| d.display().to_string()).unwrap_or_default();
        CliError::other(format!("Cannot find the `{name}` binary next to cf ({dir}) or on PATH. Build it with `cargo build --bins`."))
    })
}

/// Spawn a component in its own session, stdout+stderr to its log, and
/// write its pid file.
pub fn spawn(l: &Layout, component: &str, bin: &Path, args: &[String]) -> Result<Child> {
    let log_path = l.log(component);
    let log = std::fs::File::create(&log_path)
        .map_err(|e| CliError::io(format!("creating {}", log_path.display()), e))?;
    let log2 = log.try_clone().map_err(|e| CliError::io("log file", e))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .current_dir(&l.dir)
        .env_remove("NATS_URL");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    // SAFETY: setsid is async-signal-safe; it detaches the child from our
    // session so it survives the CLI and terminal hang-ups.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| CliError::io(format!("starting {}", bin.display()), e))?;
    let pid_path = l.pid(component);
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .map_err(|e| CliError::io(format!("writing {}", pid_path.display()), e))?;
    Ok(child)
}

pub fn read_pid(l: &Layout, component: &str) -> Option<i32> {
    std::fs::read_to_string(l.pid(component))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p: &i32| *p > 1)
}

/// Alive (not a zombie) and, where /proc tells, running the expected binary.
pub fn is_alive(pid: i32, component: &str) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self").exists() {
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
            return false;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('Z') | Some('X') | None) {
            return false;
        }
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        return cmdline.contains(binary_name(component));
    }
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: plain syscall on a pid we started and checked.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last `n` lines of a file (reads at most the last 64 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Pids of processes whose working directory is under `dir` (leftover app
/// instances of a killed DEA).
pub fn pids_with_cwd_under(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/cwd"))
                .map(|c| c.starts_with(dir))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_valid_toml_with_conventions_fields() {
        let l = Layout::new(PathBuf::from("/tmp/dev \"x\""));
        let cc: toml::Table =
            toml::from_str(&cc_config(&l, "nats://127.0.0.1:5000", "tok")).expect("cc toml");
        assert_eq!(cc["listen"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(cc["data_dir"].as_str(), Some("/tmp/dev \"x\"/cc"));
        assert_eq!(cc["internal_api_token"].as_str(), Some("tok"));
        assert!(cc["addr_file"]
            .as_str()
            .is_some_and(|s| s.ends_with("run/cloud-controller.addr")));
        let r: toml::Table = toml::from_str(&router_config(
            &l,
            "nats://n",
            8080,
            "http://127.0.0.1:1",
            "tok",
        ))
        .expect("router toml");
        assert_eq!(r["listen"].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(r["admin_listen"].as_str(), Some("127.0.0.1:0"));
        assert!(r.contains_key("admin_addr_file"));
        let d: toml::Table = toml::from_str(&dea_config(&l, "nats://n")).expect("dea toml");
        assert_eq!(d["state_dir"].as_str(), Some("/tmp/dev \"x\"/dea"));
        let d2: toml::Table = toml::from_str(&dea_config_n(&l, "nats://n", 2)).expect("dea2 toml");
        assert_eq!(d2["state_dir"].as_str(), Some("/tmp/dev \"x\"/dea2"));
        assert_eq!(d2["zone"].as_str(), Some("z2"));
        assert!(d2["addr_file"]
            .as_str()
            .is_some_and(|s| s.ends_with("run/dea2.addr")));
        assert!(is_extra_dea("dea2") && is_extra_dea("dea10"));
        assert!(!is_extra_dea("dea") && !is_extra_dea("dead"));
        assert_eq!(binary_name("dea3"), "dea");
        let h: toml::Table =
            toml::from_str(&hm_config(&l, "nats://n", "http://127.0.0.1:1", "tok"))
                .expect("hm toml");
        assert_eq!(h["cc_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(h["internal_api_token"].as_str(), Some("tok"));
    }

    #[test]
    fn tails_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.log");
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).expect("write");
        let t = tail(&p, 20);
        assert!(t.starts_with("line 10\n") && t.ends_with("line 29"));
    }

    #[test]
    fn liveness_of_our_own_process_and_a_dead_one() {
        let me = std::process::id() as i32;
        let mut child = Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        assert!(!is_alive(pid, "true"));
        let exe = std::env::current_exe().expect("exe");
        let name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        assert!(is_alive(me, &name));
        assert!(!is_alive(me, "definitely-not-this-binary"));
    }
}
