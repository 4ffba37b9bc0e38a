//! The permission matrix, against the controller binary over HTTP (with
//! its nats-server) on SQLite and on Postgres: every route of the
//! authorization policy × ten personas, with the expected outcome of each
//! written out by hand from CF's docs (not derived from the code under
//! test). Fixtures are written through the same database.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use cloud_controller::authz::policy::POLICY;
use cloud_controller::store::{
    Droplet, DropletState, NewUser, PackageState, QuotaKind, QuotaLimits, Store,
};
use serde_json::{json, Value};

use crate::api::Resp;

/// The controller binary, its nats-server and a store on its database.
struct Api {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
    store: Store,
    token: String,
    _nats: testkit::NatsServer,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Api {
    /// Starts `cloud-controller` on `database_url` (default SQLite in its
    /// data dir) and logs in as admin.
    async fn open(database_url: Option<String>) -> Api {
        let nats = testkit::NatsServer::start().expect("nats-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let addr_file = dir.path().join("cc.addr");
        let data = dir.path().join("data");
        let db = database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.join("cc.db").display()));
        let conf = dir.path().join("cc.toml");
        std::fs::write(
            &conf,
            format!(
                "listen = \"127.0.0.1:0\"\naddr_file = \"{}\"\ninternal_listen = \"127.0.0.1:0\"\ninternal_api_token = \"t\"\nnats_url = \"{}\"\ndata_dir = \"{}\"\ndatabase_url = \"{db}\"\n",
                addr_file.display(),
                nats.url,
                data.display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.path().join("cc.log")).expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-controller"))
            .arg("--config")
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cloud-controller");
        let addr = testkit::wait_file(&addr_file, std::time::Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| {
                panic!("{e}: {}", testkit::log_tail(&dir.path().join("cc.log"), 30))
            });
        let store = Store::open(&db).await.expect("store");
        let mut a = Api {
            child,
            base: format!("http://{addr}"),
            http: {
                proto::https::install_ring();
                reqwest::Client::new()
            },
            store,
            token: String::new(),
            _nats: nats,
            _dir: dir,
        };
        let r = a.login("admin", "admin").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        a.token = r.body["access_token"].as_str().expect("token").to_string();
        a
    }

    async fn resp(r: reqwest::Response) -> Resp {
        let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
        let mut headers = axum::http::HeaderMap::new();
        for (k, v) in r.headers() {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                headers.insert(k, v);
            }
        }
        let raw = r.bytes().await.expect("body").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        Api::resp(req.send().await.expect("request")).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_as(&self.token, method, path, body).await
    }

    /// The status only (the body is not read: log streams never end).
    async fn status_of(&self, method: Method, path: &str, token: &str) -> StatusCode {
        let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        StatusCode::from_u16(r.status().as_u16()).expect("status")
    }

    async fn login(&self, user: &str, password: &str) -> Resp {
        let r = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth("cf", Some(""))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .expect("login");
        Api::resp(r).await
    }
}

/// The personas, in the order of each row's expectations.
const PERSONAS: [&str; 10] = [
    "admin",
    "admin_ro",
    "auditor_g",
    "org_mgr",
    "org_user",
    "space_mgr",
    "dev",
    "space_aud",
    "supporter",
    "stranger",
];

/// Which fixture fills a route's path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fx {
    None,
    Victim,
    FreshUaaUser,
    /// A new user holding `organization_user` in org A.
    FreshOrgUser,
    Group,
    GroupMember,
    DevCcUser,
    FreshCcUser,
    OrgA,
    FreshOrg,
    SpaceS,
    FreshSpace,
    OrgRole,
    FreshSpaceRole,
    Flag,
    DefaultQuota,
    SpareOrgQuota,
    FreshOrgQuota,
    SpaceQuota,
    FreshSpaceQuota,
    SpaceQuotaSpace,
    PrivDomain,
    FreshPrivDomain,
    PrivDomainShare,
    App,
    FreshApp,
    AppKind,
    Process,
    /// A new PENDING task of the app (each call gets its own).
    FreshTask,
    /// A revision of the app.
    Revision,
    /// A new PAUSED canary deployment of the app (each call gets its own).
    FreshDeployment,
    /// The app and its `revisions` feature.
    AppFeature,
    Package,
    FreshPackage,
    Build,
    Droplet,
    Route,
    FreshRoute,
    FreshDest,
    Buildpack,
    FreshBuildpack,
    Sg,
    FreshSg,
    SgSpace,
    Event,
    Job,
    /// The services fixtures: a broker with a public plan, a user-provided
    /// instance bound to the app, a managed instance.
    Broker,
    FreshBroker,
    Offering,
    Plan,
    /// A plan of a new broker, enabled for org A only (`org` = A).
    FreshPlanOrg,
    Upsi,
    FreshUpsi,
    Managed,
    Binding,
    FreshBinding,
}

type Params = BTreeMap<&'static str, String>;
type BodyFn = fn(&World, &Params, &str) -> Option<Value>;

/// One route: its fixture, its body, the success status and, per persona
/// (PERSONAS order), `2` success, `F` 403, `N` 404, `U` 422.
struct Row {
    method: &'static str,
    path: &'static str,
    fx: Fx,
    body: BodyFn,
    ok: u16,
    expect: &'static str,
}

fn none(_: &World, _: &Params, _: &str) -> Option<Value> {
    None
}

fn empty(_: &World, _: &Params, _: &str) -> Option<Value> {
    Some(json!({}))
}

// Hand-written outcome patterns (CF's "Permitted roles"):
//                 A  AR GA OM OU SM SD SA SS X
const ALL: &str = "2 2 2 2 2 2 2 2 2 2";
const ADMIN: &str = "2 F F F F F F F F F";
/// Reading a space's content.
const READ: &str = "2 2 2 2 N 2 2 2 2 N";
/// Create/update/delete apps, packages, builds, droplets.
const WRITE: &str = "2 F F F N F 2 F F N";
/// Start, stop, scale, env, routes.
const MANAGE: &str = "2 F F F N F 2 F 2 N";
/// Reading env.
const ENV: &str = "2 2 F F N F 2 F 2 N";
/// Seeing an org (every persona holds a role in org A but the stranger).
const ORG: &str = "2 2 2 2 2 2 2 2 2 N";
/// Org managers' and admins' business in org A.
const ORG_MANAGE: &str = "2 F F 2 F F F F F N";
const ORG_DELETE: &str = "2 F F F F F F F F N";
const SPACE_UPDATE: &str = "2 F F 2 N 2 F F F N";
const SPACE_DELETE: &str = "2 F F 2 N F F F F N";

fn rows() -> Vec<Row> {
    let r = |method, path, fx, body: BodyFn, ok, expect| Row {
        method,
        path,
        fx,
        body,
        ok,
        expect,
    };
    vec![
        // UAA side.
        r("GET", "/Users", Fx::None, none, 200, ADMIN),
        r(
            "POST",
            "/Users",
            Fx::None,
            |_, _, p| Some(json!({"userName": format!("new-{p}"), "password": "pw"})),
            201,
            ADMIN,
        ),
        r("GET", "/Users/{id}", Fx::Victim, none, 200, ADMIN),
        r("DELETE", "/Users/{id}", Fx::FreshUaaUser, none, 200, ADMIN),
        r(
            "PUT",
            "/Users/{id}/password",
            Fx::Victim,
            |_, _, _| Some(json!({"password": "pw2"})),
            200,
            ADMIN,
        ),
        r("GET", "/Groups", Fx::None, none, 200, ADMIN),
        r(
            "POST",
            "/Groups/{id}/members",
            Fx::Group,
            |w, _, _| Some(json!({"value": w.victim, "type": "USER", "origin": "uaa"})),
            201,
            ADMIN,
        ),
        r(
            "DELETE",
            "/Groups/{id}/members/{member}",
            Fx::GroupMember,
            none,
            200,
            ADMIN,
        ),
        // Users.
        r("GET", "/v3/users", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/users",
            Fx::FreshUaaUser,
            |_, p, _| Some(json!({"guid": p["id"]})),
            201,
            ADMIN,
        ),
        r("GET", "/v3/users/{guid}", Fx::DevCcUser, none, 200, ORG),
        r(
            "DELETE",
            "/v3/users/{guid}",
            Fx::FreshCcUser,
            none,
            202,
            ADMIN,
        ),
        // Orgs.
        r("GET", "/v3/organizations", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/organizations",
            Fx::None,
            |_, _, p| Some(json!({"name": format!("org-{p}")})),
            201,
            ADMIN,
        ),
        r("GET", "/v3/organizations/{guid}", Fx::OrgA, none, 200, ORG),
        r(
            "PATCH",
            "/v3/organizations/{guid}",
            Fx::OrgA,
            |_, _, _| Some(json!({"name": "org-a"})),
            200,
            ORG_MANAGE,
        ),
        r(
            "DELETE",
            "/v3/organizations/{guid}",
            Fx::FreshOrg,
            none,
            202,
            ORG_DELETE,
        ),
        r(
            "GET",
            "/v3/organizations/{guid}/domains",
            Fx::OrgA,
            none,
            200,
            ORG,
        ),
        r(
            "GET",
            "/v3/organizations/{guid}/domains/default",
            Fx::OrgA,
            none,
            200,
            ORG,
        ),
        r(
            "GET",
            "/v3/organizations/{guid}/usage_summary",
            Fx::OrgA,
            none,
            200,
            ORG,
        ),
        // Spaces.
        r("GET", "/v3/spaces", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/spaces",
            Fx::None,
            |w, _, p| {
                Some(
                    json!({"name": format!("s-{p}"), "relationships": {"organization": {"data": {"guid": w.org_a}}}}),
                )
            },
            201,
            "2 F F 2 F F F F F U",
        ),
        r("GET", "/v3/spaces/{guid}", Fx::SpaceS, none, 200, READ),
        r(
            "PATCH",
            "/v3/spaces/{guid}",
            Fx::SpaceS,
            |_, _, _| Some(json!({"name": "s"})),
            200,
            SPACE_UPDATE,
        ),
        r(
            "DELETE",
            "/v3/spaces/{guid}",
            Fx::FreshSpace,
            none,
            202,
            SPACE_DELETE,
        ),
        r(
            "POST",
            "/v3/spaces/{guid}/actions/apply_manifest",
            Fx::SpaceS,
            |_, _, _| {
                Some(
                    json!({"applications": [{"name": "x", "processes": [{"type": "worker", "instances": 0}]}]}),
                )
            },
            202,
            WRITE,
        ),
        r(
            "GET",
            "/v3/spaces/{guid}/running_security_groups",
            Fx::SpaceS,
            none,
            200,
            READ,
        ),
        r(
            "GET",
            "/v3/spaces/{guid}/staging_security_groups",
            Fx::SpaceS,
            none,
            200,
            READ,
        ),
        // Roles.
        r("GET", "/v3/roles", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/roles",
            Fx::FreshOrgUser,
            |w, p, _| {
                Some(
                    json!({"type": "space_auditor", "relationships": {"user": {"data": {"guid": p["id"]}}, "space": {"data": {"guid": w.space_s}}}}),
                )
            },
            201,
            "2 F F 2 U 2 F F F U",
        ),
        r("GET", "/v3/roles/{guid}", Fx::OrgRole, none, 200, ORG),
        r(
            "DELETE",
            "/v3/roles/{guid}",
            Fx::FreshSpaceRole,
            none,
            202,
            SPACE_UPDATE,
        ),
        // Feature flags.
        r("GET", "/v3/feature_flags", Fx::None, none, 200, ALL),
        r("GET", "/v3/feature_flags/{name}", Fx::Flag, none, 200, ALL),
        r(
            "PATCH",
            "/v3/feature_flags/{name}",
            Fx::Flag,
            |_, _, _| Some(json!({"enabled": false})),
            200,
            ADMIN,
        ),
        // Quotas.
        r("GET", "/v3/organization_quotas", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/organization_quotas",
            Fx::None,
            |_, _, p| Some(json!({"name": format!("q-{p}")})),
            201,
            ADMIN,
        ),
        r(
            "GET",
            "/v3/organization_quotas/{guid}",
            Fx::DefaultQuota,
            none,
            200,
            ALL,
        ),
        r(
            "PATCH",
            "/v3/organization_quotas/{guid}",
            Fx::SpareOrgQuota,
            |_, _, _| Some(json!({"apps": {"total_memory_in_mb": 1024}})),
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/organization_quotas/{guid}",
            Fx::FreshOrgQuota,
            none,
            202,
            ADMIN,
        ),
        r(
            "POST",
            "/v3/organization_quotas/{guid}/relationships/organizations",
            Fx::DefaultQuota,
            |w, _, _| Some(json!({"data": [{"guid": w.org_a}]})),
            200,
            ADMIN,
        ),
        r("GET", "/v3/space_quotas", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/space_quotas",
            Fx::None,
            |w, _, p| {
                Some(
                    json!({"name": format!("sq-{p}"), "relationships": {"organization": {"data": {"guid": w.org_a}}}}),
                )
            },
            201,
            "2 F F 2 F F F F F U",
        ),
        r(
            "GET",
            "/v3/space_quotas/{guid}",
            Fx::SpaceQuota,
            none,
            200,
            ORG,
        ),
        r(
            "PATCH",
            "/v3/space_quotas/{guid}",
            Fx::SpaceQuota,
            |_, _, _| Some(json!({"routes": {"total_routes": 100}})),
            200,
            ORG_MANAGE,
        ),
        r(
            "DELETE",
            "/v3/space_quotas/{guid}",
            Fx::FreshSpaceQuota,
            none,
            202,
            ORG_MANAGE,
        ),
        r(
            "POST",
            "/v3/space_quotas/{guid}/relationships/spaces",
            Fx::SpaceQuota,
            |w, _, _| Some(json!({"data": [{"guid": w.space_s}]})),
            200,
            ORG_MANAGE,
        ),
        r(
            "DELETE",
            "/v3/space_quotas/{guid}/relationships/spaces/{space}",
            Fx::SpaceQuotaSpace,
            none,
            204,
            ORG_MANAGE,
        ),
        // Domains.
        r("GET", "/v3/domains", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/domains",
            Fx::None,
            |w, _, p| {
                Some(
                    json!({"name": format!("{}.a.example.com", p.replace('_', "-")), "relationships": {"organization": {"data": {"guid": w.org_a}}}}),
                )
            },
            201,
            "2 F F 2 F F F F F U",
        ),
        r("GET", "/v3/domains/{guid}", Fx::PrivDomain, none, 200, ORG),
        r(
            "DELETE",
            "/v3/domains/{guid}",
            Fx::FreshPrivDomain,
            none,
            202,
            ORG_MANAGE,
        ),
        // Sharing with org B needs managing org B too: the org manager of
        // A alone gets CF's 422.
        r(
            "POST",
            "/v3/domains/{guid}/relationships/shared_organizations",
            Fx::PrivDomain,
            |w, _, _| Some(json!({"data": [{"guid": w.org_b}]})),
            200,
            "2 F F U F F F F F N",
        ),
        r(
            "DELETE",
            "/v3/domains/{guid}/relationships/shared_organizations/{org}",
            Fx::PrivDomainShare,
            none,
            204,
            ORG_MANAGE,
        ),
        // Apps.
        r("GET", "/v3/apps", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/apps",
            Fx::None,
            |w, _, p| {
                Some(
                    json!({"name": format!("app-{p}"), "relationships": {"space": {"data": {"guid": w.space_s}}}}),
                )
            },
            201,
            "2 F F F U F 2 F F U",
        ),
        r("GET", "/v3/apps/{guid}", Fx::App, none, 200, READ),
        r("PATCH", "/v3/apps/{guid}", Fx::App, empty, 200, WRITE),
        r("DELETE", "/v3/apps/{guid}", Fx::FreshApp, none, 202, WRITE),
        r(
            "POST",
            "/v3/apps/{guid}/actions/start",
            Fx::App,
            none,
            200,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/apps/{guid}/actions/stop",
            Fx::App,
            none,
            200,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/apps/{guid}/actions/restart",
            Fx::App,
            none,
            200,
            MANAGE,
        ),
        r("GET", "/v3/apps/{guid}/env", Fx::App, none, 200, ENV),
        r(
            "GET",
            "/v3/apps/{guid}/environment_variables",
            Fx::App,
            none,
            200,
            ENV,
        ),
        r(
            "PATCH",
            "/v3/apps/{guid}/environment_variables",
            Fx::App,
            |_, _, _| Some(json!({"var": {"K": "v"}})),
            200,
            MANAGE,
        ),
        r("GET", "/v3/apps/{guid}/packages", Fx::App, none, 200, READ),
        r("GET", "/v3/apps/{guid}/droplets", Fx::App, none, 200, READ),
        r(
            "GET",
            "/v3/apps/{guid}/droplets/current",
            Fx::App,
            none,
            200,
            READ,
        ),
        r(
            "GET",
            "/v3/apps/{guid}/relationships/current_droplet",
            Fx::App,
            none,
            200,
            READ,
        ),
        r(
            "PATCH",
            "/v3/apps/{guid}/relationships/current_droplet",
            Fx::App,
            |w, _, _| Some(json!({"data": {"guid": w.droplet}})),
            200,
            WRITE,
        ),
        r("GET", "/v3/apps/{guid}/routes", Fx::App, none, 200, READ),
        r("GET", "/v3/apps/{guid}/builds", Fx::App, none, 200, READ),
        r(
            "GET",
            "/v3/apps/{guid}/logs/recent",
            Fx::App,
            none,
            200,
            READ,
        ),
        r(
            "GET",
            "/v3/apps/{guid}/logs/stream",
            Fx::App,
            none,
            200,
            READ,
        ),
        r("GET", "/v3/apps/{guid}/processes", Fx::App, none, 200, READ),
        r(
            "GET",
            "/v3/apps/{guid}/processes/{kind}",
            Fx::AppKind,
            none,
            200,
            READ,
        ),
        r(
            "PATCH",
            "/v3/apps/{guid}/processes/{kind}",
            Fx::AppKind,
            empty,
            200,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/apps/{guid}/processes/{kind}/actions/scale",
            Fx::AppKind,
            |_, _, _| Some(json!({"instances": 1})),
            202,
            MANAGE,
        ),
        r(
            "GET",
            "/v3/apps/{guid}/processes/{kind}/stats",
            Fx::AppKind,
            none,
            200,
            READ,
        ),
        // Processes, packages, builds, droplets.
        r("GET", "/v3/processes", Fx::None, none, 200, ALL),
        r("GET", "/v3/processes/{guid}", Fx::Process, none, 200, READ),
        r(
            "PATCH",
            "/v3/processes/{guid}",
            Fx::Process,
            empty,
            200,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/processes/{guid}/actions/scale",
            Fx::Process,
            |_, _, _| Some(json!({"instances": 1})),
            202,
            MANAGE,
        ),
        r(
            "GET",
            "/v3/processes/{guid}/stats",
            Fx::Process,
            none,
            200,
            READ,
        ),
        r("GET", "/v3/packages", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/packages",
            Fx::None,
            |w, _, _| {
                Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": w.app}}}}))
            },
            201,
            "2 F F F U F 2 F F U",
        ),
        r("GET", "/v3/packages/{guid}", Fx::Package, none, 200, READ),
        // An empty upload: whoever may upload gets the same 4xx as admin.
        r(
            "POST",
            "/v3/packages/{guid}/upload",
            Fx::FreshPackage,
            empty,
            0,
            WRITE,
        ),
        // Any signed-in user may ask the resource cache (CF).
        r(
            "POST",
            "/v3/resource_matches",
            Fx::None,
            |_, _, _| {
                Some(
                    json!({"resources": [{"checksum": {"value": "a".repeat(40)}, "size_in_bytes": 70000}]}),
                )
            },
            201,
            ALL,
        ),
        r("GET", "/v3/builds", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/builds",
            Fx::None,
            |w, _, _| Some(json!({"package": {"guid": w.package}})),
            201,
            "2 F F F U F 2 F F U",
        ),
        r("GET", "/v3/builds/{guid}", Fx::Build, none, 200, READ),
        r(
            "POST",
            "/v3/apps/{guid}/tasks",
            Fx::App,
            |w, _, _| {
                Some(json!({"command": "echo hi", "memory_in_mb": 64, "droplet_guid": w.droplet}))
            },
            202,
            WRITE,
        ),
        r("GET", "/v3/apps/{guid}/tasks", Fx::App, none, 200, READ),
        r("GET", "/v3/apps/{guid}/revisions", Fx::App, none, 200, READ),
        r(
            "GET",
            "/v3/apps/{guid}/revisions/deployed",
            Fx::App,
            none,
            200,
            READ,
        ),
        r("GET", "/v3/revisions/{guid}", Fx::Revision, none, 200, READ),
        r(
            "GET",
            "/v3/revisions/{guid}/environment_variables",
            Fx::Revision,
            none,
            200,
            ENV,
        ),
        r("GET", "/v3/apps/{guid}/features", Fx::App, none, 200, READ),
        r(
            "GET",
            "/v3/apps/{guid}/features/{name}",
            Fx::AppFeature,
            none,
            200,
            READ,
        ),
        r(
            "PATCH",
            "/v3/apps/{guid}/features/{name}",
            Fx::AppFeature,
            |_, _, _| Some(json!({"enabled": true})),
            200,
            WRITE,
        ),
        r("GET", "/v3/tasks", Fx::None, none, 200, ALL),
        r("GET", "/v3/tasks/{guid}", Fx::FreshTask, none, 200, READ),
        r(
            "POST",
            "/v3/tasks/{guid}/actions/cancel",
            Fx::FreshTask,
            none,
            202,
            MANAGE,
        ),
        r(
            "PUT",
            "/v3/tasks/{guid}/cancel",
            Fx::FreshTask,
            none,
            202,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/deployments",
            Fx::None,
            |w, _, _| {
                Some(
                    json!({"droplet": {"guid": w.droplet}, "relationships": {"app": {"data": {"guid": w.app}}}}),
                )
            },
            201,
            "2 F F F U F 2 F 2 U",
        ),
        r("GET", "/v3/deployments", Fx::None, none, 200, ALL),
        r(
            "GET",
            "/v3/deployments/{guid}",
            Fx::FreshDeployment,
            none,
            200,
            READ,
        ),
        r(
            "POST",
            "/v3/deployments/{guid}/actions/cancel",
            Fx::FreshDeployment,
            none,
            200,
            MANAGE,
        ),
        r(
            "POST",
            "/v3/deployments/{guid}/actions/continue",
            Fx::FreshDeployment,
            none,
            200,
            MANAGE,
        ),
        r("GET", "/v3/droplets/{guid}", Fx::Droplet, none, 200, READ),
        // Routes.
        r("GET", "/v3/routes", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/routes",
            Fx::None,
            |w, _, p| {
                Some(
                    json!({"host": format!("h-{}", p.replace('_', "-")), "relationships": {"domain": {"data": {"guid": w.apps_domain}}, "space": {"data": {"guid": w.space_s}}}}),
                )
            },
            201,
            "2 F F F U F 2 F 2 U",
        ),
        r("GET", "/v3/routes/{guid}", Fx::Route, none, 200, READ),
        r(
            "DELETE",
            "/v3/routes/{guid}",
            Fx::FreshRoute,
            none,
            202,
            MANAGE,
        ),
        r(
            "GET",
            "/v3/routes/{guid}/destinations",
            Fx::Route,
            none,
            200,
            READ,
        ),
        r(
            "POST",
            "/v3/routes/{guid}/destinations",
            Fx::Route,
            |w, _, _| Some(json!({"destinations": [{"app": {"guid": w.app}}]})),
            200,
            MANAGE,
        ),
        r(
            "DELETE",
            "/v3/routes/{guid}/destinations/{dest}",
            Fx::FreshDest,
            none,
            204,
            MANAGE,
        ),
        // Operator actions: the token signing keys (earlier keys keep
        // verifying, so the personas' tokens survive a rotation).
        r("GET", "/v3/admin/token_keys", Fx::None, none, 200, ADMIN),
        r(
            "POST",
            "/v3/admin/actions/rotate_token_keys",
            Fx::None,
            empty,
            200,
            ADMIN,
        ),
        // Platform-wide resources.
        r("GET", "/v3/buildpacks", Fx::None, none, 200, ALL),
        r("GET", "/v3/stacks", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/buildpacks",
            Fx::None,
            |_, _, p| Some(json!({"name": format!("bp-{p}")})),
            201,
            ADMIN,
        ),
        r(
            "GET",
            "/v3/buildpacks/{guid}",
            Fx::Buildpack,
            none,
            200,
            ALL,
        ),
        r(
            "PATCH",
            "/v3/buildpacks/{guid}",
            Fx::Buildpack,
            empty,
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/buildpacks/{guid}",
            Fx::FreshBuildpack,
            none,
            202,
            ADMIN,
        ),
        r(
            "POST",
            "/v3/buildpacks/{guid}/upload",
            Fx::Buildpack,
            empty,
            0,
            ADMIN,
        ),
        r("GET", "/v3/security_groups", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/security_groups",
            Fx::None,
            |_, _, p| Some(json!({"name": format!("sg-{p}")})),
            201,
            ADMIN,
        ),
        r("GET", "/v3/security_groups/{guid}", Fx::Sg, none, 200, ALL),
        r(
            "PATCH",
            "/v3/security_groups/{guid}",
            Fx::Sg,
            empty,
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/security_groups/{guid}",
            Fx::FreshSg,
            none,
            202,
            ADMIN,
        ),
        r(
            "POST",
            "/v3/security_groups/{guid}/relationships/{lifecycle}",
            Fx::SgSpace,
            |w, _, _| Some(json!({"data": [{"guid": w.space_s}]})),
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/security_groups/{guid}/relationships/{lifecycle}/{space}",
            Fx::SgSpace,
            none,
            204,
            ADMIN,
        ),
        // Audit events and jobs.
        r("GET", "/v3/audit_events", Fx::None, none, 200, ALL),
        r("GET", "/v3/audit_events/{guid}", Fx::Event, none, 200, READ),
        r("GET", "/v3/jobs/{guid}", Fx::Job, none, 200, ALL),
        // Services. Brokers: admins'; read by global readers only.
        r("GET", "/v3/service_brokers", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/service_brokers",
            Fx::None,
            |_, _, p| {
                Some(
                    json!({"name": format!("b-{p}"), "url": "http://127.0.0.1:1",
                    "authentication": {"type": "basic", "credentials": {"username": "u", "password": "p"}}}),
                )
            },
            202,
            ADMIN,
        ),
        r(
            "GET",
            "/v3/service_brokers/{guid}",
            Fx::Broker,
            none,
            200,
            "2 2 2 N N N N N N N",
        ),
        r(
            "PATCH",
            "/v3/service_brokers/{guid}",
            Fx::FreshBroker,
            |_, _, p| Some(json!({"name": format!("renamed-{p}")})),
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/service_brokers/{guid}",
            Fx::FreshBroker,
            none,
            202,
            ADMIN,
        ),
        // The catalog: public plans are everyone's.
        r("GET", "/v3/service_offerings", Fx::None, none, 200, ALL),
        r(
            "GET",
            "/v3/service_offerings/{guid}",
            Fx::Offering,
            none,
            200,
            ALL,
        ),
        r("GET", "/v3/service_plans", Fx::None, none, 200, ALL),
        r("GET", "/v3/service_plans/{guid}", Fx::Plan, none, 200, ALL),
        r(
            "GET",
            "/v3/service_plans/{guid}/visibility",
            Fx::Plan,
            none,
            200,
            ALL,
        ),
        r(
            "POST",
            "/v3/service_plans/{guid}/visibility",
            Fx::Plan,
            |_, _, _| Some(json!({"type": "public"})),
            200,
            ADMIN,
        ),
        r(
            "PATCH",
            "/v3/service_plans/{guid}/visibility",
            Fx::Plan,
            |_, _, _| Some(json!({"type": "public"})),
            200,
            ADMIN,
        ),
        r(
            "DELETE",
            "/v3/service_plans/{guid}/visibility/{org}",
            Fx::FreshPlanOrg,
            none,
            204,
            ADMIN,
        ),
        // Instances: space developers'; credentials are secrets.
        r("GET", "/v3/service_instances", Fx::None, none, 200, ALL),
        r(
            "POST",
            "/v3/service_instances",
            Fx::None,
            |w, _, p| {
                Some(json!({"type": "user-provided", "name": format!("ups-{p}"),
                    "relationships": {"space": {"data": {"guid": w.space_s}}}}))
            },
            201,
            "2 F F F U F 2 F F U",
        ),
        r(
            "GET",
            "/v3/service_instances/{guid}",
            Fx::Upsi,
            none,
            200,
            READ,
        ),
        r(
            "PATCH",
            "/v3/service_instances/{guid}",
            Fx::Upsi,
            |_, _, _| Some(json!({"tags": ["t"]})),
            200,
            WRITE,
        ),
        r(
            "DELETE",
            "/v3/service_instances/{guid}",
            Fx::FreshUpsi,
            none,
            204,
            WRITE,
        ),
        r(
            "GET",
            "/v3/service_instances/{guid}/credentials",
            Fx::Upsi,
            none,
            200,
            "2 2 F F N F 2 F F N",
        ),
        r(
            "GET",
            "/v3/service_instances/{guid}/parameters",
            Fx::Managed,
            none,
            200,
            READ,
        ),
        r(
            "GET",
            "/v3/service_instances/{guid}/permissions",
            Fx::Upsi,
            none,
            200,
            ALL,
        ),
        // Bindings: apps' by developers and supporters; details are
        // secrets, not even shown to exist to others.
        r(
            "GET",
            "/v3/service_credential_bindings",
            Fx::None,
            none,
            200,
            ALL,
        ),
        r(
            "POST",
            "/v3/service_credential_bindings",
            Fx::FreshUpsi,
            |w, p, _| {
                Some(json!({"type": "app", "relationships": {
                    "service_instance": {"data": {"guid": p["guid"]}},
                    "app": {"data": {"guid": w.app}}}}))
            },
            201,
            "2 F F F U F 2 F 2 U",
        ),
        r(
            "GET",
            "/v3/service_credential_bindings/{guid}",
            Fx::Binding,
            none,
            200,
            READ,
        ),
        r(
            "DELETE",
            "/v3/service_credential_bindings/{guid}",
            Fx::FreshBinding,
            none,
            204,
            MANAGE,
        ),
        r(
            "GET",
            "/v3/service_credential_bindings/{guid}/details",
            Fx::Binding,
            none,
            200,
            "2 2 N N N N 2 N N N",
        ),
        r(
            "GET",
            "/v3/service_credential_bindings/{guid}/parameters",
            Fx::Binding,
            none,
            200,
            READ,
        ),
    ]
}

/// The fixtures shared by every row.
struct World {
    tokens: Vec<String>,
    org_a: String,
    org_b: String,
    space_s: String,
    victim: String,
    dev_guid: String,
    org_role: String,
    default_quota: String,
    spare_quota: String,
    space_quota: String,
    priv_domain: String,
    apps_domain: String,
    app: String,
    process: String,
    package: String,
    build: String,
    droplet: String,
    route: String,
    buildpack: String,
    sg: String,
    event: String,
    job: String,
    broker: String,
    offering: String,
    plan: String,
    upsi: String,
    managed: String,
    binding: String,
    /// (persona, org-level role types in A, space roles in S).
    roles: Vec<(String, Vec<&'static str>, Vec<&'static str>)>,
}

async fn body_of(a: &Api, r: Resp, what: &str) -> Value {
    let _ = a;
    assert!(r.status.is_success(), "{what}: {} {:?}", r.status, r.body);
    r.body
}

fn guid(v: &Value) -> String {
    v["guid"].as_str().expect("guid").to_string()
}

async fn setup(a: &Api) -> World {
    let s = &a.store;
    let mk_org = |name: &'static str| async move {
        guid(
            &body_of(
                a,
                a.call(
                    Method::POST,
                    "/v3/organizations",
                    Some(json!({"name": name})),
                )
                .await,
                "org",
            )
            .await,
        )
    };
    let org_a = mk_org("org-a").await;
    let org_b = mk_org("org-b").await;
    let space = |name: &'static str, org: String| async move {
        guid(&body_of(a, a.call(Method::POST, "/v3/spaces", Some(json!({"name": name, "relationships": {"organization": {"data": {"guid": org}}}}))).await, "space").await)
    };
    let space_s = space("s", org_a.clone()).await;
    let space_b = space("sb", org_b.clone()).await;
    // Personas: (name, global groups, org roles in A, space roles in S).
    let plan: Vec<(&str, &str, Vec<&'static str>, Vec<&'static str>)> = vec![
        (
            "admin_ro",
            "cloud_controller.admin_read_only",
            vec![],
            vec![],
        ),
        (
            "auditor_g",
            "cloud_controller.global_auditor",
            vec![],
            vec![],
        ),
        (
            "org_mgr",
            "",
            vec!["organization_user", "organization_manager"],
            vec![],
        ),
        ("org_user", "", vec!["organization_user"], vec![]),
        (
            "space_mgr",
            "",
            vec!["organization_user"],
            vec!["space_manager"],
        ),
        (
            "dev",
            "",
            vec!["organization_user"],
            vec!["space_developer"],
        ),
        (
            "space_aud",
            "",
            vec!["organization_user"],
            vec!["space_auditor"],
        ),
        (
            "supporter",
            "",
            vec!["organization_user"],
            vec!["space_supporter"],
        ),
        ("stranger", "", vec![], vec![]),
    ];
    let mut tokens = vec![a.token.clone()];
    let mut roles = Vec::new();
    let mut dev_guid = String::new();
    let mut org_role = String::new();
    for (name, groups, org_roles, space_roles) in &plan {
        let u = s
            .create_uaa_user(&NewUser {
                username: name,
                password: "pw",
                groups,
                ..Default::default()
            })
            .await
            .expect("user");
        s.add_cc_user(&u.guid).await.expect("cc user");
        for t in org_roles {
            let r = s.create_role(t, &u.guid, &org_a, "").await.expect("role");
            if *name == "dev" {
                org_role = r.guid;
            }
        }
        for t in space_roles {
            s.create_role(t, &u.guid, &org_a, &space_s)
                .await
                .expect("role");
        }
        if *name == "stranger" {
            s.create_role("organization_user", &u.guid, &org_b, "")
                .await
                .expect("role");
            s.create_role("space_developer", &u.guid, &org_b, &space_b)
                .await
                .expect("role");
        }
        if *name == "dev" {
            dev_guid = u.guid.clone();
        }
        roles.push((name.to_string(), org_roles.clone(), space_roles.clone()));
        let r = a.login(name, "pw").await;
        assert_eq!(r.status, StatusCode::OK, "login {name}: {:?}", r.body);
        tokens.push(r.body["access_token"].as_str().expect("token").to_string());
    }
    let victim = s.create_user("victim", "pw").await.expect("victim").guid;
    let default_quota = s.default_org_quota().await.expect("quota").guid;
    let spare_quota = s
        .create_quota(
            QuotaKind::Organization,
            "spare",
            "",
            &QuotaLimits::default(),
        )
        .await
        .expect("quota")
        .guid;
    let space_quota = s
        .create_quota(QuotaKind::Space, "sq", &org_a, &QuotaLimits::default())
        .await
        .expect("quota")
        .guid;
    let priv_domain = s
        .create_domain("private.example.com", false, Some(&org_a))
        .await
        .expect("domain")
        .guid;
    let apps_domain = s
        .domain_by_name("localhost")
        .await
        .expect("q")
        .expect("apps domain")
        .guid;
    let app = guid(
        &body_of(
            a,
            a.call(
                Method::POST,
                "/v3/apps",
                Some(json!({"name": "x", "relationships": {"space": {"data": {"guid": space_s}}}})),
            )
            .await,
            "app",
        )
        .await,
    );
    let process = s.web_process(&app).await.expect("process").guid;
    let pkg = s.create_package(&app).await.expect("package");
    s.set_package_state(&pkg.guid, PackageState::Ready, Some("00"), None)
        .await
        .expect("ready");
    let build = s
        .create_build(&app, &pkg.guid, "system", "system")
        .await
        .expect("build");
    let droplet = cloud_controller::store::new_guid();
    let now = cloud_controller::store::now();
    let staged = s
        .finish_staged(
            &build.guid,
            &Droplet {
                guid: droplet.clone(),
                app_guid: app.clone(),
                package_guid: pkg.guid.clone(),
                state: DropletState::Staged,
                sha256: Some("00".into()),
                process_types: json!({"web": "./run"}).to_string(),
                buildpack: None,
                stack: "host".into(),
                error: None,
                created_at: now.clone(),
                updated_at: now,
                buildpacks: None,
                config_vars: None,
            },
        )
        .await
        .expect("droplet");
    assert!(staged);
    let mut x = s.app(&app).await.expect("app");
    x.current_droplet_guid = Some(droplet.clone());
    s.update_app(&x).await.expect("droplet set");
    let route = s
        .create_route("x", &apps_domain, "", &space_s)
        .await
        .expect("route")
        .guid;
    let buildpack = guid(
        &body_of(
            a,
            a.call(Method::POST, "/v3/buildpacks", Some(json!({"name": "bp"})))
                .await,
            "buildpack",
        )
        .await,
    );
    let sg = guid(
        &body_of(
            a,
            a.call(
                Method::POST,
                "/v3/security_groups",
                Some(json!({"name": "sg"})),
            )
            .await,
            "sg",
        )
        .await,
    );
    let event = s
        .events()
        .await
        .expect("events")
        .into_iter()
        .find(|e| e.target_guid == app)
        .expect("app event")
        .guid;
    let del = a
        .call(
            Method::DELETE,
            &format!("/v3/apps/{}", fresh_app(a, &space_s).await),
            None,
        )
        .await;
    let job = del.headers["location"]
        .to_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("job")
        .to_string();
    let svc = services_fixture(s, &space_s, &app).await;
    World {
        tokens,
        org_a,
        org_b,
        space_s,
        victim,
        dev_guid,
        org_role,
        default_quota,
        spare_quota,
        space_quota,
        priv_domain,
        apps_domain,
        app,
        process,
        package: pkg.guid,
        build: build.guid,
        droplet,
        route,
        buildpack,
        sg,
        event,
        job,
        broker: svc.broker,
        offering: svc.offering,
        plan: svc.plan,
        upsi: svc.upsi,
        managed: svc.managed,
        binding: svc.binding,
        roles,
    }
}

struct Services {
    broker: String,
    offering: String,
    plan: String,
    upsi: String,
    managed: String,
    binding: String,
}

/// A broker (at an address nothing answers) with one offering of one plan,
/// written straight to the store; `visibility` for the plan.
async fn broker_with_plan(
    s: &Store,
    visibility: &str,
    orgs: &[String],
) -> (String, String, String) {
    use cloud_controller::store::{CatalogOffering, CatalogPlan};
    let name = cloud_controller::store::new_guid();
    let b = s
        .create_broker(&name, "http://127.0.0.1:1", "u", "p", None)
        .await
        .expect("broker");
    let catalog = [CatalogOffering {
        broker_id: format!("svc-{name}"),
        name: format!("svc-{name}"),
        description: "d".into(),
        tags: "[]".into(),
        requires: "[]".into(),
        bindable: true,
        plan_updateable: false,
        instances_retrievable: false,
        bindings_retrievable: false,
        metadata: "{}".into(),
        plans: vec![CatalogPlan {
            broker_id: "small".into(),
            name: "small".into(),
            description: "d".into(),
            free: true,
            bindable: true,
            plan_updateable: false,
            metadata: "{}".into(),
            maximum_polling_duration: None,
        }],
    }];
    s.sync_catalog(&b.guid, &catalog).await.expect("catalog");
    let offering = s
        .offerings()
        .await
        .expect("offerings")
        .into_iter()
        .find(|o| o.broker_guid == b.guid)
        .expect("offering");
    let plan = s
        .plans()
        .await
        .expect("plans")
        .into_iter()
        .find(|p| p.offering_guid == offering.guid)
        .expect("plan");
    s.set_plan_visibility(&plan.guid, visibility, orgs, true)
        .await
        .expect("visibility");
    (b.guid, offering.guid, plan.guid)
}

async fn upsi(s: &Store, space: &str) -> String {
    s.create_instance(&cloud_controller::store::NewInstance {
        name: &cloud_controller::store::new_guid(),
        kind: cloud_controller::store::USER_PROVIDED,
        space_guid: space,
        plan_guid: None,
        tags: "[]",
        parameters: "{}",
        credentials: r#"{"secret":"s"}"#,
        syslog_drain_url: None,
        route_service_url: None,
        op_state: cloud_controller::store::OP_SUCCEEDED,
    })
    .await
    .expect("instance")
    .guid
}

async fn app_binding(s: &Store, instance: &str, app: &str) -> String {
    s.create_binding(&cloud_controller::store::NewBinding {
        kind: "app",
        name: None,
        instance_guid: instance,
        app_guid: Some(app),
        credentials: r#"{"secret":"s"}"#,
        syslog_drain_url: None,
        parameters: "{}",
        op_state: cloud_controller::store::OP_SUCCEEDED,
    })
    .await
    .expect("binding")
    .guid
}

async fn services_fixture(s: &Store, space: &str, app: &str) -> Services {
    let (broker, offering, plan) = broker_with_plan(s, "public", &[]).await;
    let upsi = upsi(s, space).await;
    let managed = s
        .create_instance(&cloud_controller::store::NewInstance {
            name: "managed",
            kind: cloud_controller::store::MANAGED,
            space_guid: space,
            plan_guid: Some(&plan),
            tags: "[]",
            parameters: r#"{"size":1}"#,
            credentials: "{}",
            syslog_drain_url: None,
            route_service_url: None,
            op_state: cloud_controller::store::OP_SUCCEEDED,
        })
        .await
        .expect("managed")
        .guid;
    let binding = app_binding(s, &upsi, app).await;
    Services {
        broker,
        offering,
        plan,
        upsi,
        managed,
        binding,
    }
}

async fn fresh_app(a: &Api, space: &str) -> String {
    a.store
        .create_app(
            &cloud_controller::store::new_guid(),
            space,
            None,
            "host",
            "{}",
        )
        .await
        .expect("app")
        .guid
}

/// A new org (without spaces: deleting one with spaces needs
/// `recursive`) with the personas' org roles of org A.
async fn fresh_org_like_a(a: &Api, w: &World) -> String {
    let s = &a.store;
    let org = s
        .create_org(&format!("o-{}", cloud_controller::store::new_guid()))
        .await
        .expect("org");
    for (name, org_roles, _) in &w.roles {
        let u = s.user_by_name(name).await.expect("q").expect("persona");
        for t in org_roles {
            s.create_role(t, &u.guid, &org.guid, "")
                .await
                .expect("role");
        }
    }
    org.guid
}

/// A new space in org A with the personas' roles of space S.
async fn fresh_space_in_a(a: &Api, w: &World) -> String {
    let s = &a.store;
    let space = s
        .create_space(&cloud_controller::store::new_guid(), &w.org_a)
        .await
        .expect("space")
        .guid;
    for (name, _, space_roles) in &w.roles {
        let u = s.user_by_name(name).await.expect("q").expect("persona");
        for t in space_roles {
            s.create_role(t, &u.guid, &w.org_a, &space)
                .await
                .expect("role");
        }
    }
    space
}

async fn params(a: &Api, w: &World, fx: Fx) -> Params {
    let s = &a.store;
    let mut p = Params::new();
    let new = cloud_controller::store::new_guid;
    match fx {
        Fx::None => {}
        Fx::Victim => {
            p.insert("id", w.victim.clone());
        }
        Fx::FreshUaaUser => {
            p.insert("id", s.create_user(&new(), "pw").await.expect("user").guid);
        }
        Fx::FreshOrgUser => {
            let u = s.create_user(&new(), "pw").await.expect("user");
            s.create_role("organization_user", &u.guid, &w.org_a, "")
                .await
                .expect("role");
            p.insert("id", u.guid);
        }
        Fx::Group => {
            p.insert("id", "scim.read".into());
        }
        Fx::GroupMember => {
            s.set_user_groups(&w.victim, "scim.read")
                .await
                .expect("groups");
            p.insert("id", "scim.read".into());
            p.insert("member", w.victim.clone());
        }
        Fx::DevCcUser => {
            p.insert("guid", w.dev_guid.clone());
        }
        Fx::FreshCcUser => {
            let u = s.create_user(&new(), "pw").await.expect("user");
            s.add_cc_user(&u.guid).await.expect("cc user");
            p.insert("guid", u.guid);
        }
        Fx::OrgA => {
            p.insert("guid", w.org_a.clone());
        }
        Fx::FreshOrg => {
            p.insert("guid", fresh_org_like_a(a, w).await);
        }
        Fx::SpaceS => {
            p.insert("guid", w.space_s.clone());
        }
        Fx::FreshSpace => {
            p.insert("guid", fresh_space_in_a(a, w).await);
        }
        Fx::OrgRole => {
            p.insert("guid", w.org_role.clone());
        }
        Fx::FreshSpaceRole => {
            let u = s.create_user(&new(), "pw").await.expect("user");
            s.create_role("organization_user", &u.guid, &w.org_a, "")
                .await
                .expect("role");
            let r = s
                .create_role("space_auditor", &u.guid, &w.org_a, &w.space_s)
                .await
                .expect("role");
            p.insert("guid", r.guid);
        }
        Fx::Flag => {
            p.insert("name", "user_org_creation".into());
        }
        Fx::DefaultQuota => {
            p.insert("guid", w.default_quota.clone());
        }
        Fx::SpareOrgQuota => {
            p.insert("guid", w.spare_quota.clone());
        }
        Fx::FreshOrgQuota => {
            let q = s
                .create_quota(QuotaKind::Organization, &new(), "", &QuotaLimits::default())
                .await
                .expect("quota");
            p.insert("guid", q.guid);
        }
        Fx::SpaceQuota => {
            p.insert("guid", w.space_quota.clone());
        }
        Fx::FreshSpaceQuota => {
            let q = s
                .create_quota(QuotaKind::Space, &new(), &w.org_a, &QuotaLimits::default())
                .await
                .expect("quota");
            p.insert("guid", q.guid);
        }
        Fx::SpaceQuotaSpace => {
            s.set_space_quota(&w.space_s, Some(&w.space_quota))
                .await
                .expect("apply");
            p.insert("guid", w.space_quota.clone());
            p.insert("space", w.space_s.clone());
        }
        Fx::PrivDomain => {
            p.insert("guid", w.priv_domain.clone());
        }
        Fx::FreshPrivDomain => {
            let d = s
                .create_domain(
                    &format!("d{}.example.com", &new()[..8]),
                    false,
                    Some(&w.org_a),
                )
                .await
                .expect("domain");
            p.insert("guid", d.guid);
        }
        Fx::PrivDomainShare => {
            s.share_domain(&w.priv_domain, &w.org_b)
                .await
                .expect("share");
            p.insert("guid", w.priv_domain.clone());
            p.insert("org", w.org_b.clone());
        }
        Fx::App => {
            p.insert("guid", w.app.clone());
        }
        Fx::FreshApp => {
            p.insert("guid", fresh_app(a, &w.space_s).await);
        }
        Fx::AppFeature => {
            p.insert("guid", w.app.clone());
            p.insert("name", "revisions".into());
        }
        Fx::AppKind => {
            p.insert("guid", w.app.clone());
            p.insert("kind", "web".into());
        }
        Fx::Process => {
            p.insert("guid", w.process.clone());
        }
        Fx::Revision => {
            let r = s
                .create_revision(
                    &w.app,
                    &cloud_controller::store::RevisionContent {
                        droplet_guid: w.droplet.clone(),
                        ..Default::default()
                    },
                    "Initial revision.",
                )
                .await
                .expect("revision");
            p.insert("guid", r.guid);
        }
        Fx::FreshDeployment => {
            let t = cloud_controller::store::now();
            let d = cloud_controller::store::Deployment {
                guid: cloud_controller::store::new_guid(),
                app_guid: w.app.clone(),
                status_value: "ACTIVE".into(),
                status_reason: "PAUSED".into(),
                error: None,
                strategy: "canary".into(),
                max_in_flight: 1,
                canary_steps: "[]".into(),
                canary_step: 0,
                failure_budget: 3,
                progress_deadline_s: 180,
                droplet_guid: w.droplet.clone(),
                previous_droplet_guid: Some(w.droplet.clone()),
                revision_guid: None,
                target: 1,
                new_bus_id: cloud_controller::store::new_guid(),
                new_version: cloud_controller::store::new_guid(),
                new_instances: 0,
                old_bus_id: w.app.clone(),
                old_version: "v".into(),
                old_env: "{}".into(),
                old_instances: 0,
                healthy: 0,
                failures: 0,
                last_healthy_at: None,
                last_progress_at: t.clone(),
                last_status_change: t.clone(),
                new_changed_at: t.clone(),
                old_changed_at: t.clone(),
                generation: 0,
                created_at: t.clone(),
                updated_at: t,
            };
            s.insert_deployment(&d).await.expect("deployment");
            p.insert("guid", d.guid);
        }
        Fx::FreshTask => {
            let t = s
                .create_task(&cloud_controller::store::NewTask {
                    app_guid: &w.app,
                    name: "t",
                    command: "echo hi",
                    memory_in_mb: 64,
                    disk_in_mb: 64,
                    droplet_guid: &w.droplet,
                })
                .await
                .expect("task");
            p.insert("guid", t.guid);
        }
        Fx::Package => {
            p.insert("guid", w.package.clone());
        }
        Fx::FreshPackage => {
            p.insert(
                "guid",
                s.create_package(&w.app).await.expect("package").guid,
            );
        }
        Fx::Build => {
            p.insert("guid", w.build.clone());
        }
        Fx::Droplet => {
            p.insert("guid", w.droplet.clone());
        }
        Fx::Route => {
            p.insert("guid", w.route.clone());
        }
        Fx::FreshRoute | Fx::FreshDest => {
            let host = format!("r{}", &new()[..8]);
            let r = s
                .create_route(&host, &w.apps_domain, "", &w.space_s)
                .await
                .expect("route");
            if fx == Fx::FreshDest {
                s.add_destination(&r.guid, &w.app).await.expect("dest");
                let d = s.destinations(&r.guid).await.expect("dests");
                p.insert("dest", d[0].guid.clone());
            }
            p.insert("guid", r.guid);
        }
        Fx::Buildpack => {
            p.insert("guid", w.buildpack.clone());
        }
        Fx::FreshBuildpack => {
            let r = a
                .call(
                    Method::POST,
                    "/v3/buildpacks",
                    Some(json!({"name": format!("b{}", &new()[..8])})),
                )
                .await;
            p.insert("guid", guid(&r.body));
        }
        Fx::Sg => {
            p.insert("guid", w.sg.clone());
        }
        Fx::FreshSg => {
            let r = a
                .call(
                    Method::POST,
                    "/v3/security_groups",
                    Some(json!({"name": new()})),
                )
                .await;
            p.insert("guid", guid(&r.body));
        }
        Fx::SgSpace => {
            p.insert("guid", w.sg.clone());
            p.insert("lifecycle", "running_spaces".into());
            p.insert("space", w.space_s.clone());
        }
        Fx::Event => {
            p.insert("guid", w.event.clone());
        }
        Fx::Job => {
            p.insert("guid", w.job.clone());
        }
        Fx::Broker => {
            p.insert("guid", w.broker.clone());
        }
        Fx::FreshBroker => {
            let name = new();
            let b = s
                .create_broker(&name, "http://127.0.0.1:1", "u", "p", None)
                .await
                .expect("broker");
            p.insert("guid", b.guid);
        }
        Fx::Offering => {
            p.insert("guid", w.offering.clone());
        }
        Fx::Plan => {
            p.insert("guid", w.plan.clone());
        }
        Fx::FreshPlanOrg => {
            let (_, _, plan) =
                broker_with_plan(s, "organization", std::slice::from_ref(&w.org_a)).await;
            p.insert("guid", plan);
            p.insert("org", w.org_a.clone());
        }
        Fx::Upsi => {
            p.insert("guid", w.upsi.clone());
        }
        Fx::FreshUpsi => {
            p.insert("guid", upsi(s, &w.space_s).await);
        }
        Fx::Managed => {
            p.insert("guid", w.managed.clone());
        }
        Fx::Binding => {
            p.insert("guid", w.binding.clone());
        }
        Fx::FreshBinding => {
            let i = upsi(s, &w.space_s).await;
            p.insert("guid", app_binding(s, &i, &w.app).await);
        }
    }
    p
}

fn concrete(template: &str, p: &Params) -> String {
    let mut out = template.to_string();
    for (k, v) in p {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    assert!(!out.contains('{'), "unfilled parameter in {out}");
    out
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("method")
}

async fn matrix(a: Api) {
    let w = setup(&a).await;
    let rows = rows();
    // Every route of the policy has a row, and every row a policy entry.
    for (m, p, _) in POLICY {
        assert!(
            rows.iter().any(|r| r.method == *m && r.path == *p),
            "no matrix row for {m} {p}"
        );
    }
    assert_eq!(rows.len(), POLICY.len());
    let mut failures = Vec::new();
    for row in &rows {
        let expect: Vec<&str> = row.expect.split_whitespace().collect();
        assert_eq!(expect.len(), PERSONAS.len(), "{} {}", row.method, row.path);
        // Admin first: its status is the success status where `ok` is 0.
        let mut admin_status = 0;
        for (i, persona) in PERSONAS.iter().enumerate() {
            let p = params(&a, &w, row.fx).await;
            let path = concrete(row.path, &p);
            let token = &w.tokens[i];
            let status = if row.path.ends_with("/logs/stream") {
                a.status_of(method(row.method), &path, token).await.as_u16()
            } else {
                let body = (row.body)(&w, &p, persona);
                a.call_as(token, method(row.method), &path, body)
                    .await
                    .status
                    .as_u16()
            };
            if i == 0 {
                admin_status = status;
            }
            let want = match expect[i] {
                "2" if row.ok == 0 => admin_status,
                "2" => row.ok,
                "F" => 403,
                "N" => 404,
                "U" => 422,
                other => panic!("bad expectation {other}"),
            };
            if status != want {
                failures.push(format!(
                    "{} {} as {persona}: {status}, expected {want}",
                    row.method, row.path
                ));
            }
        }
        if row.ok == 0 {
            assert!(
                (400..500).contains(&admin_status) && ![401, 403, 404].contains(&admin_status),
                "{} {}: admin got {admin_status}",
                row.method,
                row.path
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    lists_show_only_what_is_readable(&a, &w).await;
    a.store.close().await;
}

/// Lists: the stranger and the org user see no app of space S; the
/// developer sees it; counts are of the visible set.
async fn lists_show_only_what_is_readable(a: &Api, w: &World) {
    let idx = |name: &str| PERSONAS.iter().position(|p| *p == name).expect("persona");
    let count = |r: &Resp| {
        r.body["pagination"]["total_results"]
            .as_u64()
            .expect("count")
    };
    for (who, sees) in [
        ("dev", true),
        ("org_user", false),
        ("stranger", false),
        ("auditor_g", true),
    ] {
        let r = a
            .call_as(
                &w.tokens[idx(who)],
                Method::GET,
                &format!("/v3/apps?space_guids={}", w.space_s),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let names: Vec<&str> = r.body["resources"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|x| x["name"].as_str())
            .collect();
        assert_eq!(names.contains(&"x"), sees, "{who} sees {names:?}");
        assert_eq!(count(&r) as usize, names.len().max(count(&r) as usize));
    }
    let r = a
        .call_as(&w.tokens[idx("stranger")], Method::GET, "/v3/apps", None)
        .await;
    assert_eq!(
        count(&r),
        0,
        "the stranger's own space is empty: {:?}",
        r.body
    );
    let r = a
        .call_as(
            &w.tokens[idx("stranger")],
            Method::GET,
            "/v3/organizations",
            None,
        )
        .await;
    let names: Vec<&str> = r.body["resources"]
        .as_array()
        .expect("orgs")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, vec!["org-b"]);
    // Internal endpoints are not on the public listener at all.
    let r = a
        .call_as(&w.tokens[0], Method::GET, "/internal/v1/desired", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn permission_matrix_sqlite() {
    matrix(Api::open(None).await).await;
}

#[tokio::test]
async fn permission_matrix_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    matrix(Api::open(Some(db.url.clone())).await).await;
}

/// The signing keys live in the database: on SQLite a file only the
/// controller reads (0600, in its 0700 data dir), and never in its log.
#[tokio::test]
async fn signing_keys_are_kept_private_sqlite() {
    use std::os::unix::fs::PermissionsExt;
    let a = Api::open(None).await;
    let r = a
        .call(Method::POST, "/v3/admin/actions/rotate_token_keys", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let keys = a.store.signing_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    let data = a._dir.path().join("data");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    let mut dbs = 0;
    for entry in std::fs::read_dir(&data).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("cc.db") {
            dbs += 1;
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert!(dbs > 0, "no database file in {}", data.display());
    let log = std::fs::read_to_string(a._dir.path().join("cc.log")).unwrap_or_default();
    for k in keys {
        assert!(!log.contains(&k.secret), "a signing key in the log");
    }
}
