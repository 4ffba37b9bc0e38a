//! Simulated hosts on one machine (docs/operations.md "A platform on
//! simulated hosts"): each host a network namespace on a bridge of its
//! own ([`net`]) with its own address, state dir and host agent; release
//! directories whose programs run this machine's binaries ([`release`]);
//! HAProxy in front of the routers and between the hosts and Postgres
//! ([`haproxy`]); a manifest for them ([`layout`]), deployed by the
//! deployer as on real hosts.
//!
//! `paas lab up` (what `cf dev start --hosts N` runs) leaves all this
//! running and records it in `<dir>/lab.json` ([`dev`]); `paas lab down`
//! (`cf dev stop`) removes every process, namespace, veth, rule and
//! mount it names. The operator's integration tests build their hosts
//! from the same parts, as child processes that go on drop.

pub mod dev;
pub mod haproxy;
pub mod layout;
pub mod net;
pub mod procs;
pub mod release;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A lab step that failed, saying which.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

/// The `paas agent` command line for `host` of `net`, listening on `addr`
/// inside the host, its state in `state_dir`.
pub fn agent_command(
    net: &net::Net,
    paas: &Path,
    host: &str,
    addr: std::net::SocketAddr,
    state_dir: &Path,
    token_file: &Path,
) -> Command {
    let mut c = net.command(host, paas);
    c.args(["agent", "--host", host, "--listen", &addr.to_string()])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--token-file")
        .arg(token_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// After the agents are gone (their components got SIGTERM with them):
/// waits up to 30 s for the components working under each host's state
/// dir to stop, kills what is left, then removes what each host's DEA
/// left (containers, their namespaces, veths and rules: `dea
/// container-cleanup` inside the host's namespace). `hosts` are (name,
/// state dir).
pub fn reap_hosts(net: &net::Net, hosts: &[(String, PathBuf)], dea: Option<&Path>) {
    let components = |state: &Path| procs::pids_with_cwd_under(&state.join("components"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && hosts.iter().any(|(_, s)| !components(s).is_empty()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, state) in hosts {
        for pid in components(state) {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) on processes this lab's agents started
                // (and their process groups).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    let Some(dea) = dea else {
        return;
    };
    for (name, state) in hosts {
        let tags = procs::container_tags(&state.join("components").join("dea"));
        if tags.is_empty() {
            continue;
        }
        let _ = net
            .command(name, dea)
            .arg("container-cleanup")
            .args(&tags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether this process runs as root (namespaces, a bridge and iptables
/// need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}
