//! Terminal habits of the cf CLI: colour only on a terminal (or as `CF_COLOR`
//! says), `Incorrect Usage` for argument errors, and error texts without the
//! runtime's internals.

use std::io::IsTerminal;

/// A text style the cf CLI uses (`OK` green, `FAILED` red, both bold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Ok,
    Failed,
    Bold,
}

/// Whether to colour output: `CF_COLOR=true|false` decides when set, else
/// colour when stdout is a terminal (never when piped), as the cf CLI does.
pub fn color_enabled() -> bool {
    color_choice(
        std::env::var("CF_COLOR").ok().as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// [`color_enabled`] without the environment (for tests).
pub fn color_choice(cf_color: Option<&str>, stdout_is_terminal: bool) -> bool {
    match cf_color.map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        _ => stdout_is_terminal,
    }
}

/// `text` in `style` when `color`, else unchanged.
pub fn paint(text: &str, style: Style, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match style {
        Style::Ok => "32;1",
        Style::Failed => "31;1",
        Style::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// What the user reads for an I/O error: the OS's words without
/// " (os error N)".
pub fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => proto::io_error_text(e),
    }
}

/// How an argument error is shown and what the process exits with.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageFailure {
    /// Printed on stderr (`Incorrect Usage: ...` plus the command's help).
    pub text: String,
    /// Printed on stdout (help and version requests).
    pub stdout: String,
    pub code: u8,
}

/// Turns a clap error into the cf CLI's answer: help and version go to
/// stdout with exit 0; an unknown command is "'x' is not a registered
/// command. See 'cf help -a'"; everything else is `Incorrect Usage: ...`,
/// a blank line and the command's help, exit 1.
pub fn usage_failure(
    kind: clap::error::ErrorKind,
    rendered: &str,
    command_help: Option<String>,
    unknown_command: Option<&str>,
) -> UsageFailure {
    use clap::error::ErrorKind as K;
    match kind {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => {
            return UsageFailure {
                text: String::new(),
                stdout: rendered.to_string(),
                code: 0,
            }
        }
        K::InvalidSubcommand => {
            if let Some(name) = unknown_command {
                return UsageFailure {
                    text: format!("'{name}' is not a registered command. See 'cf help -a'\n"),
                    stdout: String::new(),
                    code: 1,
                };
            }
        }
        _ => {}
    }
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match kind {
        // "invalid value 'x' for '-i <INSTANCES>': invalid digit found in
        // string": keep what the user typed and where, not the parser's
        // words.
        K::ValueValidation | K::InvalidValue => match first.rfind("': ") {
            Some(i) if first.starts_with("invalid value") => {
                format!("{}'", &first[..i])
            }
            _ => first.to_string(),
        },
        _ => first.to_string(),
    };
    let mut text = format!("Incorrect Usage: {message}\n");
    if let Some(help) = command_help {
        text.push('\n');
        text.push_str(help.trim_end());
        text.push('\n');
    }
    UsageFailure {
        text,
        stdout: String::new(),
        code: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind as K;

    #[test]
    fn colour_follows_cf_color_then_the_terminal() {
        for (env, tty, want) in [
            (None, true, true),
            (None, false, false),
            (Some("false"), true, false),
            (Some("true"), false, true),
            (Some("TRUE"), false, true),
            (Some("junk"), true, true),
            (Some("0"), true, false),
        ] {
            assert_eq!(color_choice(env, tty), want, "{env:?} {tty}");
        }
        assert_eq!(paint("OK", Style::Ok, false), "OK");
        assert_eq!(paint("OK", Style::Ok, true), "\x1b[32;1mOK\x1b[0m");
        assert_eq!(
            paint("FAILED", Style::Failed, true),
            "\x1b[31;1mFAILED\x1b[0m"
        );
    }

    #[test]
    fn io_errors_lose_the_os_error_number() {
        let nf = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_text(&nf), "no such file or directory");
        let other = std::io::Error::from_raw_os_error(28);
        assert_eq!(io_text(&other), "No space left on device");
    }

    #[test]
    fn usage_errors_read_like_cf() {
        let cases: &[(K, &str, Option<&str>, &str, u8)] = &[
            (
                K::MissingRequiredArgument,
                "error: the following required arguments were not provided:\n  <NAME>\n",
                None,
                "Incorrect Usage: the following required arguments were not provided:\n",
                1,
            ),
            (
                K::ValueValidation,
                "error: invalid value 'x' for '-i <INSTANCES>': invalid digit found in string\n",
                None,
                "Incorrect Usage: invalid value 'x' for '-i <INSTANCES>'\n",
                1,
            ),
            (
                K::UnknownArgument,
                "error: unexpected argument '--bogus' found\n",
                None,
                "Incorrect Usage: unexpected argument '--bogus' found\n",
                1,
            ),
            (
                K::InvalidSubcommand,
                "error: unrecognized subcommand 'pish'\n",
                Some("pish"),
                "'pish' is not a registered command. See 'cf help -a'\n",
                1,
            ),
        ];
        for (kind, rendered, unknown, want, code) in cases {
            let f = usage_failure(*kind, rendered, None, *unknown);
            assert_eq!(&f.text, want, "{kind:?}");
            assert_eq!(f.code, *code);
        }
        let f = usage_failure(
            K::UnknownArgument,
            "error: unexpected argument '-z' found\n\nUsage: cf push\n",
            Some("NAME:\n   push\n".into()),
            None,
        );
        assert_eq!(
            f.text,
            "Incorrect Usage: unexpected argument '-z' found\n\nNAME:\n   push\n"
        );
        let help = usage_failure(K::DisplayHelp, "Usage: cf\n", None, None);
        assert_eq!((help.code, help.stdout.as_str()), (0, "Usage: cf\n"));
    }
}
