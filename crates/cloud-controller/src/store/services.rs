//! Services (docs/architecture.md §5.11): brokers, the offerings and plans
//! synced from their catalogs, plan visibility, service instances and
//! credential bindings. JSON fields are stored as text and parsed by the
//! callers; every change of an operation's state is one statement.

use sqlx::FromRow;

use super::pages::{any_via, Order, Where, Window};
use super::{new_guid, now, push_in, readable_space_clause, unique, Result, SpaceScope, Store};

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Broker {
    pub guid: String,
    pub name: String,
    pub url: String,
    pub username: String,
    pub password: String,
    pub space_guid: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const BROKER_COLS: &str = "guid, name, url, username, password, space_guid, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Offering {
    pub guid: String,
    pub broker_guid: String,
    /// The broker's own id for it (`services[].id`).
    pub broker_id: String,
    pub name: String,
    pub description: String,
    /// JSON array of strings.
    pub tags: String,
    /// JSON array of strings.
    pub requires: String,
    pub bindable: i64,
    pub plan_updateable: i64,
    pub instances_retrievable: i64,
    pub bindings_retrievable: i64,
    /// JSON object.
    pub metadata: String,
    pub available: i64,
    pub created_at: String,
    pub updated_at: String,
}

const OFFERING_COLS: &str = "guid, broker_guid, broker_id, name, description, tags, requires, bindable, plan_updateable, instances_retrievable, bindings_retrievable, metadata, available, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Plan {
    pub guid: String,
    pub offering_guid: String,
    pub broker_id: String,
    pub name: String,
    pub description: String,
    pub free: i64,
    pub bindable: i64,
    pub plan_updateable: i64,
    pub metadata: String,
    /// Seconds (the broker's `maximum_polling_duration`).
    pub maximum_polling_duration: Option<i64>,
    /// `admin`, `public` or `organization`.
    pub visibility: String,
    pub available: i64,
    pub created_at: String,
    pub updated_at: String,
}

const PLAN_COLS: &str = "guid, offering_guid, broker_id, name, description, free, bindable, plan_updateable, metadata, maximum_polling_duration, visibility, available, created_at, updated_at";

/// The two kinds of service instance, as the API spells them.
pub const MANAGED: &str = "managed";
pub const USER_PROVIDED: &str = "user-provided";

/// CF's last-operation states.
pub const OP_INITIAL: &str = "initial";
pub const OP_IN_PROGRESS: &str = "in progress";
pub const OP_SUCCEEDED: &str = "succeeded";
pub const OP_FAILED: &str = "failed";

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Instance {
    pub guid: String,
    pub name: String,
    pub kind: String,
    pub space_guid: String,
    pub plan_guid: Option<String>,
    /// JSON array of strings.
    pub tags: String,
    /// JSON object (what the broker was given).
    pub parameters: String,
    /// JSON object (user-provided instances).
    pub credentials: String,
    pub syslog_drain_url: Option<String>,
    pub route_service_url: Option<String>,
    pub dashboard_url: Option<String>,
    pub op_type: String,
    pub op_state: String,
    pub op_description: String,
    pub op_created_at: String,
    pub op_updated_at: String,
    pub broker_operation: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Instance {
    pub fn is_managed(&self) -> bool {
        self.kind == MANAGED
    }

    /// An operation is running: another must wait (CF's 422).
    pub fn busy(&self) -> bool {
        self.op_state == OP_IN_PROGRESS || self.op_state == OP_INITIAL
    }
}

const INSTANCE_COLS: &str = "guid, name, kind, space_guid, plan_guid, tags, parameters, credentials, syslog_drain_url, route_service_url, dashboard_url, op_type, op_state, op_description, op_created_at, op_updated_at, broker_operation, created_at, updated_at";

/// What a new instance is.
#[derive(Debug, Clone)]
pub struct NewInstance<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub space_guid: &'a str,
    pub plan_guid: Option<&'a str>,
    pub tags: &'a str,
    pub parameters: &'a str,
    pub credentials: &'a str,
    pub syslog_drain_url: Option<&'a str>,
    pub route_service_url: Option<&'a str>,
    /// `initial` for a managed instance (its job starts), `succeeded` for
    /// a user-provided one.
    pub op_state: &'a str,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Binding {
    pub guid: String,
    /// `app` or `key`.
    pub kind: String,
    pub name: Option<String>,
    pub instance_guid: String,
    pub app_guid: Option<String>,
    /// JSON object.
    pub credentials: String,
    pub syslog_drain_url: Option<String>,
    /// JSON array.
    pub volume_mounts: String,
    pub parameters: String,
    pub op_type: String,
    pub op_state: String,
    pub op_description: String,
    pub op_created_at: String,
    pub op_updated_at: String,
    pub broker_operation: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const BINDING_COLS: &str = "guid, kind, name, instance_guid, app_guid, credentials, syslog_drain_url, volume_mounts, parameters, op_type, op_state, op_description, op_created_at, op_updated_at, broker_operation, created_at, updated_at";

/// What a new binding is.
#[derive(Debug, Clone)]
pub struct NewBinding<'a> {
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub instance_guid: &'a str,
    pub app_guid: Option<&'a str>,
    pub credentials: &'a str,
    pub syslog_drain_url: Option<&'a str>,
    pub parameters: &'a str,
    pub op_state: &'a str,
}

/// `GET /v3/service_instances` filters (each `None` = any).
#[derive(Debug, Clone)]
pub struct InstanceFilter {
    pub guids: Option<Vec<String>>,
    pub names: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    pub plan_guids: Option<Vec<String>>,
    pub kind: Option<String>,
    pub scope: SpaceScope,
}

/// `GET /v3/service_credential_bindings` filters (each `None` = any).
#[derive(Debug, Clone)]
pub struct BindingFilter {
    pub guids: Option<Vec<String>>,
    pub names: Option<Vec<String>>,
    pub instance_guids: Option<Vec<String>>,
    pub app_guids: Option<Vec<String>>,
    pub kind: Option<String>,
    pub scope: SpaceScope,
}

/// A plan as a catalog sync writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogPlan {
    pub broker_id: String,
    pub name: String,
    pub description: String,
    pub free: bool,
    pub bindable: bool,
    pub plan_updateable: bool,
    pub metadata: String,
    pub maximum_polling_duration: Option<i64>,
}

/// An offering as a catalog sync writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogOffering {
    pub broker_id: String,
    pub name: String,
    pub description: String,
    pub tags: String,
    pub requires: String,
    pub bindable: bool,
    pub plan_updateable: bool,
    pub instances_retrievable: bool,
    pub bindings_retrievable: bool,
    pub metadata: String,
    pub plans: Vec<CatalogPlan>,
}

/// `GET /v3/service_brokers` filters (each `None` = any).
#[derive(Debug, Clone, Default)]
pub struct BrokerFilter {
    pub names: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
}

/// `GET /v3/service_offerings` filters (each `None` = any). An offering is
/// listed when the caller sees one of its plans (`viewer_orgs`, as for
/// `PlanFilter`) and, with `usable_in`, one it sees that is usable in one
/// of these orgs.
#[derive(Debug, Clone, Default)]
pub struct OfferingFilter {
    pub names: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub broker_guids: Option<Vec<String>>,
    pub broker_names: Option<Vec<String>>,
    pub available: Option<bool>,
    pub usable_in: Option<Vec<String>>,
    pub viewer_orgs: Option<Vec<String>>,
}

/// `GET /v3/service_plans` filters (each `None` = any). `viewer_orgs`:
/// `None` for a global reader (every plan); else the orgs the caller
/// holds a role in, and it sees the public plans and those enabled for
/// one of them. `usable_in`: only plans usable in one of these orgs
/// (public or enabled for it; every plan for a global reader).
#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    pub names: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub broker_catalog_ids: Option<Vec<String>>,
    pub offering_guids: Option<Vec<String>>,
    pub offering_names: Option<Vec<String>>,
    pub broker_guids: Option<Vec<String>>,
    pub broker_names: Option<Vec<String>>,
    pub available: Option<bool>,
    pub usable_in: Option<Vec<String>>,
    pub viewer_orgs: Option<Vec<String>>,
}

/// A plan (columns of `service_plans`) public or enabled for one of
/// `orgs`.
fn enabled_for(w: &mut Where, orgs: &[String]) -> String {
    format!(
        "visibility = 'public' OR (visibility = 'organization' AND guid IN (SELECT plan_guid FROM service_plan_visibilities WHERE {}))",
        w.in_list("organization_guid", orgs)
    )
}

/// The plans (columns of `service_plans`) the viewer sees and, with
/// `usable_in`, may use in one of those orgs (`None`: every plan).
fn plan_scope(
    w: &mut Where,
    viewer_orgs: &Option<Vec<String>>,
    usable_in: &Option<Vec<String>>,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(orgs) = viewer_orgs {
        parts.push(enabled_for(w, orgs));
    }
    match usable_in {
        None => {}
        Some(orgs) if orgs.is_empty() => parts.push(String::from("1 = 0")),
        // A global reader may use every plan in any org.
        Some(_) if viewer_orgs.is_none() => {}
        Some(orgs) => parts.push(enabled_for(w, orgs)),
    }
    let parts: Vec<String> = parts.into_iter().map(|p| format!("({p})")).collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// ` AND available <> 0` (or `= 0`) for an `available` filter.
fn available(w: &mut Where, want: Option<bool>) {
    if let Some(a) = want {
        w.and(if a { "available <> 0" } else { "available = 0" });
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

impl Store {
    // ---- brokers ----

    pub async fn create_broker(
        &self,
        name: &str,
        url: &str,
        username: &str,
        password: &str,
        space_guid: Option<&str>,
    ) -> Result<Broker> {
        let at = now();
        let b = Broker {
            guid: new_guid(),
            name: name.into(),
            url: url.into(),
            username: username.into(),
            password: password.into(),
            space_guid: space_guid.map(str::to_string),
            created_at: at.clone(),
            updated_at: at,
        };
        sqlx::query(&format!(
            "INSERT INTO service_brokers ({BROKER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        ))
        .bind(b.guid.clone())
        .bind(b.name.clone())
        .bind(b.url.clone())
        .bind(b.username.clone())
        .bind(b.password.clone())
        .bind(b.space_guid.clone())
        .bind(b.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(|e| unique(e, "Name must be unique"))?;
        Ok(b)
    }

    pub async fn broker(&self, guid: &str) -> Result<Broker> {
        self.one(
            &format!("SELECT {BROKER_COLS} FROM service_brokers WHERE guid = $1"),
            &[guid],
            "Service broker",
        )
        .await
    }

    pub async fn brokers(&self) -> Result<Vec<Broker>> {
        self.all(
            &format!("SELECT {BROKER_COLS} FROM service_brokers ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// Brokers matching `f`, in creation order.
    pub async fn brokers_page(
        &self,
        f: &BrokerFilter,
        win: Window,
    ) -> Result<(usize, Vec<Broker>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names).any_of("guid", &f.guids);
        self.page(
            BROKER_COLS,
            "service_brokers",
            &w,
            &Order::CREATED.sql(),
            win,
        )
        .await
    }

    /// The brokers of these guids (those that exist), in creation order.
    pub async fn brokers_in(&self, guids: &[String]) -> Result<Vec<Broker>> {
        let mut w = Where::new();
        w.any_of("guid", &Some(guids.to_vec()));
        self.all(
            &format!(
                "SELECT {BROKER_COLS} FROM service_brokers WHERE {} ORDER BY created_at, guid",
                w.cond()
            ),
            &w.bind_refs(),
        )
        .await
    }

    pub async fn update_broker(
        &self,
        guid: &str,
        name: &str,
        url: &str,
        username: &str,
        password: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE service_brokers SET name = $1, url = $2, username = $3, password = $4, updated_at = $5 WHERE guid = $6")
            .bind(name.to_string())
            .bind(url.to_string())
            .bind(username.to_string())
            .bind(password.to_string())
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, "Name must be unique"))?;
        Ok(())
    }

    /// Runs each statement with `$1 = guid`, in one transaction.
    async fn deletes(&self, statements: &[&str], guid: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        for sql in statements {
            sqlx::query(sql)
                .bind(guid.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a broker with its offerings, plans and visibilities.
    pub async fn delete_broker(&self, guid: &str) -> Result<()> {
        self.deletes(
            &[
                "DELETE FROM service_plan_visibilities WHERE plan_guid IN (SELECT p.guid FROM service_plans p JOIN service_offerings o ON o.guid = p.offering_guid WHERE o.broker_guid = $1)",
                "DELETE FROM service_plans WHERE offering_guid IN (SELECT guid FROM service_offerings WHERE broker_guid = $1)",
                "DELETE FROM service_offerings WHERE broker_guid = $1",
                "DELETE FROM service_brokers WHERE guid = $1",
            ],
            guid,
        )
        .await
    }

    /// Service instances of any of the broker's plans.
    pub async fn broker_instance_count(&self, broker_guid: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM service_instances i JOIN service_plans p ON p.guid = i.plan_guid JOIN service_offerings o ON o.guid = p.offering_guid WHERE o.broker_guid = $1",
        )
        .bind(broker_guid.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Writes a broker's catalog: offerings and plans are matched by the
    /// broker's ids (the only keys the OSB spec keeps stable); new plans are
    /// admin-only; what the catalog no longer lists is deleted, or kept
    /// unavailable while instances use it.
    pub async fn sync_catalog(&self, broker_guid: &str, catalog: &[CatalogOffering]) -> Result<()> {
        let at = now();
        // New rows are listed in creation order: each its own microsecond,
        // in catalog order.
        let base = chrono::Utc::now();
        let mut seq: i64 = 0;
        let mut created = || {
            seq += 1;
            (base + chrono::Duration::microseconds(seq))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let mut tx = self.tx().await?;
        let existing: Vec<Offering> = sqlx::query_as(&format!(
            "SELECT {OFFERING_COLS} FROM service_offerings WHERE broker_guid = $1"
        ))
        .bind(broker_guid.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut kept_offerings = Vec::new();
        for o in catalog {
            let guid = match existing.iter().find(|e| e.broker_id == o.broker_id) {
                Some(e) => {
                    sqlx::query("UPDATE service_offerings SET name = $1, description = $2, tags = $3, requires = $4, bindable = $5, plan_updateable = $6, instances_retrievable = $7, bindings_retrievable = $8, metadata = $9, available = 1, updated_at = $10 WHERE guid = $11")
                        .bind(o.name.clone())
                        .bind(o.description.clone())
                        .bind(o.tags.clone())
                        .bind(o.requires.clone())
                        .bind(flag(o.bindable))
                        .bind(flag(o.plan_updateable))
                        .bind(flag(o.instances_retrievable))
                        .bind(flag(o.bindings_retrievable))
                        .bind(o.metadata.clone())
                        .bind(at.clone())
                        .bind(e.guid.clone())
                        .execute(&mut *tx)
                        .await?;
                    e.guid.clone()
                }
                None => {
                    let guid = new_guid();
                    let at = created();
                    sqlx::query(&format!("INSERT INTO service_offerings ({OFFERING_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13)"))
                        .bind(guid.clone())
                        .bind(broker_guid.to_string())
                        .bind(o.broker_id.clone())
                        .bind(o.name.clone())
                        .bind(o.description.clone())
                        .bind(o.tags.clone())
                        .bind(o.requires.clone())
                        .bind(flag(o.bindable))
                        .bind(flag(o.plan_updateable))
                        .bind(flag(o.instances_retrievable))
                        .bind(flag(o.bindings_retrievable))
                        .bind(o.metadata.clone())
                        .bind(at.clone())
                        .execute(&mut *tx)
                        .await?;
                    guid
                }
            };
            kept_offerings.push(guid.clone());
            let plans: Vec<Plan> = sqlx::query_as(&format!(
                "SELECT {PLAN_COLS} FROM service_plans WHERE offering_guid = $1"
            ))
            .bind(guid.clone())
            .fetch_all(&mut *tx)
            .await?;
            for p in &o.plans {
                match plans.iter().find(|e| e.broker_id == p.broker_id) {
                    Some(e) => {
                        sqlx::query("UPDATE service_plans SET name = $1, description = $2, free = $3, bindable = $4, plan_updateable = $5, metadata = $6, maximum_polling_duration = $7, available = 1, updated_at = $8 WHERE guid = $9")
                            .bind(p.name.clone())
                            .bind(p.description.clone())
                            .bind(flag(p.free))
                            .bind(flag(p.bindable))
                            .bind(flag(p.plan_updateable))
                            .bind(p.metadata.clone())
                            .bind(p.maximum_polling_duration)
                            .bind(at.clone())
                            .bind(e.guid.clone())
                            .execute(&mut *tx)
                            .await?;
                    }
                    None => {
                        let at = created();
                        sqlx::query(&format!("INSERT INTO service_plans ({PLAN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'admin', 1, $11, $11)"))
                            .bind(new_guid())
                            .bind(guid.clone())
                            .bind(p.broker_id.clone())
                            .bind(p.name.clone())
                            .bind(p.description.clone())
                            .bind(flag(p.free))
                            .bind(flag(p.bindable))
                            .bind(flag(p.plan_updateable))
                            .bind(p.metadata.clone())
                            .bind(p.maximum_polling_duration)
                            .bind(at.clone())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            for gone in plans
                .iter()
                .filter(|e| !o.plans.iter().any(|p| p.broker_id == e.broker_id))
            {
                retire_plan(&mut tx, &gone.guid, &at).await?;
            }
        }
        for gone in existing
            .iter()
            .filter(|e| !kept_offerings.contains(&e.guid))
        {
            let plans: Vec<(String,)> =
                sqlx::query_as("SELECT guid FROM service_plans WHERE offering_guid = $1")
                    .bind(gone.guid.clone())
                    .fetch_all(&mut *tx)
                    .await?;
            for (p,) in &plans {
                retire_plan(&mut tx, p, &at).await?;
            }
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM service_plans WHERE offering_guid = $1")
                    .bind(gone.guid.clone())
                    .fetch_one(&mut *tx)
                    .await?;
            let sql = if left == 0 {
                "DELETE FROM service_offerings WHERE guid = $1"
            } else {
                "UPDATE service_offerings SET available = 0 WHERE guid = $1"
            };
            sqlx::query(sql)
                .bind(gone.guid.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn offerings(&self) -> Result<Vec<Offering>> {
        self.all(
            &format!("SELECT {OFFERING_COLS} FROM service_offerings ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    pub async fn offering(&self, guid: &str) -> Result<Offering> {
        self.one(
            &format!("SELECT {OFFERING_COLS} FROM service_offerings WHERE guid = $1"),
            &[guid],
            "Service offering",
        )
        .await
    }

    pub async fn plans(&self) -> Result<Vec<Plan>> {
        self.all(
            &format!("SELECT {PLAN_COLS} FROM service_plans ORDER BY created_at, guid"),
            &[],
        )
        .await
    }

    /// Offerings matching `f` (those with a plan the caller sees), in
    /// creation order.
    pub async fn offerings_page(
        &self,
        f: &OfferingFilter,
        win: Window,
    ) -> Result<(usize, Vec<Offering>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names)
            .any_of("guid", &f.guids)
            .any_of("broker_guid", &f.broker_guids);
        any_via(
            &mut w,
            "broker_guid",
            ("service_brokers", "guid", "name"),
            &f.broker_names,
        );
        available(&mut w, f.available);
        let plans = match plan_scope(&mut w, &f.viewer_orgs, &f.usable_in) {
            Some(c) => format!("SELECT offering_guid FROM service_plans WHERE {c}"),
            None => String::from("SELECT offering_guid FROM service_plans"),
        };
        w.and(&format!("guid IN ({plans})"));
        self.page(
            OFFERING_COLS,
            "service_offerings",
            &w,
            &Order::CREATED.sql(),
            win,
        )
        .await
    }

    /// The offerings of these guids (those that exist), in creation order.
    pub async fn offerings_in(&self, guids: &[String]) -> Result<Vec<Offering>> {
        let mut w = Where::new();
        w.any_of("guid", &Some(guids.to_vec()));
        self.all(
            &format!(
                "SELECT {OFFERING_COLS} FROM service_offerings WHERE {} ORDER BY created_at, guid",
                w.cond()
            ),
            &w.bind_refs(),
        )
        .await
    }

    /// Plans matching `f` (those the caller sees), in creation order.
    pub async fn plans_page(&self, f: &PlanFilter, win: Window) -> Result<(usize, Vec<Plan>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names)
            .any_of("guid", &f.guids)
            .any_of("broker_id", &f.broker_catalog_ids)
            .any_of("offering_guid", &f.offering_guids);
        any_via(
            &mut w,
            "offering_guid",
            ("service_offerings", "guid", "name"),
            &f.offering_names,
        );
        // The plan's offering's broker (both must exist).
        let ob = "(SELECT o.guid AS og, b.guid AS bg, b.name AS bn FROM service_offerings o JOIN service_brokers b ON b.guid = o.broker_guid) ob";
        any_via(
            &mut w,
            "offering_guid",
            (ob, "ob.og", "ob.bg"),
            &f.broker_guids,
        );
        any_via(
            &mut w,
            "offering_guid",
            (ob, "ob.og", "ob.bn"),
            &f.broker_names,
        );
        available(&mut w, f.available);
        if let Some(c) = plan_scope(&mut w, &f.viewer_orgs, &f.usable_in) {
            w.and(&c);
        }
        self.page(PLAN_COLS, "service_plans", &w, &Order::CREATED.sql(), win)
            .await
    }

    pub async fn plan(&self, guid: &str) -> Result<Plan> {
        self.one(
            &format!("SELECT {PLAN_COLS} FROM service_plans WHERE guid = $1"),
            &[guid],
            "Service plan",
        )
        .await
    }

    /// Every (plan, org) visibility row.
    pub async fn plan_visibilities(&self) -> Result<Vec<(String, String)>> {
        self.all(
            "SELECT plan_guid, organization_guid FROM service_plan_visibilities ORDER BY plan_guid, organization_guid",
            &[],
        )
        .await
    }

    /// Sets a plan's visibility type; for `organization`, adds `orgs` (or
    /// replaces the list when `replace`).
    pub async fn set_plan_visibility(
        &self,
        plan_guid: &str,
        kind: &str,
        orgs: &[String],
        replace: bool,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        if replace || kind != "organization" {
            sqlx::query("DELETE FROM service_plan_visibilities WHERE plan_guid = $1")
                .bind(plan_guid.to_string())
                .execute(&mut *tx)
                .await?;
        }
        for org in orgs {
            sqlx::query("INSERT INTO service_plan_visibilities (plan_guid, organization_guid) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(plan_guid.to_string())
                .bind(org.clone())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE service_plans SET visibility = $1, updated_at = $2 WHERE guid = $3")
            .bind(kind.to_string())
            .bind(now())
            .bind(plan_guid.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes one org from an `organization` plan's list.
    pub async fn remove_plan_org(&self, plan_guid: &str, org: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM service_plan_visibilities WHERE plan_guid = $1 AND organization_guid = $2",
        )
        .bind(plan_guid.to_string())
        .bind(org.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- instances ----

    pub async fn create_instance(&self, n: &NewInstance<'_>) -> Result<Instance> {
        let at = now();
        let i = Instance {
            guid: new_guid(),
            name: n.name.into(),
            kind: n.kind.into(),
            space_guid: n.space_guid.into(),
            plan_guid: n.plan_guid.map(str::to_string),
            tags: n.tags.into(),
            parameters: n.parameters.into(),
            credentials: n.credentials.into(),
            syslog_drain_url: n.syslog_drain_url.map(str::to_string),
            route_service_url: n.route_service_url.map(str::to_string),
            dashboard_url: None,
            op_type: "create".into(),
            op_state: n.op_state.into(),
            op_description: String::new(),
            op_created_at: at.clone(),
            op_updated_at: at.clone(),
            broker_operation: None,
            created_at: at.clone(),
            updated_at: at,
        };
        sqlx::query(&format!("INSERT INTO service_instances ({INSTANCE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, 'create', $11, '', $12, $12, NULL, $12, $12)"))
            .bind(i.guid.clone())
            .bind(i.name.clone())
            .bind(i.kind.clone())
            .bind(i.space_guid.clone())
            .bind(i.plan_guid.clone())
            .bind(i.tags.clone())
            .bind(i.parameters.clone())
            .bind(i.credentials.clone())
            .bind(i.syslog_drain_url.clone())
            .bind(i.route_service_url.clone())
            .bind(i.op_state.clone())
            .bind(i.created_at.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("The service instance name is taken: {}.", n.name)))?;
        Ok(i)
    }

    pub async fn instance(&self, guid: &str) -> Result<Instance> {
        self.one(
            &format!("SELECT {INSTANCE_COLS} FROM service_instances WHERE guid = $1"),
            &[guid],
            "Service instance",
        )
        .await
    }

    /// One page of instances matching `f` (by name), and the total.
    pub async fn instances_page(
        &self,
        f: &InstanceFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Instance>)> {
        let mut cond = String::from("1 = 1");
        let mut binds: Vec<String> = Vec::new();
        push_in(&mut cond, &mut binds, "guid", &f.guids);
        push_in(&mut cond, &mut binds, "name", &f.names);
        push_in(&mut cond, &mut binds, "space_guid", &f.space_guids);
        push_in(&mut cond, &mut binds, "plan_guid", &f.plan_guids);
        push_in(
            &mut cond,
            &mut binds,
            "kind",
            &f.kind.clone().map(|k| vec![k]),
        );
        if let SpaceScope::ReadableBy(user) = &f.scope {
            binds.push(user.clone());
            let n = format!("${}", binds.len());
            cond.push_str(&format!(" AND {}", readable_space_clause("space_guid", &n)));
        }
        self.page_of(
            "service_instances",
            INSTANCE_COLS,
            &cond,
            &binds,
            "name, guid",
            limit,
            offset,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn page_of<T>(
        &self,
        table: &str,
        cols: &str,
        cond: &str,
        binds: &[String],
        order: &str,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<T>)>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let refs: Vec<&str> = binds.iter().map(String::as_str).collect();
        let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {cond}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &refs {
            count = count.bind(b.to_string());
        }
        let total = usize::try_from(count.fetch_one(&self.pool).await?).unwrap_or(0);
        let rows = self
            .all(
                &format!(
                    "SELECT {cols} FROM {table} WHERE {cond} ORDER BY {order} LIMIT {} OFFSET {offset}",
                    limit.min(5000)
                ),
                &refs,
            )
            .await?;
        Ok((total, rows))
    }

    /// Instances of a space (every one, for deletes and manifests).
    pub async fn instances_in_space(&self, space_guid: &str) -> Result<Vec<Instance>> {
        self.all(
            &format!(
                "SELECT {INSTANCE_COLS} FROM service_instances WHERE space_guid = $1 ORDER BY name"
            ),
            &[space_guid],
        )
        .await
    }

    /// Updates what a user can change on an instance.
    pub async fn update_instance(&self, i: &Instance) -> Result<()> {
        sqlx::query("UPDATE service_instances SET name = $1, plan_guid = $2, tags = $3, parameters = $4, credentials = $5, syslog_drain_url = $6, route_service_url = $7, dashboard_url = $8, updated_at = $9 WHERE guid = $10")
            .bind(i.name.clone())
            .bind(i.plan_guid.clone())
            .bind(i.tags.clone())
            .bind(i.parameters.clone())
            .bind(i.credentials.clone())
            .bind(i.syslog_drain_url.clone())
            .bind(i.route_service_url.clone())
            .bind(i.dashboard_url.clone())
            .bind(now())
            .bind(i.guid.clone())
            .execute(&self.pool)
            .await
            .map_err(|e| unique(e, format!("The service instance name is taken: {}.", i.name)))?;
        Ok(())
    }

    /// Starts an operation on an instance unless one is running: `false`
    /// when busy (CF's "operation in progress").
    pub async fn begin_instance_op(&self, guid: &str, op_type: &str) -> Result<bool> {
        let at = now();
        let r = sqlx::query("UPDATE service_instances SET op_type = $1, op_state = 'in progress', op_description = '', op_created_at = $2, op_updated_at = $2, broker_operation = NULL WHERE guid = $3 AND op_state NOT IN ('in progress', 'initial')")
            .bind(op_type.to_string())
            .bind(at)
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records an instance operation's state (and the broker's operation
    /// id while polling).
    pub async fn set_instance_op(
        &self,
        guid: &str,
        state: &str,
        description: &str,
        broker_operation: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE service_instances SET op_state = $1, op_description = $2, broker_operation = $3, op_updated_at = $4 WHERE guid = $5")
            .bind(state.to_string())
            .bind(description.to_string())
            .bind(broker_operation.map(str::to_string))
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_instance(&self, guid: &str) -> Result<()> {
        self.deletes(
            &[
                "DELETE FROM service_bindings WHERE instance_guid = $1",
                "DELETE FROM service_instances WHERE guid = $1",
            ],
            guid,
        )
        .await
    }

    // ---- bindings ----

    pub async fn create_binding(&self, n: &NewBinding<'_>) -> Result<Binding> {
        let at = now();
        let b = Binding {
            guid: new_guid(),
            kind: n.kind.into(),
            name: n.name.map(str::to_string),
            instance_guid: n.instance_guid.into(),
            app_guid: n.app_guid.map(str::to_string),
            credentials: n.credentials.into(),
            syslog_drain_url: n.syslog_drain_url.map(str::to_string),
            volume_mounts: "[]".into(),
            parameters: n.parameters.into(),
            op_type: "create".into(),
            op_state: n.op_state.into(),
            op_description: String::new(),
            op_created_at: at.clone(),
            op_updated_at: at.clone(),
            broker_operation: None,
            created_at: at.clone(),
            updated_at: at,
        };
        sqlx::query(&format!("INSERT INTO service_bindings ({BINDING_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, '[]', $8, 'create', $9, '', $10, $10, NULL, $10, $10)"))
            .bind(b.guid.clone())
            .bind(b.kind.clone())
            .bind(b.name.clone())
            .bind(b.instance_guid.clone())
            .bind(b.app_guid.clone())
            .bind(b.credentials.clone())
            .bind(b.syslog_drain_url.clone())
            .bind(b.parameters.clone())
            .bind(b.op_state.clone())
            .bind(b.created_at.clone())
            .execute(&self.pool)
            .await?;
        Ok(b)
    }

    pub async fn binding(&self, guid: &str) -> Result<Binding> {
        self.one(
            &format!("SELECT {BINDING_COLS} FROM service_bindings WHERE guid = $1"),
            &[guid],
            "Service credential binding",
        )
        .await
    }

    /// One page of bindings matching `f` (oldest first), and the total.
    pub async fn bindings_page(
        &self,
        f: &BindingFilter,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Binding>)> {
        let mut cond = String::from("1 = 1");
        let mut binds: Vec<String> = Vec::new();
        push_in(&mut cond, &mut binds, "guid", &f.guids);
        push_in(&mut cond, &mut binds, "name", &f.names);
        push_in(&mut cond, &mut binds, "instance_guid", &f.instance_guids);
        push_in(&mut cond, &mut binds, "app_guid", &f.app_guids);
        push_in(
            &mut cond,
            &mut binds,
            "kind",
            &f.kind.clone().map(|k| vec![k]),
        );
        if let SpaceScope::ReadableBy(user) = &f.scope {
            binds.push(user.clone());
            let n = format!("${}", binds.len());
            cond.push_str(&format!(
                " AND instance_guid IN (SELECT guid FROM service_instances WHERE {})",
                readable_space_clause("space_guid", &n)
            ));
        }
        self.page_of(
            "service_bindings",
            BINDING_COLS,
            &cond,
            &binds,
            "created_at, guid",
            limit,
            offset,
        )
        .await
    }

    pub async fn bindings_of_instance(&self, instance_guid: &str) -> Result<Vec<Binding>> {
        self.all(
            &format!("SELECT {BINDING_COLS} FROM service_bindings WHERE instance_guid = $1 ORDER BY created_at, guid"),
            &[instance_guid],
        )
        .await
    }

    /// An app's bindings whose creation succeeded (what `VCAP_SERVICES`
    /// lists), oldest first.
    pub async fn app_bindings(&self, app_guid: &str) -> Result<Vec<Binding>> {
        self.all(
            &format!("SELECT {BINDING_COLS} FROM service_bindings WHERE app_guid = $1 AND kind = 'app' ORDER BY created_at, guid"),
            &[app_guid],
        )
        .await
    }

    pub async fn set_binding_op(
        &self,
        guid: &str,
        op_type: &str,
        state: &str,
        description: &str,
        broker_operation: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE service_bindings SET op_type = $1, op_state = $2, op_description = $3, broker_operation = $4, op_updated_at = $5 WHERE guid = $6")
            .bind(op_type.to_string())
            .bind(state.to_string())
            .bind(description.to_string())
            .bind(broker_operation.map(str::to_string))
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What a broker answered to a bind.
    pub async fn set_binding_credentials(
        &self,
        guid: &str,
        credentials: &str,
        syslog_drain_url: Option<&str>,
        volume_mounts: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE service_bindings SET credentials = $1, syslog_drain_url = $2, volume_mounts = $3, updated_at = $4 WHERE guid = $5")
            .bind(credentials.to_string())
            .bind(syslog_drain_url.map(str::to_string))
            .bind(volume_mounts.to_string())
            .bind(now())
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user-provided instance's new credentials reach its bindings (CF).
    pub async fn copy_upsi_credentials(&self, i: &Instance) -> Result<()> {
        sqlx::query("UPDATE service_bindings SET credentials = $1, syslog_drain_url = $2, updated_at = $3 WHERE instance_guid = $4")
            .bind(i.credentials.clone())
            .bind(i.syslog_drain_url.clone())
            .bind(now())
            .bind(i.guid.clone())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_binding(&self, guid: &str) -> Result<()> {
        sqlx::query("DELETE FROM service_bindings WHERE guid = $1")
            .bind(guid.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A plan the catalog dropped: deleted, or kept unavailable while
/// instances use it.
async fn retire_plan(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    plan_guid: &str,
    at: &str,
) -> Result<()> {
    let used: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM service_instances WHERE plan_guid = $1")
            .bind(plan_guid.to_string())
            .fetch_one(&mut **tx)
            .await?;
    if used > 0 {
        sqlx::query("UPDATE service_plans SET available = 0, updated_at = $1 WHERE guid = $2")
            .bind(at.to_string())
            .bind(plan_guid.to_string())
            .execute(&mut **tx)
            .await?;
    } else {
        sqlx::query("DELETE FROM service_plan_visibilities WHERE plan_guid = $1")
            .bind(plan_guid.to_string())
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM service_plans WHERE guid = $1")
            .bind(plan_guid.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
