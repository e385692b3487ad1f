//! A lease lock per target, in `caas_locks` beside the ledger. Expiry is on server time
//! (`$$NOW`), so clocks of different hosts do not matter; the holder renews it while it
//! runs; a lease whose owner died is taken over once it expires.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bson::{doc, DateTime, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};

pub const LOCKS: &str = "caas_locks";

/// How long a lease lasts without renewal, by default.
pub const LEASE: Duration = Duration::from_secs(15);

fn locks(db: &Database) -> Collection<Document> {
    db.collection(LOCKS)
}

/// A held lease. Call [`Lease::release`]; if the process dies, it expires.
pub struct Lease {
    db: Database,
    id: String,
    owner: String,
    renewer: tokio::task::JoinHandle<()>,
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// The server's clock (`hello.localTime`), so lease expiry never depends on this host's.
/// (Compared as a literal: some servers do not evaluate `$$NOW` inside a query's `$expr`.)
pub async fn server_now(db: &Database) -> mongodb::error::Result<DateTime> {
    let hello = db.run_command(doc! { "hello": 1 }).await?;
    Ok(hello
        .get_datetime("localTime")
        .copied()
        .unwrap_or_else(|_| DateTime::now()))
}

/// Try once: take the lease if it is free, expired, or ours.
///
/// The lease records the holder's session (`lsid`). Taking over an expired lease from
/// another owner first kills that owner's session: a runner killed inside a transaction
/// leaves it open on the server, and writes to the same documents would wait for it.
async fn try_take(
    db: &Database,
    id: &str,
    owner: &str,
    lease: Duration,
    lsid: Option<&Document>,
) -> mongodb::error::Result<bool> {
    let now = server_now(db).await?;
    let filter =
        doc! { "_id": id, "$or": [ { "owner": owner }, { "expires_at": { "$lt": now } } ] };
    let mut set = doc! {
        "owner": owner,
        "acquired_at": "$$NOW",
        "expires_at": { "$add": ["$$NOW", lease.as_millis() as i64] },
    };
    if let Some(l) = lsid {
        set.insert("lsid", l.clone());
    }
    let update = vec![doc! { "$set": set }];
    match locks(db)
        .find_one_and_update(filter, update)
        .upsert(true)
        .return_document(ReturnDocument::Before)
        .await
    {
        Ok(Some(previous)) if previous.get_str("owner").is_ok_and(|o| o != owner) => {
            if let Ok(dead) = previous.get_document("lsid") {
                // Best effort: the session may have ended on its own already.
                let _ = db
                    .client()
                    .database("admin")
                    .run_command(doc! { "killSessions": [dead.clone()] })
                    .await;
            }
            Ok(true)
        }
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Extend a lease we hold. Never an upsert: a renewal that reaches the server after
/// `release` deleted the lease must not bring it back.
async fn renew(
    db: &Database,
    id: &str,
    owner: &str,
    lease: Duration,
) -> mongodb::error::Result<()> {
    let update =
        vec![doc! { "$set": { "expires_at": { "$add": ["$$NOW", lease.as_millis() as i64] } } }];
    locks(db)
        .update_one(doc! { "_id": id, "owner": owner }, update)
        .await
        .map(drop)
}

/// The current holder of a lease, for messages: "owner (expires at ...)".
pub async fn holder(db: &Database, id: &str) -> Result<Option<(String, DateTime)>> {
    let d = locks(db)
        .find_one(doc! { "_id": id })
        .await
        .with_context(|| format!("reading {}.{LOCKS}", db.name()))?;
    Ok(d.map(|d| {
        (
            d.get_str("owner").unwrap_or("?").to_owned(),
            d.get_datetime("expires_at")
                .copied()
                .unwrap_or(DateTime::MIN),
        )
    }))
}

/// Take the lease (valid for `lease`, renewed every third of it), waiting up to `wait`
/// for another holder to finish.
pub async fn acquire(
    db: &Database,
    id: &str,
    owner: &str,
    wait: Duration,
    lease: Duration,
    lsid: Option<Document>,
) -> Result<Lease> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(50);
    loop {
        if try_take(db, id, owner, lease, lsid.as_ref())
            .await
            .with_context(|| format!("taking the lock {id} in {}.{LOCKS}", db.name()))?
        {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let who = holder(db, id)
                .await?
                .map(|(o, e)| {
                    format!(
                        "{o} (lease expires {})",
                        e.try_to_rfc3339_string().unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "unknown".into());
            bail!("target {id} is locked by {who}; waited {}s. If that process is gone, the lease expires by itself, or run `caas migrate unlock --force`", wait.as_secs());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    let (db2, id2, owner2) = (db.clone(), id.to_owned(), owner.to_owned());
    let renewer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            if renew(&db2, &id2, &owner2, lease).await.is_err() {
                return;
            }
        }
    });
    Ok(Lease {
        db: db.clone(),
        id: id.to_owned(),
        owner: owner.to_owned(),
        renewer,
    })
}

impl Lease {
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        locks(&self.db)
            .delete_one(doc! { "_id": &self.id, "owner": &self.owner })
            .await
            .with_context(|| format!("releasing the lock {}", self.id))?;
        Ok(())
    }
}

/// Remove leases: expired ones, or all with `force`. Returns how many were removed.
pub async fn unlock(db: &Database, ids: &[String], force: bool) -> Result<u64> {
    let mut filter = doc! { "_id": { "$in": ids } };
    if !force {
        filter.insert("expires_at", doc! { "$lt": server_now(db).await.with_context(|| format!("reading the server time of {}", db.name()))? });
    }
    Ok(locks(db)
        .delete_many(filter)
        .await
        .with_context(|| format!("removing locks in {}.{LOCKS}", db.name()))?
        .deleted_count)
}
