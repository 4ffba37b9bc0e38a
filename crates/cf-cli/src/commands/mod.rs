//! Command-line definitions (clap derive) and dispatch; one file per command.

pub mod api;
pub mod app;
pub mod apps;
pub mod buildpacks;
pub mod check_route;
pub mod common;
pub mod create_route;
pub mod create_space;
pub mod curl;
pub mod delete;
pub mod delete_orphaned_routes;
pub mod delete_route;
pub mod deployments;
pub mod dev;
pub mod dev_hosts;
pub mod domains;
pub mod env;
pub mod events;
pub mod health_check;
pub mod help;
pub mod lifecycle;
pub mod login;
pub mod logout;
pub mod logs;
pub mod map_route;
pub mod orgs;
pub mod passwd;
pub mod push;
pub mod quotas;
pub mod rename;
pub mod restage;
pub mod revisions;
pub mod roles;
pub mod rollback;
pub mod route;
pub mod routes;
pub mod scale;
pub mod security_groups;
pub mod services;
pub mod set_env;
pub mod spaces;
pub mod target;
pub mod tasks;
pub mod users;
pub mod version;

use crate::error::Result;
use clap::{Parser, Subcommand};
use services as svc;

#[derive(Debug, Parser)]
#[command(
    name = "cf",
    version,
    about = "A command line tool to interact with the platform",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct AppName {
    /// Name of the app
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show help
    #[command(alias = "h")]
    Help(help::Args),
    /// Set or view target api url
    Api(api::Args),
    /// Log user in
    #[command(alias = "l")]
    Login(login::Args),
    /// Log user out
    #[command(alias = "lo")]
    Logout,
    /// Set or view the targeted org or space
    #[command(alias = "t")]
    Target(target::Args),
    /// Push a new app or sync changes to an existing app
    #[command(alias = "p")]
    Push(Box<push::Args>),
    /// List all apps in the target space
    #[command(alias = "a")]
    Apps,
    /// Display health and status for an app
    App(AppName),
    /// Change or view the instance count, disk space limit, and memory limit for an app
    Scale(scale::Args),
    /// Start an app
    #[command(alias = "st")]
    Start(AppName),
    /// Stop an app
    #[command(alias = "sp")]
    Stop(AppName),
    /// Stop all instances of the app, then start them again
    #[command(alias = "rs")]
    Restart(lifecycle::RestartArgs),
    /// Stage the app's latest package into a droplet and restart the app
    #[command(alias = "rg")]
    Restage(restage::Args),
    /// Cancel the most recent deployment for an app. Resets the current droplet to the previous deployment's droplet.
    CancelDeployment(deployments::CancelArgs),
    /// Continue the most recent deployment for an app.
    ContinueDeployment(deployments::ContinueArgs),
    /// Delete an app
    #[command(alias = "d")]
    Delete(delete::Args),
    /// Tail or show recent logs for an app
    Logs(logs::Args),
    /// Rename an app
    Rename(rename::Args),
    /// Run a one-off task on an app
    #[command(alias = "rt")]
    RunTask(tasks::RunArgs),
    /// List tasks of an app
    Tasks(tasks::ListArgs),
    /// Terminate a running task of an app
    TerminateTask(tasks::TerminateArgs),
    /// List revisions of an app
    Revisions(revisions::Args),
    /// Rollback to the specified revision of an app
    Rollback(rollback::Args),
    /// Show the type of health check performed on an app
    GetHealthCheck(health_check::GetArgs),
    /// Change type of health check performed on an app's process
    SetHealthCheck(health_check::SetArgs),
    /// Print the version
    Version,
    /// Show all env variables for an app
    #[command(alias = "e")]
    Env(AppName),
    /// Set an env variable for an app
    #[command(alias = "se")]
    SetEnv(set_env::SetArgs),
    /// Remove an env variable from an app
    UnsetEnv(set_env::UnsetArgs),
    /// List all routes in the current space
    #[command(alias = "r")]
    Routes(routes::Args),
    /// Create a route for later use
    CreateRoute(routes::RouteSpec),
    /// Delete a route
    DeleteRoute(delete_route::Args),
    /// Delete all orphaned routes in the currently targeted space (i.e. those that are not mapped to an app or service instance)
    DeleteOrphanedRoutes(delete_orphaned_routes::Args),
    /// Perform a check to determine whether a route currently exists or not
    CheckRoute(routes::RouteSpec),
    /// Display route details and mapped destinations
    #[command(alias = "ro")]
    Route(routes::RouteSpec),
    /// Map a route to an app
    MapRoute(map_route::Args),
    /// Remove a route from an app
    UnmapRoute(map_route::Args),
    /// Show recent app events
    Events(AppName),
    /// List all buildpacks
    Buildpacks,
    /// Create a buildpack
    CreateBuildpack(buildpacks::CreateArgs),
    /// Delete a buildpack
    DeleteBuildpack(buildpacks::DeleteArgs),
    /// Change user password
    #[command(alias = "pw")]
    Passwd,
    /// Create a new user
    CreateUser(users::CreateArgs),
    /// Delete a user
    DeleteUser(users::DeleteArgs),
    /// List all orgs
    #[command(alias = "o")]
    Orgs,
    /// Show org info
    Org(orgs::ShowArgs),
    /// Create an org
    #[command(alias = "co")]
    CreateOrg(orgs::CreateArgs),
    /// Delete an org
    DeleteOrg(orgs::DeleteArgs),
    /// List all spaces in an org
    Spaces,
    /// Show space info
    Space(spaces::ShowArgs),
    /// Create a space
    #[command(alias = "csp")]
    CreateSpace(create_space::Args),
    /// Delete a space
    DeleteSpace(spaces::DeleteArgs),
    /// Show org users by role
    OrgUsers(roles::OrgUsersArgs),
    /// Show space users by role
    SpaceUsers(roles::SpaceUsersArgs),
    /// Assign an org role to a user
    SetOrgRole(roles::OrgRoleArgs),
    /// Remove an org role from a user
    UnsetOrgRole(roles::OrgRoleArgs),
    /// Assign a space role to a user
    SetSpaceRole(roles::SpaceRoleArgs),
    /// Remove a space role from a user
    UnsetSpaceRole(roles::SpaceRoleArgs),
    /// List available organization quotas
    #[command(alias = "quotas")]
    OrgQuotas,
    /// Define a new quota for an organization
    #[command(alias = "create-quota")]
    CreateOrgQuota(quotas::CreateArgs),
    /// Assign a quota to an organization
    #[command(alias = "set-quota")]
    SetOrgQuota(quotas::SetOrgArgs),
    /// Define a new quota for a space in the targeted org
    CreateSpaceQuota(quotas::CreateArgs),
    /// Apply a space quota to a space (of the targeted org)
    SetSpaceQuota(quotas::SetSpaceArgs),
    /// List domains in the target org
    Domains,
    /// Create a domain that can be used by all orgs (admin-only)
    CreateSharedDomain(domains::SharedArgs),
    /// Create a private domain for a specific org
    #[command(alias = "create-domain")]
    CreatePrivateDomain(domains::OrgDomainArgs),
    /// Share a private domain with a specific org
    SharePrivateDomain(domains::OrgDomainArgs),
    /// Execute a raw request, content-type set to application/json by default
    Curl(curl::Args),
    /// List all security groups
    SecurityGroups,
    /// Show a single security group
    SecurityGroup(security_groups::NameArgs),
    /// Create a security group from a JSON file of rules
    CreateSecurityGroup(security_groups::RulesArgs),
    /// Replace the rules of a security group
    UpdateSecurityGroup(security_groups::RulesArgs),
    /// Delete a security group
    DeleteSecurityGroup(security_groups::DeleteArgs),
    /// Bind a security group to the spaces of an org (or one space)
    BindSecurityGroup(security_groups::BindArgs),
    /// Unbind a security group from a space
    UnbindSecurityGroup(security_groups::UnbindArgs),
    /// Bind a security group to the list of security groups to be used for running applications
    BindRunningSecurityGroup(security_groups::NameArgs),
    /// Bind a security group to the list of security groups to be used for staging applications
    BindStagingSecurityGroup(security_groups::NameArgs),
    /// Unbind a security group from the set of security groups for running applications
    UnbindRunningSecurityGroup(security_groups::NameArgs),
    /// Unbind a security group from the set of security groups for staging applications
    UnbindStagingSecurityGroup(security_groups::NameArgs),
    /// List security groups globally configured for running applications
    RunningSecurityGroups,
    /// List security groups globally configured for staging applications
    StagingSecurityGroups,
    /// List available offerings in the marketplace
    #[command(alias = "m")]
    Marketplace(svc::marketplace::Args),
    /// List all service instances in the target space
    #[command(alias = "s")]
    Services(svc::list::Args),
    /// Show service instance info
    Service(svc::show::Args),
    /// Create a service instance
    #[command(alias = "cs")]
    CreateService(svc::create_service::Args),
    /// Update a service instance
    UpdateService(svc::update_service::Args),
    /// Delete a service instance
    #[command(alias = "ds")]
    DeleteService(svc::delete_service::Args),
    /// Rename a service instance
    RenameService(svc::update_service::RenameArgs),
    /// Create key for a service instance
    #[command(alias = "csk")]
    CreateServiceKey(svc::keys::CreateArgs),
    /// List keys for a service instance
    #[command(alias = "sk")]
    ServiceKeys(svc::keys::ListArgs),
    /// Show service key info
    ServiceKey(svc::keys::ShowArgs),
    /// Delete a service key
    #[command(alias = "dsk")]
    DeleteServiceKey(svc::keys::DeleteArgs),
    /// Bind a service instance to an app
    #[command(alias = "bs")]
    BindService(svc::bind::BindArgs),
    /// Unbind a service instance from an app
    #[command(alias = "us")]
    UnbindService(svc::bind::UnbindArgs),
    /// Make a user-provided service instance available to CF apps
    #[command(alias = "cups")]
    CreateUserProvidedService(svc::user_provided::Args),
    /// Update user-provided service instance
    #[command(alias = "uups")]
    UpdateUserProvidedService(svc::user_provided::Args),
    /// List service brokers
    ServiceBrokers,
    /// Create a service broker
    #[command(alias = "csb")]
    CreateServiceBroker(svc::brokers::CreateArgs),
    /// Update a service broker
    UpdateServiceBroker(svc::brokers::UpdateArgs),
    /// Delete a service broker
    DeleteServiceBroker(svc::brokers::DeleteArgs),
    /// Rename a service broker
    RenameServiceBroker(svc::brokers::RenameArgs),
    /// List service access settings
    ServiceAccess(svc::access::ListArgs),
    /// Enable access to a service offering or service plan for one or all orgs
    EnableServiceAccess(svc::access::SetArgs),
    /// Disable access to a service offering or service plan for one or all orgs
    DisableServiceAccess(svc::access::SetArgs),
    /// Run the whole platform on this machine
    #[command(subcommand)]
    Dev(dev::DevCommand),
}

pub async fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Help(a) => help::run(a),
        Command::Api(a) => api::run(a).await,
        Command::Login(a) => login::run(a).await,
        Command::Logout => logout::run().await,
        Command::Target(a) => target::run(a).await,
        Command::Push(a) => push::run(*a).await,
        Command::Apps => apps::run().await,
        Command::App(a) => app::run(&a.name).await,
        Command::Scale(a) => scale::run(a).await,
        Command::Start(a) => lifecycle::start(&a.name).await,
        Command::Stop(a) => lifecycle::stop(&a.name).await,
        Command::Restart(a) => lifecycle::restart(a).await,
        Command::Restage(a) => restage::run(a).await,
        Command::CancelDeployment(a) => deployments::cancel(a).await,
        Command::ContinueDeployment(a) => deployments::continue_(a).await,
        Command::Rollback(a) => rollback::run(a).await,
        Command::Delete(a) => delete::run(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Env(a) => env::run(&a.name).await,
        Command::SetEnv(a) => set_env::set(a).await,
        Command::UnsetEnv(a) => set_env::unset(a).await,
        Command::Routes(a) => routes::run(a).await,
        Command::CreateRoute(a) => create_route::run(a).await,
        Command::DeleteRoute(a) => delete_route::run(a).await,
        Command::DeleteOrphanedRoutes(a) => delete_orphaned_routes::run(a).await,
        Command::CheckRoute(a) => check_route::run(a).await,
        Command::Route(a) => route::run(a).await,
        Command::Rename(a) => rename::run(a).await,
        Command::RunTask(a) => tasks::run(a).await,
        Command::Tasks(a) => tasks::list(a).await,
        Command::TerminateTask(a) => tasks::terminate(a).await,
        Command::Revisions(a) => revisions::run(a).await,
        Command::GetHealthCheck(a) => health_check::get(a).await,
        Command::SetHealthCheck(a) => health_check::set(a).await,
        Command::Version => {
            version::run();
            Ok(())
        }
        Command::MapRoute(a) => map_route::map(a).await,
        Command::UnmapRoute(a) => map_route::unmap(a).await,
        Command::Events(a) => events::run(&a.name).await,
        Command::Buildpacks => buildpacks::list().await,
        Command::CreateBuildpack(a) => buildpacks::create(a).await,
        Command::DeleteBuildpack(a) => buildpacks::delete(a).await,
        Command::Passwd => passwd::run().await,
        Command::CreateUser(a) => users::create(a).await,
        Command::DeleteUser(a) => users::delete(a).await,
        Command::Orgs => orgs::list().await,
        Command::Org(a) => orgs::show(a).await,
        Command::CreateOrg(a) => orgs::create(a).await,
        Command::DeleteOrg(a) => orgs::delete(a).await,
        Command::Spaces => spaces::list().await,
        Command::Space(a) => spaces::show(a).await,
        Command::CreateSpace(a) => create_space::run(a).await,
        Command::DeleteSpace(a) => spaces::delete(a).await,
        Command::OrgUsers(a) => roles::org_users(a).await,
        Command::SpaceUsers(a) => roles::space_users(a).await,
        Command::SetOrgRole(a) => roles::set_org_role(a).await,
        Command::UnsetOrgRole(a) => roles::unset_org_role(a).await,
        Command::SetSpaceRole(a) => roles::set_space_role(a).await,
        Command::UnsetSpaceRole(a) => roles::unset_space_role(a).await,
        Command::OrgQuotas => quotas::org_quotas().await,
        Command::CreateOrgQuota(a) => quotas::create_org_quota(a).await,
        Command::SetOrgQuota(a) => quotas::set_org_quota(a).await,
        Command::CreateSpaceQuota(a) => quotas::create_space_quota(a).await,
        Command::SetSpaceQuota(a) => quotas::set_space_quota(a).await,
        Command::Domains => domains::list().await,
        Command::CreateSharedDomain(a) => domains::create_shared(a).await,
        Command::CreatePrivateDomain(a) => domains::create_private(a).await,
        Command::SharePrivateDomain(a) => domains::share_private(a).await,
        Command::Curl(a) => curl::run(a).await,
        Command::SecurityGroups => security_groups::list().await,
        Command::SecurityGroup(a) => security_groups::show(a).await,
        Command::CreateSecurityGroup(a) => security_groups::create(a).await,
        Command::UpdateSecurityGroup(a) => security_groups::update(a).await,
        Command::DeleteSecurityGroup(a) => security_groups::delete(a).await,
        Command::BindSecurityGroup(a) => security_groups::bind(a).await,
        Command::UnbindSecurityGroup(a) => security_groups::unbind(a).await,
        Command::BindRunningSecurityGroup(a) => {
            security_groups::set_global(&a.name, security_groups::Lifecycle::Running, true).await
        }
        Command::BindStagingSecurityGroup(a) => {
            security_groups::set_global(&a.name, security_groups::Lifecycle::Staging, true).await
        }
        Command::UnbindRunningSecurityGroup(a) => {
            security_groups::set_global(&a.name, security_groups::Lifecycle::Running, false).await
        }
        Command::UnbindStagingSecurityGroup(a) => {
            security_groups::set_global(&a.name, security_groups::Lifecycle::Staging, false).await
        }
        Command::RunningSecurityGroups => {
            security_groups::globals(security_groups::Lifecycle::Running).await
        }
        Command::StagingSecurityGroups => {
            security_groups::globals(security_groups::Lifecycle::Staging).await
        }
        Command::Marketplace(a) => svc::marketplace::run(a).await,
        Command::Services(a) => svc::list::run(a).await,
        Command::Service(a) => svc::show::run(a).await,
        Command::CreateService(a) => svc::create_service::run(a).await,
        Command::UpdateService(a) => svc::update_service::run(a).await,
        Command::DeleteService(a) => svc::delete_service::run(a).await,
        Command::RenameService(a) => svc::update_service::rename(a).await,
        Command::CreateServiceKey(a) => svc::keys::create(a).await,
        Command::ServiceKeys(a) => svc::keys::list(a).await,
        Command::ServiceKey(a) => svc::keys::show(a).await,
        Command::DeleteServiceKey(a) => svc::keys::delete(a).await,
        Command::BindService(a) => svc::bind::run_bind(a).await,
        Command::UnbindService(a) => svc::bind::run_unbind(a).await,
        Command::CreateUserProvidedService(a) => svc::user_provided::create(a).await,
        Command::UpdateUserProvidedService(a) => svc::user_provided::update(a).await,
        Command::ServiceBrokers => svc::brokers::list().await,
        Command::CreateServiceBroker(a) => svc::brokers::create(a).await,
        Command::UpdateServiceBroker(a) => svc::brokers::update(a).await,
        Command::DeleteServiceBroker(a) => svc::brokers::delete(a).await,
        Command::RenameServiceBroker(a) => svc::brokers::rename(a).await,
        Command::ServiceAccess(a) => svc::access::list(a).await,
        Command::EnableServiceAccess(a) => svc::access::enable(a).await,
        Command::DisableServiceAccess(a) => svc::access::disable(a).await,
        Command::Dev(d) => dev::run(d).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["cf"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(c) => c.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn route_and_app_commands_parse_with_cf_names() {
        assert!(matches!(parse(&["routes", "--org-level"]), Command::Routes(a) if a.org_level));
        assert!(matches!(parse(&["r"]), Command::Routes(a) if !a.org_level));
        assert!(
            matches!(parse(&["create-route", "d.com", "--hostname", "h", "--path", "/p"]), Command::CreateRoute(a) if a.hostname.as_deref() == Some("h") && a.path.as_deref() == Some("/p"))
        );
        assert!(
            matches!(parse(&["delete-route", "d.com", "-n", "h", "-f"]), Command::DeleteRoute(a) if a.force && a.route.domain == "d.com")
        );
        assert!(
            matches!(parse(&["delete-orphaned-routes", "-f"]), Command::DeleteOrphanedRoutes(a) if a.force)
        );
        assert!(matches!(
            parse(&["check-route", "d.com", "-n", "h"]),
            Command::CheckRoute(_)
        ));
        assert!(matches!(parse(&["route", "d.com"]), Command::Route(_)));
        assert!(matches!(parse(&["rename", "a", "b"]), Command::Rename(a) if a.new_name == "b"));
        assert!(matches!(
            parse(&["get-health-check", "a"]),
            Command::GetHealthCheck(_)
        ));
        assert!(
            matches!(parse(&["set-health-check", "a", "http", "--endpoint", "/h", "--invocation-timeout", "1"]), Command::SetHealthCheck(a) if a.endpoint == "/h" && a.invocation_timeout == Some(1))
        );
        assert!(
            matches!(parse(&["set-health-check", "a", "port"]), Command::SetHealthCheck(a) if a.process == "web")
        );
        assert!(Cli::try_parse_from(["cf", "set-health-check", "a", "none"]).is_err());
        assert!(matches!(parse(&["version"]), Command::Version));
    }

    #[test]
    fn deployment_commands_parse_with_cf_names_and_flags() {
        assert!(matches!(
            parse(&["restart", "a", "--strategy", "rolling", "--max-in-flight", "2", "--no-wait"]),
            Command::Restart(a) if a.strategy.as_deref() == Some("rolling") && a.max_in_flight == Some(2) && a.no_wait
        ));
        assert!(
            matches!(parse(&["rs", "a"]), Command::Restart(a) if a.strategy.is_none() && !a.no_wait)
        );
        assert!(matches!(
            parse(&["rg", "a", "--strategy", "canary", "--instance-steps", "10,50"]),
            Command::Restage(a) if a.instance_steps.as_deref() == Some("10,50")
        ));
        assert!(matches!(
            parse(&["rollback", "a", "--version", "3", "-f", "--max-in-flight", "1"]),
            Command::Rollback(a) if a.version == 3 && a.force && a.max_in_flight == Some(1) && a.strategy.is_none()
        ));
        assert!(Cli::try_parse_from(["cf", "rollback", "a"]).is_err());
        assert!(Cli::try_parse_from(["cf", "rollback", "a", "--version", "0"]).is_err());
        assert!(
            matches!(parse(&["cancel-deployment", "a"]), Command::CancelDeployment(a) if a.name == "a")
        );
        assert!(matches!(
            parse(&["continue-deployment", "a", "--no-wait"]),
            Command::ContinueDeployment(a) if a.no_wait
        ));
    }

    #[test]
    fn service_commands_parse_with_cf_names_aliases_and_flags() {
        assert!(
            matches!(parse(&["m", "-e", "db", "-b", "b"]), Command::Marketplace(a) if a.offering.as_deref() == Some("db") && a.broker.as_deref() == Some("b"))
        );
        assert!(
            matches!(parse(&["marketplace", "--no-plans"]), Command::Marketplace(a) if a.no_plans)
        );
        assert!(Cli::try_parse_from(["cf", "marketplace", "-e", "x", "--no-plans"]).is_err());
        assert!(matches!(
            parse(&["cs", "db", "small", "mydb", "-b", "br", "-c", "{}", "-t", "a, b", "-w"]),
            Command::CreateService(a) if a.offering == "db" && a.plan == "small" && a.name == "mydb"
                && a.broker.as_deref() == Some("br") && a.params.as_deref() == Some("{}")
                && a.tags.as_deref() == Some("a, b") && a.wait
        ));
        assert!(
            matches!(parse(&["create-service", "o", "p", "n", "--wait"]), Command::CreateService(a) if a.wait)
        );
        assert!(matches!(parse(&["s", "--no-apps"]), Command::Services(a) if a.no_apps));
        assert!(
            matches!(parse(&["service", "db", "--guid"]), Command::Service(a) if a.guid && !a.params)
        );
        assert!(matches!(parse(&["service", "db", "--params"]), Command::Service(a) if a.params));
        assert!(Cli::try_parse_from(["cf", "service", "db", "--guid", "--params"]).is_err());
        assert!(matches!(
            parse(&["update-service", "db", "-p", "gold", "-c", "{}", "-t", "x", "--wait"]),
            Command::UpdateService(a) if a.plan.as_deref() == Some("gold") && a.wait
        ));
        assert!(
            matches!(parse(&["rename-service", "a", "b"]), Command::RenameService(a) if a.new_name == "b")
        );
        assert!(matches!(
            parse(&["bs", "app", "db", "-c", "{}", "--binding-name", "pg", "-w"]),
            Command::BindService(a) if a.app == "app" && a.instance == "db" && a.binding_name.as_deref() == Some("pg") && a.wait
        ));
        assert!(
            matches!(parse(&["us", "app", "db", "-w"]), Command::UnbindService(a) if a.wait && a.guid.is_none())
        );
        assert!(
            matches!(parse(&["ds", "db", "-f", "-w"]), Command::DeleteService(a) if a.force && a.wait)
        );
        assert!(matches!(
            parse(&["cups", "creds", "-p", "user, pass", "-l", "syslog://x", "-r", "https://r", "-t", "a"]),
            Command::CreateUserProvidedService(a) if a.credentials.as_deref() == Some("user, pass")
                && a.syslog_drain_url.as_deref() == Some("syslog://x") && a.route_service_url.as_deref() == Some("https://r")
        ));
        assert!(matches!(
            parse(&["uups", "creds", "-p", "{}"]),
            Command::UpdateUserProvidedService(_)
        ));
        assert!(
            matches!(parse(&["csk", "db", "k", "-c", "{}", "-w"]), Command::CreateServiceKey(a) if a.key == "k" && a.wait)
        );
        assert!(matches!(parse(&["sk", "db"]), Command::ServiceKeys(_)));
        assert!(
            matches!(parse(&["service-key", "db", "k", "--guid"]), Command::ServiceKey(a) if a.guid)
        );
        assert!(
            matches!(parse(&["dsk", "db", "k", "-f"]), Command::DeleteServiceKey(a) if a.force)
        );
        assert!(matches!(
            parse(&["csb", "b", "u", "p", "http://b", "--space-scoped", "--update-if-exists"]),
            Command::CreateServiceBroker(a) if a.url.as_deref() == Some("http://b") && a.space_scoped && a.update_if_exists
        ));
        assert!(matches!(
            parse(&["create-service-broker", "b", "u", "http://b"]),
            Command::CreateServiceBroker(a) if a.url.is_none() && a.password_or_url == "http://b"
        ));
        assert!(matches!(
            parse(&["service-brokers"]),
            Command::ServiceBrokers
        ));
        assert!(matches!(
            parse(&["update-service-broker", "b", "u", "p", "http://b"]),
            Command::UpdateServiceBroker(_)
        ));
        assert!(
            matches!(parse(&["delete-service-broker", "b", "-f"]), Command::DeleteServiceBroker(a) if a.force)
        );
        assert!(matches!(
            parse(&["rename-service-broker", "a", "b"]),
            Command::RenameServiceBroker(_)
        ));
        assert!(matches!(
            parse(&["enable-service-access", "db", "-b", "br", "-p", "small", "-o", "org"]),
            Command::EnableServiceAccess(a) if a.plan.as_deref() == Some("small") && a.org.as_deref() == Some("org")
        ));
        assert!(matches!(
            parse(&["disable-service-access", "db"]),
            Command::DisableServiceAccess(_)
        ));
        assert!(matches!(
            parse(&["service-access", "-b", "br", "-e", "db", "-o", "org"]),
            Command::ServiceAccess(a) if a.offering.as_deref() == Some("db")
        ));
    }

    #[test]
    fn tenancy_commands_parse_with_cf_names_and_aliases() {
        assert!(matches!(parse(&["co", "o1"]), Command::CreateOrg(a) if a.name == "o1"));
        assert!(
            matches!(parse(&["create-org", "o1", "-q", "q"]), Command::CreateOrg(a) if a.quota.as_deref() == Some("q"))
        );
        assert!(matches!(parse(&["o"]), Command::Orgs));
        assert!(
            matches!(parse(&["csp", "s", "-o", "o"]), Command::CreateSpace(a) if a.org.as_deref() == Some("o"))
        );
        assert!(
            matches!(parse(&["delete-space", "s", "-o", "o", "-f"]), Command::DeleteSpace(a) if a.force)
        );
        assert!(matches!(parse(&["delete-org", "o", "-f"]), Command::DeleteOrg(a) if a.force));
        assert!(matches!(parse(&["delete-user", "u", "-f"]), Command::DeleteUser(a) if a.force));
        assert!(
            matches!(parse(&["create-user", "u", "p"]), Command::CreateUser(a) if a.password.as_deref() == Some("p"))
        );
        assert!(
            matches!(parse(&["set-org-role", "u", "o", "OrgManager"]), Command::SetOrgRole(a) if a.role == "OrgManager")
        );
        assert!(
            matches!(parse(&["set-space-role", "u", "o", "s", "SpaceDeveloper"]), Command::SetSpaceRole(a) if a.space == "s")
        );
        assert!(matches!(parse(&["org-users", "o", "-a"]), Command::OrgUsers(a) if a.all));
        assert!(matches!(
            parse(&["space-users", "o", "s"]),
            Command::SpaceUsers(_)
        ));
        assert!(matches!(parse(&["quotas"]), Command::OrgQuotas));
        assert!(matches!(
            parse(&["create-quota", "q", "-m", "1G"]),
            Command::CreateOrgQuota(_)
        ));
        assert!(matches!(
            parse(&["set-quota", "o", "q"]),
            Command::SetOrgQuota(_)
        ));
        assert!(matches!(
            parse(&["create-space-quota", "q", "-r", "-1"]),
            Command::CreateSpaceQuota(_)
        ));
        assert!(matches!(
            parse(&["set-space-quota", "s", "q"]),
            Command::SetSpaceQuota(_)
        ));
        assert!(
            matches!(parse(&["create-shared-domain", "d.com", "--internal"]), Command::CreateSharedDomain(a) if a.internal)
        );
        assert!(matches!(
            parse(&["create-domain", "o", "d.com"]),
            Command::CreatePrivateDomain(_)
        ));
        assert!(matches!(
            parse(&["share-private-domain", "o", "d.com"]),
            Command::SharePrivateDomain(_)
        ));
        assert!(matches!(parse(&["domains"]), Command::Domains));
        assert!(matches!(parse(&["pw"]), Command::Passwd));
        assert!(
            matches!(parse(&["target", "-o", "o", "-s", "s"]), Command::Target(a) if a.space.as_deref() == Some("s"))
        );
        assert!(matches!(
            parse(&["curl", "/v3/apps", "-X", "POST", "-H", "A: b", "-H", "C: d", "-d", "{}", "-i", "--fail"]),
            Command::Curl(a) if a.headers.len() == 2 && a.fail && a.include
        ));
    }
}
