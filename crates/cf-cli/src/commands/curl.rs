//! `cf curl PATH [-X METHOD] [-H 'K: V']... [-d DATA|@FILE] [-i] [--output
//! FILE] [--fail]`: an authenticated raw request to the API. The body is
//! printed whatever the status (exit 0), unless `--fail` is given: then a
//! 4xx/5xx answer exits 22, as curl's `--fail` does.

use bytes::Bytes;
use reqwest::Method;

use super::common::logged_in;
use crate::client::RawResponse;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the API, e.g. /v3/apps
    pub path: String,
    /// HTTP method (GET, POST, PUT, DELETE, etc); POST when -d is given
    #[arg(short = 'X')]
    pub method: Option<String>,
    /// Custom headers to include in the request, flag can be specified multiple times
    #[arg(short = 'H')]
    pub headers: Vec<String>,
    /// HTTP data to include in the request body, or '@' followed by a file name to read the data from
    #[arg(short = 'd')]
    pub data: Option<String>,
    /// Include response headers in the output
    #[arg(short = 'i')]
    pub include: bool,
    /// Write curl body to FILE instead of stdout
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// Server errors return exit code 22
    #[arg(long, short = 'f')]
    pub fail: bool,
    /// Accepted for compatibility (use CF_TRACE=true for the request trace)
    #[arg(short = 'v')]
    pub verbose: bool,
}

/// `K: V` of a `-H` value.
pub fn parse_header(h: &str) -> Result<(String, String)> {
    match h.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(CliError::Usage(format!(
            "Incorrect Usage: header '{h}' is not of the form 'Name: value'"
        ))),
    }
}

/// The method: the one given (upper-cased), else POST with data, else GET.
pub fn method_for(method: Option<&str>, has_data: bool) -> Result<Method> {
    let m = match method {
        Some(m) => m.trim().to_ascii_uppercase(),
        None if has_data => "POST".into(),
        None => "GET".into(),
    };
    Method::from_bytes(m.as_bytes())
        .map_err(|_| CliError::Usage(format!("Incorrect Usage: invalid HTTP method '{m}'")))
}

/// The status line and headers, as `-i` shows them.
pub fn head_text(r: &RawResponse) -> String {
    let mut out = format!("{:?} {}\r\n", r.version, r.status);
    for (k, v) in &r.headers {
        out.push_str(&format!(
            "{}: {}\r\n",
            canonical(k.as_str()),
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    out.push_str("\r\n");
    out
}

/// `content-type` → `Content-Type`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

pub async fn run(args: Args) -> Result<()> {
    let (c, _user) = logged_in()?;
    let body = match &args.data {
        Some(d) => match d.strip_prefix('@') {
            Some(file) => Some(Bytes::from(
                std::fs::read(file).map_err(|e| CliError::io(format!("reading {file}"), e))?,
            )),
            None => Some(Bytes::from(d.clone())),
        },
        None => None,
    };
    let method = method_for(args.method.as_deref(), body.is_some())?;
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>>>()?;
    // Always a path of the API: the token must not go to another host.
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let resp = c.raw(method, &path, &headers, body).await?;
    if args.fail && (resp.status.is_client_error() || resp.status.is_server_error()) {
        return Err(CliError::CurlFail(resp.status.as_u16()));
    }
    let mut out: Vec<u8> = Vec::new();
    if args.include {
        out.extend_from_slice(head_text(&resp).as_bytes());
    }
    out.extend_from_slice(&resp.body);
    match &args.output {
        Some(file) => std::fs::write(file, &out)
            .map_err(|e| CliError::io(format!("writing {}", file.display()), e))?,
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(&out);
            if !out.ends_with(b"\n") {
                let _ = stdout.write_all(b"\n");
            }
            let _ = stdout.flush();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments() {
        assert_eq!(
            parse_header("Content-Type: text/plain").ok(),
            Some(("Content-Type".into(), "text/plain".into()))
        );
        assert!(parse_header("nocolon").is_err());
        assert_eq!(method_for(None, false).ok(), Some(Method::GET));
        assert_eq!(method_for(None, true).ok(), Some(Method::POST));
        assert_eq!(method_for(Some("delete"), false).ok(), Some(Method::DELETE));
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-vcap-request-id"), "X-Vcap-Request-Id");
    }

    #[test]
    fn renders_head() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().expect("hv"));
        let r = RawResponse {
            status: reqwest::StatusCode::NOT_FOUND,
            version: reqwest::Version::HTTP_11,
            headers,
            body: Bytes::new(),
        };
        assert_eq!(
            head_text(&r),
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
        );
    }
}
