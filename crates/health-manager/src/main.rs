use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Health manager: keeps actual app instances in line with desired state.
#[derive(Parser)]
#[command(name = "health-manager", version)]
struct Args {
    /// TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = health_manager::Config::load(args.config.as_deref())?;
    health_manager::run(config, shutdown_signal()).await?;
    Ok(())
}
