//! `cf routes [--org-level]`, and the `DOMAIN [--hostname H] [--path P]`
//! arguments the route commands share.

use super::common::{enc, Ctx};
use crate::error::{CliError, Result};
use crate::format::table;
use crate::models::{route_url, App, Domain, Named, Route};
use std::collections::{HashMap, HashSet};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List all the routes for all spaces of current organization
    #[arg(long = "org-level")]
    pub org_level: bool,
}

/// `DOMAIN [--hostname HOSTNAME] [--path PATH]` of create-route,
/// delete-route, check-route and route.
#[derive(Debug, clap::Args)]
pub struct RouteSpec {
    /// Domain for the HTTP route
    pub domain: String,
    /// Hostname for the HTTP route (required for shared domains)
    #[arg(long, short = 'n')]
    pub hostname: Option<String>,
    /// Path for the HTTP route
    #[arg(long)]
    pub path: Option<String>,
}

impl RouteSpec {
    pub fn host(&self) -> String {
        self.hostname.clone().unwrap_or_default()
    }

    /// The path with a leading `/` and no trailing one (empty for none).
    pub fn path(&self) -> String {
        norm_path(self.path.as_deref())
    }

    /// `host.domain/path`, as CF prints the route it was asked about.
    pub fn url(&self) -> String {
        route_url(&self.host(), &self.domain, &self.path())
    }
}

pub fn norm_path(p: Option<&str>) -> String {
    match p.map(|p| p.trim_end_matches('/')) {
        None | Some("") => String::new(),
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("/{p}"),
    }
}

/// A domain visible to the user by name, else CF's `Domain 'x' not found.`
pub async fn find_domain(ctx: &Ctx, name: &str) -> Result<Domain> {
    let ds: Vec<Domain> = ctx
        .client
        .list(&format!("/v3/domains?names={}", enc(name)))
        .await?;
    ds.into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| CliError::other(format!("Domain '{name}' not found.")))
}

/// CF's `Route with host 'h', domain 'd', and path '/' not found.`
pub fn route_not_found(host: &str, domain: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("Route with host '{host}', domain '{domain}', and path '{path}' not found.")
}

/// One row of `cf routes`: the CF v8 columns.
pub struct RouteRow {
    pub space: String,
    pub host: String,
    pub domain: String,
    pub port: String,
    pub path: String,
    pub protocol: String,
    pub app_protocols: Vec<String>,
    pub apps: Vec<String>,
    pub service_instance: String,
}

pub fn routes_table(rows: &[RouteRow]) -> String {
    let mut t = vec![[
        "space",
        "host",
        "domain",
        "port",
        "path",
        "protocol",
        "app-protocol",
        "apps",
        "service instance",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for r in rows {
        t.push(vec![
            r.space.clone(),
            r.host.clone(),
            r.domain.clone(),
            r.port.clone(),
            r.path.clone(),
            r.protocol.clone(),
            r.app_protocols.join(", "),
            r.apps.join(", "),
            r.service_instance.clone(),
        ]);
    }
    table(&t)
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    let routes: Vec<Route> = if args.org_level {
        println!(
            "Getting routes for org {} as {}...\n",
            ctx.org.name, ctx.user
        );
        ctx.client
            .list(&format!("/v3/routes?organization_guids={}", ctx.org.guid))
            .await?
    } else {
        println!(
            "Getting routes for org {} / space {} as {}...\n",
            ctx.org.name, ctx.space.name, ctx.user
        );
        let all: Vec<Route> = ctx
            .client
            .list(&format!("/v3/routes?space_guids={}", ctx.space.guid))
            .await?;
        all.into_iter()
            .filter(|r| r.space_guid().is_empty() || r.space_guid() == ctx.space.guid)
            .collect()
    };
    if routes.is_empty() {
        println!("No routes found.");
        return Ok(());
    }
    let domains: HashMap<String, String> = ctx
        .client
        .list::<Domain>("/v3/domains")
        .await?
        .into_iter()
        .map(|d| (d.guid, d.name))
        .collect();
    let mut spaces: HashMap<String, String> =
        HashMap::from([(ctx.space.guid.clone(), ctx.space.name.clone())]);
    let mut app_names: HashMap<String, String> = HashMap::new();
    let mut loaded: HashSet<String> = HashSet::new();
    let mut rows = Vec::new();
    for r in &routes {
        let sg = r.space_guid().to_string();
        if !sg.is_empty() && !spaces.contains_key(&sg) {
            let s: Option<Named> = ctx.client.get_opt(&format!("/v3/spaces/{sg}")).await?;
            spaces.insert(sg.clone(), s.map(|s| s.name).unwrap_or_default());
        }
        if !sg.is_empty() && loaded.insert(sg.clone()) {
            let apps: Vec<App> = ctx
                .client
                .list(&format!("/v3/apps?space_guids={sg}"))
                .await?;
            app_names.extend(apps.into_iter().map(|a| (a.guid, a.name)));
        }
        let mut apps: Vec<String> = Vec::new();
        let mut protocols: Vec<String> = Vec::new();
        for d in &r.destinations {
            let name = app_names
                .get(&d.app.guid)
                .cloned()
                .unwrap_or_else(|| d.app.guid.clone());
            if !apps.contains(&name) {
                apps.push(name);
            }
            if let Some(p) = d.protocol.clone().filter(|p| !p.is_empty()) {
                if !protocols.contains(&p) {
                    protocols.push(p);
                }
            }
        }
        rows.push(RouteRow {
            space: spaces.get(&sg).cloned().unwrap_or_default(),
            host: r.host.clone(),
            domain: domains.get(r.domain_guid()).cloned().unwrap_or_default(),
            port: r.port.map(|p| p.to_string()).unwrap_or_default(),
            path: r.path.clone(),
            protocol: r.protocol.clone().unwrap_or_default(),
            app_protocols: protocols,
            apps,
            service_instance: String::new(),
        });
    }
    print!("{}", routes_table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(norm_path(None), "");
        assert_eq!(norm_path(Some("/")), "");
        assert_eq!(norm_path(Some("foo/")), "/foo");
        assert_eq!(norm_path(Some("/a/b")), "/a/b");
        let spec = RouteSpec {
            domain: "localhost".into(),
            hostname: Some("x".into()),
            path: Some("foo".into()),
        };
        assert_eq!(spec.url(), "x.localhost/foo");
        assert_eq!(
            route_not_found("x", "localhost", ""),
            "Route with host 'x', domain 'localhost', and path '/' not found."
        );
    }

    #[test]
    fn routes_table_has_the_cf_v8_columns() {
        let rows = vec![RouteRow {
            space: "dev".into(),
            host: "shared".into(),
            domain: "localhost".into(),
            port: String::new(),
            path: String::new(),
            protocol: "http".into(),
            app_protocols: vec!["http1".into()],
            apps: vec!["sh1".into(), "sh2".into()],
            service_instance: String::new(),
        }];
        assert_eq!(
            routes_table(&rows),
            "space   host     domain      port   path   protocol   app-protocol   apps       service instance\n\
             dev     shared   localhost                 http       http1          sh1, sh2\n"
        );
    }
}
