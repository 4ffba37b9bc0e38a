use std::path::PathBuf;

use clap::Parser;

/// HTTP router: learns routes from NATS and proxies to app instances.
#[derive(Parser)]
#[command(name = "router", version)]
struct Args {
    /// TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    proto::service::init_tracing();
    proto::service::private_umask();
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
    rt.block_on(router::run(config, proto::service::shutdown_signal()))?;
    Ok(())
}
