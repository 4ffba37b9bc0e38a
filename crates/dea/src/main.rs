use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dea", about = "Droplet Execution Agent", version)]
struct Args {
    /// TOML config file (docs/conventions.md "DEA config").
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Asks the DEA using that config's state dir to drain: its instances are
    /// evacuated to other DEAs, then it exits (SIGUSR2 does the same).
    Drain {
        /// The DEA's TOML config file (its state dir holds the pid file).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Wait up to this many seconds for the DEA to exit.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Removes what a namespaces backend with these tags left on the host
    /// (cgroups, network namespaces, veths, iptables chains), for a DEA that
    /// died without cleaning up (docs/containers.md).
    ContainerCleanup {
        /// Backend tags (`<state_dir>/namespaces.tag`).
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Internal: PID 1 of a container, started by the namespaces backend
    /// (`container-init <rootfs_dir> <uid> [etc=<dir>] [<ro_path>...]`, or
    /// `--fingerprint`; docs/containers.md).
    #[command(hide = true)]
    ContainerInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
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
    use std::process::ExitCode;
    let args = Args::parse();
    match args.command {
        // A container's PID 1: no runtime or logging.
        Some(Command::ContainerInit { args }) => {
            let code = dea::backend::namespaces::init::main(&args);
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
        Some(Command::ContainerCleanup { tags }) => {
            for tag in &tags {
                dea::backend::namespaces::NamespacesBackend::cleanup_tag(tag);
            }
            return ExitCode::SUCCESS;
        }
        Some(Command::Drain { config, wait }) => {
            return ExitCode::from(dea::drain::command(config.as_deref(), wait));
        }
        None => {}
    }
    proto::service::init_tracing();
    let cfg = match dea::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad config");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start runtime");
            return ExitCode::FAILURE;
        }
    };
    let state_dir = cfg.state_dir.clone();
    if let Err(e) = dea::drain::write_pid_file(&state_dir) {
        tracing::warn!(error = %e, "cannot write the pid file (dea drain will not find this DEA)");
    }
    let result = rt.block_on(dea::agent::run_with_drain(
        cfg,
        proto::service::shutdown_signal(),
        drain_signal(),
    ));
    dea::drain::remove_pid_file(&state_dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "dea failed");
            ExitCode::FAILURE
        }
    }
}
