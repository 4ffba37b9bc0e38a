//! Issue 15 (services), with the real servers of this machine (PostgreSQL,
//! MariaDB, Redis, RabbitMQ), the real `service-broker`, the real platform
//! and the real `cf`: the broker registered and its plans enabled with the
//! CLI; one instance of each backend; a fixture app of 2 instances that
//! reads its credentials from `VCAP_SERVICES` with Python's `cfenv` (staged
//! from `requirements.txt`) writes through one instance and reads through
//! the other; restart and scale keep the data; a second app bound to the
//! same instances sees it; unbinding revokes the credentials; deleting
//! drops the database, keys and vhost; a user-provided service sets
//! `DATABASE_URL`; bad input gets CF's answers.
//!
//! The first test runs the DEA's `process` backend (apps on the host); the
//! second runs containers, which reach the host's servers through the
//! DEA's host services address, Redis through the broker's AUTH guard.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use integration::{app_host, bin, fixture, wait_for, Component, Platform, PlatformOptions};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// (offering label, instance name).
const BACKENDS: [(&str, &str); 4] = [
    ("postgresql", "pg"),
    ("mysql", "my"),
    ("redis", "rd"),
    ("rabbitmq", "mq"),
];

/// Deletes the test's service instances (so the broker drops what it made
/// on the servers) even when the test fails.
struct Instances {
    home: std::path::PathBuf,
    names: Vec<&'static str>,
}

impl Drop for Instances {
    fn drop(&mut self) {
        let Ok(cf) = bin("cf") else { return };
        for name in &self.names {
            let _ = std::process::Command::new(&cf)
                .args(["delete-service", name, "-f", "-w"])
                .env("CF_HOME", &self.home)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// GET through the router: status and JSON body.
async fn get(p: &Platform, app: &str, path: &str) -> Result<(u16, Value)> {
    let (status, body) = p.get_via_router(&app_host(app), path).await?;
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Ok((status, v))
}

/// The first 200 answer of `path` from instance `index` of `app`.
async fn from_index(p: &Platform, app: &str, path: &str, index: &str) -> Result<Value> {
    wait_for(&format!("{path} answered by {app}/{index}"), T, || async {
        match get(p, app, path).await {
            Ok((200, v)) if v["index"] == index => Some(v),
            _ => None,
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", p.logs_tail()))
}

/// What a bound instance's credentials name: (database/prefix/vhost).
async fn credentials_name(p: &Platform, token: &str, instance: &str) -> Result<String> {
    let si = p
        .api_get(token, &format!("/v3/service_instances?names={instance}"))
        .await?;
    let guid = si["resources"][0]["guid"].as_str().unwrap_or_default();
    let b = p
        .api_get(
            token,
            &format!("/v3/service_credential_bindings?service_instance_guids={guid}&type=app"),
        )
        .await?;
    let bg = b["resources"][0]["guid"].as_str().unwrap_or_default();
    let d = p
        .api_get(
            token,
            &format!("/v3/service_credential_bindings/{bg}/details"),
        )
        .await?;
    let c = &d["credentials"];
    for k in [
        "uri", "url", "hostname", "port", "name", "username", "password",
    ] {
        if c.get(k).is_none() {
            bail!("credentials of {instance} lack {k}: {d}");
        }
    }
    Ok(c["name"].as_str().unwrap_or_default().to_string())
}

/// Whether the server still holds what the broker made for an instance.
async fn exists_on_server(label: &str, name: &str) -> Result<bool> {
    let run = |cmd: &str, args: &[&str]| {
        let out = std::process::Command::new(cmd).args(args).output()?;
        if !out.status.success() {
            bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    Ok(match label {
        "postgresql" => !run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-tAc",
                &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ],
        )?
        .is_empty(),
        "mysql" => !run(
            "mysql",
            &[
                "-h",
                "127.0.0.1",
                "-uroot",
                "-N",
                "-e",
                &format!("SHOW DATABASES LIKE '{name}'"),
            ],
        )?
        .is_empty(),
        "redis" => !run(
            "redis-cli",
            &[
                "-h",
                "127.0.0.1",
                "--scan",
                "--pattern",
                &format!("{name}*"),
            ],
        )?
        .is_empty(),
        _ => {
            let vhost: String = name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let r = reqwest::Client::new()
                .get(format!("http://127.0.0.1:15672/api/vhosts/{vhost}"))
                .basic_auth("guest", Some("guest"))
                .send()
                .await?;
            r.status().is_success()
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_on_the_real_servers_with_the_real_broker_and_cf() -> Result<()> {
    let p = Platform::start_with(PlatformOptions {
        dea_config: "backend = \"process\"".into(),
        cc_config: "broker_poll_interval_s = 1".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let (mut broker, url) = Component::service_broker(p.root(), "broker-s3cret").await?;
    let _cleanup = Instances {
        home: p.cf_home.clone(),
        names: vec!["pg", "my", "rd", "mq", "ups"],
    };

    // The admin registers the broker and enables its plans.
    let out = p
        .cf_ok(&[
            "create-service-broker",
            "local",
            "broker",
            "broker-s3cret",
            &url,
        ])
        .await?;
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
    let out = p.cf_ok(&["service-brokers"]).await?;
    assert!(
        out.stdout.contains("local") && out.stdout.contains(&url),
        "{}",
        out.stdout
    );
    for (label, _) in BACKENDS {
        p.cf_ok(&["enable-service-access", label]).await?;
    }
    let out = p.cf_ok(&["marketplace"]).await?;
    for (label, _) in BACKENDS {
        assert!(out.stdout.contains(label), "{label}: {}", out.stdout);
    }
    assert!(out.stdout.contains("small, shared"), "{}", out.stdout);

    // Bad input: CF's answers, nothing created.
    for (args, want) in [
        (
            vec!["create-service", "postgresql", "huge", "x"],
            "The plan 'huge' could not be found for service offering 'postgresql'.",
        ),
        (
            vec!["create-service", "nosuch", "small", "x"],
            "Service offering 'nosuch' not found.",
        ),
        (
            vec!["create-service", "postgresql", "small", "x", "-c", "{bad"],
            "Invalid configuration provided for -c flag.",
        ),
    ] {
        let out = p.cf(&args).await?;
        assert_eq!(out.status, 1, "{args:?}: {} {}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(want) || out.stdout.contains(want),
            "{args:?}: {} {}",
            out.stdout,
            out.stderr
        );
    }

    // One instance of each backend.
    for (label, name) in BACKENDS {
        let out = p
            .cf_ok(&["create-service", label, "small", name, "--wait"])
            .await?;
        assert!(
            out.stdout
                .contains(&format!("Service instance {name} created.")),
            "{}",
            out.stdout
        );
    }
    let out = p
        .cf_ok(&["create-service", "postgresql", "small", "pg"])
        .await?;
    assert!(
        out.stdout.contains("Service instance pg already exists"),
        "{}",
        out.stdout
    );
    let out = p.cf_ok(&["services"]).await?;
    for (label, name) in BACKENDS {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .ok_or_else(|| anyhow!("{name} not listed: {}", out.stdout))?;
        assert!(
            line.contains(label) && line.contains("small") && line.contains("create succeeded"),
            "{line}"
        );
    }

    // The app, bound to all four by its manifest, 2 instances.
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("manifest.yml");
    let path = fixture("svcapp");
    std::fs::write(
        &manifest,
        format!(
            "applications:\n- name: svcapp\n  instances: 2\n  memory: 128M\n  path: {}\n  services: [pg, my, rd, mq]\n",
            path.display()
        ),
    )?;
    let m = manifest.display().to_string();
    p.cf_ok(&["push", "-f", &m]).await?;
    let out = p.cf_ok(&["services"]).await?;
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("pg ") && l.contains("svcapp")),
        "{}",
        out.stdout
    );

    // Written through one instance, read through the other.
    for (label, _) in BACKENDS {
        let v = from_index(
            &p,
            "svcapp",
            &format!("/put?svc={label}&value=v-{label}"),
            "0",
        )
        .await?;
        assert_eq!(v["value"], format!("v-{label}"), "{v}");
        let v = from_index(&p, "svcapp", &format!("/get?svc={label}"), "1").await?;
        assert_eq!(
            v["value"],
            format!("v-{label}"),
            "{label} read through the other instance: {v}"
        );
    }
    let out = p.cf_ok(&["bind-service", "svcapp", "pg"]).await?;
    assert!(
        out.stdout
            .contains("App svcapp is already bound to service instance pg."),
        "{}",
        out.stdout
    );

    // Restart and scale keep the data.
    p.cf_ok(&["restart", "svcapp"]).await?;
    p.cf_ok(&["scale", "svcapp", "-i", "3"]).await?;
    for (label, _) in BACKENDS {
        let v = from_index(&p, "svcapp", &format!("/get?svc={label}"), "2").await?;
        assert_eq!(
            v["value"],
            format!("v-{label}"),
            "{label} after restart and scale: {v}"
        );
    }

    // A second app bound to the same instances sees the data.
    let token = p.admin_token().await?;
    let mut names = Vec::new();
    for (label, name) in BACKENDS {
        names.push((label, credentials_name(&p, &token, name).await?));
    }
    let p2 = path.display().to_string();
    p.cf_ok(&["push", "svcapp2", "-p", &p2, "-m", "128M", "--no-start"])
        .await?;
    for (_, name) in BACKENDS {
        let out = p.cf_ok(&["bind-service", "svcapp2", name]).await?;
        assert!(
            out.stdout.contains(
                "TIP: Use 'cf restage svcapp2' to ensure your env variable changes take effect"
            ),
            "{}",
            out.stdout
        );
    }
    p.cf_ok(&["start", "svcapp2"]).await?;
    for (label, _) in BACKENDS {
        let v = from_index(&p, "svcapp2", &format!("/get?svc={label}"), "0").await?;
        assert_eq!(
            v["value"],
            format!("v-{label}"),
            "{label} from the second app: {v}"
        );
    }

    // Unbinding revokes the binding's credentials: the running app (with
    // them still in its environment) can no longer use them, and the
    // sessions it holds open end.
    for (label, _) in BACKENDS {
        from_index(&p, "svcapp2", &format!("/hold?svc={label}"), "0").await?;
        from_index(&p, "svcapp2", &format!("/held?svc={label}"), "0").await?;
    }
    for (label, name) in BACKENDS {
        p.cf_ok(&["unbind-service", "svcapp2", name]).await?;
        wait_for(
            &format!("the open {label} session of the unbound app ended"),
            T,
            || async {
                match get(&p, "svcapp2", &format!("/held?svc={label}")).await {
                    Ok((500, v)) => Some(v),
                    _ => None,
                }
            },
        )
        .await?;
        wait_for(
            &format!("{label} refused to the unbound app"),
            T,
            || async {
                match get(&p, "svcapp2", &format!("/get?svc={label}")).await {
                    Ok((500, v)) => Some(v),
                    _ => None,
                }
            },
        )
        .await?;
    }
    let out = p.cf_ok(&["unbind-service", "svcapp2", "pg"]).await?;
    assert!(
        out.stdout
            .contains("Binding between pg and svcapp2 does not exist"),
        "{}",
        out.stdout
    );

    // A user-provided service: under `user-provided`, and DATABASE_URL.
    p.cf_ok(&[
        "cups",
        "ups",
        "-p",
        r#"{"uri":"postgres://u:p@db.example:5432/orders"}"#,
        "-t",
        "a, b",
    ])
    .await?;
    p.cf_ok(&["bind-service", "svcapp2", "ups"]).await?;
    p.cf_ok(&["restart", "svcapp2"]).await?;
    let v = from_index(&p, "svcapp2", "/env?name=DATABASE_URL", "0").await?;
    assert_eq!(v["value"], "postgres://u:p@db.example:5432/orders", "{v}");
    let v = from_index(&p, "svcapp2", "/env?name=VCAP_SERVICES", "0").await?;
    let vcap: Value = serde_json::from_str(v["value"].as_str().unwrap_or("{}"))?;
    assert_eq!(vcap["user-provided"][0]["name"], "ups", "{vcap}");
    assert_eq!(
        vcap["user-provided"][0]["tags"],
        serde_json::json!(["a", "b"]),
        "{vcap}"
    );

    // Deleting an instance that is bound unbinds first, then the broker
    // drops the database, keys or vhost.
    for (label, name) in &names {
        assert!(
            exists_on_server(label, name).await?,
            "{label} {name} before delete"
        );
    }
    for ((label, name), (_, instance)) in names.iter().zip(BACKENDS) {
        let out = p.cf_ok(&["delete-service", instance, "-f", "-w"]).await?;
        assert!(out.stdout.contains("OK"), "{}", out.stdout);
        assert!(
            !exists_on_server(label, name).await?,
            "{label} {name} after delete"
        );
    }
    let out = p.cf_ok(&["delete-service", "pg", "-f"]).await?;
    assert!(
        out.stdout.contains("Service instance pg did not exist."),
        "{}",
        out.stdout
    );

    // The broker stopped: the create job fails with CF's words, the
    // instance shows "create failed", nothing else changes.
    broker.terminate(Duration::from_secs(10));
    let out = p
        .cf(&["create-service", "postgresql", "small", "late", "--wait"])
        .await?;
    assert_eq!(out.status, 1, "{} {}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("provision could not be completed: The service broker could not be reached"),
        "{all}"
    );
    let out = p.cf_ok(&["services"]).await?;
    let late = out
        .stdout
        .lines()
        .find(|l| l.starts_with("late "))
        .ok_or_else(|| anyhow!("late not listed: {}", out.stdout))?;
    assert!(late.contains("create failed"), "{late}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ups ")),
        "{}",
        out.stdout
    );
    // Forgotten without its (gone) broker: an admin's purge.
    let si = p
        .api_get(&token, "/v3/service_instances?names=late")
        .await?;
    let guid = si["resources"][0]["guid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = p
        .api_call(
            &token,
            reqwest::Method::DELETE,
            &format!("/v3/service_instances/{guid}?purge=true"),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    Ok(())
}

/// In containers (the namespaces backend, as root): a bound app reaches
/// its services on the host's 127.0.0.1 through the DEA's host services
/// address (Redis through the broker's AUTH guard), only the ports of its
/// bindings; an app bound to nothing reaches none; Redis itself and other
/// host ports stay closed; unbinding closes the port at the next restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_reach_only_the_services_they_are_bound_to() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: containers need root");
        return Ok(());
    }
    const ADDR: &str = "10.253.0.1";
    // Redis is reached through the broker's AUTH guard (its own port).
    let guard = integration::free_port();
    let p = Platform::start_with(PlatformOptions {
        dea_config: format!(
            "backend = \"namespaces\"\nhost_services_address = \"{ADDR}\"\nhost_services_ports = [5432, 3306, {guard}, 5672]"
        ),
        cc_config: "broker_poll_interval_s = 1".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let (_broker, url) =
        Component::service_broker_for_containers(p.root(), "broker-s3cret", Some((ADDR, guard)))
            .await?;
    let _cleanup = Instances {
        home: p.cf_home.clone(),
        names: vec!["pg", "my", "rd", "mq"],
    };
    p.cf_ok(&[
        "create-service-broker",
        "local",
        "broker",
        "broker-s3cret",
        &url,
    ])
    .await?;
    for (label, name) in BACKENDS {
        p.cf_ok(&["enable-service-access", label]).await?;
        p.cf_ok(&["create-service", label, "small", name, "--wait"])
            .await?;
    }
    let path = fixture("svcapp").display().to_string();
    p.cf_ok(&["push", "boxed", "-p", &path, "-m", "128M", "--no-start"])
        .await?;
    for (_, name) in BACKENDS {
        p.cf_ok(&["bind-service", "boxed", name]).await?;
    }
    p.cf_ok(&["start", "boxed"]).await?;
    p.cf_ok(&["push", "stranger", "-p", &path, "-m", "128M"])
        .await?;

    let tcp = |app: &'static str, port: u16| {
        let p = &p;
        async move {
            let v = from_index(p, app, &format!("/tcp?host={ADDR}&port={port}"), "0").await?;
            Ok::<bool, anyhow::Error>(v["ok"] == true)
        }
    };
    for ((label, _), port) in BACKENDS.iter().zip([5432u16, 3306, guard, 5672]) {
        let v = from_index(
            &p,
            "boxed",
            &format!("/put?svc={label}&value=boxed-{label}"),
            "0",
        )
        .await?;
        assert_eq!(
            v["value"],
            format!("boxed-{label}"),
            "{label} from a container: {v}"
        );
        assert!(
            tcp("boxed", port).await?,
            "{label}: the bound app reaches {ADDR}:{port}"
        );
        assert!(
            !tcp("stranger", port).await?,
            "{label}: an unbound app must not reach {ADDR}:{port}"
        );
    }
    // Redis itself is not reachable, only its guard.
    assert!(
        !tcp("boxed", 6379).await?,
        "redis is reached through its guard only"
    );
    // The host's other loopback servers stay closed, even to a bound app.
    assert!(!tcp("boxed", 4222).await?, "nats is not a bound service");

    // Unbound, then restarted: the port closes; the others stay open.
    p.cf_ok(&["unbind-service", "boxed", "pg"]).await?;
    p.cf_ok(&["restart", "boxed"]).await?;
    assert!(
        !tcp("boxed", 5432).await?,
        "postgresql after unbind and restart"
    );
    assert!(tcp("boxed", 3306).await?, "mysql stays bound");
    Ok(())
}
