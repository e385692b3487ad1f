//! Moving documents: the checkpointed copy, the change stream on the source database,
//! applying captured changes, and the count-and-digest comparison.
//!
//! A captured change is applied by `_id`, never by replaying its operation: the document's
//! current state is read from the source (the tenant's filter included) and written to
//! the target, or deleted there when the source no longer has it. Applying a change twice,
//! out of order, or after the copy already saw it gives the same result, so a rerun after
//! `kill -9` may replay from the last recorded resume token without harm.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use bson::{doc, Bson, Document, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::{Client, ClientSession, Collection, Cursor};
use sha2::{Digest, Sha256};

use super::route::{Namespace, Pair};

/// Where markers go: an internal collection of the source database whose insert, seen in
/// the change stream, proves every write acknowledged before it has been seen too.
pub const MARKS: &str = "caas_move_marks";

fn raw(client: &Client, ns: &Namespace) -> Collection<RawDocumentBuf> {
    client.database(&ns.database).collection(&ns.collection)
}

fn id_of(d: &RawDocumentBuf) -> Option<Bson> {
    let v = d.get("_id").ok()??;
    Bson::try_from(v.to_raw_bson()).ok()
}

/// The tenant's documents after `after`, in `_id` order, as one cursor the copy reads in
/// batches (one query for the whole copy: a query per batch is as fast on mongod, where
/// the `_id` index answers it, but SecantusDB sorts the whole collection for each one).
pub async fn open_copy(
    client: &Client,
    pair: &Pair,
    tenant: &str,
    after: Option<&Bson>,
    batch: usize,
) -> Result<Cursor<RawDocumentBuf>> {
    let mut filter = pair.from.filter(tenant);
    if let Some(a) = after {
        filter.insert("_id", doc! { "$gt": a.clone() });
    }
    raw(client, &pair.from)
        .find(filter)
        .sort(doc! { "_id": 1 })
        .batch_size(batch as u32)
        .allow_disk_use(true)
        .await
        .with_context(|| format!("reading {}", pair.from.label()))
}

/// Up to `n` more documents of the copy's cursor.
pub async fn next_batch(
    cursor: &mut Cursor<RawDocumentBuf>,
    pair: &Pair,
    n: usize,
) -> Result<Vec<RawDocumentBuf>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match cursor
            .try_next()
            .await
            .with_context(|| format!("reading {}", pair.from.label()))?
        {
            Some(d) => out.push(d),
            None => break,
        }
    }
    Ok(out)
}

/// Whether `d` is the tenant's (every document is, where `ns` is not shared).
fn owned(d: &RawDocumentBuf, ns: &Namespace, tenant: &str) -> bool {
    !ns.shared || d.get_str("tenant_id").is_ok_and(|t| t == tenant)
}

/// Write a copied batch into the target inside the caller's transaction. Returns the last
/// `_id` written. Documents move as the source holds them, past the target's validator: a
/// document the source acknowledged (before a validator, or under `moderate`) is not lost
/// by a move; `schema audit` reports it.
pub async fn write_batch(
    client: &Client,
    pair: &Pair,
    docs: &[RawDocumentBuf],
    session: &mut ClientSession,
) -> mongodb::error::Result<Option<Bson>> {
    if docs.is_empty() {
        return Ok(None);
    }
    raw(client, &pair.to)
        .insert_many(docs)
        .bypass_document_validation(true)
        .session(&mut *session)
        .await?;
    Ok(docs.last().and_then(id_of))
}

/// Delete a tenant's catch-up markers from the source database once its move has ended.
/// They matter only as change events, which every round has read by then; left in place a
/// shared source collected one per round of every move. (One move per tenant at a time, so
/// the tenant's markers are this move's.)
pub async fn clear_marks(client: &Client, database: &str, tenant: &str) -> Result<()> {
    client
        .database(database)
        .collection::<Document>(MARKS)
        .delete_many(doc! { "tenant": tenant })
        .await
        .with_context(|| format!("removing the move's markers from {database}.{MARKS}"))?;
    Ok(())
}

/// The change stream on the source database, from `token` (or from now).
pub async fn open_stream(
    client: &Client,
    database: &str,
    pairs: &[Pair],
    token: Option<&Bson>,
) -> Result<ChangeStream<Document>> {
    let mut colls: Vec<&str> = pairs.iter().map(|p| p.from.collection.as_str()).collect();
    colls.push(MARKS);
    let pipeline = vec![doc! { "$match": { "ns.coll": { "$in": colls } } }];
    let db = client.database(database);
    // A getMore that finds nothing returns after this, not the server's default second:
    // the drain during the cutover waits on it.
    let watch = db
        .watch()
        .pipeline(pipeline)
        .max_await_time(std::time::Duration::from_millis(20))
        .batch_size(1000);
    let watch = match token {
        Some(t) => watch.start_after(bson::from_bson::<ResumeToken>(t.clone())?),
        None => watch,
    };
    Ok(watch
        .await
        .with_context(|| format!("opening a change stream on {database}"))?
        .with_type::<Document>())
}

pub fn token_of(stream: &ChangeStream<Document>) -> Option<Bson> {
    stream.resume_token().and_then(|t| bson::to_bson(&t).ok())
}

/// The `_id`s changed in a batch of events, per collection of the source, and whether the
/// marker `mark` was among them.
#[derive(Debug, Default)]
pub struct Captured {
    pub ids: BTreeMap<String, Vec<Bson>>,
    /// `_id`s of deleted documents only (what a fenced source can still see).
    pub deleted: BTreeMap<String, Vec<Bson>>,
    /// Changes of the source's collections read (markers not counted).
    pub events: u64,
    pub saw_mark: bool,
    /// When the newest event was written (milliseconds since the epoch, server clock).
    pub newest: Option<i64>,
}

/// The longest a round reads the stream before applying what it read.
const ROUND_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Read up to `max` events that are ready now (one round trip when none are).
pub async fn capture(
    stream: &mut ChangeStream<Document>,
    max: usize,
    mark: Option<&str>,
) -> Result<Captured> {
    let mut out = Captured::default();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // A stream's first reply may be empty with changes waiting for the next getMore: only
    // an empty reply after a non-empty or a second one means "nothing more right now".
    let mut empty = 0;
    // A live stream under a steady writer is never empty: a round ends after ROUND_FOR
    // with what it has, or at the marker, so its changes are applied while they are fresh.
    let began = std::time::Instant::now();
    while out.events < max as u64 && !out.saw_mark && began.elapsed() < ROUND_FOR {
        let Some(ev) = stream
            .next_if_any()
            .await
            .context("reading the change stream")?
        else {
            empty += 1;
            if empty >= 2 || out.events > 0 {
                break;
            }
            continue;
        };
        if let Ok(at) = ev.get_datetime("wallTime") {
            out.newest = Some(at.timestamp_millis());
        } else if let Ok(ts) = ev.get_timestamp("clusterTime") {
            out.newest = Some(i64::from(ts.time) * 1000);
        }
        let coll = ev
            .get_document("ns")
            .ok()
            .and_then(|n| n.get_str("coll").ok())
            .unwrap_or("")
            .to_owned();
        let Some(id) = ev
            .get_document("documentKey")
            .ok()
            .and_then(|k| k.get("_id"))
            .cloned()
        else {
            continue;
        };
        if coll == MARKS {
            out.saw_mark |= mark.is_some_and(|m| id.as_str() == Some(m));
            continue;
        }
        // A change of the source's collections (caas's own markers are not counted).
        out.events += 1;
        if ev.get_str("operationType") == Ok("delete") {
            out.deleted
                .entry(coll.clone())
                .or_default()
                .push(id.clone());
        }
        let key = bson::to_vec(&doc! { "c": &coll, "i": &id }).unwrap_or_default();
        if seen.insert(key) {
            out.ids.entry(coll).or_default().push(id);
        }
    }
    Ok(out)
}

/// Make the target's copies of `ids` equal the source's, in the caller's transaction:
/// what the source has (for this tenant) replaces the target's copy, what it does not is
/// deleted. Returns how the target's count of the tenant's documents changed.
///
/// Every query is by `_id` alone and the tenant is checked here: every server answers
/// that from the `_id` index (SecantusDB scans the collection for `_id` with any other
/// field). On a shared target an `_id` another tenant holds is left alone, and the insert
/// then fails with a duplicate key error: never that tenant's document replaced.
pub async fn sync_ids(
    client: &Client,
    pair: &Pair,
    tenant: &str,
    ids: &[Bson],
    session: &mut ClientSession,
) -> mongodb::error::Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let by_id = doc! { "_id": { "$in": ids.to_vec() } };
    let found: Vec<RawDocumentBuf> = raw(client, &pair.from)
        .find(by_id)
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter(|d| owned(d, &pair.from, tenant))
        .collect();
    let removed = delete_ids(client, pair, tenant, ids, session).await?;
    if !found.is_empty() {
        raw(client, &pair.to)
            .insert_many(&found)
            .bypass_document_validation(true)
            .session(&mut *session)
            .await?;
    }
    Ok(found.len() as i64 - removed as i64)
}

/// Delete the tenant's copies of `ids` from the target (also: deletes that reached the
/// fenced source after the flip). Returns how many were deleted.
pub async fn delete_ids(
    client: &Client,
    pair: &Pair,
    tenant: &str,
    ids: &[Bson],
    session: &mut ClientSession,
) -> mongodb::error::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let target = raw(client, &pair.to);
    let mut ours = Vec::new();
    {
        let mut existing = target
            .find(doc! { "_id": { "$in": ids.to_vec() } })
            .projection(doc! { "tenant_id": 1 })
            .session(&mut *session)
            .await?;
        while let Some(d) = existing.next(&mut *session).await.transpose()? {
            if owned(&d, &pair.to, tenant) {
                ours.extend(id_of(&d));
            }
        }
    }
    if ours.is_empty() {
        return Ok(0);
    }
    let r = target
        .delete_many(doc! { "_id": { "$in": ours } })
        .session(&mut *session)
        .await?;
    Ok(r.deleted_count)
}

/// Count and digest of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub count: u64,
    pub digest: String,
}

/// One collection compared: both sides, and the `_id`s that differ (at most 1,000).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub source: Side,
    pub target: Side,
    pub differing: Vec<Bson>,
}

impl Comparison {
    pub fn equal(&self) -> bool {
        self.source == self.target && self.differing.is_empty()
    }
}

/// Compare the tenant's documents in source and target (only `ids`, when given), streaming
/// both in `_id` order: memory holds one batch of each side.
pub async fn compare(
    client: &Client,
    pair: &Pair,
    tenant: &str,
    ids: Option<&[Bson]>,
) -> Result<Comparison> {
    // A given set of `_id`s is read by `_id` alone, the tenant checked here (see
    // [`sync_ids`]); all of the tenant's documents by the tenant's filter.
    let (sf, tf) = match ids {
        Some(ids) => (
            doc! { "_id": { "$in": ids.to_vec() } },
            doc! { "_id": { "$in": ids.to_vec() } },
        ),
        None => (pair.from.filter(tenant), pair.to.filter(tenant)),
    };
    let open = |ns: &Namespace, f: Document| {
        let c = raw(client, ns);
        async move {
            c.find(f)
                .sort(doc! { "_id": 1 })
                .batch_size(1000)
                .allow_disk_use(true)
                .await
        }
    };
    let mut s = open(&pair.from, sf)
        .await
        .with_context(|| format!("reading {}", pair.from.label()))?;
    let mut t = open(&pair.to, tf)
        .await
        .with_context(|| format!("reading {}", pair.to.label()))?;
    let (mut hs, mut ht) = (Sha256::new(), Sha256::new());
    let (mut ns, mut nt) = (0u64, 0u64);
    let mut differing = Vec::new();
    let (from, to) = (&pair.from, &pair.to);
    let (mut a, mut b) = (
        next_of(&mut s, from, tenant).await?,
        next_of(&mut t, to, tenant).await?,
    );
    loop {
        let (ia, ib) = (a.as_ref().and_then(id_of), b.as_ref().and_then(id_of));
        let (take_a, take_b, odd) = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => (true, false, ia),
            (None, Some(_)) => (false, true, ib),
            (Some(x), Some(y)) if ia == ib => (
                true,
                true,
                (x.as_bytes() != y.as_bytes()).then_some(ia).flatten(),
            ),
            (Some(_), Some(_)) if before(ia.as_ref(), ib.as_ref()) => (true, false, ia),
            (Some(_), Some(_)) => (false, true, ib),
        };
        if let Some(id) = odd.filter(|_| differing.len() < 1000) {
            differing.push(id);
        }
        if take_a {
            hs.update(a.as_ref().expect("a").as_bytes());
            ns += 1;
            a = next_of(&mut s, from, tenant).await?;
        }
        if take_b {
            ht.update(b.as_ref().expect("b").as_bytes());
            nt += 1;
            b = next_of(&mut t, to, tenant).await?;
        }
    }
    Ok(Comparison {
        source: Side {
            count: ns,
            digest: hex::encode(hs.finalize()),
        },
        target: Side {
            count: nt,
            digest: hex::encode(ht.finalize()),
        },
        differing,
    })
}

/// The cursor's next document of the tenant's.
async fn next_of(
    c: &mut Cursor<RawDocumentBuf>,
    ns: &Namespace,
    tenant: &str,
) -> Result<Option<RawDocumentBuf>> {
    while let Some(d) = c.try_next().await? {
        if owned(&d, ns, tenant) {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// Whether `_id` `a` sorts before `b` as the server orders them (the server sorted both
/// streams; ties in type order are decided by comparing their BSON encodings).
fn before(a: Option<&Bson>, b: Option<&Bson>) -> bool {
    match (a, b) {
        (Some(Bson::ObjectId(x)), Some(Bson::ObjectId(y))) => x.bytes() < y.bytes(),
        (Some(Bson::String(x)), Some(Bson::String(y))) => x < y,
        (Some(x), Some(y)) => match (number(x), number(y)) {
            (Some(p), Some(q)) => p < q,
            _ => bson::to_vec(&doc! { "v": x }).ok() < bson::to_vec(&doc! { "v": y }).ok(),
        },
        _ => false,
    }
}

fn number(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// Count and content digest of the tenant's documents in `ns` (sha256 over their BSON in
/// `_id` order, as [`compare`] computes each side), streaming.
pub async fn digest(client: &Client, ns: &Namespace, tenant: &str) -> Result<Side> {
    let mut cursor = raw(client, ns)
        .find(ns.filter(tenant))
        .sort(doc! { "_id": 1 })
        .batch_size(1000)
        .allow_disk_use(true)
        .await
        .with_context(|| format!("reading {}", ns.label()))?;
    let (mut h, mut count) = (Sha256::new(), 0u64);
    while let Some(d) = cursor.try_next().await? {
        h.update(d.as_bytes());
        count += 1;
    }
    Ok(Side {
        count,
        digest: hex::encode(h.finalize()),
    })
}

/// Count the tenant's documents on one side (a server-side count).
pub async fn count(client: &Client, ns: &Namespace, tenant: &str) -> Result<u64> {
    client
        .database(&ns.database)
        .collection::<Document>(&ns.collection)
        .count_documents(ns.filter(tenant))
        .await
        .with_context(|| format!("counting in {}", ns.label()))
}
