//! Issue 13 (bounded logs): CF's per-process
//! `log_rate_limit_in_bytes_per_second`, set by a manifest and by
//! `cf scale -l`, enforced by the DEA within its platform-wide cap.

use std::time::Duration;

use anyhow::Result;
use integration::{wait_for, Platform};

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_log_rate_limit_drops_lines_beyond_it_and_says_so() -> Result<()> {
    let p = Platform::start().await?;
    p.login().await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.txt"), "chatty\n")?;
    std::fs::write(
        dir.path().join("manifest.yml"),
        "applications:\n- name: chatty\n  buildpack: binary\n  memory: 64M\n  \
         log-rate-limit-per-second: 64B\n  \
         command: (while true; do echo chatty-line-0123456789; sleep 0.05; done) & exec python3 -m http.server $PORT\n",
    )?;
    let d = dir.path().to_str().unwrap_or_default().to_string();
    p.cf_ok(&["push", "-f", &format!("{d}/manifest.yml"), "-p", &d])
        .await?;
    let token = p.admin_token().await?;
    let guid = p.app_guid(&token, "chatty").await?;
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    assert_eq!(web["log_rate_limit_in_bytes_per_second"], 64, "{web}");
    wait_for("the rate limit notice", T, || async {
        let out = p.cf(&["logs", "chatty", "--recent"]).await.ok()?;
        out.stdout
            .contains("app instance exceeded log rate limit (64 bytes/sec)")
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.logs_tail()))?;

    // `cf scale -l`: a size with a unit, or -1 for unlimited.
    let out = p.cf(&["scale", "chatty", "-l", "100"]).await?;
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("Byte quantity must be an integer"),
        "{}",
        out.stderr
    );
    p.cf_ok(&["scale", "chatty", "-l", "-1", "-f"]).await?;
    let web = p
        .api_get(&token, &format!("/v3/apps/{guid}/processes/web"))
        .await?;
    assert_eq!(web["log_rate_limit_in_bytes_per_second"], -1, "{web}");
    Ok(())
}
