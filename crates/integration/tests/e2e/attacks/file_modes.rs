//! Secrets at rest: after a push, no config holding a secret, no part of
//! the controller's data (database with the signing keys, blobs) and no
//! cached droplet is readable by another local user; no component logged a
//! bus password or the internal token.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

fn mode(p: &Path) -> Result<u32> {
    Ok(std::fs::metadata(p)
        .with_context(|| p.display().to_string())?
        .permissions()
        .mode()
        & 0o777)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        }
        out.push(p);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_readable_by_other_users() -> Result<()> {
    let p = super::platform_with_app("quiet").await?;

    let mut open = Vec::new();
    // Configs (bus passwords, the internal token) and nats-server's users.
    let mut secrets: Vec<PathBuf> = std::fs::read_dir(p.root().join("config"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let nats_conf = p
        .nats
        .log_path()
        .parent()
        .context("nats dir")?
        .join("nats.conf");
    secrets.push(nats_conf);
    // The controller's data: the directory itself, then everything in it.
    let cc = p.root().join("cc");
    if mode(&cc)? != 0o700 {
        open.push(format!("{} is {:o}", cc.display(), mode(&cc)?));
    }
    walk(&cc, &mut secrets)?;
    let droplets = p.root().join("dea0/droplets");
    if mode(&droplets)? != 0o700 {
        open.push(format!("{} is {:o}", droplets.display(), mode(&droplets)?));
    }
    assert!(
        secrets.iter().any(|s| s.ends_with("cc.db")),
        "the database was not found: {secrets:?}"
    );
    for s in &secrets {
        let m = mode(s)?;
        if m & 0o077 != 0 {
            open.push(format!("{} is {m:o}", s.display()));
        }
    }
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));

    // No component logged a secret.
    let mut words: Vec<String> = p
        .bus_users
        .users
        .iter()
        .map(|u| u.password.clone())
        .collect();
    words.push(p.internal_token.clone());
    for e in std::fs::read_dir(p.root().join("logs"))? {
        let path = e?.path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for w in &words {
            assert!(
                !text.contains(w.as_str()),
                "{} contains a secret",
                path.display()
            );
        }
    }
    Ok(())
}
