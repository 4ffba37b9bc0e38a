//! Name resolution for the HTTP client: `localhost` and `*.localhost` go to
//! 127.0.0.1 without asking the system resolver; other names use
//! `tokio::net::lookup_host`.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, Copy, Default)]
pub struct LocalhostResolver;

/// True for `localhost` and any name under `.localhost` (case-insensitive,
/// trailing dot allowed).
pub fn is_localhost(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

pub async fn resolve_name(name: &str) -> std::io::Result<Vec<SocketAddr>> {
    if is_localhost(name) {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)]);
    }
    Ok(tokio::net::lookup_host((name, 0)).await?.collect())
}

impl Resolve for LocalhostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_name(&name).await?;
            let it: Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn localhost_names() {
        assert!(is_localhost("localhost"));
        assert!(is_localhost("api.sys.localhost"));
        assert!(is_localhost("MyApp.LOCALHOST."));
        assert!(!is_localhost("notlocalhost"));
        assert!(!is_localhost("localhost.example.com"));
    }

    #[tokio::test]
    async fn resolver_maps_localhost_subdomains_to_loopback() {
        let r = LocalhostResolver;
        let name = Name::from_str("myapp.apps.localhost").expect("name");
        let addrs: Vec<SocketAddr> = r.resolve(name).await.expect("resolve").collect();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    }

    #[tokio::test]
    async fn other_names_use_the_system_resolver() {
        let addrs = resolve_name("127.0.0.1").await.expect("resolve literal");
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    }

    #[tokio::test]
    async fn http_client_reaches_a_localhost_subdomain() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.expect("read");
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .expect("write");
            req
        });
        let client = crate::client::http_client().expect("client");
        let body = client
            .get(format!("http://api.sys.localhost:{port}/"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text");
        assert_eq!(body, "ok");
        let req = server.await.expect("join");
        assert!(req
            .to_ascii_lowercase()
            .contains(&format!("host: api.sys.localhost:{port}")));
    }
}
