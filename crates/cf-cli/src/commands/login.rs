//! `cf login -a URL -u USER -p PASS [-o ORG] [-s SPACE]`.

use super::common::{client, stdin_is_tty};
use crate::config::Target;
use crate::error::{CliError, Result};
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// API endpoint
    #[arg(short = 'a')]
    pub api: Option<String>,
    /// Username
    #[arg(short = 'u')]
    pub user: Option<String>,
    /// Password
    #[arg(short = 'p')]
    pub password: Option<String>,
    /// Org
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// Space
    #[arg(short = 's')]
    pub space: Option<String>,
    /// Accepted for compatibility
    #[arg(long)]
    pub skip_ssl_validation: bool,
}

fn prompt(label: &str, secret: bool) -> Result<String> {
    use std::io::Write;
    if !stdin_is_tty() {
        return Err(CliError::Usage(format!(
            "Incorrect Usage: {label} is required (stdin is not a terminal; use -u USER -p PASS)"
        )));
    }
    print!("{label}: ");
    let _ = std::io::stdout().flush();
    let echo_off = secret && set_echo(false);
    let mut line = String::new();
    let r = std::io::stdin().read_line(&mut line);
    if echo_off {
        set_echo(true);
        println!();
    }
    r.map_err(|e| CliError::io("reading stdin", e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turn terminal echo on/off on stdin; true when it changed.
fn set_echo(on: bool) -> bool {
    // SAFETY: termios is a plain C struct; tcgetattr fills it for fd 0.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return false;
        }
        if on {
            t.c_lflag |= libc::ECHO;
        } else {
            t.c_lflag &= !libc::ECHO;
        }
        libc::tcsetattr(0, libc::TCSANOW, &t) == 0
    }
}

pub async fn run(args: Args) -> Result<()> {
    let client = client()?;
    if let Some(a) = &args.api {
        let api = super::api::normalize_url(a);
        println!("API endpoint: {api}\n");
        super::api::set_api(&client, &api).await?;
    } else {
        let cfg = client.config();
        println!("API endpoint: {}\n", cfg.api()?);
        if cfg.uaa.is_none() {
            let api = cfg.api()?.to_string();
            super::api::set_api(&client, &api).await?;
        }
    }
    let user = match args.user {
        Some(u) => u,
        None => prompt("Email", false)?,
    };
    let password = match args.password {
        Some(p) => p,
        None => prompt("Password", true)?,
    };
    println!("Authenticating...");
    let cfg = client.config();
    let uaa = cfg.uaa.clone().unwrap_or(cfg.api()?.to_string());
    let tok = client
        .token(
            &uaa,
            &[
                ("grant_type", "password"),
                ("username", &user),
                ("password", &password),
                ("scope", ""),
            ],
        )
        .await
        .map_err(|e| match e.status() {
            Some(401) | Some(400) => {
                CliError::other("Credentials were rejected, please try again.")
            }
            _ => e,
        })?;
    client.update_config(|c| {
        c.logout();
        c.access_token = Some(tok.access_token.clone());
        c.refresh_token = tok.refresh_token.clone();
        c.user = Some(user.clone());
    })?;
    println!("OK\n");
    select_target(&client, args.org.as_deref(), args.space.as_deref()).await?;
    super::target::show(&client.config());
    Ok(())
}

/// Target an org (by name or the first) and a space in it (by name or the first).
pub async fn select_target(
    client: &crate::client::Client,
    org: Option<&str>,
    space: Option<&str>,
) -> Result<()> {
    let orgs: Vec<Named> = client.list("/v3/organizations").await?;
    let org = match org {
        Some(n) => orgs
            .into_iter()
            .find(|o| o.name == n)
            .ok_or_else(|| CliError::other(format!("Organization '{n}' not found.")))?,
        None => match orgs.into_iter().next() {
            Some(o) => o,
            None => return Ok(()),
        },
    };
    println!("Targeted org {}.\n", org.name);
    let spaces: Vec<Named> = client
        .list(&format!("/v3/spaces?organization_guids={}", org.guid))
        .await?;
    let space = match space {
        Some(n) => Some(
            spaces
                .into_iter()
                .find(|s| s.name == n)
                .ok_or_else(|| CliError::other(format!("Space '{n}' not found.")))?,
        ),
        None => spaces.into_iter().next(),
    };
    if let Some(s) = &space {
        println!("Targeted space {}.\n", s.name);
    }
    client.update_config(|c| {
        c.org = Some(Target {
            guid: org.guid.clone(),
            name: org.name.clone(),
        });
        c.space = space.as_ref().map(|s| Target {
            guid: s.guid.clone(),
            name: s.name.clone(),
        });
    })
}
