//! `cf target [-o ORG] [-s SPACE]`.

use super::common::client;
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

pub fn show(cfg: &Config) {
    let name = |t: &Option<Target>| t.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    print!(
        "{}",
        kv_auto(&[
            ("API endpoint", cfg.api.clone().unwrap_or_default()),
            ("API version", cfg.api_version.clone().unwrap_or_default()),
            ("user", cfg.user.clone().unwrap_or_default()),
            ("org", name(&cfg.org)),
            ("space", name(&cfg.space)),
        ])
    );
}

pub async fn run(args: Args) -> Result<()> {
    let client = client()?;
    let cfg = client.config();
    cfg.api()?;
    if cfg.access_token.is_none() {
        return Err(CliError::NotLoggedIn);
    }
    if let Some(o) = &args.org {
        let orgs: Vec<Named> = client
            .list(&format!(
                "/v3/organizations?names={}",
                super::common::enc(o)
            ))
            .await?;
        let org = orgs
            .into_iter()
            .find(|x| &x.name == o)
            .ok_or_else(|| CliError::other(format!("Organization '{o}' not found.")))?;
        let spaces: Vec<Named> = client
            .list(&format!("/v3/spaces?organization_guids={}", org.guid))
            .await?;
        let space = match &args.space {
            Some(s) => Some(
                spaces
                    .into_iter()
                    .find(|x| &x.name == s)
                    .ok_or_else(|| CliError::other(format!("Space '{s}' not found.")))?,
            ),
            None => spaces.into_iter().next(),
        };
        client.update_config(|c| {
            c.org = Some(Target {
                guid: org.guid.clone(),
                name: org.name.clone(),
            });
            c.space = space.map(|s| Target {
                guid: s.guid,
                name: s.name,
            });
        })?;
    } else if let Some(s) = &args.space {
        let org = cfg.org.clone().ok_or(CliError::NoOrg)?;
        let spaces: Vec<Named> = client
            .list(&format!(
                "/v3/spaces?organization_guids={}&names={}",
                org.guid,
                super::common::enc(s)
            ))
            .await?;
        let space = spaces
            .into_iter()
            .find(|x| &x.name == s)
            .ok_or_else(|| CliError::other(format!("Space '{s}' not found.")))?;
        client.update_config(|c| {
            c.space = Some(Target {
                guid: space.guid,
                name: space.name,
            })
        })?;
    }
    show(&client.config());
    Ok(())
}
