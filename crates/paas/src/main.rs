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

// Parsed once: the agent's flags inline are no cost worth a box.
#[allow(clippy::large_enum_variant)]
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
    /// Simulated hosts on this machine (what `cf dev start --hosts N` runs; root only)
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Run the host agent: supervise this host's components as the deployer asks
    /// (`paas agent install`: write its systemd unit)
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Agent {
        #[command(subcommand)]
        action: Option<AgentAction>,
        #[command(flatten)]
        run: Option<AgentRun>,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Make N hosts (network namespaces on a bridge), start their agents
    /// and a load balancer, and deploy the platform on them
    Up {
        /// Where the manifest, releases, hosts' state dirs and logs go
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// The load balancer's port on 127.0.0.1
        #[arg(long, default_value_t = 8080)]
        lb_port: u16,
        /// The platform's database (created when missing)
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/paas_dev")]
        database_url: String,
    },
    /// Stop everything `paas lab up` started and remove what it made
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The hosts, the load balancer and every component's version and health
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AgentAction {
    /// Write the agent's systemd unit (paas-agent.service); runs no systemctl
    Install {
        /// This host's name in the manifest
        #[arg(long)]
        host: String,
        /// The address and port the agent listens on (the manifest's address and agent_port)
        #[arg(long)]
        listen: String,
        /// The agent's state dir (an absolute path)
        #[arg(long)]
        state_dir: PathBuf,
        /// The deployment's agent token (mode 0600)
        #[arg(long)]
        token_file: PathBuf,
        /// Where the unit goes
        #[arg(long, default_value = paas::agent::install::DEFAULT_UNIT_DIR)]
        unit_dir: PathBuf,
        /// The paas binary the unit runs (default: this one)
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Serve the agent's API over HTTPS with this certificate (PEM)
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's key (PEM, mode 0600)
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Replace an existing, different unit
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
struct AgentRun {
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
    /// Serve the API over HTTPS with this certificate (PEM); off by default
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's key (PEM, mode 0600, else the agent refuses to start)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn tls_files(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<paas::agent::tls::TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => Some(paas::agent::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}

fn action_args(a: &LabAction) -> commands::lab::Action {
    match a {
        LabAction::Up {
            dir,
            hosts,
            lb_port,
            database_url,
        } => commands::lab::Action::Up {
            dir: dir.clone(),
            hosts: *hosts,
            lb_port: *lb_port,
            database_url: database_url.clone(),
        },
        LabAction::Down { dir } => commands::lab::Action::Down(dir.clone()),
        LabAction::Status { dir } => commands::lab::Action::Status(dir.clone()),
    }
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
        Command::Lab { action } => rt.block_on(commands::lab::run(action_args(action))),
        Command::Agent {
            action:
                Some(AgentAction::Install {
                    host,
                    listen,
                    state_dir,
                    token_file,
                    unit_dir,
                    binary,
                    tls_cert,
                    tls_key,
                    force,
                }),
            ..
        } => commands::agent::install(&paas::agent::install::InstallArgs {
            host: host.clone(),
            listen: listen.clone(),
            state_dir: state_dir.clone(),
            token_file: token_file.clone(),
            unit_dir: unit_dir.clone(),
            binary: binary.clone(),
            tls: tls_files(tls_cert, tls_key),
            force: *force,
        }),
        Command::Agent {
            action: None,
            run: Some(a),
        } => rt.block_on(commands::agent::run(paas::agent::AgentConfig {
            host: a.host.clone(),
            listen: a.listen,
            state_dir: a.state_dir.clone(),
            token_file: a.token_file.clone(),
            addr_file: a.addr_file.clone(),
            tls: tls_files(&a.tls_cert, &a.tls_key),
        })),
        Command::Agent {
            action: None,
            run: None,
        } => Err(commands::CmdError {
            message: "paas agent: --host, --state-dir and --token-file are needed (or paas agent install ...)".into(),
            code: 2,
        }),
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
