//! The agents' channel over TLS: an agent started with `--tls-cert` and
//! `--tls-key` answers the deployer that trusts the manifest's
//! `certificates.ca` (a path relative to the manifest); a deployer
//! trusting another CA, a certificate for another address and plain HTTP
//! are refused; the token is still wanted; an agent will not start with a
//! key others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use paas::deploy::manifest::Manifest;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

const TOKEN: &str = "agent-token-for-tests-0123456789";

/// A CA: its certificate (PEM) and what signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(p, key))
}

/// A server certificate for `names` signed by `issuer`: (cert, key) PEM.
fn server_cert(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names).expect("params");
    p.distinguished_name.push(DnType::CommonName, "paas agent");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, body).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `paas agent` with TLS; killed on drop.
struct Agent {
    child: Option<Child>,
    addr: String,
}

impl Agent {
    fn port(&self) -> u16 {
        self.addr
            .trim()
            .parse::<std::net::SocketAddr>()
            .expect("the agent's address")
            .port()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent_command(dir: &Path, cert: &Path, key: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paas"));
    cmd.args(["agent", "--host", "h1", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--token-file")
        .arg(dir.join("token"))
        .arg("--addr-file")
        .arg(dir.join("agent.addr"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdin(Stdio::null());
    cmd
}

fn start_agent(dir: &Path, cert: &Path, key: &Path) -> Agent {
    let addr_file = dir.join("agent.addr");
    let (child, addr) = crate::spawn_agent(&mut agent_command(dir, cert, key), dir, &addr_file);
    Agent {
        child: Some(child),
        addr,
    }
}

/// A one-host manifest for the agent at `port`, in `dir`, with `ca` (a
/// path relative to the manifest) as `certificates.ca` when given.
fn manifest(dir: &Path, name: &str, port: u16, ca: Option<&str>) -> (PathBuf, Manifest) {
    let certificates = ca
        .map(|ca| format!("certificates: {{ca: {ca}}}\n"))
        .unwrap_or_default();
    let text = format!(
        "name: {name}\nrelease: {{version: v1}}\ndatabase_url: postgres://cc@127.0.0.1/cc\n\
         agent_token_file: token\n{certificates}\
         hosts:\n  - {{name: h1, address: 127.0.0.1, agent_port: {port}, roles: [nats, controller, router, health_manager, dea]}}\n\
         update: {{canaries: 1, max_in_flight: 1, watch_time: 30s}}\n"
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, &text).expect("manifest");
    (path, Manifest::parse(&text).expect("parses"))
}

#[tokio::test]
async fn the_deployer_reaches_a_tls_agent_only_through_the_manifests_ca() {
    proto::https::install_ring();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(&d.join("token"), TOKEN, 0o600);
    let (ca_pem, issuer) = ca("paas agents CA");
    let (other_ca_pem, _) = ca("some other CA");
    let (cert, key) = server_cert(&issuer, &["127.0.0.1", "h1.agents.internal"]);
    std::fs::create_dir_all(d.join("pki")).expect("mkdir");
    write(&d.join("pki/ca.pem"), &ca_pem, 0o644);
    write(&d.join("pki/other-ca.pem"), &other_ca_pem, 0o644);
    write(&d.join("agent.pem"), &cert, 0o644);
    write(&d.join("agent-key.pem"), &key, 0o600);

    let agent = start_agent(d, &d.join("agent.pem"), &d.join("agent-key.pem"));
    let port = agent.port();

    // (a) The deployer with the manifest's CA (relative to the manifest)
    // gets the agent's status over HTTPS.
    let (path, m) = manifest(d, "lab", port, Some("pki/ca.pem"));
    let deployer = paas::commands::agents(&path, &m).expect("agents");
    let status = deployer.status("h1").await.expect("status over https");
    assert_eq!(status.host, "h1");

    // The token is still wanted over TLS.
    let client = paas::deploy::agents::agent_client(Some(&d.join("pki/ca.pem"))).expect("client");
    let url = format!("https://{}/v1/status", agent.addr);
    let r = client
        .get(&url)
        .bearer_auth("not-the-token-0123456789")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    // The CA client speaks HTTPS only.
    let e = client
        .get(format!("http://{}/v1/status", agent.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("http refused by the client");
    assert!(e.is_builder(), "{e:?}");

    // (b) A deployer trusting another CA is refused by its own TLS check.
    let (path, m) = manifest(d, "other", port, Some("pki/other-ca.pem"));
    let hosts = paas::commands::agents(&path, &m).expect("agents");
    let e = hosts
        .status("h1")
        .await
        .expect_err("another CA is not trusted");
    assert!(
        e.contains("x509: certificate signed by unknown authority"),
        "{e}"
    );
    // A public CA does not vouch for it either: a client with the webpki
    // roots is refused the same way.
    let roots_only = proto::https::client_builder(&proto::https::Verify::Roots)
        .expect("builder")
        .build()
        .expect("client");
    let e = roots_only
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect_err("not a public certificate");
    assert_eq!(
        proto::https::cert_problem(&e),
        Some(proto::https::CertProblem::UnknownAuthority)
    );

    // The right CA but a certificate for another address: refused too.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    write(&elsewhere.join("token"), TOKEN, 0o600);
    let (cert, key) = server_cert(&issuer, &["10.9.9.9"]);
    write(&elsewhere.join("agent.pem"), &cert, 0o644);
    write(&elsewhere.join("agent-key.pem"), &key, 0o600);
    let misnamed = start_agent(
        &elsewhere,
        &elsewhere.join("agent.pem"),
        &elsewhere.join("agent-key.pem"),
    );
    let misnamed_port = misnamed.port();
    let (path, m) = manifest(d, "misnamed", misnamed_port, Some("pki/ca.pem"));
    let e = paas::commands::agents(&path, &m)
        .expect("agents")
        .status("h1")
        .await
        .expect_err("a certificate for another address");
    assert!(
        e.contains("x509: certificate is valid for 10.9.9.9, not 127.0.0.1"),
        "{e}"
    );
    drop(misnamed);

    // (c) Plain HTTP to the TLS port gets no answer: not the deployer
    // without a CA, not a bare client.
    let (path, m) = manifest(d, "plain", port, None);
    let hosts = paas::commands::agents(&path, &m).expect("agents");
    let e = hosts.status("h1").await.expect_err("plain http fails");
    assert!(e.starts_with("agent of h1: "), "{e}");
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .get(format!("http://{}/v1/status", agent.addr))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(r.is_err(), "plain http answered: {r:?}");

    // Failed handshakes leave the agent serving.
    let status = deployer
        .status("h1")
        .await
        .expect("status after the refusals");
    assert_eq!(status.host, "h1");
}

#[test]
fn an_agent_with_a_key_others_can_read_or_a_bad_ca_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(&d.join("token"), TOKEN, 0o600);
    let (_, issuer) = ca("paas agents CA");
    let (cert, key) = server_cert(&issuer, &["127.0.0.1"]);
    write(&d.join("agent.pem"), &cert, 0o644);
    write(&d.join("agent-key.pem"), &key, 0o644);
    let out = agent_command(d, &d.join("agent.pem"), &d.join("agent-key.pem"))
        .output()
        .expect("run agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("agent-key.pem: must be readable by its owner only (chmod 600)"),
        "{err}"
    );
    assert!(!d.join("agent.addr").exists(), "it never listened");

    // A certificate without its key is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_paas"))
        .args(["agent", "--host", "h1", "--state-dir"])
        .arg(d.join("state"))
        .arg("--token-file")
        .arg(d.join("token"))
        .arg("--tls-cert")
        .arg(d.join("agent.pem"))
        .output()
        .expect("run agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));

    // The deployer refuses a CA file with no certificate in it.
    write(&d.join("ca.pem"), "not a certificate\n", 0o644);
    let (path, m) = manifest(d, "lab", 7070, Some("ca.pem"));
    let e = paas::commands::agents(&path, &m)
        .err()
        .expect("a CA file without a certificate");
    assert!(e.message.contains("certificates.ca:"), "{}", e.message);
    assert!(e.message.contains("no certificate"), "{}", e.message);
}
