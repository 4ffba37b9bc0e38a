//! Starting a container's PID 1: a raw `clone` with new PID, mount, UTS and
//! IPC namespaces; the child joins the cgroup and the network namespace and
//! execs `dea container-init`. Between clone and exec the child only makes
//! raw syscalls (no allocation, no locks), as after `fork` in a threaded
//! program.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{DeaError, Result};

pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub status: OwnedFd,
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

/// Clones and execs `exe argv[1..]` with `env` inside new namespaces.
pub fn spawn(
    exe: &Path,
    argv: &[String],
    env: &[(String, String)],
    procs_files: &[std::path::PathBuf],
    netns: &Path,
) -> Result<Child> {
    let exe_c = cstring(&exe.display().to_string())?;
    let argv_c: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
    let env_c: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
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
    let (net_fd, null_fd, ow, ew, sw) = (
        net.as_raw_fd(),
        null.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        st_w.as_raw_fd(),
    );
    let flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    // SAFETY: raw clone without a new stack behaves like fork; the child
    // below only makes async-signal-safe raw syscalls, then execs or exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
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
            for &fd in &procs_raw {
                libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                libc::_exit(121);
            }
            if libc::dup2(null_fd, 0) < 0
                || libc::dup2(ow, 1) < 0
                || libc::dup2(ew, 2) < 0
                || libc::dup2(sw, 3) < 0
            {
                libc::_exit(122);
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
    drop((out_w, err_w, st_w, procs, net, null));
    Ok(Child {
        pid,
        // SAFETY: fresh descriptor we own.
        pidfd: unsafe { OwnedFd::from_raw_fd(pfd as i32) },
        stdout: out_r,
        stderr: err_r,
        status: st_r,
    })
}

/// Reaps the child (it has exited: its pidfd is readable) and returns its
/// raw wait status.
pub fn reap(pid: i32) -> Option<i32> {
    let mut st = 0;
    // SAFETY: waitpid on our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (r == pid).then_some(st)
}
