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
