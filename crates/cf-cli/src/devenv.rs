//! Pieces of `cf dev`: component configs (pure), binary lookup, process
//! spawning (setsid, logs, pid files), liveness and signalling by pid.

use crate::error::{CliError, Result};
use std::io::{Read, Seek, SeekFrom};
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

/// The bus and placement id of the `i`th DEA (`dea-0`, `dea-1`...): fixed,
/// so that each DEA has a bus user of its own and a restarted DEA finds
/// its own leftovers.
pub fn dea_id(i: usize) -> String {
    format!("dea-{i}")
}

/// The component name of a DEA (`dea`, `dea1`...) back to its number.
pub fn dea_index(component: &str) -> Option<usize> {
    match component.strip_prefix("dea")? {
        "" => Some(0),
        n => n.parse().ok().filter(|i| *i > 0),
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
    /// The local CA and the router's certificate (keys 0600).
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.tls_dir().join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.tls_dir().join("router.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.tls_dir().join("router.key")
    }
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // 0700: configs, the database, keys and logs are the operator's only.
        for d in [
            "", "logs", "pids", "config", "run", "cc", "dea", "nats", "tls",
        ] {
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
    /// The router's HTTPS port (0: none, a dir of an older `cf dev`).
    pub router_tls_port: u16,
    pub https_api_url: String,
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

/// The router's HTTPS listener and its one certificate (from [`ensure_tls`]).
pub fn router_tls_config(l: &Layout, tls_port: u16) -> String {
    toml_doc(&[
        ("tls_listen", format!("127.0.0.1:{tls_port}")),
        ("tls_addr_file", l.addr("router-tls").display().to_string()),
    ]) + &format!(
        // Inline: more keys (the bus line) may follow.
        "tls_certificates = [{{ cert_file = {}, key_file = {} }}]\n",
        toml_str(&l.server_cert().display().to_string()),
        toml_str(&l.server_key().display().to_string())
    )
}

/// The names of the router's certificate: the system domain and its
/// subdomains (`api.<system_domain>`), the apps' subdomains. A wildcard
/// right under a top-level name (`*.localhost`) is refused by browsers and
/// webpki (two labels must follow `*`); it is harmless and kept for
/// domains where it works, and the bare apps domain is listed too.
pub fn tls_names(system_domain: &str, apps_domain: &str) -> Vec<String> {
    let mut names = vec![
        format!("*.{system_domain}"),
        system_domain.to_string(),
        format!("*.{apps_domain}"),
        apps_domain.to_string(),
    ];
    names.dedup();
    names
}

const CA_NAME: &str = "cf dev local CA";

/// The CA's parameters; the same for one key every time, so that an
/// [`rcgen::Issuer`] made again from them and the saved key signs as the
/// saved CA. The name carries a tag of the key: two dev CAs never share a
/// name (clients would pick the wrong one and call the signature bad).
fn ca_params(now: chrono::NaiveDate, key: &rcgen::KeyPair) -> Result<rcgen::CertificateParams> {
    use rcgen::{BasicConstraints, DnType, IsCa, KeyUsagePurpose};
    let raw = key.public_key_raw();
    let tag: String = raw
        .iter()
        .skip(1)
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    p.distinguished_name
        .push(DnType::CommonName, format!("{CA_NAME} {tag}"));
    p.distinguished_name
        .push(DnType::OrganizationName, "cf dev");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut p, now, -1, 3650)?;
    Ok(p)
}

fn tls_err(e: rcgen::Error) -> CliError {
    CliError::other(format!("making the local CA and certificate: {e}"))
}

/// Valid from now + `from` days to now + `to` days.
fn set_validity(
    p: &mut rcgen::CertificateParams,
    now: chrono::NaiveDate,
    from: i64,
    to: i64,
) -> Result<()> {
    use chrono::Datelike;
    let day = |d: i64| {
        let d = now.checked_add_signed(chrono::Duration::days(d))?;
        let (m, dd) = (u8::try_from(d.month()).ok()?, u8::try_from(d.day()).ok()?);
        Some(rcgen::date_time_ymd(d.year(), m, dd))
    };
    match (day(from), day(to)) {
        (Some(a), Some(b)) => {
            (p.not_before, p.not_after) = (a, b);
            Ok(())
        }
        _ => Err(CliError::other("certificate dates out of range")),
    }
}

/// A CA and a server certificate, in PEM.
pub struct DevCerts {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
}

/// Makes a server certificate for `names` (825 days, what Apple's clients
/// accept at most), signed by the CA of `ca_key` (a new CA when `None`).
pub fn make_certs(
    ca: Option<(&str, &str)>,
    names: &[String],
    now: chrono::NaiveDate,
) -> Result<DevCerts> {
    use rcgen::{DnType, ExtendedKeyUsagePurpose, KeyPair};
    let (ca_cert, ca_key) = match ca {
        Some((cert, key)) => (cert.to_string(), KeyPair::from_pem(key).map_err(tls_err)?),
        None => {
            let key = KeyPair::generate().map_err(tls_err)?;
            let cert = ca_params(now, &key)?.self_signed(&key).map_err(tls_err)?;
            (cert.pem(), key)
        }
    };
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = rcgen::Issuer::new(ca_params(now, &ca_key)?, ca_key);
    let mut p = rcgen::CertificateParams::new(names.to_vec()).map_err(tls_err)?;
    if let Some(first) = names.first() {
        p.distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    set_validity(&mut p, now, -1, 825)?;
    let key = KeyPair::generate().map_err(tls_err)?;
    let cert = p.signed_by(&key, &issuer).map_err(tls_err)?;
    Ok(DevCerts {
        ca_cert,
        ca_key: ca_key_pem,
        server_cert: cert.pem(),
        server_key: key.serialize_pem(),
    })
}

/// The local CA (made once, then reused: a browser or `SSL_CERT_FILE` that
/// trusts it stays valid across restarts) and a fresh router certificate
/// for `names`, written under [`Layout::tls_dir`], keys 0600. True when
/// the CA is new.
pub fn ensure_tls(l: &Layout, names: &[String]) -> Result<bool> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let saved = read(l.ca_cert()).zip(read(l.ca_key()));
    let today = chrono::Utc::now().date_naive();
    let certs = make_certs(
        saved.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        names,
        today,
    )?;
    let fresh = saved.is_none();
    if fresh {
        write_private(&l.ca_key(), &certs.ca_key)?;
        write_private(&l.ca_cert(), &certs.ca_cert)?;
    }
    write_private(&l.server_key(), &certs.server_key)?;
    write_private(&l.server_cert(), &certs.server_cert)?;
    Ok(fresh)
}

pub fn dea_config(l: &Layout, nats_url: &str) -> String {
    toml_doc(&[
        ("nats_url", nats_url.into()),
        ("id", dea_id(0)),
        ("state_dir", l.dir.join("dea").display().to_string()),
        ("addr_file", l.addr("dea").display().to_string()),
    ]) + "allow_unisolated_process_backend = true\n"
        + &host_services()
}

/// The address at which containers reach the service broker's servers on
/// the host's loopback (docs/containers.md "Host services"): used when the
/// DEA runs containers (as root); otherwise apps run on the host and reach
/// 127.0.0.1 themselves.
pub const HOST_SERVICES_ADDRESS: &str = "10.253.0.1";

/// Where the broker's Redis AUTH guard listens when apps run in
/// containers (they reach Redis only through it).
pub const REDIS_GUARD_PORT: u16 = 6381;

/// Whether the DEAs run apps in containers (root: the namespaces backend).
pub fn containers() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The DEA's host services lines (none without containers).
fn host_services() -> String {
    if containers() {
        format!("host_services_address = \"{HOST_SERVICES_ADDRESS}\"\nhost_services_ports = [5432, 3306, {REDIS_GUARD_PORT}, 5672]\n")
    } else {
        String::new()
    }
}

/// Config of the `i`th DEA when several run: its own state dir and zone.
pub fn dea_config_n(l: &Layout, nats_url: &str, i: usize) -> String {
    let name = dea_name(i);
    toml_doc(&[
        ("nats_url", nats_url.into()),
        ("id", dea_id(i)),
        ("state_dir", l.dir.join(&name).display().to_string()),
        ("addr_file", l.addr(&name).display().to_string()),
        ("zone", format!("z{i}")),
    ]) + "allow_unisolated_process_backend = true\n"
        + &host_services()
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
    proto::config::write_private(path, text)
        .map_err(|e| CliError::io(format!("writing {}", path.display()), e))
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
    // It survives the CLI and terminal hang-ups.
    proto::procs::own_session(&mut cmd);
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
        assert_eq!(d2["id"].as_str(), Some("dea-2"));
        assert_eq!(dea_index("dea"), Some(0));
        assert_eq!(dea_index("dea2"), Some(2));
        assert_eq!(dea_index("dead"), None);
        assert_eq!(dea_index("dea0"), None);
        assert_eq!(binary_name("dea3"), "dea");
        let h: toml::Table =
            toml::from_str(&hm_config(&l, "nats://n", "http://127.0.0.1:1", "tok"))
                .expect("hm toml");
        assert_eq!(h["cc_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(h["internal_api_token"].as_str(), Some("tok"));
    }

    /// Checks `cert` (PEM) for `name` against the CA `ca` (PEM) as the
    /// clients do (webpki, ring).
    fn verify(ca: &str, cert: &str, name: &str) -> std::result::Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("ca pem"))
            .expect("add ca");
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier");
        let leaf = CertificateDer::from_pem_slice(cert.as_bytes()).expect("leaf pem");
        let name = ServerName::try_from(name.to_string()).expect("name");
        v.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn the_local_ca_signs_a_certificate_for_the_platform_names() {
        let names = tls_names("sys.localhost", "apps.example.com");
        assert_eq!(
            names,
            [
                "*.sys.localhost",
                "sys.localhost",
                "*.apps.example.com",
                "apps.example.com"
            ]
        );
        let today = chrono::Utc::now().date_naive();
        let c = make_certs(None, &names, today).expect("certs");
        for ok in [
            "api.sys.localhost",
            "sys.localhost",
            "myapp.apps.example.com",
        ] {
            verify(&c.ca_cert, &c.server_cert, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = verify(&c.ca_cert, &c.server_cert, "other.example").expect_err("other name");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{err:?}"
        );
        // Another CA's certificate is refused.
        let other = make_certs(None, &names, today).expect("other certs");
        let err = verify(&c.ca_cert, &other.server_cert, "api.sys.localhost").expect_err("ca");
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
        // `*.localhost` is no valid wildcard (webpki, like browsers, wants
        // two labels after `*`), but `localhost` itself is in the cert.
        let l = make_certs(None, &tls_names("sys.localhost", "localhost"), today).expect("l");
        verify(&l.ca_cert, &l.server_cert, "localhost").expect("localhost");
        verify(&l.ca_cert, &l.server_cert, "api.sys.localhost").expect("api");
        assert!(verify(&l.ca_cert, &l.server_cert, "myapp.localhost").is_err());
    }

    #[test]
    fn the_ca_is_made_once_and_reused_with_keys_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Layout::new(dir.path().join("dev"));
        l.create().expect("layout");
        let names = tls_names("sys.localhost", "localhost");
        assert!(ensure_tls(&l, &names).expect("first"), "a new CA");
        let ca = std::fs::read_to_string(l.ca_cert()).expect("ca");
        let leaf1 = std::fs::read_to_string(l.server_cert()).expect("leaf");
        for key in [l.ca_key(), l.server_key()] {
            let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        assert!(!ensure_tls(&l, &names).expect("second"), "the CA is reused");
        assert_eq!(std::fs::read_to_string(l.ca_cert()).expect("ca"), ca);
        let leaf2 = std::fs::read_to_string(l.server_cert()).expect("leaf");
        assert_ne!(leaf1, leaf2, "a fresh router certificate");
        verify(&ca, &leaf2, "api.sys.localhost").expect("signed by the kept CA");
        let r: toml::Table = toml::from_str(
            &(router_config(&l, "nats://n", 8080, "http://127.0.0.1:1", "t")
                + &router_tls_config(&l, 8443)),
        )
        .expect("router toml");
        assert_eq!(r["tls_listen"].as_str(), Some("127.0.0.1:8443"));
        let certs = r["tls_certificates"].as_array().expect("certs");
        assert_eq!(
            certs[0]["key_file"].as_str(),
            Some(l.server_key().to_str().expect("utf8"))
        );
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
