//! `cf login -a URL -u USER -p PASS [-o ORG] [-s SPACE]`.

use super::common::{ask, find_org, find_space, set_echo, stdin_is_tty};
use crate::client::Client;
use crate::config::{cf_home, Config, Target};
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
    /// Skip verification of the API endpoint's TLS certificate (kept for
    /// later commands, as with `cf api --skip-ssl-validation`)
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

/// Whether `cf login` skips certificate checks: when asked to, or when the
/// saved choice applies (the endpoint is the one `cf api` set it for).
pub fn skip_ssl(cfg: &Config, api_arg: Option<&str>, flag: bool) -> bool {
    flag || match api_arg {
        Some(a) => {
            cfg.skip_ssl_validation
                && cfg.api.as_deref() == Some(super::api::normalize_url(a).as_str())
        }
        None => cfg.skip_ssl_validation,
    }
}

pub async fn run(args: Args) -> Result<()> {
    let home = cf_home();
    let mut cfg = Config::load(&home)?;
    cfg.skip_ssl_validation = skip_ssl(&cfg, args.api.as_deref(), args.skip_ssl_validation);
    let client = Client::new(cfg, home)?;
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
    super::common::ok();
    println!();
    select_target(&client, args.org.as_deref(), args.space.as_deref()).await?;
    super::target::show(&client.config());
    Ok(())
}

/// Target an org and a space: the ones named by `-o` / `-s`, else the only
/// one there is, else (on a terminal) the one picked from a numbered list,
/// else none, with a tip to use `cf target`.
pub async fn select_target(
    client: &crate::client::Client,
    org: Option<&str>,
    space: Option<&str>,
) -> Result<()> {
    let org = match org {
        Some(n) => Some(find_org(client, n).await?),
        None => {
            let orgs: Vec<Named> = client.list("/v3/organizations").await?;
            choose(
                orgs,
                "org",
                "Use 'cf target -o ORG -s SPACE' to target an org and a space.",
            )?
        }
    };
    let Some(org) = org else { return Ok(()) };
    client.update_config(|c| {
        c.org = Some(Target {
            guid: org.guid.clone(),
            name: org.name.clone(),
        });
        c.space = None;
    })?;
    println!("Targeted org {}.\n", org.name);
    let space = match space {
        Some(n) => Some(find_space(client, &org.guid, n).await?),
        None => {
            let spaces: Vec<Named> = client
                .list(&format!("/v3/spaces?organization_guids={}", org.guid))
                .await?;
            choose(
                spaces,
                "space",
                "Use 'cf target -s SPACE' to target a space.",
            )?
        }
    };
    if let Some(s) = space {
        client.update_config(|c| {
            c.space = Some(Target {
                guid: s.guid.clone(),
                name: s.name.clone(),
            })
        })?;
        println!("Targeted space {}.\n", s.name);
    }
    Ok(())
}

/// The one item, or the user's pick when there are several and stdin is a
/// terminal; `None` when there is nothing (or nothing picked).
fn choose(mut items: Vec<Named>, what: &str, tip: &str) -> Result<Option<Named>> {
    items.sort_by(|a, b| a.name.cmp(&b.name));
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        n if !stdin_is_tty() => {
            println!("There are {n} {what}s; none was targeted. {tip}\n");
            Ok(None)
        }
        _ => {
            let names: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
            print!("{}", menu_text(what, &names));
            let label = format!(
                "{}{} (enter to skip)",
                what[..1].to_ascii_uppercase(),
                &what[1..]
            );
            loop {
                let Some(answer) = ask(&label, false)? else {
                    return Ok(None);
                };
                if answer.trim().is_empty() {
                    return Ok(None);
                }
                match pick(&names, &answer) {
                    Some(i) => return Ok(Some(items.swap_remove(i))),
                    None => println!("'{}' is not one of the choices; enter a number from 1 to {}, a name, or nothing to skip.", answer.trim(), names.len()),
                }
            }
        }
    }
}

/// `Select an org:` and the numbered names.
pub fn menu_text(what: &str, names: &[String]) -> String {
    let mut out = format!(
        "Select {} {what}:\n",
        if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    );
    for (i, n) in names.iter().enumerate() {
        out.push_str(&format!("{}. {n}\n", i + 1));
    }
    out.push('\n');
    out
}

/// The index picked by an answer: a number from the list, or a name.
pub fn pick(names: &[String], answer: &str) -> Option<usize> {
    let a = answer.trim();
    if let Ok(n) = a.parse::<usize>() {
        return (1..=names.len()).contains(&n).then(|| n - 1);
    }
    names.iter().position(|x| x == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_keeps_the_saved_ssl_choice_for_the_same_endpoint_only() {
        let cfg = Config {
            api: Some("https://api.example.com".into()),
            skip_ssl_validation: true,
            ..Config::default()
        };
        assert!(skip_ssl(&cfg, None, false));
        assert!(!skip_ssl(&cfg, Some("api.example.com"), false));
        assert!(skip_ssl(&cfg, Some("https://api.example.com/"), false));
        assert!(!skip_ssl(&cfg, Some("https://other.example.com"), false));
        assert!(skip_ssl(&cfg, Some("https://other.example.com"), true));
        let off = Config::default();
        assert!(!skip_ssl(&off, None, false));
        assert!(skip_ssl(&off, None, true));
    }

    #[test]
    fn menus_and_picks() {
        let names = vec!["dev".to_string(), "prod".to_string()];
        assert_eq!(
            menu_text("org", &names),
            "Select an org:\n1. dev\n2. prod\n\n"
        );
        assert_eq!(
            menu_text("space", &names),
            "Select a space:\n1. dev\n2. prod\n\n"
        );
        assert_eq!(pick(&names, "2"), Some(1));
        assert_eq!(pick(&names, " 1 "), Some(0));
        assert_eq!(pick(&names, "3"), None);
        assert_eq!(pick(&names, "0"), None);
        assert_eq!(pick(&names, "prod"), Some(1));
        assert_eq!(pick(&names, "nope"), None);
    }
}
