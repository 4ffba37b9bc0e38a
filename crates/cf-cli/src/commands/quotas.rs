//! Quotas (CF v3 `/v3/organization_quotas`, `/v3/space_quotas`):
//! `cf create-org-quota`, `cf set-org-quota`, `cf org-quotas`,
//! `cf create-space-quota`, `cf set-space-quota`.

use serde_json::{json, Map, Value};

use super::common::{enc, find_org, find_space, logged_in, ok, targeted_org};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::Named;
use crate::size::{format_mb, parse_mb};

/// A limit: a number, or unlimited (`-1` on the command line, `null` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Value(u64),
    Unlimited,
}

impl Limit {
    fn json(self) -> Value {
        match self {
            Limit::Value(n) => json!(n),
            Limit::Unlimited => Value::Null,
        }
    }
}

/// A memory limit: `1G`, `512M`, `512MB`, `0`, or `-1` (unlimited).
pub fn parse_memory(s: &str) -> std::result::Result<Limit, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(Limit::Unlimited);
    }
    if t.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Limit::Value(0));
    }
    parse_mb(t).map(Limit::Value)
}

/// A count limit: a whole number >= 0, or `-1` (unlimited).
pub fn parse_count(s: &str) -> std::result::Result<Limit, String> {
    match s.trim() {
        "-1" => Ok(Limit::Unlimited),
        t => t
            .parse::<u64>()
            .map(Limit::Value)
            .map_err(|_| format!("Invalid value '{s}': use a whole number, or -1 for unlimited")),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Total amount of memory all processes can have, e.g. 1024M, 1G, 10G; -1 for unlimited
    #[arg(short = 'm', value_parser = parse_memory, allow_hyphen_values = true)]
    pub total_memory: Option<Limit>,
    /// Maximum amount of memory a process can have, e.g. 1024M, 1G, 10G; -1 for unlimited
    #[arg(short = 'i', value_parser = parse_memory, allow_hyphen_values = true)]
    pub instance_memory: Option<Limit>,
    /// Total number of application instances; -1 for unlimited
    #[arg(short = 'a', value_parser = parse_count, allow_hyphen_values = true)]
    pub app_instances: Option<Limit>,
    /// Total number of routes; -1 for unlimited
    #[arg(short = 'r', value_parser = parse_count, allow_hyphen_values = true)]
    pub routes: Option<Limit>,
}

/// The `apps` and `routes` parts of a quota body (only the limits given).
pub fn limits_json(l: &Limits) -> Map<String, Value> {
    let mut apps = Map::new();
    for (key, v) in [
        ("total_memory_in_mb", l.total_memory),
        ("per_process_memory_in_mb", l.instance_memory),
        ("total_instances", l.app_instances),
    ] {
        if let Some(v) = v {
            apps.insert(key.into(), v.json());
        }
    }
    let mut out = Map::new();
    if !apps.is_empty() {
        out.insert("apps".into(), Value::Object(apps));
    }
    if let Some(r) = l.routes {
        out.insert("routes".into(), json!({"total_routes": r.json()}));
    }
    out
}

/// `POST /v3/organization_quotas` body.
pub fn org_quota_body(name: &str, l: &Limits) -> Value {
    let mut body = limits_json(l);
    body.insert("name".into(), json!(name));
    body.insert(
        "relationships".into(),
        json!({"organizations": {"data": []}}),
    );
    Value::Object(body)
}

/// `POST /v3/space_quotas` body.
pub fn space_quota_body(name: &str, org_guid: &str, l: &Limits) -> Value {
    let mut body = limits_json(l);
    body.insert("name".into(), json!(name));
    body.insert(
        "relationships".into(),
        json!({"organization": {"data": {"guid": org_guid}}}),
    );
    Value::Object(body)
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the quota
    pub name: String,
    #[command(flatten)]
    pub limits: Limits,
}

#[derive(Debug, clap::Args)]
pub struct SetOrgArgs {
    /// Organization
    pub org: String,
    /// Name of the org quota
    pub quota: String,
}

#[derive(Debug, clap::Args)]
pub struct SetSpaceArgs {
    /// Space
    pub space: String,
    /// Name of the space quota
    pub quota: String,
}

pub async fn create_org_quota(args: CreateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Creating org quota {} as {user}...", args.name);
    let _: Value = c
        .post(
            "/v3/organization_quotas",
            org_quota_body(&args.name, &args.limits),
        )
        .await?;
    ok();
    Ok(())
}

/// Assign the org quota named `quota` to an org.
pub async fn apply_org_quota(c: &Client, quota: &str, org_guid: &str) -> Result<()> {
    let found: Vec<Named> = c
        .list(&format!("/v3/organization_quotas?names={}", enc(quota)))
        .await?;
    let q = found.into_iter().find(|q| q.name == quota).ok_or_else(|| {
        CliError::other(format!("Organization quota with name '{quota}' not found."))
    })?;
    let _: Value = c
        .post(
            &format!(
                "/v3/organization_quotas/{}/relationships/organizations",
                q.guid
            ),
            json!({"data": [{"guid": org_guid}]}),
        )
        .await?;
    Ok(())
}

pub async fn set_org_quota(args: SetOrgArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    println!(
        "Setting quota {} to org {} as {user}...",
        args.quota, args.org
    );
    let org = find_org(&c, &args.org).await?;
    apply_org_quota(&c, &args.quota, &org.guid).await?;
    ok();
    Ok(())
}

fn mem_cell(v: &Value) -> String {
    match v.as_u64() {
        Some(0) => "0".into(),
        Some(n) => format_mb(n),
        None => "unlimited".into(),
    }
}

fn count_cell(v: &Value) -> String {
    v.as_u64()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

/// The `cf org-quotas` table from the v3 quota resources.
pub fn quota_table(quotas: &[Value]) -> String {
    let mut rows = vec![vec![
        "name".to_string(),
        "total memory".into(),
        "instance memory".into(),
        "routes".into(),
        "service instances".into(),
        "paid service plans".into(),
        "app instances".into(),
        "route ports".into(),
    ]];
    for q in quotas {
        let paid = match q.pointer("/services/paid_services_allowed") {
            Some(Value::Bool(false)) => "disallowed",
            _ => "allowed",
        };
        let get = |p: &str| q.pointer(p).cloned().unwrap_or(Value::Null);
        rows.push(vec![
            q["name"].as_str().unwrap_or("").to_string(),
            mem_cell(&get("/apps/total_memory_in_mb")),
            mem_cell(&get("/apps/per_process_memory_in_mb")),
            count_cell(&get("/routes/total_routes")),
            count_cell(&get("/services/total_service_instances")),
            paid.to_string(),
            count_cell(&get("/apps/total_instances")),
            count_cell(&get("/routes/total_reserved_ports")),
        ]);
    }
    table(&rows)
}

pub async fn org_quotas() -> Result<()> {
    let (c, user) = logged_in()?;
    println!("Getting org quotas as {user}...\n");
    let quotas: Vec<Value> = c.list("/v3/organization_quotas").await?;
    if quotas.is_empty() {
        println!("No organization quotas found.");
    } else {
        print!("{}", quota_table(&quotas));
    }
    Ok(())
}

pub async fn create_space_quota(args: CreateArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = targeted_org(&c)?;
    println!(
        "Creating space quota {} for org {} as {user}...",
        args.name, org.name
    );
    let _: Value = c
        .post(
            "/v3/space_quotas",
            space_quota_body(&args.name, &org.guid, &args.limits),
        )
        .await?;
    ok();
    Ok(())
}

/// Assign the targeted org's space quota named `quota` to a space.
pub async fn apply_space_quota(
    c: &Client,
    quota: &str,
    org_guid: &str,
    space_guid: &str,
) -> Result<()> {
    let found: Vec<Named> = c
        .list(&format!(
            "/v3/space_quotas?names={}&organization_guids={org_guid}",
            enc(quota)
        ))
        .await?;
    let q = found
        .into_iter()
        .find(|q| q.name == quota)
        .ok_or_else(|| CliError::other(format!("Space quota with name '{quota}' not found.")))?;
    let _: Value = c
        .post(
            &format!("/v3/space_quotas/{}/relationships/spaces", q.guid),
            json!({"data": [{"guid": space_guid}]}),
        )
        .await?;
    Ok(())
}

pub async fn set_space_quota(args: SetSpaceArgs) -> Result<()> {
    let (c, user) = logged_in()?;
    let org = targeted_org(&c)?;
    println!(
        "Setting space quota {} to space {} as {user}...",
        args.quota, args.space
    );
    let space = find_space(&c, &org.guid, &args.space).await?;
    apply_space_quota(&c, &args.quota, &org.guid, &space.guid).await?;
    ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!(parse_memory("1G"), Ok(Limit::Value(1024)));
        assert_eq!(parse_memory("512M"), Ok(Limit::Value(512)));
        assert_eq!(parse_memory("512MB"), Ok(Limit::Value(512)));
        assert_eq!(parse_memory("-1"), Ok(Limit::Unlimited));
        assert_eq!(parse_memory("0"), Ok(Limit::Value(0)));
        assert_eq!(parse_memory("0M"), Ok(Limit::Value(0)));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("-2").is_err());
        assert_eq!(parse_count("10"), Ok(Limit::Value(10)));
        assert_eq!(parse_count("-1"), Ok(Limit::Unlimited));
        assert!(parse_count("x").is_err());
        assert!(parse_count("-5").is_err());
    }

    #[test]
    fn builds_quota_bodies() {
        let l = Limits {
            total_memory: Some(Limit::Value(10240)),
            instance_memory: Some(Limit::Unlimited),
            app_instances: Some(Limit::Value(20)),
            routes: Some(Limit::Value(5)),
        };
        assert_eq!(
            org_quota_body("big", &l),
            json!({"name": "big",
                "apps": {"total_memory_in_mb": 10240, "per_process_memory_in_mb": null, "total_instances": 20},
                "routes": {"total_routes": 5},
                "relationships": {"organizations": {"data": []}}})
        );
        let none = Limits {
            total_memory: None,
            instance_memory: None,
            app_instances: None,
            routes: None,
        };
        assert_eq!(
            space_quota_body("small", "o1", &none),
            json!({"name": "small", "relationships": {"organization": {"data": {"guid": "o1"}}}})
        );
    }

    #[test]
    fn clap_takes_minus_one() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            l: Limits,
        }
        let t = T::try_parse_from(["t", "-m", "-1", "-i", "512M", "-a", "-1", "-r", "3"])
            .expect("parses");
        assert_eq!(t.l.total_memory, Some(Limit::Unlimited));
        assert_eq!(t.l.instance_memory, Some(Limit::Value(512)));
        assert_eq!(t.l.app_instances, Some(Limit::Unlimited));
        assert_eq!(t.l.routes, Some(Limit::Value(3)));
    }

    #[test]
    fn renders_quota_table() {
        let q = vec![
            json!({"name": "default", "apps": {"total_memory_in_mb": 102400, "per_process_memory_in_mb": null, "total_instances": null},
                "routes": {"total_routes": 1000, "total_reserved_ports": 0},
                "services": {"paid_services_allowed": true, "total_service_instances": 100}}),
            json!({"name": "tiny", "apps": {"total_memory_in_mb": 512}}),
        ];
        assert_eq!(
            quota_table(&q),
            "name      total memory   instance memory   routes      service instances   paid service plans   app instances   route ports\n\
             default   100G           unlimited         1000        100                 allowed              unlimited       0\n\
             tiny      512M           unlimited         unlimited   unlimited           allowed              unlimited       unlimited\n"
        );
    }
}
