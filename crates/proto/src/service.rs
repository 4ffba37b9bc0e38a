//! What every component binary does the same way around its `run`: the
//! tracing set-up and the shutdown signal (docs/conventions.md).

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), with colours
/// only on a terminal.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

/// Files and directories this process creates are its owner's only
/// (umask 077): the controller's database, blobs and keys, and every
/// component's addr and state files (issue 13, "secrets at rest"). Not for
/// the DEA, whose instance files the containers' users read.
pub fn private_umask() {
    // SAFETY: umask(2) only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the components drain and exit.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The executable `name` on `PATH`, then in `extra_dirs`.
pub fn which(name: &str, extra_dirs: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    executable_in(
        name,
        std::env::split_paths(&path).chain(extra_dirs.iter().map(std::path::PathBuf::from)),
    )
}

/// The first executable file `name` in `dirs`.
pub fn executable_in(
    name: &str,
    dirs: impl IntoIterator<Item = std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}
