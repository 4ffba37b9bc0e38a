//! `cf help [-a] [COMMAND]`: the commands grouped as the cf CLI groups them,
//! or one command's help.

use crate::error::{CliError, Result};
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// All available CLI commands
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Show help for this command
    pub command: Option<String>,
}

/// The cf CLI v8 `help -a` groups, in its order; only commands that exist
/// here are printed (a unit test keeps every command in one group).
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "GETTING STARTED",
        &[
            "help", "version", "login", "logout", "passwd", "target", "api",
        ],
    ),
    (
        "APPS",
        &[
            "apps",
            "app",
            "push",
            "scale",
            "delete",
            "rename",
            "cancel-deployment",
            "continue-deployment",
            "start",
            "stop",
            "restart",
            "restage",
            "run-task",
            "tasks",
            "terminate-task",
            "revisions",
            "rollback",
            "events",
            "logs",
            "env",
            "set-env",
            "unset-env",
            "get-health-check",
            "set-health-check",
        ],
    ),
    (
        "SERVICES",
        &[
            "marketplace",
            "services",
            "service",
            "create-service",
            "update-service",
            "delete-service",
            "rename-service",
            "create-service-key",
            "service-keys",
            "service-key",
            "delete-service-key",
            "bind-service",
            "unbind-service",
            "create-user-provided-service",
            "update-user-provided-service",
        ],
    ),
    (
        "ROUTES",
        &[
            "routes",
            "route",
            "create-route",
            "check-route",
            "map-route",
            "unmap-route",
            "delete-route",
            "delete-orphaned-routes",
        ],
    ),
    (
        "DOMAINS",
        &[
            "domains",
            "create-private-domain",
            "create-shared-domain",
            "share-private-domain",
        ],
    ),
    ("ORGS", &["orgs", "org", "create-org", "delete-org"]),
    (
        "SPACES",
        &["spaces", "space", "create-space", "delete-space"],
    ),
    (
        "BUILDPACKS",
        &["buildpacks", "create-buildpack", "delete-buildpack"],
    ),
    (
        "USER ADMIN",
        &[
            "create-user",
            "delete-user",
            "org-users",
            "set-org-role",
            "unset-org-role",
            "space-users",
            "set-space-role",
            "unset-space-role",
        ],
    ),
    (
        "ORG ADMIN",
        &["org-quotas", "create-org-quota", "set-org-quota"],
    ),
    ("SPACE ADMIN", &["create-space-quota", "set-space-quota"]),
    (
        "SERVICE ADMIN",
        &[
            "service-brokers",
            "create-service-broker",
            "update-service-broker",
            "delete-service-broker",
            "rename-service-broker",
            "service-access",
            "enable-service-access",
            "disable-service-access",
        ],
    ),
    (
        "SECURITY GROUP",
        &[
            "security-groups",
            "security-group",
            "create-security-group",
            "update-security-group",
            "delete-security-group",
            "bind-security-group",
            "unbind-security-group",
            "bind-staging-security-group",
            "staging-security-groups",
            "unbind-staging-security-group",
            "bind-running-security-group",
            "running-security-groups",
            "unbind-running-security-group",
        ],
    ),
    ("ADVANCED", &["curl"]),
    ("THIS PLATFORM", &["dev"]),
];

pub fn run(args: Args) -> Result<()> {
    let mut cli = super::Cli::command();
    cli.build();
    if let Some(name) = &args.command {
        let sub = cli.find_subcommand_mut(name).ok_or_else(|| {
            CliError::Usage(format!(
                "'{name}' is not a registered command. See 'cf help -a'"
            ))
        })?;
        print!("{}", sub.render_help());
        return Ok(());
    }
    print!("{}", grouped(&cli, args.all));
    Ok(())
}

/// The grouped listing; without `all`, the first few groups only (the
/// cf CLI's short help), with a pointer to `cf help -a`.
pub fn grouped(cli: &clap::Command, all: bool) -> String {
    let mut out = String::from(
        "NAME:\n   cf - A command line tool to interact with the platform\n\nUSAGE:\n   cf [global options] command [arguments...] [command options]\n\n",
    );
    out.push_str(&format!(
        "VERSION:\n   {}\n\n",
        cli.get_version().unwrap_or("unknown")
    ));
    let groups = if all { GROUPS } else { &GROUPS[..3] };
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        + 3;
    for (title, names) in groups {
        out.push_str(&format!("{title}:\n"));
        for name in *names {
            if let Some(sub) = cli.find_subcommand(name) {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                out.push_str(format!("   {name:<width$}{about}").trim_end());
                out.push('\n');
            }
        }
        out.push('\n');
    }
    if !all {
        out.push_str("Use 'cf help -a' to see all commands.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Cli;

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let n = GROUPS
                .iter()
                .filter(|(_, names)| names.contains(&name))
                .count();
            assert_eq!(n, 1, "command {name} is in {n} help groups");
        }
    }

    #[test]
    fn help_all_lists_groups_in_cf_order() {
        let mut cli = Cli::command();
        cli.build();
        let text = grouped(&cli, true);
        let apps = text.find("APPS:").expect("APPS group");
        let routes = text.find("ROUTES:").expect("ROUTES group");
        assert!(apps < routes);
        assert!(text.contains("\n   push "), "{text}");
        let short = grouped(&cli, false);
        assert!(short.contains("Use 'cf help -a' to see all commands."));
        assert!(!short.contains("SECURITY GROUP:"));
    }
}
