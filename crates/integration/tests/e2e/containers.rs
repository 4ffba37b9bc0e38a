//! Issue 3 (containers): the namespaces backend seen from inside an app and
//! from the host: isolation, limits (memory → "out of memory", pids), and no
//! leftovers after stop, delete, DEA shutdown and DEA crash + restart.
//! Needs root (real namespaces, cgroups, iptables); skipped otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use integration::{fixture, process_alive, wait_for, Platform, PlatformOptions, APPS_DOMAIN};

const T: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    testkit::require_root("container tests", &[])
}

fn opts(dea_config: &str) -> PlatformOptions {
    PlatformOptions {
        dea_config: format!("backend = \"namespaces\"\n{dea_config}"),
        ..PlatformOptions::default()
    }
}

fn tag(p: &Platform) -> Result<String> {
    let f = p.root().join("dea0/namespaces.tag");
    Ok(std::fs::read_to_string(&f)
        .with_context(|| format!("{}", f.display()))?
        .trim()
        .to_string())
}

async fn push_probe(p: &Platform, name: &str, extra: &[&str]) -> Result<()> {
    let dir = fixture("probeapp");
    let mut args = vec!["push", name, "-p", dir.to_str().unwrap_or_default()];
    args.extend_from_slice(extra);
    p.cf_ok(&args).await?;
    Ok(())
}

async fn get_json(p: &Platform, app: &str, path: &str) -> Result<serde_json::Value> {
    let (st, body) = p
        .get_via_router(&format!("{app}.{APPS_DOMAIN}"), path)
        .await?;
    anyhow::ensure!(st == 200, "{path}: {st} {body}");
    serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))
}

fn cgroup_dirs(tag: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    let mut parents = vec![root.join(format!("paas-{tag}"))];
    if let Ok(rd) = std::fs::read_dir(root) {
        parents.extend(rd.flatten().map(|e| e.path().join(format!("paas-{tag}"))));
    }
    for p in parents {
        if p.is_dir() {
            v.push(p.clone());
            if let Ok(rd) = std::fs::read_dir(&p) {
                v.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// What the DEA with `tag` (state under `root`) holds on the host.
#[derive(Debug, Default)]
struct HostObjects {
    netns: Vec<String>,
    veths: Vec<String>,
    bridge: bool,
    /// Per-container cgroups (`paas-<tag>/c<n>` under any controller).
    container_cgroups: Vec<PathBuf>,
    parent_cgroups: Vec<PathBuf>,
    chains: Vec<String>,
    dnat_rules: Vec<String>,
    mounts: Vec<String>,
    /// Disk volumes made ready for the pool (`<state>/disks/paas-disk-*`).
    ready_volumes: Vec<String>,
}

fn iptables_lines(table: &str) -> Vec<String> {
    std::process::Command::new("iptables")
        .args(["-w", "-t", table, "-S"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn host_objects(tag: &str, root: &Path) -> HostObjects {
    let mut h = HostObjects::default();
    let names = |dir: &str, prefix: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    h.netns = names("/run/netns", &format!("paas-{tag}-"));
    h.veths = names("/sys/class/net", &format!("pv{tag}"));
    h.bridge = Path::new("/sys/class/net")
        .join(format!("pb{tag}"))
        .exists();
    for d in cgroup_dirs(tag) {
        if d.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("paas-"))
        {
            h.parent_cgroups.push(d);
        } else {
            h.container_cgroups.push(d);
        }
    }
    let needle = format!("PAAS-{tag}-");
    for table in ["filter", "nat"] {
        for l in iptables_lines(table) {
            if l.contains(&needle) {
                if l.contains("-j DNAT") {
                    h.dnat_rules.push(l.clone());
                }
                h.chains.push(l);
            }
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let r = root.display().to_string();
    let (ready, mounts): (Vec<String>, Vec<String>) = mountinfo
        .lines()
        .filter(|l| l.contains(&format!("paas-{tag}")) || l.contains(&r))
        .map(String::from)
        .partition(|l| l.contains(&format!("/disks/paas-disk-{tag}-")));
    h.mounts = mounts;
    h.ready_volumes = ready;
    h
}

/// Host objects left once no instance runs: only the warm pool's slots.
fn only_pool(h: &HostObjects, pool: usize) -> bool {
    h.netns.len() == pool
        && h.veths.len() == pool
        && h.dnat_rules.is_empty()
        // the pool's network namespaces are bind mounts under /run/netns
        && h.mounts.iter().filter(|m| !m.contains(" /run/netns/")).count() == 0
        && h.mounts.len() == pool
        // and its ready disk volumes (instances' volumes are gone)
        && h.ready_volumes.len() == pool
        // one group per slot (under each controller root)
        && h
            .container_cgroups
            .iter()
            .filter_map(|d| d.file_name())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == pool
}

fn nothing_left(h: &HostObjects) -> bool {
    h.netns.is_empty()
        && h.veths.is_empty()
        && !h.bridge
        && h.container_cgroups.is_empty()
        && h.parent_cgroups.is_empty()
        && h.chains.is_empty()
        && h.mounts.is_empty()
        && h.ready_volumes.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_seen_from_inside_an_app_and_no_leftovers() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let mut p = Platform::start_with(opts("warm_pool_size = 1\n")).await?;
    p.login().await?;
    let tag = tag(&p)?;
    push_probe(&p, "probe", &["-i", "2"]).await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "probe").await?;
    p.wait_running(&token, &guid, 2, T).await?;

    // Two instances: learn both addresses.
    let mut ips = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + T;
    while ips.len() < 2 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "two instances answering"
        );
        if let Ok(v) = get_json(&p, "probe", "/checks").await {
            if let Some(ip) = v["ip"].as_str() {
                ips.insert(ip.to_string());
            }
        }
    }
    let ips: Vec<String> = ips.into_iter().collect();
    let gateway = format!(
        "{}.1",
        ips[0].rsplit_once('.').map(|(a, _)| a).unwrap_or_default()
    );
    // A listener on every host address: reachable from a container only if
    // the firewall let it through.
    let host_listener = std::net::TcpListener::bind("0.0.0.0:0")?;
    let hport = host_listener.local_addr()?.port();
    let nats_port = p
        .nats_url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let cc_port = p.cc_addr.port();
    let db = p.root().join("cc/cc.db");
    let instances_dir = p.root().join("dea0/instances");
    let targets = [
        format!("127.0.0.1:{nats_port}"),
        format!("{gateway}:{nats_port}"),
        format!("127.0.0.1:{cc_port}"),
        format!("{gateway}:{cc_port}"),
        // The controller's internal listener (issue 13).
        format!("127.0.0.1:{}", p.cc_internal_addr.port()),
        format!("{gateway}:{}", p.cc_internal_addr.port()),
        // The host's Postgres, on loopback and on the host's address.
        "127.0.0.1:5432".to_string(),
        format!("{gateway}:5432"),
        format!("{gateway}:{hport}"),
    ];
    let paths = [
        db.display().to_string(),
        instances_dir.display().to_string(),
        "/root".to_string(),
        p.root().display().to_string(),
    ];
    // Ask the instance at ips[1] to reach ips[0]:8080 (the other container).
    let q = format!(
        "/checks?connect={},{}:8080&paths={}",
        targets.join(","),
        ips[0],
        paths.join(",")
    );
    let v = wait_for("the second instance answering", T, || async {
        let v = get_json(&p, "probe", &q).await.ok()?;
        (v["ip"] == ips[1].as_str()).then_some(v)
    })
    .await?;
    println!("{v:#}");
    // `vcap` (2000) in a user namespace of its own, whose root is the
    // unprivileged "maximus" uid and whose `vcap` is the slot's host uid.
    assert_eq!(v["uid"], 2000, "vcap: {v}");
    assert_eq!(v["gid"], 2000, "vcap: {v}");
    assert_eq!(v["home_owner"], 2000, "the app's files are its own: {v}");
    let map = v["uid_map"].as_array().context("uid_map")?;
    assert_eq!(map.len(), 2, "{v}");
    assert_eq!(map[0], serde_json::json!(["0", "4294967294", "1"]), "{v}");
    let host_uid: u64 = map[1][1].as_str().unwrap_or("").parse()?;
    assert_eq!(map[1][0], "2000", "{v}");
    assert!(
        (10_002..10_255).contains(&host_uid),
        "an unprivileged host uid of its slot: {v}"
    );
    assert_eq!(v["cap_eff"], "0000000000000000", "no capabilities: {v}");
    assert_eq!(v["no_new_privs"], "1", "{v}");
    assert_eq!(v["port"], "8080", "{v}");
    assert_eq!(v["stack_writable"], false, "read-only stack: {v}");
    assert_eq!(v["home_writable"], true, "{v}");
    // ps: only the container's own processes (init, the app, maybe bash).
    let pids = v["pids"].as_array().context("pids")?;
    assert!(pids.len() <= 3, "only the container's processes: {v}");
    assert_eq!(pids[0], 1, "{v}");
    assert!(
        v["cmdlines"]["1"]
            .as_str()
            .is_some_and(|c| c.contains("container-init")),
        "PID 1 is container-init: {v}"
    );
    for path in &paths {
        assert_eq!(v["visible"][path], false, "{path} must not be visible: {v}");
    }
    for t in targets.iter().chain([&format!("{}:8080", ips[0])]) {
        assert_eq!(v["connect"][t], false, "{t} must be unreachable: {v}");
    }
    drop(host_listener);

    // Stop → only the warm pool remains; delete likewise.
    p.cf_ok(&["stop", "probe"]).await?;
    let root = p.root().to_path_buf();
    wait_for("only the warm pool after stop", T, || async {
        only_pool(&host_objects(&tag, &root), 1).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", host_objects(&tag, &root)))?;
    p.cf_ok(&["start", "probe"]).await?;
    p.wait_running(&token, &guid, 2, T).await?;
    p.cf_ok(&["delete", "probe", "-f", "-r"]).await?;
    wait_for("only the warm pool after delete", T, || async {
        only_pool(&host_objects(&tag, &root), 1).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", host_objects(&tag, &root)))?;

    // DEA shutdown: nothing named with its tag remains.
    p.deas[0].terminate(Duration::from_secs(20));
    let h = host_objects(&tag, &root);
    assert!(nothing_left(&h), "leftovers after DEA shutdown: {h:?}");
    Ok(())
}

/// Past the disk limit writes fail and the instance lives on; past the
/// memory limit it is killed (`out of memory`) and restarted; a fork bomb
/// stops at the pids limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_and_memory_limits_and_fork_bomb() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let p = Platform::start_with(opts("warm_pool_size = 0\npids_limit = 48\n")).await?;
    p.login().await?;
    let tag = tag(&p)?;
    push_probe(&p, "hog", &["-m", "64M", "-k", "100M"]).await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "hog").await?;
    p.wait_running(&token, &guid, 1, T).await?;
    let bus = p.bus_as("test").await?;
    let mut exited = bus
        .subscribe::<proto::DropletExited>(proto::subjects::DROPLET_EXITED)
        .await?;
    let before = integration::procs::app_instance_pids(&guid);
    // Past the disk limit: the write fails (ENOSPC) and the instance lives
    // on (the first exit below must be the OOM's); the space comes back.
    let w = get_json(&p, "hog", "/write?mb=300").await?;
    assert_eq!(w["error"], "No space left on device", "{w}");
    let written = w["written_mb"].as_u64().unwrap_or(0);
    assert!((1..100).contains(&written), "cut at the 100M limit: {w}");
    let w = get_json(&p, "hog", "/write?mb=20").await?;
    assert_eq!(w["error"], serde_json::Value::Null, "space freed: {w}");
    assert_eq!(
        integration::procs::app_instance_pids(&guid),
        before,
        "not restarted"
    );
    // Past the quota: killed, reported as out of memory, restarted.
    let _ = get_json(&p, "hog", "/alloc?mb=200").await;
    let msg = tokio::time::timeout(T, async {
        while let Some(m) = exited.next().await {
            if m.payload.app_id == guid {
                return Some(m.payload);
            }
        }
        None
    })
    .await?
    .context("droplet.exited")?;
    assert_eq!(msg.exit_description, "out of memory", "{msg:?}");
    wait_for("the health manager restarting the instance", T, || async {
        let now = integration::procs::app_instance_pids(&guid);
        let s = p.stats(&token, &guid).await.ok()?;
        (s.iter().filter(|r| r["state"] == "RUNNING").count() == 1
            && !now.is_empty()
            && now != before)
            .then_some(())
    })
    .await?;
    p.wait_route_status(&format!("hog.{APPS_DOMAIN}"), 200, T)
        .await?;

    // A fork bomb stops at the pids limit; the DEA keeps answering.
    let _ = get_json(&p, "hog", "/forkbomb").await;
    let hit = wait_for("the fork bomb hitting pids.max", T, || async {
        cgroup_dirs(&tag).into_iter().find_map(|d| {
            let max: u64 = std::fs::read_to_string(d.join("pids.max"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let cur: u64 = std::fs::read_to_string(d.join("pids.current"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (cur >= max).then_some((cur, max))
        })
    })
    .await?;
    assert_eq!(hit.1, 48, "pids limit from the config: {hit:?}");
    let started = std::time::Instant::now();
    let s = p.stats(&token, &guid).await?;
    assert!(!s.is_empty(), "the DEA answers stats while the bomb runs");
    assert!(started.elapsed() < Duration::from_secs(10));
    p.cf_ok(&["delete", "hog", "-f", "-r"]).await?;
    let root = p.root().to_path_buf();
    wait_for(
        "nothing but the DEA's bridge and chains after delete",
        T,
        || async { only_pool(&host_objects(&tag, &root), 0).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", host_objects(&tag, &root)))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dea_crash_leftovers_removed_on_restart() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let mut p = Platform::start_with(opts("warm_pool_size = 2\n")).await?;
    p.login().await?;
    let tag = tag(&p)?;
    push_probe(&p, "crashy", &[]).await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "crashy").await?;
    p.wait_running(&token, &guid, 1, T).await?;
    let old = integration::procs::app_instance_pids(&guid);
    assert_eq!(old.len(), 1, "{old:?}");
    let root = p.root().to_path_buf();
    p.deas[0].kill9();
    // The instance dies with its DEA (parent-death signal on its PID 1)...
    wait_for("the old instance process gone", T, || async {
        (!process_alive(old[0].1)).then_some(())
    })
    .await?;
    // ...but the crashed DEA left cgroups, network and rules behind...
    let h = host_objects(&tag, &root);
    assert!(
        !h.netns.is_empty() && h.bridge && !h.dnat_rules.is_empty(),
        "{h:?}"
    );
    // Mark each of them (namespace inode numbers are reused by the kernel,
    // so a new namespace may carry an old one's number): a link that
    // only the old namespaces have (a veth pair: every kernel has veth).
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for n in &h.netns {
        assert!(
            ip(&[
                "-n",
                n,
                "link",
                "add",
                "paasmark0",
                "type",
                "veth",
                "peer",
                "name",
                "paasmark1"
            ]),
            "cannot mark {n}"
        );
    }
    let marked = |h: &HostObjects| -> Vec<String> {
        h.netns
            .iter()
            .filter(|n| ip(&["-n", n, "link", "show", "paasmark0"]))
            .cloned()
            .collect()
    };
    let old_dnat = h.dnat_rules.clone();
    // ...which the restarted DEA (same id and state dir) removes.
    p.deas[0].start()?;
    wait_for(
        "the previous run's namespaces and rules removed",
        T,
        || async {
            let h = host_objects(&tag, &root);
            (marked(&h).is_empty() && old_dnat.iter().all(|r| !h.dnat_rules.contains(r)))
                .then_some(())
        },
    )
    .await
    .map_err(|e| {
        let h = host_objects(&tag, &root);
        anyhow::anyhow!(
            "{e}: old DNAT {old_dnat:?}, still marked {:?}, now {h:?}",
            marked(&h)
        )
    })?;
    p.wait_running(&token, &guid, 1, T).await?;
    p.cf_ok(&["delete", "crashy", "-f", "-r"]).await?;
    wait_for("only the warm pool after delete", T, || async {
        only_pool(&host_objects(&tag, &root), 2).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", host_objects(&tag, &root)))?;
    p.deas[0].terminate(Duration::from_secs(20));
    let h = host_objects(&tag, &root);
    assert!(nothing_left(&h), "leftovers after DEA shutdown: {h:?}");
    Ok(())
}

/// Security groups from the user's side: with CF's defaults an app resolves
/// names and reaches a public address, but not a private one; a group bound
/// to one space (`cf create-security-group`, `cf bind-security-group`)
/// opens that destination for the running apps of that space at once, and
/// for no other space; unbound, it closes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_open_a_destination_for_one_space() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let private = integration::netns::PrivateHost::start()?;
    let p = Platform::start_with(opts("")).await?;
    p.login().await?;
    let out = p.cf_ok(&["security-groups"]).await?.stdout;
    assert!(
        out.contains("public_networks") && out.contains("dns"),
        "CF's default groups: {out}"
    );
    push_probe(&p, "inside", &[]).await?;
    p.cf_ok(&["create-space", "elsewhere"]).await?;
    p.cf_ok(&["target", "-o", "dev", "-s", "elsewhere"]).await?;
    push_probe(&p, "outside", &[]).await?;
    p.cf_ok(&["target", "-o", "dev", "-s", "dev"]).await?;
    let public = std::net::ToSocketAddrs::to_socket_addrs(&("pypi.org", 443))
        .ok()
        .and_then(|mut a| a.find(|a| a.is_ipv4()))
        .map(|a| a.to_string())
        .context("pypi.org resolves on this host")?;
    let q = format!(
        "/checks?resolve=pypi.org&connect={public},{}",
        private.addr()
    );
    for app in ["inside", "outside"] {
        let v = get_json(&p, app, &q).await?;
        println!("{app}: {v:#}");
        assert!(
            v["resolve"]["pypi.org"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{app} resolves names: {v}"
        );
        assert_eq!(
            v["connect"][&public], true,
            "{app} reaches a public address: {v}"
        );
        assert_eq!(
            v["connect"][&private.addr()],
            false,
            "{app}: private is closed: {v}"
        );
    }

    let work = tempfile::tempdir()?;
    let rules = work.path().join("rules.json");
    std::fs::write(
        &rules,
        format!(
            r#"[{{"protocol": "tcp", "destination": "{}", "ports": "{}", "description": "the database"}}]"#,
            private.ip, private.port
        ),
    )?;
    p.cf_ok(&[
        "create-security-group",
        "db",
        rules.to_str().unwrap_or_default(),
    ])
    .await?;
    let out = p
        .cf_ok(&["bind-security-group", "db", "dev", "--space", "dev"])
        .await?;
    assert!(
        out.stdout
            .contains("Assigning running security group db to space dev"),
        "{}",
        out.stdout
    );
    // Running apps get the rule without a restart; the other space does not.
    let target = private.addr();
    wait_for("the bound space reaching the database", T, || async {
        let v = get_json(&p, "inside", &format!("/checks?connect={target}"))
            .await
            .ok()?;
        (v["connect"][&target] == true).then_some(())
    })
    .await?;
    let v = get_json(&p, "outside", &format!("/checks?connect={target}")).await?;
    assert_eq!(v["connect"][&target], false, "only the bound space: {v}");
    let out = p.cf_ok(&["security-groups"]).await?.stdout;
    assert!(
        out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w == ["db", "dev", "dev", "running"]
        }),
        "{out}"
    );
    p.cf_ok(&["unbind-security-group", "db", "dev", "dev"])
        .await?;
    wait_for("the database closed again", T, || async {
        let v = get_json(&p, "inside", &format!("/checks?connect={target}"))
            .await
            .ok()?;
        (v["connect"][&target] == false).then_some(())
    })
    .await?;
    Ok(())
}
