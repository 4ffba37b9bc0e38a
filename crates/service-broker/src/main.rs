use std::path::PathBuf;

use clap::Parser;

/// Open Service Broker API v2 server for PostgreSQL, MySQL, Redis and
/// RabbitMQ on this machine (docs/service-broker.md).
#[derive(Parser)]
#[command(name = "service-broker", version)]
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
    let config = service_broker::Config::load(args.config.as_deref())?;
    service_broker::run(config, proto::service::shutdown_signal()).await?;
    Ok(())
}
