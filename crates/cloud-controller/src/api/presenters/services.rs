//! The JSON of the service resources (CF's presenters): brokers, offerings,
//! plans, instances, credential bindings and jobs, and plan visibility.

use serde_json::{json, Value};

use crate::api::{metadata, rel, BaseUrl};
use crate::authz::Perms;
use crate::store::{Binding, Broker, Instance, JobRow, Offering, Plan};

fn strings(text: &str) -> Value {
    serde_json::from_str::<Vec<String>>(text)
        .map(|v| json!(v))
        .unwrap_or_else(|_| json!([]))
}

fn object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

pub fn broker(base: &BaseUrl, b: &Broker) -> Value {
    let path = format!("/v3/service_brokers/{}", b.guid);
    json!({
        "guid": b.guid,
        "name": b.name,
        "url": b.url,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "relationships": {},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "service_offerings": base.link(&format!("/v3/service_offerings?service_broker_guids={}", b.guid)),
        },
    })
}

pub fn offering(base: &BaseUrl, o: &Offering) -> Value {
    let path = format!("/v3/service_offerings/{}", o.guid);
    let meta = object(&o.metadata);
    json!({
        "guid": o.guid,
        "name": o.name,
        "description": o.description,
        "available": o.available != 0,
        "tags": strings(&o.tags),
        "requires": strings(&o.requires),
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "shareable": meta.get("shareable").and_then(Value::as_bool).unwrap_or(false),
        "documentation_url": meta.get("documentationUrl").cloned().unwrap_or(Value::Null),
        "broker_catalog": {
            "id": o.broker_id,
            "metadata": meta,
            "features": {
                "plan_updateable": o.plan_updateable != 0,
                "bindable": o.bindable != 0,
                "instances_retrievable": o.instances_retrievable != 0,
                "bindings_retrievable": o.bindings_retrievable != 0,
                "allow_context_updates": false,
            },
        },
        "relationships": {"service_broker": rel(&o.broker_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "service_plans": base.link(&format!("/v3/service_plans?service_offering_guids={}", o.guid)),
            "service_broker": base.link(&format!("/v3/service_brokers/{}", o.broker_guid)),
        },
    })
}

pub fn plan(base: &BaseUrl, p: &Plan) -> Value {
    let path = format!("/v3/service_plans/{}", p.guid);
    json!({
        "guid": p.guid,
        "name": p.name,
        "description": p.description,
        "visibility_type": p.visibility,
        "available": p.available != 0,
        "free": p.free != 0,
        "costs": [],
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "maintenance_info": {},
        "broker_catalog": {
            "id": p.broker_id,
            "metadata": object(&p.metadata),
            "maximum_polling_duration": p.maximum_polling_duration,
            "features": {"plan_updateable": p.plan_updateable != 0, "bindable": p.bindable != 0},
        },
        "schemas": {
            "service_instance": {"create": {"parameters": {}}, "update": {"parameters": {}}},
            "service_binding": {"create": {"parameters": {}}},
        },
        "relationships": {"service_offering": rel(&p.offering_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "service_offering": base.link(&format!("/v3/service_offerings/{}", p.offering_guid)),
            "visibility": base.link(&format!("{path}/visibility")),
        },
    })
}

fn last_operation(
    kind: &str,
    state: &str,
    description: &str,
    created: &str,
    updated: &str,
) -> Value {
    json!({
        "type": kind,
        "state": state,
        "description": description,
        "created_at": created,
        "updated_at": updated,
    })
}

pub fn instance(base: &BaseUrl, i: &Instance) -> Value {
    let path = format!("/v3/service_instances/{}", i.guid);
    let mut v = json!({
        "guid": i.guid,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "name": i.name,
        "type": i.kind,
        "tags": strings(&i.tags),
        "last_operation": last_operation(&i.op_type, &i.op_state, &i.op_description, &i.op_created_at, &i.op_updated_at),
        "relationships": {"space": rel(&i.space_guid)},
        "metadata": metadata(),
        "links": {
            "self": base.link(&path),
            "space": base.link(&format!("/v3/spaces/{}", i.space_guid)),
            "service_credential_bindings": base.link(&format!("/v3/service_credential_bindings?service_instance_guids={}", i.guid)),
            "service_route_bindings": base.link(&format!("/v3/service_route_bindings?service_instance_guids={}", i.guid)),
        },
    });
    if i.is_managed() {
        let plan = i.plan_guid.clone().unwrap_or_default();
        v["maintenance_info"] = json!({});
        v["upgrade_available"] = json!(false);
        v["dashboard_url"] = json!(i.dashboard_url);
        v["broker_provided_metadata"] = json!({"labels": {}, "attributes": {}});
        v["relationships"]["service_plan"] = rel(&plan);
        v["links"]["service_plan"] = base.link(&format!("/v3/service_plans/{plan}"));
        v["links"]["parameters"] = base.link(&format!("{path}/parameters"));
        v["links"]["shared_spaces"] = base.link(&format!("{path}/relationships/shared_spaces"));
    } else {
        v["syslog_drain_url"] = json!(i.syslog_drain_url);
        v["route_service_url"] = json!(i.route_service_url);
        v["links"]["credentials"] = base.link(&format!("{path}/credentials"));
    }
    v
}

pub fn binding(base: &BaseUrl, b: &Binding) -> Value {
    let path = format!("/v3/service_credential_bindings/{}", b.guid);
    let mut v = json!({
        "guid": b.guid,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "name": b.name,
        "type": b.kind,
        "last_operation": last_operation(&b.op_type, &b.op_state, &b.op_description, &b.op_created_at, &b.op_updated_at),
        "metadata": metadata(),
        "relationships": {"service_instance": rel(&b.instance_guid)},
        "links": {
            "self": base.link(&path),
            "details": base.link(&format!("{path}/details")),
            "parameters": base.link(&format!("{path}/parameters")),
            "service_instance": base.link(&format!("/v3/service_instances/{}", b.instance_guid)),
        },
    });
    if let Some(a) = &b.app_guid {
        v["relationships"]["app"] = rel(a);
        v["links"]["app"] = base.link(&format!("/v3/apps/{a}"));
    }
    v
}

/// A binding's secrets (`/details`).
pub fn binding_details(b: &Binding) -> Value {
    json!({
        "credentials": object(&b.credentials),
        "syslog_drain_url": b.syslog_drain_url,
        "volume_mounts": serde_json::from_str::<Value>(&b.volume_mounts).unwrap_or_else(|_| json!([])),
    })
}

pub fn job(base: &BaseUrl, j: &JobRow) -> Value {
    let mut links = json!({"self": base.link(&format!("/v3/jobs/{}", j.guid))});
    if !j.resource_type.is_empty() && (j.state != "COMPLETE" || !j.operation.ends_with(".delete")) {
        let key = match j.resource_type.as_str() {
            "service_brokers" => "service_brokers",
            "service_instances" => "service_instances",
            _ => "service_credential_bindings",
        };
        links[key] = base.link(&format!("/v3/{}/{}", j.resource_type, j.resource_guid));
    }
    json!({
        "guid": j.guid,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "operation": j.operation,
        "state": j.state,
        "errors": serde_json::from_str::<Value>(&j.errors).unwrap_or_else(|_| json!([])),
        "warnings": serde_json::from_str::<Value>(&j.warnings).unwrap_or_else(|_| json!([])),
        "links": links,
    })
}

/// Whether the caller sees a plan: global readers see all; others see
/// public plans and the plans enabled for an org they hold a role in.
/// The plan and offering lists apply the same rule in SQL
/// (`store::services::plan_scope`); the paging tests check both agree.
pub fn plan_visible(perms: &Perms, p: &Plan, visibilities: &[(String, String)]) -> bool {
    if perms.reads_everything() {
        return true;
    }
    match p.visibility.as_str() {
        "public" => true,
        "organization" => {
            let orgs = perms.org_guids().unwrap_or_default();
            visibilities
                .iter()
                .any(|(plan, org)| *plan == p.guid && orgs.contains(org))
        }
        _ => false,
    }
}

/// `fields[...]=name,guid,relationships.x`: the asked fields of `v` (all
/// of it when `fields` is `None`), for a list's `included`.
pub fn partial(v: Value, fields: Option<&String>) -> Value {
    let Some(fields) = fields else { return v };
    let mut out = serde_json::Map::new();
    for f in fields.split(',').take(32) {
        match f.split_once('.') {
            Some((outer, inner)) => {
                if let Some(x) = v.get(outer).and_then(|o| o.get(inner)) {
                    let slot = out.entry(outer.to_string()).or_insert_with(|| json!({}));
                    slot[inner] = x.clone();
                }
            }
            None => {
                if let Some(x) = v.get(f) {
                    out.insert(f.to_string(), x.clone());
                }
            }
        }
    }
    Value::Object(out)
}
