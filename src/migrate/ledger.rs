//! The ledger: one document per (target, version) in `caas_migrations`, in the database of
//! the target's data (Pro sets share `caas_shared`'s ledger, keyed by target). `running` is
//! written before the first step so a crash is visible; a backfill's checkpoint lives here.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, DateTime, Document};
use futures::TryStreamExt;
use mongodb::{ClientSession, Collection, Database};
use serde::{Deserialize, Serialize};

use super::source::Migration;

pub const LEDGER: &str = "caas_migrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Running,
    Applied,
    Failed,
    /// Undone by `migrate down`; pending again.
    Reverted,
}

/// Progress inside a migration, so a rerun resumes instead of starting over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Steps before this index are done.
    pub step: u32,
    /// For a backfill in progress: the last `_id` processed, and how many so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<bson::Bson>,
    #[serde(default)]
    pub processed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "_id")]
    pub id: String,
    pub target: String,
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub status: EntryStatus,
    #[serde(default)]
    pub error: Option<String>,
    pub started_at: DateTime,
    #[serde(default)]
    pub finished_at: Option<DateTime>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    pub tool_version: String,
    pub host: String,
    #[serde(default)]
    pub checkpoint: Checkpoint,
    /// Times a rerun resumed from a checkpoint.
    #[serde(default)]
    pub resumed: u32,
}

pub fn entry_id(target: &str, version: u32) -> String {
    format!("{target}:{version:06}")
}

pub fn collection(db: &Database) -> Collection<Entry> {
    db.collection(LEDGER)
}

/// Ledgers of many targets that share a database, in one query: target -> version -> entry.
pub async fn read(
    db: &Database,
    targets: &[String],
) -> Result<BTreeMap<String, BTreeMap<u32, Entry>>> {
    let filter = if targets.len() == 1 {
        doc! { "target": &targets[0] }
    } else {
        doc! { "target": { "$in": targets } }
    };
    let entries: Vec<Entry> = collection(db)
        .find(filter)
        .await
        .with_context(|| format!("reading the ledger {}.{LEDGER}", db.name()))?
        .try_collect()
        .await
        .with_context(|| format!("reading the ledger {}.{LEDGER}", db.name()))?;
    let mut out: BTreeMap<String, BTreeMap<u32, Entry>> = targets
        .iter()
        .map(|t| (t.clone(), BTreeMap::new()))
        .collect();
    for e in entries {
        out.entry(e.target.clone())
            .or_default()
            .insert(e.version, e);
    }
    Ok(out)
}

pub fn host() -> String {
    let name = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{name}:{}", std::process::id())
}

/// Record that a migration starts (or resumes) on a target. Keeps an earlier checkpoint.
pub async fn start(
    db: &Database,
    target: &str,
    m: &Migration,
    previous: Option<&Entry>,
) -> Result<Entry> {
    let resumes = previous.is_some_and(|p| {
        p.status != EntryStatus::Reverted
            && (p.checkpoint.step > 0 || p.checkpoint.last_id.is_some())
    });
    let entry = Entry {
        id: entry_id(target, m.version),
        target: target.to_owned(),
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        status: EntryStatus::Running,
        error: None,
        started_at: DateTime::now(),
        finished_at: None,
        duration_ms: None,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: host(),
        checkpoint: if resumes {
            previous.map(|p| p.checkpoint.clone()).unwrap_or_default()
        } else {
            Checkpoint::default()
        },
        resumed: previous.map_or(0, |p| p.resumed) + u32::from(resumes),
    };
    collection(db)
        .replace_one(doc! { "_id": &entry.id }, &entry)
        .upsert(true)
        .await
        .with_context(|| format!("writing the ledger {}.{LEDGER}", db.name()))?;
    Ok(entry)
}

/// Save progress, inside the session's transaction when there is one.
pub async fn save_checkpoint(
    db: &Database,
    id: &str,
    cp: &Checkpoint,
    session: Option<&mut ClientSession>,
) -> mongodb::error::Result<()> {
    let update = doc! { "$set": { "checkpoint": bson::to_bson(cp).expect("checkpoint") } };
    let c = collection(db);
    match session {
        Some(s) => c
            .update_one(doc! { "_id": id }, update)
            .session(s)
            .await
            .map(drop),
        None => c.update_one(doc! { "_id": id }, update).await.map(drop),
    }
}

pub async fn finish(db: &Database, entry: &Entry, error: Option<String>) -> Result<()> {
    let now = DateTime::now();
    let status = if error.is_some() {
        EntryStatus::Failed
    } else {
        EntryStatus::Applied
    };
    let mut set = doc! {
        "status": bson::to_bson(&status)?,
        "finished_at": now,
        "duration_ms": now.timestamp_millis() - entry.started_at.timestamp_millis(),
        "error": error.clone(),
    };
    if error.is_none() {
        set.insert("checkpoint", doc! { "step": 0, "processed": 0 });
    }
    collection(db)
        .update_one(doc! { "_id": &entry.id }, doc! { "$set": set })
        .await
        .with_context(|| format!("writing the ledger {}.{LEDGER}", db.name()))?;
    Ok(())
}

pub async fn set_status(
    db: &Database,
    id: &str,
    status: EntryStatus,
    extra: Document,
) -> Result<()> {
    let mut set = doc! { "status": bson::to_bson(&status)?, "finished_at": DateTime::now() };
    set.extend(extra);
    collection(db)
        .update_one(doc! { "_id": id }, doc! { "$set": set })
        .await
        .with_context(|| format!("writing the ledger {}.{LEDGER}", db.name()))?;
    Ok(())
}
