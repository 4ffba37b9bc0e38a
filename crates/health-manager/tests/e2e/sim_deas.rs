//! The health manager against three simulated DEAs (`dea::sim::SimDea`:
//! the real agent's heartbeats, instances simulated, no root). The test
//! plays the controller: it serves desired state and a droplet, and turns
//! each `health.start` into `dea.<id>.start` requests. The HM brings the
//! app to three running instances, and back to three when a DEA dies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Json;
use dea::sim::SimDea;
use proto::desired::{DesiredApp, DesiredPage};
use proto::{subjects, Bus, FindDropletRequest, FindDropletResponse, HealthStart, StartRequest};

fn droplet() -> Vec<u8> {
    let mut tgz = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tgz, flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        let body = b"print(1)\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, "app/app.py", &body[..]).expect("tar");
        t.into_inner().expect("tar").finish().expect("gz");
    }
    tgz
}

async fn running(bus: &Bus) -> BTreeMap<u32, String> {
    let found: Vec<FindDropletResponse> = bus
        .request_many(
            subjects::DEA_FIND_DROPLET,
            &FindDropletRequest {
                app_id: "a".into(),
                ..Default::default()
            },
            Duration::from_millis(500),
            None,
        )
        .await
        .unwrap_or_default();
    found
        .into_iter()
        .filter(|f| f.state == proto::InstanceState::Running)
        .map(|f| (f.index, f.dea_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_three_instances_over_sim_deas_and_heals_a_lost_one() {
    let nats = testkit::NatsServer::start().expect("nats-server");
    let tgz = Arc::new(droplet());
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(tgz.as_slice()))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cc_addr = listener.local_addr().expect("addr");
    let served = tgz.clone();
    tokio::spawn(async move {
        let app = axum::Router::new()
            .route(
                "/internal/v1/desired",
                get(|| async {
                    Json(DesiredPage {
                        apps: vec![DesiredApp {
                            app_id: "a".into(),
                            name: "a".into(),
                            version: "v1".into(),
                            instances: 3,
                            state: "STARTED".into(),
                            updated_at: "2020-01-01T00:00:00Z".into(),
                            log_guid: None,
                        }],
                        next_token: None,
                    })
                }),
            )
            .route(
                "/droplet",
                get(move || {
                    let d = served.clone();
                    async move { d.as_slice().to_vec() }
                }),
            );
        let _ = axum::serve(listener, app).await;
    });

    let mut deas = Vec::new();
    for i in 0..3 {
        deas.push(
            SimDea::start(&nats.url, &format!("sim-{i}"), &format!("z{i}"))
                .await
                .expect("sim dea"),
        );
    }
    let ids: Vec<String> = deas.iter().map(|d| d.id.clone()).collect();

    // The controller's part: each health.start becomes starts on the DEAs
    // still alive (round robin).
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut starts = bus
        .subscribe::<HealthStart>(subjects::HEALTH_START)
        .await
        .expect("sub");
    let alive = Arc::new(std::sync::Mutex::new(ids.clone()));
    let (cc_bus, cc_alive) = (bus.clone(), alive.clone());
    let droplet_uri = format!("http://{cc_addr}/droplet");
    let controller = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(m) = starts.next().await {
            for index in m.payload.indices {
                let target = {
                    let a = cc_alive.lock().expect("lock");
                    n += 1;
                    a[n % a.len()].clone()
                };
                let req = StartRequest {
                    app_id: "a".into(),
                    app_name: "a".into(),
                    version: "v1".into(),
                    index,
                    droplet_uri: droplet_uri.clone(),
                    droplet_sha256: sha.clone(),
                    uris: vec![],
                    env: vec![],
                    limits: Default::default(),
                    health_check: Default::default(),
                    start_command: "python3 app.py".into(),
                    stack: "cflinuxfs4".into(),
                    vcap_application: serde_json::json!({}),
                    placement_id: None,
                    egress: None,
                    process_type: None,
                    log_guid: None,
                    task_name: None,
                    readiness: None,
                    log_rate_limit_bytes_per_s: None,
                    vcap_services: None,
                };
                let _ = cc_bus.publish(subjects::dea_start(&target), &req).await;
            }
        }
    });
    bus.flush().await.expect("flush");

    let (stop_tx, hm, _hm_dir) = super::start_hm(&nats.url, cc_addr, 1.0).await;

    let three = testkit::wait_for("three running instances", Duration::from_secs(30), || {
        let bus = bus.clone();
        async move {
            let r = running(&bus).await;
            (r.len() == 3).then_some(r)
        }
    })
    .await
    .expect("converged");
    // The DEA with an instance of index 0 vanishes (no goodbye).
    let victim = three[&0].clone();
    alive.lock().expect("lock").retain(|id| *id != victim);
    let pos = deas.iter().position(|d| d.id == victim).expect("victim");
    deas.remove(pos).kill();

    let healed = testkit::wait_for("three running again", Duration::from_secs(45), || {
        let (bus, victim) = (bus.clone(), victim.clone());
        async move {
            let r = running(&bus).await;
            (r.len() == 3 && r.values().all(|d| *d != victim)).then_some(r)
        }
    })
    .await
    .expect("healed");
    assert_eq!(healed.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);

    controller.abort();
    for d in deas {
        d.stop().await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), hm).await;
}
