//! HTTP API tests: the axum router driven with `oneshot`, no NATS (bus-less context).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use cloud_controller::{api, blobstore::BlobStore, store::Store, Config, Ctx};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{eventually, multipart, zip_bytes};

pub struct Api {
    pub router: Router,
    /// The internal API (its own listener in a running controller).
    pub internal: Router,
    pub ctx: Ctx,
    pub token: String,
    _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Api {
    pub async fn new() -> Api {
        Api::open(None).await
    }

    /// A controller on `database_url` (default: SQLite in a temp dir).
    pub async fn open(database_url: Option<String>) -> Api {
        Api::open_with(database_url, |_| {}).await
    }

    /// [`Api::open`] with the config changed by `tweak`.
    pub async fn open_with(database_url: Option<String>, tweak: impl FnOnce(&mut Config)) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            database_url,
            internal_api_token: "dev-internal-token".into(),
            ..Config::default()
        };
        tweak(&mut cfg);
        let store = Store::open(&cfg.database_url()).await.expect("store");
        store
            .bootstrap("admin", "admin", "sys.localhost", "localhost")
            .await
            .expect("bootstrap");
        let blobs = BlobStore::for_config(&cfg).await.expect("blobs");
        let ctx = Ctx::new(cfg, store, blobs, None, "http://127.0.0.1:9".into())
            .await
            .expect("ctx");
        let router = api::router(ctx.clone());
        let internal = api::internal_router(ctx.clone());
        // The staging loop, as in a running controller (aborted with the
        // test's runtime).
        drop(cloud_controller::staging::spawn_loop(ctx.clone()));
        let mut a = Api {
            router,
            internal,
            ctx,
            token: String::new(),
            _dir: dir,
        };
        let r = a.login("admin", "admin").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        a.token = r.body["access_token"].as_str().expect("token").to_string();
        a
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        self.send_to(&self.router, method, path, headers, body)
            .await
    }

    /// A request to the internal API's listener (`/internal/*`).
    pub async fn send_internal(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        self.send_to(&self.internal, method, path, headers, body)
            .await
    }

    async fn send_to(
        &self,
        router: &axum::Router,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "api.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = router
            .clone()
            .oneshot(b.body(Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    /// The response itself, its body unread (log streams never end).
    pub async fn open_unread(&self, path: &str) -> axum::response::Response {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", "api.test")
            .header("authorization", format!("bearer {}", self.token))
            .body(Body::empty())
            .expect("request");
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    /// A call with another user's token.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let auth = format!("bearer {token}");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            bytes,
        )
        .await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            bytes,
        )
        .await
    }

    pub async fn login(&self, user: &str, password: &str) -> Resp {
        let form = format!("grant_type=password&username={user}&password={password}&scope=");
        self.send(
            Method::POST,
            "/oauth/token",
            &[
                ("authorization", "Basic Y2Y6"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.into_bytes(),
        )
        .await
    }

    pub async fn space_guid(&self) -> String {
        let r = self.call(Method::GET, "/v3/spaces?names=dev", None).await;
        r.body["resources"][0]["guid"]
            .as_str()
            .expect("space")
            .to_string()
    }

    /// A new bits package of a new app `app`; its guid.
    pub async fn new_package(&self, app: &str) -> String {
        let app = self.create_app(app).await;
        let r = self
            .call(
                Method::POST,
                "/v3/packages",
                Some(
                    json!({"type": "bits", "relationships": {"app": {"data": {"guid": app["guid"]}}}}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["guid"].as_str().expect("guid").to_string()
    }

    pub async fn create_app(&self, name: &str) -> Value {
        let space = self.space_guid().await;
        let r = self
            .call(
                Method::POST,
                "/v3/apps",
                Some(json!({"name": name, "relationships": {"space": {"data": {"guid": space}}}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    pub async fn upload(&self, package: &str, data: &[u8]) -> Resp {
        let (ct, body) = multipart("bits", data);
        let auth = format!("bearer {}", self.token);
        self.send(
            Method::POST,
            &format!("/v3/packages/{package}/upload"),
            &[("authorization", &auth), ("content-type", &ct)],
            body,
        )
        .await
    }
}

fn invalid_token_body() -> Value {
    json!({"errors": [{"code": 1000, "title": "CF-InvalidAuthToken", "detail": "Invalid Auth Token"}]})
}

#[tokio::test]
async fn root_links_are_absolute_and_public() {
    let a = Api::new().await;
    let r = a
        .send(Method::GET, "/", &[("x-forwarded-proto", "https")], vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["links"]["self"]["href"], "https://api.test");
    assert_eq!(
        r.body["links"]["cloud_controller_v3"]["href"],
        "https://api.test/v3"
    );
    assert_eq!(r.body["links"]["uaa"]["href"], "https://api.test");
    assert_eq!(r.body["links"]["login"]["href"], "https://api.test");
    let r = a.send(Method::GET, "/", &[], vec![]).await;
    assert_eq!(r.body["links"]["self"]["href"], "http://api.test");
}

#[tokio::test]
async fn tokens_and_401s() {
    let a = Api::new().await;
    // Missing, malformed and forged tokens.
    let r = a.send(Method::GET, "/v3/apps", &[], vec![]).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::UNAUTHORIZED, invalid_token_body())
    );
    let r = a
        .send(
            Method::GET,
            "/v3/apps",
            &[("authorization", "bearer nonsense")],
            vec![],
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::UNAUTHORIZED, invalid_token_body())
    );
    let mut forged = a.token.clone();
    forged.push('x');
    let r = a
        .send(
            Method::GET,
            "/v3/apps",
            &[("authorization", &format!("bearer {forged}"))],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Expired token.
    let now = chrono::Utc::now().timestamp();
    let claims = cloud_controller::auth::Claims::new(
        "u",
        "admin",
        vec!["cloud_controller.admin".into()],
        cloud_controller::auth::TokenKind::Access,
        10,
        now - 100,
    );
    let expired = a.ctx.keys.ring().sign(&claims);
    let r = a
        .send(
            Method::GET,
            "/v3/apps",
            &[("authorization", &format!("bearer {expired}"))],
            vec![],
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::UNAUTHORIZED, invalid_token_body())
    );
    // Scheme is case-insensitive.
    let r = a
        .send(
            Method::GET,
            "/v3/apps",
            &[("authorization", &format!("Bearer {}", a.token))],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Wrong password.
    let r = a.login("admin", "nope").await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized", "error_description": "Bad credentials"})
        )
    );
    let r = a.login("nobody", "admin").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Token response shape and refresh grant.
    let r = a.login("admin", "admin").await;
    for k in [
        "access_token",
        "refresh_token",
        "expires_in",
        "scope",
        "jti",
    ] {
        assert!(!r.body[k].is_null(), "missing {k}: {:?}", r.body);
    }
    assert_eq!(r.body["token_type"], "bearer");
    let refresh = r.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    for _ in 0..2 {
        let form = format!("grant_type=refresh_token&refresh_token={refresh}");
        let r = a
            .send(
                Method::POST,
                "/oauth/token",
                &[
                    ("authorization", "Basic Y2Y6"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form.into_bytes(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let t = r.body["access_token"].as_str().expect("access");
        let r = a
            .send(
                Method::GET,
                "/v3/organizations",
                &[("authorization", &format!("bearer {t}"))],
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // An access token is not a refresh token.
    let form = format!("grant_type=refresh_token&refresh_token={}", a.token);
    let r = a
        .send(
            Method::POST,
            "/oauth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            form.into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn error_shapes_and_pagination() {
    let a = Api::new().await;
    let r = a.call(Method::GET, "/v3/apps/does-not-exist", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        json!({"errors": [{"code": 10010, "title": "CF-ResourceNotFound", "detail": "App not found"}]})
    );

    let auth = format!("bearer {}", a.token);
    let r = a
        .send(
            Method::POST,
            "/v3/apps",
            &[("authorization", &auth)],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["code"], 1001);
    assert_eq!(r.body["errors"][0]["title"], "CF-MessageParseError");

    let r = a
        .call(Method::POST, "/v3/apps", Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["title"], "CF-UnprocessableEntity");

    for i in 0..3 {
        a.create_app(&format!("app{i}")).await;
    }
    let space = a.space_guid().await;
    let r = a
        .call(
            Method::POST,
            "/v3/apps",
            Some(json!({"name": "app1", "relationships": {"space": {"data": {"guid": space}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["title"], "CF-UniquenessError");

    let r = a.call(Method::GET, "/v3/apps?per_page=2", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let p = &r.body["pagination"];
    assert_eq!(p["total_results"], 3);
    assert_eq!(p["total_pages"], 2);
    assert_eq!(
        p["first"]["href"],
        "http://api.test/v3/apps?page=1&per_page=2"
    );
    assert_eq!(
        p["next"]["href"],
        "http://api.test/v3/apps?page=2&per_page=2"
    );
    assert!(p["previous"].is_null());
    assert_eq!(r.body["resources"].as_array().expect("resources").len(), 2);
    let next = a
        .call(Method::GET, "/v3/apps?page=2&per_page=2", None)
        .await;
    assert_eq!(next.body["resources"][0]["name"], "app2");

    let r = a.call(Method::GET, "/v3/apps?names=app0,app2", None).await;
    let names: Vec<&str> = r.body["resources"]
        .as_array()
        .expect("res")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, ["app0", "app2"]);
    assert_eq!(
        r.body["resources"][0]["links"]["self"]["href"]
            .as_str()
            .map(|s| s.starts_with("http://api.test/v3/apps/")),
        Some(true)
    );

    let r = a.call(Method::GET, "/v3/nothing-here", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["errors"][0]["code"].is_number());
}

#[tokio::test]
async fn package_upload_valid_and_corrupt() {
    let a = Api::new().await;
    let app = a.create_app("bits").await;
    let app_guid = app["guid"].as_str().expect("guid");
    let pkg = a
        .call(
            Method::POST,
            "/v3/packages",
            Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": app_guid}}}})),
        )
        .await;
    assert_eq!(pkg.status, StatusCode::CREATED, "{:?}", pkg.body);
    assert_eq!(pkg.body["state"], "AWAITING_UPLOAD");
    let pkg_guid = pkg.body["guid"].as_str().expect("pkg");

    let zip = zip_bytes(&[("app.py", "print('hi')\n"), ("requirements.txt", "")]);
    let r = a.upload(pkg_guid, &zip).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "READY");
    let sha = r.body["data"]["checksum"]["value"]
        .as_str()
        .expect("sha")
        .to_string();
    assert_eq!(sha.len(), 64);
    assert!(
        a.ctx.blobs.exists(&sha).await,
        "blob stored content-addressed"
    );
    let r = a
        .call(Method::GET, &format!("/v3/packages/{pkg_guid}"), None)
        .await;
    assert_eq!(r.body["state"], "READY");

    // Signed download serves the same bytes; a bad signature is 403.
    let url = a.ctx.signed_url(
        "GET",
        &format!("/internal/v1/packages/{pkg_guid}/download"),
        60,
    );
    let path = url.trim_start_matches("http://127.0.0.1:9");
    let r = a.send_internal(Method::GET, path, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.raw, zip);
    // Not on the public listener, even correctly signed.
    let r = a.send(Method::GET, path, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .send_internal(
            Method::GET,
            &format!("/internal/v1/packages/{pkg_guid}/download?expires=99999999999&signature=00"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A corrupt zip: 422, package FAILED, app untouched.
    let before = a
        .call(Method::GET, &format!("/v3/apps/{app_guid}"), None)
        .await
        .body;
    let pkg2 = a
        .call(
            Method::POST,
            "/v3/packages",
            Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": app_guid}}}})),
        )
        .await;
    let pkg2_guid = pkg2.body["guid"].as_str().expect("pkg2");
    let mut corrupt = zip.clone();
    let mid = corrupt.len() / 2;
    corrupt.truncate(mid);
    for garbage in [corrupt, b"this is not a zip at all".to_vec()] {
        let r = a.upload(pkg2_guid, &garbage).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.body["errors"][0]["title"], "CF-UnprocessableEntity");
        assert!(r.body["errors"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("zip"));
        let p = a
            .call(Method::GET, &format!("/v3/packages/{pkg2_guid}"), None)
            .await;
        assert_eq!(p.body["state"], "FAILED");
        assert!(p.body["data"]["error"].as_str().is_some());
    }
    let after = a
        .call(Method::GET, &format!("/v3/apps/{app_guid}"), None)
        .await
        .body;
    assert_eq!(before, after);
    // The first package is still READY.
    let r = a
        .call(Method::GET, &format!("/v3/packages/{pkg_guid}"), None)
        .await;
    assert_eq!(r.body["state"], "READY");
}

#[tokio::test]
async fn app_lifecycle_without_deas() {
    let a = Api::new().await;
    let app = a.create_app("life").await;
    let g = app["guid"].as_str().expect("guid");
    assert_eq!(app["state"], "STOPPED");
    assert_eq!(app["lifecycle"]["data"]["stack"], "host");

    // Start needs a droplet.
    let r = a
        .call(Method::POST, &format!("/v3/apps/{g}/actions/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Env vars: set, delete with null.
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/apps/{g}/environment_variables"),
            Some(json!({"var": {"A": "1", "B": "2"}})),
        )
        .await;
    assert_eq!(r.body["var"], json!({"A": "1", "B": "2"}));
    let r = a
        .call(
            Method::PATCH,
            &format!("/v3/apps/{g}/environment_variables"),
            Some(json!({"var": {"A": null}})),
        )
        .await;
    assert_eq!(r.body["var"], json!({"B": "2"}));
    let r = a
        .call(Method::GET, &format!("/v3/apps/{g}/env"), None)
        .await;
    assert_eq!(r.body["environment_variables"], json!({"B": "2"}));
    assert_eq!(
        r.body["application_env_json"]["VCAP_APPLICATION"]["application_name"],
        "life"
    );

    // Rename and buildpack.
    let r = a.call(Method::PATCH, &format!("/v3/apps/{g}"), Some(json!({"name": "life2", "lifecycle": {"type": "buildpack", "data": {"buildpacks": ["python"]}}}))).await;
    assert_eq!(
        (
            r.body["name"].clone(),
            r.body["lifecycle"]["data"]["buildpacks"].clone()
        ),
        (json!("life2"), json!(["python"]))
    );

    // Process: scale, update, stats.
    let r = a
        .call(Method::GET, &format!("/v3/apps/{g}/processes/web"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let pg = r.body["guid"].as_str().expect("process").to_string();
    let r = a
        .call(
            Method::POST,
            &format!("/v3/processes/{pg}/actions/scale"),
            Some(json!({"instances": 3, "memory_in_mb": 128})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        (r.body["instances"].clone(), r.body["memory_in_mb"].clone()),
        (json!(3), json!(128))
    );
    let r = a.call(Method::PATCH, &format!("/v3/processes/{pg}"), Some(json!({"command": "./go", "health_check": {"type": "http", "data": {"endpoint": "/health", "timeout": 5}}}))).await;
    assert_eq!(r.body["command"], "./go");
    assert_eq!(
        r.body["health_check"],
        json!({"type": "http", "data": {"timeout": 5, "invocation_timeout": null, "interval": null, "endpoint": "/health"}})
    );
    let r = a
        .call(Method::GET, &format!("/v3/processes/{pg}/stats"), None)
        .await;
    assert_eq!(r.body["resources"].as_array().expect("stats").len(), 3);
    assert_eq!(r.body["resources"][0]["state"], "DOWN");

    // Build without DEAs fails clearly.
    let pkg = a
        .call(
            Method::POST,
            "/v3/packages",
            Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": g}}}})),
        )
        .await;
    let pkg_guid = pkg.body["guid"].as_str().expect("pkg");
    let r = a
        .call(
            Method::POST,
            "/v3/builds",
            Some(json!({"package": {"guid": pkg_guid}})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "package not READY yet"
    );
    a.upload(pkg_guid, &zip_bytes(&[("a", "b")])).await;
    let r = a
        .call(
            Method::POST,
            "/v3/builds",
            Some(json!({"package": {"guid": pkg_guid}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["state"], "STAGING");
    let bg = r.body["guid"].as_str().expect("build").to_string();
    let b = eventually("build to fail", Duration::from_secs(10), || async {
        let r = a.call(Method::GET, &format!("/v3/builds/{bg}"), None).await;
        (r.body["state"] == "FAILED").then_some(r.body)
    })
    .await;
    assert_eq!(
        b["error"],
        "InsufficientResources - no message bus: no DEA can be reached"
    );
    assert_eq!(b["error_code"], "CF-InsufficientResources");
    // The build in the lists, by app and by state.
    for path in [
        format!("/v3/apps/{g}/builds"),
        format!("/v3/builds?app_guids={g}&states=FAILED"),
    ] {
        let r = a.call(Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body["pagination"]["total_results"], 1, "{path}");
        assert_eq!(r.body["resources"][0]["guid"], bg.as_str(), "{path}");
    }
    let r = a.call(Method::GET, "/v3/builds?states=STAGED", None).await;
    assert_eq!(r.body["pagination"]["total_results"], 0);

    // Routes.
    let domains = a.call(Method::GET, "/v3/domains", None).await;
    assert_eq!(domains.body["pagination"]["total_results"], 2);
    let orgs = a.call(Method::GET, "/v3/organizations", None).await;
    let org = orgs.body["resources"][0]["guid"].as_str().expect("org");
    let dd = a
        .call(
            Method::GET,
            &format!("/v3/organizations/{org}/domains/default"),
            None,
        )
        .await;
    assert_eq!(dd.body["name"], "localhost");
    let space = a.space_guid().await;
    let route = a
        .call(Method::POST, "/v3/routes", Some(json!({"host": "life", "relationships": {"domain": {"data": {"guid": dd.body["guid"]}}, "space": {"data": {"guid": space}}}})))
        .await;
    assert_eq!(route.status, StatusCode::CREATED, "{:?}", route.body);
    assert_eq!(route.body["url"], "life.localhost");
    let rg = route.body["guid"].as_str().expect("route");
    let again = a
        .call(Method::POST, "/v3/routes", Some(json!({"host": "life", "relationships": {"domain": {"data": {"guid": dd.body["guid"]}}, "space": {"data": {"guid": space}}}})))
        .await;
    assert_eq!(again.body["errors"][0]["title"], "CF-UniquenessError");
    let r = a
        .call(
            Method::POST,
            &format!("/v3/routes/{rg}/destinations"),
            Some(json!({"destinations": [{"app": {"guid": g}}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["destinations"][0]["app"]["guid"], g);
    let r = a
        .call(Method::GET, &format!("/v3/routes?app_guids={g}"), None)
        .await;
    assert_eq!(r.body["resources"][0]["url"], "life.localhost");
    let r = a.call(Method::GET, "/v3/routes?hosts=other", None).await;
    assert_eq!(r.body["pagination"]["total_results"], 0);
    let r = a
        .call(Method::GET, &format!("/v3/apps/{g}/routes"), None)
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 1);

    // Audit events and API logs.
    let r = a
        .call(
            Method::GET,
            &format!("/v3/audit_events?target_guids={g}"),
            None,
        )
        .await;
    let types: Vec<&str> = r.body["resources"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "audit.app.create",
        "audit.app.update",
        "audit.app.process.scale",
        "audit.app.build.failed",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let r = a
        .call(Method::GET, &format!("/v3/apps/{g}/logs/recent"), None)
        .await;
    assert!(r.body["resources"]
        .as_array()
        .expect("logs")
        .iter()
        .any(|l| l["line"]
            .as_str()
            .is_some_and(|s| s.starts_with("Scaling app"))));

    // Delete → 202 + job COMPLETE.
    let r = a.call(Method::DELETE, &format!("/v3/apps/{g}"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    let job = a
        .call(Method::GET, loc.trim_start_matches("http://api.test"), None)
        .await;
    assert_eq!(job.body["state"], "COMPLETE");
    let r = a.call(Method::GET, &format!("/v3/apps/{g}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn internal_desired_needs_token() {
    let a = Api::new().await;
    let r = a
        .send_internal(Method::GET, "/internal/v1/desired", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let auth = [("authorization", "Bearer dev-internal-token")];
    let r = a
        .send_internal(Method::GET, "/internal/v1/desired", &auth, vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"apps": [], "next_token": null}));
    // The public API has no internal routes, token or not (CF's 404).
    for path in ["/internal/v1/desired", "/internal/v1/route_assignments"] {
        let r = a.send(Method::GET, path, &auth, vec![]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["errors"][0]["title"], "CF-NotFound", "{path}");
    }
    // And the internal API has no public ones.
    let r = a.send_internal(Method::GET, "/v3/apps", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
