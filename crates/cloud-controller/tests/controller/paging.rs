//! Lists paged in SQL (issue 13, item 5): audit events, organizations,
//! spaces, routes, roles, users, domains (also an org's), packages and
//! builds (also an app's), an app's droplets and routes, security groups
//! (also a space's), organization and space quotas, buildpacks, processes
//! (also an app's) and service brokers, offerings and plans, walked
//! page by page with filters, as an admin and as a user who reads only
//! some spaces, on SQLite and Postgres. The expected lists come from the
//! fixtures, not from the code under test.

use axum::http::{Method, StatusCode};
use cloud_controller::store::{
    self, AuditEvent, CatalogOffering, CatalogPlan, Droplet, DropletState, Lifecycle, NewInstance,
    QuotaKind, QuotaLimits, Store,
};
use serde_json::Value;

use crate::api::Api;

/// Every resource of a list, following `pagination.next` from `path`
/// (which sets `per_page`); checks the pagination block on each page and
/// that there was more than one page.
async fn walk(a: &Api, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    let mut total = None;
    while let Some(p) = next {
        let r = a.call_as(token, Method::GET, &p, None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {:?}", r.body);
        let pg = &r.body["pagination"];
        let t = pg["total_results"].as_u64().expect("total_results");
        assert_eq!(*total.get_or_insert(t), t, "total changed: {p}");
        let per_page = r.body["resources"].as_array().expect("resources").len();
        assert!(per_page <= 2, "{p}: {per_page} resources");
        out.extend(
            r.body["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        pages += 1;
        assert!(pages <= 50, "endless pages at {p}");
        next = pg["next"]["href"]
            .as_str()
            .map(|h| h.trim_start_matches("http://api.test").to_string());
        if next.is_none() {
            assert_eq!(pg["total_pages"].as_u64(), Some(pages));
        }
    }
    assert_eq!(Some(out.len() as u64), total, "{path}");
    assert!(pages > 1, "{path}: one page only");
    out
}

fn guids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["guid"].as_str().expect("guid").to_string())
        .collect()
}

fn strs(v: &[&String]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// (guid, type, space index or `None` for org-level events of B).
type Event = (String, String, Option<usize>);
/// (guid, host, space index).
type RouteRow = (String, String, usize);

struct World {
    pat: String,
    /// Pat's roles in creation order (type, guid).
    roles: Vec<(String, String)>,
    /// Orgs A and B, then o0..o4.
    org_a: String,
    org_b: String,
    orgs: Vec<String>,
    /// s1, s2, s3 in A; t1 in B.
    s: [String; 4],
    /// (guid, host, space index) in creation order.
    routes: Vec<RouteRow>,
    /// Routes with a destination of `app`.
    app: String,
    app_routes: Vec<String>,
    /// (guid, type, space index or None for org-level of B) in order.
    events: Vec<Event>,
}

async fn world(a: &Api) -> World {
    let st: &Store = &a.ctx.store;
    let pat = st.create_user("pat", "pw").await.expect("pat");
    let org_a = st.create_org("org-a").await.expect("org").guid;
    let org_b = st.create_org("org-b").await.expect("org").guid;
    let mut orgs = Vec::new();
    for i in 0..5 {
        orgs.push(st.create_org(&format!("o{i}")).await.expect("org").guid);
    }
    let mut s = Vec::new();
    for (name, org) in [
        ("s1", &org_a),
        ("s2", &org_a),
        ("s3", &org_a),
        ("t1", &org_b),
    ] {
        s.push(st.create_space(name, org).await.expect("space").guid);
    }
    // pat: developer in s1 and s2, auditor of org B, user of o0, o2, o4.
    let mut roles = Vec::new();
    let mut grant = |r: cloud_controller::store::Role| roles.push((r.kind, r.guid));
    grant(
        st.create_role("organization_user", &pat.guid, &org_a, "")
            .await
            .expect("role"),
    );
    for space in &s[..2] {
        grant(
            st.create_role("space_developer", &pat.guid, &org_a, space)
                .await
                .expect("role"),
        );
    }
    grant(
        st.create_role("organization_auditor", &pat.guid, &org_b, "")
            .await
            .expect("role"),
    );
    for i in [0, 2, 4] {
        grant(
            st.create_role("organization_user", &pat.guid, &orgs[i], "")
                .await
                .expect("role"),
        );
    }
    let domain = st
        .domain_by_name("localhost")
        .await
        .expect("domain")
        .expect("apps domain")
        .guid;
    let mut routes = Vec::new();
    for i in 0..12 {
        let space = i % 4;
        let host = format!("h{i}");
        let r = st
            .create_route(&host, &domain, "", &s[space])
            .await
            .expect("route");
        routes.push((r.guid, host, space));
    }
    let app = st
        .create_app("web", &s[0], None, "host", "{}")
        .await
        .expect("app")
        .guid;
    let mut app_routes = Vec::new();
    for (g, _, space) in &routes {
        if *space == 0 {
            st.add_destination(g, &app).await.expect("destination");
            app_routes.push(g.clone());
        }
    }
    // Events: two types over the four spaces, and org-level ones of B.
    let mut events = Vec::new();
    for i in 0..16 {
        let space = if i % 5 == 4 { None } else { Some(i % 4) };
        let kind = if i % 2 == 0 {
            "audit.x.one"
        } else {
            "audit.x.two"
        };
        let e = AuditEvent {
            guid: format!("ev-{i:02}-{}", uuid_like(i)),
            kind: kind.into(),
            actor_guid: "system".into(),
            actor_type: "system".into(),
            actor_name: "system".into(),
            target_guid: format!("target-{}", i % 3),
            target_type: "thing".into(),
            target_name: "thing".into(),
            data: "{}".into(),
            space_guid: space.map(|x| s[x].clone()),
            organization_guid: Some(match space {
                Some(x) if x < 3 => org_a.clone(),
                _ => org_b.clone(),
            }),
            created_at: format!("2020-01-01T00:00:{i:02}.000000Z"),
        };
        st.add_event(&e).await.expect("event");
        events.push((e.guid, kind.to_string(), space));
    }
    World {
        pat: pat.guid,
        roles,
        org_a,
        org_b,
        orgs,
        s: [s[0].clone(), s[1].clone(), s[2].clone(), s[3].clone()],
        routes,
        app,
        app_routes,
        events,
    }
}

fn uuid_like(i: usize) -> String {
    format!("{:08x}", i * 7919)
}

async fn lists(db: Option<String>) {
    let a = Api::open(db).await;
    let w = world(&a).await;
    let pat_token = a.login("pat", "pw").await.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let admin = a.token.clone();

    // ---- audit events ----
    let ev = |keep: &dyn Fn(&Event) -> bool| -> Vec<String> {
        w.events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.0.clone())
            .collect()
    };
    // Admin, types and spaces.
    let got = walk(
        &a,
        &admin,
        &format!(
            "/v3/audit_events?per_page=2&types=audit.x.one&space_guids={},{}",
            w.s[0], w.s[3]
        ),
    )
    .await;
    let want = ev(&|e| e.1 == "audit.x.one" && matches!(e.2, Some(0) | Some(3)));
    assert_eq!(guids(&got), want);
    // Newest first.
    let got = walk(
        &a,
        &admin,
        "/v3/audit_events?per_page=2&types=audit.x.one,audit.x.two&order_by=-created_at",
    )
    .await;
    let mut want = ev(&|_| true);
    want.reverse();
    assert_eq!(guids(&got), want);
    // Organizations and targets.
    let got = walk(
        &a,
        &admin,
        &format!(
            "/v3/audit_events?per_page=2&organization_guids={}&target_guids=target-0,target-1",
            w.org_b
        ),
    )
    .await;
    let want: Vec<String> = w
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| !matches!(e.2, Some(0..=2)) && i % 3 != 2)
        .map(|(_, e)| e.0.clone())
        .collect();
    assert_eq!(guids(&got), want);
    // Pat: events of s1 and s2, and org-level ones of B (its auditor).
    let got = walk(&a, &pat_token, "/v3/audit_events?per_page=2").await;
    let want = ev(&|e| matches!(e.2, Some(0) | Some(1) | None));
    assert_eq!(guids(&got), want);
    let got = walk(
        &a,
        &pat_token,
        &format!(
            "/v3/audit_events?per_page=2&types=audit.x.two&space_guids={},{}",
            w.s[1], w.s[2]
        ),
    )
    .await;
    let want = ev(&|e| e.1 == "audit.x.two" && e.2 == Some(1));
    assert_eq!(guids(&got), want);
    // An empty filter matches nothing.
    let r = a.call(Method::GET, "/v3/audit_events?types=", None).await;
    assert_eq!(r.body["pagination"]["total_results"], 0);
    // Past the last page: empty, with the total.
    let r = a
        .call(
            Method::GET,
            "/v3/audit_events?types=audit.x.one&per_page=2&page=99",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["pagination"]["total_results"], 8);
    assert_eq!(r.body["resources"].as_array().map(Vec::len), Some(0));
    assert_eq!(r.body["pagination"]["next"], Value::Null);
    let r = a
        .call(Method::GET, "/v3/audit_events?per_page=0", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // ---- organizations ----
    let names = "org-a,org-b,o0,o1,o2,o3,o4";
    let got = walk(
        &a,
        &admin,
        &format!("/v3/organizations?per_page=2&names={names}"),
    )
    .await;
    let mut want = vec![w.org_a.clone(), w.org_b.clone()];
    want.extend(w.orgs.iter().cloned());
    assert_eq!(guids(&got), want);
    let got = walk(&a, &pat_token, "/v3/organizations?per_page=2").await;
    let want = strs(&[&w.org_a, &w.org_b, &w.orgs[0], &w.orgs[2], &w.orgs[4]]);
    assert_eq!(guids(&got), want);
    let got = walk(
        &a,
        &pat_token,
        &format!(
            "/v3/organizations?per_page=2&guids={},{},{},{}",
            w.orgs[0], w.orgs[1], w.orgs[2], w.org_b
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&w.org_b, &w.orgs[0], &w.orgs[2]]));

    // ---- spaces ----
    let got = walk(
        &a,
        &admin,
        &format!(
            "/v3/spaces?per_page=2&organization_guids={},{}",
            w.org_a, w.org_b
        ),
    )
    .await;
    assert_eq!(guids(&got), w.s.to_vec());
    let got = walk(
        &a,
        &admin,
        &format!(
            "/v3/spaces?per_page=2&names=s1,s3,t1&organization_guids={},{}",
            w.org_a, w.org_b
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&w.s[0], &w.s[2], &w.s[3]]));
    // Pat reads s1 and s2 only (one page of two: no walk).
    let r = a
        .call_as(&pat_token, Method::GET, "/v3/spaces?per_page=1", None)
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 2);
    let got = walk(&a, &pat_token, "/v3/spaces?per_page=1").await;
    assert_eq!(guids(&got), strs(&[&w.s[0], &w.s[1]]));
    let r = a
        .call_as(
            &pat_token,
            Method::GET,
            &format!("/v3/spaces?guids={},{}", w.s[1], w.s[2]),
            None,
        )
        .await;
    assert_eq!(
        guids(r.body["resources"].as_array().expect("list")),
        strs(&[&w.s[1]])
    );

    // ---- routes ----
    let route_guids = |keep: &dyn Fn(&RouteRow) -> bool| -> Vec<String> {
        w.routes
            .iter()
            .filter(|r| keep(r))
            .map(|r| r.0.clone())
            .collect()
    };
    let got = walk(
        &a,
        &admin,
        &format!("/v3/routes?per_page=2&organization_guids={}", w.org_a),
    )
    .await;
    assert_eq!(guids(&got), route_guids(&|r| r.2 < 3));
    let got = walk(
        &a,
        &admin,
        &format!(
            "/v3/routes?per_page=2&space_guids={},{}&hosts=h0,h1,h3,h4,h5,h8,h11",
            w.s[0], w.s[3]
        ),
    )
    .await;
    assert_eq!(
        guids(&got),
        route_guids(&|r| ["h0", "h3", "h4", "h8", "h11"].contains(&r.1.as_str()))
    );
    let got = walk(
        &a,
        &admin,
        &format!("/v3/routes?per_page=2&app_guids={}", w.app),
    )
    .await;
    assert_eq!(guids(&got), w.app_routes);
    assert_eq!(got[0]["destinations"][0]["app"]["guid"], w.app.as_str());
    // Pat: routes of s1 and s2 only, whatever the filters ask.
    let got = walk(&a, &pat_token, "/v3/routes?per_page=2").await;
    assert_eq!(guids(&got), route_guids(&|r| r.2 < 2));
    let got = walk(
        &a,
        &pat_token,
        &format!(
            "/v3/routes?per_page=2&organization_guids={},{}",
            w.org_a, w.org_b
        ),
    )
    .await;
    assert_eq!(guids(&got), route_guids(&|r| r.2 < 2));
    roles(&a, &w, &pat_token).await;
    users_and_domains(&a, &w, &pat_token).await;
    let (app2, app3) = packages_and_builds(&a, &w, &pat_token).await;
    app_lists(&a, &w, &pat_token, &app3).await;
    processes(&a, &w, &pat_token, &app2, &app3).await;
    services(&a, &w, &pat_token).await;
    security_groups(&a, &w, &pat_token).await;
    quotas(&a, &w, &pat_token).await;
    buildpacks(&a, &pat_token).await;
    for empty in ["app_guids=", "paths=", "organization_guids="] {
        let r = a
            .call(Method::GET, &format!("/v3/routes?{empty}"), None)
            .await;
        assert_eq!(r.body["pagination"]["total_results"], 0, "{empty}");
    }
}

async fn roles(a: &Api, w: &World, pat_token: &str) {
    let admin = a.token.clone();
    let all: Vec<String> = w.roles.iter().map(|r| r.1.clone()).collect();
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/roles?per_page=2&organization_guids={}&types=organization_user,space_developer",
            w.org_a
        ),
    )
    .await;
    assert_eq!(guids(&got), all[..3].to_vec());
    // Pat sees the roles of its orgs: its own seven.
    let got = walk(a, pat_token, "/v3/roles?per_page=2").await;
    assert_eq!(guids(&got), all);
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/roles?per_page=2&user_guids={}&types=organization_user",
            w.pat
        ),
    )
    .await;
    let want: Vec<String> = w
        .roles
        .iter()
        .filter(|r| r.0 == "organization_user")
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(guids(&got), want);
    // `include` covers the page's roles.
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            "/v3/roles?per_page=2&page=2&include=space,organization",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        guids(r.body["resources"].as_array().expect("list")),
        all[2..4].to_vec()
    );
    assert_eq!(
        guids(r.body["included"]["spaces"].as_array().expect("spaces")),
        vec![w.s[1].clone()]
    );
    assert_eq!(
        r.body["included"]["organizations"].as_array().map(Vec::len),
        Some(2)
    );
}

async fn users_and_domains(a: &Api, w: &World, pat_token: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // Users u0..u4 with controller records; u0, u2 and u3 in org A.
    st.add_cc_user(&w.pat).await.expect("cc user");
    let mut users = Vec::new();
    for i in 0..5 {
        let u = st.create_user(&format!("u{i}"), "pw").await.expect("user");
        st.add_cc_user(&u.guid).await.expect("cc user");
        if [0, 2, 3].contains(&i) {
            st.create_role("organization_user", &u.guid, &w.org_a, "")
                .await
                .expect("role");
        }
        users.push(u.guid);
    }
    let got = walk(
        a,
        &admin,
        "/v3/users?per_page=2&usernames=u0,u1,u2,u3,u4,nobody",
    )
    .await;
    assert_eq!(guids(&got), users);
    assert_eq!(got[1]["username"], "u1");
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/users?per_page=2&origins=uaa&guids={},{},{},{}",
            users[4], users[1], users[3], w.pat
        ),
    )
    .await;
    assert_eq!(
        guids(&got),
        strs(&[&w.pat, &users[1], &users[3], &users[4]])
    );
    // Pat sees itself and the users of its orgs.
    let got = walk(a, pat_token, "/v3/users?per_page=2").await;
    assert_eq!(
        guids(&got),
        strs(&[&w.pat, &users[0], &users[2], &users[3]])
    );
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            &format!("/v3/users/{}", users[1]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            &format!("/v3/users/{}", users[2]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["username"], "u2");
    let r = a.call(Method::GET, "/v3/users?origins=", None).await;
    assert_eq!(r.body["pagination"]["total_results"], 0);

    // Domains: a shared one, two of org A, one of o1 shared with o2, one
    // of o3 (not pat's).
    let apps = st
        .domain_by_name("localhost")
        .await
        .expect("domain")
        .expect("apps domain")
        .guid;
    let shared = st
        .create_domain("s-d1.test", false, None)
        .await
        .expect("d")
        .guid;
    let a1 = st
        .create_domain("d-a1.test", false, Some(&w.org_a))
        .await
        .expect("d")
        .guid;
    let a2 = st
        .create_domain("d-a2.test", false, Some(&w.org_a))
        .await
        .expect("d")
        .guid;
    let o1 = st
        .create_domain("d-o1.test", false, Some(&w.orgs[1]))
        .await
        .expect("d")
        .guid;
    st.share_domain(&o1, &w.orgs[2]).await.expect("share");
    let o3 = st
        .create_domain("d-o3.test", false, Some(&w.orgs[3]))
        .await
        .expect("d")
        .guid;
    let got = walk(a, pat_token, "/v3/domains?per_page=2").await;
    assert_eq!(guids(&got), strs(&[&apps, &shared, &a1, &a2, &o1]));
    assert_eq!(
        got[4]["relationships"]["shared_organizations"]["data"][0]["guid"],
        w.orgs[2].as_str()
    );
    let got = walk(
        a,
        &admin,
        "/v3/domains?per_page=2&names=d-o3.test,d-a1.test,s-d1.test,d-o1.test",
    )
    .await;
    assert_eq!(guids(&got), strs(&[&shared, &a1, &o1, &o3]));
    let got = walk(
        a,
        pat_token,
        "/v3/domains?per_page=1&names=d-o3.test,d-a2.test,d-o1.test",
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a2, &o1]));

    // An org's domains: the shared ones, its own, those shared with it.
    let got = walk(
        a,
        pat_token,
        &format!("/v3/organizations/{}/domains?per_page=1", w.orgs[2]),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&apps, &shared, &o1]));
    let got = walk(
        a,
        &admin,
        &format!("/v3/organizations/{}/domains?per_page=2", w.org_a),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&apps, &shared, &a1, &a2]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/organizations/{}/domains?per_page=1&names=d-o1.test,d-o3.test,s-d1.test",
            w.orgs[1]
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&shared, &o1]));
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            &format!("/v3/organizations/{}/domains", w.orgs[3]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Returns app2's and app3's guids (in s2, which pat reads, and s3,
/// which it does not).
async fn packages_and_builds(a: &Api, w: &World, pat_token: &str) -> (String, String) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // Apps: `web` in s1 (pat reads), app2 in s2 (pat reads), app3 in s3.
    let app2 = st
        .create_app("app2", &w.s[1], None, "host", "{}")
        .await
        .expect("app")
        .guid;
    let app3 = st
        .create_app("app3", &w.s[2], None, "host", "{}")
        .await
        .expect("app")
        .guid;
    let apps = [w.app.clone(), app2.clone(), app3.clone()];
    // Two packages and two builds per app, made in rounds.
    let mut packages: Vec<(usize, String)> = Vec::new();
    let mut builds: Vec<(usize, String)> = Vec::new();
    for _ in 0..2 {
        for (i, app) in apps.iter().enumerate() {
            let p = st.create_package(app).await.expect("package");
            let b = st
                .create_build(app, &p.guid, "system", "system")
                .await
                .expect("build");
            // Settled at once (no DEA here): FAILED, whoever ends it.
            st.fail_build(&b.guid, "StagingError", "test")
                .await
                .expect("fail");
            packages.push((i, p.guid));
            builds.push((i, b.guid));
        }
    }
    // Packages: grouped by app in the apps' creation order, oldest first.
    let by_app = |keep: &[usize]| -> Vec<String> {
        let mut v = Vec::new();
        for i in keep {
            v.extend(packages.iter().filter(|p| p.0 == *i).map(|p| p.1.clone()));
        }
        v
    };
    let got = walk(a, pat_token, "/v3/packages?per_page=2").await;
    assert_eq!(guids(&got), by_app(&[0, 1]));
    let got = walk(
        a,
        &admin,
        &format!("/v3/packages?per_page=2&app_guids={app3},{}", w.app),
    )
    .await;
    assert_eq!(guids(&got), by_app(&[0, 2]));
    let got = walk(
        a,
        pat_token,
        &format!("/v3/packages?per_page=1&app_guids={app3},{app2}"),
    )
    .await;
    assert_eq!(guids(&got), by_app(&[1]));

    // Builds: oldest first.
    let of = |keep: &[usize]| -> Vec<String> {
        builds
            .iter()
            .filter(|b| keep.contains(&b.0))
            .map(|b| b.1.clone())
            .collect()
    };
    let got = walk(a, pat_token, "/v3/builds?per_page=2&states=FAILED").await;
    assert_eq!(guids(&got), of(&[0, 1]));
    let got = walk(
        a,
        &admin,
        &format!("/v3/builds?per_page=2&app_guids={app2},{app3}&states=STAGED,FAILED"),
    )
    .await;
    assert_eq!(guids(&got), of(&[1, 2]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/apps/{app3}/builds?per_page=1&guids={},{},{}",
            builds[0].1, builds[2].1, builds[5].1
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&builds[2].1, &builds[5].1]));
    let r = a
        .call(Method::GET, "/v3/builds?states=STAGING,STAGED", None)
        .await;
    assert_eq!(r.body["pagination"]["total_results"], 0);
    assert_eq!(
        a.call_as(
            pat_token,
            Method::GET,
            &format!("/v3/apps/{app3}/builds"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    (app2, app3)
}

/// A page's guids and its pagination block's numbers and hrefs (without
/// the host).
struct Page {
    guids: Vec<String>,
    total: u64,
    pages: u64,
    next: Option<String>,
    last: String,
}

async fn page(a: &Api, token: &str, path: &str) -> Page {
    let r = a.call_as(token, Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    let pg = &r.body["pagination"];
    let href = |v: &Value| {
        v["href"]
            .as_str()
            .map(|h| h.trim_start_matches("http://api.test").to_string())
    };
    Page {
        guids: guids(r.body["resources"].as_array().expect("resources")),
        total: pg["total_results"].as_u64().expect("total_results"),
        pages: pg["total_pages"].as_u64().expect("total_pages"),
        next: href(&pg["next"]),
        last: href(&pg["last"]).expect("last"),
    }
}

/// A staged droplet of `app` made at second `sec` (its own package and
/// build; another build if the staging loop failed the first, there
/// being no DEA).
async fn staged(st: &Store, app: &str, sec: usize) -> String {
    let p = st.create_package(app).await.expect("package");
    let t = format!("2021-01-01T00:00:{sec:02}.000000Z");
    let d = Droplet {
        guid: store::new_guid(),
        app_guid: app.to_string(),
        package_guid: p.guid.clone(),
        state: DropletState::Staged,
        sha256: Some(format!("{sec:064}")),
        process_types: r#"{"web":"x"}"#.into(),
        buildpack: None,
        stack: "host".into(),
        error: None,
        created_at: t.clone(),
        updated_at: t,
        buildpacks: None,
        config_vars: None,
    };
    for _ in 0..5 {
        let b = st
            .create_build(app, &p.guid, "system", "system")
            .await
            .expect("build");
        if st.finish_staged(&b.guid, &d).await.expect("staged") {
            return d.guid;
        }
    }
    panic!("no build could be staged");
}

/// An app's packages, droplets and routes.
async fn app_lists(a: &Api, w: &World, pat_token: &str, app3: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // Droplets made out of creation order: listed oldest first.
    let mut droplets = Vec::new();
    for sec in [3, 1, 4, 2, 5] {
        droplets.push((sec, staged(st, &w.app, sec).await));
    }
    droplets.sort();
    let want: Vec<String> = droplets.into_iter().map(|d| d.1).collect();
    let path = format!("/v3/apps/{}/droplets", w.app);
    let got = walk(a, pat_token, &format!("{path}?per_page=2&states=STAGED")).await;
    assert_eq!(guids(&got), want);
    assert_eq!(
        got[0]["relationships"]["app"]["data"]["guid"],
        w.app.as_str()
    );
    let p = page(
        a,
        &admin,
        &format!("{path}?per_page=2&page=2&states=STAGED"),
    )
    .await;
    assert_eq!(p.guids, want[2..4].to_vec());
    assert_eq!((p.total, p.pages), (5, 3));
    assert_eq!(
        p.next.as_deref(),
        Some(format!("{path}?page=3&per_page=2&states=STAGED").as_str())
    );
    assert_eq!(p.last, format!("{path}?page=3&per_page=2&states=STAGED"));
    let p = page(a, &admin, &format!("{path}?states=FAILED")).await;
    assert_eq!((p.total, p.guids.len()), (0, 0));
    let p = page(a, &admin, &format!("{path}?per_page=1&page=9")).await;
    assert_eq!((p.total, p.guids.len(), p.next), (5, 0, None));

    // Packages: the two of the fixtures and one per droplet, oldest first.
    let all = st.packages_of(&w.app).await.expect("packages");
    assert_eq!(all.len(), 7);
    let want: Vec<String> = all.into_iter().map(|p| p.guid).collect();
    let path = format!("/v3/apps/{}/packages", w.app);
    let got = walk(a, pat_token, &format!("{path}?per_page=2")).await;
    assert_eq!(guids(&got), want);
    let p = page(a, &admin, &format!("{path}?per_page=3&page=3")).await;
    assert_eq!(p.guids, want[6..].to_vec());
    assert_eq!((p.total, p.pages, p.next), (7, 3, None));

    // Routes: those with a destination of the app.
    let path = format!("/v3/apps/{}/routes", w.app);
    let got = walk(a, pat_token, &format!("{path}?per_page=2")).await;
    assert_eq!(guids(&got), w.app_routes);
    let p = page(a, &admin, &format!("{path}?per_page=1")).await;
    assert_eq!(p.guids, w.app_routes[..1].to_vec());
    assert_eq!((p.total, p.pages), (3, 3));
    assert_eq!(
        p.next.as_deref(),
        Some(format!("{path}?page=2&per_page=1").as_str())
    );
    assert_eq!(p.last, format!("{path}?page=3&per_page=1"));

    // Another app's lists in a space pat does not read: not found.
    for list in ["droplets", "packages", "routes"] {
        let r = a
            .call_as(
                pat_token,
                Method::GET,
                &format!("/v3/apps/{app3}/{list}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{list}");
    }
}

/// Security groups, and those of a space.
async fn security_groups(a: &Api, w: &World, pat_token: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // g0..g5: g0 and g3 global for running, g4 for staging; g1 bound to
    // s1 for running, g2 to s1 and s2 for staging, g5 to s2 for running.
    let mut g = Vec::new();
    for i in 0..6 {
        let grp = st
            .create_security_group(&format!("g{i}"), &[], i % 3 == 0, i == 4)
            .await
            .expect("group");
        g.push(grp.guid);
    }
    for (i, space, l) in [
        (1, 0, Lifecycle::Running),
        (2, 0, Lifecycle::Staging),
        (2, 1, Lifecycle::Staging),
        (5, 1, Lifecycle::Running),
    ] {
        st.bind_security_group(&g[i], &w.s[space], l)
            .await
            .expect("bind");
    }
    let pick = |ix: &[usize]| -> Vec<String> { ix.iter().map(|i| g[*i].clone()).collect() };
    let got = walk(a, pat_token, "/v3/security_groups?per_page=2").await;
    assert_eq!(guids(&got), pick(&[0, 1, 2, 3, 4, 5]));
    let p = page(
        a,
        &admin,
        "/v3/security_groups?per_page=4&page=2&names=g5,g1,g4",
    )
    .await;
    assert_eq!((p.total, p.pages, p.guids.len()), (3, 1, 0));
    let got = walk(a, &admin, "/v3/security_groups?per_page=1&names=g5,g1,g4").await;
    assert_eq!(guids(&got), pick(&[1, 4, 5]));
    let got = walk(
        a,
        &admin,
        "/v3/security_groups?per_page=2&globally_enabled_running=false",
    )
    .await;
    assert_eq!(guids(&got), pick(&[1, 2, 4, 5]));
    let got = walk(
        a,
        &admin,
        "/v3/security_groups?per_page=1&globally_enabled_running=true&globally_enabled_staging=false",
    )
    .await;
    assert_eq!(guids(&got), pick(&[0, 3]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/security_groups?per_page=1&running_space_guids={},{}",
            w.s[0], w.s[1]
        ),
    )
    .await;
    assert_eq!(guids(&got), pick(&[1, 5]));
    let p = page(
        a,
        &admin,
        &format!(
            "/v3/security_groups?staging_space_guids={}&guids={},{},{}",
            w.s[1], g[2], g[4], g[5]
        ),
    )
    .await;
    assert_eq!((p.guids, p.total), (pick(&[2]), 1));
    let p = page(a, &admin, "/v3/security_groups?running_space_guids=").await;
    assert_eq!(p.total, 0);

    // A space's: the global ones and those bound to it, for a lifecycle.
    let path = format!("/v3/spaces/{}/running_security_groups", w.s[0]);
    let got = walk(a, pat_token, &format!("{path}?per_page=2")).await;
    assert_eq!(guids(&got), pick(&[0, 1, 3]));
    let p = page(a, pat_token, &format!("{path}?per_page=2")).await;
    assert_eq!((p.total, p.pages), (3, 2));
    assert_eq!(
        p.next.as_deref(),
        Some(format!("{path}?page=2&per_page=2").as_str())
    );
    let path = format!("/v3/spaces/{}/staging_security_groups", w.s[1]);
    let got = walk(a, pat_token, &format!("{path}?per_page=1")).await;
    assert_eq!(guids(&got), pick(&[2, 4]));
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            &format!("/v3/spaces/{}/running_security_groups", w.s[2]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Organization and space quotas.
async fn quotas(a: &Api, w: &World, pat_token: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    let l = QuotaLimits::default();
    let default = st.default_org_quota().await.expect("default").guid;
    let mut org_q = vec![default];
    for i in 0..4 {
        org_q.push(
            st.create_quota(QuotaKind::Organization, &format!("oq{i}"), "", &l)
                .await
                .expect("quota")
                .guid,
        );
    }
    let got = walk(a, pat_token, "/v3/organization_quotas?per_page=2").await;
    assert_eq!(guids(&got), org_q);
    let p = page(a, &admin, "/v3/organization_quotas?per_page=2&page=3").await;
    assert_eq!(p.guids, org_q[4..].to_vec());
    assert_eq!((p.total, p.pages, p.next), (5, 3, None));
    let got = walk(
        a,
        &admin,
        "/v3/organization_quotas?per_page=1&names=oq3,default,oq1,none",
    )
    .await;
    assert_eq!(guids(&got), strs(&[&org_q[0], &org_q[2], &org_q[4]]));

    // Space quotas: two each in org A, o1 and o2, made in rounds; pat
    // sees those of A and o2 (its orgs).
    let mut space_q: Vec<(usize, String)> = Vec::new();
    for round in 0..2 {
        for (i, org) in [&w.org_a, &w.orgs[1], &w.orgs[2]].into_iter().enumerate() {
            let q = st
                .create_quota(QuotaKind::Space, &format!("sq{round}"), org, &l)
                .await
                .expect("quota");
            space_q.push((i, q.guid));
        }
    }
    let of = |keep: &[usize]| -> Vec<String> {
        space_q
            .iter()
            .filter(|q| keep.contains(&q.0))
            .map(|q| q.1.clone())
            .collect()
    };
    let got = walk(a, &admin, "/v3/space_quotas?per_page=2").await;
    assert_eq!(guids(&got), of(&[0, 1, 2]));
    let got = walk(a, pat_token, "/v3/space_quotas?per_page=2").await;
    assert_eq!(guids(&got), of(&[0, 2]));
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/space_quotas?per_page=1&organization_guids={},{}",
            w.orgs[1], w.orgs[2]
        ),
    )
    .await;
    assert_eq!(guids(&got), of(&[2]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/space_quotas?per_page=1&names=sq1&organization_guids={},{}",
            w.org_a, w.orgs[1]
        ),
    )
    .await;
    assert_eq!(
        guids(&got),
        vec![space_q[3].1.clone(), space_q[4].1.clone()]
    );
    let p = page(a, pat_token, "/v3/space_quotas?per_page=2&names=sq0").await;
    assert_eq!(p.guids, vec![space_q[0].1.clone(), space_q[2].1.clone()]);
    assert_eq!((p.total, p.pages, p.next), (2, 1, None));
}

/// Admin buildpacks in position order, then the built-in ones.
async fn buildpacks(a: &Api, pat_token: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // b0 for any stack, b1 and b2 for `host`; b2 put first.
    let b0 = st
        .create_buildpack("b0", "", 1, true, false)
        .await
        .expect("bp")
        .guid;
    let b1 = st
        .create_buildpack("b1", "host", 2, true, false)
        .await
        .expect("bp")
        .guid;
    let b2 = st
        .create_buildpack("b2", "host", 1, true, false)
        .await
        .expect("bp")
        .guid;
    let builtins: Vec<String> = cloud_controller::api::buildpacks::BUILTIN_BUILDPACKS
        .iter()
        .map(|b| format!("builtin-{b}"))
        .collect();
    let mut want = vec![b2.clone(), b0.clone(), b1.clone()];
    want.extend(builtins.iter().cloned());
    let got = walk(a, pat_token, "/v3/buildpacks?per_page=2").await;
    assert_eq!(guids(&got), want);
    let positions: Vec<u64> = got
        .iter()
        .map(|b| b["position"].as_u64().expect("position"))
        .collect();
    let n = u64::try_from(want.len()).expect("count");
    assert_eq!(positions, (1..=n).collect::<Vec<_>>());
    // A page across the last admin buildpack and the first built-ins.
    let p = page(a, &admin, "/v3/buildpacks?per_page=2&page=2").await;
    assert_eq!(p.guids, want[2..4].to_vec());
    assert_eq!((p.total, p.pages), (n, n.div_ceil(2)));
    assert_eq!(p.next.as_deref(), Some("/v3/buildpacks?page=3&per_page=2"));
    assert_eq!(
        p.last,
        format!("/v3/buildpacks?page={}&per_page=2", n.div_ceil(2))
    );
    let p = page(a, &admin, "/v3/buildpacks?per_page=3&page=2").await;
    assert_eq!(p.guids, want[3..6].to_vec());
    let got = walk(a, &admin, "/v3/buildpacks?per_page=1&stacks=host").await;
    let mut host = vec![b2.clone(), b1.clone()];
    host.extend(builtins.iter().cloned());
    assert_eq!(guids(&got), host);
    let got = walk(
        a,
        &admin,
        "/v3/buildpacks?per_page=1&names=binary,b0,b1,python",
    )
    .await;
    assert_eq!(
        guids(&got),
        strs(&[
            &b0,
            &b1,
            &"builtin-python".to_string(),
            &"builtin-binary".to_string()
        ])
    );
    let p = page(a, &admin, "/v3/buildpacks?stacks=other").await;
    assert_eq!((p.total, p.guids.len()), (0, 0));
    let p = page(a, &admin, "/v3/buildpacks?per_page=5&page=9").await;
    assert_eq!((p.total, p.guids.len(), p.next), (n, 0, None));
}

/// Processes, and an app's: by app (in the apps' creation order), then
/// oldest first.
async fn processes(a: &Api, w: &World, pat_token: &str, app2: &str, app3: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    // Each app's web process, then a second type: web+worker, app2:
    // web+clock, app3: web+worker+clock.
    let mut procs: Vec<(usize, String, &str)> = Vec::new();
    for (i, app) in [w.app.as_str(), app2, app3].into_iter().enumerate() {
        let web = st.web_process(app).await.expect("web").guid;
        procs.push((i, web, "web"));
    }
    for (i, app, kind) in [
        (2, app3, "worker"),
        (0, w.app.as_str(), "worker"),
        (1, app2, "clock"),
        (2, app3, "clock"),
    ] {
        let p = st.ensure_process(app, kind).await.expect("process");
        procs.push((i, p.guid, kind));
    }
    let of = |keep: &[usize]| -> Vec<String> {
        let mut v = Vec::new();
        for i in keep {
            v.extend(procs.iter().filter(|p| p.0 == *i).map(|p| p.1.clone()));
        }
        v
    };
    let got = walk(a, &admin, "/v3/processes?per_page=2").await;
    assert_eq!(guids(&got), of(&[0, 1, 2]));
    let types: Vec<&str> = got.iter().filter_map(|p| p["type"].as_str()).collect();
    assert_eq!(
        types,
        ["web", "worker", "web", "clock", "web", "worker", "clock"]
    );
    assert_eq!(got[2]["relationships"]["app"]["data"]["guid"], app2);
    // Pat reads s1 and s2: the processes of `web` and app2.
    let got = walk(a, pat_token, "/v3/processes?per_page=2").await;
    assert_eq!(guids(&got), of(&[0, 1]));
    let got = walk(
        a,
        pat_token,
        &format!("/v3/processes?per_page=1&app_guids={app3},{app2}"),
    )
    .await;
    assert_eq!(guids(&got), of(&[1]));
    let got = walk(
        a,
        &admin,
        &format!("/v3/processes?per_page=2&app_guids={app3},{}", w.app),
    )
    .await;
    assert_eq!(guids(&got), of(&[0, 2]));
    let p = page(
        a,
        &admin,
        &format!("/v3/processes?per_page=2&page=2&app_guids={app3},{}", w.app),
    )
    .await;
    assert_eq!(p.guids, of(&[0, 2])[2..4].to_vec());
    assert_eq!((p.total, p.pages), (5, 3));
    let q = format!("per_page=2&app_guids={app3},{}", w.app);
    assert_eq!(
        p.next.as_deref(),
        Some(format!("/v3/processes?page=3&{q}").as_str())
    );
    assert_eq!(p.last, format!("/v3/processes?page=3&{q}"));
    let p = page(a, pat_token, "/v3/processes?per_page=3&page=9").await;
    assert_eq!((p.total, p.pages, p.guids.len(), p.next), (4, 2, 0, None));
    let p = page(a, &admin, "/v3/processes?app_guids=").await;
    assert_eq!((p.total, p.guids.len()), (0, 0));

    // An app's processes.
    let path = format!("/v3/apps/{app3}/processes");
    let got = walk(a, &admin, &format!("{path}?per_page=1")).await;
    assert_eq!(guids(&got), of(&[2]));
    let p = page(a, &admin, &format!("{path}?per_page=2")).await;
    assert_eq!(p.guids, of(&[2])[..2].to_vec());
    assert_eq!((p.total, p.pages), (3, 2));
    assert_eq!(
        p.next.as_deref(),
        Some(format!("{path}?page=2&per_page=2").as_str())
    );
    assert_eq!(p.last, format!("{path}?page=2&per_page=2"));
    let p = page(a, &admin, &format!("{path}?per_page=2&page=3")).await;
    assert_eq!((p.total, p.guids.len(), p.next), (3, 0, None));
    let path = format!("/v3/apps/{}/processes", w.app);
    let got = walk(a, pat_token, &format!("{path}?per_page=1")).await;
    assert_eq!(guids(&got), of(&[0]));
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            &format!("/v3/apps/{app3}/processes"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A catalog offering `name` with plans of these names.
fn offering(name: &str, plans: &[&str]) -> CatalogOffering {
    CatalogOffering {
        broker_id: format!("id-{name}"),
        name: name.into(),
        description: "d".into(),
        tags: "[]".into(),
        requires: "[]".into(),
        bindable: true,
        plan_updateable: false,
        instances_retrievable: false,
        bindings_retrievable: false,
        metadata: "{}".into(),
        plans: plans
            .iter()
            .map(|p| CatalogPlan {
                broker_id: format!("id-{name}-{p}"),
                name: (*p).into(),
                description: "d".into(),
                free: true,
                bindable: true,
                plan_updateable: false,
                metadata: "{}".into(),
                maximum_polling_duration: None,
            })
            .collect(),
    }
}

/// Service brokers, offerings and plans (visible to pat: public plans and
/// those enabled for its orgs, and the offerings of those).
async fn services(a: &Api, w: &World, pat_token: &str) {
    let st = &a.ctx.store;
    let admin = a.token.clone();
    let mut brokers = Vec::new();
    for name in ["bA", "bB", "bC"] {
        let b = st
            .create_broker(name, "http://127.0.0.1:1", "u", "p", None)
            .await
            .expect("broker");
        brokers.push(b.guid);
    }
    // bA: oa1 (small, large), oa2 (small); bB: ob1 (small, large, xl),
    // ob2 (no plans: seen by no one); bC: oc1 (small).
    let catalogs = [
        vec![
            offering("oa1", &["small", "large"]),
            offering("oa2", &["small"]),
        ],
        vec![
            offering("ob1", &["small", "large", "xl"]),
            offering("ob2", &[]),
        ],
        vec![offering("oc1", &["small"])],
    ];
    for (b, c) in brokers.iter().zip(&catalogs) {
        st.sync_catalog(b, c).await.expect("catalog");
    }
    let offerings = st.offerings().await.expect("offerings");
    let o = |name: &str| -> String {
        offerings
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.guid.clone())
            .expect("offering")
    };
    let all_plans = st.plans().await.expect("plans");
    let p = |id: &str| -> String {
        all_plans
            .iter()
            .find(|p| p.broker_id == format!("id-{id}"))
            .map(|p| p.guid.clone())
            .expect("plan")
    };
    let (a1s, a1l, a2s) = (p("oa1-small"), p("oa1-large"), p("oa2-small"));
    let (b1s, b1l, b1x, c1s) = (p("ob1-small"), p("ob1-large"), p("ob1-xl"), p("oc1-small"));
    // a1s public; a1l for o1 (not pat's); a2s for org A and o2 (pat's);
    // b1s admin; b1l for o3; b1x public, then retired from the catalog
    // while an instance uses it (unavailable); c1s admin.
    for (plan, kind, orgs) in [
        (&a1s, "public", vec![]),
        (&a1l, "organization", vec![w.orgs[1].clone()]),
        (
            &a2s,
            "organization",
            vec![w.org_a.clone(), w.orgs[2].clone()],
        ),
        (&b1l, "organization", vec![w.orgs[3].clone()]),
        (&b1x, "public", vec![]),
    ] {
        st.set_plan_visibility(plan, kind, &orgs, true)
            .await
            .expect("visibility");
    }
    st.create_instance(&NewInstance {
        name: "si",
        kind: "managed",
        space_guid: &w.s[3],
        plan_guid: Some(&b1x),
        tags: "[]",
        parameters: "{}",
        credentials: "{}",
        syslog_drain_url: None,
        route_service_url: None,
        op_state: "succeeded",
    })
    .await
    .expect("instance");
    st.sync_catalog(
        &brokers[1],
        &[offering("ob1", &["small", "large"]), offering("ob2", &[])],
    )
    .await
    .expect("catalog");
    assert_eq!(st.plan(&b1x).await.expect("plan").available, 0);

    // ---- brokers: global readers only ----
    let got = walk(a, &admin, "/v3/service_brokers?per_page=2").await;
    assert_eq!(guids(&got), brokers);
    assert_eq!(got[1]["name"], "bB");
    let got = walk(a, &admin, "/v3/service_brokers?per_page=1&names=bC,bA,none").await;
    assert_eq!(guids(&got), strs(&[&brokers[0], &brokers[2]]));
    let p = page(
        a,
        &admin,
        &format!(
            "/v3/service_brokers?per_page=1&page=2&guids={},{}",
            brokers[2], brokers[1]
        ),
    )
    .await;
    assert_eq!(p.guids, vec![brokers[2].clone()]);
    assert_eq!((p.total, p.pages, p.next), (2, 2, None));
    assert_eq!(
        p.last,
        format!(
            "/v3/service_brokers?page=2&per_page=1&guids={},{}",
            brokers[2], brokers[1]
        )
    );
    let p = page(a, &admin, "/v3/service_brokers?per_page=2&page=5").await;
    assert_eq!((p.total, p.guids.len(), p.next), (3, 0, None));
    let p = page(a, &admin, "/v3/service_brokers?names=").await;
    assert_eq!(p.total, 0);
    let p = page(a, pat_token, "/v3/service_brokers?per_page=1").await;
    assert_eq!((p.total, p.pages, p.guids.len(), p.next), (0, 1, 0, None));

    // ---- offerings: those with a plan the caller sees ----
    let got = walk(a, &admin, "/v3/service_offerings?per_page=2").await;
    assert_eq!(guids(&got), vec![o("oa1"), o("oa2"), o("ob1"), o("oc1")]);
    let got = walk(a, pat_token, "/v3/service_offerings?per_page=2").await;
    assert_eq!(guids(&got), vec![o("oa1"), o("oa2"), o("ob1")]);
    let got = walk(
        a,
        &admin,
        "/v3/service_offerings?per_page=1&service_broker_names=bC,bA",
    )
    .await;
    assert_eq!(guids(&got), vec![o("oa1"), o("oa2"), o("oc1")]);
    let p = page(
        a,
        pat_token,
        "/v3/service_offerings?per_page=1&service_broker_names=bC,bA",
    )
    .await;
    assert_eq!(p.guids, vec![o("oa1")]);
    assert_eq!((p.total, p.pages), (2, 2));
    assert_eq!(
        p.next.as_deref(),
        Some("/v3/service_offerings?page=2&per_page=1&service_broker_names=bC,bA")
    );
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/service_offerings?per_page=1&service_broker_guids={},{}&names=oa2,ob1,ob2,oc1",
            brokers[1], brokers[2]
        ),
    )
    .await;
    assert_eq!(guids(&got), vec![o("ob1"), o("oc1")]);
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/service_offerings?per_page=1&guids={},{},{}&available=true",
            o("oc1"),
            o("ob1"),
            o("oa1")
        ),
    )
    .await;
    assert_eq!(guids(&got), vec![o("oa1"), o("ob1")]);
    let p = page(a, &admin, "/v3/service_offerings?available=false").await;
    assert_eq!(p.total, 0);
    // Orgs: plans usable there (public or enabled for it; every plan for
    // an admin); a space stands for its org.
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/service_offerings?per_page=1&organization_guids={}",
            w.orgs[1]
        ),
    )
    .await;
    assert_eq!(guids(&got), vec![o("oa1"), o("ob1")]);
    let got = walk(
        a,
        pat_token,
        &format!("/v3/service_offerings?per_page=2&space_guids={}", w.s[0]),
    )
    .await;
    assert_eq!(guids(&got), vec![o("oa1"), o("oa2"), o("ob1")]);
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/service_offerings?per_page=2&organization_guids={}",
            w.orgs[4]
        ),
    )
    .await;
    assert_eq!(guids(&got), vec![o("oa1"), o("oa2"), o("ob1"), o("oc1")]);
    let p = page(a, &admin, "/v3/service_offerings?organization_guids=").await;
    assert_eq!(p.total, 0);
    let p = page(a, pat_token, "/v3/service_offerings?per_page=2&page=3").await;
    assert_eq!((p.total, p.pages, p.guids.len(), p.next), (3, 2, 0, None));
    // The brokers of the page's offerings.
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            "/v3/service_offerings?fields[service_broker]=name",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["included"]["service_brokers"],
        serde_json::json!([{"name": "bA"}, {"name": "bB"}])
    );

    // ---- plans ----
    let got = walk(a, &admin, "/v3/service_plans?per_page=2").await;
    assert_eq!(
        guids(&got),
        strs(&[&a1s, &a1l, &a2s, &b1s, &b1l, &b1x, &c1s])
    );
    let got = walk(a, pat_token, "/v3/service_plans?per_page=2").await;
    assert_eq!(guids(&got), strs(&[&a1s, &a2s, &b1x]));
    let got = walk(a, &admin, "/v3/service_plans?per_page=2&names=small").await;
    assert_eq!(guids(&got), strs(&[&a1s, &a2s, &b1s, &c1s]));
    let got = walk(a, pat_token, "/v3/service_plans?per_page=1&names=small,xl").await;
    assert_eq!(guids(&got), strs(&[&a1s, &a2s, &b1x]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/service_plans?per_page=2&service_offering_guids={},{}",
            o("ob1"),
            o("oa2")
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a2s, &b1s, &b1l, &b1x]));
    let got = walk(
        a,
        pat_token,
        "/v3/service_plans?per_page=1&service_offering_names=oa1,ob1",
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a1s, &b1x]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/service_plans?per_page=2&service_broker_guids={},{}&available=true",
            brokers[1], brokers[2]
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&b1s, &b1l, &c1s]));
    let got = walk(
        a,
        &admin,
        "/v3/service_plans?per_page=1&service_broker_names=bA&broker_catalog_ids=id-oa1-large,id-oa2-small,id-ob1-small",
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a1l, &a2s]));
    let p = page(a, &admin, "/v3/service_plans?available=false").await;
    assert_eq!((p.guids, p.total), (strs(&[&b1x]), 1));
    let p = page(
        a,
        pat_token,
        &format!("/v3/service_plans?per_page=1&guids={},{},{}", a1l, b1x, a2s),
    )
    .await;
    assert_eq!(p.guids, strs(&[&a2s]));
    assert_eq!((p.total, p.pages), (2, 2));
    let q = format!("per_page=1&guids={a1l},{b1x},{a2s}");
    assert_eq!(
        p.next.as_deref(),
        Some(format!("/v3/service_plans?page=2&{q}").as_str())
    );
    assert_eq!(p.last, format!("/v3/service_plans?page=2&{q}"));
    // Orgs: plans usable there; a space stands for its org.
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/service_plans?per_page=1&organization_guids={}",
            w.orgs[1]
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a1s, &b1x]));
    let got = walk(
        a,
        pat_token,
        &format!(
            "/v3/service_plans?per_page=2&space_guids={},{}",
            w.s[1], w.s[3]
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a1s, &a2s, &b1x]));
    let got = walk(
        a,
        &admin,
        &format!(
            "/v3/service_plans?per_page=1&organization_guids={}&names=large",
            w.orgs[4]
        ),
    )
    .await;
    assert_eq!(guids(&got), strs(&[&a1l, &b1l]));
    for empty in ["names=", "space_guids=", "service_broker_names="] {
        let p = page(a, &admin, &format!("/v3/service_plans?{empty}")).await;
        assert_eq!(p.total, 0, "{empty}");
    }
    let p = page(a, &admin, "/v3/service_plans?per_page=4&page=3").await;
    assert_eq!((p.total, p.pages, p.guids.len(), p.next), (7, 2, 0, None));
    let r = a
        .call(Method::GET, "/v3/service_plans?available=maybe", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The offerings and brokers of the page's plans.
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            "/v3/service_plans?include=service_offering&fields[service_offering.service_broker]=name,guid",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        guids(
            r.body["included"]["service_offerings"]
                .as_array()
                .expect("offerings")
        ),
        vec![o("oa1"), o("oa2"), o("ob1")]
    );
    assert_eq!(
        r.body["included"]["service_brokers"],
        serde_json::json!([
            {"name": "bA", "guid": brokers[0]},
            {"name": "bB", "guid": brokers[1]}
        ])
    );
    // On a later page: those of the page's resources only (as CF).
    let r = a
        .call_as(
            pat_token,
            Method::GET,
            "/v3/service_plans?per_page=1&page=3&include=service_offering&fields[service_offering.service_broker]=name",
            None,
        )
        .await;
    assert_eq!(
        guids(
            r.body["included"]["service_offerings"]
                .as_array()
                .expect("offerings")
        ),
        vec![o("ob1")]
    );
    assert_eq!(
        r.body["included"]["service_brokers"],
        serde_json::json!([{"name": "bB"}])
    );
    let r = a
        .call_as(
            &admin,
            Method::GET,
            "/v3/service_offerings?per_page=2&page=2&fields[service_broker]=name",
            None,
        )
        .await;
    assert_eq!(
        r.body["included"]["service_brokers"],
        serde_json::json!([{"name": "bB"}, {"name": "bC"}])
    );
    // Showing one plan or offering (the catalog loaded whole) agrees with
    // the lists (SQL) on what pat sees.
    let seen = strs(&[&a1s, &a2s, &b1x]);
    for plan in [&a1s, &a1l, &a2s, &b1s, &b1l, &b1x, &c1s] {
        let r = a
            .call_as(
                pat_token,
                Method::GET,
                &format!("/v3/service_plans/{plan}"),
                None,
            )
            .await;
        let want = if seen.contains(plan) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(r.status, want, "plan {plan}");
    }
    for (name, want) in [
        ("oa1", StatusCode::OK),
        ("oa2", StatusCode::OK),
        ("ob1", StatusCode::OK),
        ("ob2", StatusCode::NOT_FOUND),
        ("oc1", StatusCode::NOT_FOUND),
    ] {
        let r = a
            .call_as(
                pat_token,
                Method::GET,
                &format!("/v3/service_offerings/{}", o(name)),
                None,
            )
            .await;
        assert_eq!(r.status, want, "offering {name}");
    }
}

#[tokio::test]
async fn lists_page_in_sql_sqlite() {
    lists(None).await;
}

#[tokio::test]
async fn lists_page_in_sql_postgres() {
    let db = testkit::PgDb::create().await.expect("postgres");
    lists(Some(db.url.clone())).await;
}
