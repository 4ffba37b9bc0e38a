//! Command-line definitions (clap derive) and dispatch; one file per command.

pub mod api;
pub mod app;
pub mod apps;
pub mod buildpacks;
pub mod common;
pub mod create_space;
pub mod delete;
pub mod dev;
pub mod env;
pub mod events;
pub mod lifecycle;
pub mod login;
pub mod logout;
pub mod logs;
pub mod map_route;
pub mod push;
pub mod restage;
pub mod routes;
pub mod scale;
pub mod security_groups;
pub mod set_env;
pub mod target;

use crate::error::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cf",
    version,
    about = "A command line tool to interact with the platform"
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
    Push(push::Args),
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
    Restart(AppName),
    /// Stage the app's latest package into a droplet and restart the app
    #[command(alias = "rg")]
    Restage(AppName),
    /// Delete an app
    #[command(alias = "d")]
    Delete(delete::Args),
    /// Tail or show recent logs for an app
    Logs(logs::Args),
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
    Routes,
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
    /// Create a space
    CreateSpace(create_space::Args),
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
    /// Run the whole platform on this machine
    #[command(subcommand)]
    Dev(dev::DevCommand),
}

pub async fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Api(a) => api::run(a).await,
        Command::Login(a) => login::run(a).await,
        Command::Logout => logout::run().await,
        Command::Target(a) => target::run(a).await,
        Command::Push(a) => push::run(a).await,
        Command::Apps => apps::run().await,
        Command::App(a) => app::run(&a.name).await,
        Command::Scale(a) => scale::run(a).await,
        Command::Start(a) => lifecycle::start(&a.name).await,
        Command::Stop(a) => lifecycle::stop(&a.name).await,
        Command::Restart(a) => lifecycle::restart(&a.name).await,
        Command::Restage(a) => restage::run(&a.name).await,
        Command::Delete(a) => delete::run(a).await,
        Command::Logs(a) => logs::run(a).await,
        Command::Env(a) => env::run(&a.name).await,
        Command::SetEnv(a) => set_env::set(a).await,
        Command::UnsetEnv(a) => set_env::unset(a).await,
        Command::Routes => routes::run().await,
        Command::MapRoute(a) => map_route::map(a).await,
        Command::UnmapRoute(a) => map_route::unmap(a).await,
        Command::Events(a) => events::run(&a.name).await,
        Command::Buildpacks => buildpacks::list().await,
        Command::CreateBuildpack(a) => buildpacks::create(a).await,
        Command::DeleteBuildpack(a) => buildpacks::delete(a).await,
        Command::CreateSpace(a) => create_space::run(a).await,
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
        Command::Dev(d) => dev::run(d).await,
    }
}
