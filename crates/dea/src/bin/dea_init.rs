//! `dea-init`: the container-init entry alone (docs/containers.md), so that
//! starting a container execs a small binary instead of the whole DEA. Same
//! arguments as `dea container-init ...`; the namespaces backend uses it
//! when it sits next to the `dea` binary.

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if !dea::backend::namespaces::init::invoked(&argv) {
        eprintln!("usage: dea-init container-init <rootfs> [etc=<dir>] [<ro_path>...]");
        return std::process::ExitCode::from(2);
    }
    let code = dea::backend::namespaces::init::main(&argv[2..]);
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
