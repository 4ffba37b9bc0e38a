use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(name = "dea", about = "Droplet Execution Agent")]
struct Args {
    /// TOML config file (docs/conventions.md "DEA config").
    #[arg(long)]
    config: Option<PathBuf>,
}

async fn shutdown_signal() {
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

/// SIGUSR2: drain (evacuate instances, then exit).
async fn drain_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined2()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

fn main() -> std::process::ExitCode {
    // A container's PID 1: a minimal path before any runtime or logging.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if dea::backend::namespaces::init::invoked(&argv) {
        let code = dea::backend::namespaces::init::main(&argv[2..]);
        return std::process::ExitCode::from(code.clamp(0, 255) as u8);
    }
    // `dea container-cleanup <tag>...`: removes what a namespaces backend
    // with that tag left on the host (docs/containers.md).
    if argv.get(1).map(String::as_str) == Some("container-cleanup") {
        for tag in &argv[2..] {
            dea::backend::namespaces::NamespacesBackend::cleanup_tag(tag);
        }
        return std::process::ExitCode::SUCCESS;
    }
    // `dea drain [--config FILE]`: SIGUSR2 to the DEA on that state dir.
    if argv.get(1).map(String::as_str) == Some("drain") {
        return std::process::ExitCode::from(dea::drain::command(&argv[2..]));
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = match dea::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad config");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    let state_dir = cfg.state_dir.clone();
    if let Err(e) = dea::drain::write_pid_file(&state_dir) {
        tracing::warn!(error = %e, "cannot write the pid file (dea drain will not find this DEA)");
    }
    let result = rt.block_on(dea::agent::run_with_drain(
        cfg,
        shutdown_signal(),
        drain_signal(),
    ));
    dea::drain::remove_pid_file(&state_dir);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "dea failed");
            std::process::ExitCode::FAILURE
        }
    }
}
