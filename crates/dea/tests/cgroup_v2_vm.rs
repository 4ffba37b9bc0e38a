//! The namespaces backend under a pure cgroup v2 hierarchy, for real.
//!
//! The machines this project is tested on are cgroup v1, so
//! `cgroup_v2_in_a_vm` boots a throw-away virtual machine
//! (`scripts/vm/run-in-vm.sh`: a Debian kernel, the host's `/` read-only
//! over 9p, cgroup2 alone at `/sys/fs/cgroup`) and runs this very test
//! binary's `guest_scenarios` there, which drives real DEA containers and
//! checks the cgroup v2 files; with `DEA_VM_NAMESPACES=1`, then the whole
//! tests/namespaces.rs binary too (when this `cargo test` built it). Needs
//! root (skipped otherwise, or with `DEA_SKIP_VM_TESTS=1`); qemu, a kernel
//! and busybox-static come from `scripts/lib.sh` (`ensure_vm_tools`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dea::backend::namespaces::cgroup::{Layout, Limits};
use dea::backend::namespaces::{self, NamespacesBackend, Settings};
use dea::backend::{Backend, ContainerSpec};

/// Set (to 1) for the run inside the VM.
const GUEST: &str = "DEA_CGROUP_V2_GUEST";
/// Marker printed by the guest when every scenario passed.
const GUEST_OK: &str = "CGROUP-V2-GUEST-OK";
/// Printed when tests/namespaces.rs passed in the VM too.
const NS_OK: &str = "NAMESPACES-TESTS-OK";
/// The VM's own limit (the script kills qemu then), and ours on top.
const VM_TIMEOUT: Duration = Duration::from_secs(300);
const PIDS_MAX: u64 = 64;

/// Kills the VM script's whole process group (the script, qemu) unless it
/// has ended: a failing or panicking test leaves no qemu behind.
struct VmGuard {
    child: std::process::Child,
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: the group was created for this child (process_group(0)).
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

#[test]
fn cgroup_v2_in_a_vm() {
    if std::env::var_os(GUEST).is_some() {
        return;
    }
    // An explicit opt-out, said on one line (not a missing requirement).
    if std::env::var("DEA_SKIP_VM_TESTS").as_deref() == Ok("1") {
        testkit::say("SKIPPED cgroup_v2_in_a_vm: DEA_SKIP_VM_TESTS=1");
        return;
    }
    if !testkit::require_root("the cgroup v2 VM test", &[]) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm/run-in-vm.sh");
    let exe = std::env::current_exe().expect("test binary path");
    let tmp = tempfile::tempdir().expect("tmp");
    let out_path = tmp.path().join("vm.out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("output file");
    let start = Instant::now();
    // On request, the whole tests/namespaces.rs (containers, network,
    // quotas) under cgroup v2 as well: off by default, as its deadlines are
    // made for native speed and the VM may be emulated (and it doubles the
    // time).
    let ns_tests = namespaces_binary(&exe);
    let guest_cmd = format!(
        "env {GUEST}=1 RUST_BACKTRACE=1 \"$0\" guest_scenarios --exact --ignored --nocapture \
         --test-threads=1 || exit $?; [ -z \"$1\" ] && exit 0; echo \"[guest] running $1\"; \
         RUST_BACKTRACE=1 \"$1\" || exit $?; echo {NS_OK}"
    );
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg(&script)
            .args(["--timeout", &VM_TIMEOUT.as_secs().to_string(), "--"])
            .args(["sh", "-c", &guest_cmd])
            .arg(&exe)
            .arg(ns_tests.as_deref().unwrap_or(Path::new("")))
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("run scripts/vm/run-in-vm.sh")
    };
    let mut vm = VmGuard { child };
    let deadline = start + VM_TIMEOUT + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = vm.child.try_wait().expect("wait for the VM") {
            break st;
        }
        assert!(Instant::now() < deadline, "the VM script did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!(
        "--- VM output ({:.1}s) ---\n{text}--- end of VM output ---",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "the guest scenarios failed (125: the VM did not boot; missing qemu or a kernel: scripts/lib.sh ensure_vm_tools)"
    );
    assert!(text.contains(GUEST_OK), "the guest did not report success");
    assert!(
        text.contains("test result: ok. 1 passed"),
        "the guest's test run did not pass"
    );
    match ns_tests {
        Some(p) => assert!(text.contains(NS_OK), "{} failed in the VM", p.display()),
        None => println!(
            "tests/namespaces.rs not run in the VM (DEA_VM_NAMESPACES=1 runs it when built)"
        ),
    }
}

/// The test binary of tests/namespaces.rs beside this one, when it is up
/// to date: the newest `namespaces-<hash>`, built after its source last
/// changed and not much before the `dea` binary (a change of the library
/// relinks both). Only with `DEA_VM_NAMESPACES=1`.
fn namespaces_binary(exe: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var("DEA_VM_NAMESPACES").as_deref() != Ok("1") {
        return None;
    }
    let (built, path) = std::fs::read_dir(exe.parent()?)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with("namespaces-") && !n.contains('.')
        })
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            (md.is_file() && md.permissions().mode() & 0o111 != 0)
                .then(|| Some((md.modified().ok()?, e.path())))?
        })
        .max()?;
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/namespaces.rs");
    let stale = mtime(&src).is_some_and(|t| t > built)
        || mtime(Path::new(env!("CARGO_BIN_EXE_dea")))
            .is_some_and(|t| t > built + Duration::from_secs(120));
    if stale {
        println!(
            "{} is older than its sources: not run in the VM",
            path.display()
        );
        return None;
    }
    Some(path)
}

fn settings(dir: &Path, pool: usize) -> Settings {
    common::ns_settings("cgroup-v2-test", dir, pool, PIDS_MAX)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn keyed(p: &Path, key: &str) -> u64 {
    let text = read(p);
    namespaces::cgroup::keyed(&text, key)
        .unwrap_or_else(|| panic!("{key} in {}: {text}", p.display()))
}

/// The container's cgroup: `paas-<tag>/c<slot>`, the slot being the last
/// byte of its address.
fn group_of(b: &NamespacesBackend, parent: &Path, id: &str) -> PathBuf {
    let ip = b.container_ip(id).expect("container address");
    parent.join(format!("c{}", ip.octets()[3]))
}

fn step(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    println!("[guest {t:5.1}s] {what}");
}

const FORK_BOMB: &str = r#"
import os, signal, time
kids, err = [], None
while len(kids) < 1000:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    kids.append(pid)
procs = sum(1 for d in os.listdir('/proc') if d.isdigit())
print(f"forked={len(kids)} procs={procs} errno={err}", flush=True)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
"#;

/// Runs inside the VM only (started there by `cgroup_v2_in_a_vm`).
#[tokio::test]
#[ignore = "runs inside the cgroup v2 VM started by cgroup_v2_in_a_vm"]
async fn guest_scenarios() {
    assert_eq!(
        std::env::var(GUEST).as_deref(),
        Ok("1"),
        "meant for the VM of cgroup_v2_in_a_vm only"
    );
    let cg = Path::new("/sys/fs/cgroup");
    assert_eq!(Layout::detect(), Some(Layout::V2), "a pure cgroup v2 host");
    assert!(namespaces::available(), "root, cgroups, ip and iptables");
    let swap = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    step(&format!(
        "kernel {}, swap: {}",
        read(Path::new("/proc/sys/kernel/osrelease")),
        if swap.lines().count() > 1 {
            "yes"
        } else {
            "none"
        }
    ));

    let tmp = tempfile::tempdir().expect("tmp");
    let s = settings(tmp.path(), 1);
    let tag = s.tag.clone();
    let b = NamespacesBackend::new(s).expect("backend");
    let parent = cg.join(format!("paas-{tag}"));
    let sub = read(&parent.join("cgroup.subtree_control"));
    for c in ["memory", "pids", "cpu"] {
        assert!(
            sub.split(' ').any(|x| x == c),
            "{c} enabled for the containers: {sub}"
        );
    }
    step(&format!("parent {} enables: {sub}", parent.display()));
    assert!(b.pool_filled(Duration::from_secs(60)).await, "pool fills");

    let mk = |id: &str, memory_mb: u64| ContainerSpec {
        id: id.into(),
        root: tmp.path().join("instances").join(id),
        memory_mb,
        disk_mb: 64,
        egress: None,
    };
    let small = b.create(mk("v2small", 64)).await.expect("create");
    let big = b.create(mk("v2big", 256)).await.expect("create");
    for c in [&small, &big] {
        std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    }
    let gs = group_of(&b, &parent, "v2small");
    let gb = group_of(&b, &parent, "v2big");

    // Limits: memory (and swap) = the quota, pids, cpu weight ∝ memory.
    for (g, mb) in [(&gs, 64u64), (&gb, 256)] {
        let l = Limits::for_memory(mb, PIDS_MAX);
        assert_eq!(
            read(&g.join("memory.max")),
            (mb << 20).to_string(),
            "{}",
            g.display()
        );
        if g.join("memory.swap.max").exists() {
            assert_eq!(
                read(&g.join("memory.swap.max")),
                "0",
                "no swap beyond the quota"
            );
        }
        assert_eq!(read(&g.join("pids.max")), PIDS_MAX.to_string());
        assert_eq!(read(&g.join("cpu.weight")), l.cpu_weight().to_string());
        step(&format!(
            "{}: memory.max={} memory.swap.max={} pids.max={} cpu.weight={}",
            g.display(),
            read(&g.join("memory.max")),
            std::fs::read_to_string(g.join("memory.swap.max"))
                .unwrap_or_default()
                .trim(),
            read(&g.join("pids.max")),
            read(&g.join("cpu.weight")),
        ));
    }
    let ws: u64 = read(&gs.join("cpu.weight")).parse().expect("weight");
    let wb: u64 = read(&gb.join("cpu.weight")).parse().expect("weight");
    assert!(
        wb >= 4 * ws && wb <= 4 * ws + 4,
        "cpu.weight ∝ memory: {ws} vs {wb}"
    );

    // The process runs in the container's v2 group.
    let (out, st) = common::run_in(&b, &small, "cat /proc/self/cgroup; exit 0").await;
    assert_eq!(st, 0, "{out}");
    let rel = gs
        .strip_prefix(cg)
        .expect("under the root")
        .display()
        .to_string();
    assert!(out.contains(&format!("0::/{rel}")), "in its group: {out}");
    step(&format!("process cgroup: {}", out.trim()));
    let stats = b.stats(&small).await.expect("stats");
    step(&format!("stats: mem={} cpu={:.3}", stats.mem, stats.cpu));

    // Over the quota: OOM-killed (despite the swap), reported as such.
    let (out, st) = common::run_in(
        &b,
        &small,
        "exec python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'",
    )
    .await;
    assert_eq!(st, 137, "killed: {out}");
    assert_eq!(b.exit_reason(&small).as_deref(), Some("out of memory"));
    let kills = keyed(&gs.join("memory.events"), "oom_kill");
    assert!(kills >= 1, "memory.events oom_kill");
    step(&format!(
        "oom: exit {st}, memory.events oom_kill={kills}, reason out of memory"
    ));

    // A fork bomb stops at pids.max.
    std::fs::write(big.root.join("app/bomb.py"), FORK_BOMB).expect("write bomb.py");
    let (out, st) = common::run_in(&b, &big, "exec python3 bomb.py").await;
    assert_eq!(st, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("forked="))
        .unwrap_or_else(|| panic!("{out}"));
    let field = |k: &str| -> String {
        line.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        field("errno"),
        libc::EAGAIN.to_string(),
        "fork failed with EAGAIN: {line}"
    );
    let procs: u64 = field("procs").parse().expect("procs");
    assert!(
        procs <= PIDS_MAX && procs + 4 >= PIDS_MAX,
        "stopped at pids.max: {line}"
    );
    let hits = keyed(&gb.join("pids.events"), "max");
    assert!(hits >= 1, "pids.events max");
    assert_eq!(b.exit_reason(&big), None, "not an OOM");
    step(&format!("fork bomb: {line}, pids.events max={hits}"));

    // Over the disk quota: the whole group is killed (cgroup.kill).
    let disk = b
        .create(ContainerSpec {
            disk_mb: 2,
            egress: None,
            ..mk("v2disk", 64)
        })
        .await
        .expect("create");
    std::fs::create_dir_all(disk.root.join("app")).expect("app dir");
    let gd = group_of(&b, &parent, "v2disk");
    let (out, st) = tokio::time::timeout(
        Duration::from_secs(60),
        common::run_in(&b,
            &disk,
            "head -c 8000000 /dev/zero > /home/vcap/big; for i in 1 2 3 4 5 6 7 8; do sleep 120 & done; wait",
        ),
    )
    .await
    .expect("killed well before the sleeps end");
    assert_eq!(st, 137, "{out}");
    assert_eq!(b.exit_reason(&disk).as_deref(), Some("disk quota exceeded"));
    assert_eq!(read(&gd.join("cgroup.procs")), "", "every process killed");
    step(&format!("disk quota: exit {st}, {} emptied", gd.display()));
    b.destroy(&disk).await.expect("destroy");

    // Destroy and shutdown leave no group behind.
    b.destroy(&small).await.expect("destroy");
    b.destroy(&big).await.expect("destroy");
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
    assert!(!parent.exists(), "{} removed", parent.display());
    let stray: Vec<String> = std::fs::read_dir(cg)
        .expect("read /sys/fs/cgroup")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("paas-"))
        .collect();
    assert!(stray.is_empty(), "no cgroup left: {stray:?}");
    step("cleanup: no cgroup left");
    println!("{GUEST_OK}");
}
