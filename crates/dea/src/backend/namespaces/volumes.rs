//! Disk quotas that make writes fail (`ENOSPC`), as Garden's do: a
//! container's directory is the root of its own ext4 file system, on a
//! sparse image file attached to a loop device, sized to the container's
//! disk limit. (This kernel family may lack quota support, so project
//! quotas on one shared file system are not an option everywhere; a
//! volume per container needs only loop devices and `mkfs.ext4`.)
//!
//! Making a volume (image, `mkfs.ext4`, loop device, mount: ~10 ms) stays
//! off the start path: `ready` holds up to the warm pool's size of volumes
//! of the size the latest container asked for (CF's default 1024 MB at
//! first), made and mounted under `<state_dir>/disks/`, and a create binds
//! one onto the container's directory (two syscalls). Another size is made
//! on the spot. An image file is unlinked as soon as it is mounted (the
//! loop device keeps it open, set to clear itself), so its blocks go back
//! with the last unmount. What a crashed DEA left is found by the backing
//! file's name, which holds the tag (`paas-disk-<tag>-<n>`).
//!
//! A directory laid out before its container exists (a staging's) keeps
//! the disk watch (`disk.rs`), as does a host without loop devices or
//! `mkfs.ext4`.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::*;

const DEFAULT_MB: u64 = 1024;

/// A made and mounted volume waiting for its container.
#[derive(Debug)]
pub(super) struct Volume {
    mnt: PathBuf,
    mb: u64,
}

pub(super) struct Volumes {
    dir: PathBuf,
    tag: String,
    want: usize,
    usable: bool,
    ready: Mutex<Vec<Volume>>,
    /// The size the latest container asked for (what `ready` holds).
    size_mb: AtomicU64,
    seq: AtomicU64,
    /// Set at shutdown: a volume the filler finishes after it is not kept.
    closed: std::sync::atomic::AtomicBool,
    pub(super) fill: Arc<tokio::sync::Notify>,
}

fn mkfs() -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join("mkfs.ext4"))
        .find(|p| p.is_file())
}

fn os_err(what: &str) -> DeaError {
    DeaError::Backend(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn cpath(p: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| DeaError::Backend(format!("{}: NUL in path", p.display())))
}

/// Detaches whatever is mounted on `p` (nothing: a no-op).
pub(super) fn unmount(p: &Path) {
    if let Ok(c) = cpath(p) {
        // SAFETY: valid C string; MNT_DETACH never blocks on users.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

impl Volumes {
    /// Volumes under `<state_dir>/disks` (emptied: what a previous run on
    /// the same state dir left); `want` ready at most.
    pub(super) fn new(state_dir: &Path, tag: &str, want: usize) -> Volumes {
        let dir = state_dir.join("disks");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                unmount(&e.path());
                let _ = std::fs::remove_dir(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        let made = std::fs::create_dir_all(&dir);
        let usable = made.is_ok() && Path::new("/dev/loop-control").exists() && mkfs().is_some();
        if !usable {
            tracing::warn!(
                "no loop devices or mkfs.ext4: disk limits are enforced by the disk watch (an instance over its limit is killed) instead of failing writes"
            );
        }
        Volumes {
            dir,
            tag: tag.to_string(),
            want,
            usable,
            ready: Mutex::new(Vec::new()),
            size_mb: AtomicU64::new(DEFAULT_MB),
            seq: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            fill: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Whether a create of `mb` can bind a ready volume (no blocking work).
    pub(super) fn has_ready(&self, mb: u64) -> bool {
        lock(&self.ready).iter().any(|v| v.mb == mb)
    }

    /// Whether `ready` holds what it should (or cannot hold anything).
    pub(super) fn is_full(&self) -> bool {
        let mb = self.size_mb.load(SeqCst);
        !self.usable || lock(&self.ready).iter().filter(|v| v.mb == mb).count() >= self.want
    }

    /// Makes `root` the root of a volume of `mb` MB (blocking when none is
    /// ready). `Ok(false)`: no volume (none asked, none possible, or `root`
    /// already laid out); the caller keeps the disk watch.
    pub(super) fn attach(&self, root: &Path, mb: u64) -> Result<bool> {
        if !self.usable || mb == 0 || root.exists() {
            return Ok(false);
        }
        self.size_mb.store(mb, SeqCst);
        let taken = {
            let mut r = lock(&self.ready);
            r.iter().position(|v| v.mb == mb).map(|i| r.swap_remove(i))
        };
        self.fill.notify_one();
        let v = match taken {
            Some(v) => v,
            None => self.make(mb)?,
        };
        let bound = root
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::create_dir(root))
            .map_err(|e| DeaError::io(root, e))
            .and_then(|()| bind(&v.mnt, root));
        unmount(&v.mnt);
        let _ = std::fs::remove_dir(&v.mnt);
        if let Err(e) = bound {
            let _ = std::fs::remove_dir(root);
            return Err(e);
        }
        Ok(true)
    }

    /// A new volume of `mb` MB, mounted under `dir` (blocking).
    fn make(&self, mb: u64) -> Result<Volume> {
        let n = self.seq.fetch_add(1, SeqCst);
        let name = format!("paas-disk-{}-{n}", self.tag);
        let image = self.dir.join(format!("{name}.img"));
        let mnt = self.dir.join(&name);
        let r = self.make_at(&image, &mnt, mb);
        // Mounted or not, the image's name goes: a mounted one lives on
        // in its loop device until the last unmount.
        let _ = std::fs::remove_file(&image);
        if r.is_err() {
            unmount(&mnt);
            let _ = std::fs::remove_dir(&mnt);
        }
        r.map(|()| Volume { mnt, mb })
    }

    fn make_at(&self, image: &Path, mnt: &Path, mb: u64) -> Result<()> {
        let f = std::fs::File::create(image).map_err(|e| DeaError::io(image, e))?;
        f.set_len(mb.saturating_mul(1024 * 1024))
            .map_err(|e| DeaError::io(image, e))?;
        drop(f);
        let mkfs = mkfs().ok_or_else(|| DeaError::Backend("no mkfs.ext4".into()))?;
        let image_arg = image.to_string_lossy();
        super::net::run(
            &mkfs.to_string_lossy(),
            &[
                "-q",
                "-F",
                "-m",
                "0",
                "-O",
                "^has_journal",
                "-E",
                "lazy_itable_init=1,nodiscard",
                &image_arg,
            ],
            None,
        )?;
        std::fs::create_dir(mnt).map_err(|e| DeaError::io(mnt, e))?;
        let dev = attach_loop(image)?;
        let r = mount_ext4(&dev.path, mnt);
        // The mount holds the device now; with AUTOCLEAR it goes with the
        // last unmount (or now, when the mount failed).
        drop(dev);
        r?;
        let _ = std::fs::remove_dir(mnt.join("lost+found"));
        Ok(())
    }

    /// Tops `ready` up to `want` volumes of the latest size (blocking;
    /// the filler task's work).
    fn top_up(&self) -> Result<()> {
        loop {
            let mb = self.size_mb.load(SeqCst);
            {
                let mut r = lock(&self.ready);
                // Volumes of an older size go (they would never be taken).
                r.retain(|v| {
                    let keep = v.mb == mb;
                    if !keep {
                        unmount(&v.mnt);
                        let _ = std::fs::remove_dir(&v.mnt);
                    }
                    keep
                });
                if r.len() >= self.want {
                    return Ok(());
                }
            }
            let v = self.make(mb)?;
            let mut r = lock(&self.ready);
            if self.closed.load(SeqCst) {
                unmount(&v.mnt);
                let _ = std::fs::remove_dir(&v.mnt);
                return Ok(());
            }
            r.push(v);
        }
    }

    /// Unmounts every ready volume and keeps no more (shutdown).
    pub(super) fn discard_ready(&self) {
        let mut r = lock(&self.ready);
        self.closed.store(true, SeqCst);
        for v in r.drain(..) {
            unmount(&v.mnt);
            let _ = std::fs::remove_dir(&v.mnt);
        }
    }
}

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (`LOOP_CONFIGURE`, 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// An attached loop device (open: it stays attached while this lives or
/// something mounts it).
struct LoopDev {
    path: PathBuf,
    _fd: std::fs::File,
}

/// Attaches `image` to a free loop device, set to clear itself when its
/// last user goes (ioctls, no `losetup`: ~1 ms where `mount -o loop` took
/// ~25 ms). Another process may take the free device between asking and
/// configuring it: then the next one is tried.
fn attach_loop(image: &Path) -> Result<LoopDev> {
    use std::os::fd::AsRawFd;
    let img = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| DeaError::io(image, e))?;
    let ctl = std::fs::File::open("/dev/loop-control")
        .map_err(|e| DeaError::io(Path::new("/dev/loop-control"), e))?;
    for _ in 0..16 {
        // SAFETY: an ioctl without argument on a descriptor we own.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(os_err("LOOP_CTL_GET_FREE"));
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| DeaError::io(&path, e))?;
        // SAFETY: all-zero is a valid loop_config (plain integers).
        let mut cfg: LoopConfig = unsafe { std::mem::zeroed() };
        cfg.fd = img.as_raw_fd() as u32;
        cfg.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: LOOP_CONFIGURE reads a loop_config we own for the call.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &cfg) };
        if r == 0 {
            return Ok(LoopDev { path, _fd: dev });
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
            return Err(os_err(&format!("LOOP_CONFIGURE {}", path.display())));
        }
    }
    Err(DeaError::Backend("no free loop device".into()))
}

/// `mount -t ext4 -o nosuid,nodev dev mnt`.
fn mount_ext4(dev: &Path, mnt: &Path) -> Result<()> {
    let (d, m) = (cpath(dev)?, cpath(mnt)?);
    // SAFETY: valid C strings; ext4 takes no data here.
    let r = unsafe {
        libc::mount(
            d.as_ptr(),
            m.as_ptr(),
            c"ext4".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(os_err(&format!(
            "mount {} on {}",
            dev.display(),
            mnt.display()
        )));
    }
    Ok(())
}

fn bind(from: &Path, to: &Path) -> Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: valid C strings; a bind mount takes no data.
    let r = unsafe {
        libc::mount(
            f.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(os_err(&format!(
            "bind {} on {}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

/// Keeps `ready` full: woken when a create takes a volume.
pub(super) async fn filler(weak: std::sync::Weak<Inner>, fill: Arc<tokio::sync::Notify>) {
    loop {
        let notified = fill.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let Some(inner) = weak.upgrade() else { return };
            if inner.shut.load(SeqCst) {
                return;
            }
            if inner.volumes.usable && inner.volumes.want > 0 {
                let i = inner.clone();
                let r = tokio::task::spawn_blocking(move || i.volumes.top_up()).await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "cannot make a ready disk volume");
                }
                if inner.shut.load(SeqCst) {
                    inner.volumes.discard_ready();
                    return;
                }
            }
        }
        notified.await;
    }
}

/// Mount points of volumes of `tag` (of this mount namespace).
fn mounts_of(tag: &str) -> Vec<PathBuf> {
    let needle = format!("/paas-disk-{tag}-");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (devno, point) = (f.get(2)?, f.get(4)?);
            let backing =
                std::fs::read_to_string(format!("/sys/dev/block/{devno}/loop/backing_file"))
                    .ok()?;
            backing
                .contains(&needle)
                .then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(octal) {
            let v = b[i + 1..=i + 3]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            let v = u8::try_from(v).unwrap_or(b'?');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount under `dir` (deepest first): what a previous run
/// of a DEA on this state dir left mounted (volumes on instance
/// directories, ready volumes), before the DEA removes those directories.
pub fn unmount_under(dir: &Path) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let prefix = format!("{}/", dir.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        unmount(Path::new(&p));
    }
}

/// Unmounts every volume of `tag` (a crashed DEA's, or ours at shutdown).
pub(super) fn cleanup(tag: &str) {
    for p in mounts_of(tag) {
        unmount(&p);
    }
}

/// Volumes of `tag` still mounted.
pub(super) fn leftovers(tag: &str) -> Vec<String> {
    mounts_of(tag)
        .into_iter()
        .map(|p| format!("disk volume mounted on {}", p.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C layout `LOOP_CONFIGURE` expects (x86_64 and aarch64 alike).
    #[test]
    fn loop_structs_match_the_kernels() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain/path"), "/plain/path");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
        assert_eq!(unescape(r"\134x"), r"\x");
    }
}
