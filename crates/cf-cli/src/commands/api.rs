//! `cf api [URL]`.

use crate::client::Client;
use crate::config::{cf_home, Config};
use crate::error::{CliError, Result};
use crate::format::kv_auto;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// API endpoint (e.g. http://api.sys.localhost:8080)
    pub url: Option<String>,
    /// Remove all api endpoint targeting
    #[arg(long)]
    pub unset: bool,
    /// Skip verification of the API endpoint's TLS certificate (kept for
    /// later commands; not recommended)
    #[arg(long)]
    pub skip_ssl_validation: bool,
}

pub fn normalize_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    if u.starts_with("http://") || u.starts_with("https://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

/// `GET /` of an endpoint: (v3 version, uaa url).
pub async fn discover(client: &Client, api: &str) -> Result<(String, String)> {
    let resp = client.http().get(format!("{api}/")).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        return Err(CliError::other(format!(
            "Request error: {api} answered {status}; is this a platform API endpoint?"
        )));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
        CliError::other(format!(
            "{api} is not a platform API endpoint (GET / is not JSON)"
        ))
    })?;
    let links = v.get("links").ok_or_else(|| {
        CliError::other(format!("{api} is not a platform API endpoint (no links)"))
    })?;
    let version = links
        .pointer("/cloud_controller_v3/meta/version")
        .and_then(Value::as_str)
        .unwrap_or("3")
        .to_string();
    let uaa = ["uaa", "login"]
        .iter()
        .find_map(|k| {
            links
                .get(*k)
                .and_then(|l| l.get("href"))
                .and_then(Value::as_str)
        })
        .unwrap_or(api)
        .trim_end_matches('/')
        .to_string();
    Ok((version, uaa))
}

/// Check an endpoint and store it; tokens and target are cleared when it changes.
pub async fn set_api(client: &Client, url: &str) -> Result<String> {
    let api = normalize_url(url);
    let (version, uaa) = discover(client, &api).await?;
    let changed = client.config().api.as_deref() != Some(api.as_str());
    client.update_config(|c| {
        if changed {
            c.logout();
        }
        c.api = Some(api.clone());
        c.api_version = Some(version.clone());
        c.uaa = Some(uaa.clone());
    })?;
    Ok(version)
}

/// What `cf api` prints when certificates are not checked.
pub const SKIP_WARNING: &str =
    "Warning: Insecure API endpoint: SSL validation is skipped (--skip-ssl-validation); certificates are not verified.";

pub async fn run(args: Args) -> Result<()> {
    let home = cf_home();
    let mut cfg = Config::load(&home)?;
    if args.url.is_some() {
        // As the CF CLI: `cf api URL` sets the choice, with or without the flag.
        cfg.skip_ssl_validation = args.skip_ssl_validation;
    }
    let client = Client::new(cfg, home)?;
    if args.unset {
        println!("Unsetting api endpoint...");
        client.update_config(|c| *c = crate::config::Config::default())?;
        super::common::ok();
        println!("\nNo API endpoint set.");
        return Ok(());
    }
    match args.url {
        Some(url) => {
            let api = normalize_url(&url);
            println!("Setting API endpoint to {api}...");
            let version = set_api(&client, &api).await?;
            super::common::ok();
            println!();
            print!(
                "{}",
                kv_auto(&[("API endpoint", api), ("API version", version)])
            );
            if args.skip_ssl_validation {
                println!("\n{SKIP_WARNING}");
            }
            if client.config().access_token.is_none() {
                println!("\nNot logged in. Use 'cf login' to log in.");
            }
        }
        None => {
            let cfg = client.config();
            let Some(api) = cfg.api.clone() else {
                println!("No API endpoint set. Use 'cf api' to set an endpoint");
                return Ok(());
            };
            print!(
                "{}",
                kv_auto(&[
                    ("API endpoint", api),
                    ("API version", cfg.api_version.clone().unwrap_or_default())
                ])
            );
            if cfg.access_token.is_none() {
                println!("\nNot logged in. Use 'cf login' to log in.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize_url("api.sys.localhost:8080/"),
            "http://api.sys.localhost:8080"
        );
        assert_eq!(normalize_url("http://x"), "http://x");
    }
}
