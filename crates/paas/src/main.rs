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
    /// Plan (and with --dry-run, only print) the move of every host to the manifest's release
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Deploy {
            manifest,
            dry_run,
            state,
        } => commands::deploy::run(manifest, state.as_deref(), *dry_run),
        Command::Status { manifest, state } => commands::status::run(manifest, state.as_deref()),
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
