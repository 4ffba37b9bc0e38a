//! `dea container-init`: PID 1 of a container. Runs before tokio or tracing
//! start (see `main.rs`), uses only std and libc, and stays small: it builds
//! the container's root file system, then forks the process (`bash -c`),
//! forwards SIGTERM to it, reaps every zombie and reports the process's exit
//! on fd 3 (`exit N` or `signal N`).
//!
//! It is started by the DEA with `clone(CLONE_NEWPID|CLONE_NEWNS|
//! CLONE_NEWUTS|CLONE_NEWIPC)`, already inside the container's network
//! namespace and cgroup, with the process's environment as its own.
//!
//! Arguments: `container-init <hostname> <uid> <rootfs_dir> <home_src>
//! <cwd> <ro_path>... -- <argv>...`.

use std::ffi::CString;
use std::io::Write;

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

struct Args {
    hostname: String,
    uid: u32,
    rootfs: String,
    home_src: String,
    cwd: String,
    ro: Vec<String>,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Option<Args> {
    let sep = args.iter().position(|a| a == "--")?;
    let (head, tail) = args.split_at(sep);
    if head.len() < 5 || tail.len() < 2 {
        return None;
    }
    Some(Args {
        hostname: head[0].clone(),
        uid: head[1].parse().ok()?,
        rootfs: head[2].clone(),
        home_src: head[3].clone(),
        cwd: head[4].clone(),
        ro: head[5..].to_vec(),
        argv: tail[1..].to_vec(),
    })
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
    bind(&a.home_src, &format!("{r}/home/vcap"), RW)?;
    let tmp_src = format!("{}/tmp", a.home_src);
    let _ = std::fs::create_dir_all(&tmp_src);
    bind(&tmp_src, &format!("{r}/tmp"), RW)?;
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
    mount(
        "",
        "/",
        "",
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        "",
    )?;
    let h = cstr(&a.hostname)?;
    // SAFETY: valid buffer and length.
    if unsafe { libc::sethostname(h.as_ptr(), a.hostname.len()) } != 0 {
        return Err(err("sethostname"));
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

/// In the forked child: drop every privilege and exec the process.
fn exec_child(a: &Args, argv: &[CString]) -> String {
    // SAFETY: plain syscalls in a single-threaded child.
    unsafe {
        libc::setsid();
        for cap in 0..=63 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return err("setgroups");
        }
        if libc::setgid(a.uid) != 0 {
            return err("setgid");
        }
        // From uid 0 to a non-zero uid without SECBIT_KEEP_CAPS: the
        // permitted, effective and ambient sets are cleared.
        if libc::setuid(a.uid) != 0 {
            return err("setuid");
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return err("no_new_privs");
        }
        if let Ok(c) = cstr(&a.cwd) {
            if libc::chdir(c.as_ptr()) != 0 {
                libc::chdir(c"/home/vcap".as_ptr());
            }
        }
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        libc::execvp(ptrs[0], ptrs.as_ptr());
    }
    err(&format!("exec {}", a.argv[0]))
}

fn report(msg: &str) {
    // SAFETY: fd 3 is the status pipe (or closed, then the write fails).
    unsafe {
        libc::write(3, msg.as_ptr().cast(), msg.len());
    }
}

/// The whole container-init; returns the exit code of PID 1.
pub fn main(args: &[String]) -> i32 {
    // SAFETY: fd 3 must not leak into the app.
    unsafe {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let Some(a) = parse(args) else {
        let _ = writeln!(std::io::stderr(), "container-init: bad arguments");
        report("error bad arguments\n");
        return 125;
    };
    if let Err(e) = setup_root(&a) {
        let _ = writeln!(std::io::stderr(), "container-init: {e}");
        report(&format!("error {e}\n"));
        return 125;
    }
    let argv: Vec<CString> = match a.argv.iter().map(|s| cstr(s)).collect() {
        Ok(v) => v,
        Err(e) => {
            report(&format!("error {e}\n"));
            return 125;
        }
    };
    // SAFETY: single-threaded process; fork and signal set-up.
    let child = unsafe { libc::fork() };
    if child < 0 {
        report("error fork failed\n");
        return 125;
    }
    if child == 0 {
        let e = exec_child(&a, &argv);
        let _ = writeln!(std::io::stderr(), "container-init: {e}");
        // SAFETY: leave the child without running destructors.
        unsafe { libc::_exit(127) };
    }
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
    fn parses_arguments() {
        let v: Vec<String> = [
            "h",
            "10002",
            "/r",
            "/s/i",
            "/home/vcap/app",
            "/bp",
            "--",
            "bash",
            "-c",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse(&v).expect("parse");
        assert_eq!((a.hostname.as_str(), a.uid), ("h", 10002));
        assert_eq!(a.ro, vec!["/bp".to_string()]);
        assert_eq!(a.argv, vec!["bash", "-c", "x"]);
        assert!(parse(&v[..5]).is_none());
    }
}
