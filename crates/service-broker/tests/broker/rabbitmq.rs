use std::time::Duration;

use service_broker::Kind;

use crate::amqp::Amqp;
use crate::common::*;

const K: Kind = Kind::Rabbitmq;

async fn login(c: &serde_json::Value) -> Result<Amqp, String> {
    let port = c["port"].as_u64().expect("port") as u16;
    Amqp::connect(
        s(c, "hostname"),
        port,
        s(c, "username"),
        s(c, "password"),
        s(c, "name"),
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
    let c1 = creds(&body, "amqp");
    let (st, body) = tb.bind(K, &iid, &b2).await;
    assert_eq!(st, 201, "{body}");
    let c2 = creds(&body, "amqp");
    assert!(s(&c1, "uri").ends_with(&format!("/{}", s(&c1, "name"))));

    let mut app1 = login(&c1).await.expect("app 1 logs in");
    app1.declare_queue("work").await.expect("declare");
    app1.publish("work", b"from app 1").await.expect("publish");
    let mut app2 = login(&c2).await.expect("app 2 logs in");
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        if let Some(m) = app2.get("work").await.expect("get") {
            break Some(m);
        }
        assert!(tokio::time::Instant::now() < end, "no message in 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.as_deref(), Some(&b"from app 1"[..]));
    // Not another vhost.
    assert!(Amqp::connect(
        "127.0.0.1",
        5672,
        s(&c1, "username"),
        s(&c1, "password"),
        "/"
    )
    .await
    .is_err());

    let (st, body) = tb.unbind(K, &iid, &b1).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        app1.closed_within(Duration::from_secs(10)).await,
        "unbound connection still open"
    );
    assert!(
        login(&c1).await.is_err(),
        "unbound credentials still log in"
    );
    app2.declare_queue("work").await.expect("app 2 still works");
    assert_eq!(tb.unbind(K, &iid, &b1).await.0, 410);

    assert_eq!(tb.deprovision(K, &iid).await.0, 200);
    assert!(
        app2.closed_within(Duration::from_secs(10)).await,
        "connection survived deprovision"
    );
    assert!(login(&c2).await.is_err(), "vhost or user left");
    assert_eq!(tb.deprovision(K, &iid).await.0, 410);
}
