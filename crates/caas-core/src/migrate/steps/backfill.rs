//! `backfill`: batches by `_id` range, each batch and its checkpoint in one fenced
//! transaction, resumable after a crash without updating any document twice.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::ClientSession;

use super::{describe_err, mark_done, update_of, StepCtx, StepError};
use crate::migrate::ledger::{self, Checkpoint};
use crate::migrate::source::BackfillStep;

/// Batches by `_id` range: each batch's update and its checkpoint commit together in a
/// fenced transaction, so a crash resumes after the last committed batch and no document
/// is updated twice.
///
/// One cursor walks the matching `_id`s in MongoDB's sort order and cuts a batch every
/// `batch_size` of them, so each batch costs one update (an `_id` range). A range only
/// matches values of its bounds' type bracket (`{$gt: 's07', $lte: ObjectId(..)}` matches
/// nothing), so a batch never spans two brackets ([`bracket`]), and a resumed walk goes
/// on into the later brackets by `$type`. Should a range still update fewer documents than
/// the cursor saw, that batch is rolled back and redone by the exact `_id` list.
pub(super) async fn run(
    ctx: &StepCtx<'_>,
    index: u32,
    s: &BackfillStep,
    checkpoint: &Checkpoint,
) -> Result<(), StepError> {
    let p = ctx.place(&s.collection)?;
    let coll = ctx
        .client
        .database(&p.database)
        .collection::<Document>(&p.collection);
    let filter = ctx.filter(&s.collection, &s.filter);
    let update = update_of(&s.update);
    let (last, mut processed) = resume_point(ctx, index, checkpoint, &p);
    let mut ids = walk(&coll, &filter, last.as_ref(), s.batch_size).await?;
    let mut guard = ctx.session().lock().await;
    let session: &mut ClientSession = &mut guard;
    let mut batch: Vec<Bson> = Vec::new();
    let mut pending: Option<Bson> = None;
    loop {
        let next = match pending.take() {
            Some(id) => Some(id),
            None => ids
                .try_next()
                .await
                .map_err(|e| describe_err(&e))?
                .and_then(|d| d.get("_id").cloned()),
        };
        let end = next.is_none();
        if let Some(id) = next {
            if batch.first().is_some_and(|f| bracket(f) != bracket(&id)) {
                pending = Some(id);
            } else {
                batch.push(id);
                if batch.len() < s.batch_size as usize {
                    continue;
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        let done = backfill_batch(
            ctx, session, &coll, &filter, &update, index, processed, &batch,
        )
        .await
        .map_err(|e| match e {
            StepError::Failed(m) => {
                StepError::Failed(format!("backfill batch after {processed} document(s): {m}"))
            }
            lost => lost,
        })?;
        processed += done;
        batch.clear();
        (ctx.progress)(&format!(
            "backfill {}.{}: {processed} document(s)",
            p.database, p.collection
        ));
        if end && pending.is_none() {
            break;
        }
        if crate::base::interrupt::requested() {
            return Err(StepError::Interrupted);
        }
        if !ctx.batch_pause.is_zero() {
            tokio::time::sleep(ctx.batch_pause).await;
        }
    }
    drop(guard);
    mark_done(ctx, index + 1).await
}

/// Where this backfill resumes: after the checkpoint's last `_id` when the checkpoint is
/// this step's, else from the start.
fn resume_point(
    ctx: &StepCtx<'_>,
    index: u32,
    checkpoint: &Checkpoint,
    p: &crate::tenancy::Placement,
) -> (Option<Bson>, u64) {
    let (last, processed) = if checkpoint.step == index {
        (checkpoint.last_id.clone(), checkpoint.processed)
    } else {
        (None, 0)
    };
    if last.is_some() {
        (ctx.progress)(&format!(
            "resuming backfill of {}.{} after {processed} document(s)",
            p.database, p.collection
        ));
    }
    (last, processed)
}

/// The matching `_id`s in MongoDB's sort order, after `last` when resuming.
async fn walk(
    coll: &mongodb::Collection<Document>,
    filter: &Document,
    last: Option<&Bson>,
    batch_size: u32,
) -> Result<mongodb::Cursor<Document>, StepError> {
    let walk = match last {
        Some(l) => doc! { "$and": [filter.clone(), after(l)] },
        None => filter.clone(),
    };
    Ok(coll
        .find(walk)
        .sort(doc! { "_id": 1 })
        .projection(doc! { "_id": 1 })
        .batch_size(batch_size)
        .await
        .map_err(|e| describe_err(&e))?)
}

/// One batch and its checkpoint in one fenced transaction; returns the documents updated.
#[allow(clippy::too_many_arguments)]
async fn backfill_batch(
    ctx: &StepCtx<'_>,
    session: &mut ClientSession,
    coll: &mongodb::Collection<Document>,
    filter: &Document,
    update: &mongodb::options::UpdateModifications,
    index: u32,
    processed: u64,
    batch: &[Bson],
) -> Result<u64, StepError> {
    let (lo, hi) = (&batch[0], &batch[batch.len() - 1]);
    let expected = batch.len() as u64;
    let by_range = doc! { "$gte": lo.clone(), "$lte": hi.clone() };
    let by_list = doc! { "$in": batch.to_vec() };
    for (selector, exact) in [(by_range, false), (by_list, true)] {
        let batch_filter = doc! { "$and": [filter.clone(), { "_id": selector }] };
        let done = ctx
            .fence()
            .txn(session, async |s| {
                let r = coll
                    .update_many(batch_filter.clone(), update.clone())
                    .bypass_document_validation(ctx.bypass_validation)
                    .session(&mut *s)
                    .await?;
                // A range that updated fewer documents than the cursor saw is rolled back
                // and redone by `_id` list; by list, fewer means documents changed since.
                if r.matched_count < expected && !exact {
                    return Ok(None);
                }
                let cp = Checkpoint {
                    step: index,
                    last_id: Some(hi.clone()),
                    processed: processed + r.matched_count,
                };
                ledger::save_checkpoint(&ctx.ledger_db, &ctx.entry_id, &cp, s).await?;
                Ok(Some(r.matched_count))
            })
            .await?;
        if let Some(n) = done {
            return Ok(n);
        }
    }
    unreachable!("the exact pass always commits or fails")
}

/// MongoDB's comparison order of BSON types (the server's canonical type values): values
/// of different brackets never match one range query.
pub fn bracket(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// `$type` names of each bracket, in order.
const BRACKET_TYPES: &[(i32, &[&str])] = &[
    (-1, &["minKey"]),
    (0, &["undefined"]),
    (5, &["null"]),
    (10, &["double", "int", "long", "decimal"]),
    (15, &["string", "symbol"]),
    (20, &["object"]),
    (25, &["array"]),
    (30, &["binData"]),
    (35, &["objectId"]),
    (40, &["bool"]),
    (45, &["date"]),
    (47, &["timestamp"]),
    (50, &["regex"]),
    (55, &["dbPointer"]),
    (60, &["javascript"]),
    (65, &["javascriptWithScope"]),
    (127, &["maxKey"]),
];

/// The `_id`s after `last` in sort order: greater within its bracket, or of a later one.
pub fn after(last: &Bson) -> Document {
    let b = bracket(last);
    let later: Vec<&str> = BRACKET_TYPES
        .iter()
        .filter(|(k, _)| *k > b)
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    if later.is_empty() {
        return doc! { "_id": { "$gt": last.clone() } };
    }
    doc! { "$or": [ { "_id": { "$gt": last.clone() } }, { "_id": { "$type": later } } ] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    #[test]
    fn brackets_follow_mongodb_comparison_order() {
        let ordered = [
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(5),
            Bson::String("a".into()),
            Bson::Document(doc! { "a": 1 }),
            Bson::ObjectId(ObjectId::new()),
            Bson::Boolean(false),
            Bson::DateTime(bson::DateTime::now()),
            Bson::MaxKey,
        ];
        for w in ordered.windows(2) {
            assert!(
                bracket(&w[0]) < bracket(&w[1]),
                "{:?} before {:?}",
                w[0],
                w[1]
            );
        }
        assert_eq!(bracket(&Bson::Int64(1)), bracket(&Bson::Double(0.5)));
    }

    #[test]
    fn after_a_string_reaches_every_later_type() {
        let d = after(&Bson::String("s07".into()));
        let or = d.get_array("$or").unwrap();
        assert_eq!(
            or[0].as_document().unwrap(),
            &doc! { "_id": { "$gt": "s07" } }
        );
        let types: Vec<&str> = or[1]
            .as_document()
            .unwrap()
            .get_document("_id")
            .unwrap()
            .get_array("$type")
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"objectId") && types.contains(&"date"),
            "{types:?}"
        );
        assert!(
            !types.contains(&"int") && !types.contains(&"string"),
            "{types:?}"
        );
        assert_eq!(
            after(&Bson::MaxKey),
            doc! { "_id": { "$gt": Bson::MaxKey } }
        );
    }
}
