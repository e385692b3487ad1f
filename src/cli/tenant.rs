//! `caas tenant add|list`: the tenant registry.

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::connect::ConnectOpts;
use crate::tenancy::registry;
use crate::tenancy::Tier;
use crate::Outcome;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register a tenant in saas_clients (its targets are created by `schema apply`).
    Add {
        /// Tenant id: 2-40 of a-z, 0-9, `_`, `-`, starting with a letter.
        id: String,
        #[arg(long)]
        tier: Tier,
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
    let Ok(loaded) = super::schema::load_clean(config) else {
        return Ok(());
    };
    let specs: Vec<&crate::spec::CollectionSpec> = loaded.iter().map(|l| &l.spec).collect();
    let mut tenants = registry::list(db, config).await?;
    tenants.push(registry::Tenant {
        id: id.to_owned(),
        name: id.to_owned(),
        tier,
        status: "active".into(),
        target: String::new(),
        database: String::new(),
    });
    let fleet = crate::fleet::Fleet {
        tenants,
        targets: vec![],
        retired: vec![],
    };
    crate::fleet::check_shared_names(config, &fleet, &specs)
        .map_err(|why| anyhow::anyhow!("tenant `{id}` cannot be added: {why}"))
}

pub async fn run(config: &Config, connect: &ConnectOpts, cmd: TenantCommand) -> Result<Outcome> {
    // Check the id before connecting: bad input never reaches the server.
    if let TenantCommand::Add { id, tier, .. } = &cmd {
        crate::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
        registry::check_placement(config, id, *tier).map_err(anyhow::Error::msg)?;
    }
    let conn = connect.connect(config).await?;
    let db = conn.client.database(&config.databases.platform);
    if let TenantCommand::Add { id, tier, .. } = &cmd {
        check_names_with(config, &db, id, *tier).await?;
    }
    match cmd {
        TenantCommand::Add {
            id,
            tier,
            name,
            email,
        } => {
            let t =
                registry::add(&db, config, &id, tier, name.as_deref(), email.as_deref()).await?;
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
