use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cf apps | head`) like other CLIs.
    // SAFETY: setting a signal disposition to its default at startup.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = cf_cli::Cli::parse();
    ExitCode::from(cf_cli::run(cli).await)
}
