//! `dea container-init`: PID 1 of a container. Runs before tokio or tracing
//! start (see `main.rs`), uses only std and libc, and stays small: it builds
//! the container's root file system, then forks the process (`bash -c`, or a
//! plain `exec CMD ARG...` directly),
//! forwards SIGTERM to it, reaps every zombie and reports the process's exit
//! on fd 3 (`exit N` or `signal N`).
//!
//! It is started by the DEA with `clone(CLONE_NEWPID|CLONE_NEWNS|
//! CLONE_NEWUTS|CLONE_NEWIPC)`, already inside the container's network
//! namespace and cgroup, with an empty environment, then:
//!
//! 1. builds the root file system (everything but the container's own
//!    directory), forks the process-to-be (it enters a user namespace of
//!    its own, whose id maps PID 1 writes, drops every privilege, then
//!    waits on a pipe for the spec) and writes `u` (`r` without a user
//!    namespace) on the control socket (fd 4): ready;
//! 2. waits there for the process ([`Spec`], in a memfd) and the container's
//!    directory and `tmp/` as detached mounts (`open_tree`), all passed
//!    with `SCM_RIGHTS` — right away for a container started on demand,
//!    later for one waiting in the warm pool;
//! 3. attaches them on `/home/vcap` and `/tmp`, sets the hostname and
//!    writes the spec to the child, which execs it.
//!
//! Arguments: `container-init <rootfs_dir> <uid> [userns] [etc=<dir>] [<ro_path>...]`
//! (`container-init --fingerprint`: prints [`fingerprint`]).
//! Descriptors: 0 `/dev/null`, 1 and 2 the output pipes, 3 the status pipe,
//! 4 the control socket.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Host paths bind-mounted read-only as the stack (the ones that exist).
const STACK_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// The subset of the host's `/etc` a container sees.
pub const ETC_ENTRIES: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "localtime",
    "mime.types",
    "protocols",
    "services",
    "python3",
    "python3.11",
];
/// Device nodes of `/dev`: (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The command line: `container-init <rootfs_dir> <uid> [userns]
/// [etc=<dir>] [<ro_path>...]`.
struct Args {
    rootfs: String,
    /// The container's host uid (10000 + slot).
    uid: u32,
    /// Run the process in a user namespace of its own (where the kernel
    /// allows): [`VCAP_UID`] inside is `uid` on the host.
    userns: bool,
    ro: Vec<String>,
}

fn parse(args: &[String]) -> Option<Args> {
    let (rootfs, rest) = args.split_first()?;
    let (uid, rest) = rest.split_first()?;
    let userns = rest.iter().any(|a| a == "userns");
    Some(Args {
        rootfs: rootfs.clone(),
        uid: uid.parse().ok()?,
        userns,
        ro: rest.iter().filter(|a| *a != "userns").cloned().collect(),
    })
}

/// In a container's user namespace, the uid and gid its processes run as
/// (Cloud Foundry's `vcap`), mapped to the slot's host uid.
pub const VCAP_UID: u32 = 2000;
/// The host uid that uid 0 of a container's user namespace maps to: the
/// highest one, which owns nothing (Garden's "maximus").
pub const MAXIMUS_UID: u32 = 4_294_967_294;

/// The `uid_map` (and `gid_map`) of a container's user namespace: root is
/// [`MAXIMUS_UID`], `vcap` the slot's host uid, nothing else is mapped (the
/// host's files show as owned by `nobody`).
pub fn id_map(host_uid: u32) -> String {
    format!("0 {MAXIMUS_UID} 1\n{VCAP_UID} {host_uid} 1\n")
}

/// What to run, sent by the DEA once the root file system is ready (see
/// [`encode_spec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub hostname: String,
    pub uid: u32,
    pub cwd: String,
    /// `bash -c <script>` ...
    pub script: String,
    /// ... unless this is a plain `exec CMD ARG...` (no shell syntax):
    /// then `CMD ARG...` is exec'd directly (PATH lookup as bash does;
    /// `bash -c <script>` when CMD is not found, for bash's error).
    pub direct: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// NUL-separated fields: hostname, uid, cwd, script, argc, argv...,
/// then `KEY=VALUE` entries.
pub fn encode_spec(s: &Spec) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |f: &str| {
        out.extend_from_slice(f.as_bytes());
        out.push(0);
    };
    put(&s.hostname);
    put(&s.uid.to_string());
    put(&s.cwd);
    put(&s.script);
    put(&s.direct.len().to_string());
    for a in &s.direct {
        put(a);
    }
    for (k, v) in &s.env {
        put(&format!("{k}={v}"));
    }
    out
}

pub fn decode_spec(b: &[u8]) -> Option<Spec> {
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    let mut it = b
        .split(|&c| c == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let hostname = it.next()?;
    let uid = it.next()?.parse().ok()?;
    let cwd = it.next()?;
    let script = it.next()?;
    let argc: usize = it.next()?.parse().ok()?;
    let mut direct = Vec::with_capacity(argc.min(1024));
    for _ in 0..argc {
        direct.push(it.next()?);
    }
    let env = it
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect();
    Some(Spec {
        hostname,
        uid,
        cwd,
        script,
        direct,
        env,
    })
}

/// The words of `exec CMD ARG...` when the script is exactly that with no
/// shell syntax at all (so running them without bash changes nothing).
pub fn plain_exec(script: &str) -> Option<Vec<String>> {
    let plain = |w: &str| {
        !w.is_empty()
            && w.bytes().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        b'_' | b'-' | b'.' | b'/' | b',' | b':' | b'+' | b'@' | b'%' | b'='
                    )
            })
    };
    let mut words = script.split([' ', '\t']).filter(|w| !w.is_empty());
    if words.next()? != "exec" {
        return None;
    }
    let rest: Vec<String> = words.map(String::from).collect();
    let first = rest.first()?;
    // `exec -a name`, `exec VAR=x` and the like stay with bash.
    if first.starts_with('-') || first.contains('=') {
        return None;
    }
    (!script.contains('\n') && rest.iter().all(|w| plain(w))).then_some(rest)
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL in {s:?}"))
}

fn err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn mount(
    src: &str,
    dst: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let (s, d, t, o) = (cstr(src)?, cstr(dst)?, cstr(fstype)?, cstr(data)?);
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            t.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                o.as_ptr().cast()
            },
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(err(&format!("mount {src} on {dst}")))
    }
}

/// Bind-mounts `src` on `dst` (created as a dir or an empty file), then
/// remounts it with `extra` flags (read-only, nosuid, nodev ...).
fn bind(src: &str, dst: &str, extra: libc::c_ulong) -> Result<(), String> {
    let md = std::fs::metadata(src).map_err(|e| format!("{src}: {e}"))?;
    if md.is_dir() {
        std::fs::create_dir_all(dst).map_err(|e| format!("{dst}: {e}"))?;
    } else {
        std::fs::write(dst, b"").map_err(|e| format!("{dst}: {e}"))?;
    }
    mount(src, dst, "", libc::MS_BIND | libc::MS_REC, "")?;
    mount("", dst, "", libc::MS_BIND | libc::MS_REMOUNT | extra, "")
}

fn setup_root(a: &Args) -> Result<(), String> {
    const RO: libc::c_ulong = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    mount("", "/", "", libc::MS_REC | libc::MS_PRIVATE, "")?;
    let r = &a.rootfs;
    mount(
        "tmpfs",
        r,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "size=1m,mode=755",
    )?;
    for d in STACK_DIRS {
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(d).map_err(|e| format!("{d}: {e}"))?;
                std::os::unix::fs::symlink(target, format!("{r}{d}"))
                    .map_err(|e| format!("{d}: {e}"))?;
            }
            Ok(_) => bind(d, &format!("{r}{d}"), RO)?,
            Err(_) => {}
        }
    }
    // `etc=<dir>`: the DEA's prepared copy of the /etc subset, one mount;
    // otherwise one bind per entry of the host's /etc.
    let etc_dir = a.ro.iter().find_map(|p| p.strip_prefix("etc="));
    match etc_dir {
        Some(d) => bind(d, &format!("{r}/etc"), RO)?,
        None => {
            std::fs::create_dir_all(format!("{r}/etc")).map_err(|e| format!("etc: {e}"))?;
            for e in ETC_ENTRIES {
                let src = format!("/etc/{e}");
                if std::fs::metadata(&src).is_ok() {
                    bind(&src, &format!("{r}/etc/{e}"), RO)?;
                }
            }
        }
    }
    for p in a.ro.iter().filter(|p| !p.starts_with("etc=")) {
        bind(p, &format!("{r}{p}"), RO)?;
    }
    const RW: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;
    // Mount points of the container's own directories, attached when the
    // process is known (`attach`).
    for d in ["/home/vcap", "/tmp"] {
        std::fs::create_dir_all(format!("{r}{d}")).map_err(|e| format!("{d}: {e}"))?;
    }
    let dev = format!("{r}/dev");
    std::fs::create_dir_all(&dev).map_err(|e| format!("dev: {e}"))?;
    mount(
        "tmpfs",
        &dev,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "size=64k,mode=755",
    )?;
    for (d, major, minor) in DEVICES {
        let path = format!("{dev}/{d}");
        let c = cstr(&path)?;
        // SAFETY: valid path; a character device node on our tmpfs.
        let made = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(*major, *minor),
            ) == 0
                && libc::chmod(c.as_ptr(), 0o666) == 0
        };
        if !made {
            let _ = std::fs::remove_file(&path);
            bind(
                &format!("/dev/{d}"),
                &path,
                libc::MS_NOSUID | libc::MS_NOEXEC,
            )?;
        }
    }
    std::fs::create_dir_all(format!("{dev}/shm")).map_err(|e| format!("shm: {e}"))?;
    mount(
        "shm",
        &format!("{dev}/shm"),
        "tmpfs",
        RW | libc::MS_NOEXEC,
        "size=64m,mode=1777",
    )?;
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(t, format!("{dev}/{l}"));
    }
    std::fs::create_dir_all(format!("{r}/proc")).map_err(|e| format!("proc: {e}"))?;
    // pivot_root(".", "."): the old root ends up on top of the new one and
    // is detached at once (no directory for it needed).
    let rc = cstr(r)?;
    let dot = cstr(".")?;
    // SAFETY: plain syscalls with valid strings.
    unsafe {
        if libc::chdir(rc.as_ptr()) != 0 {
            return Err(err("chdir rootfs"));
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(err("pivot_root"));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(err("umount old root"));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(err("chdir /"));
        }
    }
    mount(
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    hide_host_in_proc()?;
    mount(
        "",
        "/",
        "",
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        "",
    )?;
    Ok(())
}

/// Docker's default masked paths: files get `/dev/null` bound over them,
/// directories an empty read-only tmpfs (those this kernel has). There is
/// no `/sys` in a container at all, so nothing of it to mask.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];
/// Docker's default read-only paths (bound on themselves, read-only).
pub const READ_ONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Masks and write-protects the host's parts of the fresh `/proc`.
fn hide_host_in_proc() -> Result<(), String> {
    const FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    for p in MASKED_PATHS {
        match std::fs::symlink_metadata(p) {
            Err(_) => {}
            Ok(m) if m.is_dir() => mount(
                "tmpfs",
                p,
                "tmpfs",
                FLAGS | libc::MS_RDONLY,
                "size=4k,nr_inodes=1,mode=555",
            )?,
            Ok(_) => mount("/dev/null", p, "", libc::MS_BIND, "")?,
        }
    }
    for p in READ_ONLY_PATHS {
        if std::fs::symlink_metadata(p).is_ok() {
            mount(p, p, "", libc::MS_BIND | libc::MS_REC, "")?;
            mount(
                "",
                p,
                "",
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | FLAGS,
                "",
            )?;
        }
    }
    Ok(())
}

extern "C" fn forward_signal(sig: libc::c_int) {
    // SAFETY: kill is async-signal-safe; -1 from PID 1 means every other
    // process of the PID namespace.
    unsafe {
        libc::kill(-1, sig);
    }
}

/// The file `name` would be exec'd as by bash (`exec name`): itself when it
/// has a slash, else the first executable regular file named so in `path`.
fn lookup(name: &str, path: &str) -> Option<String> {
    let executable = |p: &str| {
        let Ok(c) = cstr(p) else { return false };
        let is_file = std::fs::metadata(p).is_ok_and(|m| m.is_file());
        // SAFETY: valid path string.
        is_file && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
    };
    if name.contains('/') {
        return Some(name.to_string());
    }
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{d}/{name}"))
        .find(|p| executable(p))
}

/// The forked child's end of the user-namespace handshake with PID 1.
struct Handshake {
    /// To PID 1: `u` (in a new user namespace: map it) or `n` (refused).
    to_init: OwnedFd,
    /// From PID 1: `g` once the maps are written.
    from_init: OwnedFd,
}

fn write_byte(fd: &OwnedFd, b: u8) -> bool {
    // SAFETY: one byte from a live buffer to a descriptor we own.
    unsafe { libc::write(fd.as_raw_fd(), [b].as_ptr().cast(), 1) == 1 }
}

fn read_byte(fd: &OwnedFd) -> Option<u8> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: one byte into a live buffer from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return (n == 1).then_some(b[0]);
    }
}

/// In the forked child: a user namespace of its own, mapped by PID 1
/// (which, as root of the host's user namespace, may map any host uid).
/// `Ok(false)` when the kernel refuses one (`max_user_namespaces` is 0,
/// or the DEA itself runs in a namespace that forbids it): the slot's uid
/// scheme then stands alone.
fn enter_userns(h: &Handshake) -> Result<bool, String> {
    // SAFETY: unshare in a single-threaded child.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        write_byte(&h.to_init, b'n');
        return Ok(false);
    }
    if !write_byte(&h.to_init, b'u') || read_byte(&h.from_init) != Some(b'g') {
        return Err("user namespace: PID 1 did not map it".into());
    }
    Ok(true)
}

/// In the forked child: drop every privilege (before the process is known:
/// the uid is the slot's). With a user namespace, the process runs as
/// [`VCAP_UID`] in it (the slot's uid on the host); without, as the slot's
/// uid directly. Either way with no capability left in any set.
fn drop_privileges(uid: u32, userns: Option<&Handshake>) -> Result<(), String> {
    // SAFETY: plain syscalls in a single-threaded child.
    unsafe {
        // Rust starts with SIGPIPE ignored; the process gets the default.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::setsid();
        // The output pipes become the process's own, so that it can open
        // them again by name (`/dev/stdout`, as nginx does for its log).
        libc::fchown(1, uid, uid);
        libc::fchown(2, uid, uid);
    }
    let inside = match userns {
        Some(h) => enter_userns(h)?,
        None => false,
    };
    let id = if inside { VCAP_UID } else { uid };
    // SAFETY: plain syscalls in a single-threaded child.
    unsafe {
        for cap in 0..=63 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setgid(id) != 0 {
            return Err(err("setgid"));
        }
        // From uid 0 to a non-zero uid without SECBIT_KEEP_CAPS the kernel
        // clears the permitted, effective and ambient sets, but only when
        // the old uid was root *of the current user namespace*; in a new
        // one it was not (host root is unmapped there), so the sets are
        // cleared by hand below as well.
        if libc::setuid(id) != 0 {
            return Err(err("setuid"));
        }
        let mut head = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let none = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &mut head, none.as_ptr()) != 0 {
            return Err(err("capset"));
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(err("no_new_privs"));
        }
    }
    Ok(())
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// PID 1's end of the handshake: writes the id maps of the child's new
/// user namespace. Returns whether the child runs in one.
fn map_userns(
    child: i32,
    uid: u32,
    from_child: &OwnedFd,
    to_child: &OwnedFd,
) -> Result<bool, String> {
    match read_byte(from_child) {
        Some(b'u') => {}
        Some(_) => return Ok(false),
        None => return Err("the process-to-be ended before its user namespace".into()),
    }
    let map = id_map(uid);
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{child}/{f}"), &map)
            .map_err(|e| format!("{f} of the process-to-be: {e}"))?;
    }
    if !write_byte(to_child, b'g') {
        return Err("the process-to-be ended before its user namespace was mapped".into());
    }
    Ok(true)
}

/// In the forked child, privileges dropped: exec the process.
fn exec_process(s: &Spec) -> String {
    let mut cwd = s.cwd.clone();
    if let Ok(c) = cstr(&cwd) {
        // SAFETY: valid path.
        if unsafe { libc::chdir(c.as_ptr()) } != 0 {
            cwd = "/home/vcap".into();
            // SAFETY: valid path.
            unsafe { libc::chdir(c"/home/vcap".as_ptr()) };
        }
    }
    let path = s
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/bin:/bin", |(_, v)| v.as_str());
    let path = path.to_string();
    if let Some(file) = s.direct.first().and_then(|cmd| lookup(cmd, &path)) {
        // What `bash -c 'exec ...'` adds to the environment.
        let mut env = s.env.clone();
        env.retain(|(k, _)| k != "PWD");
        env.insert(0, ("PWD".into(), cwd.clone()));
        if !env.iter().any(|(k, _)| k == "SHLVL") {
            env.push(("SHLVL".into(), "0".into()));
        }
        execve(&file, &s.direct, &env);
        // Not executable after all: bash says why, with its exit code.
    }
    let bash = lookup("bash", &path).unwrap_or_else(|| "/bin/bash".into());
    let argv = ["bash".to_string(), "-c".to_string(), s.script.clone()];
    execve(&bash, &argv, &s.env);
    err(&format!("exec {bash}"))
}

/// `execve`; returns only when it failed.
fn execve(file: &str, argv: &[String], env: &[(String, String)]) {
    let Ok(file_c) = cstr(file) else { return };
    let argv_c: Vec<CString> = argv.iter().filter_map(|a| cstr(a).ok()).collect();
    let env_c: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| cstr(&format!("{k}={v}")).ok())
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of valid strings.
    unsafe {
        libc::execve(file_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(err("pipe"));
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn report(msg: &str) {
    // SAFETY: fd 3 is the status pipe (or closed, then the write fails).
    unsafe {
        libc::write(3, msg.as_ptr().cast(), msg.len());
    }
}

/// Waits for the DEA's message on the control socket (fd 4): one byte with
/// three descriptors: a memfd holding the encoded [`Spec`], and the
/// detached mounts (`open_tree`) of the container's directory and of its
/// `tmp/`. `None` when the DEA closed the socket (a pooled init no longer
/// needed).
fn receive() -> Result<Option<(Spec, [OwnedFd; 2])>, String> {
    const FDS: usize = 3;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((FDS * std::mem::size_of::<i32>()) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(4, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break n;
    };
    if n < 0 {
        return Err(err("control socket"));
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<i32>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<i32>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    let mut it = fds.into_iter();
    let (Some(spec_fd), Some(home), Some(tmp)) = (it.next(), it.next(), it.next()) else {
        return Err("control message without its descriptors".into());
    };
    let mut f = std::fs::File::from(spec_fd);
    let mut bytes = Vec::new();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).map_err(|e| format!("spec: {e}"))?;
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(|e| format!("spec: {e}"))?;
    let spec = decode_spec(&bytes).ok_or("bad process spec")?;
    Ok(Some((spec, [home, tmp])))
}

/// Attaches the container's directory on `/home/vcap` and its `tmp/` on
/// `/tmp` (nosuid, nodev, private), and sets the hostname.
fn attach(spec: &Spec, mounts: [OwnedFd; 2]) -> Result<(), String> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    for (fd, dst) in mounts.iter().zip([c"/home/vcap", c"/tmp"]) {
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            attr_clr: 0,
            propagation: libc::MS_PRIVATE,
            userns_fd: 0,
        };
        // SAFETY: mount_setattr and move_mount on a detached mount we own,
        // with valid strings and a mount_attr of the kernel's layout.
        unsafe {
            if libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ) != 0
            {
                return Err(err("mount_setattr"));
            }
            if libc::syscall(
                libc::SYS_move_mount,
                fd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                dst.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ) != 0
            {
                return Err(err(&format!("move_mount {dst:?}")));
            }
        }
    }
    let h = cstr(&spec.hostname)?;
    // SAFETY: valid buffer and length.
    if unsafe { libc::sethostname(h.as_ptr(), spec.hostname.len()) } != 0 {
        return Err(err("sethostname"));
    }
    Ok(())
}

fn fail(e: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "container-init: {e}");
    report(&format!("error {e}\n"));
    125
}

/// What this container-init is: a hash of its own source (and of the
/// seccomp filter it installs), so that the DEA
/// uses a separately built `dea-init` only when it is the same code as the
/// one it links (`container-init --fingerprint` prints it).
pub fn fingerprint() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let source = [include_str!("init.rs"), include_str!("seccomp.rs")];
    for b in source.iter().flat_map(|s| s.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The whole container-init; returns the exit code of PID 1.
pub fn main(args: &[String]) -> i32 {
    if args.first().map(String::as_str) == Some("--fingerprint") {
        println!("{}", fingerprint());
        return 0;
    }
    // SAFETY: fds 3 (status) and 4 (control) must not leak into the app.
    unsafe {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let Some(a) = parse(args) else {
        return fail("bad arguments");
    };
    if let Err(e) = setup_root(&a) {
        return fail(&e);
    }
    // The process's own process, forked ahead too: it drops every
    // privilege now, then waits on a pipe for the spec (written once the
    // container's directories are attached) and execs.
    let (spec_r, spec_w) = match pipe() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    // The user-namespace handshake: (child → PID 1, PID 1 → child).
    let handshake = if a.userns {
        match (pipe(), pipe()) {
            (Ok(up), Ok(down)) => Some((up, down)),
            (Err(e), _) | (_, Err(e)) => return fail(&e),
        }
    } else {
        None
    };
    // SAFETY: single-threaded process.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return fail("fork failed");
    }
    if child == 0 {
        drop(spec_w);
        let ours = handshake.map(|((_, up_w), (down_r, _))| Handshake {
            to_init: up_w,
            from_init: down_r,
        });
        // Privileges dropped (no_new_privs set), then the seccomp filter,
        // built and installed here, before the spec is known: a pooled
        // container has it in place ahead of its start.
        let filtered = drop_privileges(a.uid, ours.as_ref())
            .and_then(|()| super::seccomp::build())
            .and_then(|p| super::seccomp::install(&p));
        let e = match filtered {
            Err(e) => e,
            Ok(()) => {
                let mut bytes = Vec::new();
                let read = std::io::Read::read_to_end(&mut std::fs::File::from(spec_r), &mut bytes);
                match (read, decode_spec(&bytes)) {
                    // The init went away without a process: nothing to do.
                    // SAFETY: leave without running destructors.
                    (Ok(0), _) => unsafe { libc::_exit(0) },
                    (Ok(_), Some(spec)) if spec.uid == a.uid => exec_process(&spec),
                    (Ok(_), Some(spec)) => format!("uid {} is not the slot's {}", spec.uid, a.uid),
                    (Ok(_), None) => "bad process spec".to_string(),
                    (Err(e), _) => format!("spec: {e}"),
                }
            }
        };
        let _ = writeln!(std::io::stderr(), "container-init: {e}");
        // SAFETY: leave the child without running destructors.
        unsafe { libc::_exit(127) };
    }
    drop(spec_r);
    let userns = match handshake {
        Some(((up_r, up_w), (down_r, down_w))) => {
            drop((up_w, down_r));
            match map_userns(child, a.uid, &up_r, &down_w) {
                Ok(on) => on,
                Err(e) => return fail(&e),
            }
        }
        None => false,
    };
    // Ready: the DEA may now hand the container out from its pool. `u`:
    // the process runs in a user namespace; `r`: as the slot's uid. (A DEA
    // that sent the process at once may have closed its end already: no
    // SIGPIPE; what it sent is still there to read.)
    let ready: &[u8] = if userns { b"u" } else { b"r" };
    // SAFETY: fd 4 is the control socket.
    unsafe {
        libc::send(4, ready.as_ptr().cast(), 1, libc::MSG_NOSIGNAL);
    }
    let (spec, mounts) = match receive() {
        Ok(Some(x)) => x,
        Ok(None) => return 0,
        Err(e) => return fail(&e),
    };
    // SAFETY: the control socket is done with.
    unsafe {
        libc::close(4);
    }
    if let Err(e) = attach(&spec, mounts) {
        return fail(&e);
    }
    // Go: the child reads the spec to the end (a failed write means it
    // is gone; its status says why).
    let _ = std::io::Write::write_all(&mut std::fs::File::from(spec_w), &encode_spec(&spec));
    // SAFETY: installing an async-signal-safe handler.
    unsafe {
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, forward_signal as *const () as libc::sighandler_t);
        }
    }
    let mut status_of_child: Option<libc::c_int> = None;
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: plain waitpid.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break; // ECHILD: nothing left
        }
        if pid == child {
            status_of_child = Some(st);
            // The process is gone: so is the container.
            // SAFETY: kills every other process of the namespace.
            unsafe {
                libc::kill(-1, libc::SIGKILL);
            }
        }
    }
    match status_of_child {
        Some(st) if libc::WIFEXITED(st) => {
            report(&format!("exit {}\n", libc::WEXITSTATUS(st)));
            libc::WEXITSTATUS(st)
        }
        Some(st) if libc::WIFSIGNALED(st) => {
            report(&format!("signal {}\n", libc::WTERMSIG(st)));
            128 + libc::WTERMSIG(st)
        }
        _ => {
            report("error lost the process\n");
            125
        }
    }
}

/// Whether this process was invoked as `container-init` (argv[1]).
pub fn invoked(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some("container-init")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments_and_specs() {
        let v: Vec<String> = ["/r", "10002", "etc=/e", "/bp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = parse(&v).expect("parse");
        assert_eq!((a.rootfs.as_str(), a.uid, a.userns), ("/r", 10002, false));
        assert_eq!(a.ro, vec!["etc=/e".to_string(), "/bp".to_string()]);
        let mut u = v.clone();
        u.insert(2, "userns".into());
        let a = parse(&u).expect("parse");
        assert!(a.userns);
        assert_eq!(a.ro, vec!["etc=/e".to_string(), "/bp".to_string()]);
        assert_eq!(id_map(10002), "0 4294967294 1\n2000 10002 1\n");
        assert!(parse(&v[..1]).is_none());
        assert!(parse(&["/r".to_string(), "x".to_string()]).is_none());
        let s = Spec {
            hostname: "h".into(),
            uid: 10002,
            cwd: "/home/vcap/app".into(),
            script: "exec true".into(),
            direct: vec!["true".into()],
            env: vec![("A".into(), "b=c".into()), ("E".into(), String::new())],
        };
        assert_eq!(decode_spec(&encode_spec(&s)), Some(s));
        assert!(decode_spec(b"h\0notanumber\0").is_none());
    }

    #[test]
    fn proc_masks_follow_dockers_defaults() {
        for p in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/proc/sched_debug",
            "/proc/acpi",
            "/proc/latency_stats",
            "/proc/scsi",
        ] {
            assert!(MASKED_PATHS.contains(&p), "{p}");
        }
        for p in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/irq",
            "/proc/bus",
            "/proc/fs",
        ] {
            assert!(READ_ONLY_PATHS.contains(&p), "{p}");
        }
    }

    #[test]
    fn only_plain_execs_skip_bash() {
        let w = |s: &str| plain_exec(s);
        assert_eq!(w("exec true"), Some(vec!["true".to_string()]));
        assert_eq!(
            w("exec sleep 600"),
            Some(vec!["sleep".to_string(), "600".to_string()])
        );
        assert_eq!(w("true"), None);
        assert_eq!(w("exec"), None);
        assert_eq!(w("exec ls *"), None);
        assert_eq!(w("exec echo $HOME"), None);
        assert_eq!(w("exec a; b"), None);
        assert_eq!(w("exec -a x y"), None);
        assert_eq!(w("exec A=1 y"), None);
        assert_eq!(w("exec a\nb"), None);
        assert_eq!(w("exec 'a'"), None);
        assert_eq!(w("exec ~/x"), None);
    }
}
