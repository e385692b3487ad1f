//! A fenced lease per target, in `caas_locks` beside the ledger.
//!
//! A lease without a fencing token is not a lock: a holder that pauses past its expiry (a
//! GC pause, SIGSTOP, a suspended VM, a partition) wakes up and writes as if it still held
//! it. So every acquisition gets a token one higher than the last (the lease document is
//! kept after release, so tokens never repeat), and every write that records progress runs
//! in a transaction whose last write is to the lease's fence document (`caas_fences`),
//! matched on owner and token ([`Fence::txn`]). Only a takeover or an eviction writes the
//! fence, before the new holder does any work; renewals write the lease document alone, so
//! a transaction longer than the renewal interval never conflicts with its own renewer. A
//! runner that lost the lease therefore cannot commit anything after the takeover: either
//! its transaction sees the new token and aborts, or it conflicts with the takeover's
//! write to the fence and aborts.
//!
//! Expiry is on server time (`hello.localTime`), so clocks of different hosts do not
//! matter. The lease records the holder's session (`lsid`); whoever takes the lease next
//! kills that session first, which ends a transaction the previous holder left open (a
//! process killed mid-transaction, a connection cut before the commit reached the server).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bson::{doc, DateTime, Document};
use futures::TryStreamExt;
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::ReturnDocument;
use mongodb::{ClientSession, Collection, Database};
use serde::Serialize;

pub const LOCKS: &str = "caas_locks";

pub use super::fence::FENCES;
use super::fence::{close_fence, fences, is_duplicate, kill_session, raise_fence};

/// How long a lease lasts without renewal, by default.
pub const LEASE: Duration = Duration::from_secs(15);

/// Longest a single takeover attempt may wait on the server (a write to the lease document
/// waits for a transaction that holds it); then the attempt starts over.
const TAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn locks(db: &Database) -> Collection<Document> {
    db.collection(LOCKS)
}

pub use crate::base::error::LockError;

/// The server's clock (`hello.localTime`), so lease expiry never depends on this host's.
/// (Compared as a literal: some servers do not evaluate `$$NOW` inside a query's `$expr`.)
pub async fn server_now(db: &Database) -> mongodb::error::Result<DateTime> {
    let hello = db.run_command(doc! { "hello": 1 }).await?;
    Ok(hello
        .get_datetime("localTime")
        .copied()
        .unwrap_or_else(|_| DateTime::now()))
}

/// A lease document as stored.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    pub id: String,
    /// None: free (released or evicted).
    pub owner: Option<String>,
    pub token: i64,
    pub expires_at: DateTime,
    /// The holder before the current one (or the last holder of a free lease).
    pub previous_owner: Option<String>,
    pub lsid: Option<Document>,
}

impl LeaseInfo {
    fn from_doc(d: &Document) -> LeaseInfo {
        LeaseInfo {
            id: d.get_str("_id").unwrap_or("?").to_owned(),
            owner: d.get_str("owner").ok().map(str::to_owned),
            token: d
                .get_i64("token")
                .or_else(|_| d.get_i32("token").map(i64::from))
                .unwrap_or(0),
            expires_at: d
                .get_datetime("expires_at")
                .copied()
                .unwrap_or(DateTime::MIN),
            previous_owner: d.get_str("previous_owner").ok().map(str::to_owned),
            lsid: d.get_document("lsid").ok().cloned(),
        }
    }

    /// Held by someone and not expired at `now`.
    pub fn is_live(&self, now: DateTime) -> bool {
        self.owner.is_some() && self.expires_at > now
    }

    /// "owner (token N, lease expires at ...)", for messages.
    pub fn describe(&self) -> String {
        match &self.owner {
            Some(o) => format!(
                "{o} (token {}, lease expires {})",
                self.token,
                self.expires_at.try_to_rfc3339_string().unwrap_or_default()
            ),
            None => "nobody".into(),
        }
    }
}

/// Read one lease document.
pub async fn read(db: &Database, id: &str) -> Result<Option<LeaseInfo>> {
    Ok(locks(db)
        .find_one(doc! { "_id": id })
        .await
        .with_context(|| format!("reading {}.{LOCKS}", db.name()))?
        .map(|d| LeaseInfo::from_doc(&d)))
}

/// The held leases among `ids` (free ones are left out), one query.
pub async fn holders(db: &Database, ids: &[String]) -> Result<Vec<LeaseInfo>> {
    let docs: Vec<Document> = locks(db)
        .find(doc! { "_id": { "$in": ids }, "owner": { "$type": "string" } })
        .await
        .with_context(|| format!("reading {}.{LOCKS}", db.name()))?
        .try_collect()
        .await
        .with_context(|| format!("reading {}.{LOCKS}", db.name()))?;
    Ok(docs.iter().map(LeaseInfo::from_doc).collect())
}

/// Try once: take the lease if it is free, expired, or ours. Returns the new token and the
/// previous holder's session, if the lease recorded one.
async fn try_take(
    db: &Database,
    id: &str,
    owner: &str,
    lease: Duration,
    lsid: &Document,
) -> mongodb::error::Result<Option<(i64, Option<Document>)>> {
    let now = server_now(db).await?;
    let mut previous = None;
    if let Some(current) = locks(db).find_one(doc! { "_id": id }).await? {
        let current = LeaseInfo::from_doc(&current);
        if current.is_live(now) && current.owner.as_deref() != Some(owner) {
            return Ok(None);
        }
        // The previous holder may have left a transaction open; end it before our write
        // to the lease document would wait for it.
        if let Some(dead) = current.lsid.as_ref().filter(|l| *l != lsid) {
            let ended = kill_session(db, dead).await;
            tracing::info!(lease = id, previous = ?current.owner, ended, "lease: ending the previous holder's session before taking over");
            previous = Some(dead.clone());
        }
    }
    let filter = doc! {
        "_id": id,
        "$or": [ { "owner": null }, { "owner": owner }, { "expires_at": { "$lt": now } } ],
    };
    let update = vec![doc! { "$set": {
        "previous_owner": "$owner",
        "owner": owner,
        "token": { "$add": [ { "$ifNull": ["$token", 0_i64] }, 1_i64 ] },
        "acquired_at": "$$NOW",
        "expires_at": { "$add": ["$$NOW", lease.as_millis() as i64] },
        "lsid": lsid.clone(),
    } }];
    let coll = locks(db);
    let attempt = coll
        .find_one_and_update(filter, update)
        .upsert(true)
        .return_document(ReturnDocument::After);
    match tokio::time::timeout(TAKE_TIMEOUT, attempt).await {
        Err(_) => Ok(None),
        Ok(Ok(Some(d))) => Ok(Some((LeaseInfo::from_doc(&d).token, previous))),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) if is_duplicate(&e) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

/// Extend a lease we hold. Never an upsert: a renewal that reaches the server after
/// `release` must not bring the lease back. Returns whether it was still ours.
async fn renew(
    db: &Database,
    id: &str,
    owner: &str,
    token: i64,
    lease: Duration,
) -> mongodb::error::Result<bool> {
    let update =
        vec![doc! { "$set": { "expires_at": { "$add": ["$$NOW", lease.as_millis() as i64] } } }];
    let r = locks(db)
        .update_one(doc! { "_id": id, "owner": owner, "token": token }, update)
        .await?;
    Ok(r.matched_count == 1)
}

/// A held lease. Call [`Lease::release`]; if the process dies, it expires.
pub struct Lease {
    fence: Fence,
    renewer: tokio::task::JoinHandle<()>,
}

/// What a writer needs to prove it still holds the lease: cheap to clone, one per lease.
#[derive(Clone)]
pub struct Fence {
    db: Database,
    id: String,
    owner: String,
    token: i64,
    lsid: Document,
    /// Set by the renewer when a renewal matched nothing or failed past the lease's expiry.
    lost: Arc<AtomicBool>,
    /// Set when a transaction may still be open on the server (its end could not be
    /// confirmed): the lease then keeps the session id for the next holder to kill.
    dirty: Arc<AtomicBool>,
    /// How long a fenced transaction retries transient errors (write conflicts).
    retry_for: Duration,
}

/// Take the lease (valid for `lease`, renewed every third of it), waiting up to `wait`
/// for another holder to finish. `lsid` is the session every fenced transaction will use.
pub async fn acquire(
    db: &Database,
    id: &str,
    owner: &str,
    wait: Duration,
    lease: Duration,
    lsid: Document,
) -> Result<Lease> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(50);
    let token = loop {
        if let Some((token, previous)) = try_take(db, id, owner, lease, &lsid)
            .await
            .with_context(|| format!("taking the lock {id} in {}.{LOCKS}", db.name()))?
        {
            // The fence moves before any work: whatever the previous holder commits after
            // this fails, and this runner reads the ledger only after it.
            raise_fence(db, id, Some(owner), token, previous.as_ref())
                .await
                .with_context(|| format!("raising the fence of {id} in {}.{FENCES}", db.name()))?;
            tracing::info!(lease = id, owner, token, "lease taken");
            break token;
        }
        tracing::debug!(lease = id, "lease held by another runner; waiting");
        if tokio::time::Instant::now() >= deadline || crate::base::interrupt::requested() {
            let holder = read(db, id)
                .await?
                .map(|l| l.describe())
                .unwrap_or_else(|| "unknown".into());
            return Err(LockError::Held {
                id: id.to_owned(),
                holder,
                waited: wait.as_secs(),
            }
            .into());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    };
    let fence = Fence {
        db: db.clone(),
        id: id.to_owned(),
        owner: owner.to_owned(),
        token,
        lsid,
        lost: Arc::new(AtomicBool::new(false)),
        dirty: Arc::new(AtomicBool::new(false)),
        retry_for: wait.max(Duration::from_secs(2)),
    };
    let renewer = tokio::spawn(renew_until_lost(fence.clone(), lease));
    Ok(Lease { fence, renewer })
}

/// Renew every third of the lease. A renewal that matches nothing means someone else holds
/// the lease now; renewals that keep failing past the expiry mean it may have been taken.
async fn renew_until_lost(f: Fence, lease: Duration) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        match renew(&f.db, &f.id, &f.owner, f.token, lease).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => break,
            Err(_) if last_ok.elapsed() < lease => continue,
            Err(_) => break,
        }
    }
    f.lost.store(true, Ordering::SeqCst);
}

impl Lease {
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn token(&self) -> i64 {
        self.fence.token
    }

    /// Give the lease up (only if still ours). The document stays, so the next token is
    /// higher; the session id stays only if a transaction may still be open.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let f = &self.fence;
        let mut update = doc! { "$set": {
            "owner": null,
            "previous_owner": &f.owner,
            "released_at": DateTime::now(),
        } };
        if !f.dirty.load(Ordering::SeqCst) {
            update.insert("$unset", doc! { "lsid": "" });
        }
        locks(&f.db)
            .update_one(
                doc! { "_id": &f.id, "owner": &f.owner, "token": f.token },
                update,
            )
            .await
            .with_context(|| format!("releasing the lock {}", f.id))?;
        Ok(())
    }
}

/// Why a fenced transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(transparent)]
    Lost(#[from] LockError),
    #[error("{}", crate::base::driver::describe(.0))]
    Server(mongodb::error::Error),
}

impl Fence {
    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lease's database (where the lock and, beside it, the ledger live).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Whether the renewer saw the lease go (no round trip).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stop early, before starting more work, when the renewer saw the lease go.
    pub async fn ensure_held(&self) -> Result<(), FenceError> {
        if self.is_lost() {
            return Err(self.lost_error().await.into());
        }
        Ok(())
    }

    /// The error for a lost lease, naming whoever holds it now.
    pub async fn lost_error(&self) -> LockError {
        self.lost.store(true, Ordering::SeqCst);
        let why = match read(&self.db, &self.id).await {
            Ok(Some(l)) => match (&l.owner, &l.previous_owner) {
                (Some(o), _) if *o != self.owner => {
                    format!("it was taken over by {}", l.describe())
                }
                (Some(_), _) => format!("its token is now {}", l.token),
                (None, Some(p)) if *p != self.owner => format!(
                    "it was taken over by {p} (token {}), which has since released it",
                    l.token
                ),
                (None, _) => "it was released or evicted (`caas migrate unlock --force`)".into(),
            },
            Ok(None) => "the lease document is gone".into(),
            Err(e) => format!("and the lease could not be read ({e:#})"),
        };
        LockError::Lost {
            id: self.id.clone(),
            token: self.token,
            why,
        }
    }

    /// Whether the lease is still ours, read from the server.
    async fn still_held(&self) -> bool {
        match read(&self.db, &self.id).await {
            Ok(Some(l)) => l.owner.as_deref() == Some(&self.owner) && l.token == self.token,
            _ => false,
        }
    }

    /// The fencing write: the last write of every fenced transaction, to the fence document
    /// (which only a takeover or an eviction changes, never a renewal).
    async fn stamp(&self, session: &mut ClientSession) -> mongodb::error::Result<bool> {
        let r = fences(&self.db)
            .update_one(
                doc! { "_id": &self.id, "owner": &self.owner, "token": self.token },
                doc! { "$inc": { "writes": 1_i64 } },
            )
            .session(session)
            .await?;
        Ok(r.matched_count == 1)
    }

    /// Run `body` in a transaction on `session` (the one whose id the lease records) that
    /// commits only while the lease is ours with this token. `body` returns `None` to
    /// abort instead of committing. Transient errors (write conflicts) are retried with
    /// backoff for up to the lock timeout; a commit whose outcome is unknown is retried
    /// alone, never the body, so nothing is applied twice.
    pub async fn txn<T, F>(
        &self,
        session: &mut ClientSession,
        body: F,
    ) -> Result<Option<T>, FenceError>
    where
        F: AsyncFn(&mut ClientSession) -> mongodb::error::Result<Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut pause = Duration::from_millis(20);
        loop {
            self.ensure_held().await?;
            session
                .start_transaction()
                .await
                .map_err(FenceError::Server)?;
            // The stamp comes last: it holds the lease document only for the stamp and the
            // commit, so the renewer is never kept waiting behind a long step (a step longer
            // than the lease would otherwise lose it). A takeover that committed after this
            // transaction's snapshot still makes the stamp conflict, so the check is as strong.
            let result: mongodb::error::Result<Result<Option<T>, ()>> = async {
                let Some(value) = body(&mut *session).await? else {
                    return Ok(Ok(None));
                };
                if !self.stamp(&mut *session).await? {
                    return Ok(Err(()));
                }
                Ok(Ok(Some(value)))
            }
            .await;
            let value = match result {
                Ok(Ok(Some(v))) => v,
                Ok(Ok(None)) => {
                    let _ = session.abort_transaction().await;
                    return Ok(None);
                }
                Ok(Err(())) => {
                    let _ = session.abort_transaction().await;
                    return Err(self.lost_error().await.into());
                }
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                        continue;
                    }
                    return Err(self.classify(e).await);
                }
            };
            match self.commit(session, deadline).await {
                Ok(()) => return Ok(Some(value)),
                Err(e)
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && !e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && tokio::time::Instant::now() < deadline =>
                {
                    // Aborted by the server: nothing was applied, the whole body may run again.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                    continue;
                }
                Err(e) => {
                    // The transaction may still be open on the server: end it, or leave its
                    // session id in the lease for whoever comes next.
                    if !kill_session(&self.db, &self.lsid).await {
                        self.dirty.store(true, Ordering::SeqCst);
                    }
                    return Err(self.classify(e).await);
                }
            }
        }
    }

    /// Commit, retrying only the commit while its outcome is unknown.
    async fn commit(
        &self,
        session: &mut ClientSession,
        deadline: tokio::time::Instant,
    ) -> mongodb::error::Result<()> {
        loop {
            match session.commit_transaction().await {
                Err(e)
                    if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// A failed transaction is a lost lease if the lease is no longer ours.
    async fn classify(&self, e: mongodb::error::Error) -> FenceError {
        if self.is_lost() || !self.still_held().await {
            self.lost_error().await.into()
        } else {
            FenceError::Server(e)
        }
    }
}

/// What `unlock` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnlockReport {
    /// Leases released: (target, owner).
    pub released: Vec<(String, String)>,
    /// Live leases left alone: a live runner holds them.
    pub refused: Vec<LeaseInfo>,
}

/// Release leases of `ids`: expired ones; with `evict`, also the live leases of that owner
/// (its session is killed, and its next fenced write fails). A live lease of anyone else
/// is never touched: it is reported in `refused`.
pub async fn unlock(db: &Database, ids: &[String], evict: Option<&str>) -> Result<UnlockReport> {
    let now = server_now(db)
        .await
        .with_context(|| format!("reading the server time of {}", db.name()))?;
    let mut report = UnlockReport::default();
    for l in holders(db, ids).await? {
        let owner = l.owner.clone().unwrap_or_default();
        if l.is_live(now) && evict != Some(owner.as_str()) {
            report.refused.push(l);
            continue;
        }
        let r = locks(db)
            .update_one(
                doc! { "_id": &l.id, "owner": &owner, "token": l.token },
                doc! { "$set": { "owner": null, "previous_owner": &owner, "released_at": DateTime::now() } },
            )
            .await
            .with_context(|| format!("releasing the lock {} in {}.{LOCKS}", l.id, db.name()))?;
        if r.modified_count == 1 {
            // End its open transaction now; once ended, the id is nobody's to kill later
            // (a live process may reuse a pooled session id). Then close its fence, so a
            // transaction it starts later cannot commit either.
            let ended = match &l.lsid {
                Some(lsid) => kill_session(db, lsid).await,
                None => true,
            };
            close_fence(db, &l.id, l.token).await.with_context(|| {
                format!("closing the fence of {} in {}.{FENCES}", l.id, db.name())
            })?;
            if l.lsid.is_some() && ended {
                let _ = locks(db)
                    .update_one(
                        doc! { "_id": &l.id, "owner": null },
                        doc! { "$unset": { "lsid": "" } },
                    )
                    .await;
            }
            report.released.push((l.id.clone(), owner));
        }
    }
    Ok(report)
}
