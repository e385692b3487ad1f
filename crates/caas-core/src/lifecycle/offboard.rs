//! `caas tenant remove`: offboarding. Under the tenant's lease: the write fence goes up
//! (nothing the application writes from here on is accepted), the export is written (or
//! reused, when an earlier run of the same removal finished it), the tenant's documents are
//! deleted from shared collections or its set or database dropped, its own target's ledger
//! goes with it, and the registry entry is marked `churned` (kept, with `deleted_at`, for
//! audit). A rerun after `kill -9` at any point repeats what is left; every step is
//! idempotent.

use std::path::Path;

use anyhow::{anyhow, Result};
use bson::{doc, DateTime, Document};
use mongodb::ClientSession;

use super::export::{self, Manifest, Progress};
use super::wfence;
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry;
use crate::migrate::lock::{self, FenceError, Lease};
use crate::migrate::status::ledger_db;
use crate::spec::CollectionSpec;
use crate::tenancy::TargetKind;

/// What to keep of the tenant's data before it is deleted.
#[derive(Debug, Clone, Copy)]
pub enum Keep<'a> {
    /// Write (or reuse) an export in this folder first.
    Export(&'a Path),
    /// Delete without an export (`--no-export`).
    Nothing,
}

/// How a removal ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub tenant: String,
    pub tier: crate::tenancy::Tier,
    pub target: String,
    /// Documents deleted from shared collections.
    pub deleted: u64,
    /// Collections or databases dropped.
    pub dropped: Vec<String>,
    pub export: Option<Manifest>,
    /// The export an earlier run of this removal wrote was used.
    pub export_reused: bool,
}

/// Remove tenant `id` (see the module docs).
pub async fn remove(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    id: &str,
    keep: Keep<'_>,
    lock_wait: std::time::Duration,
    progress: Progress<'_>,
) -> Result<Removed> {
    let t = export::live_tenant(conn, config, id).await?;
    let platform = conn.client.database(&config.databases.platform);
    let mut session = conn.client.start_session().await?;
    let lease = lock::acquire(
        &platform,
        &format!("tenant:{id}"),
        &crate::migrate::runner::new_owner(),
        lock_wait,
        lock::LEASE,
        session.id().clone(),
    )
    .await
    .map_err(|e| {
        anyhow!("tenant `{id}`: another caas run is moving, suspending or removing it: {e:#}")
    })?;
    let result = remove_held(
        conn,
        config,
        specs,
        &t,
        keep,
        &lease,
        &mut session,
        progress,
    )
    .await;
    let released = lease.release().await;
    let out = result?;
    released?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn remove_held(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    t: &registry::Tenant,
    keep: Keep<'_>,
    lease: &Lease,
    session: &mut ClientSession,
    progress: Progress<'_>,
) -> Result<Removed> {
    let client = &conn.client;
    let platform = client.database(&config.databases.platform);
    let (target, homes) = export::homes(config, specs, &t.id, t.tier);
    for (_, ns) in &homes {
        wfence::raise(client, &platform, ns, &t.id).await?;
    }
    let (manifest, reused) = match keep {
        Keep::Nothing => (None, false),
        Keep::Export(dir) => match export::read_manifest(dir) {
            Ok(m) if m.tenant == t.id && m.tier == t.tier && m.consistent => (Some(m), true),
            _ => {
                let m = export::export(conn, config, specs, t, dir, true, progress).await?;
                (Some(m), false)
            }
        },
    };
    let mut out = Removed {
        tenant: t.id.clone(),
        tier: t.tier,
        target: target.to_string(),
        deleted: 0,
        dropped: vec![],
        export: manifest,
        export_reused: reused,
    };
    let (deleted, dropped) =
        delete_data(conn, config, &target, &homes, &t.id, lease, session).await?;
    out.deleted = deleted;
    out.dropped = dropped;
    if let TargetKind::CollectionSet { .. } = target.kind {
        // The set's ledger lives in the shared database, keyed by the target.
        let ledger = client.database(&ledger_db(&target, config));
        let label = target.to_string();
        fenced(lease, session, async |ses: &mut ClientSession| {
            crate::migrate::ledger::collection(&ledger)
                .delete_many(doc! { "target": &label })
                .session(ses)
                .await
                .map(drop)
        })
        .await?;
    }
    let reg = platform.collection::<Document>(registry::REGISTRY);
    let now = DateTime::now();
    fenced(lease, session, async |ses: &mut ClientSession| {
        reg.update_one(
            doc! { "tenant_id": &t.id },
            doc! { "$set": { "status": "churned", "deleted_at": now, "updated_at": now } },
        )
        .session(ses)
        .await
        .map(drop)
    })
    .await?;
    // Shared collections get their validator back; a dropped one leaves only its record.
    for (_, ns) in &homes {
        wfence::lift(client, &platform, ns, &t.id).await?;
    }
    super::follow::follow_roles(conn, config, specs).await?;
    Ok(out)
}

/// Delete the tenant's documents from shared collections, drop its set or database:
/// `(documents deleted, namespaces dropped)`.
async fn delete_data(
    conn: &Connection,
    config: &Config,
    target: &crate::tenancy::Target,
    homes: &[(&CollectionSpec, super::route::Namespace)],
    tenant: &str,
    lease: &Lease,
    session: &mut ClientSession,
) -> Result<(u64, Vec<String>)> {
    let client = &conn.client;
    let (mut deleted, mut dropped) = (0, Vec::new());
    match &target.kind {
        TargetKind::Database { .. } => {
            let db = config.databases.tenant_database(tenant);
            held(lease).await?;
            client.database(&db).drop().await?;
            dropped.push(db);
        }
        _ => {
            for (_, ns) in homes {
                if ns.shared {
                    let coll = client
                        .database(&ns.database)
                        .collection::<Document>(&ns.collection);
                    let filter = ns.filter(tenant);
                    let n = fenced(lease, session, async |ses: &mut ClientSession| {
                        Ok(coll
                            .delete_many(filter.clone())
                            .session(ses)
                            .await?
                            .deleted_count)
                    })
                    .await?;
                    deleted += n;
                } else {
                    held(lease).await?;
                    client
                        .database(&ns.database)
                        .collection::<Document>(&ns.collection)
                        .drop()
                        .await?;
                    dropped.push(ns.label());
                }
            }
        }
    }
    Ok((deleted, dropped))
}

/// Stop if the lease was lost: a paused runner must not drop what another now owns.
async fn held(lease: &Lease) -> Result<()> {
    lease.fence().ensure_held().await.map_err(fence_error)
}

fn fence_error(e: FenceError) -> anyhow::Error {
    match e {
        FenceError::Lost(l) => anyhow::Error::new(l),
        FenceError::Server(e) => anyhow!("{}", crate::base::driver::describe(&e)),
    }
}

/// Run `body` in a transaction fenced by the tenant's lease.
async fn fenced<T: Send, F>(lease: &Lease, session: &mut ClientSession, body: F) -> Result<T>
where
    F: AsyncFn(&mut ClientSession) -> mongodb::error::Result<T>,
{
    let got = lease
        .fence()
        .txn(session, async |ses: &mut ClientSession| {
            body(ses).await.map(Some)
        })
        .await
        .map_err(fence_error)?;
    got.ok_or_else(|| anyhow!("the transaction committed nothing"))
}
