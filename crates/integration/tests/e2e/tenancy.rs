//! Issue 12: two teams on one platform, with the real `cf`: what each
//! sees, route ownership, quotas and the token lifecycle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use integration::{app_host as host, fixture, Platform, PlatformOptions, SYSTEM_DOMAIN};
use reqwest::Method;

const T: Duration = Duration::from_secs(120);

struct User {
    home: PathBuf,
}

impl User {
    async fn cf(&self, args: &[&str]) -> Result<integration::CfOutput> {
        Platform::cf_run(&self.home, args, None).await
    }

    async fn cf_ok(&self, args: &[&str]) -> Result<integration::CfOutput> {
        let out = self.cf(args).await?;
        anyhow::ensure!(
            out.status == 0,
            "cf {} exited {}:\n{}\n{}",
            args.join(" "),
            out.status,
            out.stdout,
            out.stderr
        );
        Ok(out)
    }
}

async fn login(
    p: &Platform,
    home: &Path,
    user: &str,
    pw: &str,
    org: &str,
    space: &str,
) -> Result<User> {
    let u = User {
        home: home.to_path_buf(),
    };
    u.cf_ok(&[
        "login",
        "-a",
        &p.api_url(),
        "-u",
        user,
        "-p",
        pw,
        "-o",
        org,
        "-s",
        space,
    ])
    .await?;
    Ok(u)
}

fn says(out: &integration::CfOutput, text: &str) -> bool {
    out.status != 0 && (out.stdout.contains(text) || out.stderr.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_teams_routes_quotas_and_tokens() -> Result<()> {
    let p = Platform::start_with(PlatformOptions {
        dea_config: "backend = \"process\"".into(),
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    // The admin sets up two teams and an auditor.
    for u in ["alice", "bob", "carl"] {
        p.cf_ok(&["create-user", u, "pw"]).await?;
    }
    for org in ["team-a", "team-b"] {
        p.cf_ok(&["create-org", org]).await?;
        p.cf_ok(&["create-space", "web", "-o", org]).await?;
    }
    p.cf_ok(&["set-space-role", "alice", "team-a", "web", "SpaceDeveloper"])
        .await?;
    p.cf_ok(&["set-space-role", "bob", "team-b", "web", "SpaceDeveloper"])
        .await?;
    p.cf_ok(&["set-space-role", "carl", "team-a", "web", "SpaceAuditor"])
        .await?;
    let users = p.cf_ok(&["space-users", "team-a", "web"]).await?;
    assert!(
        users.stdout.contains("alice") && users.stdout.contains("carl"),
        "{}",
        users.stdout
    );

    // Alice pushes `x` into team-a/web.
    let alice = login(&p, &p.cf_home("alice")?, "alice", "pw", "team-a", "web").await?;
    let dir = fixture("pyapp");
    alice
        .cf_ok(&["push", "x", "-p", dir.to_str().unwrap_or_default()])
        .await?;
    p.wait_route_status(&host("x"), 200, T).await?;
    let alice_token = p.token("alice", "pw").await?;
    let guid = p.app_guid(&alice_token, "x").await?;
    let (_, procs) = p
        .api_call(
            &alice_token,
            Method::GET,
            &format!("/v3/apps/{guid}/processes"),
            None,
        )
        .await?;
    let process = procs["resources"][0]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Bob, of team-b, sees nothing of it.
    let bob = login(&p, &p.cf_home("bob")?, "bob", "pw", "team-b", "web").await?;
    let apps = bob.cf_ok(&["apps"]).await?;
    assert!(!apps.stdout.contains(" x "), "{}", apps.stdout);
    for args in [
        vec!["app", "x"],
        vec!["scale", "x", "-i", "2"],
        vec!["logs", "x", "--recent"],
        vec!["env", "x"],
    ] {
        let out = bob.cf(&args).await?;
        assert!(
            says(&out, "App 'x' not found"),
            "bob: cf {args:?}: {} {}",
            out.stdout,
            out.stderr
        );
    }
    let bob_token = p.token("bob", "pw").await?;
    for path in [
        format!("/v3/apps/{guid}"),
        format!("/v3/apps/{guid}/processes"),
        format!("/v3/processes/{process}/stats"),
        format!("/v3/apps/{guid}/logs/stream"),
        format!("/v3/apps/{guid}/env"),
    ] {
        assert_eq!(
            p.api_status(&bob_token, &path).await?,
            404,
            "bob GET {path}"
        );
    }
    let (status, body) = p
        .api_call(&bob_token, Method::GET, &format!("/v3/apps/{guid}"), None)
        .await?;
    assert_eq!(
        (status, body["errors"][0]["detail"].as_str()),
        (404, Some("App not found"))
    );

    // Carl, auditor of alice's space, sees the app and its stats, but not
    // its env, and may not scale it.
    let carl = login(&p, &p.cf_home("carl")?, "carl", "pw", "team-a", "web").await?;
    let app = carl.cf_ok(&["app", "x"]).await?;
    assert!(app.stdout.contains("running"), "{}", app.stdout);
    for args in [vec!["env", "x"], vec!["scale", "x", "-i", "2"]] {
        let out = carl.cf(&args).await?;
        assert!(
            says(
                &out,
                "You are not authorized to perform the requested action"
            ),
            "carl: cf {args:?}: {} {}",
            out.stdout,
            out.stderr
        );
    }

    // Routes: the system domain and hosts of other spaces are not theirs.
    let out = alice
        .cf(&["map-route", "x", SYSTEM_DOMAIN, "--hostname", "api"])
        .await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    let (_, spaces) = p
        .api_call(&bob_token, Method::GET, "/v3/spaces", None)
        .await?;
    let bob_space = spaces["resources"][0]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, doms) = p
        .api_call(&bob_token, Method::GET, "/v3/domains", None)
        .await?;
    let names: Vec<&str> = doms["resources"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(!names.contains(&SYSTEM_DOMAIN), "{names:?}");
    let admin = p.admin_token().await?;
    let (_, sys) = p
        .api_call(
            &admin,
            Method::GET,
            &format!("/v3/domains?names={SYSTEM_DOMAIN}"),
            None,
        )
        .await?;
    let sys_guid = sys["resources"][0]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, apps_dom) = p
        .api_call(&admin, Method::GET, "/v3/domains?names=localhost", None)
        .await?;
    let apps_guid = apps_dom["resources"][0]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let route = |host: &str, domain: &str| serde_json::json!({"host": host, "relationships": {"domain": {"data": {"guid": domain}}, "space": {"data": {"guid": bob_space}}}});
    let (status, body) = p
        .api_call(
            &bob_token,
            Method::POST,
            "/v3/routes",
            Some(route("api", &sys_guid)),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    let (status, body) = p
        .api_call(
            &bob_token,
            Method::POST,
            "/v3/routes",
            Some(route("x", &apps_guid)),
        )
        .await?;
    assert_eq!(
        (status, body["errors"][0]["detail"].as_str()),
        (
            422,
            Some("Routes for this host and domain have been reserved for another space.")
        )
    );
    let (status, _) = p
        .api_call(&bob_token, Method::POST, "/v3/domains", Some(serde_json::json!({"name": format!("api.{SYSTEM_DOMAIN}"), "relationships": {"organization": {"data": {"guid": spaces["resources"][0]["relationships"]["organization"]["data"]["guid"]}}}})))
        .await?;
    assert_ne!(status, 201, "a private domain over the API's host");
    // The API still answers only from the controller.
    let (status, body) = p
        .get_via_router(&format!("api.{SYSTEM_DOMAIN}"), "/")
        .await?;
    assert_eq!(status, 200);
    assert!(body.contains("cloud_controller_v3"), "{body}");

    // Quota: past the org's memory, the scale fails and changes nothing;
    // a bigger quota lets the same command through.
    p.cf_ok(&["create-org-quota", "small", "-m", "512M"])
        .await?;
    p.cf_ok(&["set-org-quota", "team-a", "small"]).await?;
    let out = alice.cf(&["scale", "x", "-i", "3"]).await?;
    assert!(
        says(&out, "memory quota_exceeded"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let (_, proc_now) = p
        .api_call(
            &alice_token,
            Method::GET,
            &format!("/v3/processes/{process}"),
            None,
        )
        .await?;
    assert_eq!(proc_now["instances"], 1);
    p.cf_ok(&["create-org-quota", "big", "-m", "4G"]).await?;
    p.cf_ok(&["set-org-quota", "team-a", "big"]).await?;
    alice.cf_ok(&["scale", "x", "-i", "3"]).await?;

    // Tokens: a changed password ends alice's other session; a deleted
    // user's session ends at once.
    let alice2 = login(&p, &p.cf_home("alice2")?, "alice", "pw", "team-a", "web").await?;
    alice2.cf_ok(&["apps"]).await?;
    let out = Platform::cf_run(&alice.home, &["passwd"], Some("pw\nnew-pw\nnew-pw\n")).await?;
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let out = alice2.cf(&["apps"]).await?;
    assert_ne!(out.status, 0, "the old session still works: {}", out.stdout);
    login(
        &p,
        &p.cf_home("alice3")?,
        "alice",
        "new-pw",
        "team-a",
        "web",
    )
    .await?;
    p.cf_ok(&["delete-user", "bob", "-f"]).await?;
    let out = bob.cf(&["apps"]).await?;
    assert_ne!(
        out.status, 0,
        "a deleted user's session still works: {}",
        out.stdout
    );
    assert_eq!(p.api_status(&bob_token, "/v3/apps").await?, 401);

    // Ten wrong passwords lock carl for the lock period, the right one
    // included; alice is unaffected.
    let carl_home = p.cf_home("carl-locked")?;
    for _ in 0..10 {
        let out = Platform::cf_run(
            &carl_home,
            &["login", "-a", &p.api_url(), "-u", "carl", "-p", "wrong"],
            None,
        )
        .await?;
        assert_ne!(out.status, 0);
    }
    let out = Platform::cf_run(
        &carl_home,
        &["login", "-a", &p.api_url(), "-u", "carl", "-p", "pw"],
        None,
    )
    .await?;
    assert_ne!(
        out.status, 0,
        "the right password during the lock: {}",
        out.stdout
    );
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{}/oauth/token", p.cc_addr))
        .basic_auth("cf", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "carl"),
            ("password", "pw"),
        ])
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await?;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "Your account has been locked because of too many failed attempts to login."
    );
    login(
        &p,
        &p.cf_home("alice4")?,
        "alice",
        "new-pw",
        "team-a",
        "web",
    )
    .await?;

    // Audit: the role and org changes name their actor.
    let (_, events) = p
        .api_call(
            &admin,
            Method::GET,
            "/v3/audit_events?types=audit.user.space_developer_add",
            None,
        )
        .await?;
    assert_eq!(events["resources"][0]["actor"]["name"], "admin", "{events}");
    Ok(())
}

/// The rest of the tenancy commands, as an admin and an org manager use
/// them (no app pushed: quick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_space_role_quota_domain_and_curl_commands() -> Result<()> {
    let p = Platform::start_with(PlatformOptions {
        deas: 0,
        health_manager: false,
        ..PlatformOptions::default()
    })
    .await?;
    p.login().await?;
    p.cf_ok(&["create-user", "mia", "pw"]).await?;
    let again = p.cf_ok(&["create-user", "mia", "pw"]).await?;
    assert!(
        again.stdout.contains("User 'mia' already exists."),
        "{}",
        again.stdout
    );
    p.cf_ok(&["create-org", "corp"]).await?;
    p.cf_ok(&["create-space", "dev2", "-o", "corp"]).await?;
    p.cf_ok(&["create-space", "ops", "-o", "corp"]).await?;
    let orgs = p.cf_ok(&["orgs"]).await?;
    assert!(
        orgs.stdout.contains("corp") && orgs.stdout.contains("dev"),
        "{}",
        orgs.stdout
    );
    p.cf_ok(&["set-org-role", "mia", "corp", "OrgManager"])
        .await?;
    let users = p.cf_ok(&["org-users", "corp"]).await?;
    assert!(
        users.stdout.contains("ORG MANAGER") && users.stdout.contains("mia"),
        "{}",
        users.stdout
    );

    // Mia, org manager: sees corp and both spaces, manages its space roles,
    // its space quotas and private domains; not the platform's.
    let mia = User {
        home: p.cf_home("mia")?,
    };
    mia.cf_ok(&[
        "login",
        "-a",
        &p.api_url(),
        "-u",
        "mia",
        "-p",
        "pw",
        "-o",
        "corp",
        "-s",
        "ops",
    ])
    .await?;
    let orgs = mia.cf_ok(&["orgs"]).await?;
    assert!(
        orgs.stdout.contains("corp") && !orgs.stdout.contains("system"),
        "{}",
        orgs.stdout
    );
    let spaces = mia.cf_ok(&["spaces"]).await?;
    assert!(
        spaces.stdout.contains("dev2") && spaces.stdout.contains("ops"),
        "{}",
        spaces.stdout
    );
    p.cf_ok(&["create-user", "noa", "pw"]).await?;
    mia.cf_ok(&["set-space-role", "noa", "corp", "ops", "SpaceAuditor"])
        .await?;
    let su = mia.cf_ok(&["space-users", "corp", "ops"]).await?;
    assert!(
        su.stdout.contains("SPACE AUDITOR") && su.stdout.contains("noa"),
        "{}",
        su.stdout
    );
    mia.cf_ok(&["unset-space-role", "noa", "corp", "ops", "SpaceAuditor"])
        .await?;
    let su = mia.cf_ok(&["space-users", "corp", "ops"]).await?;
    assert!(!su.stdout.contains("noa"), "{}", su.stdout);
    mia.cf_ok(&["create-space-quota", "small", "-m", "1G"])
        .await?;
    mia.cf_ok(&["set-space-quota", "ops", "small"]).await?;
    mia.cf_ok(&["create-private-domain", "corp", "corp.example.com"])
        .await?;
    let doms = mia.cf_ok(&["domains"]).await?;
    assert!(doms.stdout.contains("corp.example.com"), "{}", doms.stdout);
    let out = mia
        .cf(&["create-shared-domain", "shared.example.com"])
        .await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    let out = mia.cf(&["create-org-quota", "huge", "-m", "100G"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    let out = mia.cf(&["create-org", "another"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    // cf curl: the raw API with mia's token.
    let out = mia.cf_ok(&["curl", "/v3/organizations"]).await?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(v["pagination"]["total_results"], 1, "{v}");
    let out = mia
        .cf_ok(&[
            "curl",
            "/v3/buildpacks",
            "-X",
            "POST",
            "-d",
            r#"{"name":"x"}"#,
        ])
        .await?;
    assert!(out.stdout.contains("CF-NotAuthorized"), "{}", out.stdout);
    let out = mia
        .cf(&[
            "curl",
            "/v3/buildpacks",
            "-X",
            "POST",
            "-d",
            r#"{"name":"x"}"#,
            "--fail",
        ])
        .await?;
    assert_ne!(out.status, 0);

    // The admin shares the domain, lists quotas, and deletes it all.
    p.cf_ok(&["share-private-domain", "dev", "corp.example.com"])
        .await?;
    let q = p.cf_ok(&["org-quotas"]).await?;
    assert!(q.stdout.contains("default"), "{}", q.stdout);
    p.cf_ok(&["delete-space", "dev2", "-o", "corp", "-f"])
        .await?;
    let spaces = mia.cf_ok(&["spaces"]).await?;
    assert!(!spaces.stdout.contains("dev2"), "{}", spaces.stdout);
    p.cf_ok(&["delete-org", "corp", "-f"]).await?;
    let orgs = p.cf_ok(&["orgs"]).await?;
    assert!(!orgs.stdout.contains("corp"), "{}", orgs.stdout);
    p.cf_ok(&["delete-user", "mia", "-f"]).await?;
    let out = mia.cf(&["orgs"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    Ok(())
}
