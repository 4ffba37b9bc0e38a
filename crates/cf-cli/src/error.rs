//! Typed errors of the CLI. The `Display` text is what the user reads after `FAILED`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("No API endpoint set. Use 'cf login' or 'cf api' to target an endpoint.")]
    NoApi,
    #[error("Not logged in. Use 'cf login' to log in.")]
    NotLoggedIn,
    #[error("No org targeted, use 'cf target -o ORG' to target an org.")]
    NoOrg,
    #[error("No space targeted, use 'cf target -s SPACE' to target a space.")]
    NoSpace,
    #[error("App '{0}' not found.")]
    AppNotFound(String),
    /// An error answered by the controller (`errors[0]` or the UAA error body).
    #[error("{detail}")]
    Api {
        status: u16,
        code: Option<i64>,
        title: String,
        detail: String,
    },
    #[error("Request error: {0}\nTIP: If you are behind a firewall and require an HTTP proxy, verify the https_proxy environment variable is correctly set. Else, check your network connection.")]
    Http(reqwest::Error),
    /// The server's certificate was refused (`cf api --skip-ssl-validation`
    /// turns the check off).
    #[error("Invalid SSL Cert for {url}: {problem}\nTIP: Use 'cf api --skip-ssl-validation' to continue with an insecure API endpoint{}",
        if matches!(problem, proto::https::CertProblem::UnknownAuthority) { ", or trust its CA with SSL_CERT_FILE=<ca.pem>" } else { "" })]
    Ssl {
        url: String,
        problem: proto::https::CertProblem,
    },
    #[error("Invalid response from the server: {0}")]
    Decode(String),
    #[error("{context}: {}", crate::terminal::io_text(source))]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("Invalid manifest: {0}")]
    Manifest(String),
    #[error("{0}")]
    Other(String),
    /// `cf curl --fail` on a 4xx/5xx answer (exit code 22, as curl's `--fail`).
    #[error("The requested URL returned error: {0}")]
    CurlFail(u16),
}

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        match proto::https::cert_problem(&e) {
            Some(problem) => CliError::Ssl {
                url: e
                    .url()
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|| "the API endpoint".into()),
                problem,
            },
            None => CliError::Http(e),
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn other(msg: impl Into<String>) -> Self {
        CliError::Other(msg.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::CurlFail(_) => 22,
            _ => 1,
        }
    }

    /// HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
