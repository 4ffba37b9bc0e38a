//! The namespaces backend on this machine (needs root; skipped otherwise).

mod common;

use std::path::Path;
use std::time::Duration;

use dea::backend::namespaces::{self, NamespacesBackend, Settings};
use dea::backend::{Backend, ContainerSpec, ProcessSpec};
use tokio::io::AsyncReadExt;

fn root() -> bool {
    testkit::require_root(
        "namespaces backend tests",
        &[("cgroups, ip and iptables", namespaces::available())],
    )
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
        "echo uid=$(id -u) user=$(id -un) host=$(hostname); echo map=$(cat /proc/self/uid_map); echo gmap=$(cat /proc/self/gid_map); echo usr-owner=$(stat -c %u /usr/bin/env); echo caps=$(grep CapEff /proc/self/status | tr -d '\t'); echo pwd=$PWD home=$HOME; ls /proc | grep -E '^[0-9]+$' | wc -l; touch /usr/x 2>/dev/null && echo stack-writable; touch /home/vcap/ok && echo home-writable; test -e /root/. && echo root-visible; echo reopened-stdout >/dev/stdout; exit 3",
    )
    .await;
    println!("{out}");
    assert_eq!(st, 3, "{out}");
    // A user namespace of its own: `vcap` (2000) inside is the slot's
    // host uid, root inside is the unprivileged "maximus" uid, and the
    // host's files (owned by the unmapped host root) show as nobody's.
    let host_uid = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(c.root.join("ok")).expect("the file it made"),
    );
    assert!((10_002..10_255).contains(&host_uid), "host uid {host_uid}");
    assert!(out.contains("uid=2000 user=vcap "), "{out}");
    assert!(
        out.contains(&format!("map= 0 4294967294 1 2000 {host_uid} 1")),
        "{out}"
    );
    assert!(
        out.contains(&format!("gmap= 0 4294967294 1 2000 {host_uid} 1")),
        "{out}"
    );
    assert!(out.contains("usr-owner=65534"), "{out}");
    assert!(out.contains("caps=CapEff:0000000000000000"), "{out}");
    assert!(out.contains("host=ctest1"), "{out}");
    assert!(
        out.contains("pwd=/home/vcap/app home=/home/vcap/app"),
        "{out}"
    );
    assert!(!out.contains("stack-writable"), "{out}");
    assert!(out.contains("home-writable"), "{out}");
    assert!(!out.contains("root-visible"), "{out}");
    assert!(
        out.contains("reopened-stdout"),
        "the output pipe is the process's own: {out}"
    );
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
    testkit::wait_port(port, true, Duration::from_secs(10))
        .await
        .expect("DNAT to the container answers");
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
    // The bridge's address never changes as containers come and go (it
    // did, and containers then talked to a gateway address gone stale:
    // the 5-10 s stalls of some pushes).
    let k = ip1.octets()[2];
    let mac = || {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/address",
            namespaces::net::bridge_name(&tag)
        ))
        .expect("bridge address")
        .trim()
        .to_string()
    };
    assert_eq!(mac(), namespaces::net::bridge_mac(&tag, k));
    b.destroy(&c1).await.expect("destroy");
    b.destroy(&c2).await.expect("destroy");
    for i in 0..3 {
        let c = b.create(mk(&format!("churn{i}"))).await.expect("create");
        b.destroy(&c).await.expect("destroy");
    }
    assert_eq!(mac(), namespaces::net::bridge_mac(&tag, k));
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}

/// A disk limit makes writes fail (ENOSPC) and the instance lives on, as on
/// Garden: the container's directory is a volume of its own, bound from a
/// ready one (the pool's slot and volume are both taken). A directory laid
/// out before its container (a staging's) keeps the disk watch: over its
/// limit the whole container is killed. The pool refills and nothing leaks.
#[tokio::test]
async fn disk_limit_fails_writes_and_pool_recycles() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let s = settings(tmp.path(), 1);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    assert!(b.pool_filled(Duration::from_secs(10)).await, "pool fills");
    let spec = |id: &str, disk_mb| ContainerSpec {
        id: id.into(),
        root: tmp.path().join(id),
        memory_mb: 64,
        disk_mb,
        egress: None,
    };
    // The first create of a size makes its volume; the ones after bind a
    // ready one.
    let first = b.create(spec("disk0", 4)).await.expect("create");
    b.destroy(&first).await.expect("destroy");
    assert!(b.pool_filled(Duration::from_secs(10)).await, "pool refills");
    let c = b.create(spec("disk1", 4)).await.expect("create");
    assert_eq!(b.pool_len(), 0, "taken from the pool");
    std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    let (out, st) = tokio::time::timeout(
        Duration::from_secs(30),
        common::run_in(
            &b,
            &c,
            "head -c 8000000 /dev/zero > /home/vcap/big; echo \"write exit $?\"; head -c 1000000 /dev/zero >> /home/vcap/big 2>/dev/null || echo full; exit 0",
        ),
    )
    .await
    .expect("the process ends by itself");
    assert_eq!(st, 0, "{out}");
    assert!(out.contains("No space left on device"), "ENOSPC: {out}");
    assert!(
        out.contains("write exit 1") && out.contains("full"),
        "{out}"
    );
    let written = std::fs::metadata(c.root.join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        written > 0 && written <= 4 * 1024 * 1024,
        "cut at the limit: {written}"
    );
    assert_eq!(b.exit_reason(&c), None, "not killed");
    b.destroy(&c).await.expect("destroy");
    // The volume is detached in the background (the pool waits for it).
    assert!(b.pool_filled(Duration::from_secs(10)).await, "pool refills");
    assert!(!c.root.exists());
    assert!(
        !NamespacesBackend::leftovers(&tag)
            .iter()
            .any(|l| l.contains("disk1")),
        "its volume is gone"
    );

    // Laid out before the container: the disk watch kills it.
    let laid = tmp.path().join("laid");
    std::fs::create_dir_all(laid.join("app")).expect("laid out");
    let w = b
        .create(ContainerSpec {
            root: laid,
            ..spec("laid", 2)
        })
        .await
        .expect("create");
    let (out, st) = tokio::time::timeout(
        Duration::from_secs(30),
        common::run_in(
            &b,
            &w,
            "head -c 8000000 /dev/zero > /home/vcap/big; exec sleep 60",
        ),
    )
    .await
    .expect("killed well before the sleep ends");
    assert_eq!(st, 137, "{out}");
    assert_eq!(b.exit_reason(&w).as_deref(), Some("disk quota exceeded"));
    b.destroy(&w).await.expect("destroy");
    assert!(!w.root.exists());
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

/// A connection attempt from inside: `open T` or `closed T`.
fn probe_script(targets: &[String]) -> String {
    let mut s = String::new();
    for t in targets {
        let (h, p) = t.rsplit_once(':').unwrap_or((t, "0"));
        s += &format!(
            "timeout 3 bash -c 'echo > /dev/tcp/{h}/{p}' 2>/dev/null && echo open {t} || echo closed {t}\n"
        );
    }
    s
}

/// Egress follows the container's security group rules: by default public
/// addresses and the host's resolvers (names resolve), nothing private;
/// a rule opens one private destination for that container only, and
/// rules change on a live container.
#[tokio::test]
async fn egress_follows_security_group_rules() {
    if !root() {
        return;
    }
    let private = integration::netns::PrivateHost::start().expect("private host");
    let tmp = tempfile::tempdir().expect("tmp");
    let s = common::ns_settings("egress-test", tmp.path(), 0, 64);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    let resolv = std::fs::read_to_string(tmp.path().join("stack-etc/resolv.conf")).expect("resolv");
    let resolvers = proto::egress::nameservers(&resolv);
    let mut defaults = proto::egress::public_networks();
    defaults.extend(proto::egress::dns(&resolvers));
    let mut opened = defaults.clone();
    opened.push(proto::EgressRule::new(
        "tcp",
        &private.ip.to_string(),
        Some(&private.port.to_string()),
    ));
    let mk = |id: &str, egress: Option<Vec<proto::EgressRule>>| ContainerSpec {
        id: id.into(),
        root: tmp.path().join(id),
        memory_mb: 128,
        disk_mb: 64,
        egress,
    };
    let plain = b.create(mk("eg1", None)).await.expect("create");
    let allowed = b
        .create(mk("eg2", Some(opened.clone())))
        .await
        .expect("create");
    for c in [&plain, &allowed] {
        std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    }
    // A public address this machine reaches (its package index).
    let public = std::net::ToSocketAddrs::to_socket_addrs(&("pypi.org", 443))
        .ok()
        .and_then(|mut a| a.find(|a| a.is_ipv4()))
        .map(|a| a.to_string())
        .expect("pypi.org resolves on the host");
    let targets = vec![public.clone(), private.addr()];
    let script = format!(
        "getent hosts pypi.org >/dev/null && echo resolves || echo no-dns\n{}",
        probe_script(&targets)
    );
    let (out, _) = common::run_in(&b, &plain, &script).await;
    println!("default rules:\n{out}");
    assert!(
        out.contains("resolves"),
        "DNS at the host's resolvers: {out}"
    );
    assert!(out.contains(&format!("open {public}")), "{out}");
    assert!(out.contains(&format!("closed {}", private.addr())), "{out}");
    let (out, _) = common::run_in(&b, &allowed, &script).await;
    println!("with the rule:\n{out}");
    assert!(out.contains(&format!("open {}", private.addr())), "{out}");
    assert!(out.contains(&format!("open {public}")), "{out}");
    // Rules change on a live container, both ways.
    b.set_egress(&plain, &opened).await.expect("set");
    let (out, _) = common::run_in(&b, &plain, &probe_script(&[private.addr()])).await;
    assert!(out.contains(&format!("open {}", private.addr())), "{out}");
    b.set_egress(&allowed, &defaults).await.expect("set");
    let (out, _) = common::run_in(&b, &allowed, &probe_script(&[private.addr()])).await;
    assert!(out.contains(&format!("closed {}", private.addr())), "{out}");
    // No rules at all: nothing leaves.
    b.set_egress(&allowed, &[]).await.expect("set");
    let (out, _) = common::run_in(&b, &allowed, &script).await;
    assert!(
        out.contains("no-dns") && out.contains(&format!("closed {public}")),
        "{out}"
    );
    for c in [&plain, &allowed] {
        b.destroy(c).await.expect("destroy");
    }
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}

/// What a container writes cannot lead the host anywhere: its `tmp`
/// swapped for a link to `/` gives the next process a fresh empty `/tmp`
/// (not the host's root), and a hard link to a host file cannot be made.
#[tokio::test]
async fn a_container_cannot_reach_the_host_through_its_own_files() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let s = common::ns_settings("escape-test", tmp.path(), 0, 64);
    let tag = s.tag.clone();
    let _guard = Cleanup(tag.clone());
    let b = NamespacesBackend::new(s).expect("backend");
    let secret = tmp.path().join("host-secret.txt");
    std::fs::write(&secret, "host secret").expect("write");
    let c = b
        .create(ContainerSpec {
            id: "esc1".into(),
            root: tmp.path().join("esc1"),
            memory_mb: 128,
            disk_mb: 64,
            egress: None,
        })
        .await
        .expect("create");
    std::fs::create_dir_all(c.root.join("app")).expect("app dir");
    std::fs::write(c.root.join("app/laid-out-by-the-dea"), "x").expect("write");
    let (out, st) = common::run_in(
        &b,
        &c,
        "stat -c %u /home/vcap/app/laid-out-by-the-dea; rm -rf /home/vcap/tmp && ln -s / /home/vcap/tmp && echo swapped; ln /etc/passwd /home/vcap/app/p 2>&1; ln /usr/bin/bash /home/vcap/app/b 2>&1; true",
    )
    .await;
    println!("{out}");
    assert_eq!(st, 0, "{out}");
    // `vcap` in the container's user namespace, the slot's uid on the host.
    assert!(
        out.starts_with("2000\n"),
        "what the DEA laid out is the container user's: {out}"
    );
    let host_uid = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(c.root.join("app/laid-out-by-the-dea")).expect("md"),
    );
    assert!((10_002..10_255).contains(&host_uid), "{host_uid}");
    assert!(out.contains("swapped"), "{out}");
    assert_eq!(
        out.matches("Invalid cross-device link").count(),
        2,
        "hard links to host files are refused: {out}"
    );
    assert!(!c.root.join("app/p").exists() && !c.root.join("app/b").exists());
    let probe = format!(
        "ls -A /tmp | wc -l; test -e /tmp{} && echo ESCAPED; test -e /tmp/proc/1 && echo ESCAPED-PROC; true",
        secret.display()
    );
    let (out, _) = common::run_in(&b, &c, &probe).await;
    println!("{out}");
    assert!(
        !out.contains("ESCAPED"),
        "the host's root reached the container: {out}"
    );
    assert_eq!(
        out.lines().next().map(str::trim),
        Some("0"),
        "a fresh empty /tmp: {out}"
    );
    let md = std::fs::symlink_metadata(c.root.join("tmp")).expect("tmp");
    assert!(md.is_dir() && !md.file_type().is_symlink());
    b.destroy(&c).await.expect("destroy");
    assert!(secret.exists(), "the host file is untouched");
    b.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}
