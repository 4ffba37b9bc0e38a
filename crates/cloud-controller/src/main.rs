use std::path::PathBuf;

use clap::Parser;

/// Cloud controller: the platform's API, desired state and staging orchestration.
#[derive(Debug, Parser)]
#[command(name = "cloud-controller")]
struct Args {
    /// TOML config file (docs/conventions.md).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    proto::service::init_tracing();
    proto::service::private_umask();
    cloud_controller::login::return_hash_memory();
    let cfg = cloud_controller::Config::load(args.config.as_deref())?;
    cloud_controller::run(cfg, proto::service::shutdown_signal()).await?;
    Ok(())
}
