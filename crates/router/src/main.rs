use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// HTTP router: learns routes from NATS and proxies to app instances.
#[derive(Parser)]
#[command(name = "router", version)]
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = router::Config::load(args.config.as_deref())?;
    // One worker: a current-thread runtime (no work-stealing machinery).
    let mut rt = if config.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if config.worker_threads > 1 {
        rt.worker_threads(config.worker_threads);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(router::run(config, shutdown_signal()))?;
    Ok(())
}
