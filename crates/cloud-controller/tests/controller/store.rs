//! Store tests, each run on SQLite (temp file) and Postgres (fresh database).

use cloud_controller::store::deployments::Fence;
use cloud_controller::store::{Store, StoreError};

async fn bootstrapped(url: &str) -> Store {
    let s = Store::open(url).await.expect("open store");
    s.bootstrap("admin", "pw", "sys.localhost", "localhost")
        .await
        .expect("bootstrap");
    s
}

async fn dev_space(s: &Store) -> String {
    s.spaces()
        .await
        .expect("spaces")
        .into_iter()
        .find(|sp| sp.name == "dev")
        .expect("dev space")
        .guid
}

async fn apps_and_processes(url: &str) {
    let s = bootstrapped(url).await;
    let space = dev_space(&s).await;
    let app = s
        .create_app("web", &space, Some("python"), "host", r#"{"A":"1"}"#)
        .await
        .expect("create app");
    assert_eq!(app.state, "STOPPED");
    assert_eq!(s.app(&app.guid).await.expect("get"), app);
    let p = s.web_process(&app.guid).await.expect("web process");
    assert_eq!(
        (
            p.kind.as_str(),
            p.instances,
            p.memory_in_mb,
            p.health_check_type.as_str()
        ),
        ("web", 1, 1024, "port")
    );
    let mut p2 = p.clone();
    p2.instances = 3;
    p2.command = Some("./run".into());
    p2.health_check_timeout = Some(30);
    s.update_process(&p2).await.expect("update process");
    let p3 = s.process(&p.guid).await.expect("process");
    assert_eq!(
        (p3.instances, p3.command.as_deref(), p3.health_check_timeout),
        (3, Some("./run"), Some(30))
    );

    match s.create_app("web", &space, None, "host", "{}").await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
    let mut renamed = app.clone();
    renamed.state = cloud_controller::store::AppState::Started;
    renamed.current_droplet_guid = Some("d1".into());
    let renamed = s.update_app(&renamed).await.expect("update");
    assert_eq!(s.app(&app.guid).await.expect("get"), renamed);
    assert_eq!(s.apps().await.expect("apps").len(), 1);

    let pkg = s.create_package(&app.guid).await.expect("package");
    let pkg = s
        .set_package_state(
            &pkg.guid,
            cloud_controller::store::PackageState::Ready,
            Some("abc"),
            None,
        )
        .await
        .expect("ready");
    assert_eq!(
        (pkg.state.as_str(), pkg.sha256.as_deref()),
        ("READY", Some("abc"))
    );
    let b = s
        .create_build(&app.guid, &pkg.guid, "u", "admin")
        .await
        .expect("build");
    s.set_build_uploaded(&b.guid, "def")
        .await
        .expect("uploaded");
    assert!(s
        .fail_build(&b.guid, "StagingError", "boom")
        .await
        .expect("fail"));
    // A build ends once: a later ending changes nothing.
    assert!(!s
        .fail_build(&b.guid, "StagingTimeExpired", "late")
        .await
        .expect("fail again"));
    let b = s.build(&b.guid).await.expect("build");
    assert_eq!(
        (
            b.state.as_str(),
            b.error_text().as_deref(),
            b.uploaded_sha256.as_deref()
        ),
        ("FAILED", Some("StagingError - boom"), Some("def"))
    );

    s.delete_app(&app.guid).await.expect("delete");
    assert!(matches!(
        s.app(&app.guid).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.processes_of(&app.guid).await.expect("procs").is_empty());
    assert!(s.packages_of(&app.guid).await.expect("pkgs").is_empty());
    s.close().await;
}

async fn routes(url: &str) {
    let s = bootstrapped(url).await;
    let space = dev_space(&s).await;
    let domain = s
        .domain_by_name("localhost")
        .await
        .expect("q")
        .expect("apps domain");
    let app = s
        .create_app("r", &space, None, "host", "{}")
        .await
        .expect("app");
    let r = s
        .create_route("myapp", &domain.guid, "/api", &space)
        .await
        .expect("route");
    assert!(matches!(
        s.create_route("myapp", &domain.guid, "/api", &space).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_route("myapp", &domain.guid, "", &space)
        .await
        .expect("same host, other path");
    s.add_destination(&r.guid, &app.guid).await.expect("dest");
    s.add_destination(&r.guid, &app.guid)
        .await
        .expect("idempotent");
    let dests = s.destinations(&r.guid).await.expect("dests");
    assert_eq!(dests.len(), 1);
    let urls: Vec<String> = s
        .app_routes(&app.guid)
        .await
        .expect("app routes")
        .iter()
        .map(|u| u.url())
        .collect();
    assert_eq!(urls, vec!["myapp.localhost/api"]);
    s.remove_destination(&r.guid, &dests[0].guid)
        .await
        .expect("remove");
    assert!(s
        .app_routes(&app.guid)
        .await
        .expect("app routes")
        .is_empty());
    s.delete_route(&r.guid).await.expect("delete route");
    assert!(matches!(
        s.route(&r.guid).await,
        Err(StoreError::NotFound(_))
    ));
    // The other one is the API's own reserved route (bootstrap).
    assert_eq!(s.routes().await.expect("routes").len(), 1 + 1);
    s.close().await;
}

async fn survives_reopen(url: &str) {
    let s = bootstrapped(url).await;
    let key = s.setting_or_insert("k", "first").await.expect("setting");
    s.create_user("alice", "secret").await.expect("user");
    s.close().await;
    let s = bootstrapped(url).await; // bootstrap again: idempotent
    assert_eq!(
        s.setting_or_insert("k", "second").await.expect("setting"),
        key
    );
    let u = s
        .user_by_name("alice")
        .await
        .expect("q")
        .expect("alice survives");
    assert!(cloud_controller::auth::verify_password(
        "secret",
        &u.password_hash
    ));
    assert!(s.user_by_name("admin").await.expect("q").is_some());
    assert!(matches!(
        s.create_user("alice", "x").await,
        Err(StoreError::Conflict(_))
    ));
    // `dev` and the `system` org and space (bootstrap).
    assert_eq!(s.orgs().await.expect("orgs").len(), 2);
    assert_eq!(s.spaces().await.expect("spaces").len(), 2);
    assert_eq!(s.domains().await.expect("domains").len(), 2);
    s.close().await;
}

async fn bad_input(url: &str) {
    let s = bootstrapped(url).await;
    assert!(matches!(
        s.create_app("x", "no-such-space", None, "host", "{}").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(s.app("nope").await, Err(StoreError::NotFound(_))));
    let space = dev_space(&s).await;
    assert!(matches!(
        s.create_route("h", "no-such-domain", "", &space).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_app("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_build_uploaded("nope", "x").await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

/// Security groups: defaults seeded once, global flags and space bindings
/// decide which rules a space gets, per lifecycle.
async fn security_groups(url: &str) {
    use cloud_controller::store::Lifecycle::{Running, Staging};
    let s = bootstrapped(url).await;
    let space = dev_space(&s).await;
    let dns = proto::egress::dns(&["10.0.0.2".parse().expect("ip")]);
    s.seed_security_groups(&dns).await.expect("seed");
    s.seed_security_groups(&dns).await.expect("seed twice");
    let names: Vec<String> = s
        .security_groups()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, vec!["public_networks", "dns"]);
    let base = s.egress_rules(&space, Running).await.expect("rules");
    assert_eq!(base.len(), 5 + 2);
    assert_eq!(s.egress_rules(&space, Staging).await.expect("rules"), base);

    let db = vec![proto::EgressRule {
        description: Some("db".into()),
        ..proto::EgressRule::new("tcp", "172.31.251.2", Some("5432"))
    }];
    let g = s
        .create_security_group("db", &db, false, false)
        .await
        .expect("create");
    assert!(matches!(
        s.create_security_group("db", &db, false, false).await,
        Err(StoreError::Conflict(_))
    ));
    s.bind_security_group(&g.guid, &space, Running)
        .await
        .expect("bind");
    s.bind_security_group(&g.guid, &space, Running)
        .await
        .expect("bind twice");
    let r = s.egress_rules(&space, Running).await.expect("rules");
    assert_eq!(r.len(), base.len() + 1);
    assert!(r.contains(&db[0]));
    assert_eq!(
        s.egress_rules(&space, Staging).await.expect("rules").len(),
        base.len()
    );
    assert_eq!(
        s.egress_rules("other-space", Running)
            .await
            .expect("rules")
            .len(),
        base.len(),
        "bound to one space only"
    );
    assert!(s
        .unbind_security_group(&g.guid, &space, Running)
        .await
        .expect("unbind"));
    assert!(!s
        .unbind_security_group(&g.guid, &space, Running)
        .await
        .expect("unbind again"));
    let mut g2 = g.clone();
    g2.staging_default = 1;
    s.update_security_group(&g2).await.expect("update");
    assert_eq!(
        s.egress_rules("other-space", Staging)
            .await
            .expect("rules")
            .len(),
        base.len() + 1,
        "globally enabled for staging"
    );
    s.delete_security_group(&g.guid).await.expect("delete");
    assert!(matches!(
        s.security_group(&g.guid).await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

/// A build ends once: staged with its droplet in one transaction, and then
/// neither a failure nor a second result changes it.
async fn builds_end_once(url: &str) {
    let s = bootstrapped(url).await;
    let space = dev_space(&s).await;
    let app = s
        .create_app("b", &space, None, "host", "{}")
        .await
        .expect("app");
    let b = s
        .create_build(&app.guid, "pkg", "u", "admin")
        .await
        .expect("build");
    assert_eq!(s.staging_builds().await.expect("staging").len(), 1);
    assert!(s
        .claim_build(&b.guid, "dea-1", "2099-01-01T00:00:00Z")
        .await
        .expect("claim"));
    assert!(!s
        .claim_build(&b.guid, "dea-2", "2099-01-01T00:00:00Z")
        .await
        .expect("claimed"));
    s.unclaim_build(&b.guid, "dea-2").await.expect("not theirs");
    assert_eq!(
        s.build(&b.guid).await.expect("b").dea_id.as_deref(),
        Some("dea-1")
    );
    s.unclaim_build(&b.guid, "dea-1").await.expect("unclaim");
    assert!(s
        .claim_build(&b.guid, "dea-2", "2099-01-01T00:00:00Z")
        .await
        .expect("claim"));
    let d = cloud_controller::store::Droplet {
        guid: "d1".into(),
        app_guid: app.guid.clone(),
        package_guid: "pkg".into(),
        state: cloud_controller::store::DropletState::Staged,
        sha256: Some("ab".into()),
        process_types: r#"{"web":"x"}"#.into(),
        buildpack: Some("python".into()),
        stack: "host".into(),
        error: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
        buildpacks: Some(r#"[{"name":"python","detect_output":"python"}]"#.into()),
        config_vars: Some(r#"{"A":"b"}"#.into()),
    };
    assert!(s.finish_staged(&b.guid, &d).await.expect("staged"));
    assert!(!s.finish_staged(&b.guid, &d).await.expect("again"));
    assert!(!s
        .fail_build(&b.guid, "StagingTimeExpired", "late")
        .await
        .expect("late"));
    let b = s.build(&b.guid).await.expect("b");
    assert_eq!(
        (b.state.as_str(), b.droplet_guid.as_deref()),
        ("STAGED", Some("d1"))
    );
    let d = s.droplet("d1").await.expect("droplet");
    assert_eq!(d.config_vars_map().get("A").map(String::as_str), Some("b"));
    assert_eq!(
        d.buildpacks_used()[0].detect_output.as_deref(),
        Some("python")
    );
    assert!(s.staging_builds().await.expect("staging").is_empty());
    s.close().await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cc.db").display());
                    super::$name(&url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    // Dropped on drop, also when the test fails.
                    let db = testkit::PgDb::create().await.expect("postgres");
                    super::$name(&db.url).await;
                }
            )*
        }
    };
}

async fn refresh_tokens(url: &str) {
    let s = bootstrapped(url).await;
    s.add_refresh_token("j1", "u1", 100, 10).await.expect("add");
    s.add_refresh_token("j2", "u1", 5, 10).await.expect("add");
    assert!(s.refresh_token_live("j1", "u1", 50).await.expect("live"));
    assert!(!s.refresh_token_live("j1", "u2", 50).await.expect("owner"));
    assert!(!s
        .refresh_token_live("j1", "u1", 101)
        .await
        .expect("expired"));
    // Expired ones are forgotten when the next one is recorded.
    s.add_refresh_token("j3", "u2", 100, 10).await.expect("add");
    assert!(!s
        .revoke_refresh_token("j2", Some("u1"))
        .await
        .expect("gone"));
    assert!(!s
        .revoke_refresh_token("j1", Some("u2"))
        .await
        .expect("not hers"));
    assert!(s
        .revoke_refresh_token("j1", Some("u1"))
        .await
        .expect("revoke"));
    assert!(!s.refresh_token_live("j1", "u1", 50).await.expect("revoked"));
    assert!(s.revoke_refresh_token("j3", None).await.expect("anyone's"));
}

/// Jobs: finished ones are forgotten by age; unfinished ones never are.
async fn jobs(url: &str) {
    let s = bootstrapped(url).await;
    let done = s.create_complete_job("app.delete").await.expect("job");
    let running = s
        .create_job("service_instance.create", "service_instances", "i1")
        .await
        .expect("job");
    let got = s.job(&done.guid).await.expect("read").expect("there");
    assert_eq!(
        (got.state.as_str(), got.operation.as_str()),
        ("COMPLETE", "app.delete")
    );
    assert_eq!(s.unfinished_jobs().await.expect("unfinished").len(), 1);
    assert_eq!(
        s.prune_jobs("2000-01-01T00:00:00Z").await.expect("prune"),
        0
    );
    assert_eq!(
        s.prune_jobs("2999-01-01T00:00:00Z").await.expect("prune"),
        1
    );
    assert!(s.job(&done.guid).await.expect("read").is_none());
    assert!(s.job(&running.guid).await.expect("read").is_some());
}

/// The updater's lease (one holder at a time, taken over once expired,
/// a new generation per holder) and the deployments' conditional writes
/// (a writer holding a stale generation changes nothing).
async fn leases_and_deployments(url: &str) {
    let s = bootstrapped(url).await;
    let g1 = s.acquire_lease("l", "a", 100, 15).await.expect("lease");
    assert!(g1.is_some());
    assert_eq!(
        s.acquire_lease("l", "b", 105, 15).await.expect("lease"),
        None
    );
    assert_eq!(s.acquire_lease("l", "a", 110, 15).await.expect("lease"), g1);
    // a renewed until 125: b waits, then takes it over.
    assert_eq!(
        s.acquire_lease("l", "b", 124, 15).await.expect("lease"),
        None
    );
    let g2 = s.acquire_lease("l", "b", 126, 15).await.expect("lease");
    assert!(g2 > g1, "{g2:?} {g1:?}");
    assert_eq!(
        s.acquire_lease("l", "a", 127, 15).await.expect("lease"),
        None
    );
    s.release_lease("l", "b").await.expect("release");
    assert!(s
        .acquire_lease("l", "a", 128, 15)
        .await
        .expect("lease")
        .is_some());

    let space = dev_space(&s).await;
    let app = s
        .create_app("dep", &space, None, "host", r#"{"V":"old"}"#)
        .await
        .expect("create app");
    let t = cloud_controller::store::now();
    let d = cloud_controller::store::Deployment {
        guid: "d1".into(),
        app_guid: app.guid.clone(),
        status_value: "ACTIVE".into(),
        status_reason: "DEPLOYING".into(),
        error: None,
        strategy: "rolling".into(),
        max_in_flight: 1,
        canary_steps: "[]".into(),
        canary_step: 0,
        failure_budget: 3,
        progress_deadline_s: 180,
        droplet_guid: "new-droplet".into(),
        previous_droplet_guid: Some("old-droplet".into()),
        revision_guid: None,
        target: 2,
        new_bus_id: "new-bus".into(),
        new_version: "new-version".into(),
        new_instances: 0,
        old_bus_id: app.guid.clone(),
        old_version: app.version.clone(),
        old_env: app.env.clone(),
        old_instances: 2,
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
    let change = cloud_controller::store::deployments::AppChange {
        env: Some(r#"{"V":"new"}"#),
        commands: &[],
    };
    s.create_deployment(&d, &change).await.expect("create");
    let moved = s.app(&app.guid).await.expect("app");
    assert_eq!(
        (
            moved.version.as_str(),
            moved.current_droplet_guid.as_deref(),
            moved.env.as_str()
        ),
        ("new-version", Some("new-droplet"), r#"{"V":"new"}"#)
    );
    assert_eq!(
        s.web_process(&app.guid)
            .await
            .expect("web")
            .bus_guid
            .as_deref(),
        Some("new-bus")
    );
    // Both units resolve: the new one with its desired count, the old
    // one as the app was.
    let (a, p) = s.unit("new-bus").await.expect("new unit");
    assert_eq!((a.version.as_str(), p.instances), ("new-version", 0));
    let (a, p) = s.unit(&app.guid).await.expect("old unit");
    assert_eq!(
        (a.version.as_str(), p.instances, p.bus_id()),
        (app.version.as_str(), 2, app.guid.as_str())
    );

    let mut next = d.clone();
    next.new_instances = 1;
    assert!(s.save_deployment(&next, None).await.expect("save"));
    // A writer that read generation 0 lost: nothing changes.
    next.new_instances = 2;
    assert!(!s.save_deployment(&next, None).await.expect("save"));
    assert!(!s.cancel_deployment(&next, None).await.expect("cancel"));
    let now = s.deployment("d1").await.expect("read");
    assert_eq!((now.new_instances, now.generation), (1, 1));
    // Fencing: b lost the lease to a (at 128); b's writes, made with the
    // generation it held, change nothing, even at the row's current
    // generation. a's, with its own, land.
    let ga = s
        .acquire_lease("l", "a", 129, 15)
        .await
        .expect("lease")
        .expect("a holds it");
    let lost = Fence {
        lease: "l".into(),
        holder: "b".into(),
        generation: g2.expect("b held it"),
    };
    let mut fenced = now.clone();
    fenced.new_instances = 2;
    assert!(!s.save_deployment(&fenced, Some(&lost)).await.expect("save"));
    assert!(!s
        .finish_deployment(&fenced, Some(&lost))
        .await
        .expect("finish"));
    assert!(!s
        .cancel_deployment(&fenced, Some(&lost))
        .await
        .expect("cancel"));
    assert_eq!(s.deployment("d1").await.expect("read"), now);
    let held = Fence {
        lease: "l".into(),
        holder: "a".into(),
        generation: ga,
    };
    assert!(s.save_deployment(&fenced, Some(&held)).await.expect("save"));
    let now = s.deployment("d1").await.expect("read");
    assert_eq!((now.new_instances, now.generation), (2, 2));
    let mut cancel = now.clone();
    cancel.error = Some("rolled back: test".into());
    assert!(s.cancel_deployment(&cancel, None).await.expect("cancel"));
    let back = s.app(&app.guid).await.expect("app");
    assert_eq!(
        (
            back.version.as_str(),
            back.current_droplet_guid.as_deref(),
            back.env.as_str()
        ),
        (app.version.as_str(), Some("old-droplet"), r#"{"V":"old"}"#)
    );
    assert_eq!(
        s.web_process(&app.guid).await.expect("web").bus_id(),
        app.guid
    );
    let done = s.deployment("d1").await.expect("read");
    assert_eq!(
        (
            done.status_value.as_str(),
            done.status_reason.as_str(),
            done.error.as_deref()
        ),
        ("FINALIZED", "CANCELED", Some("rolled back: test"))
    );
    assert!(s
        .active_deployment(&app.guid)
        .await
        .expect("active")
        .is_none());
}

/// The task sweep's writes are fenced by its lease: a controller that is
/// not (or no longer) the holder fails no task; the holder fails a lost
/// one once.
async fn lost_tasks_fail_only_under_the_sweep_lease(url: &str) {
    use cloud_controller::store::deployments::Fence;
    let s = bootstrapped(url).await;
    let space = dev_space(&s).await;
    let app = s
        .create_app("tasker", &space, None, "host", "{}")
        .await
        .expect("create app");
    let t = s
        .create_task(&cloud_controller::store::NewTask {
            app_guid: &app.guid,
            name: "t",
            command: "sleep 60",
            memory_in_mb: 64,
            disk_in_mb: 64,
            droplet_guid: "some-droplet",
        })
        .await
        .expect("task");
    assert!(s
        .set_task_state(&t.guid, &["PENDING"], "RUNNING", None, Some("dea-1"))
        .await
        .expect("running"));
    let lease = cloud_controller::tasks::SWEEP_LEASE;
    let now = chrono::Utc::now().timestamp();
    let g1 = s
        .acquire_lease(lease, "a", now - 20, 15)
        .await
        .expect("lease")
        .expect("a holds it");
    // a's lease expired; b takes it over.
    let g2 = s
        .acquire_lease(lease, "b", now, 15)
        .await
        .expect("lease")
        .expect("b holds it");
    let fence = |holder: &str, generation| Fence {
        lease: lease.to_string(),
        holder: holder.to_string(),
        generation,
    };
    assert!(
        !s.fail_lost_task(&t.guid, "lost", &fence("a", g1))
            .await
            .expect("stale"),
        "the holder that lost the lease fails nothing"
    );
    assert_eq!(s.task(&t.guid).await.expect("read").state, "RUNNING");
    assert!(s
        .fail_lost_task(&t.guid, "lost", &fence("b", g2))
        .await
        .expect("holder"));
    let failed = s.task(&t.guid).await.expect("read");
    assert_eq!(
        (failed.state.as_str(), failed.failure_reason.as_deref()),
        ("FAILED", Some("lost"))
    );
    assert!(!s
        .fail_lost_task(&t.guid, "lost", &fence("b", g2))
        .await
        .expect("again"));
}

both_backends!(
    leases_and_deployments,
    lost_tasks_fail_only_under_the_sweep_lease,
    jobs,
    apps_and_processes,
    routes,
    survives_reopen,
    bad_input,
    security_groups,
    builds_end_once,
    refresh_tokens
);
