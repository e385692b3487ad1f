//! A move's state, one document per tenant in `caas_tenant_moves` (platform database):
//! phase, change-stream resume token, copy checkpoints, what was verified. Written only in
//! transactions fenced by the tenant's lease, together with the data writes they record,
//! so a runner that lost its lease (paused past it, killed) cannot record or copy anything
//! after the next runner took over; a rerun continues from the last committed write.

use anyhow::{Context, Result};
use bson::{doc, Bson, DateTime, Document};
use mongodb::{ClientSession, Collection, Database};
use serde::{Deserialize, Serialize};

use super::route::Pair;
use crate::tenancy::Tier;

pub use crate::fleet::registry::MOVES;

/// Where a move is. Every phase before `Flipped` can be aborted; from `Flipped` on, the
/// tenant's applications write at its new location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Documents are copied in checkpointed batches while changes are captured.
    Copy,
    /// Captured changes are applied until the lag is small.
    Catchup,
    /// The source is fenced read-only; the last changes drain, counts and digests compare.
    Cutover,
    /// The registry points at the new location; the source is kept, fenced, until `--finish`.
    Flipped,
    Finished,
    Aborted,
}

impl Phase {
    pub fn is_open(self) -> bool {
        !matches!(self, Phase::Finished | Phase::Aborted)
    }
}

/// Copy progress of one logical collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Documents with `_id` up to this one are copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<Bson>,
    pub copied: u64,
    pub done: bool,
    /// The tenant's documents in the target: exact, since only the mover writes there
    /// before the flip and each of its transactions records what it changed.
    #[serde(default)]
    pub target_count: i64,
}

/// One collection's verification: equal in source and target. Two comparisons make it:
/// every document, while writes went on (what differed was re-synced and is among the
/// changed ones), then, under the fence, each document changed since, one by one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub collection: String,
    /// The tenant's documents at the flip.
    pub count: u64,
    /// sha256 over the tenant's documents' BSON bytes in `_id` order (the full comparison).
    pub digest: String,
    /// Documents changed after the full comparison, compared under the fence.
    #[serde(default)]
    pub changed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveState {
    /// The tenant id: one open move per tenant.
    #[serde(rename = "_id")]
    pub tenant: String,
    pub move_id: String,
    pub from_tier: Tier,
    pub to_tier: Tier,
    pub from_target: String,
    pub to_target: String,
    /// The region the move takes the tenant to (`--region`): its new target is placed in
    /// that region's zone, and the registry's `region` changes at the flip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_region: Option<String>,
    pub phase: Phase,
    pub pairs: Vec<Pair>,
    pub progress: Vec<Progress>,
    /// Resume token of the change stream on the source database: changes after it are
    /// not applied yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<Bson>,
    /// Where the stream stood at the flip: deletes after it are replayed by `--finish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_token: Option<Bson>,
    /// When `--finish` had replayed every late delete up to its marker. From then on the
    /// deletes the change stream shows on the source are the removal's own: a rerun after a
    /// kill removes on, and never replays them at the new location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_at: Option<DateTime>,
    /// When `--abort` began removing the copy: from then the copy is no longer whole, and
    /// the move can only be aborted (a rerun of `--abort` finishes it), never continued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborting_at: Option<DateTime>,
    #[serde(default)]
    pub changes_applied: u64,
    /// Milliseconds between the newest applied change and the server's clock.
    #[serde(default)]
    pub lag_ms: i64,
    #[serde(default)]
    pub verified: Vec<Verified>,
    /// The `_id`s (per pair) synced since the full comparison by this run: compared again
    /// under the fence. Not saved: a cutover resumed from the record compares everything.
    #[serde(skip)]
    pub recheck: Vec<(usize, Vec<Bson>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_raised_at: Option<DateTime>,
    /// How long the tenant's writes were refused (fence raised to registry flipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_ms: Option<i64>,
    pub owner: String,
    pub started_at: DateTime,
    pub updated_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flipped_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime>,
}

pub fn moves(db: &Database) -> Collection<MoveState> {
    db.collection(MOVES)
}

/// The tenant's move document (open or the last one that ended).
pub async fn read(platform: &Database, tenant: &str) -> Result<Option<MoveState>> {
    moves(platform)
        .find_one(doc! { "_id": tenant })
        .await
        .with_context(|| {
            format!(
                "reading the move of tenant `{tenant}` in {}.{MOVES}",
                platform.name()
            )
        })
}

/// Every open move.
/// When the kept source of a flipped move is due for removal: `keep` after the flip.
pub fn source_due_at(s: &MoveState, keep: std::time::Duration) -> Option<DateTime> {
    let flipped = s.flipped_at.filter(|_| s.phase == Phase::Flipped)?;
    let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    Some(DateTime::from_millis(
        flipped.timestamp_millis().saturating_add(keep),
    ))
}

pub async fn open(platform: &Database) -> Result<Vec<MoveState>> {
    use futures::TryStreamExt;
    let open: Vec<Bson> = ["copy", "catchup", "cutover", "flipped"]
        .map(Bson::from)
        .to_vec();
    moves(platform)
        .find(doc! { "phase": { "$in": open } })
        .sort(doc! { "_id": 1 })
        .await
        .with_context(|| format!("reading {}.{MOVES}", platform.name()))?
        .try_collect()
        .await
        .with_context(|| format!("reading {}.{MOVES}", platform.name()))
}

/// Changes captured during the copy, applied once it is done: `{move, pair, id}` per
/// document changed (duplicates are harmless: applying a change is idempotent).
pub const PENDING: &str = "caas_move_pending";

fn pending(platform: &Database) -> Collection<Document> {
    platform.collection(PENDING)
}

/// Record `ids` of pair `pair` as changed, inside the caller's transaction.
pub async fn defer(
    platform: &Database,
    move_id: &str,
    work: &[(usize, Vec<Bson>)],
    session: &mut ClientSession,
) -> mongodb::error::Result<()> {
    let docs: Vec<Document> = work
        .iter()
        .flat_map(|(p, ids)| {
            ids.iter()
                .map(move |id| doc! { "m": move_id, "p": *p as i32, "i": id.clone() })
        })
        .collect();
    if docs.is_empty() {
        return Ok(());
    }
    pending(platform)
        .insert_many(docs)
        .session(session)
        .await
        .map(drop)
}

/// Up to `limit` deferred changes of the move: their record `_id`s, and the document
/// `_id`s per pair.
pub async fn take_pending(
    platform: &Database,
    move_id: &str,
    limit: i64,
) -> Result<(Vec<Bson>, Vec<(usize, Vec<Bson>)>)> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = pending(platform)
        .find(doc! { "m": move_id })
        .sort(doc! { "_id": 1 })
        .limit(limit)
        .await?
        .try_collect()
        .await
        .with_context(|| format!("reading {}.{PENDING}", platform.name()))?;
    let mut keys = Vec::with_capacity(docs.len());
    let mut work: std::collections::BTreeMap<usize, Vec<Bson>> = Default::default();
    for d in docs {
        keys.extend(d.get("_id").cloned());
        let (Ok(p), Some(id)) = (d.get_i32("p"), d.get("i")) else {
            continue;
        };
        let ids = work.entry(p as usize).or_default();
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok((keys, work.into_iter().collect()))
}

/// Delete deferred-change records: these (in the caller's transaction), or all of a move.
pub async fn clear_pending(
    platform: &Database,
    move_id: &str,
    keys: Option<&[Bson]>,
    session: Option<&mut ClientSession>,
) -> mongodb::error::Result<()> {
    let filter = match keys {
        Some(k) => doc! { "_id": { "$in": k.to_vec() } },
        None => doc! { "m": move_id },
    };
    let coll = pending(platform);
    let op = coll.delete_many(filter);
    match session {
        Some(s) => op.session(s).await.map(drop),
        None => op.await.map(drop),
    }
}

/// Write the whole state inside the caller's transaction.
pub async fn save(
    platform: &Database,
    state: &MoveState,
    session: &mut ClientSession,
) -> mongodb::error::Result<()> {
    let mut s = state.clone();
    s.updated_at = DateTime::now();
    moves(platform)
        .replace_one(doc! { "_id": &s.tenant }, &s)
        .upsert(true)
        .session(session)
        .await
        .map(drop)
}

/// A short description for `tenant moves` and messages.
pub fn describe(s: &MoveState) -> String {
    let copied: u64 = s.progress.iter().map(|p| p.copied).sum();
    format!(
        "{} -> {} ({} -> {}), phase {:?}, {copied} document(s) copied, {} change(s) applied, lag {} ms",
        s.from_tier, s.to_tier, s.from_target, s.to_target, s.phase, s.changes_applied, s.lag_ms
    )
}

/// The fields of a state worth showing in JSON.
pub fn summary(s: &MoveState) -> Document {
    doc! {
        "tenant": &s.tenant, "from": s.from_tier.as_str(), "to": s.to_tier.as_str(),
        "phase": bson::to_bson(&s.phase).unwrap_or_default(),
    }
}
