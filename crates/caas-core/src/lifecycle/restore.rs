//! `caas tenant import`: restore an export into any tier, under the tenant's lease.
//!
//! 1. Every file is read once before anything is written: its lines must be documents,
//!    its count and sha256 those of the manifest, its collection one the current specs
//!    place in the chosen tier, and every `tenant_id` in it the exported tenant's (an
//!    export cannot reach another tenant's documents).
//! 2. The registry entry is written as `provisioning` (a churned entry of the same id is
//!    taken over), the target created from the current specs, and the documents inserted;
//!    the server checks each against the current validators. Any reject, without
//!    `allow_partial`, removes everything written and restores the registry: nothing is
//!    half-written.
//! 3. The ledger entries of the export go to the new target (a shared target must already
//!    agree with them), each collection's content digest is compared with the export's,
//!    and the entry becomes `active`.
//!
//! A rerun after `kill -9` finds its own `provisioning` entry and continues: documents
//! already inserted are duplicates by `_id`, and the digest decides.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use bson::{doc, Bson, DateTime, Document};
use mongodb::Collection;
use sha2::{Digest, Sha256};

use super::export::{self, ExportFile, Manifest, Progress};
use super::provision::{self, Plan};
use super::route::{self, Namespace, Route};
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry;
use crate::fleet::sharding;
use crate::migrate::lock;
use crate::migrate::status::{applies_to, ledger_db};
use crate::migrate::Migration;
use crate::spec::CollectionSpec;
use crate::tenancy::{Target, TargetKind, Tier};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Import under another tenant id.
    pub as_id: Option<String>,
    /// Import into another tier than the exported one.
    pub tier: Option<Tier>,
    /// Import into another region than the exported one (on a cluster, the data is
    /// placed in the region's zone before any document is written).
    pub region: Option<String>,
    /// Keep the accepted documents when some are rejected.
    pub allow_partial: bool,
}

/// One document the server (or the checks) refused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reject {
    pub collection: String,
    pub file: String,
    pub line: u64,
    pub id: Option<String>,
    pub reason: String,
}

/// One collection restored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub collection: String,
    pub namespace: String,
    pub count: u64,
    pub inserted: u64,
    pub rejected: u64,
    pub digest: String,
    /// The live digest equals the export's (with tenant ids rewritten for `--as`).
    pub digest_equal: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    pub tenant: String,
    pub tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub target: String,
    pub from_tenant: String,
    pub from_tier: Tier,
    /// False when rejects undid the import (nothing was kept).
    pub written: bool,
    pub collections: Vec<Restored>,
    /// At most 100, the first ones; `rejected` per collection counts them all.
    pub rejects: Vec<Reject>,
    pub ledger_versions: Vec<u32>,
}

/// Restore the export in `dir`.
#[allow(clippy::too_many_arguments)]
pub async fn import(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    migrations: &[Migration],
    dir: &Path,
    opts: &ImportOptions,
    lock_wait: std::time::Duration,
    progress: Progress<'_>,
) -> Result<Imported> {
    let manifest = export::read_manifest(dir)?;
    let plan = plan(config, specs, manifest, opts)?;
    check_files(dir, &plan, progress)?;
    let platform = conn.client.database(&config.databases.platform);
    let session = conn.client.start_session().await?;
    let lease = lock::acquire(
        &platform,
        &format!("tenant:{}", plan.id),
        &crate::migrate::runner::new_owner(),
        lock_wait,
        lock::LEASE,
        session.id().clone(),
    )
    .await
    .map_err(|e| anyhow!("tenant `{}`: another caas run holds it: {e:#}", plan.id))?;
    let result = import_held(conn, config, migrations, dir, &plan, opts, progress).await;
    let released = lease.release().await;
    let out = result?;
    released?;
    Ok(out)
}

/// Where each file goes; refusals that need no server.
fn plan<'a>(
    config: &Config,
    specs: &'a [&'a CollectionSpec],
    manifest: Manifest,
    opts: &ImportOptions,
) -> Result<Plan<'a>> {
    let id = opts
        .as_id
        .clone()
        .unwrap_or_else(|| manifest.tenant.clone());
    let tier = opts.tier.unwrap_or(manifest.tier);
    crate::tenancy::check_tenant_id(&id).map_err(anyhow::Error::msg)?;
    registry::check_placement(config, &id, tier).map_err(anyhow::Error::msg)?;
    let region = opts.region.clone().or_else(|| manifest.region.clone());
    if let Some(r) = &region {
        // The manifest is input like any other: its region is checked as --region is.
        crate::tenancy::check_region(r)
            .map_err(|e| anyhow!("{} (`region` of the export's {})", e, export::MANIFEST))?;
    }
    let (target, homes) = export::homes(config, specs, &id, tier);
    let mut files = Vec::new();
    for f in &manifest.files {
        match homes.iter().find(|(s, _)| s.collection == f.collection) {
            Some((_, ns)) => files.push((f.clone(), ns.clone())),
            None if opts.allow_partial => {}
            None => bail!(
                "the export holds `{}` ({} document(s)), which no current spec places in tier {tier}; add its spec, or pass --allow-partial to leave it out",
                f.collection,
                f.count
            ),
        }
    }
    Ok(Plan {
        manifest,
        id,
        tier,
        region,
        target,
        files,
        specs,
    })
}

/// The document as it is written: `tenant_id` rewritten for `--as`, added for a shared
/// target; or why it may not be written at all.
fn rewrite(mut d: Document, from: &str, to: &str, shared: bool) -> Result<Document, String> {
    match d.get("tenant_id") {
        Some(Bson::String(t)) if t == from && from != to => {
            d.insert("tenant_id", to);
        }
        Some(Bson::String(t)) if t == from => {}
        Some(other) => {
            return Err(format!(
                "its tenant_id is {other}, not the exported tenant `{from}`: an export carries one tenant's documents only"
            ))
        }
        None if shared => {
            d.insert("tenant_id", to);
        }
        None => {}
    }
    Ok(d)
}

fn id_label(d: &Document) -> Option<String> {
    d.get("_id").map(|v| v.to_string())
}

/// Read every file once: documents, counts and sha256, tenant ids.
fn check_files(dir: &Path, plan: &Plan<'_>, progress: Progress<'_>) -> Result<()> {
    for (f, ns) in &plan.files {
        let mut n = 0;
        export::read_lines(dir, f, |line| {
            rewrite(line.document, &plan.manifest.tenant, &plan.id, ns.shared)
                .map_err(|why| anyhow!("{}:{}: {why}", dir.join(&f.file).display(), line.number))?;
            n += 1;
            if n % 1000 == 0 {
                progress(&f.collection, n, f.count * 2);
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn import_held(
    conn: &Connection,
    config: &Config,
    migrations: &[Migration],
    dir: &Path,
    plan: &Plan<'_>,
    opts: &ImportOptions,
    progress: Progress<'_>,
) -> Result<Imported> {
    // On a cluster: refused here, before anything is written, if the region's zone
    // cannot take the tenant; placed once its collections exist, before any document.
    let placed = registry::Tenant {
        id: plan.id.clone(),
        name: plan.manifest.name.clone(),
        tier: plan.tier,
        status: "provisioning".into(),
        target: plan.target.to_string(),
        database: String::new(),
        region: plan.region.clone(),
    };
    let placing = sharding::plan_tenant(conn, config, plan.specs, &placed, true)
        .await?
        .is_some();
    let previous = provision::claim_registry(conn, config, plan).await?;
    let ledger = ledger_entries(conn, config, migrations, plan).await?;
    provision::create_target(conn, config, plan).await?;
    if placing {
        provision::place(conn, config, plan, &placed).await?;
    }
    let mut out = Imported {
        tenant: plan.id.clone(),
        tier: plan.tier,
        region: plan.region.clone(),
        target: plan.target.to_string(),
        from_tenant: plan.manifest.tenant.clone(),
        from_tier: plan.manifest.tier,
        written: true,
        collections: vec![],
        rejects: vec![],
        ledger_versions: ledger.iter().map(|e| e.version).collect(),
    };
    for (f, ns) in &plan.files {
        let r = insert_file(conn, dir, plan, f, ns, &mut out.rejects, progress).await?;
        out.collections.push(r);
    }
    let rejected: u64 = out.collections.iter().map(|c| c.rejected).sum();
    if rejected > 0 && !opts.allow_partial {
        undo(conn, config, plan, previous).await?;
        out.written = false;
        return Ok(out);
    }
    write_ledger(conn, config, plan, ledger).await?;
    let reg = conn
        .client
        .database(&config.databases.platform)
        .collection::<Document>(registry::REGISTRY);
    reg.update_one(
        doc! { "tenant_id": &plan.id, "status": "provisioning" },
        doc! { "$set": { "status": "active", "updated_at": DateTime::now() } },
    )
    .await?;
    super::follow::follow_roles(conn, config, plan.specs).await?;
    Ok(out)
}

/// Insert one file in batches; the server validates each document.
async fn insert_file(
    conn: &Connection,
    dir: &Path,
    plan: &Plan<'_>,
    f: &ExportFile,
    ns: &Namespace,
    rejects: &mut Vec<Reject>,
    progress: Progress<'_>,
) -> Result<Restored> {
    let coll: Collection<Document> = conn
        .client
        .database(&ns.database)
        .collection(&ns.collection);
    let mut out = Restored {
        collection: f.collection.clone(),
        namespace: ns.label(),
        count: f.count,
        inserted: 0,
        rejected: 0,
        digest: String::new(),
        digest_equal: false,
    };
    let (mut expected, mut seen) = (Sha256::new(), 0u64);
    let mut lines = export::Lines::open(dir, f)?;
    loop {
        // One batch in memory at a time.
        let (mut docs, mut numbers) = (Vec::with_capacity(500), Vec::with_capacity(500));
        while docs.len() < 500 {
            let Some(line) = lines.next_line()? else {
                break;
            };
            let d = rewrite(line.document, &plan.manifest.tenant, &plan.id, ns.shared)
                .map_err(anyhow::Error::msg)?;
            expected.update(bson::to_vec(&d)?);
            docs.push(d);
            numbers.push(line.number);
        }
        if docs.is_empty() {
            break;
        }
        seen += docs.len() as u64;
        insert_batch(&coll, f, docs, &numbers, &mut out, rejects).await?;
        progress(&f.collection, f.count + seen, f.count * 2);
    }
    lines.finish()?;
    let live = super::sync::digest(&conn.client, ns, &plan.id).await?;
    out.digest_equal = live.digest == hex::encode(expected.finalize()) && live.count == f.count;
    out.digest = live.digest;
    Ok(out)
}

async fn insert_batch(
    coll: &Collection<Document>,
    f: &ExportFile,
    docs: Vec<Document>,
    numbers: &[u64],
    out: &mut Restored,
    rejects: &mut Vec<Reject>,
) -> Result<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let n = docs.len() as u64;
    let ids: Vec<Option<String>> = docs.iter().map(id_label).collect();
    let errors = match coll.insert_many(docs).ordered(false).await {
        Ok(_) => vec![],
        Err(e) => match *e.kind {
            mongodb::error::ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                m.write_errors.unwrap_or_default()
            }
            _ => bail!(
                "inserting into {}: {}",
                coll.namespace(),
                crate::base::driver::describe(&e)
            ),
        },
    };
    let mut refused = 0;
    for w in errors {
        // A duplicate `_id` is a document an interrupted run already inserted.
        if w.code == 11000 && w.message.contains("_id_") {
            continue;
        }
        refused += 1;
        if rejects.len() < 100 {
            let detail = w.details.map(|d| format!(" ({d})")).unwrap_or_default();
            rejects.push(Reject {
                collection: f.collection.clone(),
                file: f.file.clone(),
                line: numbers.get(w.index).copied().unwrap_or(0),
                id: ids.get(w.index).cloned().flatten(),
                reason: format!("code {}: {}{detail}", w.code, w.message),
            });
        }
    }
    out.rejected += refused;
    out.inserted += n - refused;
    Ok(())
}

/// The ledger the new target gets from the export's (refused before anything is written
/// when a shared target disagrees with it).
async fn ledger_entries(
    conn: &Connection,
    config: &Config,
    migrations: &[Migration],
    plan: &Plan<'_>,
) -> Result<Vec<crate::migrate::ledger::Entry>> {
    let m = &plan.manifest;
    let from = Target::for_tenant(&m.tenant, m.tier, config.tiers.layout(m.tier));
    let r = Route {
        tenant: plan.id.clone(),
        from_tier: m.tier,
        to_tier: plan.tier,
        from: from.clone(),
        to: plan.target.clone(),
        pairs: vec![],
    };
    let label = plan.target.to_string();
    let mut dest = crate::migrate::ledger::read(
        &conn.client.database(&ledger_db(&plan.target, config)),
        std::slice::from_ref(&label),
    )
    .await?;
    let versions: Vec<u32> = migrations
        .iter()
        .filter(|mg| applies_to(mg, &plan.target, config) && applies_to(mg, &from, config))
        .map(|mg| mg.version)
        .collect();
    let source = m.ledger.iter().map(|e| (e.version, e.clone())).collect();
    let mut copies = route::ledger_for_destination(
        &r,
        &versions,
        &source,
        &dest.remove(&label).unwrap_or_default(),
    )
    .map_err(anyhow::Error::msg)?;
    for e in &mut copies {
        e.moved_from = Some(format!("export of {} ({})", m.tenant, m.target));
    }
    Ok(copies)
}

async fn write_ledger(
    conn: &Connection,
    config: &Config,
    plan: &Plan<'_>,
    entries: Vec<crate::migrate::ledger::Entry>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let db = conn.client.database(&ledger_db(&plan.target, config));
    let (lease, session) = crate::migrate::runner::lease_target(
        &conn.client,
        &db,
        &plan.target.to_string(),
        std::time::Duration::from_secs(5),
        lock::LEASE,
    )
    .await?;
    let result = async {
        let mut ses = session.lock().await;
        for e in entries {
            crate::migrate::ledger::record(lease.fence(), &mut ses, e)
                .await
                .map_err(|e| anyhow!("{e}"))?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = lease.release().await;
    result
}

/// Remove what an import that had rejects wrote, and put the registry back.
async fn undo(
    conn: &Connection,
    config: &Config,
    plan: &Plan<'_>,
    previous: Option<Document>,
) -> Result<()> {
    let client = &conn.client;
    match plan.target.kind {
        TargetKind::Database { .. } => {
            client
                .database(&config.databases.tenant_database(&plan.id))
                .drop()
                .await?
        }
        _ => {
            let (_, homes) = export::homes(config, plan.specs, &plan.id, plan.tier);
            for (_, ns) in homes {
                let c = client
                    .database(&ns.database)
                    .collection::<Document>(&ns.collection);
                if ns.shared {
                    c.delete_many(ns.filter(&plan.id)).await?;
                } else {
                    c.drop().await?;
                }
            }
        }
    }
    let reg = client
        .database(&config.databases.platform)
        .collection::<Document>(registry::REGISTRY);
    match previous {
        Some(old) => {
            reg.replace_one(doc! { "tenant_id": &plan.id }, old).await?;
        }
        None => {
            reg.delete_one(doc! { "tenant_id": &plan.id, "status": "provisioning" })
                .await?;
        }
    }
    Ok(())
}
