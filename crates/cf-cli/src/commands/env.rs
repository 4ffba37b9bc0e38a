//! `cf env NAME`.

use super::common::{find_app, Ctx};
use crate::error::Result;
use serde_json::Value;

fn section(v: Option<&Value>) -> String {
    let mut out = String::new();
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            let val = match v {
                Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            out.push_str(&format!("{k}: {val}\n"));
        }
    }
    out
}

/// The `cf env` body from the `/v3/apps/:g/env` document.
pub fn render_env(env: &Value) -> String {
    let mut out = String::from("System-Provided:\n");
    let sys = section(env.get("system_env_json"));
    let app = section(env.get("application_env_json"));
    out.push_str(&sys);
    if !sys.is_empty() && !app.is_empty() {
        out.push('\n');
    }
    out.push_str(&app);
    let user = section(env.get("environment_variables"));
    if user.is_empty() {
        out.push_str("\nNo user-provided env variables have been set\n");
    } else {
        out.push_str("\nUser-Provided:\n");
        out.push_str(&user);
    }
    for (key, what) in [
        ("running_env_json", "running"),
        ("staging_env_json", "staging"),
    ] {
        let s = section(env.get(key));
        if s.is_empty() {
            out.push_str(&format!("\nNo {what} env variables have been set\n"));
        } else {
            let title = if what == "running" {
                "Running Environment Variable Groups:"
            } else {
                "Staging Environment Variable Groups:"
            };
            out.push_str(&format!("\n{title}\n{s}"));
        }
    }
    out
}

pub async fn run(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Getting env variables for app {name} {}...", ctx.where_());
    let app = find_app(&ctx, name).await?;
    let env: Value = ctx
        .client
        .get(&format!("/v3/apps/{}/env", app.guid))
        .await?;
    super::common::ok();
    println!();
    print!("{}", render_env(&env));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_user_and_system_env() {
        let env = serde_json::json!({
            "environment_variables": {"GREETING": "hello"},
            "system_env_json": {"VCAP_SERVICES": {}},
            "application_env_json": {"VCAP_APPLICATION": {"name": "a"}},
            "running_env_json": {}, "staging_env_json": {}
        });
        let s = render_env(&env);
        assert!(s.contains("User-Provided:\nGREETING: hello\n"), "{s}");
        assert!(s.contains("VCAP_APPLICATION: {"), "{s}");
        assert!(s.contains("No running env variables have been set"), "{s}");
    }
}
