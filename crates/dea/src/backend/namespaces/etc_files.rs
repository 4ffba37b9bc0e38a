//! The stack's /etc: a copy of the host's subset.

use super::*;

/// Copies the host's /etc subset (`init::ETC_ENTRIES`) into `dir`, keeping
/// symlinks as symlinks and leaving out `private` directories (keys).
pub(super) fn prepare_etc(dir: &Path) -> std::io::Result<()> {
    fn copy(src: &Path, dst: &Path) -> std::io::Result<()> {
        let md = src.symlink_metadata()?;
        if md.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)
        } else if md.is_dir() {
            std::fs::create_dir_all(dst)?;
            for e in std::fs::read_dir(src)?.flatten() {
                if e.file_name() != "private" {
                    copy(&e.path(), &dst.join(e.file_name()))?;
                }
            }
            Ok(())
        } else {
            std::fs::copy(src, dst).map(|_| ())
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)?;
    let mut names: Vec<String> = init::ETC_ENTRIES.iter().map(|e| e.to_string()).collect();
    // The JDK's configuration (`/etc/java-17-openjdk`, linked from its
    // `conf/` and `lib/security/`).
    if let Ok(rd) = std::fs::read_dir("/etc") {
        names.extend(
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("java-")),
        );
    }
    for e in &names {
        let src = Path::new("/etc").join(e);
        if src.symlink_metadata().is_ok() {
            copy(&src, &dir.join(e))?;
        }
    }
    add_vcap(dir)?;
    // The resolvers a container can reach, as a plain file (the host's
    // may be a link into /run, which a container does not see); a loopback
    // stub on the host (systemd-resolved) is replaced by its upstream
    // servers.
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    let usable = proto::egress::usable_resolv_conf(&host, upstream.as_deref());
    let p = dir.join("resolv.conf");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, usable)?;
    Ok(())
}

/// Cloud Foundry's `vcap` user and group ([`init::VCAP_UID`], the uid a
/// container's processes have in their user namespace), added to the
/// copies of `passwd` and `group` unless a user or group of that name or
/// id is there already.
fn add_vcap(dir: &Path) -> std::io::Result<()> {
    let id = init::VCAP_UID;
    for (file, line) in [
        (
            "passwd",
            format!("vcap:x:{id}:{id}:vcap:/home/vcap:/bin/bash\n"),
        ),
        ("group", format!("vcap:x:{id}:\n")),
    ] {
        let p = dir.join(file);
        // Only a copied file, never through a link (to the host's own).
        if !p.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        if !has_entry(&text, "vcap", id) {
            let sep = if text.is_empty() || text.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            std::fs::write(&p, format!("{text}{sep}{line}"))?;
        }
    }
    Ok(())
}

/// Whether a `passwd`/`group` text has an entry named `name` or with id `id`.
fn has_entry(text: &str, name: &str, id: u32) -> bool {
    let id = id.to_string();
    text.lines().any(|l| {
        let mut f = l.split(':');
        let n = f.next();
        let i = f.nth(1);
        n == Some(name) || i == Some(id.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcap_is_added_once() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("passwd"), "root:x:0:0:root:/root:/bin/bash").expect("w");
        std::fs::write(d.path().join("group"), "root:x:0:\nstaff:x:2000:\n").expect("w");
        add_vcap(d.path()).expect("add");
        add_vcap(d.path()).expect("again");
        let passwd = std::fs::read_to_string(d.path().join("passwd")).expect("r");
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/bash\nvcap:x:2000:2000:vcap:/home/vcap:/bin/bash\n"
        );
        let group = std::fs::read_to_string(d.path().join("group")).expect("r");
        assert_eq!(
            group, "root:x:0:\nstaff:x:2000:\n",
            "gid 2000 taken: left alone"
        );
    }
}
