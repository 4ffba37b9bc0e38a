//! The namespaces backend on this machine (needs root; skipped otherwise).

mod common;

use std::path::Path;
use std::time::Duration;

use dea::backend::namespaces::{self, NamespacesBackend, Settings};
use dea::backend::{Backend, ContainerSpec, ProcessSpec};
use tokio::io::AsyncReadExt;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0 && namespaces::available();
    if !ok {
        eprintln!("SKIPPED: the namespaces backend needs root, cgroups, ip and iptables");
    }
    ok
}

/// Removes the backend's host state even when a test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        NamespacesBackend::cleanup_tag(&self.0);
    }
}

fn settings(dir: &Path, pool: usize) -> Settings {
    common::ns_settings("crate-test", dir, pool, 64)
}

#[tokio::test]
async fn isolates_limits_and_cleans_up() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let s = settings(tmp.path(), 1);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    assert!(b.pool_filled(Duration::from_secs(10)).await, "pool fills");
    let c = b
        .create(ContainerSpec {
            id: "ctest1".into(),
            root: tmp.path().join("instances/ctest1"),
            memory_mb: 64,
            disk_mb: 64,
            egress: None,
        })
        .await
        .expect("create");
    std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    let (out, st) = common::run_in(&b,
        &c,
        "echo uid=$(id -u) host=$(hostname) pwd=$PWD home=$HOME; ls /proc | grep -E '^[0-9]+$' | wc -l; touch /usr/x 2>/dev/null && echo stack-writable; touch /home/vcap/ok && echo home-writable; test -e /root/. && echo root-visible; exit 3",
    )
    .await;
    println!("{out}");
    assert_eq!(st, 3, "{out}");
    assert!(out.contains("uid=10"), "{out}");
    assert!(out.contains("host=ctest1"), "{out}");
    assert!(
        out.contains("pwd=/home/vcap/app home=/home/vcap/app"),
        "{out}"
    );
    assert!(!out.contains("stack-writable"), "{out}");
    assert!(out.contains("home-writable"), "{out}");
    assert!(!out.contains("root-visible"), "{out}");
    // memory limit: python allocating past 64 MB is OOM-killed
    let (out, st) = common::run_in(
        &b,
        &c,
        "python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'",
    )
    .await;
    assert_eq!(st, 137, "{out}");
    assert_eq!(b.exit_reason(&c).as_deref(), Some("out of memory"));
    b.destroy(&c).await.expect("destroy");
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}

#[tokio::test]
async fn network_dnat_and_egress_filter() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let s = settings(tmp.path(), 0);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    let host_listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let host_port = host_listener.local_addr().expect("addr").port();
    let mk = |id: &str| ContainerSpec {
        id: id.into(),
        root: tmp.path().join(id),
        memory_mb: 128,
        disk_mb: 64,
        egress: None,
    };
    let c1 = b.create(mk("net1")).await.expect("create");
    let c2 = b.create(mk("net2")).await.expect("create");
    for c in [&c1, &c2] {
        std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    b.expose(&c1, port).await.expect("expose");
    let sp = b
        .spawn(
            &c1,
            ProcessSpec {
                script: "exec python3 -m http.server 8080".into(),
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                cwd: c1.root.join("app"),
            },
        )
        .await
        .expect("spawn");
    let wait = tokio::spawn(sp.wait);
    let mut so = sp.stdout.expect("stdout");
    let mut se = sp.stderr.expect("stderr");
    tokio::spawn(async move {
        let mut b = vec![0u8; 4096];
        while let Ok(n) = so.read(&mut b).await {
            if n == 0 {
                break;
            }
            print!("OUT {}", String::from_utf8_lossy(&b[..n]));
        }
    });
    tokio::spawn(async move {
        let mut b = vec![0u8; 4096];
        while let Ok(n) = se.read(&mut b).await {
            if n == 0 {
                break;
            }
            print!("ERR {}", String::from_utf8_lossy(&b[..n]));
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await;
        if matches!(r, Ok(Ok(_))) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "DNAT to the container never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ip1 = b.container_ip("net1").expect("ip");
    let gw = format!(
        "{}.1",
        ip1.to_string()
            .rsplit_once('.')
            .map(|x| x.0)
            .expect("prefix")
    );
    let script = format!(
        "for t in {ip1}:8080 {gw}:{host_port} 127.0.0.1:{host_port}; do timeout 2 bash -c \"echo > /dev/tcp/${{t%:*}}/${{t#*:}}\" 2>/dev/null && echo open $t || echo closed $t; done"
    );
    let (out, _) = common::run_in(&b, &c2, &script).await;
    println!("{out}");
    assert!(out.contains(&format!("closed {ip1}:8080")), "{out}");
    assert!(out.contains(&format!("closed {gw}:{host_port}")), "{out}");
    assert!(
        out.contains(&format!("closed 127.0.0.1:{host_port}")),
        "{out}"
    );
    b.stop(&c1, Duration::from_secs(2)).await.expect("stop");
    let exit = wait.await.expect("join").expect("wait");
    assert!(!exit.success());
    b.destroy(&c1).await.expect("destroy");
    b.destroy(&c2).await.expect("destroy");
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}

#[tokio::test]
async fn disk_quota_kills_and_pool_recycles() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let s = settings(tmp.path(), 1);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    assert!(b.pool_filled(Duration::from_secs(10)).await, "pool fills");
    let c = b
        .create(ContainerSpec {
            id: "disk1".into(),
            root: tmp.path().join("disk1"),
            memory_mb: 64,
            disk_mb: 2,
            egress: None,
        })
        .await
        .expect("create");
    assert_eq!(b.pool_len(), 0, "taken from the pool");
    std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    let (out, st) = tokio::time::timeout(
        Duration::from_secs(30),
        common::run_in(
            &b,
            &c,
            "head -c 8000000 /dev/zero > /home/vcap/big; exec sleep 60",
        ),
    )
    .await
    .expect("killed well before the sleep ends");
    assert_eq!(st, 137, "{out}");
    assert_eq!(b.exit_reason(&c).as_deref(), Some("disk quota exceeded"));
    b.destroy(&c).await.expect("destroy");
    assert!(!c.root.exists());
    // The pool is full again and nothing leaked: one slot, one netns.
    assert!(b.pool_filled(Duration::from_secs(10)).await);
    let netns: Vec<String> = NamespacesBackend::leftovers(&tag)
        .into_iter()
        .filter(|l| l.starts_with("netns "))
        .collect();
    assert_eq!(netns.len(), 1, "{netns:?}");
    let c2 = b
        .create(ContainerSpec {
            id: "disk2".into(),
            root: tmp.path().join("disk2"),
            memory_mb: 64,
            disk_mb: 64,
            egress: None,
        })
        .await
        .expect("create");
    std::fs::create_dir_all(c2.root.join("app")).expect("app dir");
    let (out, st) = common::run_in(&b, &c2, "ls -a /home/vcap; exit 0").await;
    assert_eq!(st, 0, "{out}");
    assert!(!out.contains("big"), "a fresh home: {out}");
    assert_eq!(b.exit_reason(&c2), None, "no stale OOM/disk verdict");
    b.destroy(&c2).await.expect("destroy");
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}
