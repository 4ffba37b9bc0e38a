//! `paas status MANIFEST`: every host's components as last recorded,
//! against the manifest's release.

use std::path::Path;

use super::{actual, load_manifest, CmdError};
use crate::deploy::manifest::Role;

pub async fn run(manifest: &Path, state: Option<&Path>) -> Result<String, CmdError> {
    let m = load_manifest(manifest)?;
    let actual = actual(manifest, &m, state).await?;
    let mut out = format!("Deployment {}: release {}\n", m.name, m.release.version);
    out.push_str(&format!(
        "{:<16} {:<16} {:<15} {:<12} {}\n",
        "host", "address", "component", "version", "state"
    ));
    for h in &m.hosts {
        let mut roles: Vec<Role> = h.roles.clone();
        roles.sort();
        for r in roles {
            let (version, state) = match actual.component(&h.name, r) {
                None => ("-".to_string(), "not installed"),
                Some(c) if !c.healthy => (c.version.clone(), "unhealthy"),
                Some(c) if c.version != m.release.version => (c.version.clone(), "outdated"),
                Some(c) => (c.version.clone(), "running"),
            };
            out.push_str(&format!(
                "{:<16} {:<16} {:<15} {:<12} {}\n",
                h.name,
                h.address.to_string(),
                r.as_str(),
                version,
                state
            ));
        }
    }
    Ok(out)
}
