//! `VCAP_SERVICES`: what an app sees of its bindings (CF's
//! SystemEnvPresenter). Pure: the caller loads the rows.

use serde_json::{json, Map, Value};

use crate::store::{Binding, Instance, Offering, Plan};

/// One binding with what it binds.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a> {
    pub binding: &'a Binding,
    pub instance: &'a Instance,
    /// Managed instances only.
    pub plan: Option<&'a Plan>,
    pub offering: Option<&'a Offering>,
}

fn strings(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text).unwrap_or_default()
}

fn object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// The `VCAP_SERVICES` document: bindings grouped by the offering's name
/// (`user-provided` for user-provided instances), in the order given.
pub fn vcap_services(bound: &[Bound<'_>]) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for b in bound {
        let (label, tags, plan) = match (b.offering, b.plan) {
            (Some(o), Some(p)) => {
                let mut tags = strings(&o.tags);
                for t in strings(&b.instance.tags) {
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
                (o.name.clone(), tags, Some(p.name.clone()))
            }
            _ => ("user-provided".to_string(), strings(&b.instance.tags), None),
        };
        // Only what a container needs of a volume mount (CF).
        let mounts: Vec<Value> = serde_json::from_str::<Vec<Value>>(&b.binding.volume_mounts)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                json!({
                    "container_dir": m.get("container_dir").cloned().unwrap_or(Value::Null),
                    "mode": m.get("mode").cloned().unwrap_or(Value::Null),
                    "device_type": m.get("device_type").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        let mut entry = json!({
            "label": label,
            "name": b.binding.name.clone().unwrap_or_else(|| b.instance.name.clone()),
            "tags": tags,
            "instance_guid": b.instance.guid,
            "instance_name": b.instance.name,
            "binding_guid": b.binding.guid,
            "binding_name": b.binding.name,
            "credentials": object(&b.binding.credentials),
            "syslog_drain_url": b.binding.syslog_drain_url,
            "volume_mounts": mounts,
        });
        if let Some(plan) = plan {
            entry["plan"] = json!(plan);
            entry["provider"] = Value::Null;
        }
        match out.get_mut(&label) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                out.insert(label, json!([entry]));
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(guid: &str, name: Option<&str>, creds: &str) -> Binding {
        Binding {
            guid: guid.into(),
            kind: "app".into(),
            name: name.map(str::to_string),
            instance_guid: String::new(),
            app_guid: Some("app".into()),
            credentials: creds.into(),
            syslog_drain_url: None,
            volume_mounts: r#"[{"container_dir":"/d","mode":"rw","device_type":"shared","device":{"secret":1}}]"#.into(),
            parameters: "{}".into(),
            op_type: "create".into(),
            op_state: "succeeded".into(),
            op_description: String::new(),
            op_created_at: String::new(),
            op_updated_at: String::new(),
            broker_operation: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn instance(guid: &str, name: &str, kind: &str, tags: &str) -> Instance {
        Instance {
            guid: guid.into(),
            name: name.into(),
            kind: kind.into(),
            space_guid: "s".into(),
            plan_guid: None,
            tags: tags.into(),
            parameters: "{}".into(),
            credentials: "{}".into(),
            syslog_drain_url: None,
            route_service_url: None,
            dashboard_url: None,
            op_type: "create".into(),
            op_state: "succeeded".into(),
            op_description: String::new(),
            op_created_at: String::new(),
            op_updated_at: String::new(),
            broker_operation: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn shape_matches_cf() {
        let offering = Offering {
            guid: "o".into(),
            broker_guid: "b".into(),
            broker_id: "pg".into(),
            name: "postgresql".into(),
            description: String::new(),
            tags: r#"["sql","postgresql"]"#.into(),
            requires: "[]".into(),
            bindable: 1,
            plan_updateable: 0,
            instances_retrievable: 0,
            bindings_retrievable: 0,
            metadata: "{}".into(),
            available: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let plan = Plan {
            guid: "p".into(),
            offering_guid: "o".into(),
            broker_id: "small".into(),
            name: "small".into(),
            description: String::new(),
            free: 1,
            bindable: 1,
            plan_updateable: 0,
            metadata: "{}".into(),
            maximum_polling_duration: None,
            visibility: "public".into(),
            available: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let db = instance("i1", "db", "managed", r#"["mine","sql"]"#);
        let ups = instance("i2", "creds", "user-provided", r#"["t"]"#);
        let b1 = binding("b1", None, r#"{"uri":"postgres://u:p@h:5432/d"}"#);
        let b2 = binding("b2", Some("named"), r#"{"k":"v"}"#);
        let v = vcap_services(&[
            Bound {
                binding: &b1,
                instance: &db,
                plan: Some(&plan),
                offering: Some(&offering),
            },
            Bound {
                binding: &b2,
                instance: &ups,
                plan: None,
                offering: None,
            },
        ]);
        let pg = &v["postgresql"][0];
        assert_eq!(pg["name"], "db");
        assert_eq!(pg["label"], "postgresql");
        assert_eq!(pg["plan"], "small");
        assert_eq!(pg["provider"], Value::Null);
        assert_eq!(pg["tags"], json!(["sql", "postgresql", "mine"]));
        assert_eq!(pg["binding_name"], Value::Null);
        assert_eq!(pg["instance_guid"], "i1");
        assert_eq!(pg["credentials"]["uri"], "postgres://u:p@h:5432/d");
        assert_eq!(
            pg["volume_mounts"],
            json!([{"container_dir": "/d", "mode": "rw", "device_type": "shared"}])
        );
        let up = &v["user-provided"][0];
        assert_eq!(up["name"], "named");
        assert_eq!(up["binding_name"], "named");
        assert_eq!(up["instance_name"], "creds");
        assert_eq!(up["label"], "user-provided");
        assert!(up.get("plan").is_none());
        assert_eq!(up["tags"], json!(["t"]));
        assert_eq!(vcap_services(&[]), json!({}));
    }
}
