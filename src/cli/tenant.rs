//! `caas tenant add|list` (the tenant registry); the lifecycle commands are in
//! `lifecycle` and `offboard`.

use anyhow::Result;
use clap::Subcommand;

use super::args::TierArg;
use super::Outcome;
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;
use caas_core::fleet::registry;
use caas_core::tenancy::Tier;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register a tenant in saas_clients (its targets are created by `schema apply`).
    Add {
        /// Tenant id: 2-40 of a-z, 0-9, `_`, `-`, starting with a letter.
        id: String,
        #[arg(long)]
        tier: TierArg,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// Contact email.
        #[arg(long)]
        email: Option<String>,
        /// Where the tenant's data must live (a registry `region`; on a sharded cluster
        /// [sharding.zones] maps it to a zone). Change it later with `tenant move --region`.
        #[arg(long)]
        region: Option<String>,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// List registered tenants and where their data lives.
    List {
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Move a tenant to another tier online: copy, catch up, fence, verify, flip.
    Move(super::lifecycle::MoveArgs),
    /// Moves in progress, with their phase and lag.
    Moves {
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Make a tenant read-only (the server refuses its writes) and mark it suspended.
    Suspend {
        id: String,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Lift a suspension.
    Resume {
        id: String,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Write every document of a tenant as Extended JSON lines, with a manifest.
    Export(super::offboard::ExportArgs),
    /// Offboard a tenant: export (or --no-export), delete its data, mark it churned.
    Remove(super::offboard::RemoveArgs),
    /// Restore an export into any tier, every document checked by the current specs.
    Import(super::offboard::ImportArgs),
}

pub async fn run(
    config: &Config,
    connect: &ConnectOpts,
    guard: &super::guard::GuardArgs,
    cmd: TenantCommand,
) -> Result<Outcome> {
    let cmd = match cmd {
        TenantCommand::Move(args) => {
            return super::lifecycle::run_move(config, connect, args).await
        }
        TenantCommand::Moves { json } => {
            return super::lifecycle::run_moves(config, connect, json).await
        }
        TenantCommand::Suspend { id, json } => {
            return super::lifecycle::run_suspend(config, connect, &id, true, json).await
        }
        TenantCommand::Resume { id, json } => {
            return super::lifecycle::run_suspend(config, connect, &id, false, json).await
        }
        TenantCommand::Export(args) => {
            return super::offboard::run_export(config, connect, args).await
        }
        TenantCommand::Remove(args) => {
            return super::offboard::run_remove(config, connect, guard, args).await
        }
        TenantCommand::Import(args) => {
            return super::offboard::run_import(config, connect, args).await
        }
        other => other,
    };
    // Check the id before connecting: bad input never reaches the server.
    if let TenantCommand::Add {
        id, tier, region, ..
    } = &cmd
    {
        caas_core::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
        registry::check_placement(config, id, Tier::from(*tier)).map_err(anyhow::Error::msg)?;
        if let Some(r) = region {
            caas_core::tenancy::check_region(r).map_err(anyhow::Error::msg)?;
        }
    }
    let conn = connect.connect(config).await?;
    let db = conn.client.database(&config.databases.platform);
    match cmd {
        TenantCommand::Add {
            id,
            tier,
            name,
            email,
            region,
            json,
        } => {
            // With broken specs `tenant add` still works; `schema plan`/`apply` check the
            // names again (they need clean specs anyway).
            let loaded = caas_core::project::load(config).ok();
            let specs: Option<Vec<&caas_core::spec::CollectionSpec>> =
                loaded.as_ref().map(|l| l.iter().map(|s| &s.spec).collect());
            let t = registry::add(
                &db,
                config,
                specs.as_deref(),
                &id,
                tier.into(),
                registry::About {
                    name: name.as_deref(),
                    email: email.as_deref(),
                    region: region.as_deref(),
                },
            )
            .await?;
            if json {
                super::print_json("tenant add", serde_json::json!({ "tenant": t }))?;
            } else {
                println!(
                    "registered tenant {} ({}) -> target {} in {}{}",
                    t.id,
                    t.tier,
                    t.target,
                    t.database,
                    t.region
                        .as_deref()
                        .map(|r| format!(", region {r}"))
                        .unwrap_or_default()
                );
                println!(
                    "run `caas schema apply --tenant {}` to create its collections",
                    t.id
                );
            }
        }
        TenantCommand::Move(_)
        | TenantCommand::Moves { .. }
        | TenantCommand::Suspend { .. }
        | TenantCommand::Resume { .. }
        | TenantCommand::Export(_)
        | TenantCommand::Remove(_)
        | TenantCommand::Import(_) => unreachable!("handled above"),
        TenantCommand::List { json } => {
            let tenants = registry::list(&db, config).await?;
            if json {
                super::print_json("tenant list", serde_json::json!({ "tenants": tenants }))?;
            } else {
                let mut table = crate::render::table(vec![
                    "tenant".into(),
                    "name".into(),
                    "tier".into(),
                    "status".into(),
                    "target".into(),
                    "database".into(),
                    "region".into(),
                ]);
                for t in &tenants {
                    table.add_row(vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.tier.to_string(),
                        t.status.clone(),
                        t.target.clone(),
                        t.database.clone(),
                        t.region.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                println!("{}", crate::render::fitted(table));
                println!("{} tenant(s)", tenants.len());
            }
        }
    }
    Ok(Outcome::Clean)
}
