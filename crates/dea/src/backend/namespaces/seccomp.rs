//! The seccomp filter of every app and staging process (docs/containers.md
//! "Seccomp"), modelled on Docker's and Garden's default profiles: allow by
//! default, deny with `EPERM` what an unprivileged process has no business
//! calling in a container (new namespaces, mounts, tracing, kernel keyrings,
//! modules, BPF, io_uring ...), and make `clone3` fail with `ENOSYS` (its
//! flags live in memory, out of a filter's reach), so that libc falls back
//! to `clone`, whose flags are checked.
//!
//! Built with `seccompiler` (no hand-written BPF) in the container's
//! process-to-be, right after it dropped its privileges and set
//! `no_new_privs`, before it waits for its process (so a pooled container
//! has it in place before the start). x86_64 and aarch64; on x86_64 a
//! third, four-instruction program refuses x32-ABI system calls (numbers
//! with bit 30 set), which would otherwise reach the same kernel functions
//! under other numbers; 32-bit (i386/arm) calls are killed by seccompiler's
//! architecture check.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// `("SYS_name", number)` pairs of the running architecture.
macro_rules! calls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name)),*]
    };
}

/// Denied outright (`EPERM`) on every architecture.
const DENIED: &[(&str, i64)] = calls![
    // mounts and the root
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
    // other namespaces
    SYS_setns,
    // tracing and other processes' memory
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_kcmp,
    SYS_pidfd_getfd,
    // kernel attack surface
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    // the machine itself
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_swapon,
    SYS_swapoff,
    SYS_reboot,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_acct,
    SYS_lookup_dcookie,
    SYS_quotactl,
    SYS_syslog,
    SYS_vhangup,
    SYS_fanotify_init,
];

/// Denied outright, x86_64 only (legacy or port-I/O calls).
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[(&str, i64)] = calls![
    SYS_iopl,
    SYS_ioperm,
    SYS_uselib,
    SYS_ustat,
    SYS_sysfs,
    SYS__sysctl,
    SYS_nfsservctl,
];
#[cfg(not(target_arch = "x86_64"))]
const DENIED_ARCH: &[(&str, i64)] = &[];

/// `clone` and `unshare` are denied only with a namespace flag (Docker
/// checks the same mask): `CLONE_NEWNS`, `CLONE_NEWCGROUP`, `CLONE_NEWUTS`,
/// `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID`, `CLONE_NEWNET`.
pub const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
/// `CLONE_NEWTIME`: `unshare` only (in `clone`, 0x80 is part of the exit
/// signal).
const CLONE_NEWTIME: u64 = 0x80;

/// The x32 bit of x86_64 system call numbers.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Names of the calls denied outright on this architecture.
pub fn denied_names() -> Vec<&'static str> {
    DENIED
        .iter()
        .chain(DENIED_ARCH)
        .map(|(n, _)| n.strip_prefix("SYS_").unwrap_or(n))
        .collect()
}

/// Names of the calls denied only with a namespace flag.
pub fn flag_checked_names() -> Vec<&'static str> {
    vec!["clone", "unshare"]
}

/// Names of the calls that fail with `ENOSYS`.
pub fn enosys_names() -> Vec<&'static str> {
    vec!["clone3"]
}

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))
}

/// One rule per flag: `(arg0 & flag) == flag`; the rules of a call are
/// or-ed.
fn any_flag(flags: &[u64]) -> Result<Vec<SeccompRule>, String> {
    flags
        .iter()
        .map(|&f| {
            let c = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(f), f)
                .map_err(|e| format!("seccomp condition: {e}"))?;
            SeccompRule::new(vec![c]).map_err(|e| format!("seccomp rule: {e}"))
        })
        .collect()
}

/// The programs to install, in order: the `EPERM` filter, the `ENOSYS`
/// filter (`clone3`), and on x86_64 the x32 guard.
pub fn build() -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .chain(DENIED_ARCH)
        .map(|&(_, nr)| (nr, Vec::new()))
        .collect();
    rules.insert(libc::SYS_clone, any_flag(NAMESPACE_FLAGS)?);
    let mut unshare_flags = NAMESPACE_FLAGS.to_vec();
    unshare_flags.push(CLONE_NEWTIME);
    rules.insert(libc::SYS_unshare, any_flag(&unshare_flags)?);
    let compile = |rules, errno: i32| -> Result<BpfProgram, String> {
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        BpfProgram::try_from(f).map_err(|e| format!("seccomp filter: {e}"))
    };
    let mut programs = vec![
        compile(rules, libc::EPERM)?,
        compile(
            [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
            libc::ENOSYS,
        )?,
    ];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    Ok(programs)
}

/// x86_64: every system call with the x32 bit fails with `ENOSYS` (x32
/// numbers reach `mount`, `ptrace` ... under other numbers, which the
/// filters above, keyed by the 64-bit numbers, would let through). Other
/// architectures pass (seccompiler's own check kills them).
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    // Classic BPF: offsets into `struct seccomp_data` (nr at 0, arch at 4).
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, 0, 0),
        op(JSET_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs the programs on the calling thread (sets `no_new_privs`
/// first, as the kernel requires without `CAP_SYS_ADMIN`).
pub fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_holds_what_docker_denies() {
        let denied = denied_names();
        for must in [
            "mount",
            "umount2",
            "pivot_root",
            "ptrace",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "swapon",
            "swapoff",
            "reboot",
            "settimeofday",
            "clock_settime",
            "acct",
            "setns",
            "name_to_handle_at",
            "lookup_dcookie",
            "quotactl",
            "syslog",
            "open_tree",
            "move_mount",
            "fsopen",
        ] {
            assert!(denied.contains(&must), "{must} is not denied");
        }
        // What every program needs stays allowed.
        for keep in ["read", "write", "execve", "clone", "unshare", "socket"] {
            assert!(!denied.contains(&keep), "{keep} must stay allowed");
        }
        assert_eq!(flag_checked_names(), vec!["clone", "unshare"]);
        assert_eq!(enosys_names(), vec!["clone3"]);
        assert!(NAMESPACE_FLAGS.contains(&(libc::CLONE_NEWUSER as u64)));
        // No duplicates, and no number twice under two names.
        let mut nrs: Vec<i64> = DENIED.iter().chain(DENIED_ARCH).map(|c| c.1).collect();
        nrs.sort();
        let n = nrs.len();
        nrs.dedup();
        assert_eq!(nrs.len(), n);
        assert!(!nrs.contains(&libc::SYS_clone) && !nrs.contains(&libc::SYS_clone3));
    }

    #[test]
    fn the_programs_build() {
        let p = build().expect("build");
        assert_eq!(p.len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
        // Every program starts with seccompiler's (or our) architecture
        // check: load `arch` (offset 4).
        for prog in &p {
            assert_eq!((prog[0].code, prog[0].k), (0x20, 4));
            assert!(prog.len() < 4096);
        }
    }

    /// What the filter does, in a forked child (no root needed: seccomp
    /// with `no_new_privs` is open to any process).
    #[test]
    fn a_filtered_process_is_refused_namespaces_mounts_and_tracing() {
        let p = build().expect("build");
        // SAFETY: the child makes only raw system calls, then _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: raw syscalls in the child; results folded into the
            // exit code (bit i set = check i failed).
            unsafe {
                let mut bad = 0;
                if install(&p).is_err() {
                    libc::_exit(100);
                }
                let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                let check = |ok: bool, bit: i32, bad: &mut i32| {
                    if !ok {
                        *bad |= 1 << bit;
                    }
                };
                let r = libc::unshare(libc::CLONE_NEWUSER);
                check(r == -1 && errno() == libc::EPERM, 0, &mut bad);
                let r = libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                );
                check(r == -1 && errno() == libc::EPERM, 1, &mut bad);
                let r = libc::syscall(libc::SYS_clone3, 0, 0);
                check(r == -1 && errno() == libc::ENOSYS, 2, &mut bad);
                let r = libc::mount(
                    c"x".as_ptr(),
                    c"/tmp".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                );
                check(r == -1 && errno() == libc::EPERM, 3, &mut bad);
                let r = libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                check(r == -1 && errno() == libc::EPERM, 4, &mut bad);
                let r = libc::syscall(libc::SYS_io_uring_setup, 1, 0);
                check(r == -1 && errno() == libc::EPERM, 5, &mut bad);
                // Ordinary calls still work: a plain fork (clone without
                // namespace flags), getpid, unshare of the file table.
                check(libc::getpid() > 0, 6, &mut bad);
                let c = libc::fork();
                if c == 0 {
                    libc::_exit(0);
                }
                let mut st = 0;
                check(
                    c > 0 && libc::waitpid(c, &mut st, 0) == c && st == 0,
                    7,
                    &mut bad,
                );
                check(libc::unshare(libc::CLONE_FILES) == 0, 8, &mut bad);
                #[cfg(target_arch = "x86_64")]
                {
                    let r = libc::syscall(X32_SYSCALL_BIT as i64 | libc::SYS_getpid);
                    check(r == -1 && errno() == libc::ENOSYS, 9, &mut bad);
                }
                libc::_exit(bad);
            }
        }
        let mut st = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(libc::WIFEXITED(st), "child died: {st:#x}");
        assert_eq!(
            libc::WEXITSTATUS(st),
            0,
            "failed checks (bits: 0 unshare, 1 clone, 2 clone3, 3 mount, 4 ptrace, 5 io_uring, 6 getpid, 7 fork, 8 unshare files, 9 x32)"
        );
    }
}
