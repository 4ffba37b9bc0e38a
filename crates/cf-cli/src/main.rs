use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cf apps | head`) like other CLIs.
    // SAFETY: setting a signal disposition to its default at startup.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    proto::service::init_tracing();
    match cf_cli::parse(std::env::args_os().collect()) {
        Ok(cli) => ExitCode::from(cf_cli::run(cli).await),
        Err(code) => ExitCode::from(code),
    }
}
