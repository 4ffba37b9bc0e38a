//! `paas` tests: the CLI's plans and refusals, `paas agent install`, the
//! host agent supervising real platform components, and the agents'
//! channel over TLS.

mod agent;
mod cli;
mod deployer;
mod tls;

/// Spawns `paas agent` (`cmd`, writing its address to `addr_file`) with
/// its log in `dir/agent.log`; the child and the address it listens on.
fn spawn_agent(
    cmd: &mut std::process::Command,
    dir: &std::path::Path,
    addr_file: &std::path::Path,
) -> (std::process::Child, String) {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("agent.log"))
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
        )
        .spawn()
        .expect("spawn agent");
    let addr = testkit::wait_for_blocking(
        "the agent's address",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_to_string(addr_file)
                .ok()
                .filter(|s| !s.is_empty())
        },
    )
    .expect("agent address");
    (child, addr)
}
