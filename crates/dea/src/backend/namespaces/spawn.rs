//! Starting a container's PID 1: a raw `clone` with new PID, mount, UTS and
//! IPC namespaces; the child joins the cgroup and the network namespace and
//! execs `dea container-init` (see `init.rs`), which builds the root file
//! system and then waits on a control socket for the process to run
//! ([`send_process`]). Between clone and exec the child only makes raw
//! syscalls (no allocation, no locks), as after `fork` in a threaded
//! program.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{DeaError, Result};

/// A started container-init: its pid and pidfd, the read ends of its
/// output and status pipes, and the DEA's end of its control socket.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub status: OwnedFd,
    pub control: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(DeaError::Backend(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| DeaError::Backend(format!("NUL byte in {s:?}")))
}

fn open(p: &Path, flags: i32) -> Result<OwnedFd> {
    let c = cstring(&p.display().to_string())?;
    // SAFETY: valid path string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(DeaError::Backend(format!(
            "open {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clones and execs `exe argv[1..]` (with an empty environment) inside new
/// namespaces, in the cgroups whose `cgroup.procs` are `procs_files` and in
/// the network namespace `netns`.
///
/// `into_cgroup` (cgroup v2: the group's directory): the child is created
/// right in that group (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7+),
/// without the `cgroup.procs` write and the RCU grace period it waits for;
/// when `clone3` refuses, the child writes itself into `procs_files`.
pub fn spawn(
    exe: &Path,
    argv: &[String],
    procs_files: &[std::path::PathBuf],
    into_cgroup: Option<&Path>,
    netns: &Path,
) -> Result<Child> {
    let exe_c = cstring(&exe.display().to_string())?;
    let argv_c: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let env_p: [*const libc::c_char; 1] = [std::ptr::null()];
    let procs: Vec<OwnedFd> = procs_files
        .iter()
        .map(|p| open(p, libc::O_WRONLY))
        .collect::<Result<_>>()?;
    let procs_raw: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let net = open(netns, libc::O_RDONLY)?;
    let null = open(Path::new("/dev/null"), libc::O_RDONLY)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (st_r, st_w) = pipe()?;
    let (ctl, ctl_init) = socketpair()?;
    let (net_fd, null_fd, ow, ew, sw, cw) = (
        net.as_raw_fd(),
        null.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        st_w.as_raw_fd(),
        ctl_init.as_raw_fd(),
    );
    let cgroup_dir = into_cgroup
        .map(|d| open(d, libc::O_RDONLY | libc::O_DIRECTORY))
        .transpose()?;
    let flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    let mut joined = false;
    let mut pid: libc::c_long = -1;
    if let Some(dir) = &cgroup_dir {
        let args = CloneArgs {
            flags: flags as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3 without a stack behaves like fork (the child runs
        // on a copy of this stack), with the same child rules as below.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        joined = pid >= 0;
        if !joined {
            static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let e = std::io::Error::last_os_error();
                tracing::warn!(error = %e, "clone3(CLONE_INTO_CGROUP) refused; joining by cgroup.procs");
            }
        }
    }
    if !joined {
        // SAFETY: raw clone without a new stack behaves like fork; the
        // child below only makes async-signal-safe raw syscalls, then execs
        // or exits.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    if pid == 0 {
        // SAFETY: child side; raw syscalls only.
        unsafe {
            // Containers must not outlive the DEA (as with the process
            // backend): PID 1 gets SIGKILL when the cloning thread (a
            // runtime worker, living as long as the DEA) dies; the kernel
            // then kills the whole PID namespace.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            // Outside its cgroups a container must not run at all.
            if !joined {
                for &fd in &procs_raw {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        libc::_exit(120);
                    }
                }
            }
            if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                libc::_exit(121);
            }
            // Descriptors 3 and 4 may be among the sources: move the
            // sources out of the way first.
            let hi = [
                libc::fcntl(null_fd, libc::F_DUPFD_CLOEXEC, 10),
                libc::fcntl(ow, libc::F_DUPFD_CLOEXEC, 10),
                libc::fcntl(ew, libc::F_DUPFD_CLOEXEC, 10),
                libc::fcntl(sw, libc::F_DUPFD_CLOEXEC, 10),
                libc::fcntl(cw, libc::F_DUPFD_CLOEXEC, 10),
            ];
            for (to, &from) in hi.iter().enumerate() {
                if from < 0 || libc::dup2(from, to as i32) < 0 {
                    libc::_exit(122);
                }
            }
            libc::execve(exe_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            libc::_exit(123);
        }
    }
    if pid < 0 {
        return Err(DeaError::Backend(format!(
            "clone: {}",
            std::io::Error::last_os_error()
        )));
    }
    let pid = pid as i32;
    // SAFETY: pidfd_open on our own child (not reaped yet).
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pfd < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: plain kill/waitpid on our child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(DeaError::Backend(format!("pidfd_open: {e}")));
    }
    drop((out_w, err_w, st_w, ctl_init, procs, net, null, cgroup_dir));
    Ok(Child {
        pid,
        // SAFETY: fresh descriptor we own.
        pidfd: unsafe { OwnedFd::from_raw_fd(pfd as i32) },
        stdout: out_r,
        stderr: err_r,
        status: st_r,
        control: ctl,
    })
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3` (up to `cgroup`: 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(DeaError::Backend(format!(
            "socketpair: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn os_err(what: &str) -> DeaError {
    DeaError::Backend(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A detached copy of the mount tree at the directory `dir`
/// (`open_tree(OPEN_TREE_CLONE)` on the descriptor itself: no path is
/// resolved), which the container-init attaches in its own mount namespace.
fn detached_mount(dir: &OwnedFd) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: open_tree on a descriptor we own, with an empty path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | AT_RECURSIVE
                | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(os_err("open_tree"));
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Hands the process to a container-init waiting on `control`: the encoded
/// spec in a memfd, plus `home` and `home/tmp` as detached mounts. `home`
/// is opened without following a symlink, and `tmp` relative to it (made
/// anew, owned by `uid`, when the container left something else there): a
/// container that swapped its `tmp` for a link to `/` gets a fresh empty
/// directory, not the host's root.
pub fn send_process(control: &OwnedFd, spec: &[u8], home: &Path, uid: u32) -> Result<()> {
    // SAFETY: valid name; a fresh descriptor we own.
    let mfd = unsafe { libc::memfd_create(c"spec".as_ptr(), libc::MFD_CLOEXEC) };
    if mfd < 0 {
        return Err(os_err("memfd_create"));
    }
    // SAFETY: fresh descriptor we own.
    let mut memfd = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(mfd) });
    std::io::Write::write_all(&mut memfd, spec)
        .map_err(|e| DeaError::Backend(format!("memfd: {e}")))?;
    let home_dir = crate::safefs::open_root(home)
        .map_err(|e| DeaError::Backend(format!("{}: {e}", home.display())))?;
    let tmp_dir = crate::safefs::subdir(&home_dir, "tmp", uid)
        .map_err(|e| DeaError::Backend(format!("{}/tmp: {e}", home.display())))?;
    let home_tree = detached_mount(&home_dir)?;
    let tmp_tree = detached_mount(&tmp_dir)?;
    send_fds(
        control,
        &[
            memfd.as_raw_fd(),
            home_tree.as_raw_fd(),
            tmp_tree.as_raw_fd(),
        ],
    )
}

fn send_fds(sock: &OwnedFd, fds: &[i32]) -> Result<()> {
    let byte = [b'p'];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer has room for one header with `fds`.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<i32>(), fds.len());
    }
    loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n == 1 {
            return Ok(());
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(os_err("container-init control socket"));
    }
}

/// Waits (bounded) for the init's ready byte: its root file system is
/// ready. Returns whether its process runs in a user namespace of its own
/// (`u`) or as the slot's uid (`r`).
pub fn wait_ready(control: &OwnedFd, timeout: std::time::Duration) -> Result<bool> {
    let mut pfd = libc::pollfd {
        fd: control.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r == 0 {
        return Err(DeaError::Backend("container-init not ready in time".into()));
    }
    let mut b = [0u8; 1];
    // SAFETY: valid buffer.
    let n = unsafe { libc::recv(control.as_raw_fd(), b.as_mut_ptr().cast(), 1, 0) };
    match (n, b[0]) {
        (1, b'r') => Ok(false),
        (1, b'u') => Ok(true),
        _ => Err(DeaError::Backend("container-init failed to start".into())),
    }
}

/// Kills a container-init and reaps it (blocking: its PID namespace goes
/// first). Returns its wait status.
pub fn discard(child: Child) -> i32 {
    let mut st = 0;
    // SAFETY: kill and waitpid on our own, not yet reaped child.
    unsafe {
        libc::kill(child.pid, libc::SIGKILL);
        libc::waitpid(child.pid, &mut st, 0);
    }
    st
}

/// [`discard`], keeping what the init reported on its status pipe (or how
/// it ended).
pub fn discard_with_report(child: Child, text: &mut String) {
    let status = child.status.try_clone();
    let st = discard(child);
    if let Ok(st) = status {
        let _ = std::io::Read::read_to_string(&mut std::fs::File::from(st), text);
    }
    if text.trim().is_empty() {
        *text = if libc::WIFEXITED(st) {
            format!("exited with {}", libc::WEXITSTATUS(st))
        } else {
            format!("killed by signal {}", libc::WTERMSIG(st))
        };
    }
}

/// Reaps the child (it has exited: its pidfd is readable) and returns its
/// raw wait status.
pub fn reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: waitpid on our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}
