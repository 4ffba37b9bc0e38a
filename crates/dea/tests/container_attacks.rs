//! Hostile processes in real containers (needs root; skipped otherwise,
//! failing under CI=true): one test per attack, each run by an app process
//! inside a namespaces-backend container, each refused (docs/containers.md
//! "Seccomp", "/proc", "Network"); and an ordinary app still works.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use dea::backend::namespaces::{self, NamespacesBackend};
use dea::backend::{Backend, Container, ContainerSpec, ProcessSpec};

fn root(test: &str) -> bool {
    testkit::require_root(
        test,
        &[("cgroups, ip and iptables", namespaces::available())],
    )
}

/// A backend of its own (own tag, bridge and chains), removed even when
/// the test fails.
struct Env {
    b: NamespacesBackend,
    tag: String,
    tmp: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        NamespacesBackend::cleanup_tag(&self.tag);
    }
}

impl Env {
    fn new(name: &str, pool: usize) -> Env {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = common::ns_settings(name, tmp.path(), pool, 64);
        let tag = s.tag.clone();
        // Leftovers of an earlier failed run with this tag go first.
        NamespacesBackend::cleanup_tag(&tag);
        let b = NamespacesBackend::new(s).expect("backend");
        Env { b, tag, tmp }
    }

    async fn container(&self, id: &str) -> Container {
        let c = self
            .b
            .create(ContainerSpec {
                id: id.into(),
                root: self.tmp.path().join(id),
                memory_mb: 256,
                disk_mb: 256,
                egress: None,
            })
            .await
            .expect("create");
        std::fs::create_dir_all(c.root.join("app")).expect("app dir");
        c
    }

    async fn run(&self, c: &Container, script: &str) -> (String, i32) {
        let (out, st) = common::run_in(&self.b, c, script).await;
        println!("--- {script}\n{out}(status {st})");
        (out, st)
    }

    fn finish(self) {
        self.b.kill_all();
        let left = NamespacesBackend::leftovers(&self.tag);
        assert!(left.is_empty(), "leftovers: {left:?}");
    }
}

/// Compiles `src` (C) on the host into the container's app directory as
/// `name`; the container runs it as `./name` (the host's libc is its
/// stack's). `None` without a C compiler (the test then says so).
fn compile(c: &Container, name: &str, src: &str) -> Option<()> {
    let dir = c.root.join("app");
    let src_path = dir.join(format!("{name}.c"));
    std::fs::write(&src_path, src).expect("write source");
    let out = std::process::Command::new("cc")
        .arg("-O")
        .arg("-o")
        .arg(dir.join(name))
        .arg(&src_path)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!("cc failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("no C compiler ({e}): the {name} probe is left out");
            None
        }
    }
}

/// Tries the system calls behind `unshare -U` and `clone(CLONE_NEWUSER)`,
/// and `clone3`, printing `<call> <errno name or ok>`.
const USERNS_PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void show(const char *what, long r) {
    if (r == -1) printf("%s %s\n", what, strerrorname_np(errno));
    else printf("%s ok\n", what);
}
int main(void) {
    show("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, 0, 0);
    show("clone(CLONE_NEWUSER)", pid);
    show("clone3", syscall(SYS_clone3, 0, 0));
    show("unshare(CLONE_NEWNET)", unshare(CLONE_NEWNET));
    return 0;
}
"#;

#[tokio::test]
async fn user_namespaces_cannot_be_created() {
    if !root("user_namespaces_cannot_be_created") {
        return;
    }
    let env = Env::new("attack-userns", 0);
    let c = env.container("userns1").await;
    let probe = compile(&c, "userns", USERNS_PROBE).is_some();
    let (out, st) = env
        .run(
            &c,
            "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status\n\
             unshare -U true && echo unshare-U-WORKED\n\
             unshare --user --map-root-user true && echo unshare-user-WORKED\n\
             unshare -Urm sh -c 'mount -t tmpfs x /tmp && echo mount-in-userns-WORKED'\n\
             test -x ./userns && ./userns\n\
             exit 0",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    assert!(out.contains("Seccomp:\t2"), "filter mode: {out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(!out.contains("WORKED"), "a user namespace was made: {out}");
    assert!(
        out.contains("unshare: unshare failed: Operation not permitted"),
        "{out}"
    );
    if probe {
        assert!(out.contains("unshare(CLONE_NEWUSER) EPERM"), "{out}");
        assert!(out.contains("clone(CLONE_NEWUSER) EPERM"), "{out}");
        assert!(out.contains("clone3 ENOSYS"), "{out}");
        assert!(out.contains("unshare(CLONE_NEWNET) EPERM"), "{out}");
    }
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

#[tokio::test]
async fn mounting_is_refused() {
    if !root("mounting_is_refused") {
        return;
    }
    let env = Env::new("attack-mount", 0);
    let c = env.container("mount1").await;
    let probe = compile(
        &c,
        "mnt",
        r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    int r = mount("x", "/tmp/x", "tmpfs", 0, 0);
    printf("mount %s\n", r == 0 ? "ok" : strerrorname_np(errno));
    r = umount2("/home/vcap", MNT_DETACH);
    printf("umount2 %s\n", r == 0 ? "ok" : strerrorname_np(errno));
    long f = syscall(SYS_fsopen, "tmpfs", 0);
    printf("fsopen %s\n", f >= 0 ? "ok" : strerrorname_np(errno));
    return 0;
}
"#,
    )
    .is_some();
    let (out, st) = env
        .run(
            &c,
            "mkdir -p /tmp/x\n\
             mount -t tmpfs x /tmp/x && echo MOUNTED\n\
             unshare -Urm mount -t tmpfs x /tmp/x && echo MOUNTED-IN-USERNS\n\
             test -x ./mnt && ./mnt\n\
             echo mounts=$(grep -c ' /tmp/x ' /proc/self/mountinfo)\n\
             exit 0",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    assert!(!out.contains("MOUNTED"), "{out}");
    assert!(out.contains("mounts=0"), "{out}");
    if probe {
        assert!(out.contains("mount EPERM"), "{out}");
        assert!(out.contains("umount2 EPERM"), "{out}");
        assert!(out.contains("fsopen EPERM"), "{out}");
    }
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

#[tokio::test]
async fn host_views_of_proc_are_masked() {
    if !root("host_views_of_proc_are_masked") {
        return;
    }
    let env = Env::new("attack-proc", 0);
    let c = env.container("proc1").await;
    let (out, st) = env
        .run(
            &c,
            "for f in /proc/kcore /proc/sched_debug /proc/timer_list /proc/keys /proc/interrupts; do\n\
               test -e $f || continue; echo \"$f $(head -c 4096 $f 2>/dev/null | wc -c)\"; done\n\
             for d in /proc/acpi /proc/scsi; do\n\
               test -d $d && echo \"$d $(ls -A $d | wc -l)\"; done\n\
             awk '$5 == \"/proc/sys\" || $5 == \"/proc/sysrq-trigger\" || $5 == \"/proc/irq\" {print $5, substr($6, 1, 2)}' /proc/self/mountinfo\n\
             echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE-SYSCTL\n\
             test -e /sys/firmware && echo SYS-VISIBLE\n\
             exit 0",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    for l in out.lines().filter(|l| l.starts_with("/proc/")) {
        let (path, rest) = l.split_once(' ').expect("path value");
        if path == "/proc/sys" || path == "/proc/sysrq-trigger" || path == "/proc/irq" {
            assert_eq!(rest, "ro", "{path} is read-only: {out}");
        } else {
            assert_eq!(rest, "0", "{path} shows nothing of the host: {out}");
        }
    }
    assert!(out.contains("/proc/sys ro"), "{out}");
    assert!(!out.contains("WROTE-SYSCTL") && !out.contains("SYS-VISIBLE"));
    // Each of them that this kernel has is masked (some kernels have no
    // /proc/kcore or /proc/sched_debug); /proc/interrupts, readable by
    // anyone on the host, shows the host's IRQs there and nothing inside.
    for f in [
        "/proc/kcore",
        "/proc/sched_debug",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/interrupts",
    ] {
        if Path::new(f).exists() {
            assert!(out.contains(&format!("{f} 0\n")), "{f} masked: {out}");
        }
    }
    if let Ok(host) = std::fs::read_to_string("/proc/interrupts") {
        assert!(
            !host.is_empty(),
            "the host's own /proc/interrupts has content"
        );
    }
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

#[tokio::test]
async fn ptrace_is_refused() {
    if !root("ptrace_is_refused") {
        return;
    }
    let env = Env::new("attack-ptrace", 0);
    let c = env.container("ptrace1").await;
    let probe = compile(
        &c,
        "pt",
        r#"
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    long r = ptrace(PTRACE_ATTACH, 1, 0, 0);
    printf("attach-pid1 %s\n", r == 0 ? "ok" : strerrorname_np(errno));
    pid_t child = fork();
    if (child == 0) { pause(); _exit(0); }
    r = ptrace(PTRACE_SEIZE, child, 0, 0);
    printf("seize-own-child %s\n", r == 0 ? "ok" : strerrorname_np(errno));
    kill(child, SIGKILL);
    waitpid(child, 0, 0);
    r = ptrace(PTRACE_TRACEME, 0, 0, 0);
    printf("traceme %s\n", r == 0 ? "ok" : strerrorname_np(errno));
    return 0;
}
"#,
    )
    .is_some();
    let (out, st) = env
        .run(
            &c,
            "if command -v strace >/dev/null; then\n\
               timeout 5 strace -p 1 -o /dev/null; echo strace-p-1=$?\n\
               strace -o /dev/null true && echo STRACE-RAN-TRUE\n\
             fi\n\
             test -x ./pt && ./pt\n\
             exit 0",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    assert!(!out.contains("STRACE-"), "{out}");
    if out.contains("strace-p-1=") {
        // 1: attach refused at once (124 would be attached, until timeout).
        assert!(out.contains("strace-p-1=1"), "{out}");
    }
    if probe {
        assert!(out.contains("attach-pid1 EPERM"), "{out}");
        assert!(out.contains("seize-own-child EPERM"), "{out}");
        assert!(out.contains("traceme EPERM"), "{out}");
    }
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

/// `open T` or `closed T` for each `host:port`, from inside.
fn probe_script(targets: &[String]) -> String {
    let mut s = String::new();
    for t in targets {
        let (h, p) = t.rsplit_once(':').expect("host:port");
        s += &format!(
            "timeout 3 bash -c 'echo > /dev/tcp/{h}/{p}' 2>/dev/null && echo open {t} || echo closed {t}\n"
        );
    }
    s
}

/// The bridge's address of the container's subnet (its gateway: the host).
fn gateway(ip: Ipv4Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 1)
}

#[tokio::test]
async fn host_loopback_listeners_are_unreachable() {
    if !root("host_loopback_listeners_are_unreachable") {
        return;
    }
    // Stands for NATS, the controller's internal listener and Postgres.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let env = Env::new("attack-lo", 0);
    let c = env.container("lo1").await;
    let gw = gateway(env.b.container_ip("lo1").expect("ip"));
    let targets = vec![format!("127.0.0.1:{port}"), format!("{gw}:{port}")];
    let (out, _) = env.run(&c, &probe_script(&targets)).await;
    for t in &targets {
        assert!(out.contains(&format!("closed {t}")), "{out}");
    }
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

/// The host's first global IPv4 address outside the containers' range.
fn host_address() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .find(|a| a.octets()[..2] != [10, 254])
}

#[tokio::test]
async fn host_address_listeners_are_unreachable() {
    if !root("host_address_listeners_are_unreachable") {
        return;
    }
    let Some(addr) = host_address() else {
        println!("no global IPv4 address on this host: nothing to probe");
        return;
    };
    let l = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let env = Env::new("attack-hostaddr", 0);
    let c = env.container("ha1").await;
    let target = format!("{addr}:{port}");
    let (out, _) = env
        .run(&c, &probe_script(std::slice::from_ref(&target)))
        .await;
    assert!(out.contains(&format!("closed {target}")), "{out}");
    // The listener is there: the host itself reaches it.
    std::net::TcpStream::connect_timeout(&target.parse().expect("addr"), Duration::from_secs(3))
        .expect("the host reaches its own listener");
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

#[tokio::test]
async fn other_containers_are_unreachable() {
    if !root("other_containers_are_unreachable") {
        return;
    }
    let env = Env::new("attack-peer", 0);
    let victim = env.container("peer1").await;
    let attacker = env.container("peer2").await;
    let sp = env
        .b
        .spawn(
            &victim,
            ProcessSpec {
                script: "exec python3 -m http.server 8080".into(),
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                cwd: victim.root.join("app"),
            },
        )
        .await
        .expect("spawn");
    let wait = tokio::spawn(sp.wait);
    let ip = env.b.container_ip("peer1").expect("ip");
    // The victim listens (seen from inside its own network namespace).
    let netns = format!("paas-{}-{}", env.tag, ip.octets()[3]);
    testkit::wait_for_blocking("the victim to listen", Duration::from_secs(10), || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns,
                "bash",
                "-c",
                "echo > /dev/tcp/127.0.0.1/8080",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            .then_some(())
    })
    .expect("the victim listens");
    let target = format!("{ip}:8080");
    let (out, _) = env
        .run(&attacker, &probe_script(std::slice::from_ref(&target)))
        .await;
    assert!(out.contains(&format!("closed {target}")), "{out}");
    env.b
        .stop(&victim, Duration::from_secs(2))
        .await
        .expect("stop");
    let _ = wait.await;
    for c in [&victim, &attacker] {
        env.b.destroy(c).await.expect("destroy");
    }
    env.finish();
}

/// An ordinary app under the filter: threads (glibc's `pthread_create`
/// meets `clone3`'s ENOSYS and falls back to `clone`), subprocesses
/// (`posix_spawn`, `fork`), pipelines, and serving HTTP through its host
/// port, from a pooled container.
#[tokio::test]
async fn a_normal_app_still_works() {
    if !root("a_normal_app_still_works") {
        return;
    }
    let env = Env::new("attack-normal", 1);
    assert!(
        env.b.pool_filled(Duration::from_secs(10)).await,
        "pool fills"
    );
    let c = env.container("normal1").await;
    let (out, st) = env
        .run(
            &c,
            "python3 -c 'import threading, subprocess\n\
t = [threading.Thread(target=lambda: None) for _ in range(8)]\n\
[x.start() for x in t]; [x.join() for x in t]\n\
print(\"threads ok\", subprocess.run([\"true\"]).returncode, subprocess.run(\"echo sub\", shell=True, capture_output=True).stdout.decode().strip())'\n\
             echo pipe | tr a-z A-Z | cat\n\
             (true & wait) && echo forked\n\
             exit 0",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    assert!(out.contains("threads ok 0 sub"), "{out}");
    assert!(out.contains("PIPE") && out.contains("forked"), "{out}");
    // Runtimes of the stack that use threads, io_uring or clone3 when they
    // can (libuv, the JVM) fall back under the filter.
    let (out, st) = env
        .run(
            &c,
            "if command -v node >/dev/null; then node -e 'require(\"fs\").promises.readFile(\"/etc/passwd\").then(() => console.log(\"node ok\"))'; else echo node ok; fi\n\
             if command -v java >/dev/null; then java -Xmx64m -version >/dev/null 2>&1 && echo java ok; else echo java ok; fi",
        )
        .await;
    assert_eq!(st, 0, "{out}");
    assert!(out.contains("node ok") && out.contains("java ok"), "{out}");
    env.b.destroy(&c).await.expect("destroy");
    // Serving: a second container from the (refilled) pool, on its host port.
    assert!(
        env.b.pool_filled(Duration::from_secs(10)).await,
        "pool refills"
    );
    let c = env.container("normal2").await;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    env.b.expose(&c, port).await.expect("expose");
    std::fs::write(c.root.join("app/index.html"), "hello from the app").expect("write");
    let sp = env
        .b
        .spawn(
            &c,
            ProcessSpec {
                script: "exec python3 -m http.server 8080".into(),
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                cwd: c.root.join("app"),
            },
        )
        .await
        .expect("spawn");
    let wait = tokio::spawn(sp.wait);
    testkit::wait_port(port, true, Duration::from_secs(10))
        .await
        .expect("the app answers on its host port");
    let body = testkit::wait_for("the page", Duration::from_secs(10), || async move {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        r.contains("hello from the app").then_some(r)
    })
    .await
    .expect("served");
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    env.b.stop(&c, Duration::from_secs(2)).await.expect("stop");
    let _ = wait.await;
    env.b.destroy(&c).await.expect("destroy");
    env.finish();
}

/// `ip_forward` (the only host-wide sysctl the backend changes) is on
/// while a DEA runs and back to its earlier value when the last DEA on
/// the host stops.
#[tokio::test]
async fn ip_forward_is_restored_on_stop() {
    if !root("ip_forward_is_restored_on_stop") {
        return;
    }
    let read = || {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .expect("ip_forward")
            .trim()
            .to_string()
    };
    // What it was before any DEA: saved by the first DEA running now, if
    // any (read under the DEAs' host lock, so no DEA starts in between).
    let before = {
        let _lock = namespaces::net::HostLock::acquire();
        std::fs::read_to_string("/run/paas/ip_forward.saved")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| read())
    };
    let env = Env::new("attack-forward", 0);
    assert_eq!(read(), "1", "on while the DEA runs");
    let tag = env.tag.clone();
    env.finish();
    // Other DEAs of this host (other tests, other checkouts) keep it on;
    // when none is left, it is back (a DEA stopping at this moment
    // removes its claim just before it restores: polled).
    let others = || {
        std::fs::read_dir("/run/paas/subnets")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter(|t| !t.starts_with(&tag))
                    .filter(|t| {
                        t.split_whitespace()
                            .nth(1)
                            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let seen = testkit::wait_for_blocking("ip_forward settled", Duration::from_secs(10), || {
        let (n, v) = (others(), read());
        ((n == 0 && v == before) || (n > 0 && v == "1")).then_some(n)
    })
    .expect("ip_forward restored when no DEA is left, on while one runs");
    println!("ip_forward before: {before}; other DEAs at the end: {seen}");
}
