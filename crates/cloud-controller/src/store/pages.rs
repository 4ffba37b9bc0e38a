//! List pages filtered, counted and cut in SQL (`LIMIT`/`OFFSET` with a
//! `COUNT`), with the caller's read scope in the same query: audit events,
//! organizations, spaces, routes, users, domains, builds, packages,
//! droplets and processes here; roles, tasks, revisions, deployments,
//! quotas, buildpacks, security groups and service brokers, offerings and
//! plans in their own modules (apps: `Store::apps_page`).

use sqlx::any::AnyRow;
use sqlx::FromRow;

use super::orgs::{DOMAIN_COLS, ORG_COLS, SPACE_COLS};
use super::{
    push_in, readable_space_clause, AuditEvent, Build, CcUser, Domain, Droplet, Organization,
    Package, Process, Result, Route, Space, SpaceScope, Store, BUILD_COLS, DROPLET_COLS,
    EVENT_COLS, PKG_COLS, PROC_COLS, ROUTE_COLS,
};

/// A `WHERE` condition and its bound values (`$1`...).
#[derive(Debug, Clone)]
pub(crate) struct Where {
    cond: String,
    binds: Vec<String>,
}

impl Where {
    pub(crate) fn new() -> Where {
        Where {
            cond: String::from("1 = 1"),
            binds: Vec::new(),
        }
    }

    /// `col IN (...)` for a list filter (`None`: any; empty: none).
    pub(crate) fn any_of(&mut self, col: &str, vals: &Option<Vec<String>>) -> &mut Where {
        push_in(&mut self.cond, &mut self.binds, col, vals);
        self
    }

    /// Binds `v`, returning its placeholder.
    pub(crate) fn param(&mut self, v: &str) -> String {
        self.binds.push(v.to_string());
        format!("${}", self.binds.len())
    }

    /// `col IN (...)` binding `vals` (`1 = 0` when empty), for a clause
    /// built by the caller.
    pub(crate) fn in_list(&mut self, col: &str, vals: &[String]) -> String {
        if vals.is_empty() {
            return String::from("1 = 0");
        }
        let marks: Vec<String> = vals.iter().map(|v| self.param(v)).collect();
        format!("{col} IN ({})", marks.join(", "))
    }

    /// ` AND (clause)`.
    pub(crate) fn and(&mut self, clause: &str) -> &mut Where {
        self.cond.push_str(&format!(" AND ({clause})"));
        self
    }

    pub(crate) fn cond(&self) -> &str {
        &self.cond
    }

    pub(crate) fn bind_refs(&self) -> Vec<&str> {
        self.binds.iter().map(String::as_str).collect()
    }
}

/// How a list is ordered: a column (the caller's fixed list) and the
/// direction, `guid` breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub column: &'static str,
    pub descending: bool,
}

impl Order {
    pub const CREATED: Order = Order {
        column: "created_at",
        descending: false,
    };

    pub(super) fn sql(&self) -> String {
        if self.descending {
            format!("{} DESC, guid DESC", self.column)
        } else {
            format!("{}, guid", self.column)
        }
    }
}

/// A window of a list: at most `limit` rows after `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: usize,
    pub offset: usize,
}

/// `GET /v3/audit_events` filters (each `None` = any).
#[derive(Debug, Clone)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub target_guids: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    pub organization_guids: Option<Vec<String>>,
    pub scope: SpaceScope,
    pub order: Order,
}

/// `GET /v3/organizations` filters; `member`: only orgs where this user
/// holds a role (`None`: every org).
#[derive(Debug, Clone)]
pub struct OrgFilter {
    pub names: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub member: Option<String>,
}

/// `GET /v3/spaces` filters and the caller's scope.
#[derive(Debug, Clone)]
pub struct SpaceFilter {
    pub names: Option<Vec<String>>,
    pub organization_guids: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// `GET /v3/routes` filters and the caller's scope.
#[derive(Debug, Clone)]
pub struct RouteFilter {
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub domain_guids: Option<Vec<String>>,
    pub space_guids: Option<Vec<String>>,
    /// Routes of the spaces of these orgs.
    pub organization_guids: Option<Vec<String>>,
    /// Routes with a destination of one of these apps.
    pub app_guids: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// `GET /v3/users` filters; `visible_to`: only this user and the users
/// of its orgs (`None`: every user).
#[derive(Debug, Clone)]
pub struct UserFilter {
    pub usernames: Option<Vec<String>>,
    pub origins: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub visible_to: Option<String>,
}

/// `GET /v3/domains` filters; `member`: only the shared domains and those
/// the orgs this user holds a role in own or were given (`None`: every
/// domain); `usable_by` (`/v3/organizations/:guid/domains`): only the
/// shared domains and those this org owns or was given.
#[derive(Debug, Clone)]
pub struct DomainFilter {
    pub names: Option<Vec<String>>,
    pub member: Option<String>,
    pub usable_by: Option<String>,
}

/// `GET /v3/builds` and `/v3/apps/:guid/builds` filters and the caller's
/// scope.
#[derive(Debug, Clone)]
pub struct BuildFilter {
    /// The app of `/v3/apps/:guid/builds`.
    pub app: Option<String>,
    pub app_guids: Option<Vec<String>>,
    pub states: Option<Vec<String>>,
    pub guids: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// `GET /v3/packages` filters and the caller's scope.
#[derive(Debug, Clone)]
pub struct PackageFilter {
    pub app_guids: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// `GET /v3/processes` and `/v3/apps/:guid/processes` filters and the
/// caller's scope.
#[derive(Debug, Clone)]
pub struct ProcessFilter {
    pub app_guids: Option<Vec<String>>,
    pub scope: SpaceScope,
}

/// `GET /v3/apps/:guid/droplets` filters.
#[derive(Debug, Clone)]
pub struct DropletFilter {
    pub app: String,
    pub states: Option<Vec<String>>,
}

/// ` AND col IN (SELECT pick FROM table WHERE by IN (...))` for a list
/// filter on a related table (`None`: any; empty: none).
pub(super) fn any_via(
    w: &mut Where,
    col: &str,
    sub: (&str, &str, &str),
    vals: &Option<Vec<String>>,
) {
    let Some(vals) = vals else {
        return;
    };
    let (table, pick, by) = sub;
    let mut inner = Where::new();
    inner.binds = std::mem::take(&mut w.binds);
    inner.any_of(by, &Some(vals.clone()));
    w.binds = inner.binds;
    w.and(&format!(
        "{col} IN (SELECT {pick} FROM {table} WHERE {})",
        inner.cond
    ));
}

impl Store {
    /// The rows of `table` matching `w`: how many in all, and the window.
    pub(super) async fn page<T>(
        &self,
        cols: &str,
        table: &str,
        w: &Where,
        order: &str,
        win: Window,
    ) -> Result<(usize, Vec<T>)>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let refs: Vec<&str> = w.binds.iter().map(String::as_str).collect();
        let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", w.cond);
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &refs {
            count = count.bind(b.to_string());
        }
        let total = usize::try_from(count.fetch_one(&self.pool).await?).unwrap_or(0);
        // Past the end (or beyond what SQL counts): an empty window.
        let offset = i64::try_from(win.offset).unwrap_or(i64::MAX);
        if win.offset >= total {
            return Ok((total, Vec::new()));
        }
        let rows = self
            .all(
                &format!(
                    "SELECT {cols} FROM {table} WHERE {} ORDER BY {order} LIMIT {} OFFSET {offset}",
                    w.cond,
                    win.limit.min(5000),
                ),
                &refs,
            )
            .await?;
        Ok((total, rows))
    }

    /// Audit events the scope may read (those of readable spaces, and
    /// org-level ones of orgs it manages or audits) matching `f`.
    pub async fn events_page(
        &self,
        f: &EventFilter,
        win: Window,
    ) -> Result<(usize, Vec<AuditEvent>)> {
        let mut w = Where::new();
        w.any_of("type", &f.types)
            .any_of("target_guid", &f.target_guids)
            .any_of("space_guid", &f.space_guids)
            .any_of("organization_guid", &f.organization_guids);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            let u = w.param(user);
            w.and(&format!(
                "{} OR (space_guid IS NULL AND organization_guid IN (SELECT organization_guid FROM roles WHERE user_guid = {u} AND space_guid = '' AND type IN ('organization_manager', 'organization_auditor')))",
                readable_space_clause("space_guid", &u)
            ));
        }
        self.page(EVENT_COLS, "audit_events", &w, &f.order.sql(), win)
            .await
    }

    /// Organizations matching `f`, in creation order.
    pub async fn orgs_page(
        &self,
        f: &OrgFilter,
        win: Window,
    ) -> Result<(usize, Vec<Organization>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names).any_of("guid", &f.guids);
        if let Some(user) = &f.member {
            let u = w.param(user);
            w.and(&format!(
                "guid IN (SELECT organization_guid FROM roles WHERE user_guid = {u})"
            ));
        }
        self.page(ORG_COLS, "organizations", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Spaces matching `f` whose content the scope may read, in creation
    /// order.
    pub async fn spaces_page(&self, f: &SpaceFilter, win: Window) -> Result<(usize, Vec<Space>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names)
            .any_of("organization_guid", &f.organization_guids)
            .any_of("guid", &f.guids);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            let u = w.param(user);
            w.and(&readable_space_clause("guid", &u));
        }
        self.page(SPACE_COLS, "spaces", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Routes matching `f` in spaces the scope may read, in creation order.
    pub async fn routes_page(&self, f: &RouteFilter, win: Window) -> Result<(usize, Vec<Route>)> {
        let mut w = Where::new();
        w.any_of("host", &f.hosts)
            .any_of("path", &f.paths)
            .any_of("domain_guid", &f.domain_guids)
            .any_of("space_guid", &f.space_guids);
        any_via(
            &mut w,
            "space_guid",
            ("spaces", "guid", "organization_guid"),
            &f.organization_guids,
        );
        any_via(
            &mut w,
            "guid",
            ("route_destinations", "route_guid", "app_guid"),
            &f.app_guids,
        );
        if let SpaceScope::ReadableBy(user) = &f.scope {
            let u = w.param(user);
            w.and(&readable_space_clause("space_guid", &u));
        }
        self.page(ROUTE_COLS, "routes", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Controller users matching `f`, in creation order, with their UAA
    /// name and origin (a user without a UAA record matches no name or
    /// origin filter).
    pub async fn cc_users_page(&self, f: &UserFilter, win: Window) -> Result<(usize, Vec<CcUser>)> {
        let mut w = Where::new();
        w.any_of("u.username", &f.usernames)
            .any_of("u.origin", &f.origins)
            .any_of("c.guid", &f.guids);
        if let Some(me) = &f.visible_to {
            let me = w.param(me);
            w.and(&format!(
                "c.guid = {me} OR c.guid IN (SELECT r.user_guid FROM roles r WHERE r.organization_guid IN (SELECT organization_guid FROM roles WHERE user_guid = {me}))"
            ));
        }
        self.page(
            "c.guid, c.created_at, c.updated_at, u.username, u.origin",
            "cc_users c LEFT JOIN users u ON u.guid = c.guid",
            &w,
            "c.created_at, c.guid",
            win,
        )
        .await
    }

    /// Domains matching `f`, in creation order.
    pub async fn domains_page(
        &self,
        f: &DomainFilter,
        win: Window,
    ) -> Result<(usize, Vec<Domain>)> {
        let mut w = Where::new();
        w.any_of("name", &f.names);
        if let Some(me) = &f.member {
            let me = w.param(me);
            let orgs = format!("SELECT organization_guid FROM roles WHERE user_guid = {me}");
            w.and(&format!(
                "organization_guid IS NULL OR organization_guid IN ({orgs}) OR guid IN (SELECT domain_guid FROM domain_shares WHERE organization_guid IN ({orgs}))"
            ));
        }
        if let Some(org) = &f.usable_by {
            let o = w.param(org);
            w.and(&format!(
                "organization_guid IS NULL OR organization_guid = {o} OR guid IN (SELECT domain_guid FROM domain_shares WHERE organization_guid = {o})"
            ));
        }
        self.page(DOMAIN_COLS, "domains", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Builds matching `f` of apps in readable spaces, oldest first.
    pub async fn builds_page(&self, f: &BuildFilter, win: Window) -> Result<(usize, Vec<Build>)> {
        let mut w = Where::new();
        if let Some(app) = &f.app {
            let a = w.param(app);
            w.and(&format!("app_guid = {a}"));
        }
        w.any_of("app_guid", &f.app_guids)
            .any_of("state", &f.states)
            .any_of("guid", &f.guids);
        if let SpaceScope::ReadableBy(user) = &f.scope {
            let u = w.param(user);
            w.and(&format!(
                "app_guid IN (SELECT guid FROM apps WHERE {})",
                readable_space_clause("space_guid", &u)
            ));
        }
        self.page(BUILD_COLS, "builds", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Packages of the apps matching `f` in readable spaces: by app (in
    /// the apps' creation order), then oldest first.
    pub async fn packages_page(
        &self,
        f: &PackageFilter,
        win: Window,
    ) -> Result<(usize, Vec<Package>)> {
        self.app_children_page(PKG_COLS, "packages", &f.app_guids, &f.scope, win)
            .await
    }

    /// Rows of `table` (one with an `app_guid`) of the apps `app_guids` in
    /// spaces `scope` may read: by app (in the apps' creation order), then
    /// oldest first.
    async fn app_children_page<T>(
        &self,
        cols: &str,
        table: &str,
        app_guids: &Option<Vec<String>>,
        scope: &SpaceScope,
        win: Window,
    ) -> Result<(usize, Vec<T>)>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut w = Where::new();
        w.any_of("p.app_guid", app_guids);
        if let SpaceScope::ReadableBy(user) = scope {
            let u = w.param(user);
            w.and(&readable_space_clause("a.space_guid", &u));
        }
        let cols: Vec<String> = cols.split(", ").map(|c| format!("p.{c}")).collect();
        self.page(
            &cols.join(", "),
            &format!("{table} p JOIN apps a ON a.guid = p.app_guid"),
            &w,
            "a.created_at, a.guid, p.created_at, p.guid",
            win,
        )
        .await
    }

    /// An app's droplets matching `f`, oldest first (the policy checked
    /// the app: no scope).
    pub async fn droplets_page(
        &self,
        f: &DropletFilter,
        win: Window,
    ) -> Result<(usize, Vec<Droplet>)> {
        let mut w = Where::new();
        let a = w.param(&f.app);
        w.and(&format!("app_guid = {a}"));
        w.any_of("state", &f.states);
        self.page(DROPLET_COLS, "droplets", &w, &Order::CREATED.sql(), win)
            .await
    }

    /// Processes of the apps matching `f` in readable spaces: by app (in
    /// the apps' creation order), then oldest first.
    pub async fn processes_page(
        &self,
        f: &ProcessFilter,
        win: Window,
    ) -> Result<(usize, Vec<Process>)> {
        self.app_children_page(PROC_COLS, "processes", &f.app_guids, &f.scope, win)
            .await
    }
}
