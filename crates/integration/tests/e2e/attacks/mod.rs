//! Issue 13's attack suite: one module per attack. Each attack must fail
//! and leave everything else working. (The router's, the containers' and
//! the uploads' attacks live with their crates' tests; see docs/testing.md
//! "Attack suite".)

mod bus;
mod file_modes;
mod log_flood;
mod log_streams;
mod logins;
mod tls;

use integration::{app_host, fixture, Platform, PlatformOptions};

/// A platform (process-backend DEA) with the Python fixture pushed as
/// `app` and answering through the router: the bystander an attack must
/// not harm.
async fn platform_with_app(app: &str) -> anyhow::Result<Platform> {
    let p = Platform::start_with(PlatformOptions {
        dea_config: "backend = \"process\"\n".into(),
        ..Default::default()
    })
    .await?;
    p.login().await?;
    let dir = fixture("pyapp");
    p.cf_ok(&["push", app, "-p", dir.to_str().unwrap_or_default()])
        .await?;
    p.wait_route_status(&app_host(app), 200, std::time::Duration::from_secs(60))
        .await?;
    Ok(p)
}
