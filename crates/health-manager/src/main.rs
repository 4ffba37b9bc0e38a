use std::path::PathBuf;

use clap::Parser;

/// Health manager: keeps actual app instances in line with desired state.
#[derive(Parser)]
#[command(name = "health-manager", version)]
struct Args {
    /// TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    proto::service::init_tracing();
    proto::service::private_umask();
    let args = Args::parse();
    let config = health_manager::Config::load(args.config.as_deref())?;
    health_manager::run(config, proto::service::shutdown_signal()).await?;
    Ok(())
}
