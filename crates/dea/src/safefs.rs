//! Host-side walks over directories a container can write (its home, a
//! staging directory), done so that nothing the app or a buildpack wrote
//! can lead the DEA (root) anywhere else: each directory is opened relative
//! to its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, and entries
//! are examined and changed with `*at` calls that do not follow symlinks.
//! A directory swapped for a symlink between two steps ends that branch of
//! the walk instead of leading out of the tree.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};

/// Deeper directories than this are not entered (bounded descriptors).
pub const MAX_DEPTH: usize = 256;

fn open_dir_at(dir: impl AsFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `root` itself (not following a symlink in its last component).
pub fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    open_dir_at(CWD, root.as_os_str())
}

/// The real directory `name` inside `dir`, owned by `uid`: created when
/// missing; whatever else stands there (a symlink, a file) is removed
/// first. Never follows a symlink.
pub fn subdir(dir: &OwnedFd, name: &str, uid: u32) -> std::io::Result<OwnedFd> {
    let name = OsStr::new(name);
    match open_dir_at(dir, name) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(_) => {
            // A symlink (ELOOP) or a file (ENOTDIR) where the directory goes.
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        }
    }
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = open_dir_at(dir, name)?;
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(uid)),
    )?;
    Ok(fd)
}

/// Calls `f(parent, name, stat)` for every entry under `root`, depth
/// first, descending into real directories only.
fn walk(
    root: &Path,
    mut f: impl FnMut(&OwnedFd, &OsStr, &rustix::fs::Stat),
) -> std::io::Result<()> {
    let top = open_root(root)?;
    let mut stack: Vec<(OwnedFd, Dir)> = Vec::new();
    let dir = Dir::read_from(&top)?;
    stack.push((top, dir));
    loop {
        let depth = stack.len();
        let Some((fd, dir)) = stack.last_mut() else {
            break;
        };
        let Some(Ok(entry)) = dir.read() else {
            stack.pop();
            continue;
        };
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&*fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        f(fd, name, &st);
        let descend =
            FileType::from_raw_mode(st.st_mode) == FileType::Directory && depth < MAX_DEPTH;
        let child = if descend {
            open_dir_at(&*fd, name)
                .ok()
                .and_then(|c| Dir::read_from(&c).ok().map(|d| (c, d)))
        } else {
            None
        };
        if let Some(c) = child {
            stack.push(c);
        }
    }
    Ok(())
}

/// Bytes in regular files (and the sizes of everything else) under `root`.
pub fn dir_size(root: &Path) -> u64 {
    let mut total = 0u64;
    let _ = walk(root, |_, _, st| {
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            total = total.saturating_add(u64::try_from(st.st_size).unwrap_or(0));
        }
    });
    total
}

/// `lchown -R uid:uid root`: gives the container's user everything the DEA
/// laid out for it (skips what it already owns).
pub fn chown_tree(root: &Path, uid: u32) -> std::io::Result<()> {
    let id = rustix::fs::Uid::from_raw(uid);
    let gid = rustix::fs::Gid::from_raw(uid);
    let top = open_root(root)?;
    if rustix::fs::fstat(&top)?.st_uid != uid {
        rustix::fs::fchown(&top, Some(id), Some(gid))?;
    }
    walk(root, |dir, name, st| {
        if st.st_uid != uid {
            let _ = rustix::fs::chownat(dir, name, Some(id), Some(gid), AtFlags::SYMLINK_NOFOLLOW);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_files_and_never_follow_links() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("c");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/f"), vec![0u8; 1000]).expect("write");
        std::fs::write(root.join("g"), vec![0u8; 24]).expect("write");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("big"), vec![0u8; 100_000]).expect("write");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let size = dir_size(&root);
        assert!(
            (1024..2000).contains(&size),
            "counts the link itself, not what it points at: {size}"
        );
        // A symlinked root is refused, not followed.
        let linked_root = tmp.path().join("linked");
        std::os::unix::fs::symlink(&root, &linked_root).expect("symlink");
        assert_eq!(dir_size(&linked_root), 0);
        assert!(chown_tree(&linked_root, 12345).is_err());
    }

    #[test]
    fn subdir_replaces_a_planted_symlink() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("c");
        std::fs::create_dir_all(&root).expect("mkdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("tmp")).expect("symlink");
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let top = open_root(&root).expect("root");
        subdir(&top, "tmp", uid).expect("subdir");
        let md = std::fs::symlink_metadata(root.join("tmp")).expect("md");
        assert!(md.is_dir() && !md.file_type().is_symlink());
        assert!(outside.is_dir(), "the link's target is left alone");
        subdir(&top, "tmp", uid).expect("again");
    }

    #[test]
    fn depth_is_bounded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut p = tmp.path().join("d");
        std::fs::create_dir_all(&p).expect("mkdir");
        let root = p.clone();
        for _ in 0..(MAX_DEPTH + 10) {
            p = p.join("x");
            std::fs::create_dir(&p).expect("mkdir");
        }
        std::fs::write(p.join("deep"), b"12345").expect("write");
        std::fs::write(root.join("top"), b"1").expect("write");
        assert_eq!(dir_size(&root), 1);
    }
}
