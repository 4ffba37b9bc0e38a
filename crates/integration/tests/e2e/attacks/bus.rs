//! The bus: a process without credentials, and ones with another role's
//! credentials, try to hijack the API route and to make a DEA run a foreign
//! droplet. The server refuses; the API and the apps keep answering through
//! the router.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use integration::{app_host, Platform, PlatformOptions, SYSTEM_DOMAIN};
use proto::busauth::BusCredentials;
use proto::subjects;

const T: Duration = Duration::from_secs(60);

/// A listener standing for the attacker's server: counts connections.
struct Trap {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Trap {
    fn start() -> Result<Trap> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(c);
            }
        });
        Ok(Trap { port, hits })
    }
    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn forged_route(port: u16) -> serde_json::Value {
    serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "uris": [format!("api.{SYSTEM_DOMAIN}")],
    })
}

/// A well-formed `StartRequest` naming the attacker's droplet.
fn forged_start(port: u16) -> serde_json::Value {
    serde_json::json!({
        "app_id": "evil", "app_name": "evil", "version": "v1", "index": 0,
        "droplet_uri": format!("http://127.0.0.1:{port}/evil.tgz"),
        "droplet_sha256": "0".repeat(64),
        "uris": ["evil.localhost"], "env": [],
        "limits": {"memory_mb": 64, "disk_mb": 64, "fds": 64},
        "health_check": {"type": "port", "timeout_s": 60},
        "start_command": "true", "stack": "cflinuxfs4",
        "vcap_application": {},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_bus_messages_are_refused() -> Result<()> {
    let p = super::platform_with_app("calm").await?;
    let trap = Trap::start()?;

    // 1. No credentials, and a wrong password: the server refuses the
    //    connection itself.
    let anon = proto::Bus::connect(&p.nats_url, "anon").await;
    let err = anon.err().context("an anonymous client was let in")?;
    assert!(
        err.to_string().to_lowercase().contains("authoriz"),
        "refused for another reason: {err}"
    );
    let wrong = BusCredentials {
        user: "router".into(),
        password: "guess".into(),
        ..Default::default()
    };
    assert!(
        proto::Bus::connect_with(&p.nats_url, &wrong, "guess")
            .await
            .is_err(),
        "a wrong password was let in"
    );

    // 2. Real credentials of roles that may not say these things. A spy
    //    with every permission sees what the server lets through.
    let spy = p.bus_as("test").await?;
    let mut registers = spy
        .subscribe::<serde_json::Value>(subjects::ROUTER_REGISTER)
        .await?;
    let mut starts = spy.subscribe::<serde_json::Value>("dea.*.start").await?;
    spy.flush().await?;
    for role in ["router", "health-manager"] {
        let b = p.bus_as(role).await?;
        b.publish(subjects::ROUTER_REGISTER, &forged_route(trap.port))
            .await?;
        b.publish(subjects::dea_start("dea-0"), &forged_start(trap.port))
            .await?;
        b.flush().await?;
    }
    // A DEA may announce routes (the router's route authority refuses this
    // one), but may not tell another DEA what to run.
    let dea = p.bus_as("dea").await?;
    dea.publish(subjects::dea_start("dea-0"), &forged_start(trap.port))
        .await?;
    dea.flush().await?;
    // The router may not read what it was never meant to (others' logs).
    let router = p.bus_as("router").await?;
    let mut peek = router.subscribe::<serde_json::Value>("logs.*").await?;
    // Markers after the forgeries: once they arrive, anything the server
    // had let through would have arrived before them.
    spy.publish(subjects::ROUTER_REGISTER, &serde_json::json!({"marker": 1}))
        .await?;
    spy.publish(
        subjects::dea_start("marker"),
        &serde_json::json!({"marker": 1}),
    )
    .await?;
    spy.flush().await?;
    for (what, sub) in [
        ("router.register", &mut registers),
        ("dea.*.start", &mut starts),
    ] {
        let first = tokio::time::timeout(T, sub.next())
            .await
            .with_context(|| format!("{what}: the marker never came"))?
            .context("subscription closed")?;
        if first.payload.get("marker").is_none() {
            bail!("{what}: a forged message got through: {}", first.payload);
        }
    }

    // A DEA's own user hears only requests addressed to it, not those
    // sent to other DEAs (their apps' environments and credentials).
    let d0 = p.bus_as(&proto::busauth::dea_user("dea-0")).await?;
    let mut all_starts = d0.subscribe::<serde_json::Value>("dea.*.start").await?;
    let mut other_start = d0
        .subscribe::<serde_json::Value>(&subjects::dea_start("dea-1"))
        .await?;
    let mut other_staging = d0
        .subscribe::<serde_json::Value>(&subjects::staging_start("dea-1"))
        .await?;
    d0.flush().await?;
    // Its own subject on a connection of its own: the refused subscriptions'
    // permission errors must not bear on it.
    let d0_own = p.bus_as(&proto::busauth::dea_user("dea-0")).await?;
    let mut own = d0_own
        .subscribe::<serde_json::Value>(&subjects::staging_stop("dea-0"))
        .await?;
    d0_own.flush().await?;
    spy.publish(
        subjects::dea_start("dea-1"),
        &serde_json::json!({"secret": 1}),
    )
    .await?;
    spy.publish(
        subjects::staging_start("dea-1"),
        &serde_json::json!({"secret": 1}),
    )
    .await?;
    spy.publish(
        subjects::staging_stop("dea-0"),
        &serde_json::json!({"marker": 1}),
    )
    .await?;
    spy.flush().await?;
    let mine = tokio::time::timeout(T, own.next())
        .await
        .context("the DEA's own request never came")?
        .context("subscription closed")?;
    assert!(mine.payload.get("marker").is_some(), "{}", mine.payload);
    for (what, sub) in [
        ("dea.*.start", &mut all_starts),
        ("dea.dea-1.start", &mut other_start),
        ("staging.dea-1.start", &mut other_staging),
    ] {
        assert!(
            tokio::time::timeout(Duration::from_millis(500), sub.next())
                .await
                .is_err(),
            "DEA dea-0 heard {what}"
        );
    }

    // 3. Nothing was harmed: the API route and the app answer through the
    //    router; no DEA fetched the foreign droplet; the router never
    //    received the app's logs.
    let (status, body) = p
        .get_via_router(&format!("api.{SYSTEM_DOMAIN}"), "/")
        .await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("links"),
        "the API route points elsewhere: {body}"
    );
    let (status, _) = p.get_via_router(&app_host("calm"), "/").await?;
    assert_eq!(status, 200);
    let routes = reqwest::get(format!("http://{}/routes", p.router_admin_addr))
        .await?
        .text()
        .await?;
    assert!(
        !routes.contains(&format!(":{}", trap.port)),
        "a forged route is in the table: {routes}"
    );
    assert_eq!(trap.hits(), 0, "a DEA fetched the attacker's droplet");
    let (status, _) = p.get_via_router(&app_host("calm"), "/").await?;
    assert_eq!(status, 200);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), peek.next())
            .await
            .is_err(),
        "the router read app logs"
    );
    Ok(())
}

/// TLS on the bus: a server with a certificate of a private CA accepts a
/// component that trusts that CA, and refuses one that connects in plain
/// text or trusts another CA (an impostor's server would be refused the
/// same way by every component).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_over_tls_needs_the_platform_ca() -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let certs = cf_cli::devenv::make_certs(None, &["127.0.0.1".to_string()], today)?;
    let other = cf_cli::devenv::make_certs(None, &["127.0.0.1".to_string()], today)?;
    let dir = tempfile::tempdir()?;
    let file = |name: &str, text: &str| -> Result<std::path::PathBuf> {
        let p = dir.path().join(name);
        testkit::write_private(&p, text)?;
        Ok(p)
    };
    let tls = proto::busauth::ServerTls {
        cert_file: file("server.pem", &certs.server_cert)?,
        key_file: file("server.key", &certs.server_key)?,
        verify_clients_ca: None,
    };
    let users = proto::busauth::BusUsers::generate(proto::busauth::DEFAULT_HM_BUCKET);
    let nats =
        testkit::NatsServer::start_with_config(&proto::busauth::server_config(&users, Some(&tls)))?;
    let mut router = users.role(proto::busauth::Role::Router);
    router.tls_ca_file = Some(file("ca.pem", &certs.ca_cert)?);
    let bus = proto::Bus::connect_with(&nats.url, &router, "router").await?;
    bus.publish(subjects::ROUTER_START, &serde_json::json!({}))
        .await?;
    bus.flush().await?;

    let plain = users.role(proto::busauth::Role::Router);
    assert!(
        proto::Bus::connect_with(&nats.url, &plain, "plain")
            .await
            .is_err(),
        "a client without the CA was let in"
    );
    let mut impostor = users.role(proto::busauth::Role::Router);
    impostor.tls_ca_file = Some(file("other-ca.pem", &other.ca_cert)?);
    assert!(
        proto::Bus::connect_with(&nats.url, &impostor, "impostor")
            .await
            .is_err(),
        "a client trusting another CA was let in"
    );
    Ok(())
}

/// Even a peer allowed to ask (here the harness's all-permissions user,
/// standing for a compromised controller credential) cannot make a DEA
/// fetch a droplet, package or buildpack from anywhere but the
/// controller's signed blob URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deas_fetch_only_signed_controller_urls() -> Result<()> {
    let p = Platform::start_with(PlatformOptions {
        dea_config: "backend = \"process\"\n".into(),
        health_manager: false,
        ..Default::default()
    })
    .await?;
    let trap = Trap::start()?;
    let bus = p.bus_as("test").await?;

    // A start naming the attacker's droplet: refused, said in the DEA's
    // log and the app's.
    bus.publish(subjects::dea_start("dea-0"), &forged_start(trap.port))
        .await?;
    bus.flush().await?;
    let dea_log = p.deas[0].log_path.clone();
    integration::wait_for("the DEA to refuse the start", T, || {
        let path = dea_log.clone();
        async move {
            let text = std::fs::read_to_string(path).ok()?;
            text.contains("start refused").then_some(())
        }
    })
    .await?;

    // A staging request naming the attacker's package: refused in the reply.
    let url = format!("http://127.0.0.1:{}/pkg.zip", trap.port);
    let reply: proto::StagingAccepted = bus
        .request(
            subjects::staging_start("dea-0"),
            &serde_json::json!({
                "staging_id": "evil-build", "app_id": "evil", "stack": "cflinuxfs4",
                "memory_mb": 64, "disk_mb": 64,
                "package_uri": url,
                "droplet_upload_uri": url,
            }),
            T,
        )
        .await?;
    let err = reply.error.context("the staging request was accepted")?;
    assert!(
        err.message.contains("not the controller's internal API"),
        "{err:?}"
    );
    assert_eq!(trap.hits(), 0, "the DEA connected to the attacker");
    Ok(())
}
