//! End to end over a real nats-server: `run()` with a fake DEA that stages
//! (downloading the package and uploading a droplet through signed URLs),
//! receives starts/stops, answers `dea.find.droplet`, crashes and logs.

use std::time::Duration;

use proto::{
    subjects, Bus, DeaAdvertise, DropletExited, ExitReason, FindDropletRequest,
    FindDropletResponse, HealthStart, InstanceState, InstanceStats, LogMessage, LogSource,
    LogStream, RouteRegistration, StagingRequest, StartRequest, StopRequest,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::support::{eventually, multipart, zip_bytes, Nats};

mod services;

const WAIT: Duration = Duration::from_secs(15);

/// Minimal HTTP/1.1 client (Connection: close).
async fn http(
    addr: &str,
    method: &str,
    url_or_path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, body, _) = http_with_location(addr, method, url_or_path, headers, body).await;
    (status, body)
}

/// [`http`], with the answer's `Location` header (`""` when none).
async fn http_with_location(
    addr: &str,
    method: &str,
    url_or_path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>, String) {
    // A full URL (a signed blob URL) names its own listener.
    let (addr, path) = match url_or_path.strip_prefix("http://") {
        Some(rest) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => (addr, url_or_path),
    };
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.sys.localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head_raw = String::from_utf8_lossy(&raw[..split]).to_string();
    let location = head_raw
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let head = head_raw.to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16)
                .expect("hex");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, body, location)
}

struct Client {
    addr: String,
    token: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, raw) = http(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )
        .await;
        (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
    }
}

impl Client {
    /// Admin's password grant.
    async fn login(addr: &str) -> Client {
        let (status, raw) = http(
            addr,
            "POST",
            "/oauth/token",
            &[
                ("Authorization", "Basic Y2Y6"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"grant_type=password&username=admin&password=admin",
        )
        .await;
        assert_eq!(status, 200);
        let token: Value = serde_json::from_slice(&raw).expect("json");
        Client {
            addr: addr.to_string(),
            token: token["access_token"].as_str().expect("token").into(),
        }
    }

    /// Uploads `bits` (a zip) to package `pg`.
    async fn upload(&self, pg: &str, bits: &[u8]) {
        let (ct, body) = multipart("bits", bits);
        let auth = format!("bearer {}", self.token);
        let (status, _) = http(
            &self.addr,
            "POST",
            &format!("/v3/packages/{pg}/upload"),
            &[("Authorization", &auth), ("Content-Type", &ct)],
            &body,
        )
        .await;
        assert_eq!(status, 200);
    }

    /// Stages package `pg` of app `g` and makes the droplet current; its guid.
    async fn stage_current(&self, g: &str, pg: &str) -> String {
        let build = eventually("build STAGED", WAIT, || async {
            let (status, b) = self
                .call("POST", "/v3/builds", Some(json!({"package": {"guid": pg}})))
                .await;
            assert_eq!(status, 201);
            let bg = b["guid"].as_str().expect("build").to_string();
            let done = eventually("build done", WAIT, || async {
                let (_, b) = self.call("GET", &format!("/v3/builds/{bg}"), None).await;
                (b["state"] != "STAGING").then_some(b)
            })
            .await;
            // The first build may race the first advert; retry then.
            (done["state"] == "STAGED").then_some(done)
        })
        .await;
        let dg = build["droplet"]["guid"]
            .as_str()
            .expect("droplet")
            .to_string();
        let (status, _) = self
            .call(
                "PATCH",
                &format!("/v3/apps/{g}/relationships/current_droplet"),
                Some(json!({"data": {"guid": dg}})),
            )
            .await;
        assert_eq!(status, 200);
        dg
    }

    /// POST of a YAML manifest to the space's `apply_manifest`.
    async fn apply_manifest(&self, space: &str, yaml: &str) -> (u16, Value) {
        let auth = format!("bearer {}", self.token);
        let (status, raw) = http(
            &self.addr,
            "POST",
            &format!("/v3/spaces/{space}/actions/apply_manifest"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-yaml"),
            ],
            yaml.as_bytes(),
        )
        .await;
        (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
    }

    /// A new app `name` in the first space with a bits package; their guids
    /// and the space's.
    async fn app_with_package(&self, name: &str, env: Value) -> (String, String, String) {
        let (_, spaces) = self.call("GET", "/v3/spaces", None).await;
        let space = spaces["resources"][0]["guid"]
            .as_str()
            .expect("space")
            .to_string();
        let (status, app) = self.call("POST", "/v3/apps", Some(json!({"name": name, "relationships": {"space": {"data": {"guid": space}}}, "environment_variables": env}))).await;
        assert_eq!(status, 201, "{app}");
        let g = app["guid"].as_str().expect("app").to_string();
        let (_, pkg) = self
            .call(
                "POST",
                "/v3/packages",
                Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": g}}}})),
            )
            .await;
        let pg = pkg["guid"].as_str().expect("pkg").to_string();
        (space, g, pg)
    }
}

/// Instance `index` (`i<index>`) of `app_id` at `version` crashed with
/// status 1.
fn crashed(app_id: &str, version: &str, index: u32) -> DropletExited {
    DropletExited {
        app_id: app_id.to_string(),
        version: version.to_string(),
        index,
        instance_id: format!("i{index}"),
        reason: ExitReason::Crashed,
        exit_status: Some(1),
        exit_description: "app exited".into(),
        crash_timestamp: 1.0,
    }
}

/// The controller in-process on port 0 over the bus at `nats_url`: its
/// address, its stop switch, its task and its data dir (which holds
/// [`INTERNAL_ADDR`], the internal API's address).
const INTERNAL_ADDR: &str = "cc-internal.addr";

async fn start_controller(
    nats_url: &str,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), cloud_controller::RunError>>,
    tempfile::TempDir,
) {
    start_controller_on(nats_url, None).await
}

/// [`start_controller`] on the database `database_url` (default: SQLite
/// in its data dir).
async fn start_controller_on(
    nats_url: &str,
    database_url: Option<String>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), cloud_controller::RunError>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr_file = dir.path().join("cc.addr");
    let cfg = cloud_controller::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        addr_file: Some(addr_file.clone()),
        internal_listen: "127.0.0.1:0".parse().expect("addr"),
        internal_addr_file: Some(dir.path().join(INTERNAL_ADDR)),
        internal_api_token: "dev-internal-token".into(),
        nats_url: nats_url.to_string(),
        data_dir: dir.path().join("data"),
        broker_poll_interval_s: 1,
        database_url,
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cloud_controller::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    let addr = eventually("addr file", WAIT, || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .map(|s| s.trim().to_string())
    })
    .await;
    (addr, stop_tx, server, dir)
}

enum DeaEvent {
    Start(Box<StartRequest>),
    Stop(StopRequest),
}

/// A fake DEA: advertises, stages, records starts and stops.
async fn fake_dea(bus: Bus, cc_addr: String, events: mpsc::UnboundedSender<DeaEvent>) {
    let mut staging = bus
        .subscribe::<StagingRequest>(subjects::staging_start("dea1"))
        .await
        .expect("sub");
    let mut starts = bus
        .subscribe::<StartRequest>(subjects::dea_start("dea1"))
        .await
        .expect("sub");
    let mut stops = bus
        .subscribe::<StopRequest>(subjects::DEA_STOP)
        .await
        .expect("sub");
    let mut finds = bus
        .subscribe::<FindDropletRequest>(subjects::DEA_FIND_DROPLET)
        .await
        .expect("sub");
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let ad = DeaAdvertise { id: "dea1".into(), stacks: vec!["host".into()], available_memory_mb: 8192, available_disk_mb: 16384, app_id_to_count: Default::default(), zone: "default".into(), url: None, placements: vec![], memory_capacity_mb: 8192, disk_capacity_mb: 16384 };
                let _ = bus.publish(subjects::DEA_ADVERTISE, &ad).await;
            }
            Some(m) = staging.next() => {
                let req = m.payload;
                // Staging is long-running work: accepted at once, the
                // result reported on `staging.finished` later.
                let accepted = proto::StagingAccepted { staging_id: req.staging_id.clone(), dea_id: "dea1".into(), error: None };
                let _ = bus.reply(m.reply.as_deref().expect("reply inbox"), &accepted).await;
                let (status, pkg) = http(&cc_addr, "GET", &req.package_uri, &[], &[]).await;
                assert_eq!(status, 200, "package download");
                assert!(pkg.starts_with(b"PK"), "package is the zip");
                let (status, _) = http(&cc_addr, "GET", req.cache_download_uri.as_deref().expect("cache uri"), &[], &[]).await;
                assert_eq!(status, 404, "no cache yet");
                let droplet = fake_droplet();
                let (status, _) = http(&cc_addr, "PUT", &req.droplet_upload_uri, &[], &droplet).await;
                assert_eq!(status, 201, "droplet upload");
                let result = proto::StagingResult {
                    staging_id: req.staging_id.clone(),
                    dea_id: "dea1".into(),
                    buildpacks: vec![proto::BuildpackUsed { name: "python".into(), detect_output: Some("python".into()) }],
                    start_command: Some("python3 app.py".into()),
                    droplet_sha256: Some(hex::encode(Sha256::digest(&droplet))),
                    config_vars: Default::default(),
                    error: None,
                };
                let recorded: proto::StagingRecorded = bus
                    .request(subjects::STAGING_FINISHED, &result, Duration::from_secs(5))
                    .await
                    .expect("result recorded");
                assert_eq!(recorded.staging_id, req.staging_id);
            }
            Some(m) = starts.next() => { let _ = events.send(DeaEvent::Start(Box::new(m.payload))); }
            Some(m) = stops.next() => { let _ = events.send(DeaEvent::Stop(m.payload)); }
            Some(m) = finds.next() => {
                let r = FindDropletResponse {
                    dea_id: "dea1".into(), app_id: m.payload.app_id, version: "v".into(), instance_id: "i0".into(), index: 0,
                    state: InstanceState::Running, since: 1.0, host: "127.0.0.1".into(), port: 61001,
                    stats: Some(InstanceStats { cpu: 0.5, mem: 1024, disk: 2048, uptime: 7 }),
                    ready: true,
                };
                let _ = bus.reply(m.reply.as_deref().expect("reply inbox"), &r).await;
            }
        }
    }
}

async fn next_start(rx: &mut mpsc::UnboundedReceiver<DeaEvent>) -> StartRequest {
    loop {
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a start request")
            .expect("channel")
        {
            DeaEvent::Start(s) => return *s,
            DeaEvent::Stop(_) => continue,
        }
    }
}

async fn next_stop(rx: &mut mpsc::UnboundedReceiver<DeaEvent>) -> StopRequest {
    loop {
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a stop request")
            .expect("channel")
        {
            DeaEvent::Stop(s) => return s,
            DeaEvent::Start(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stage_start_scale_stop_over_nats() {
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "fake-dea").await.expect("bus");
    let mut registrations = bus
        .subscribe::<RouteRegistration>(subjects::ROUTER_REGISTER)
        .await
        .expect("sub");
    let (addr, stop_tx, server, dir) = start_controller(&nats.url).await;

    // The controller announces its own route.
    let reg = tokio::time::timeout(WAIT, registrations.next())
        .await
        .expect("registration")
        .expect("sub");
    assert_eq!(reg.payload.uris, vec!["api.sys.localhost"]);
    assert_eq!(format!("{}:{}", reg.payload.host, reg.payload.port), addr);
    assert_eq!(
        reg.payload.tags.get("component").map(String::as_str),
        Some("CloudController")
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let dea = tokio::spawn(fake_dea(bus.clone(), addr.clone(), tx));

    // Login.
    let c = Client::login(&addr).await;

    // Push: app, package, bits, build.
    let (space, g, pg) = c.app_with_package("e2e", json!({"GREETING": "hi"})).await;
    c.upload(&pg, &zip_bytes(&[("app.py", "print(1)")])).await;
    let dg = c.stage_current(&g, &pg).await;
    let (_, droplet) = c.call("GET", &format!("/v3/droplets/{dg}"), None).await;
    assert_eq!(droplet["process_types"]["web"], "python3 app.py");
    assert_eq!(droplet["buildpacks"][0]["name"], "python");
    assert_eq!(droplet["state"], "STAGED");

    // Route, then start.
    let (_, domains) = c.call("GET", "/v3/domains?names=localhost", None).await;
    let domain = domains["resources"][0]["guid"]
        .as_str()
        .expect("domain")
        .to_string();
    let (_, route) = c.call("POST", "/v3/routes", Some(json!({"host": "e2e", "relationships": {"domain": {"data": {"guid": domain}}, "space": {"data": {"guid": space}}}}))).await;
    let rg = route["guid"].as_str().expect("route").to_string();
    c.call(
        "POST",
        &format!("/v3/routes/{rg}/destinations"),
        Some(json!({"destinations": [{"app": {"guid": g}}]})),
    )
    .await;
    let (status, started) = c
        .call("POST", &format!("/v3/apps/{g}/actions/start"), None)
        .await;
    assert_eq!((status, started["state"].as_str()), (200, Some("STARTED")));
    let s0 = next_start(&mut rx).await;
    assert_eq!(
        (s0.app_id.as_str(), s0.index, s0.uris.clone()),
        (g.as_str(), 0, vec!["e2e.localhost".to_string()])
    );
    assert_eq!(s0.start_command, "python3 app.py");
    assert_eq!(s0.env, vec!["GREETING=hi"]);
    assert_eq!(s0.vcap_application["application_name"], "e2e");
    assert_eq!(s0.vcap_application["space_name"], "dev");
    let (status, bytes) = http(&addr, "GET", &s0.droplet_uri, &[], &[]).await;
    assert_eq!((status, bytes), (200, fake_droplet()));
    assert_eq!(
        s0.droplet_sha256,
        hex::encode(Sha256::digest(fake_droplet()))
    );

    // Desired state for the HM.
    let internal = std::fs::read_to_string(dir.path().join(INTERNAL_ADDR)).expect("internal addr");
    let (status, raw) = http(
        internal.trim(),
        "GET",
        "/internal/v1/desired",
        &[("Authorization", "Bearer dev-internal-token")],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let desired: proto::desired::DesiredPage = serde_json::from_slice(&raw).expect("desired");
    assert_eq!(desired.apps.len(), 1);
    assert_eq!(
        (
            desired.apps[0].version.as_str(),
            desired.apps[0].instances,
            desired.apps[0].state.as_str()
        ),
        (s0.version.as_str(), 1, "STARTED")
    );

    // Stats from dea.find.droplet.
    let (_, stats) = c
        .call("GET", &format!("/v3/apps/{g}/processes/web/stats"), None)
        .await;
    assert_eq!(stats["resources"][0]["state"], "RUNNING");
    assert_eq!(
        stats["resources"][0]["instance_ports"][0]["external"],
        61001
    );
    assert_eq!(stats["resources"][0]["mem_quota"], 1024u64 * 1024 * 1024);

    // Scale up: only index 1 starts, version kept.
    let (status, _) = c
        .call(
            "POST",
            &format!("/v3/apps/{g}/processes/web/actions/scale"),
            Some(json!({"instances": 2})),
        )
        .await;
    assert_eq!(status, 202);
    let s1 = next_start(&mut rx).await;
    assert_eq!((s1.index, s1.version.as_str()), (1, s0.version.as_str()));

    // Health requests: a stale one is ignored, a valid one acted on.
    bus.publish(
        subjects::HEALTH_START,
        &HealthStart {
            app_id: g.clone(),
            version: "old".into(),
            indices: vec![1],
            reason: "missing".into(),
        },
    )
    .await
    .expect("pub");
    bus.publish(
        subjects::HEALTH_START,
        &HealthStart {
            app_id: g.clone(),
            version: s0.version.clone(),
            indices: vec![5, 0],
            reason: "missing".into(),
        },
    )
    .await
    .expect("pub");
    let s = next_start(&mut rx).await;
    assert_eq!(s.index, 0);

    // Scale down: stop index 1.
    c.call(
        "POST",
        &format!("/v3/apps/{g}/processes/web/actions/scale"),
        Some(json!({"instances": 1})),
    )
    .await;
    let stop = next_stop(&mut rx).await;
    assert_eq!(
        (stop.app_id.as_str(), stop.indices.clone()),
        (g.as_str(), Some(vec![1]))
    );

    // Crash → audit event; app log lines → recent logs.
    let exited = crashed(&g, &s0.version, 0);
    bus.publish(subjects::DROPLET_EXITED, &exited)
        .await
        .expect("pub");
    bus.publish(
        subjects::logs(&g),
        &LogMessage::new(
            &g,
            LogSource::App,
            Some(0),
            LogStream::Stdout,
            "hello from app",
        ),
    )
    .await
    .expect("pub");
    eventually("crash event", WAIT, || async {
        let (_, ev) = c
            .call(
                "GET",
                &format!("/v3/audit_events?target_guids={g}&types=app.crash"),
                None,
            )
            .await;
        (ev["pagination"]["total_results"] == 1).then_some(())
    })
    .await;
    eventually("app log line", WAIT, || async {
        let (_, logs) = c
            .call("GET", &format!("/v3/apps/{g}/logs/recent"), None)
            .await;
        logs["resources"]
            .as_array()
            .expect("logs")
            .iter()
            .any(|l| l["line"] == "hello from app" && l["source"] == "APP")
            .then_some(())
    })
    .await;

    // Restart: new version, old version stopped.
    c.call("POST", &format!("/v3/apps/{g}/actions/restart"), None)
        .await;
    let stop = next_stop(&mut rx).await;
    assert_eq!(stop.version.as_deref(), Some(s0.version.as_str()));
    let s = next_start(&mut rx).await;
    assert_ne!(s.version, s0.version);

    // Stop.
    c.call("POST", &format!("/v3/apps/{g}/actions/stop"), None)
        .await;
    let stop = next_stop(&mut rx).await;
    assert_eq!(
        (
            stop.app_id.as_str(),
            stop.indices.clone(),
            stop.version.clone()
        ),
        (g.as_str(), None, None)
    );

    dea.abort();
    stop_controller(stop_tx, server).await;
}

/// The controller with three simulated DEAs (`dea::sim::SimDea`: the real
/// agent, builds run for real, instances simulated; no root): a push stages
/// on one of them, six instances spread over all three and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_scale_over_three_sim_deas() {
    let nats = Nats::start().expect("nats-server");
    let (addr, stop_tx, server, _dir) = start_controller(&nats.url).await;
    let mut deas = Vec::new();
    for i in 0..3 {
        let d = dea::sim::SimDea::start(&nats.url, &format!("sim-{i}"), &format!("z{i}"))
            .await
            .expect("sim dea");
        deas.push(d);
    }

    let c = Client::login(&addr).await;
    let (_, g, pg) = c.app_with_package("sim", json!({})).await;
    c.upload(
        &pg,
        &zip_bytes(&[("app.py", "print(1)\n"), ("requirements.txt", "")]),
    )
    .await;
    let (status, b) = c
        .call("POST", "/v3/builds", Some(json!({"package": {"guid": pg}})))
        .await;
    assert_eq!(status, 201, "{b}");
    let bg = b["guid"].as_str().expect("build").to_string();
    let build = eventually("build done", Duration::from_secs(60), || async {
        let (_, b) = c.call("GET", &format!("/v3/builds/{bg}"), None).await;
        (b["state"] != "STAGING").then_some(b)
    })
    .await;
    assert_eq!(build["state"], "STAGED", "{build}");
    let dg = build["droplet"]["guid"].as_str().expect("droplet");
    let (status, _) = c
        .call(
            "PATCH",
            &format!("/v3/apps/{g}/relationships/current_droplet"),
            Some(json!({"data": {"guid": dg}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call(
            "POST",
            &format!("/v3/apps/{g}/processes/web/actions/scale"),
            Some(json!({"instances": 6})),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = c
        .call("POST", &format!("/v3/apps/{g}/actions/start"), None)
        .await;
    assert_eq!(status, 200);

    let stats_path = format!("/v3/apps/{g}/processes/web/stats");
    eventually("six RUNNING instances", Duration::from_secs(30), || async {
        let (_, s) = c.call("GET", &stats_path, None).await;
        let rs = s["resources"].as_array()?;
        (rs.len() == 6 && rs.iter().all(|r| r["state"] == "RUNNING")).then_some(())
    })
    .await;
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let found: Vec<FindDropletResponse> = bus
        .request_many(
            subjects::DEA_FIND_DROPLET,
            &FindDropletRequest {
                app_id: g.clone(),
                ..Default::default()
            },
            Duration::from_millis(1000),
            None,
        )
        .await
        .expect("find");
    let per_dea = |id: &str| found.iter().filter(|f| f.dea_id == id).count();
    for d in &deas {
        assert_eq!(per_dea(&d.id), 2, "two per DEA: {found:?}");
    }

    for d in deas {
        d.stop().await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
}

/// The controller over a real nats-server with the fake DEA: the common
/// setting of the tests below.
struct Harness {
    _nats: Nats,
    bus: Bus,
    addr: String,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), cloud_controller::RunError>>,
    dir: tempfile::TempDir,
    rx: mpsc::UnboundedReceiver<DeaEvent>,
    dea: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let nats = Nats::start().expect("nats-server");
        let bus = Bus::connect(&nats.url, "fake-dea").await.expect("bus");
        let (addr, stop_tx, server, dir) = start_controller(&nats.url).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let dea = tokio::spawn(fake_dea(bus.clone(), addr.clone(), tx));
        Harness {
            _nats: nats,
            bus,
            addr,
            stop_tx,
            server,
            dir,
            rx,
            dea,
        }
    }

    /// Stops the fake DEA and the controller, which must end cleanly.
    async fn finish(self) {
        self.dea.abort();
        stop_controller(self.stop_tx, self.server).await;
    }
}

/// Stops a controller from [`start_controller`]; it must end cleanly.
async fn stop_controller(
    stop_tx: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), cloud_controller::RunError>>,
) {
    let _ = stop_tx.send(());
    let r = tokio::time::timeout(WAIT, server)
        .await
        .expect("shutdown in time")
        .expect("join");
    assert!(r.is_ok(), "{r:?}");
}

/// A process other than web (issue 14): created by `apply_manifest`,
/// started beside web under its own bus id, unrouted, logging to its app
/// with its type; desired, healed, crash-counted and stopped on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_runs_beside_web() {
    let mut h = Harness::start().await;
    let (bus, c) = (h.bus.clone(), Client::login(&h.addr).await);
    let (space, g, pg) = c.app_with_package("workers", json!({})).await;
    c.upload(&pg, &zip_bytes(&[("app.py", "print(1)")])).await;
    c.stage_current(&g, &pg).await;

    // Bad manifests change nothing.
    for (yaml, want) in [
        (
            "applications:\n- name: workers\n  processes:\n  - type: worker\n    memory: 10\n",
            "For application 'workers': Process \"worker\": Byte quantity",
        ),
        (
            "applications:\n- name: workers\n  processes:\n  - type: worker\n- name: nope\n",
            "For application 'nope': App not found",
        ),
        ("applications: [", "not valid YAML"),
    ] {
        let (status, body) = c.apply_manifest(&space, yaml).await;
        assert!(status == 422 || status == 400, "{status} {body}");
        let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(want), "{body} lacks {want}");
    }
    let (_, list) = c
        .call("GET", &format!("/v3/apps/{g}/processes"), None)
        .await;
    assert_eq!(
        list["resources"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );

    let (status, body) = c
        .apply_manifest(
            &space,
            "applications:\n- name: workers\n  processes:\n  - type: worker\n    command: ./work\n    instances: 2\n    memory: 64M\n    log-rate-limit-per-second: 1K\n",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, w) = c
        .call("GET", &format!("/v3/apps/{g}/processes/worker"), None)
        .await;
    assert_eq!(
        (
            &w["instances"],
            &w["memory_in_mb"],
            &w["health_check"]["type"],
            &w["command"]
        ),
        (&json!(2), &json!(64), &json!("process"), &json!("./work")),
        "{w}"
    );
    let wg = w["guid"].as_str().expect("worker guid").to_string();

    // Start: web (routed, under the app's guid) and both worker indices
    // (under the worker's guid, unrouted, logging to the app).
    c.call("POST", &format!("/v3/apps/{g}/actions/start"), None)
        .await;
    let mut starts = Vec::new();
    for _ in 0..3 {
        starts.push(next_start(&mut h.rx).await);
    }
    starts.sort_by_key(|s| (s.app_id != g, s.index));
    assert_eq!(
        (starts[0].app_id.as_str(), starts[0].process_type.clone()),
        (g.as_str(), None)
    );
    assert_eq!(starts[0].log_rate_limit_bytes_per_s, None, "web: unlimited");
    for (i, s) in starts[1..].iter().enumerate() {
        assert_eq!(s.app_id, wg);
        assert_eq!(s.index, u32::try_from(i).expect("index"));
        assert_eq!(s.process_type.as_deref(), Some("worker"));
        assert_eq!(s.log_guid.as_deref(), Some(g.as_str()));
        assert!(s.uris.is_empty(), "{:?}", s.uris);
        assert_eq!(s.start_command, "./work");
        assert_eq!(s.limits.memory_mb, 64);
        assert_eq!(s.health_check.kind, proto::HealthCheckType::Process);
        assert_eq!(s.vcap_application["process_type"], "worker");
        assert_eq!(s.log_rate_limit_bytes_per_s, Some(1024));
        assert_eq!(
            s.log_owner(),
            proto::LogOwner {
                app_id: g.clone(),
                process_type: Some("worker".into()),
                task_name: None,
            }
        );
    }
    let version = starts[0].version.clone();
    assert!(starts.iter().all(|s| s.version == version));

    // The HM's desired state names both processes.
    let internal =
        std::fs::read_to_string(h.dir.path().join(INTERNAL_ADDR)).expect("internal addr");
    let (status, raw) = http(
        internal.trim(),
        "GET",
        "/internal/v1/desired",
        &[("Authorization", "Bearer dev-internal-token")],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let desired: proto::desired::DesiredPage = serde_json::from_slice(&raw).expect("desired");
    for a in &desired.apps {
        let want = (a.app_id == wg).then(|| g.clone());
        assert_eq!(a.log_guid, want, "HM lines about the worker go to its app");
    }
    let mut units: Vec<(String, u32, String)> = desired
        .apps
        .iter()
        .map(|a| (a.app_id.clone(), a.instances, a.name.clone()))
        .collect();
    units.sort_by_key(|u| u.0 != g);
    assert_eq!(
        units,
        vec![
            (g.clone(), 1, "workers".into()),
            (wg.clone(), 2, "workers/worker".into())
        ]
    );

    // A health request for the worker's index 1 starts it.
    bus.publish(
        subjects::HEALTH_START,
        &HealthStart {
            app_id: wg.clone(),
            version: version.clone(),
            indices: vec![1, 7],
            reason: "missing".into(),
        },
    )
    .await
    .expect("pub");
    let s = next_start(&mut h.rx).await;
    assert_eq!((s.app_id.as_str(), s.index), (wg.as_str(), 1));

    // A worker crash counts against the worker, not web.
    let exited = DropletExited {
        app_id: wg.clone(),
        version: version.clone(),
        index: 1,
        instance_id: "w1".into(),
        reason: ExitReason::Crashed,
        exit_status: Some(3),
        exit_description: "exited with status 3".into(),
        crash_timestamp: 1.0,
    };
    bus.publish(subjects::DROPLET_EXITED, &exited)
        .await
        .expect("pub");
    eventually("worker index 1 CRASHED", WAIT, || async {
        let (_, st) = c
            .call("GET", &format!("/v3/processes/{wg}/stats"), None)
            .await;
        (st["resources"][1]["state"] == "CRASHED").then_some(())
    })
    .await;
    let (_, ev) = c
        .call(
            "GET",
            &format!("/v3/audit_events?target_guids={g}&types=app.crash"),
            None,
        )
        .await;
    assert_eq!(ev["resources"][0]["data"]["process_type"], "worker", "{ev}");
    let (_, web) = c
        .call("GET", &format!("/v3/apps/{g}/processes/web/stats"), None)
        .await;
    assert_eq!(web["resources"][0]["state"], "RUNNING", "{web}");

    // Scaling the worker down stops only its index 1.
    c.call(
        "POST",
        &format!("/v3/processes/{wg}/actions/scale"),
        Some(json!({"instances": 1})),
    )
    .await;
    let stop = next_stop(&mut h.rx).await;
    assert_eq!(
        (stop.app_id.as_str(), stop.indices.clone()),
        (wg.as_str(), Some(vec![1]))
    );

    // Stopping the app stops every process.
    c.call("POST", &format!("/v3/apps/{g}/actions/stop"), None)
        .await;
    let mut stopped = vec![
        next_stop(&mut h.rx).await.app_id,
        next_stop(&mut h.rx).await.app_id,
    ];
    stopped.sort_by_key(|id| id != &g);
    assert_eq!(stopped, vec![g.clone(), wg.clone()]);

    h.finish().await;
}

/// One-off tasks (issue 16): placed on a DEA as a task (its guid the bus
/// id, unrouted, logging to its app), ended by the DEA's report, cancelled,
/// and failed when their DEA no longer lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_end_cancel_and_get_lost() {
    let mut h = Harness::start().await;
    let (bus, c) = (h.bus.clone(), Client::login(&h.addr).await);
    let (_, g, pg) = c.app_with_package("jobs", json!({"GREETING": "hi"})).await;

    // No droplet yet: CF's 422, nothing created.
    let (status, body) = c
        .call(
            "POST",
            &format!("/v3/apps/{g}/tasks"),
            Some(json!({"command": "echo hi"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("Task must have a droplet"),
        "{body}"
    );
    c.upload(&pg, &zip_bytes(&[("app.py", "print(1)")])).await;
    c.stage_current(&g, &pg).await;
    let (status, body) = c
        .call(
            "POST",
            &format!("/v3/apps/{g}/tasks"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("Command must be between 1 and 4096"),
        "{body}"
    );

    let run = |name: &'static str| {
        let c = &c;
        let g = g.clone();
        async move {
            let (status, t) = c
                .call(
                    "POST",
                    &format!("/v3/apps/{g}/tasks"),
                    Some(json!({"command": "rake db:migrate", "name": name, "memory_in_mb": 128})),
                )
                .await;
            assert_eq!(status, 202, "{t}");
            t
        }
    };
    let t1 = run("migrate").await;
    assert_eq!(
        (&t1["state"], &t1["sequence_id"], &t1["command"]),
        (&json!("RUNNING"), &json!(1), &json!("rake db:migrate"))
    );
    assert_eq!(t1["links"]["cancel"]["method"], "POST");
    let g1 = t1["guid"].as_str().expect("guid").to_string();
    let s = next_start(&mut h.rx).await;
    assert_eq!(s.app_id, g1);
    assert_eq!(s.task_name.as_deref(), Some("migrate"));
    assert_eq!(s.log_guid.as_deref(), Some(g.as_str()));
    assert!(s.uris.is_empty());
    assert_eq!(
        (s.start_command.as_str(), s.limits.memory_mb),
        ("rake db:migrate", 128)
    );
    assert!(s.env.contains(&"GREETING=hi".to_string()), "{:?}", s.env);

    let exit = |guid: &str, reason: ExitReason, status: Option<i32>| DropletExited {
        app_id: guid.to_string(),
        version: s.version.clone(),
        index: 0,
        instance_id: format!("i-{guid}"),
        reason,
        exit_status: status,
        exit_description: "x".into(),
        crash_timestamp: 1.0,
    };
    let state_of = |guid: String, want: &'static str| {
        let c = &c;
        async move {
            eventually(&format!("task {want}"), WAIT, || async {
                let (_, t) = c.call("GET", &format!("/v3/tasks/{guid}"), None).await;
                (t["state"] == want).then_some(t)
            })
            .await
        }
    };
    bus.publish(
        subjects::DROPLET_EXITED,
        &exit(&g1, ExitReason::Completed, Some(0)),
    )
    .await
    .expect("pub");
    let done = state_of(g1.clone(), "SUCCEEDED").await;
    assert_eq!(done["result"]["failure_reason"], Value::Null);

    // A failing task: FAILED with CF's reason.
    let t2 = run("seed").await;
    let g2 = t2["guid"].as_str().expect("guid").to_string();
    assert_eq!(t2["sequence_id"], 2);
    bus.publish(
        subjects::DROPLET_EXITED,
        &exit(&g2, ExitReason::Crashed, Some(3)),
    )
    .await
    .expect("pub");
    let failed = state_of(g2.clone(), "FAILED").await;
    assert_eq!(
        failed["result"]["failure_reason"],
        "APP/TASK/seed: Exited with status 3"
    );

    // Cancel: CANCELING and a stop for it; FAILED once the DEA says so;
    // a second cancel is CF's 422.
    let t3 = run("sleep").await;
    let g3 = t3["guid"].as_str().expect("guid").to_string();
    let (status, t) = c
        .call("POST", &format!("/v3/tasks/{g3}/actions/cancel"), None)
        .await;
    assert_eq!((status, &t["state"]), (202, &json!("CANCELING")), "{t}");
    loop {
        let stop = next_stop(&mut h.rx).await;
        if stop.app_id == g3 {
            break;
        }
    }
    bus.publish(
        subjects::DROPLET_EXITED,
        &exit(&g3, ExitReason::Stopped, None),
    )
    .await
    .expect("pub");
    let failed = state_of(g3.clone(), "FAILED").await;
    assert_eq!(failed["result"]["failure_reason"], "task was cancelled");
    let (status, body) = c.call("PUT", &format!("/v3/tasks/{g3}/cancel"), None).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("Task state is FAILED and therefore cannot be canceled"),
        "{body}"
    );

    // Lists: by state and sequence id, in SQL.
    let (_, l) = c
        .call("GET", &format!("/v3/apps/{g}/tasks?states=FAILED"), None)
        .await;
    assert_eq!(l["pagination"]["total_results"], 2, "{l}");
    let (_, l) = c
        .call(
            "GET",
            &format!("/v3/apps/{g}/tasks?sequence_ids=1,3&per_page=1"),
            None,
        )
        .await;
    assert_eq!(
        (
            &l["pagination"]["total_results"],
            &l["resources"][0]["name"]
        ),
        (&json!(2), &json!("migrate")),
        "{l}"
    );
    let (status, _) = c.call("GET", "/v3/tasks?sequence_ids=x", None).await;
    assert_eq!(status, 400);

    // Lost: this fake DEA's adverts never list a task, so a running one
    // fails once it has been missing for LOST_AFTER.
    let t4 = run("lost").await;
    let g4 = t4["guid"].as_str().expect("guid").to_string();
    let lost = eventually(
        "lost task FAILED",
        cloud_controller::tasks::LOST_AFTER + WAIT,
        || async {
            let (_, t) = c.call("GET", &format!("/v3/tasks/{g4}"), None).await;
            (t["state"] == "FAILED").then_some(t)
        },
    )
    .await;
    assert_eq!(
        lost["result"]["failure_reason"],
        "Task lost: its DEA no longer runs it"
    );

    h.finish().await;
}

/// Revisions (issue 16): a start records what the app runs with; each
/// later start or restart with another droplet, environment or command
/// records a new one saying what changed; the feature turns it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_record_what_changed() {
    let h = Harness::start().await;
    let c = Client::login(&h.addr).await;
    let (_, g, pg) = c.app_with_package("revs", json!({"A": "1"})).await;
    c.upload(&pg, &zip_bytes(&[("app.py", "print(1)")])).await;
    let dg1 = c.stage_current(&g, &pg).await;
    let revisions = |q: &'static str| {
        let c = &c;
        let g = g.clone();
        async move {
            let (status, l) = c
                .call("GET", &format!("/v3/apps/{g}/revisions{q}"), None)
                .await;
            assert_eq!(status, 200, "{l}");
            l
        }
    };
    let action = |what: &'static str| {
        let c = &c;
        let g = g.clone();
        async move {
            let (status, b) = c
                .call("POST", &format!("/v3/apps/{g}/actions/{what}"), None)
                .await;
            assert_eq!(status, 200, "{b}");
        }
    };

    action("start").await;
    let l = revisions("").await;
    assert_eq!(l["pagination"]["total_results"], 1, "{l}");
    let r1 = &l["resources"][0];
    assert_eq!(
        (&r1["version"], &r1["description"], &r1["deployable"]),
        (&json!(1), &json!("Initial revision."), &json!(true))
    );
    assert_eq!(r1["droplet"]["guid"], dg1.as_str());
    assert_eq!(r1["processes"]["web"]["command"], Value::Null);
    let deployed = revisions("/deployed").await;
    assert_eq!(deployed["resources"][0]["version"], 1, "{deployed}");

    // Nothing changed: no new revision.
    action("restart").await;
    assert_eq!(revisions("").await["pagination"]["total_results"], 1);

    // New environment variables.
    c.call(
        "PATCH",
        &format!("/v3/apps/{g}/environment_variables"),
        Some(json!({"var": {"B": "2"}})),
    )
    .await;
    action("restart").await;
    let l = revisions("").await;
    let r2 = &l["resources"][1];
    assert_eq!(
        (&r2["version"], &r2["description"]),
        (&json!(2), &json!("New environment variables deployed.")),
        "{l}"
    );
    let r2g = r2["guid"].as_str().expect("guid").to_string();
    let (_, env) = c
        .call(
            "GET",
            &format!("/v3/revisions/{r2g}/environment_variables"),
            None,
        )
        .await;
    assert_eq!(env["var"], json!({"A": "1", "B": "2"}));

    // A new droplet and a start command.
    let dg2 = c.stage_current(&g, &pg).await;
    assert_ne!(dg1, dg2);
    c.call(
        "PATCH",
        &format!("/v3/apps/{g}/processes/web"),
        Some(json!({"command": "./other"})),
    )
    .await;
    action("restart").await;
    let (_, r3) = c
        .call("GET", &format!("/v3/apps/{g}/revisions?versions=3"), None)
        .await;
    assert_eq!(
        r3["resources"][0]["description"],
        "New droplet deployed. Custom start command added for 'web' process.",
        "{r3}"
    );
    assert_eq!(r3["resources"][0]["processes"]["web"]["command"], "./other");
    let l = revisions("?versions=1,3").await;
    assert_eq!(l["pagination"]["total_results"], 2, "{l}");

    // Turned off: changes record nothing.
    let (status, f) = c
        .call(
            "PATCH",
            &format!("/v3/apps/{g}/features/revisions"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((status, &f["enabled"]), (200, &json!(false)), "{f}");
    let (_, fs) = c.call("GET", &format!("/v3/apps/{g}/features"), None).await;
    assert_eq!(
        fs["resources"][0],
        json!({"name": "revisions", "description": "Enable versioning of an application", "enabled": false})
    );
    c.call(
        "PATCH",
        &format!("/v3/apps/{g}/environment_variables"),
        Some(json!({"var": {"C": "3"}})),
    )
    .await;
    action("restart").await;
    assert_eq!(revisions("").await["pagination"]["total_results"], 3);

    // Stopped: nothing deployed.
    action("stop").await;
    assert_eq!(
        revisions("/deployed").await["pagination"]["total_results"],
        0
    );
    let (status, _) = c
        .call("GET", &format!("/v3/apps/{g}/features/nope"), None)
        .await;
    assert_eq!(status, 404);

    h.finish().await;
}

/// A small droplet (the same bytes every time): droplets must be gzipped
/// tarballs (docs/architecture.md §6.5).
fn fake_droplet() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "app/fake", &b"fake"[..])
        .expect("tar");
    b.into_inner().expect("tar").finish().expect("gzip")
}

/// Two controllers on one Postgres and one bus (issue 17): a crash is one
/// `app.crash` event and one task end, not one per controller (the
/// controllers share `droplet.exited` as a queue group).
#[tokio::test]
async fn two_controllers_record_each_crash_once() {
    let db = testkit::PgDb::create().await.expect("postgres");
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let (a, stop_a, server_a, _dir_a) = start_controller_on(&nats.url, Some(db.url.clone())).await;
    let (b, stop_b, server_b, _dir_b) = start_controller_on(&nats.url, Some(db.url.clone())).await;
    let ca = Client::login(&a).await;
    let cb = Client::login(&b).await;
    let (_, spaces) = ca.call("GET", "/v3/spaces", None).await;
    let space = spaces["resources"][0]["guid"]
        .as_str()
        .expect("space")
        .to_string();
    let (status, app) = ca
        .call(
            "POST",
            "/v3/apps",
            Some(json!({"name": "crashy", "relationships": {"space": {"data": {"guid": space}}}})),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let g = app["guid"].as_str().expect("app").to_string();
    const CRASHES: usize = 6;
    for i in 0..CRASHES {
        let exited = crashed(&g, "v", i as u32);
        bus.publish(subjects::DROPLET_EXITED, &exited)
            .await
            .expect("pub");
    }
    let path = format!("/v3/audit_events?target_guids={g}&types=app.crash");
    let count = |c: &Client| {
        let path = path.clone();
        let c = Client {
            addr: c.addr.clone(),
            token: c.token.clone(),
        };
        async move { c.call("GET", &path, None).await.1["pagination"]["total_results"].as_u64() }
    };
    eventually("every crash recorded", WAIT, || async {
        (count(&ca).await? >= CRASHES as u64).then_some(())
    })
    .await;
    // Both controllers had every exit delivered well within this window
    // before the fix (each recorded all six): the count must stay at six.
    let until = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < until {
        assert_eq!(
            count(&cb).await,
            Some(CRASHES as u64),
            "a crash recorded twice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_controller(stop_a, server_a).await;
    stop_controller(stop_b, server_b).await;
}
