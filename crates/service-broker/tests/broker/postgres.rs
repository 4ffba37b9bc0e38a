use service_broker::Kind;
use sqlx::{Connection, PgConnection};

use crate::common::*;

const K: Kind = Kind::Postgresql;

async fn admin() -> PgConnection {
    PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("admin connection")
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
    let c1 = creds(&body, "postgres");
    let (st, body) = tb.bind(K, &iid, &b2).await;
    assert_eq!(st, 201, "{body}");
    let c2 = creds(&body, "postgres");
    assert_eq!(c1["name"], c2["name"]);
    assert_ne!(c1["username"], c2["username"]);

    // App 1 writes, app 2 reads and writes the same table.
    let mut app1 = PgConnection::connect(s(&c1, "uri"))
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
    let mut app2 = PgConnection::connect(s(&c2, "uri"))
        .await
        .expect("app 2 connects");
    let v: String = sqlx::query_scalar("SELECT v FROM notes")
        .fetch_one(&mut app2)
        .await
        .expect("select");
    assert_eq!(v, "from app 1");
    sqlx::query("INSERT INTO notes VALUES ('from app 2')")
        .execute(&mut app2)
        .await
        .expect("app 2 writes");

    // Another instance's database refuses these credentials.
    let other = new_id();
    cleanup.instance(K, &other);
    assert_eq!(tb.provision(K, &other, false).await.0, 201);
    let other_db = service_broker::names::instance_name(&other);
    let wrong = format!(
        "postgres://{}:{}@127.0.0.1:5432/{other_db}",
        s(&c1, "username"),
        s(&c1, "password")
    );
    assert!(
        PgConnection::connect(&wrong).await.is_err(),
        "connected to another instance's database"
    );

    // Unbind ends app 1's session and its logins; app 2 goes on.
    let (st, body) = tb.unbind(K, &iid, &b1).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        sqlx::query("SELECT 1").execute(&mut app1).await.is_err(),
        "unbound session still works"
    );
    assert!(
        PgConnection::connect(s(&c1, "uri")).await.is_err(),
        "unbound credentials still log in"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(&mut app2)
        .await
        .expect("app 2 still works");
    assert_eq!(n, 2);
    assert_eq!(tb.unbind(K, &iid, &b1).await.0, 410);

    // Deprovision drops the database and the roles.
    let db = s(&c2, "name").to_string();
    assert_eq!(tb.deprovision(K, &iid).await.0, 200);
    assert!(
        sqlx::query("SELECT 1").execute(&mut app2).await.is_err(),
        "session survived deprovision"
    );
    let mut admin = admin().await;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM pg_database WHERE datname = $1) + (SELECT COUNT(*) FROM pg_roles WHERE rolname IN ($1, $2, $3))",
    )
    .bind(&db)
    .bind(s(&c1, "username"))
    .bind(s(&c2, "username"))
    .fetch_one(&mut admin)
    .await
    .expect("admin query");
    assert_eq!(left, 0, "database or roles left");
    assert_eq!(tb.deprovision(K, &iid).await.0, 410);
    assert_eq!(
        tb.call(
            "GET",
            &format!("/v2/service_instances/{iid}/last_operation"),
            None
        )
        .await
        .0,
        410
    );
    assert_eq!(tb.deprovision(K, &other).await.0, 200);
}
