//! `caas roles plan|apply|diff|user`: MongoDB custom roles per owning service.

use anyhow::{bail, Result};
use clap::Subcommand;

use super::style::{self, Tone};
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;
use caas_core::roles::{self, RoleChange};

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Show the role changes `apply` would make.
    Plan {
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Create and update one role per service over every target (roles in `admin`).
    Apply {
        /// Drop roles with the prefix that no service in the specs needs.
        #[arg(long)]
        prune: bool,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Compare the server's roles with the specs; with --exit-code, exit 1 on drift.
    Diff {
        #[arg(long)]
        exit_code: bool,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Create or update a database user holding a service's role (SCRAM-SHA-256).
    User {
        /// The service, as named by `owner`/`access` in the specs.
        service: String,
        /// The user's name. Default: the service name.
        #[arg(long)]
        username: Option<String>,
        /// Environment variable that holds the password (never passed as an argument).
        #[arg(long)]
        password_env: String,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    config: &Config,
    connect: &ConnectOpts,
    guard: &super::guard::GuardArgs,
    cmd: RolesCommand,
) -> Result<Outcome> {
    let loaded = caas_core::project::load(config)?;
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    if let RolesCommand::User { password_env, .. } = &cmd {
        match std::env::var(password_env) {
            Ok(v) if !v.is_empty() => {}
            _ => bail!("environment variable {password_env} is not set or empty; put the password there (it is never read from arguments)"),
        }
    }
    let conn = connect.connect(config).await?;
    let roles::FleetRoles {
        desired,
        changes,
        live,
        targets,
    } = roles::plan_fleet(&conn.client, config, &specs).await?;
    let command_name = match &cmd {
        RolesCommand::Plan { .. } => "roles plan",
        RolesCommand::Diff { .. } => "roles diff",
        RolesCommand::Apply { .. } => "roles apply",
        RolesCommand::User { .. } => "roles user",
    };
    match cmd {
        RolesCommand::Plan { json }
        | RolesCommand::Diff {
            json,
            exit_code: false,
        } if json => {
            super::print_json(
                command_name,
                serde_json::json!({ "in_sync": changes.is_empty(), "changes": changes, "roles": desired.len() }),
            )?;
            Ok(Outcome::Clean)
        }
        RolesCommand::Diff {
            json: true,
            exit_code: true,
        } => {
            super::print_json(
                command_name,
                serde_json::json!({ "in_sync": changes.is_empty(), "changes": changes, "roles": desired.len() }),
            )?;
            Ok(if changes.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Found
            })
        }
        RolesCommand::Plan { .. } | RolesCommand::Diff { .. } => {
            let exit_code = matches!(
                cmd,
                RolesCommand::Diff {
                    exit_code: true,
                    ..
                }
            );
            print_changes(&changes);
            if changes.is_empty() {
                println!("in sync: {} role(s) match the specs", desired.len());
            } else {
                println!(
                    "drift: {} of {} role(s) differ",
                    changes
                        .iter()
                        .filter(|c| !matches!(c, RoleChange::Undeclared { .. }))
                        .count(),
                    desired.len()
                );
            }
            Ok(if exit_code && !changes.is_empty() {
                Outcome::Found
            } else {
                Outcome::Clean
            })
        }
        RolesCommand::Apply { prune, json } => {
            let dropped: Vec<String> = changes
                .iter()
                .filter(|c| prune && matches!(c, RoleChange::Undeclared { .. }))
                .map(|c| format!("{}\t{}", c.role(), c.summary()))
                .collect();
            if !dropped.is_empty() {
                let what = format!("roles apply --prune will drop {} role(s)", dropped.len());
                guard.confirm(config, &what, &dropped)?;
            }
            let done = roles::apply(&conn.client, &desired, &changes, prune).await?;
            let held: Vec<&RoleChange> = changes
                .iter()
                .filter(|c| matches!(c, RoleChange::Undeclared { .. }) && !prune)
                .collect();
            if json {
                super::print_json(
                    command_name,
                    serde_json::json!({ "applied": done, "roles": desired.len(), "targets": targets, "changes": changes, "held_back": held }),
                )?;
            } else {
                print_changes(&changes);
                println!(
                    "{done} role change(s) applied; {} role(s) for {targets} target(s)",
                    desired.len()
                );
            }
            Ok(if held.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Found
            })
        }
        RolesCommand::User {
            service,
            username,
            password_env,
            json,
        } => {
            let role = roles::role_name(config, &service);
            let username = username.unwrap_or_else(|| service.clone());
            roles::check_username(&username)?;
            if !desired.iter().any(|r| r.name == role) {
                let known: Vec<&str> = desired
                    .iter()
                    .map(|r| r.name.trim_start_matches(&config.roles.prefix))
                    .collect();
                bail!(
                    "no spec names service `{service}` as owner or in access; services: {}",
                    known.join(", ")
                );
            }
            if !live.iter().any(|r| r.name == role) {
                bail!("role {role} does not exist yet; run `caas roles apply` first");
            }
            let password = std::env::var(&password_env).unwrap_or_default();
            let what = roles::upsert_user(&conn.client, &role, &username, &password).await?;
            if json {
                super::print_json(
                    command_name,
                    serde_json::json!({ "user": username, "role": role, "action": what, "password_env": password_env }),
                )?;
            } else {
                println!("{what} user {username} with role {role} (password from ${password_env})");
            }
            Ok(Outcome::Clean)
        }
    }
}

/// Role changes as a table: role, change; drops in red, grants and new roles in yellow.
fn print_changes(changes: &[RoleChange]) {
    if changes.is_empty() {
        return;
    }
    let mut table = crate::render::table(vec!["role".into(), "change".into()]);
    for c in changes {
        let tone = match c {
            RoleChange::Undeclared { .. } => Tone::Bad,
            _ => Tone::Warn,
        };
        table.add_row(vec![
            style::cell(c.role(), Tone::Plain),
            style::cell(c.summary(), tone),
        ]);
    }
    println!("{}", crate::render::fitted(table));
}
