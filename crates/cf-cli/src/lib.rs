//! `cf`: a Cloud Foundry style command line client for the platform's v3 API,
//! plus `cf dev` to run the whole platform locally.

pub mod client;
pub mod commands;
pub mod config;
pub mod devbroker;
pub mod devenv;
pub mod dns;
pub mod error;
pub mod format;
pub mod ignore;
pub mod manifest;
pub mod models;
pub mod resources;
pub mod size;
pub mod terminal;
pub mod zipdir;

pub use commands::{Cli, Command};
pub use error::{CliError, Result};

/// Run one command; on error prints the reason on stderr, then `FAILED`
/// (bold red on a terminal) on stdout, as the cf CLI does. Returns the
/// process exit code.
pub async fn run(cli: Cli) -> u8 {
    match commands::dispatch(cli.command).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            println!(
                "{}",
                terminal::paint("FAILED", terminal::Style::Failed, terminal::color_enabled())
            );
            e.exit_code()
        }
    }
}

/// Parses the command line as the cf CLI does: `cf` alone prints the
/// short help; help and version requests exit 0; argument errors print
/// `Incorrect Usage: ...` and the command's help and exit 1.
pub fn parse(args: Vec<std::ffi::OsString>) -> std::result::Result<Cli, u8> {
    use clap::{CommandFactory, Parser};
    if args.len() <= 1 {
        let mut cli = Cli::command();
        cli.build();
        print!("{}", commands::help::grouped(&cli, false));
        return Err(0);
    }
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {
            println!("cf version {}", env!("CARGO_PKG_VERSION"));
            Err(0)
        }
        Err(e) => {
            let mut root = Cli::command();
            root.build();
            // The first word that is not a flag names the command.
            let word = args
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .find(|a| !a.starts_with('-'));
            let help = word
                .as_deref()
                .and_then(|w| root.find_subcommand_mut(w))
                .map(|sub| sub.render_help().to_string());
            let failure =
                terminal::usage_failure(e.kind(), &e.render().to_string(), help, word.as_deref());
            print!("{}", failure.stdout);
            eprint!("{}", failure.text);
            Err(failure.code)
        }
    }
}
