//! The ledger: one document per (target, version) in `caas_migrations`, in the database of
//! the target's data (Pro sets share `caas_shared`'s ledger, keyed by target). `running` is
//! written before the first step so a crash is visible; a backfill's checkpoint lives here.
//! Every write is fenced by the target's lease ([`Fence::txn`]): a runner that lost its
//! lease cannot change the ledger.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bson::{doc, DateTime, Document};
use futures::TryStreamExt;
use mongodb::{ClientSession, Collection, Database};
use serde::{Deserialize, Serialize};

use super::lock::{Fence, FenceError};
use super::source::Migration;

pub const LEDGER: &str = "caas_migrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Running,
    Applied,
    Failed,
    /// `migrate down` is undoing it (its checkpoint counts down steps); an interrupted
    /// revert is finished by the next `migrate down`.
    Reverting,
    /// Undone by `migrate down`; pending again.
    Reverted,
    /// Marked done by `migrate baseline` without running: the deployment already had it.
    Baselined,
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
    /// The lease token of the run that last wrote this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// Copied by `caas tenant move` from the tenant's previous target (its label): the
    /// moved data already had this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
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

/// One fenced ledger write in its own transaction: it commits only while `fence` holds.
async fn write(
    fence: &Fence,
    session: &mut ClientSession,
    db: &Database,
    id: &str,
    change: Change,
) -> Result<(), FenceError> {
    let c = collection(db);
    fence
        .txn(session, async |s| {
            let filter = doc! { "_id": id };
            match &change {
                Change::Replace(entry) => {
                    c.replace_one(filter, entry.as_ref())
                        .upsert(true)
                        .session(s)
                        .await?;
                }
                Change::Set(set) => {
                    c.update_one(filter, doc! { "$set": set.clone() })
                        .session(s)
                        .await?;
                }
                Change::Delete => {
                    c.delete_one(filter).session(s).await?;
                }
            }
            Ok(Some(()))
        })
        .await
        .map(drop)
}

enum Change {
    Replace(Box<Entry>),
    Set(Document),
    Delete,
}

/// Record that a migration starts (or resumes) on a target. Keeps an earlier checkpoint.
pub async fn start(
    fence: &Fence,
    session: &mut ClientSession,
    target: &str,
    m: &Migration,
    previous: Option<&Entry>,
) -> Result<Entry, FenceError> {
    let resumes = previous.is_some_and(|p| {
        matches!(p.status, EntryStatus::Running | EntryStatus::Failed)
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
        token: Some(fence.token()),
        moved_from: None,
    };
    write(
        fence,
        session,
        fence.db(),
        &entry.id,
        Change::Replace(Box::new(entry.clone())),
    )
    .await?;
    Ok(entry)
}

/// Write a whole entry (a baseline), fenced.
pub async fn record(
    fence: &Fence,
    session: &mut ClientSession,
    entry: Entry,
) -> Result<(), FenceError> {
    let id = entry.id.clone();
    write(
        fence,
        session,
        fence.db(),
        &id,
        Change::Replace(Box::new(entry)),
    )
    .await
}

/// Save progress inside the caller's (fenced) transaction.
pub async fn save_checkpoint(
    db: &Database,
    id: &str,
    cp: &Checkpoint,
    session: &mut ClientSession,
) -> mongodb::error::Result<()> {
    let update = doc! { "$set": { "checkpoint": bson::to_bson(cp).expect("checkpoint") } };
    collection(db)
        .update_one(doc! { "_id": id }, update)
        .session(session)
        .await
        .map(drop)
}

/// Record how a run of a migration ended: `applied`, or `failed` with the error (keeping
/// the checkpoint, so a rerun resumes).
pub async fn finish(
    fence: &Fence,
    session: &mut ClientSession,
    entry: &Entry,
    error: Option<String>,
) -> Result<(), FenceError> {
    let now = DateTime::now();
    let status = if error.is_some() {
        EntryStatus::Failed
    } else {
        EntryStatus::Applied
    };
    let mut set = doc! {
        "status": bson::to_bson(&status).expect("status"),
        "finished_at": now,
        "duration_ms": now.timestamp_millis() - entry.started_at.timestamp_millis(),
        "error": error.clone(),
        "token": fence.token(),
    };
    if error.is_none() {
        set.insert("checkpoint", doc! { "step": 0, "processed": 0 });
    }
    write(fence, session, fence.db(), &entry.id, Change::Set(set)).await
}

/// Change an entry's status (and more fields), fenced.
pub async fn set_status(
    fence: &Fence,
    session: &mut ClientSession,
    id: &str,
    status: EntryStatus,
    extra: Document,
) -> Result<(), FenceError> {
    let mut set = doc! {
        "status": bson::to_bson(&status).expect("status"),
        "finished_at": DateTime::now(),
        "token": fence.token(),
    };
    set.extend(extra);
    write(fence, session, fence.db(), id, Change::Set(set)).await
}

/// Set fields of an entry without changing its status (repair), fenced.
pub async fn set_fields(
    fence: &Fence,
    session: &mut ClientSession,
    id: &str,
    set: Document,
) -> Result<(), FenceError> {
    write(fence, session, fence.db(), id, Change::Set(set)).await
}

/// Remove an entry (repair of a failed one), fenced.
pub async fn remove(
    fence: &Fence,
    session: &mut ClientSession,
    id: &str,
) -> Result<(), FenceError> {
    write(fence, session, fence.db(), id, Change::Delete).await
}
