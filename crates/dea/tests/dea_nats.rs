//! The whole DEA against a real nats-server: advertise, staging request,
//! start → RUNNING → router.register, find.droplet, crash reporting, stop,
//! and shutdown (instances stopped, `dea.shutdown`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proto::{
    subjects, Bus, DeaAdvertise, DropletExited, FindDropletRequest, FindDropletResponse,
    RouteRegistration,
};
use tokio::time::Instant;

mod common;
use common::{blob_server, http_get, zip_dir, APP_PY};

/// Hands a build to a DEA as a controller does: the DEA answers at once,
/// then offers the result on `staging.finished` until it is recorded.
async fn stage_over_bus(
    bus: &Bus,
    dea_id: &str,
    req: proto::StagingRequest,
) -> proto::StagingResult {
    let mut finished = bus
        .subscribe::<proto::StagingResult>(subjects::STAGING_FINISHED)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");
    let accepted: proto::StagingAccepted = bus
        .request(
            subjects::staging_start(dea_id),
            &req,
            Duration::from_secs(10),
        )
        .await
        .expect("accepted");
    assert_eq!(
        (
            accepted.staging_id.as_str(),
            accepted.dea_id.as_str(),
            &accepted.error
        ),
        (req.staging_id.as_str(), dea_id, &None)
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = tokio::time::timeout_at(deadline, finished.next())
            .await
            .expect("staging finished in time")
            .expect("subscription");
        if m.payload.staging_id != req.staging_id {
            continue;
        }
        let reply = m.reply.expect("a request");
        bus.reply(
            &reply,
            &proto::StagingRecorded {
                staging_id: req.staging_id.clone(),
            },
        )
        .await
        .expect("reply");
        return m.payload;
    }
}

/// A DEA process that must not outlive a failed test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn next_matching<T: serde::de::DeserializeOwned>(
    sub: &mut proto::bus::Subscription<T>,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) if pred(&m.payload) => return m.payload,
            Ok(Some(_)) => {}
            _ => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dea_over_nats() {
    let nats = testkit::NatsServer::start().expect("nats-server");
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, blobs) = blob_server().await;
    blobs.lock().expect("lock").insert(
        "/package/p1".into(),
        zip_dir(&[("app.py", APP_PY), ("requirements.txt", "")]),
    );

    let bus = Bus::connect(&nats.url, "test").await.expect("connect");
    let mut adverts = bus
        .subscribe::<DeaAdvertise>(subjects::DEA_ADVERTISE)
        .await
        .expect("sub");
    let mut registers = bus
        .subscribe::<RouteRegistration>(subjects::ROUTER_REGISTER)
        .await
        .expect("sub");
    let mut unregisters = bus
        .subscribe::<RouteRegistration>(subjects::ROUTER_UNREGISTER)
        .await
        .expect("sub");
    let mut exits = bus
        .subscribe::<DropletExited>(subjects::DROPLET_EXITED)
        .await
        .expect("sub");
    let mut shutdowns = bus
        .subscribe::<proto::DeaShutdown>(subjects::DEA_SHUTDOWN)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");

    let cfg = dea::Config {
        id: "dea-nats".into(),
        nats_url: nats.url.clone(),
        state_dir: tmp.path().join("state"),
        heartbeat_interval_s: 1,
        advertise_interval_s: 1,
        stop_grace_s: 2,
        addr_file: Some(tmp.path().join("ready")),
        // `auto`: the process backend when not root.
        allow_unisolated_process_backend: true,
        // Droplets from this test's own server.
        allow_any_blob_url: true,
        ..dea::Config::default()
    };
    // A leftover from a "previous run" must be cleaned.
    std::fs::create_dir_all(tmp.path().join("state/instances/old")).expect("mkdir");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dea_task = tokio::spawn(dea::run(cfg, async move {
        let _ = stop_rx.await;
    }));

    let ad = next_matching(&mut adverts, "advertise", |a| a.id == "dea-nats").await;
    // Sized from the host by default (less 1 GB for the system).
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| dea::config::mem_total_mb(&m))
        .expect("meminfo");
    assert_eq!(ad.available_memory_mb, total.saturating_sub(1024).max(1024));
    testkit::wait_file(&tmp.path().join("ready"), Duration::from_secs(10))
        .await
        .expect("ready file");
    assert!(!tmp.path().join("state/instances/old").exists());

    // Staging.
    let req = proto::StagingRequest {
        app_id: "app-n".into(),
        cache_download_uri: None,
        cache_upload_uri: None,
        timeout_s: 60,
        ..common::staging_request(&base, "p1")
    };
    // A build larger than the DEA's free room is refused at once, saying so.
    let too_big = proto::StagingRequest {
        staging_id: "huge".into(),
        memory_mb: total * 4,
        ..req.clone()
    };
    let refused: proto::StagingAccepted = bus
        .request(
            subjects::staging_start("dea-nats"),
            &too_big,
            Duration::from_secs(10),
        )
        .await
        .expect("answered");
    let e = refused.error.expect("refused");
    assert_eq!(e.id, proto::StagingErrorId::InsufficientResources, "{e}");
    assert!(e.message.contains("the DEA dea-nats has"), "{e}");
    let resp = stage_over_bus(&bus, "dea-nats", req).await;
    assert_eq!(resp.error, None);
    let sha = resp.droplet_sha256.expect("sha");

    // Start two instances: one healthy, one that exits at once.
    let start = |index: u32, cmd: &str| {
        serde_json::json!({
            "app_id": "app-n", "app_name": "web", "version": "v1", "index": index,
            "droplet_uri": format!("{base}/droplet/p1"), "droplet_sha256": sha,
            "uris": ["web.localhost"], "limits": {"memory_mb": 256, "disk_mb": 512, "fds": 100},
            "health_check": {"type": "port", "timeout_s": 20},
            "start_command": cmd, "stack": "host"
        })
    };
    bus.publish(subjects::dea_start("dea-nats"), &start(0, ""))
        .await
        .expect("pub");
    bus.publish(
        subjects::dea_start("dea-nats"),
        &start(1, "echo bye; exit 3"),
    )
    .await
    .expect("pub");
    let reg = next_matching(&mut registers, "register", |r| {
        r.app_id.as_deref() == Some("app-n")
    })
    .await;
    assert_eq!(reg.uris, vec!["web.localhost".to_string()]);
    let body = http_get(reg.port).await.expect("http");
    assert!(body.ends_with("hello from index 0"), "{body}");
    let crash = next_matching(&mut exits, "crash", |e| e.index == 1).await;
    assert_eq!(crash.reason, proto::ExitReason::Crashed);
    assert_eq!(crash.exit_description, "exited with status 3");

    let found: Vec<FindDropletResponse> = bus
        .request_many(
            subjects::DEA_FIND_DROPLET,
            &FindDropletRequest {
                app_id: "app-n".into(),
                include_stats: true,
                ..Default::default()
            },
            Duration::from_secs(2),
            Some(2),
        )
        .await
        .expect("find");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].state, proto::InstanceState::Running);
    assert!(found[0].stats.is_some());
    assert_eq!(found[1].state, proto::InstanceState::Crashed);
    let none: Vec<FindDropletResponse> = bus
        .request_many(
            subjects::DEA_FIND_DROPLET,
            &FindDropletRequest {
                app_id: "nope".into(),
                ..Default::default()
            },
            Duration::from_millis(300),
            None,
        )
        .await
        .expect("find");
    assert!(none.is_empty());

    // Stop index 0.
    bus.publish(
        subjects::DEA_STOP,
        &proto::StopRequest {
            app_id: "app-n".into(),
            indices: Some(vec![0]),
            ..Default::default()
        },
    )
    .await
    .expect("pub");
    let un = next_matching(&mut unregisters, "unregister", |r| r.port == reg.port).await;
    assert_eq!(un.uris, reg.uris);
    let stopped = next_matching(&mut exits, "stopped", |e| e.index == 0).await;
    assert_eq!(stopped.reason, proto::ExitReason::Stopped);
    assert!(http_get(reg.port).await.is_none());

    // Start again, then shut the DEA down: the instance goes with it.
    bus.publish(subjects::dea_start("dea-nats"), &start(2, ""))
        .await
        .expect("pub");
    let reg2 = next_matching(&mut registers, "register 2", |r| {
        r.app_id.as_deref() == Some("app-n")
    })
    .await;
    assert!(http_get(reg2.port).await.is_some());
    let _ = stop_tx.send(());
    let sd = next_matching(&mut shutdowns, "shutdown", |s| s.id == "dea-nats").await;
    assert_eq!(sd.app_id_to_count.get("app-n"), Some(&1));
    tokio::time::timeout(Duration::from_secs(20), dea_task)
        .await
        .expect("dea exits")
        .expect("join")
        .expect("run ok");
    assert!(
        http_get(reg2.port).await.is_none(),
        "instance survived the DEA"
    );
}

/// The `dea` binary: SIGKILLed, its instances die with it (PDEATHSIG);
/// SIGTERMed, it stops them and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_instances_die_with_the_dea() {
    let nats = testkit::NatsServer::start().expect("nats-server");
    let tmp = tempfile::tempdir().expect("tmp");
    let (base, blobs) = blob_server().await;
    blobs.lock().expect("lock").insert(
        "/package/p".into(),
        zip_dir(&[("app.py", APP_PY), ("requirements.txt", "")]),
    );
    let bus = Bus::connect(&nats.url, "test").await.expect("connect");
    let mut registers = bus
        .subscribe::<RouteRegistration>(subjects::ROUTER_REGISTER)
        .await
        .expect("sub");
    let mut shutdowns = bus
        .subscribe::<proto::DeaShutdown>(subjects::DEA_SHUTDOWN)
        .await
        .expect("sub");
    bus.flush().await.expect("flush");

    for (round, signal) in [(0, libc::SIGKILL), (1, libc::SIGTERM)] {
        let id = format!("dea-bin-{round}");
        let conf = tmp.path().join(format!("dea{round}.toml"));
        let ready = tmp.path().join(format!("ready{round}"));
        std::fs::write(
            &conf,
            format!(
                "id = \"{id}\"\nstate_dir = \"{}\"\naddr_file = \"{}\"\nallow_any_blob_url = true\n",
                tmp.path().join(format!("state{round}")).display(),
                ready.display()
            ),
        )
        .expect("write");
        let mut child = KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_dea"))
                .args(["--config", &conf.display().to_string()])
                .env("NATS_URL", &nats.url)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dea"),
        );
        testkit::wait_file(&ready, Duration::from_secs(20))
            .await
            .expect("dea ready");
        let req = proto::StagingRequest {
            staging_id: format!("s{round}"),
            app_id: "app-b".into(),
            stack: "host".into(),
            buildpacks: vec![],
            env: vec![],
            memory_mb: 256,
            disk_mb: 1024,
            package_uri: format!("{base}/package/p"),
            droplet_upload_uri: format!("{base}/droplet/{round}"),
            cache_download_uri: None,
            cache_upload_uri: None,
            start_command: None,
            admin_buildpacks: vec![],
            timeout_s: 60,
            egress: None,
            vcap_services: None,
        };
        let resp = stage_over_bus(&bus, &id, req).await;
        assert_eq!(resp.error, None);
        let start = serde_json::json!({
            "app_id": "app-b", "app_name": "web", "version": "v1", "index": 0,
            "droplet_uri": format!("{base}/droplet/{round}"), "droplet_sha256": resp.droplet_sha256,
            "uris": ["b.localhost"], "limits": {"memory_mb": 256, "disk_mb": 512, "fds": 100},
            "health_check": {"type": "port", "timeout_s": 20},
            "start_command": "", "stack": "host"
        });
        bus.publish(subjects::dea_start(&id), &start)
            .await
            .expect("pub");
        let reg = next_matching(&mut registers, "register", |r| {
            r.app_id.as_deref() == Some("app-b")
        })
        .await;
        assert!(http_get(reg.port).await.is_some());
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.0.id() as i32, signal);
        }
        let status = tokio::task::spawn_blocking(move || child.0.wait())
            .await
            .expect("join")
            .expect("wait");
        if signal == libc::SIGTERM {
            assert!(status.success(), "{status:?}");
            let sd = next_matching(&mut shutdowns, "shutdown", |s| s.id == id).await;
            assert_eq!(sd.app_id_to_count.get("app-b"), Some(&1));
        }
        testkit::wait_for(
            &format!("the instance to die with the DEA ({signal})"),
            Duration::from_secs(10),
            || async { http_get(reg.port).await.is_none().then_some(()) },
        )
        .await
        .expect("instance outlived the DEA");
    }
}
