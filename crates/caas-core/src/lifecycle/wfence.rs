//! The write fence the server enforces: a validator clause that refuses every insert and
//! update of the fenced tenants' documents (code 121, DocumentValidationFailure), on each
//! collection that holds them. It is how a move's cutover and a suspension make a tenant
//! read-only without trusting applications to read a flag.
//!
//! Several fences may stand on one collection at once (two tenants of the shared tier
//! moving). Who is fenced where lives in `caas_write_fences` in the platform database
//! (`{_id: "db.coll", tenants, original}`), and every change to it is followed by a
//! `collMod` computed from what the document says *after* the change, then a re-read: a
//! writer whose `collMod` raced another's sees the document changed and writes again, so
//! the last `collMod` always matches the document. Deletes are not validated by MongoDB:
//! a move captures them from the change stream (see `sync`).

use anyhow::{bail, Context, Result};
use bson::{doc, Bson, Document};
use mongodb::{Client, Database};

use super::route::Namespace;
use crate::inspect::normalize::{fenced_validator, split_write_fence};

pub const WRITE_FENCES: &str = "caas_write_fences";

/// The live options of one collection, or None when it does not exist.
async fn live_options(client: &Client, ns: &Namespace) -> Result<Option<Document>> {
    let db = client.database(&ns.database);
    let mut cur = db
        .list_collections()
        .filter(doc! { "name": &ns.collection })
        .await
        .with_context(|| format!("reading the options of {}", ns.label()))?;
    use futures::TryStreamExt;
    Ok(cur
        .try_next()
        .await
        .with_context(|| format!("reading the options of {}", ns.label()))?
        .map(|spec| bson::to_document(&spec.options).unwrap_or_default()))
}

/// Fence `tenant`'s documents in `ns` (idempotent).
pub async fn raise(
    client: &Client,
    platform: &Database,
    ns: &Namespace,
    tenant: &str,
) -> Result<()> {
    let Some(options) = live_options(client, ns).await? else {
        return Ok(());
    };
    let (validator, _, restore) = match options.get_document("validator") {
        Ok(v) => split_write_fence(v),
        Err(_) => (None, Vec::new(), None),
    };
    let (level, action) = restore.unwrap_or_else(|| {
        (
            options
                .get_str("validationLevel")
                .unwrap_or("strict")
                .to_owned(),
            options
                .get_str("validationAction")
                .unwrap_or("error")
                .to_owned(),
        )
    });
    let original = doc! {
        "validator": validator.map_or(Bson::Null, Bson::Document),
        "validationLevel": level,
        "validationAction": action,
    };
    platform
        .collection::<Document>(WRITE_FENCES)
        .update_one(
            doc! { "_id": ns.label() },
            doc! { "$setOnInsert": { "original": original, "database": &ns.database, "collection": &ns.collection },
                   "$addToSet": { "tenants": tenant } },
        )
        .upsert(true)
        .await
        .with_context(|| format!("recording the write fence of {} in {WRITE_FENCES}", ns.label()))?;
    settle(client, platform, ns).await
}

/// Lift `tenant`'s fence from `ns` (idempotent); the last one out restores the validator,
/// level and action the collection had before.
pub async fn lift(
    client: &Client,
    platform: &Database,
    ns: &Namespace,
    tenant: &str,
) -> Result<()> {
    platform
        .collection::<Document>(WRITE_FENCES)
        .update_one(
            doc! { "_id": ns.label() },
            doc! { "$pull": { "tenants": tenant } },
        )
        .await
        .with_context(|| format!("lifting the write fence of {}", ns.label()))?;
    settle(client, platform, ns).await?;
    // The last one out removes the record: its `original` must not outlive a later
    // `schema apply` (the next fence records the validator as it is then).
    platform
        .collection::<Document>(WRITE_FENCES)
        .delete_one(doc! { "_id": ns.label(), "tenants": { "$size": 0 } })
        .await
        .with_context(|| format!("lifting the write fence of {}", ns.label()))?;
    Ok(())
}

/// Which tenants are fenced in `ns`, by the record.
pub async fn fenced(platform: &Database, ns: &Namespace) -> Result<Vec<String>> {
    let d = platform
        .collection::<Document>(WRITE_FENCES)
        .find_one(doc! { "_id": ns.label() })
        .await?;
    Ok(d.map(|d| tenants_of(&d)).unwrap_or_default())
}

fn tenants_of(d: &Document) -> Vec<String> {
    let mut t: Vec<String> = d
        .get_array("tenants")
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    t.sort();
    t
}

/// Make the collection's validator match the record, until a re-read finds the record
/// unchanged since the `collMod` that was computed from it.
async fn settle(client: &Client, platform: &Database, ns: &Namespace) -> Result<()> {
    let fences = platform.collection::<Document>(WRITE_FENCES);
    for _ in 0..20 {
        let Some(record) = fences.find_one(doc! { "_id": ns.label() }).await? else {
            return Ok(());
        };
        let tenants = tenants_of(&record);
        let original = record.get_document("original").cloned().unwrap_or_default();
        let level = original
            .get_str("validationLevel")
            .unwrap_or("strict")
            .to_owned();
        let action = original
            .get_str("validationAction")
            .unwrap_or("error")
            .to_owned();
        let validator = fenced_validator(
            original.get_document("validator").ok(),
            &tenants,
            &level,
            &action,
        );
        let (level, action) = if tenants.is_empty() {
            (level, action)
        } else {
            ("strict".to_owned(), "error".to_owned())
        };
        let cmd = doc! {
            "collMod": &ns.collection,
            "validator": validator,
            "validationLevel": level,
            "validationAction": action,
        };
        match client.database(&ns.database).run_command(cmd).await {
            Ok(_) => {}
            // The collection is gone (dropped by a finished move): nothing left to fence.
            Err(e) if is_namespace_not_found(&e) => {}
            Err(e) => bail!(
                "setting the write fence on {}: {}",
                ns.label(),
                crate::base::driver::describe(&e)
            ),
        }
        let again = fences.find_one(doc! { "_id": ns.label() }).await?;
        let unchanged = again.as_ref().map(tenants_of) == Some(tenants.clone());
        if unchanged {
            if tenants.is_empty() {
                fences
                    .delete_one(doc! { "_id": ns.label(), "tenants": { "$size": 0 } })
                    .await?;
            }
            return Ok(());
        }
    }
    bail!(
        "the write fence of {} kept changing under other caas runs; rerun",
        ns.label()
    )
}

fn is_namespace_not_found(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 26)
}

/// Whether a write error is a caas write fence refusing it (for writers that retry).
pub fn is_fence_refusal(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 121,
        ErrorKind::Command(c) => c.code == 121,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|w| w.iter().any(|w| w.code == 121)),
        _ => false,
    }
}
