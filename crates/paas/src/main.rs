//! `paas`: the operator's tool (docs/operations.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use paas::commands;

#[derive(Parser)]
#[command(
    name = "paas",
    about = "Deploy, upgrade and inspect the platform across hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Move every host to the manifest's release (with --dry-run, only print the plan)
    Deploy {
        manifest: PathBuf,
        /// Print the plan; change nothing
        #[arg(long)]
        dry_run: bool,
        /// The deployment's state file (default: .paas/<name>/state.json beside the manifest)
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Show every host's components and versions
    Status {
        manifest: PathBuf,
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Roll the last deployment back to the release each host ran before
    Rollback { manifest: PathBuf },
    /// Print the deployment timeline
    Events { manifest: PathBuf },
    /// Run the host agent: supervise this host's components as the deployer asks
    Agent {
        /// This host's name in the manifest
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        state_dir: PathBuf,
        /// The deployment's agent token (mode 0600)
        #[arg(long)]
        token_file: PathBuf,
        /// Write the bound address here (with port 0)
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest's rustls needs a provider (docs/conventions.md).
    proto::https::install_ring();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One thread: the agent's children get their parent-death signal from
    // the thread that spawned them, which must live as long as the agent.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paas: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Command::Deploy {
            manifest,
            dry_run,
            state,
        } => rt.block_on(commands::deploy::run(manifest, state.as_deref(), *dry_run)),
        Command::Status { manifest, state } => {
            rt.block_on(commands::status::run(manifest, state.as_deref()))
        }
        Command::Rollback { manifest } => rt.block_on(commands::rollback::run(manifest)),
        Command::Events { manifest } => commands::events::run(manifest),
        Command::Agent {
            host,
            listen,
            state_dir,
            token_file,
            addr_file,
        } => rt.block_on(commands::agent::run(paas::agent::AgentConfig {
            host: host.clone(),
            listen: *listen,
            state_dir: state_dir.clone(),
            token_file: token_file.clone(),
            addr_file: addr_file.clone(),
        })),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.code)
        }
    }
}
