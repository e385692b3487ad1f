//! The fence of a lease: one document per lease in `caas_fences` (`{_id, token, owner}`),
//! written only when the lease changes hands (taken, evicted), and checked by the last
//! write of every fenced transaction ([`super::lock::Fence::txn`]). Renewals never touch
//! it, so a transaction that outlasts several renewals does not conflict with its own
//! renewer; a takeover or an eviction does, which is the point.

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::{Collection, Database};

/// One fence document per lease (`{_id, token, owner}`), written only when the lease
/// changes hands (taken, evicted). Every fenced transaction's last write is to this
/// document, matched on token and owner; renewals write only the lease document, so a
/// transaction that outlasts several renewals does not conflict with its own renewer.
pub const FENCES: &str = "caas_fences";

/// How long one write to a fence may wait on an open transaction before the previous
/// session is ended again.
const FENCE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn fences(db: &Database) -> Collection<Document> {
    db.collection(FENCES)
}

/// Move the fence to `token` and `owner` (never back to an older token). A plain write: it
/// conflicts with (or, once committed, fails the match of) every fenced transaction of the
/// previous holder still in flight. On a server where a plain write waits on an open
/// transaction (SecantusDB), each attempt is bounded and the previous session is ended
/// again before the next.
pub(super) async fn raise_fence(
    db: &Database,
    id: &str,
    owner: Option<&str>,
    token: i64,
    previous: Option<&Document>,
) -> mongodb::error::Result<()> {
    let newer = doc! { "$lt": [ { "$ifNull": ["$token", 0_i64] }, token ] };
    let update = vec![doc! { "$set": {
        "owner": { "$cond": [ newer.clone(), owner.map_or(Bson::Null, |o| Bson::String(o.into())), "$owner" ] },
        "token": { "$max": [ { "$ifNull": ["$token", 0_i64] }, token ] },
    } }];
    let mut attempts = 0;
    loop {
        let coll = fences(db);
        let write = coll
            .update_one(doc! { "_id": id }, update.clone())
            .upsert(true);
        match tokio::time::timeout(FENCE_WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if is_duplicate(&e) && attempts < 3 => {}
            Ok(Err(e)) => return Err(e),
            Err(_) if attempts < 3 => {
                if let Some(lsid) = previous {
                    kill_session(db, lsid).await;
                }
            }
            Err(_) => {
                return Err(mongodb::error::Error::custom(format!(
                    "the fence of {id} in {}.{FENCES} stayed blocked by an open transaction",
                    db.name()
                )))
            }
        }
        attempts += 1;
    }
}

/// Close the fence of an evicted holder: its in-flight and later transactions fail.
pub(super) async fn close_fence(db: &Database, id: &str, token: i64) -> mongodb::error::Result<()> {
    let coll = fences(db);
    let write = coll.update_one(
        doc! { "_id": id, "token": token },
        doc! { "$set": { "owner": null } },
    );
    match tokio::time::timeout(FENCE_WRITE_TIMEOUT, write).await {
        Ok(r) => r.map(drop),
        Err(_) => Err(mongodb::error::Error::custom(format!(
            "the fence of {id} in {}.{FENCES} stayed blocked by an open transaction",
            db.name()
        ))),
    }
}

pub(super) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// End whatever the session is doing on the server (best effort: it may be gone already).
pub(super) async fn kill_session(db: &Database, lsid: &Document) -> bool {
    db.client()
        .database("admin")
        .run_command(doc! { "killSessions": [lsid.clone()] })
        .await
        .is_ok()
}
