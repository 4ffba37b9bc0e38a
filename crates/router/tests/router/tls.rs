//! TLS termination: two certificates chosen by SNI, HTTP and HTTPS side by
//! side, HTTP/2 over ALPN. Certificates are made by `openssl` in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::Bus;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and one leaf certificate per entry of `names` (each a list of DNS
/// names). Returns the CA file and (cert, key) files.
fn make_certs(dir: &Path, names: &[&[&str]]) -> (PathBuf, Vec<router::config::TlsCertificate>) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=router-test-ca",
    ]);
    openssl(dir, &args);
    let mut leaves = Vec::new();
    for (i, dns) in names.iter().enumerate() {
        let (key, csr, pem, ext) = (
            format!("leaf{i}.key"),
            format!("leaf{i}.csr"),
            format!("leaf{i}.pem"),
            format!("leaf{i}.ext"),
        );
        let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        std::fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints=CA:FALSE\nsubjectAltName={}\n",
                san.join(",")
            ),
        )
        .expect("ext");
        let subj = format!("/CN={}", dns[0]);
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        leaves.push(router::config::TlsCertificate {
            cert_file: dir.join(pem),
            key_file: dir.join(key),
        });
    }
    (dir.join("ca.pem"), leaves)
}

fn connector(ca: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// GET `/` over TLS with `sni` as server name (verified against the CA).
async fn https_get(
    addr: std::net::SocketAddr,
    ca: &Path,
    sni: &str,
    host: &str,
) -> Result<(StatusCode, String), String> {
    https_get_with(addr, ca, sni, host, "").await
}

/// [`https_get`] with `extra` header lines.
async fn https_get_with(
    addr: std::net::SocketAddr,
    ca: &Path,
    sni: &str,
    host: &str,
    extra: &str,
) -> Result<(StatusCode, String), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let mut tls = connector(ca, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut out)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| format!("bad response: {text}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_sni_next_to_http_and_h2_over_alpn() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ca, certs) = make_certs(dir.path(), &[&["secure.localhost"], &["*.other.localhost"]]);
    let nats = Nats::start().expect("nats-server");
    let bus = Bus::connect(&nats.url, "test").await.expect("bus");
    let mut config = test_config(&nats.url);
    config.tls_listen = Some("127.0.0.1:0".into());
    config.tls_certificates = certs;
    let router = Router::start_with(config).await;
    let tls_addr = router.tls.expect("tls listener");
    let c = client();
    let be = backend("app").await;
    register(&bus, &reg("secure.localhost", be.addr, "s", None)).await;
    register(&bus, &reg("x.other.localhost", be.addr, "o", None)).await;
    wait_status(&c, router.addr, "secure.localhost", StatusCode::OK).await;
    wait_status(&c, router.addr, "x.other.localhost", StatusCode::OK).await;

    // Each name gets the certificate that is valid for it (the client
    // verifies the name), on the same HTTPS port.
    let (s, body) = https_get(tls_addr, &ca, "secure.localhost", "secure.localhost")
        .await
        .expect("https secure");
    assert_eq!((s, body.as_str()), (StatusCode::OK, "app"));
    let (s, body) = https_get(tls_addr, &ca, "x.other.localhost", "x.other.localhost")
        .await
        .expect("https other");
    assert_eq!((s, body.as_str()), (StatusCode::OK, "app"));
    // Unknown name: the default (first) certificate, which does not match.
    let err = https_get(tls_addr, &ca, "nope.localhost", "nope.localhost")
        .await
        .expect_err("name mismatch");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The app learns the request came over HTTPS.
    let h = be.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(h["x-forwarded-proto"], "https");
    // Whatever the client claims (issue 13, item 7).
    let (s, _) = https_get_with(
        tls_addr,
        &ca,
        "secure.localhost",
        "secure.localhost",
        "X-Forwarded-Proto: http\r\nX-Forwarded-Client-Cert: Hash=forged\r\nX-Real-IP: 10.9.9.9\r\nX-Forwarded-Host: bank.example\r\nX-Vcap-Request-Id: spoofed\r\n",
    )
    .await
    .expect("https spoofed");
    assert_eq!(s, StatusCode::OK);
    let h = be.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "secure.localhost");
    assert!(!h.contains_key("x-forwarded-client-cert") && !h.contains_key("x-real-ip"));
    assert_ne!(h["x-vcap-request-id"], "spoofed");

    // Plain HTTP still served next to it.
    let (s, _, body) = get(&c, router.addr, "secure.localhost", "/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "app"));

    // HTTP/2 negotiated with ALPN.
    let tcp = tokio::net::TcpStream::connect(tls_addr)
        .await
        .expect("connect");
    let tls = connector(&ca, &[b"h2", b"http/1.1"])
        .connect(ServerName::try_from("secure.localhost").expect("name"), tcp)
        .await
        .expect("tls");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2");
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("https://secure.localhost/")
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("req"),
        )
        .await
        .expect("h2 request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        resp.into_body().collect().await.expect("body").to_bytes(),
        "app"
    );
    router.stop().await;
}
