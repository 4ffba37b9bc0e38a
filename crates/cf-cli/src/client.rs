//! HTTP client for the controller: bearer auth, one token refresh on a 401
//! with code 1000, CF error bodies as typed errors, `CF_TRACE` output.

use crate::config::Config;
use crate::dns::LocalhostResolver;
use crate::error::{CliError, Result};
use crate::models::{List, TokenResponse};
use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A reqwest client with the CLI's resolver (`*.localhost` → 127.0.0.1), no
/// proxy, and certificates verified against [`trusted_ca_files`] on top of
/// the webpki roots.
pub fn http_client() -> Result<reqwest::Client> {
    http_client_with(false)
}

/// [`http_client`], or one that accepts any certificate when
/// `skip_ssl_validation` (`cf api --skip-ssl-validation`).
pub fn http_client_with(skip_ssl_validation: bool) -> Result<reqwest::Client> {
    use proto::https::Verify;
    let verify = if skip_ssl_validation {
        Verify::Skip
    } else {
        Verify::RootsAnd(trusted_ca_files(&crate::config::cf_home()))
    };
    let builder =
        proto::https::client_builder(&verify).map_err(|e| CliError::other(e.to_string()))?;
    Ok(builder
        .dns_resolver(LocalhostResolver)
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("cf-cli/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The CAs the CLI trusts besides the webpki roots: `SSL_CERT_FILE` when
/// set, and the local CA of `cf dev` in its default dir
/// (`$CF_HOME/.cfdev/tls/ca.pem`) when it exists.
pub fn trusted_ca_files(home: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(f) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        out.push(PathBuf::from(f));
    }
    let dev = crate::devenv::Layout::new(home.join(".cfdev")).ca_cert();
    if dev.is_file() {
        out.push(dev);
    }
    out
}

/// Body of one request; cheap to clone so it can be re-sent after a refresh.
#[derive(Clone)]
pub enum ReqBody {
    Empty,
    Json(Value),
    /// A zip uploaded as multipart field `bits`, with a progress line on stdout.
    Bits(Bytes),
    /// A package upload with resource matching (crate::resources): the
    /// `resources` field (JSON) and, when any file is left to send, `bits`.
    Package {
        resources: String,
        bits: Option<Bytes>,
    },
}

/// A whole response of [`Client::raw`].
pub struct RawResponse {
    pub status: StatusCode,
    pub version: reqwest::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: Arc<Mutex<Config>>,
    home: PathBuf,
    trace: Trace,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Trace {
    Off,
    Stderr,
    File(PathBuf),
}

impl Trace {
    pub fn from_env() -> Trace {
        match std::env::var("CF_TRACE") {
            Ok(v) if v.eq_ignore_ascii_case("true") || v == "1" => Trace::Stderr,
            Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("false") || v == "0" => Trace::Off,
            Ok(v) => Trace::File(PathBuf::from(v)),
            Err(_) => Trace::Off,
        }
    }

    fn emit(&self, text: &str) {
        match self {
            Trace::Off => {}
            Trace::Stderr => eprintln!("{text}"),
            Trace::File(p) => {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                {
                    let _ = writeln!(f, "{text}");
                }
            }
        }
    }
}

const HIDDEN: &str = "[PRIVATE DATA HIDDEN]";

/// Hide token-like values in a JSON or form body.
pub fn redact_body(body: &str) -> String {
    const KEYS: [&str; 5] = [
        "access_token",
        "refresh_token",
        "password",
        "oldPassword",
        "id_token",
    ];
    if let Ok(mut v) = serde_json::from_str::<Value>(body) {
        if let Some(obj) = v.as_object_mut() {
            for k in KEYS {
                if let Some(x) = obj.get_mut(k) {
                    *x = Value::String(HIDDEN.into());
                }
            }
        }
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    if body.contains('=') && !body.contains(char::is_whitespace) {
        return body
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if KEYS.contains(&k) => format!("{k}={HIDDEN}"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
    }
    body.to_string()
}

fn render_headers(h: &HeaderMap) -> String {
    h.iter()
        .map(|(k, v)| {
            let v = if k == AUTHORIZATION {
                HIDDEN.to_string()
            } else {
                v.to_str().unwrap_or("?").to_string()
            };
            format!("{k}: {v}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turn an error body (CF `errors[]` or UAA `error_description`) into a typed error.
pub fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
        return CliError::Api {
            status: status.as_u16(),
            code: e.get("code").and_then(Value::as_i64),
            title: e
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            detail: e
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
        };
    }
    if let Some(err) = v.get("error").and_then(Value::as_str) {
        let desc = v
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or(err);
        return CliError::Api {
            status: status.as_u16(),
            code: None,
            title: err.to_string(),
            detail: desc.to_string(),
        };
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    let detail = if text.is_empty() {
        format!("Server error, status code: {}", status.as_u16())
    } else {
        format!("Server error, status code: {}: {text}", status.as_u16())
    };
    CliError::Api {
        status: status.as_u16(),
        code: None,
        title: String::new(),
        detail,
    }
}

/// An expired or invalid token: the controller's code 1000, or UAA's
/// `invalid_token` (the SCIM calls of create-user, delete-user, passwd).
fn is_invalid_token(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.get("errors")
        .and_then(|e| e.get(0)?.get("code")?.as_i64())
        == Some(1000)
        || v.get("error").and_then(Value::as_str) == Some("invalid_token")
}

fn bits_form(bytes: Bytes) -> Result<reqwest::multipart::Form> {
    use futures_util::StreamExt;
    use std::io::{IsTerminal, Write};
    let total = bytes.len() as u64;
    let tty = std::io::stdout().is_terminal();
    let started = std::time::Instant::now();
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(64 * 1024)
        .map(|i| bytes.slice(i..(i + 64 * 1024).min(bytes.len())))
        .collect();
    let mut sent = 0u64;
    let stream = futures_util::stream::iter(chunks).map(move |c| {
        sent += c.len() as u64;
        if tty || sent == total {
            let pct = if total == 0 {
                100.0
            } else {
                sent as f64 * 100.0 / total as f64
            };
            let bar = "=".repeat((pct / 4.0) as usize);
            let line = format!(
                " {} / {} [{bar:<25}] {pct:.2}% {}s",
                crate::size::format_kib(sent),
                crate::size::format_kib(total),
                started.elapsed().as_secs()
            );
            let mut out = std::io::stdout();
            let _ = if tty {
                write!(out, "\r{line}")
            } else {
                writeln!(out, "{line}")
            };
            if tty && sent == total {
                let _ = writeln!(out);
            }
            let _ = out.flush();
        }
        Ok::<Bytes, std::io::Error>(c)
    });
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), total)
            .file_name("app.zip")
            .mime_str("application/zip")?;
    Ok(reqwest::multipart::Form::new().part("bits", part))
}

impl Client {
    pub fn new(cfg: Config, home: PathBuf) -> Result<Client> {
        Ok(Client {
            http: http_client_with(cfg.skip_ssl_validation)?,
            cfg: Arc::new(Mutex::new(cfg)),
            home,
            trace: Trace::from_env(),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn config(&self) -> Config {
        self.cfg.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Change the config and persist it.
    pub fn update_config(&self, f: impl FnOnce(&mut Config)) -> Result<()> {
        let snapshot = {
            let mut c = self
                .cfg
                .lock()
                .map_err(|_| CliError::other("config lock poisoned"))?;
            f(&mut c);
            c.clone()
        };
        snapshot.save(&self.home)
    }

    fn url(&self, path: &str) -> Result<String> {
        if path.starts_with("http://") || path.starts_with("https://") {
            return Ok(path.to_string());
        }
        let cfg = self.config();
        Ok(format!("{}{}", cfg.api()?.trim_end_matches('/'), path))
    }

    fn trace_request(&self, req: &reqwest::Request) {
        if self.trace == Trace::Off {
            return;
        }
        let body = match req.body().and_then(|b| b.as_bytes()) {
            Some(b) => redact_body(&String::from_utf8_lossy(b)),
            None if req.body().is_some() => "[MULTIPART/FORM-DATA CONTENT HIDDEN]".into(),
            None => String::new(),
        };
        self.trace.emit(&format!(
            "REQUEST: [{}]\n{} {}\n{}\n\n{}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            req.method(),
            req.url(),
            render_headers(req.headers()),
            body
        ));
    }

    fn trace_response(&self, status: StatusCode, headers: &HeaderMap, body: Option<&[u8]>) {
        if self.trace == Trace::Off {
            return;
        }
        let body = body
            .map(|b| redact_body(&String::from_utf8_lossy(b)))
            .unwrap_or_else(|| "[STREAMED]".into());
        self.trace.emit(&format!(
            "RESPONSE: [{}]\nHTTP/1.1 {status}\n{}\n\n{body}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            render_headers(headers)
        ));
    }

    /// Send a request with the bearer token; on a 401 code 1000, refresh once and retry.
    pub async fn send(&self, method: Method, path: &str, body: ReqBody) -> Result<Response> {
        let url = self.url(path)?;
        for attempt in 0..2 {
            let cfg = self.config();
            let mut rb = self.http.request(method.clone(), &url);
            if let Some(t) = &cfg.access_token {
                rb = rb.header(AUTHORIZATION, format!("bearer {t}"));
            }
            rb = match &body {
                ReqBody::Empty => rb,
                ReqBody::Json(v) => rb.json(v),
                ReqBody::Bits(b) => rb.multipart(bits_form(b.clone())?),
                ReqBody::Package { resources, bits } => {
                    let form = match bits {
                        Some(b) => bits_form(b.clone())?,
                        None => reqwest::multipart::Form::new(),
                    };
                    rb.multipart(form.text("resources", resources.clone()))
                }
            };
            let req = rb.build()?;
            self.trace_request(&req);
            let resp = self.http.execute(req).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let (status, headers) = (resp.status(), resp.headers().clone());
                let bytes = resp.bytes().await?;
                self.trace_response(status, &headers, Some(&bytes));
                if is_invalid_token(&bytes) && cfg.refresh_token.is_some() {
                    self.refresh().await?;
                    continue;
                }
                return Err(api_error(status, &bytes));
            }
            return Ok(resp);
        }
        Err(CliError::NotLoggedIn)
    }

    /// Read a whole response; non-2xx → typed error; empty body → `null`.
    pub async fn read<T: DeserializeOwned>(&self, resp: Response) -> Result<T> {
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.bytes().await?;
        self.trace_response(status, &headers, Some(&bytes));
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| CliError::Decode(format!("{e}")))
    }

    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
    ) -> Result<T> {
        let resp = self.send(method, path, body).await?;
        self.read(resp).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request(Method::GET, path, ReqBody::Empty).await
    }

    /// GET that maps 404 to `None`.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T> {
        self.request(Method::POST, path, ReqBody::Json(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T> {
        self.request(Method::PATCH, path, ReqBody::Json(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T> {
        self.request(Method::PUT, path, ReqBody::Json(body)).await
    }

    /// One request as `cf curl` makes it: extra headers, a raw body, and the
    /// answer whatever its status (a token is refreshed once on a 401 with
    /// code 1000, as for every other call).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<RawResponse> {
        let url = self.url(path)?;
        let mut attempt = 0;
        loop {
            let cfg = self.config();
            let mut rb = self.http.request(method.clone(), &url);
            if let Some(t) = &cfg.access_token {
                rb = rb.header(AUTHORIZATION, format!("bearer {t}"));
            }
            let has_content_type = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if body.is_some() && !has_content_type {
                rb = rb.header(CONTENT_TYPE, "application/json");
            }
            for (k, v) in headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let req = rb.build()?;
            self.trace_request(&req);
            let resp = self.http.execute(req).await?;
            let (status, resp_headers, version) =
                (resp.status(), resp.headers().clone(), resp.version());
            let bytes = resp.bytes().await?;
            self.trace_response(status, &resp_headers, Some(&bytes));
            if status == StatusCode::UNAUTHORIZED
                && attempt == 0
                && is_invalid_token(&bytes)
                && cfg.refresh_token.is_some()
            {
                attempt += 1;
                self.refresh().await?;
                continue;
            }
            return Ok(RawResponse {
                status,
                version,
                headers: resp_headers,
                body: bytes,
            });
        }
    }

    /// DELETE; returns the job URL from `Location` for a 202.
    pub async fn delete(&self, path: &str) -> Result<Option<String>> {
        Ok(self.write(Method::DELETE, path, ReqBody::Empty).await?.0)
    }

    /// A write that may answer `202 Accepted` with a job: the job URL from
    /// `Location` (none for a 200/201/204, which is done already) and the
    /// body (`null` when empty).
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
    ) -> Result<(Option<String>, Value)> {
        let resp = self.send(method, path, body).await?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = self.read(resp).await?;
        Ok((location, body))
    }

    /// Every resource of a paginated list, following `pagination.next`.
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        Ok(self.list_included(path).await?.0)
    }

    /// [`Client::list`], plus each page's `included` object (what
    /// `include=` and `fields[...]=` ask for), in page order.
    pub async fn list_included<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(Vec<T>, Vec<Value>)> {
        let mut out = Vec::new();
        let mut included = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            let page: List<T> = self.get(&p).await?;
            out.extend(page.resources);
            included.extend(page.included);
            pages += 1;
            next = page
                .pagination
                .next
                .map(|h| h.href)
                .filter(|h| !h.is_empty() && pages < 1000);
        }
        Ok((out, included))
    }

    /// A streaming GET (for the log stream); status checked, body left unread.
    pub async fn stream(&self, path: &str) -> Result<Response> {
        let resp = self.send(Method::GET, path, ReqBody::Empty).await?;
        if !resp.status().is_success() {
            return self
                .read::<Value>(resp)
                .await
                .and(Err(CliError::other("stream failed")));
        }
        self.trace_response(resp.status(), resp.headers(), None);
        Ok(resp)
    }

    /// POST `{uaa}/oauth/token` with Basic `cf:`.
    pub async fn token(&self, uaa: &str, form: &[(&str, &str)]) -> Result<TokenResponse> {
        let url = format!("{}/oauth/token", uaa.trim_end_matches('/'));
        let req = self
            .http
            .post(&url)
            .basic_auth("cf", Some(""))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .build()?;
        self.trace_request(&req);
        let resp = self.http.execute(req).await?;
        self.read(resp).await
    }

    async fn refresh(&self) -> Result<()> {
        let cfg = self.config();
        let (Some(rt), Ok(api)) = (cfg.refresh_token.clone(), cfg.api()) else {
            return Err(CliError::NotLoggedIn);
        };
        let uaa = cfg.uaa.clone().unwrap_or_else(|| api.to_string());
        let tok = self
            .token(&uaa, &[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
            .await
            .map_err(|_| CliError::other("Authentication has expired.  Please log back in to re-authenticate.\n\nTIP: Use 'cf login' to log back in."))?;
        self.update_config(|c| {
            c.access_token = Some(tok.access_token.clone());
            if let Some(r) = tok.refresh_token.clone() {
                c.refresh_token = Some(r);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_and_passwords() {
        let j = redact_body(r#"{"access_token":"abc","refresh_token":"def","expires_in":5}"#);
        assert!(!j.contains("abc") && !j.contains("def") && j.contains("expires_in"));
        let p = redact_body(r#"{"oldPassword":"old-secret","password":"new-secret"}"#);
        assert!(
            !p.contains("old-secret") && !p.contains("new-secret"),
            "{p}"
        );
        let f = redact_body("grant_type=password&username=admin&password=secret");
        assert_eq!(
            f,
            format!("grant_type=password&username=admin&password={HIDDEN}")
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer xyz".parse().expect("header"));
        assert!(!render_headers(&h).contains("xyz"));
    }

    #[test]
    fn parses_error_bodies() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"errors":[{"code":10010,"title":"CF-ResourceNotFound","detail":"App not found"}]}"#);
        assert!(
            matches!(&e, CliError::Api { status: 404, code: Some(10010), detail, .. } if detail == "App not found")
        );
        let e = api_error(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"unauthorized","error_description":"Bad credentials"}"#,
        );
        assert_eq!(e.to_string(), "Bad credentials");
        let e = api_error(StatusCode::BAD_GATEWAY, b"");
        assert!(e.to_string().contains("502"));
        assert!(is_invalid_token(br#"{"errors":[{"code":1000,"title":"CF-InvalidAuthToken","detail":"Invalid Auth Token"}]}"#));
        assert!(!is_invalid_token(b"{}"));
        assert!(is_invalid_token(
            br#"{"error":"invalid_token","error_description":"expired"}"#
        ));
        assert!(!is_invalid_token(br#"{"error":"unauthorized"}"#));
    }
}
