//! Issue 14 (cf CLI parity, routes and commands): route safety of
//! `cf delete -r`, the route commands (create-route, check-route, route,
//! routes, delete-route, delete-orphaned-routes, domains), and rename,
//! get/set-health-check, version, buildpacks and the `cf scale` layout,
//! with the real `cf` against a real platform.

use std::time::Duration;

use anyhow::{Context, Result};
use integration::{app_host as host, fixture, wait_for, CfOutput, Platform};

const T: Duration = Duration::from_secs(120);

fn greeting(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["message"].as_str().map(str::to_string)
}

/// Pushes the Python fixture as `name`, answering with greeting `name`.
async fn push_named(p: &Platform, name: &str) -> Result<()> {
    let dir = fixture("pyapp");
    let dir = dir.to_str().unwrap_or_default();
    p.cf_ok(&["push", name, "-p", dir, "--no-start"]).await?;
    p.cf_ok(&["set-env", name, "GREETING", name]).await?;
    p.cf_ok(&["start", name]).await?;
    Ok(())
}

/// The router's answer for `host` until its greeting is `want`.
async fn wait_greeting(p: &Platform, host: &str, want: &str) -> Result<()> {
    wait_for(&format!("{host} to answer as {want}"), T, || async {
        match p.get_via_router(host, "/").await {
            Ok((200, body)) if greeting(&body).as_deref() == Some(want) => Some(()),
            _ => None,
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))
}

fn failed(out: &CfOutput, text: &str) {
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("FAILED") && out.stderr.contains(text),
        "want {text:?}:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

/// The first line whose first word is `word` (a table's header).
fn line_starting<'a>(text: &'a str, word: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(word))
        .unwrap_or_default()
}

fn line_with<'a>(text: &'a str, word: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().any(|w| w == word))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_routes_survive_delete_r_and_route_commands_round_trip() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    push_named(&p, "sh1").await?;
    push_named(&p, "sh2").await?;
    for app in ["sh1", "sh2"] {
        p.cf_ok(&["map-route", app, "localhost", "--hostname", "shared"])
            .await?;
    }
    wait_greeting(&p, &host("sh1"), "sh1").await?;
    let shared = host("shared");
    p.wait_route_status(&shared, 200, T).await?;

    // cf routes: CF v8's columns, both apps on the shared route.
    let routes = p.cf_ok(&["routes"]).await?.stdout;
    assert!(
        routes.contains("Getting routes for org dev / space dev as admin..."),
        "{routes}"
    );
    let header = line_starting(&routes, "space");
    for col in [
        "space",
        "host",
        "domain",
        "port",
        "path",
        "protocol",
        "app-protocol",
        "apps",
        "service instance",
    ] {
        assert!(header.contains(col), "{col}: {routes}");
    }
    let row = line_with(&routes, "shared");
    assert!(
        row.contains("dev") && row.contains("localhost") && row.contains("http1"),
        "{routes}"
    );
    assert!(row.contains("sh1") && row.contains("sh2"), "{routes}");

    // cf route: details and the destinations table.
    let route = p
        .cf_ok(&["route", "localhost", "--hostname", "shared"])
        .await?
        .stdout;
    assert!(route.contains("Showing route shared.localhost"), "{route}");
    for want in [
        "domain:",
        "host:",
        "shared",
        "protocol:",
        "http",
        "Destinations:",
        "app-protocol",
    ] {
        assert!(route.contains(want), "{want}: {route}");
    }
    let dest = line_with(&route, "sh2");
    assert!(dest.contains("web") && dest.contains("http1"), "{route}");

    // delete -r of an app whose route another app uses: refused, nothing lost.
    let out = p.cf(&["delete", "sh1", "-f", "-r"]).await?;
    failed(
        &out,
        "App 'sh1' was not deleted because route 'shared.localhost' is mapped to more than one app.",
    );
    assert!(
        out.stderr.contains("TIP: Run 'cf delete sh1'"),
        "{}",
        out.stderr
    );
    p.cf_ok(&["app", "sh1"]).await?;
    wait_greeting(&p, &host("sh1"), "sh1").await?;
    let (status, _) = p.get_via_router(&shared, "/").await?;
    assert_eq!(status, 200);
    let check = p
        .cf_ok(&["check-route", "localhost", "--hostname", "shared"])
        .await?;
    assert!(
        check
            .stdout
            .contains("Route 'shared.localhost' does exist."),
        "{}",
        check.stdout
    );

    // Unmapped from the shared route, delete -r takes sh1 and its own route;
    // sh2 still answers on the shared one.
    p.cf_ok(&["unmap-route", "sh1", "localhost", "--hostname", "shared"])
        .await?;
    p.cf_ok(&["delete", "sh1", "-f", "-r"]).await?;
    wait_greeting(&p, &shared, "sh2").await?;
    p.wait_route_status(&host("sh1"), 404, T).await?;
    let check = p
        .cf_ok(&["check-route", "localhost", "--hostname", "sh1"])
        .await?;
    assert!(
        check
            .stdout
            .contains("Route 'sh1.localhost' does not exist.")
            && check.stdout.contains("OK"),
        "{}",
        check.stdout
    );

    // create-route / check-route / route of a route with no app.
    let out = p
        .cf_ok(&["create-route", "localhost", "--hostname", "lonely"])
        .await?;
    assert!(
        out.stdout
            .contains("Creating route lonely.localhost for org dev / space dev as admin...")
            && out
                .stdout
                .contains("Route lonely.localhost has been created.")
            && out.stdout.contains("OK"),
        "{}",
        out.stdout
    );
    // Again: CF warns and succeeds.
    let out = p
        .cf_ok(&["create-route", "localhost", "--hostname", "lonely"])
        .await?;
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
    p.cf_ok(&[
        "create-route",
        "localhost",
        "--hostname",
        "lonely",
        "--path",
        "/p",
    ])
    .await?;
    let check = p
        .cf_ok(&["check-route", "localhost", "-n", "lonely", "--path", "p"])
        .await?;
    assert!(
        check
            .stdout
            .contains("Route 'lonely.localhost/p' does exist."),
        "{}",
        check.stdout
    );
    let route = p
        .cf_ok(&["route", "localhost", "-n", "lonely"])
        .await?
        .stdout;
    assert!(
        route.contains("lonely")
            && route.contains("Destinations:")
            && !route.contains("app-protocol"),
        "{route}"
    );
    // --org-level: every space of the org; without it, the targeted one.
    p.cf_ok(&["create-space", "other"]).await?;
    p.cf_ok(&["target", "-s", "other"]).await?;
    p.cf_ok(&["create-route", "localhost", "-n", "elsewhere"])
        .await?;
    p.cf_ok(&["target", "-s", "dev"]).await?;
    let org = p.cf_ok(&["routes", "--org-level"]).await?.stdout;
    assert!(
        org.contains("Getting routes for org dev as admin...")
            && line_with(&org, "lonely").starts_with("dev")
            && line_with(&org, "elsewhere").starts_with("other"),
        "{org}"
    );
    let space = p.cf_ok(&["routes"]).await?.stdout;
    assert!(
        space.contains("lonely") && !space.contains("elsewhere"),
        "{space}"
    );
    let missing = p.cf(&["route", "localhost", "-n", "ghost"]).await?;
    failed(
        &missing,
        "Route with host 'ghost', domain 'localhost', and path '/' not found.",
    );

    // Unknown domains: CF's message, exit 1.
    for args in [
        &["create-route", "nope.example", "--hostname", "x"][..],
        &["check-route", "nope.example"][..],
        &["route", "nope.example"][..],
        &["delete-route", "nope.example", "-f"][..],
    ] {
        let out = p.cf(args).await?;
        failed(&out, "Domain 'nope.example' not found.");
    }
    // No host on a shared domain (it would take the whole domain), and a
    // bad host: refused by the controller.
    let out = p.cf(&["create-route", "localhost"]).await?;
    failed(
        &out,
        "Missing host. Routes in shared domains must have a host defined.",
    );
    let out = p
        .cf(&["create-route", "localhost", "--hostname", "bad_host!"])
        .await?;
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);

    // delete-route: a missing route is OK; "n" at the prompt keeps it; -f deletes.
    let out = p
        .cf_ok(&["delete-route", "localhost", "--hostname", "ghost", "-f"])
        .await?;
    assert!(
        out.stdout.contains(
            "Unable to delete. Route with host 'ghost', domain 'localhost', and path '/' not found."
        ) && out.stdout.contains("OK"),
        "{}",
        out.stdout
    );
    let out = Platform::cf_run(
        &p.cf_home,
        &["delete-route", "localhost", "-n", "lonely", "--path", "/p"],
        Some("n\n"),
    )
    .await?;
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("Really delete the route lonely.localhost/p?")
            && out
                .stdout
                .contains("'lonely.localhost/p' has not been deleted."),
        "{}",
        out.stdout
    );
    p.cf_ok(&[
        "delete-route",
        "localhost",
        "-n",
        "lonely",
        "--path",
        "/p",
        "-f",
    ])
    .await?;
    let check = p
        .cf_ok(&["check-route", "localhost", "-n", "lonely", "--path", "/p"])
        .await?;
    assert!(
        check
            .stdout
            .contains("Route 'lonely.localhost/p' does not exist."),
        "{}",
        check.stdout
    );

    // delete-orphaned-routes: the unmapped route goes, mapped ones stay.
    p.cf_ok(&["create-route", "localhost", "--hostname", "orphan"])
        .await?;
    let out = p.cf_ok(&["delete-orphaned-routes", "-f"]).await?;
    assert!(
        out.stdout.contains("Deleting orphaned routes as admin...") && out.stdout.contains("OK"),
        "{}",
        out.stdout
    );
    let routes = p.cf_ok(&["routes"]).await?.stdout;
    assert!(
        !routes.contains("orphan") && !routes.contains("lonely"),
        "{routes}"
    );
    assert!(
        routes.contains("shared") && line_with(&routes, "sh2").contains("sh2"),
        "{routes}"
    );
    wait_greeting(&p, &shared, "sh2").await?;

    // delete-route of a mapped route: the route is gone from the router,
    // the app keeps its own.
    p.cf_ok(&["delete-route", "localhost", "-n", "shared", "-f"])
        .await?;
    p.wait_route_status(&shared, 404, T).await?;
    wait_greeting(&p, &host("sh2"), "sh2").await?;

    // cf domains: CF v8 columns.
    let doms = p.cf_ok(&["domains"]).await?.stdout;
    let header = line_starting(&doms, "name");
    assert!(
        header.contains("availability")
            && header.contains("internal")
            && header.contains("protocols"),
        "{doms}"
    );
    let localhost = line_with(&doms, "localhost");
    assert!(
        localhost.contains("shared") && localhost.contains("http"),
        "{doms}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_health_check_version_buildpacks_and_scale() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;

    let v = p.cf_ok(&["version"]).await?.stdout;
    assert!(v.starts_with("cf version "), "{v}");

    // The DEAs' built-in buildpacks, in the order staging tries them.
    let bps = p.cf_ok(&["buildpacks"]).await?.stdout;
    assert!(!bps.contains("No buildpacks found"), "{bps}");
    let header = line_starting(&bps, "position");
    for col in [
        "position", "name", "stack", "enabled", "locked", "state", "filename",
    ] {
        assert!(header.contains(col), "{col}: {bps}");
    }
    for (pos, name) in [
        ("1", "python"),
        ("2", "nodejs"),
        ("3", "java"),
        ("4", "staticfile"),
        ("5", "binary"),
    ] {
        let words: Vec<&str> = line_with(&bps, name).split_whitespace().collect();
        assert_eq!(words, [pos, name, "host", "true", "true", "READY"], "{bps}");
    }
    let out = p.cf(&["delete-buildpack", "python", "-f"]).await?;
    failed(&out, "cannot be changed or deleted");

    push_named(&p, "hc").await?;
    wait_greeting(&p, &host("hc"), "hc").await?;

    // cf scale without flags: the `cf app` layout.
    let scale = p.cf_ok(&["scale", "hc"]).await?.stdout;
    assert!(
        scale.contains("Showing current scale of app hc in org dev / space dev as admin..."),
        "{scale}"
    );
    for want in [
        "name:",
        "requested state:",
        "routes:",
        "type:",
        "instances:",
        "memory usage:",
        "#0",
    ] {
        assert!(scale.contains(want), "{want}: {scale}");
    }
    assert!(line_with(&scale, "instances:").contains("1/1"), "{scale}");

    // Health checks.
    let get = p.cf_ok(&["get-health-check", "hc"]).await?.stdout;
    assert!(
        get.contains("Getting health check type for app hc in org dev / space dev as admin..."),
        "{get}"
    );
    let header = line_starting(&get, "process");
    assert!(
        header.contains("health check")
            && header.contains("endpoint (for http)")
            && header.contains("invocation timeout"),
        "{get}"
    );
    let web = line_with(&get, "web");
    assert!(web.contains("port") && web.ends_with('1'), "{get}");
    let set = p
        .cf_ok(&["set-health-check", "hc", "http", "--endpoint", "/health"])
        .await?
        .stdout;
    assert!(
        set.contains(
            "Updating health check type for app hc process web in org dev / space dev as admin..."
        ) && set.contains("OK")
            && set.contains("TIP: An app restart is required for the change to take effect."),
        "{set}"
    );
    let get = p.cf_ok(&["get-health-check", "hc"]).await?.stdout;
    let web: Vec<&str> = line_with(&get, "web").split_whitespace().collect();
    assert_eq!(web, ["web", "http", "/health", "1"], "{get}");
    // The DEA checks the endpoint: the app (200 on every path) restarts fine.
    p.cf_ok(&["restart", "hc"]).await?;
    wait_greeting(&p, &host("hc"), "hc").await?;
    p.cf_ok(&[
        "set-health-check",
        "hc",
        "port",
        "--invocation-timeout",
        "5",
    ])
    .await?;
    let get = p.cf_ok(&["get-health-check", "hc"]).await?.stdout;
    let web: Vec<&str> = line_with(&get, "web").split_whitespace().collect();
    assert_eq!(web, ["web", "port", "5"], "{get}");
    let out = p.cf(&["set-health-check", "hc", "bogus"]).await?;
    assert_ne!(out.status, 0, "{}", out.stdout);
    p.cf_ok(&[
        "set-health-check",
        "hc",
        "process",
        "--invocation-timeout",
        "1",
    ])
    .await?;
    let get = p.cf_ok(&["get-health-check", "hc"]).await?.stdout;
    let web: Vec<&str> = line_with(&get, "web").split_whitespace().collect();
    assert_eq!(web, ["web", "process", "1"], "{get}");
    let out = p.cf(&["get-health-check", "nosuch"]).await?;
    failed(&out, "App 'nosuch' not found.");

    // rename: the app keeps its guid and route.
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "hc").await?;
    let out = p.cf_ok(&["rename", "hc", "hc2"]).await?;
    assert!(
        out.stdout
            .contains("Renaming app hc to hc2 in org dev / space dev as admin...")
            && out.stdout.contains("OK"),
        "{}",
        out.stdout
    );
    assert_eq!(p.app_guid(&token, "hc2").await?, guid);
    let app = p.cf_ok(&["app", "hc2"]).await?.stdout;
    assert!(app.contains(&host("hc")), "{app}");
    failed(&p.cf(&["app", "hc"]).await?, "App 'hc' not found.");
    failed(&p.cf(&["rename", "hc", "x"]).await?, "App 'hc' not found.");
    let (status, body) = p.get_via_router(&host("hc"), "/").await?;
    assert_eq!(
        (status, greeting(&body).context("greeting")?.as_str()),
        (200, "hc")
    );
    Ok(())
}
