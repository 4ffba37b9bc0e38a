//! `cf events NAME`.

use super::common::{find_app, Ctx};
use crate::error::Result;
use crate::format::table;
use crate::models::AuditEvent;
use serde_json::Value;

/// A short description from an event's `data` (`key: value` pairs).
pub fn describe(data: &Value) -> String {
    fn flat(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                flat(
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    v,
                    out,
                )
            }),
            Value::Null => {}
            Value::String(s) => out.push(format!("{prefix}: {s}")),
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let mut out = Vec::new();
    flat("", data, &mut out);
    out.join(", ")
}

pub async fn run(name: &str) -> Result<()> {
    let ctx = Ctx::load()?;
    println!("Getting events for app {name} {}...\n", ctx.where_());
    let app = find_app(&ctx, name).await?;
    let mut events: Vec<AuditEvent> = ctx
        .client
        .list(&format!(
            "/v3/audit_events?target_guids={}&order_by=-created_at",
            app.guid
        ))
        .await?;
    events.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    if events.is_empty() {
        println!("No events for app {name}");
        return Ok(());
    }
    let mut rows = vec![vec![
        "time".to_string(),
        "event".into(),
        "actor".into(),
        "description".into(),
    ]];
    for e in &events {
        rows.push(vec![
            crate::format::log_time(&e.created_at),
            e.kind.clone(),
            e.actor.name.clone(),
            describe(&e.data),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_data() {
        let d = serde_json::json!({"request": {"instances": 3, "memory_in_mb": null}, "state": "STARTED"});
        assert_eq!(describe(&d), "request.instances: 3, state: STARTED");
    }
}
