//! The catalog: four offerings with stable ids (the platform keys
//! everything on them: never change one) and their default plans.

use serde_json::{json, Value};

use crate::config::PlanConfig;

/// Which server an offering is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Postgresql,
    Mysql,
    Redis,
    Rabbitmq,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Postgresql, Kind::Mysql, Kind::Redis, Kind::Rabbitmq];

    /// The offering's name (`cf marketplace`, VCAP_SERVICES' label).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Postgresql => "postgresql",
            Kind::Mysql => "mysql",
            Kind::Redis => "redis",
            Kind::Rabbitmq => "rabbitmq",
        }
    }

    /// The offering's id (stable).
    pub fn service_id(self) -> &'static str {
        match self {
            Kind::Postgresql => "4473738d-382d-4578-a79a-778355a6ff9f",
            Kind::Mysql => "56d17aba-71c1-43d3-a5e5-b16d4b7676c9",
            Kind::Redis => "de48edf4-1297-4cfe-9edb-878da800e5a3",
            Kind::Rabbitmq => "168b4cce-5b42-427c-b8c6-3c477b25d433",
        }
    }

    pub fn from_service_id(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.service_id() == id)
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            Kind::Postgresql => "A PostgreSQL database of its own",
            Kind::Mysql => "A MySQL (MariaDB) database of its own",
            Kind::Redis => "A key prefix on a shared Redis, with an ACL user per binding",
            Kind::Rabbitmq => "A RabbitMQ virtual host of its own",
        }
    }

    pub fn tags(self) -> &'static [&'static str] {
        match self {
            Kind::Postgresql => &["postgresql", "postgres", "relational"],
            Kind::Mysql => &["mysql", "mariadb", "relational"],
            Kind::Redis => &["redis", "key-value"],
            Kind::Rabbitmq => &["rabbitmq", "amqp", "messaging"],
        }
    }

    /// (small id, shared id)
    fn default_plan_ids(self) -> (&'static str, &'static str) {
        match self {
            Kind::Postgresql => (
                "273d36aa-60b8-4b3f-92b2-c274c20f600d",
                "4fd204e3-7192-4163-a018-4825a6599416",
            ),
            Kind::Mysql => (
                "23612911-ff42-4098-a881-3e3dc0dfc348",
                "0bd86fb6-4c21-4ee5-98de-b9d8d6ded2c4",
            ),
            Kind::Redis => (
                "a8d27b3e-e9f5-4ffb-8415-68c0f7187d01",
                "486beb98-b679-4bc2-bf03-b5d45646ee97",
            ),
            Kind::Rabbitmq => (
                "70ec57e7-030f-4f04-ae0c-04fa762764b6",
                "1353bf6b-49b5-4aba-887a-2044952c0797",
            ),
        }
    }

    /// The plans used when a backend's config lists none: `small` (10
    /// connections) and `shared` (40 connections).
    pub fn default_plans(self) -> Vec<PlanConfig> {
        let (small, shared) = self.default_plan_ids();
        vec![
            PlanConfig {
                id: small.into(),
                name: "small".into(),
                description: "Up to 10 connections".into(),
                connection_limit: 10,
            },
            PlanConfig {
                id: shared.into(),
                name: "shared".into(),
                description: "Up to 40 connections".into(),
                connection_limit: 40,
            },
        ]
    }
}

/// One offering's `services[]` entry of `GET /v2/catalog`.
pub fn offering_json(kind: Kind, plans: &[PlanConfig]) -> Value {
    json!({
        "id": kind.service_id(),
        "name": kind.name(),
        "description": kind.description(),
        "tags": kind.tags(),
        "bindable": true,
        "plan_updateable": false,
        "instances_retrievable": true,
        "bindings_retrievable": true,
        "metadata": {"displayName": kind.name()},
        "plans": plans.iter().map(|p| json!({
            "id": p.id,
            "name": p.name,
            "description": if p.description.is_empty() { format!("Up to {} connections", p.connection_limit) } else { p.description.clone() },
            "free": true,
            "bindable": true,
        })).collect::<Vec<_>>(),
    })
}
