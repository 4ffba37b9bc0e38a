//! Finding and starting `nats-server` (`cf dev start` and the test kit):
//! the binary on `PATH`, then in the Debian and local sbin directories; a
//! port the server picks itself (`-p -1`), read back from its ports file,
//! so no other process can take it between a probe and the bind.

use std::path::{Path, PathBuf};

/// Where nats-server is looked for after `PATH`.
pub const EXTRA_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];

/// The `nats-server` binary: on `PATH`, then in [`EXTRA_DIRS`].
pub fn find() -> Option<PathBuf> {
    crate::service::which("nats-server", &EXTRA_DIRS)
}

/// The message when [`find`] finds nothing.
pub const NOT_FOUND: &str = "nats-server was not found on PATH or in /usr/sbin. \
Install the Debian package `nats-server`: apt-get install nats-server";

/// Arguments for a server on 127.0.0.1 with JetStream storing under
/// `store_dir`: on `port`, or on a port of its choosing (written to a ports
/// file in `ports_dir`, see [`read_port`]) when `port` is `None`.
pub fn args(port: Option<u16>, store_dir: &Path, ports_dir: &Path) -> Vec<String> {
    vec![
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.map_or_else(|| "-1".to_string(), |p| p.to_string()),
        "--ports_file_dir".into(),
        ports_dir.display().to_string(),
        "-js".into(),
        "-sd".into(),
        store_dir.display().to_string(),
    ]
}

/// The client port the server with `pid` wrote to its ports file in
/// `ports_dir` (`nats-server_<pid>.ports`: `{"nats":["nats://127.0.0.1:P"]}`),
/// once it is listening.
pub fn read_port(ports_dir: &Path, pid: u32) -> Option<u16> {
    read_ports(ports_dir, pid).map(|p| p.client)
}

/// Every port the server with `pid` listens on, from its ports file: the
/// client port, and the cluster (route) and monitoring ports when it has
/// them (`"cluster":["nats://127.0.0.1:P"]`, `"monitoring":["http://..."]`;
/// each listed once it listens, also when configured as `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub client: u16,
    pub cluster: Option<u16>,
    pub monitoring: Option<u16>,
}

/// The [`Ports`] of the server with `pid`, once it wrote its ports file.
pub fn read_ports(ports_dir: &Path, pid: u32) -> Option<Ports> {
    let text = std::fs::read_to_string(ports_dir.join(format!("nats-server_{pid}.ports"))).ok()?;
    parse_ports_file(&text)
}

fn parse_ports_file(text: &str) -> Option<Ports> {
    #[derive(serde::Deserialize)]
    struct File {
        nats: Vec<String>,
        #[serde(default)]
        cluster: Vec<String>,
        #[serde(default)]
        monitoring: Vec<String>,
    }
    let port = |urls: &[String]| {
        urls.iter()
            .find_map(|u| u.trim_end_matches('/').rsplit(':').next()?.parse().ok())
    };
    let f: File = serde_json::from_str(text).ok()?;
    Some(Ports {
        client: port(&f.nats)?,
        cluster: port(&f.cluster),
        monitoring: port(&f.monitoring),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file() {
        assert_eq!(
            parse_ports_file(r#"{"nats":["nats://127.0.0.1:46845"]}"#),
            Some(Ports {
                client: 46845,
                cluster: None,
                monitoring: None
            })
        );
        assert_eq!(
            parse_ports_file(
                r#"{"nats":["nats://127.0.0.1:43525"],"monitoring":["http://127.0.0.1:43977"],"cluster":["nats://127.0.0.1:49535"]}"#
            ),
            Some(Ports {
                client: 43525,
                cluster: Some(49535),
                monitoring: Some(43977)
            })
        );
        assert_eq!(parse_ports_file(r#"{"nats":[]}"#), None);
        assert_eq!(parse_ports_file("{"), None);
    }

    #[test]
    fn args_pick_a_port_or_keep_one() {
        let a = args(None, Path::new("/s"), Path::new("/p"));
        assert!(a.windows(2).any(|w| w[0] == "-p" && w[1] == "-1"));
        let a = args(Some(4222), Path::new("/s"), Path::new("/p"));
        assert!(a.windows(2).any(|w| w[0] == "-p" && w[1] == "4222"));
    }
}
