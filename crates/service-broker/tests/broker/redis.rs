use service_broker::backends::resp::{Reply, Resp};
use service_broker::Kind;

use crate::common::*;

const K: Kind = Kind::Redis;

async fn login(c: &serde_json::Value) -> Result<Resp, service_broker::Error> {
    let port = c["port"].as_u64().expect("port") as u16;
    Resp::connect(
        s(c, "hostname"),
        port,
        Some(s(c, "username")),
        Some(s(c, "password")),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_bind_share_unbind_deprovision() {
    let tb = TestBroker::start().await;
    let mut cleanup = Cleanup::new();
    let iid = new_id();
    cleanup.instance(K, &iid);
    assert_eq!(tb.provision(K, &iid, false).await.0, 201);
    let (b1, b2) = (new_id(), new_id());
    cleanup.binding(&iid, &b1);
    cleanup.binding(&iid, &b2);
    let (st, body) = tb.bind(K, &iid, &b1).await;
    assert_eq!(st, 201, "{body}");
    let c1 = creds(&body, "redis");
    let (st, body) = tb.bind(K, &iid, &b2).await;
    assert_eq!(st, 201, "{body}");
    let c2 = creds(&body, "redis");
    let prefix = s(&c1, "name").to_string();
    assert!(prefix.ends_with(':'));

    let mut app1 = login(&c1).await.expect("app 1 logs in");
    let key = format!("{prefix}greeting");
    app1.ok(&["SET", &key, "from app 1"]).await.expect("set");
    let mut app2 = login(&c2).await.expect("app 2 logs in");
    assert_eq!(
        app2.ok(&["GET", &key]).await.expect("get"),
        Reply::Bulk(Some(b"from app 1".to_vec()))
    );
    // Only its prefix, no admin or keyspace-wide commands.
    for cmd in [
        vec!["SET", "not-mine", "x"],
        vec!["FLUSHALL"],
        vec!["KEYS", "*"],
        vec!["SCAN", "0"],
        vec!["CONFIG", "GET", "*"],
    ] {
        assert!(
            matches!(app1.cmd(&cmd).await.expect("reply"), Reply::Error(_)),
            "{cmd:?} allowed"
        );
    }

    let (st, body) = tb.unbind(K, &iid, &b1).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        app1.cmd(&["PING"]).await.is_err(),
        "unbound client still connected"
    );
    assert!(
        login(&c1).await.is_err(),
        "unbound credentials still log in"
    );
    app2.ok(&["PING"]).await.expect("app 2 still works");
    assert_eq!(tb.unbind(K, &iid, &b1).await.0, 410);

    assert_eq!(tb.deprovision(K, &iid).await.0, 200);
    let mut admin = Resp::connect("127.0.0.1", 6379, None, None)
        .await
        .expect("admin");
    assert_eq!(
        admin.ok(&["EXISTS", &key]).await.expect("exists"),
        Reply::Int(0),
        "keys left"
    );
    assert!(login(&c2).await.is_err(), "users left");
    assert_eq!(tb.deprovision(K, &iid).await.0, 410);
}

/// The AUTH guard (`[redis] guard_listen`): credentials name it; a
/// connection must log in as its binding's user first and may not log in
/// again (as `default`, whose password is empty here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_lets_in_only_binding_users() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tb = TestBroker::start_changed(Default::default(), |c| {
        if let Some(r) = c.redis.as_mut() {
            r.guard_listen = Some("127.0.0.1:0".parse().expect("addr"));
        }
    })
    .await;
    let mut cleanup = Cleanup::new();
    let iid = new_id();
    cleanup.instance(K, &iid);
    assert_eq!(tb.provision(K, &iid, false).await.0, 201);
    let b = new_id();
    cleanup.binding(&iid, &b);
    let (st, body) = tb.bind(K, &iid, &b).await;
    assert_eq!(st, 201, "{body}");
    let c = creds(&body, "redis");
    assert_ne!(c["port"], 6379, "credentials name the guard: {c}");
    // A binding's user gets in and works under its prefix.
    let mut app = login(&c).await.expect("through the guard");
    let key = format!("{}k", s(&c, "name"));
    app.ok(&["SET", &key, "v"]).await.expect("set");
    assert_eq!(
        app.ok(&["GET", &key]).await.expect("get"),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    let port = c["port"].as_u64().expect("port") as u16;
    let raw = |cmds: Vec<Vec<&'static str>>| async move {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut bytes = Vec::new();
        for c in cmds {
            bytes.extend(format!("*{}\r\n", c.len()).into_bytes());
            for a in c {
                bytes.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
            }
        }
        conn.write_all(&bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut out),
        )
        .await;
        String::from_utf8_lossy(&out).to_string()
    };
    // Not logged in: refused, even as default (Redis would let it in).
    let out = raw(vec![vec!["GET", "anything"]]).await;
    assert!(out.starts_with("-NOPERM"), "{out}");
    let out = raw(vec![vec!["AUTH", "default", "x"], vec!["GET", "anything"]]).await;
    assert!(out.starts_with("-NOPERM") && !out.contains("$"), "{out}");
    let out = raw(vec![vec!["AUTH", "x"]]).await;
    assert!(out.starts_with("-NOPERM"), "{out}");
    // A wrong password: Redis's error, and the connection ends.
    let user: &'static str = Box::leak(s(&c, "username").to_string().into_boxed_str());
    let pass: &'static str = Box::leak(s(&c, "password").to_string().into_boxed_str());
    let out = raw(vec![vec!["AUTH", user, "wrong"], vec!["PING"]]).await;
    assert!(
        out.starts_with("-WRONGPASS") && !out.contains("PONG"),
        "{out}"
    );
    // Logged in, then trying to become default: cut off before it reaches Redis.
    let out = raw(vec![
        vec!["AUTH", user, pass],
        vec!["PING"],
        vec!["AUTH", "default", "x"],
        vec!["GET", "not-mine"],
    ])
    .await;
    assert!(out.starts_with("+OK\r\n+PONG\r\n"), "{out}");
    assert!(
        !out.contains("$-1") && !out.contains("NOPERM this user"),
        "{out}"
    );
}
