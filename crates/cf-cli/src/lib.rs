//! `cf`: a Cloud Foundry style command line client for the platform's v3 API,
//! plus `cf dev` to run the whole platform locally.

pub mod client;
pub mod commands;
pub mod config;
pub mod devenv;
pub mod dns;
pub mod error;
pub mod format;
pub mod manifest;
pub mod models;
pub mod resources;
pub mod size;
pub mod zipdir;

pub use commands::{Cli, Command};
pub use error::{CliError, Result};

/// Run one command; prints `FAILED` and the reason on stderr on error.
/// Returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match commands::dispatch(cli.command).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("FAILED");
            eprintln!("{e}");
            e.exit_code()
        }
    }
}
