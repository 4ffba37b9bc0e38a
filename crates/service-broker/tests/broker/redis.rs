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
