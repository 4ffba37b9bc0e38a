//! `cf dev start --hosts N` (issue 17): the platform on simulated hosts on
//! this machine, deployed by `paas` as on real hosts, reached through
//! HAProxy; `cf dev stop` removes every namespace, veth, rule and process
//! it made. Root only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Result};
use integration::{fixture, http_client, pids_with_cwd_under, wait_for, CfOutput, Platform};

/// Runs `cf dev stop` on drop: a failed test leaves nothing behind either.
struct DevStop {
    home: PathBuf,
    dir: PathBuf,
}

impl Drop for DevStop {
    fn drop(&mut self) {
        if self.dir.join("lab.json").exists() {
            if let Ok(cf) = integration::bin("cf") {
                let _ = Command::new(cf)
                    .args(["dev", "stop", "--dir"])
                    .arg(&self.dir)
                    .env("CF_HOME", &self.home)
                    .output();
            }
        }
    }
}

async fn cf(home: &Path, args: &[&str]) -> Result<CfOutput> {
    Platform::cf_run(home, args, None).await
}

fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The lab's namespaces, links and iptables rules now on the machine.
fn leftovers(bridge: &str) -> String {
    shell(&format!(
        "ip netns list | grep '^{bridge}-'; ip -o link | grep ' {bridge}'; \
         iptables -S | grep -w {bridge}; iptables -t nat -S | grep -w {bridge}; \
         ls /etc/netns | grep '^{bridge}-'"
    ))
}

#[tokio::test]
async fn cf_dev_start_hosts_runs_the_platform_on_three_hosts_and_stop_leaves_nothing() -> Result<()>
{
    if !testkit::require_root("cf_dev_start_hosts", &[]) {
        return Ok(());
    }
    proto::https::install_ring();
    // Declared first, dropped last: after the platform that uses it.
    let db = testkit::PgDb::create().await?;
    let tmp = tempfile::Builder::new().prefix("cf-dev-hosts-").tempdir()?;
    let home = tmp.path().join("home");
    let dir = tmp.path().join("dev");
    std::fs::create_dir_all(&home)?;
    let _stop = DevStop {
        home: home.clone(),
        dir: dir.clone(),
    };
    let port = testkit::free_port();
    let d = dir.display().to_string();
    let p = port.to_string();

    let start = [
        "dev",
        "start",
        "--hosts",
        "3",
        "--dir",
        &d,
        "--router-port",
        &p,
        "--database-url",
        &db.url,
    ];
    let o = cf(&home, &start).await?;
    let logs = || {
        shell(&format!(
            "tail -n 20 {d}/logs/*.log {d}/hosts/*/components/*/*.log"
        ))
    };
    assert_eq!(o.status, 0, "{}\n{}\n{}", o.stdout, o.stderr, logs());
    let api = format!("http://api.sys.localhost:{port}");
    assert!(
        o.stdout.contains(&format!("API endpoint:   {api}")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!("HAProxy on 127.0.0.1:{port}")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Deployment #1: done"), "{}", o.stdout);

    // Three namespaces, each host at its own address, as the manifest says.
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("lab.json"))?)?;
    let n = record["net"]["n"]
        .as_u64()
        .ok_or_else(|| anyhow!("{record}"))?;
    let bridge = format!("plab{n}");
    let netns = shell("ip netns list");
    for h in ["h1", "h2", "h3"] {
        assert!(netns.contains(&format!("{bridge}-{h}")), "{netns}");
    }
    let manifest = std::fs::read_to_string(dir.join("paas.yml"))?;
    for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
        let line = format!("name: {h}, address: 10.251.{n}.{}", i + 2);
        assert!(manifest.contains(&line), "{manifest}");
    }

    // A second start is refused, and changes nothing.
    let again = cf(&home, &start).await?;
    assert_ne!(again.status, 0);
    assert!(again.stderr.contains("already up"), "{}", again.stderr);

    let status = cf(&home, &["dev", "status", "--dir", &d]).await?;
    assert_eq!(status.status, 0, "{}", status.stderr);
    assert_eq!(
        status.stdout.matches("running").count(),
        10,
        "{}",
        status.stdout
    );

    // cf push through the load balancer: the instance runs on the DEA host.
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".paas/dev/secrets.json"))?)?;
    let password = secrets["admin_password"].as_str().unwrap_or_default();
    let login = cf(
        &home,
        &[
            "login", "-a", &api, "-u", "admin", "-p", password, "-o", "dev", "-s", "dev",
        ],
    )
    .await?;
    assert_eq!(login.status, 0, "{}\n{}", login.stdout, login.stderr);
    let app = fixture("pyapp").display().to_string();
    let push = cf(&home, &["push", "hello", "-p", &app]).await?;
    assert_eq!(
        push.status,
        0,
        "{}\n{}\n{}",
        push.stdout,
        push.stderr,
        logs()
    );
    let body = wait_for(
        "hello through the load balancer",
        Duration::from_secs(60),
        || async {
            let r = http_client()
                .get(format!("http://127.0.0.1:{port}/"))
                .header("host", format!("hello.localhost:{port}"))
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.text().await.ok()
        },
    )
    .await?;
    assert!(!body.is_empty());
    let stats = cf(&home, &["app", "hello"]).await?;
    assert!(stats.stdout.contains("running"), "{}", stats.stdout);

    // Stop: nothing of the lab is left on the machine.
    let stop = cf(&home, &["dev", "stop", "--dir", &d]).await?;
    assert_eq!(stop.status, 0, "{}\n{}", stop.stdout, stop.stderr);
    assert!(
        stop.stdout.contains("Stopped 3 simulated hosts"),
        "{}",
        stop.stdout
    );
    assert!(!dir.join("lab.json").exists());
    assert_eq!(leftovers(&bridge), "");
    assert!(pids_with_cwd_under(&dir).is_empty());
    let haproxy = record["haproxy"].as_u64().unwrap_or_default();
    assert!(
        !integration::process_alive(haproxy as u32),
        "haproxy {haproxy} still runs"
    );
    for pid in record["agents"].as_array().into_iter().flatten() {
        let pid = pid.as_u64().unwrap_or_default() as u32;
        assert!(!integration::process_alive(pid), "agent {pid} still runs");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Stopping again is fine and says there is nothing to stop.
    let again = cf(&home, &["dev", "stop", "--dir", &d]).await?;
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("Nothing was running"),
        "{}",
        again.stdout
    );
    Ok(())
}
