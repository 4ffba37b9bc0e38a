use service_broker::Kind;
use sqlx::{Connection, MySqlConnection};

use crate::common::*;

const K: Kind = Kind::Mysql;

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
    let c1 = creds(&body, "mysql");
    let (st, body) = tb.bind(K, &iid, &b2).await;
    assert_eq!(st, 201, "{body}");
    let c2 = creds(&body, "mysql");

    let mut app1 = MySqlConnection::connect(s(&c1, "uri"))
        .await
        .expect("app 1 connects");
    sqlx::query("CREATE TABLE notes (v TEXT)")
        .execute(&mut app1)
        .await
        .expect("create");
    sqlx::query("INSERT INTO notes VALUES ('from app 1')")
        .execute(&mut app1)
        .await
        .expect("insert");
    let mut app2 = MySqlConnection::connect(s(&c2, "uri"))
        .await
        .expect("app 2 connects");
    let v: String = sqlx::query_scalar("SELECT v FROM notes")
        .fetch_one(&mut app2)
        .await
        .expect("select");
    assert_eq!(v, "from app 1");
    // Nothing beyond its database.
    assert!(sqlx::query("SELECT COUNT(*) FROM mysql.user")
        .execute(&mut app1)
        .await
        .is_err());

    let (st, body) = tb.unbind(K, &iid, &b1).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        sqlx::query("SELECT 1").execute(&mut app1).await.is_err(),
        "unbound session still works"
    );
    assert!(
        MySqlConnection::connect(s(&c1, "uri")).await.is_err(),
        "unbound credentials still log in"
    );
    sqlx::query("SELECT 1")
        .execute(&mut app2)
        .await
        .expect("app 2 still works");
    assert_eq!(tb.unbind(K, &iid, &b1).await.0, 410);

    let db = s(&c2, "name").to_string();
    assert_eq!(tb.deprovision(K, &iid).await.0, 200);
    assert!(
        sqlx::query("SELECT 1").execute(&mut app2).await.is_err(),
        "session survived deprovision"
    );
    let mut admin = MySqlConnection::connect("mysql://root@127.0.0.1:3306")
        .await
        .expect("admin");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?) + (SELECT COUNT(*) FROM mysql.user WHERE User IN (?, ?))",
    )
    .bind(&db)
    .bind(s(&c1, "username"))
    .bind(s(&c2, "username"))
    .fetch_one(&mut admin)
    .await
    .expect("admin query");
    assert_eq!(left, 0, "database or users left");
    assert_eq!(tb.deprovision(K, &iid).await.0, 410);
}
