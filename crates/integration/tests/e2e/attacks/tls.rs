//! TLS between the `cf` CLI and the router (issue 13, item 4): the router
//! serves a certificate of a private CA; the CLI verifies it (webpki roots
//! plus the `cf dev` CA found in its home), refuses a certificate issued for
//! another host with a message naming the names, and goes on only with
//! `--skip-ssl-validation`, a choice saved for the later commands.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cf_cli::devenv::{make_certs, tls_names, DevCerts};
use integration::{wait_for, CfOutput, Platform, PlatformOptions, APPS_DOMAIN, SYSTEM_DOMAIN};

/// A platform whose router also listens for HTTPS with `certs`' server
/// certificate; its HTTPS port.
async fn platform_with_cert(certs: &DevCerts) -> Result<(Platform, u16, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (cert, key, addr) = (
        dir.path().join("router.pem"),
        dir.path().join("router.key"),
        dir.path().join("router-tls.addr"),
    );
    std::fs::write(&cert, &certs.server_cert)?;
    std::fs::write(&key, &certs.server_key)?;
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let p = Platform::start_with(PlatformOptions {
        deas: 0,
        health_manager: false,
        router_config: format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_addr_file = {}\n[[tls_certificates]]\ncert_file = {}\nkey_file = {}\n",
            q(&addr),
            q(&cert),
            q(&key)
        ),
        ..PlatformOptions::default()
    })
    .await?;
    let port = wait_for(
        "the router's HTTPS address",
        Duration::from_secs(30),
        || {
            let addr = addr.clone();
            async move {
                let text = std::fs::read_to_string(addr).ok()?;
                text.trim().rsplit_once(':')?.1.parse::<u16>().ok()
            }
        },
    )
    .await?;
    Ok((p, port, dir))
}

/// A cf home that trusts `ca` the way `cf dev` users do: the CA in the
/// default dev dir.
fn home_trusting(p: &Platform, name: &str, ca: &str) -> Result<std::path::PathBuf> {
    let home = p.cf_home(name)?;
    let tls = home.join(".cfdev").join("tls");
    std::fs::create_dir_all(&tls)?;
    std::fs::write(tls.join("ca.pem"), ca)?;
    Ok(home)
}

fn ok(what: &str, out: &CfOutput) -> Result<()> {
    if out.status == 0 {
        Ok(())
    } else {
        Err(anyhow!(
            "{what} exited {}:\n{}\n{}",
            out.status,
            out.stdout,
            out.stderr
        ))
    }
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_carries_cf_api_and_login_over_https() -> Result<()> {
    let certs = make_certs(None, &tls_names(SYSTEM_DOMAIN, APPS_DOMAIN), today())
        .map_err(|e| anyhow!("{e}"))?;
    let (p, port, _dir) = platform_with_cert(&certs).await?;
    let api = format!("https://api.{SYSTEM_DOMAIN}:{port}");
    let home = home_trusting(&p, "tls-ok", &certs.ca_cert)?;

    let out = Platform::cf_run(&home, &["api", &api], None).await?;
    ok("cf api", &out)?;
    assert!(out.stdout.contains(&api), "{}", out.stdout);
    assert!(!out.stdout.contains("Insecure"), "{}", out.stdout);
    let out = Platform::cf_run(
        &home,
        &[
            "login", "-u", "admin", "-p", "admin", "-o", "dev", "-s", "dev",
        ],
        None,
    )
    .await?;
    ok("cf login", &out)?;
    let out = Platform::cf_run(&home, &["orgs"], None).await?;
    ok("cf orgs", &out)?;
    assert!(
        out.stdout.lines().any(|l| l.trim() == "dev"),
        "{}",
        out.stdout
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join(".cf").join("config.json"))?)?;
    assert_eq!(cfg["api"], serde_json::json!(api));
    assert_eq!(cfg["skip_ssl_validation"], serde_json::json!(false));

    // A home that does not trust the CA: refused, named, non-zero.
    let stranger = p.cf_home("tls-stranger")?;
    let out = Platform::cf_run(
        &stranger,
        &["login", "-a", &api, "-u", "admin", "-p", "admin"],
        None,
    )
    .await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!("Invalid SSL Cert for {api}"))
            && out
                .stderr
                .contains("x509: certificate signed by unknown authority")
            && out.stderr.contains("--skip-ssl-validation"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused_unless_validation_is_skipped() -> Result<()> {
    let certs =
        make_certs(None, &["other.example".to_string()], today()).map_err(|e| anyhow!("{e}"))?;
    let (p, port, _dir) = platform_with_cert(&certs).await?;
    let api = format!("https://api.{SYSTEM_DOMAIN}:{port}");
    // The CA is trusted: only the name is wrong.
    let home = home_trusting(&p, "tls-mismatch", &certs.ca_cert)?;

    let out = Platform::cf_run(&home, &["api", &api], None).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "Invalid SSL Cert for {api}: x509: certificate is valid for other.example, not api.{SYSTEM_DOMAIN}"
        )) && out
            .stderr
            .contains("TIP: Use 'cf api --skip-ssl-validation' to continue with an insecure API endpoint"),
        "{}",
        out.stderr
    );
    // Nothing was saved.
    let out = Platform::cf_run(&home, &["api"], None).await?;
    assert!(out.stdout.contains("No API endpoint set"), "{}", out.stdout);
    let out = Platform::cf_run(
        &home,
        &["login", "-a", &api, "-u", "admin", "-p", "admin"],
        None,
    )
    .await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("x509: certificate is valid for other.example"),
        "{}",
        out.stderr
    );

    // Skipping: cf api warns, and the choice carries login and what follows.
    let out = Platform::cf_run(&home, &["api", &api, "--skip-ssl-validation"], None).await?;
    ok("cf api --skip-ssl-validation", &out)?;
    assert!(
        out.stdout.contains("Warning: Insecure API endpoint"),
        "{}",
        out.stdout
    );
    let out = Platform::cf_run(
        &home,
        &[
            "login", "-u", "admin", "-p", "admin", "-o", "dev", "-s", "dev",
        ],
        None,
    )
    .await?;
    ok("cf login (skipping validation)", &out)?;
    let out = Platform::cf_run(&home, &["orgs"], None).await?;
    ok("cf orgs (skipping validation)", &out)?;
    assert!(
        out.stdout.lines().any(|l| l.trim() == "dev"),
        "{}",
        out.stdout
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join(".cf").join("config.json"))?)
            .context("cf config")?;
    assert_eq!(cfg["skip_ssl_validation"], serde_json::json!(true));

    // `cf api URL` without the flag checks again, as the CF CLI does.
    let out = Platform::cf_run(&home, &["api", &api], None).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("x509: certificate is valid for other.example"),
        "{}",
        out.stderr
    );
    Ok(())
}
