//! A private nats-server (JetStream on) per test, on a port it binds
//! itself, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// A nats-server child process with its own store dir and log file.
pub struct NatsServer {
    child: Option<Child>,
    bin: PathBuf,
    /// The client port; kept across [`NatsServer::restart`].
    pub port: u16,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// nats-server's own config file (`-c`), when started with one.
    conf: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server on a port of its own choosing (`-p -1`, read back
    /// from its ports file: no bind-release-rebind race) and waits until it
    /// accepts connections.
    pub fn start() -> Result<NatsServer> {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), with nats-server's config file holding
    /// `conf` (users and permissions: `proto::busauth::server_config`),
    /// written 0600; command-line flags still choose the port and store.
    pub fn start_with_config(conf: &str) -> Result<NatsServer> {
        Self::start_inner(Some(conf))
    }

    fn start_inner(conf: Option<&str>) -> Result<NatsServer> {
        let bin =
            proto::nats_server::find().ok_or_else(|| anyhow!(proto::nats_server::NOT_FOUND))?;
        let dir = tempfile::Builder::new().prefix("testkit-nats-").tempdir()?;
        let mut n = NatsServer {
            child: None,
            bin,
            port: 0,
            url: String::new(),
            log: dir.path().join("nats.log"),
            conf: None,
            dir,
        };
        if let Some(text) = conf {
            let path = n.dir.path().join("nats.conf");
            write_private(&path, text)?;
            n.conf = Some(path);
        }
        n.spawn(None)?;
        Ok(n)
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<()> {
        let store = self.dir.path().join("store");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut args = Vec::new();
        if let Some(c) = &self.conf {
            args.extend(["-c".to_string(), c.display().to_string()]);
        }
        args.extend(proto::nats_server::args(port, &store, self.dir.path()));
        let child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let dir = self.dir.path().to_path_buf();
        let port =
            crate::wait_for_blocking("nats-server's ports file", Duration::from_secs(10), || {
                proto::nats_server::read_port(&dir, pid)
            })
            .map_err(|e| anyhow!("{e}\n{}", self.log_tail(20)))?;
        self.port = port;
        self.url = format!("nats://127.0.0.1:{port}");
        crate::wait_for_blocking(
            "nats-server to accept connections",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        )?;
        Ok(())
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s); the store stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let exited =
                crate::wait_for_blocking("nats-server to exit", Duration::from_secs(5), || {
                    c.try_wait().ok().flatten()
                });
            if exited.is_err() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and store (after
    /// [`stop`](Self::stop) or [`kill`](Self::kill)).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn(Some(self.port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        crate::log_tail(&self.log, n)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `text` to a new file only its owner may read (0600), as `cf dev
/// start` writes configs holding secrets (`proto::config::write_private`).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    proto::config::write_private(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_its_own_port_and_restarts_on_it() {
        let mut n = NatsServer::start().expect("nats-server");
        assert_ne!(n.port, 0);
        assert!(std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok());
        let port = n.port;
        n.stop();
        n.restart().expect("restart");
        assert_eq!(n.port, port);
        drop(n);
        crate::wait_for_blocking("the port to close", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        })
        .expect("killed on drop");
    }
}
