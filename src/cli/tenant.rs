//! `caas tenant add|list`: the tenant registry.

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
    },
    /// List registered tenants and where their data lives.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Whether the fleet with this tenant added would give two targets one collection of the
/// shared database. Checked when the specs load cleanly; with broken specs `tenant add`
/// still works, and `schema plan`/`apply` check again (they need clean specs anyway).
async fn check_names_with(
    config: &Config,
    db: &mongodb::Database,
    id: &str,
    tier: Tier,
) -> Result<()> {
    let Ok(loaded) = caas_core::project::load(config) else {
        return Ok(());
    };
    let specs: Vec<&caas_core::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let mut tenants = registry::list(db, config).await?;
    tenants.push(registry::Tenant {
        id: id.to_owned(),
        name: id.to_owned(),
        tier,
        status: "active".into(),
        target: String::new(),
        database: String::new(),
    });
    let fleet = caas_core::fleet::Fleet {
        tenants,
        targets: vec![],
        retired: vec![],
    };
    caas_core::fleet::check_shared_names(config, &fleet, &specs)
        .map_err(|why| anyhow::anyhow!("tenant `{id}` cannot be added: {why}"))
}

pub async fn run(config: &Config, connect: &ConnectOpts, cmd: TenantCommand) -> Result<Outcome> {
    // Check the id before connecting: bad input never reaches the server.
    if let TenantCommand::Add { id, tier, .. } = &cmd {
        caas_core::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
        registry::check_placement(config, id, Tier::from(*tier)).map_err(anyhow::Error::msg)?;
    }
    let conn = connect.connect(config).await?;
    let db = conn.client.database(&config.databases.platform);
    if let TenantCommand::Add { id, tier, .. } = &cmd {
        check_names_with(config, &db, id, Tier::from(*tier)).await?;
    }
    match cmd {
        TenantCommand::Add {
            id,
            tier,
            name,
            email,
        } => {
            let t = registry::add(
                &db,
                config,
                &id,
                tier.into(),
                name.as_deref(),
                email.as_deref(),
            )
            .await?;
            println!(
                "registered tenant {} ({}) -> target {} in {}",
                t.id, t.tier, t.target, t.database
            );
            println!(
                "run `caas schema apply --tenant {}` to create its collections",
                t.id
            );
        }
        TenantCommand::List { json } => {
            let tenants = registry::list(&db, config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                let mut table = crate::render::table(vec![
                    "tenant".into(),
                    "name".into(),
                    "tier".into(),
                    "status".into(),
                    "target".into(),
                    "database".into(),
                ]);
                for t in &tenants {
                    table.add_row(vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.tier.to_string(),
                        t.status.clone(),
                        t.target.clone(),
                        t.database.clone(),
                    ]);
                }
                println!("{table}");
                println!("{} tenant(s)", tenants.len());
            }
        }
    }
    Ok(Outcome::Clean)
}
