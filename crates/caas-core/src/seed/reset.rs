//! `caas seed --reset`: remove what earlier seed runs wrote, and every demo tenant.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::{Client, ClientSession};

use super::fixtures::{DemoTenant, SeedFile};
use super::{batches, taken_over, Batch, Row, SeedOptions, BATCH, RUNS};
use crate::config::Config;
use crate::fleet::registry;
use crate::migrate::ledger::EntryStatus;
use crate::migrate::lock::Fence;
use crate::migrate::Migration;
use crate::spec::CollectionSpec;
use crate::tenancy::Target;

/// The applied migrations of each target: target -> migrations.
async fn applied_migrations<'m>(
    client: &Client,
    config: &Config,
    targets: &[Target],
    migrations: &'m [Migration],
) -> Result<BTreeMap<String, Vec<&'m Migration>>> {
    let ledgers = crate::migrate::status::read_ledgers(client, config, targets).await?;
    Ok(ledgers
        .into_iter()
        .map(|(target, entries)| {
            let applied = migrations
                .iter()
                .filter(|m| {
                    entries.get(&m.version).is_some_and(|e| {
                        matches!(e.status, EntryStatus::Applied | EntryStatus::Reverting)
                    })
                })
                .collect();
            (target, applied)
        })
        .collect())
}

/// Remove what earlier runs seeded: their documents by `_id` (except those a migration
/// has since taken over: [`taken_over`]), then every demo tenant (registry entries, Pro
/// collection sets, Enterprise databases), including one a killed seed registered before
/// it recorded its run. Runs under the seed lease; idempotent, so a killed reset is
/// finished by the next one. Returns deleted (and kept) counts.
pub async fn reset(
    client: &Client,
    config: &Config,
    specs: &[&CollectionSpec],
    file: &SeedFile,
    migrations: &[Migration],
    fence: &Fence,
    session: &mut ClientSession,
) -> Result<Vec<Row>> {
    let platform = client.database(&config.databases.platform);
    let runs: Vec<Document> = platform
        .collection::<Document>(RUNS)
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    let all_batches = seeded_batches(config, specs, file, &runs)?;
    let mut targets: Vec<Target> = all_batches.iter().map(|b| b.target.clone()).collect();
    targets.sort();
    targets.dedup();
    let applied = applied_migrations(client, config, &targets, migrations).await?;
    let rows = delete_seeded(client, all_batches, &applied, fence).await?;
    remove_demo_tenants(client, config, specs, fence, session).await?;
    let runs_coll = platform.collection::<Document>(RUNS);
    fence
        .txn(session, async |s| {
            runs_coll.delete_many(doc! {}).session(s).await?;
            Ok(Some(()))
        })
        .await?;
    Ok(rows)
}

/// The batches each recorded run inserted, generated again from its seed and scale.
fn seeded_batches(
    config: &Config,
    specs: &[&CollectionSpec],
    file: &SeedFile,
    runs: &[Document],
) -> Result<Vec<Batch>> {
    let mut all_batches = Vec::new();
    for run in runs {
        let ids: Vec<String> = run
            .get_array("tenants")
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let opts = SeedOptions {
            seed_value: run.get_i64("seed_value").unwrap_or(0) as u64,
            scale: run.get_i64("scale").unwrap_or(1) as u32,
            tenants: vec![],
            tiers: vec![],
            concurrency: 1,
        };
        let tenants: Vec<&DemoTenant> = file
            .tenants
            .iter()
            .filter(|t| ids.contains(&t.id))
            .collect();
        all_batches.extend(batches(
            config,
            specs,
            file,
            &tenants,
            &opts,
            &BTreeMap::new(),
            false,
        )?);
    }
    Ok(all_batches)
}

/// Delete seeded documents by `_id`, keeping those a migration has taken over since.
async fn delete_seeded(
    client: &Client,
    all_batches: Vec<Batch>,
    applied: &BTreeMap<String, Vec<&Migration>>,
    fence: &Fence,
) -> Result<Vec<Row>> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let none = Vec::new();
    for b in all_batches {
        fence.ensure_held().await?;
        let ns = format!("{}.{}", b.placement.database, b.placement.collection);
        let coll = client
            .database(&b.placement.database)
            .collection::<Document>(&b.placement.collection);
        let keep = taken_over(
            &b.docs,
            &b.logical,
            applied.get(&b.target.to_string()).unwrap_or(&none),
        );
        let row = rows.entry(ns.clone()).or_insert_with(|| Row {
            target: b.target.to_string(),
            namespace: ns.clone(),
            ..Default::default()
        });
        for chunk in b.docs.chunks(BATCH) {
            let ids: Vec<Bson> = chunk
                .iter()
                .filter_map(|d| d.get("_id").cloned())
                .filter(|id| !keep.contains_key(&id.to_string()))
                .collect();
            row.inserted += coll
                .delete_many(doc! { "_id": { "$in": ids } })
                .await
                .with_context(|| format!("deleting seeded documents from {ns}"))?
                .deleted_count;
        }
        if !keep.is_empty() {
            let mut by: Vec<&String> = keep.values().collect();
            by.sort();
            by.dedup();
            row.unchanged += keep.len() as u64;
            row.errors.push(format!(
                "kept {} seeded document(s) in {ns}: migration {} (applied on {}) wrote them too, and its ledger entry says so",
                keep.len(),
                by.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                b.target
            ));
        }
    }
    Ok(rows.into_values().collect())
}

/// Every demo tenant's own target, then its registry entry.
async fn remove_demo_tenants(
    client: &Client,
    config: &Config,
    specs: &[&CollectionSpec],
    fence: &Fence,
    session: &mut ClientSession,
) -> Result<()> {
    let platform = client.database(&config.databases.platform);
    let registry = platform.collection::<Document>(registry::REGISTRY);
    let demo: Vec<Document> = registry
        .find(doc! { "demo": true })
        .await?
        .try_collect()
        .await?;
    for entry in &demo {
        fence.ensure_held().await?;
        let Ok(id) = entry.get_str("tenant_id") else {
            continue;
        };
        let tier: crate::tenancy::Tier = entry
            .get_str("tier")
            .unwrap_or("free")
            .parse()
            .unwrap_or(crate::tenancy::Tier::Free);
        drop_demo_target(client, config, specs, id, tier).await?;
        fence
            .txn(session, async |s| {
                registry
                    .delete_one(doc! { "tenant_id": id, "demo": true })
                    .session(s)
                    .await?;
                Ok(Some(()))
            })
            .await?;
    }
    Ok(())
}

/// Drop a demo tenant's own set or database (shared-tier tenants have none).
async fn drop_demo_target(
    client: &Client,
    config: &Config,
    specs: &[&CollectionSpec],
    id: &str,
    tier: crate::tenancy::Tier,
) -> Result<()> {
    match Target::for_tenant(id, tier, config.tiers.layout(tier)).kind {
        crate::tenancy::TargetKind::Database { .. } => {
            client
                .database(&config.databases.tenant_database(id))
                .drop()
                .await?
        }
        crate::tenancy::TargetKind::CollectionSet { .. } => {
            let shared = client.database(&config.databases.shared);
            for spec in specs
                .iter()
                .filter(|s| s.domain == crate::spec::Domain::Saas)
            {
                let name = config.databases.set_collection(id, &spec.collection);
                shared.collection::<Document>(&name).drop().await?;
            }
            shared
                .collection::<Document>(crate::migrate::ledger::LEDGER)
                .delete_many(doc! { "target": format!("{tier}:{id}") })
                .await?;
        }
        _ => {}
    }
    Ok(())
}
