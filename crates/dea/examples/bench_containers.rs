//! Container benchmark (docs/containers.md): create, start (`exec true`)
//! and destroy of a namespaces container, median and p99 over N runs,
//! without and with the warm pool (and `true` through bash from the pool;
//! and, with and without the pool, the fallback without a user namespace),
//! next to `unshare --fork --pid --mount --net --uts --ipc true` measured in
//! the same run, round-robin (the time the caller waits: a destroy's network
//! teardown and the pool's refill run in the background and are let finish
//! between runs); then density: D containers running `sleep`, the memory
//! this process (standing in for the DEA) and the container inits add per
//! instance.
//!
//! Run as root: `scripts/bench-containers.sh` (release build), or
//! `cargo run --release -p dea --example bench_containers -- [N] [D]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dea::backend::namespaces::{self, NamespacesBackend, Settings};
use dea::backend::{Backend, ContainerSpec, ProcessSpec};

fn dea_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/examples/bench_containers → target/<profile>/dea
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("dea"))
        .unwrap_or_default()
}

fn settings(dir: &Path, pool: usize, user_namespaces: bool) -> Settings {
    Settings {
        tag: namespaces::tag_for(&format!("bench-{pool}-{user_namespaces}"), dir),
        state_dir: dir.to_path_buf(),
        init_exe: dea_binary(),
        warm_pool_size: pool,
        pids_limit: 64,
        user_namespaces,
        egress_allow: vec![],
        host_services: None,
        host_ip: "127.0.0.1".into(),
        ro_paths: vec![],
    }
}

/// A backend in `<tmp>/<name>`: its directory, tag and itself.
fn backend(
    tmp: &Path,
    name: &str,
    pool: usize,
    user_namespaces: bool,
) -> (PathBuf, String, NamespacesBackend) {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let s = settings(&dir, pool, user_namespaces);
    let tag = s.tag.clone();
    (dir, tag, NamespacesBackend::new(s).expect("backend"))
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let med = ms(v[v.len() / 2]);
    let p99 = ms(v[((v.len() as f64 * 0.99).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]);
    (med, p99)
}

/// The process: `exec true` runs `true` directly (no shell syntax, so no
/// bash), as `unshare ... true` does.
const TRUE: &str = "exec true";

fn spec(dir: &Path, i: usize) -> ContainerSpec {
    ContainerSpec {
        id: format!("b{i}"),
        root: dir.join(format!("c{i}")),
        memory_mb: 64,
        disk_mb: 64,
        egress: None,
    }
}

fn proc_spec(c: &dea::backend::Container, script: &str) -> ProcessSpec {
    ProcessSpec {
        script: script.into(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: c.root.clone(),
    }
}

/// create + spawn `script` + wait + destroy: total and the four phases.
async fn one(b: &NamespacesBackend, dir: &Path, i: usize, script: &str) -> [Duration; 5] {
    let t = Instant::now();
    let c = b.create(spec(dir, i)).await.expect("create");
    let t1 = Instant::now();
    let sp = b.spawn(&c, proc_spec(&c, script)).await.expect("spawn");
    let t2 = Instant::now();
    drop((sp.stdout, sp.stderr));
    let exit = sp.wait.await.expect("wait");
    assert!(exit.success(), "{exit:?}");
    let t3 = Instant::now();
    b.destroy(&c).await.expect("destroy");
    let t4 = Instant::now();
    [t4 - t, t1 - t, t2 - t1, t3 - t2, t4 - t3]
}

/// Median and p99 of the totals, medians of the phases.
fn report(name: &str, runs: &[[Duration; 5]], peer_median: f64) -> (f64, f64) {
    let col = |k: usize| runs.iter().map(|r| r[k]).collect::<Vec<_>>();
    let (m, p) = stats(col(0));
    let ph: Vec<String> = ["create", "spawn", "run+exit", "destroy"]
        .iter()
        .enumerate()
        .map(|(k, n)| format!("{n} {:.2}", stats(col(k + 1)).0))
        .collect();
    println!(
        "  {name:<51} median {m:7.2}  p99 {p:7.2}  ({:.1}x unshare; phase medians: {})",
        m / peer_median,
        ph.join(", ")
    );
    (m, p)
}

fn kb(field: &str, pid: u32, file: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100);
    let density = args.get(1).copied().unwrap_or(200);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !namespaces::available() {
        eprintln!("bench-containers needs root, cgroups, ip and iptables");
        std::process::exit(2);
    }
    if !dea_binary().is_file() {
        eprintln!(
            "{} missing: cargo build --release -p dea",
            dea_binary().display()
        );
        std::process::exit(2);
    }
    let tmp = tempfile::tempdir().expect("tmp");

    let (dir0, tag0, b0) = backend(tmp.path(), "nopool", 0, true);
    let (dir1, tag1, b1) = backend(tmp.path(), "pool", 4, true);
    // The fallback, without a user namespace (`user_namespaces = false`).
    let (dir2, tag2, b2) = backend(tmp.path(), "nouserns", 0, false);
    let (dir3, tag3, b3) = backend(tmp.path(), "pool-nouserns", 4, false);

    // Round-robin, so that the peer and each variant see the same load (on
    // a shared machine it changes during a run). Before each timed run, not
    // timed: the previous runs' background teardown and the pool's refill
    // (a steady state where the pool has a ready slot and nothing competes
    // for the CPU).
    let settle = || async {
        b0.pool_filled(Duration::from_secs(30)).await;
        b1.pool_filled(Duration::from_secs(30)).await;
        b3.pool_filled(Duration::from_secs(30)).await;
    };
    let (mut peer, mut cold, mut cold_plain, mut warm, mut warm_plain, mut warm_bash) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for i in 0..n {
        // Peer: unshare(1) with the same namespaces (minus cgroups, network
        // set-up, mounts and the uid switch).
        settle().await;
        let t = Instant::now();
        let st = std::process::Command::new("unshare")
            .args([
                "--fork", "--pid", "--mount", "--net", "--uts", "--ipc", "true",
            ])
            .status()
            .expect("unshare");
        assert!(st.success());
        peer.push(t.elapsed());
        settle().await;
        cold.push(one(&b0, &dir0, i, TRUE).await);
        settle().await;
        cold_plain.push(one(&b2, &dir2, i, TRUE).await);
        settle().await;
        // The first start after the no-pool runs is slower (their
        // background teardown leaves the caches cold): alternate which of
        // the two pooled variants goes first.
        if i % 2 == 0 {
            warm.push(one(&b1, &dir1, i, TRUE).await);
            settle().await;
            warm_plain.push(one(&b3, &dir3, i, TRUE).await);
        } else {
            warm_plain.push(one(&b3, &dir3, i, TRUE).await);
            settle().await;
            warm.push(one(&b1, &dir1, i, TRUE).await);
        }
        settle().await;
        warm_bash.push(one(&b1, &dir1, n + i, "true").await);
    }
    b0.kill_all();
    drop(b0);
    b2.kill_all();
    drop(b2);
    b3.kill_all();
    drop(b3);
    let (pm, pp) = stats(peer);
    println!("container create+start+destroy over {n} runs (ms):");
    println!(
        "  unshare --fork --pid --mount --net --uts --ipc true  median {pm:7.2}  p99 {pp:7.2}"
    );
    let (cm, _) = report("namespaces backend, no pool", &cold, pm);
    let (fm, _) = report("no pool, no user namespace (fallback)", &cold_plain, pm);
    println!(
        "  user namespace vs none, no pool: {:+.2} ms ({:.2}x)",
        cm - fm,
        cm / fm
    );
    let (wm, _) = report("namespaces backend, warm pool", &warm, pm);
    let (wfm, _) = report("warm pool, no user namespace (fallback)", &warm_plain, pm);
    println!(
        "  user namespace vs none, warm pool: {:+.2} ms ({:.2}x)",
        wm - wfm,
        wm / wfm
    );
    report(
        "warm pool, `true` through bash (shell syntax)",
        &warm_bash,
        pm,
    );

    // Density: D containers running `sleep`; what the platform adds per
    // instance: this process's growth (bookkeeping, pipes) and each
    // container-init (PID 1) process.
    let me = std::process::id();
    let rss0 = kb("VmRSS:", me, "status");
    let mut live = Vec::new();
    let t = Instant::now();
    for i in 0..density {
        let c = b1.create(spec(&dir1, 10_000 + i)).await.expect("create");
        let sp = b1
            .spawn(&c, proc_spec(&c, "exec sleep 600"))
            .await
            .expect("spawn");
        live.push((c, sp));
    }
    let started = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = kb("VmRSS:", me, "status");
    let (mut init_rss, mut init_pss, mut app_rss) = (0, 0, 0);
    for (_, sp) in &live {
        let pid = sp.pid.unwrap_or(0);
        init_rss += kb("Rss:", pid, "smaps_rollup");
        init_pss += kb("Pss:", pid, "smaps_rollup");
        let kids =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for k in kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
        {
            app_rss += kb("Rss:", k, "smaps_rollup");
        }
    }
    let d = density.max(1) as f64;
    println!(
        "density: {density} containers running `sleep` started in {:.2}s",
        started.as_secs_f64()
    );
    println!(
        "  bench process (the DEA's backend) RSS {} KB -> {} KB: {:.1} KB per instance",
        rss0,
        rss1,
        (rss1 as f64 - rss0 as f64) / d
    );
    println!(
        "  container-init per instance: RSS {:.0} KB, PSS {:.0} KB (shared pages split)",
        init_rss as f64 / d,
        init_pss as f64 / d
    );
    println!(
        "  the app itself (sleep) per instance: RSS {:.0} KB",
        app_rss as f64 / d
    );
    println!(
        "  platform overhead per instance (init PSS + bookkeeping): {:.0} KB",
        init_pss as f64 / d + (rss1 as f64 - rss0 as f64) / d
    );
    for (c, _) in &live {
        let _ = b1.destroy(c).await;
    }
    b1.kill_all();
    NamespacesBackend::cleanup_tag(&tag0);
    NamespacesBackend::cleanup_tag(&tag1);
    NamespacesBackend::cleanup_tag(&tag2);
    NamespacesBackend::cleanup_tag(&tag3);
}
