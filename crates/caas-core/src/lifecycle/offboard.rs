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
    let r = Removal {
        conn,
        config,
        specs,
        t: &t,
        lease: &lease,
        progress,
    };
    let result = remove_held(&r, keep, &mut session).await;
    let released = lease.release().await;
    let out = result?;
    released?;
    Ok(out)
}

/// A removal's inputs, under the tenant's lease.
struct Removal<'a> {
    conn: &'a Connection,
    config: &'a Config,
    specs: &'a [&'a CollectionSpec],
    t: &'a registry::Tenant,
    lease: &'a Lease,
    progress: Progress<'a>,
}

async fn remove_held(
    r: &Removal<'_>,
    keep: Keep<'_>,
    session: &mut ClientSession,
) -> Result<Removed> {
    let Removal {
        conn,
        config,
        specs,
        t,
        lease,
        ..
    } = *r;
    let client = &conn.client;
    let platform = client.database(&config.databases.platform);
    let (target, homes) = export::homes(config, specs, &t.id, t.tier);
    for (_, ns) in &homes {
        wfence::raise(client, &platform, ns, &t.id).await?;
    }
    let removals = platform.collection::<Pending>(REMOVALS);
    let (manifest, reused) = export_first(r, keep, session).await?;
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
        .session(&mut *ses)
        .await?;
        removals
            .delete_one(doc! { "_id": &t.id })
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

/// The export step of a removal (see [`decide`]), recorded in [`REMOVALS`] before
/// anything is deleted: `(the export, whether an earlier run of this removal wrote it)`.
async fn export_first(
    r: &Removal<'_>,
    keep: Keep<'_>,
    session: &mut ClientSession,
) -> Result<(Option<Manifest>, bool)> {
    let Removal {
        conn,
        config,
        specs,
        t,
        lease,
        progress,
    } = *r;
    let platform = conn.client.database(&config.databases.platform);
    let removals = platform.collection::<Pending>(REMOVALS);
    let pending = removals.find_one(doc! { "_id": &t.id }).await?;
    let found = match keep {
        Keep::Export(dir) => export::read_manifest(dir).ok(),
        Keep::Nothing => None,
    };
    let step = decide(&t.id, pending.as_ref(), keep, found.as_ref())?;
    let mut record = pending.unwrap_or_else(|| Pending {
        tenant: t.id.clone(),
        export: None,
        exported_at: None,
        started_at: DateTime::now(),
    });
    if step != Step::Reuse {
        record.export = match keep {
            Keep::Export(dir) => Some(dir.display().to_string()),
            Keep::Nothing => None,
        };
        record.exported_at = None;
    }
    let (manifest, reused) = match step {
        Step::NoExport => (None, false),
        Step::Reuse => (found, true),
        Step::Export(dir) => {
            save(lease, session, &removals, &record).await?;
            let m = export::export(conn, config, specs, t, dir, true, progress).await?;
            (Some(m), false)
        }
    };
    // Recorded before anything is deleted: from here a rerun accepts only this export.
    record.exported_at = manifest.as_ref().map(|m| m.exported_at.clone());
    save(lease, session, &removals, &record).await?;
    Ok((manifest, reused))
}

/// The platform collection of removals under way (one per tenant).
pub const REMOVALS: &str = "caas_tenant_removals";

/// A removal under way, recorded before its export begins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    #[serde(rename = "_id")]
    pub tenant: String,
    /// The export folder as given; `None` for `--no-export`.
    pub export: Option<String>,
    /// The `exported_at` of the manifest this removal wrote, recorded before anything was
    /// deleted: the export that holds the tenant whole.
    pub exported_at: Option<String>,
    pub started_at: DateTime,
}

/// What a removal does about its export.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Export(&'a Path),
    /// The export this removal finished before it was stopped.
    Reuse,
    NoExport,
}

/// Decide the export step of a removal from the record of one under way (if any), the
/// flags of this run and the finished export found in the folder given. Once a removal
/// may have deleted anything, only its own export is whole: another folder, or an export
/// now, would hold part of the tenant's data under a manifest that calls it consistent.
fn decide<'a>(
    tenant: &str,
    pending: Option<&Pending>,
    keep: Keep<'a>,
    found: Option<&Manifest>,
) -> Result<Step<'a>> {
    let ours = |m: &Manifest, at: &str| m.tenant == tenant && m.consistent && m.exported_at == at;
    match (pending, keep) {
        (_, Keep::Nothing) => Ok(Step::NoExport),
        (None, Keep::Export(dir)) => match found.filter(|m| m.tenant == tenant) {
            Some(m) => Err(anyhow!(
                "{} holds an export of tenant `{tenant}` made at {} by a run that is not this removal (none is under way), so it may not hold the tenant's data as it is now; name a new folder with --export",
                dir.display(),
                m.exported_at
            )),
            None => Ok(Step::Export(dir)),
        },
        (Some(p), Keep::Export(dir)) => match (&p.exported_at, &p.export) {
            (Some(at), _) if found.is_some_and(|m| ours(m, at)) => Ok(Step::Reuse),
            (Some(at), was) => Err(anyhow!(
                "tenant `{tenant}`'s removal stopped after it began deleting; the export that holds the tenant whole was made at {at} in {}, and {} is not it; rerun with --export {0}",
                was.as_deref().unwrap_or("?"),
                dir.display()
            )),
            (None, None) => Err(anyhow!(
                "tenant `{tenant}`'s removal began with --no-export and may have deleted part of the data already, so an export now would not be whole; rerun with --no-export"
            )),
            // Stopped while exporting: nothing is deleted yet. An export that finished
            // after the removal began was written under its fence.
            (None, Some(_)) => match found.filter(|m| m.tenant == tenant && m.consistent) {
                Some(m) if written_since(m, p.started_at) => Ok(Step::Reuse),
                _ => Ok(Step::Export(dir)),
            },
        },
    }
}

fn written_since(m: &Manifest, start: DateTime) -> bool {
    DateTime::parse_rfc3339_str(&m.exported_at).is_ok_and(|at| at >= start)
}

/// Record the removal under way (fenced by the tenant's lease).
async fn save(
    lease: &Lease,
    session: &mut ClientSession,
    removals: &mongodb::Collection<Pending>,
    record: &Pending,
) -> Result<()> {
    fenced(lease, session, async |ses: &mut ClientSession| {
        removals
            .replace_one(doc! { "_id": &record.tenant }, record)
            .upsert(true)
            .session(ses)
            .await
            .map(drop)
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::Tier;

    fn manifest(tenant: &str, at: &str) -> Manifest {
        Manifest {
            format: 1,
            tenant: tenant.into(),
            name: tenant.into(),
            tier: Tier::Free,
            region: None,
            layout: "shared".into(),
            target: "shared".into(),
            exported_at: at.into(),
            tool_version: "0".into(),
            consistent: true,
            specs: Default::default(),
            ledger: vec![],
            files: vec![],
        }
    }

    fn pending(export: Option<&str>, at: Option<&str>) -> Pending {
        Pending {
            tenant: "acme".into(),
            export: export.map(Into::into),
            exported_at: at.map(Into::into),
            started_at: DateTime::parse_rfc3339_str("2026-12-01T10:00:00Z").unwrap(),
        }
    }

    const T1: &str = "2026-12-01T10:00:05Z";

    #[test]
    fn a_fresh_removal_exports_and_never_takes_an_old_export_for_its_own() {
        let dir = Path::new("/x/acme");
        let got = decide("acme", None, Keep::Export(dir), None).unwrap();
        assert_eq!(got, Step::Export(dir));
        // An export of an earlier life of the tenant (removed, imported, changed since).
        let old = manifest("acme", "2026-01-01T00:00:00Z");
        let err = decide("acme", None, Keep::Export(dir), Some(&old)).unwrap_err();
        assert!(format!("{err}").contains("name a new folder"), "{err}");
        assert_eq!(
            decide("acme", None, Keep::Nothing, None).unwrap(),
            Step::NoExport
        );
    }

    #[test]
    fn once_deleting_may_have_begun_only_the_removals_own_export_is_accepted() {
        let dir = Path::new("/y/other");
        let p = pending(Some("/x/acme"), Some(T1));
        let own = manifest("acme", T1);
        let got = decide("acme", Some(&p), Keep::Export(dir), Some(&own)).unwrap();
        assert_eq!(got, Step::Reuse, "the same export, wherever it was moved");
        for found in [None, Some(manifest("acme", "2026-12-01T10:00:09Z"))] {
            let err = decide("acme", Some(&p), Keep::Export(dir), found.as_ref()).unwrap_err();
            let text = format!("{err}");
            assert!(text.contains("rerun with --export /x/acme"), "{text}");
        }
        let no = pending(None, None);
        let err = decide("acme", Some(&no), Keep::Export(dir), None).unwrap_err();
        assert!(format!("{err}").contains("rerun with --no-export"), "{err}");
        assert_eq!(
            decide("acme", Some(&p), Keep::Nothing, None).unwrap(),
            Step::NoExport
        );
    }

    #[test]
    fn a_removal_stopped_while_exporting_exports_again_or_keeps_what_it_finished() {
        let dir = Path::new("/x/acme");
        let p = pending(Some("/x/acme"), None);
        assert_eq!(
            decide("acme", Some(&p), Keep::Export(dir), None).unwrap(),
            Step::Export(dir)
        );
        let done = manifest("acme", T1);
        assert_eq!(
            decide("acme", Some(&p), Keep::Export(dir), Some(&done)).unwrap(),
            Step::Reuse
        );
        let before = manifest("acme", "2026-12-01T09:59:00Z");
        assert_eq!(
            decide("acme", Some(&p), Keep::Export(dir), Some(&before)).unwrap(),
            Step::Export(dir),
            "an export older than the removal is not its own (and prepare_folder refuses to overwrite it)"
        );
    }
}
