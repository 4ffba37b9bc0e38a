//! `cf target [-o ORG] [-s SPACE]`: `-o` alone targets the org and its
//! space when it has exactly one (else no space), as the CF CLI does.

use super::common::{client, find_org, find_space};
use crate::config::{Config, Target};
use crate::error::{CliError, Result};
use crate::format::kv_auto;
use crate::models::Named;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Organization
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// Space
    #[arg(short = 's')]
    pub space: Option<String>,
}

/// The target block, with the CF CLI's hint for what is not targeted.
pub fn target_text(cfg: &Config) -> String {
    let mut pairs = vec![
        ("API endpoint", cfg.api.clone().unwrap_or_default()),
        ("API version", cfg.api_version.clone().unwrap_or_default()),
        ("user", cfg.user.clone().unwrap_or_default()),
    ];
    if let Some(o) = &cfg.org {
        pairs.push(("org", o.name.clone()));
    }
    if let Some(s) = &cfg.space {
        pairs.push(("space", s.name.clone()));
    }
    let mut out = kv_auto(&pairs);
    if cfg.org.is_none() {
        out.push_str("No org or space targeted, use 'cf target -o ORG -s SPACE'\n");
    } else if cfg.space.is_none() {
        out.push_str("No space targeted, use 'cf target -s SPACE'\n");
    }
    out
}

pub fn show(cfg: &Config) {
    print!("{}", target_text(cfg));
}

fn target(n: &Named) -> Target {
    Target {
        guid: n.guid.clone(),
        name: n.name.clone(),
    }
}

pub async fn run(args: Args) -> Result<()> {
    let client = client()?;
    let cfg = client.config();
    cfg.api()?;
    if cfg.access_token.is_none() {
        return Err(CliError::NotLoggedIn);
    }
    if let Some(o) = &args.org {
        let org = find_org(&client, o).await?;
        let space = match &args.space {
            Some(s) => Some(find_space(&client, &org.guid, s).await?),
            None => {
                let mut spaces: Vec<Named> = client
                    .list(&format!("/v3/spaces?organization_guids={}", org.guid))
                    .await?;
                if spaces.len() == 1 {
                    spaces.pop()
                } else {
                    None
                }
            }
        };
        client.update_config(|c| {
            c.org = Some(target(&org));
            c.space = space.as_ref().map(target);
        })?;
    } else if let Some(s) = &args.space {
        let org = cfg.org.clone().ok_or(CliError::NoOrg)?;
        let space = find_space(&client, &org.guid, s).await?;
        client.update_config(|c| c.space = Some(target(&space)))?;
    }
    show(&client.config());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_block_hints() {
        let mut cfg = Config {
            api: Some("http://api.sys.localhost:8080".into()),
            api_version: Some("3.0.0".into()),
            user: Some("admin".into()),
            ..Config::default()
        };
        assert_eq!(
            target_text(&cfg),
            "API endpoint:   http://api.sys.localhost:8080\nAPI version:    3.0.0\nuser:           admin\nNo org or space targeted, use 'cf target -o ORG -s SPACE'\n"
        );
        cfg.org = Some(Target {
            guid: "g".into(),
            name: "dev".into(),
        });
        assert!(target_text(&cfg)
            .ends_with("org:            dev\nNo space targeted, use 'cf target -s SPACE'\n"));
        cfg.space = Some(Target {
            guid: "s".into(),
            name: "dev".into(),
        });
        assert!(target_text(&cfg).ends_with("space:          dev\n"));
    }
}
