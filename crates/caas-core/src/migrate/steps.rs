//! Executing one migration step on one target. Data steps run in a transaction together
//! with the ledger checkpoint that marks them done, so a crash never applies a step twice;
//! a backfill commits each batch with its checkpoint the same way. Index steps and raw
//! commands cannot run in a transaction: they are idempotent (an existing index, a missing
//! one to drop, are not errors).

use std::time::Duration;

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::{Client, ClientSession, Database};

use super::ledger::{self, Checkpoint};
use super::lock::{Fence, FenceError, LockError};
use super::source::{Scope, Step};
use crate::compile::{compile_index, json_to_bson};
use crate::config::Databases;
use crate::spec::CollectionSpec;
use crate::tenancy::{Placement, Target};

/// Everything a step needs to know about the target it runs on.
pub struct StepCtx<'a> {
    pub client: &'a Client,
    pub target: &'a Target,
    pub specs: &'a [&'a CollectionSpec],
    pub dbs: &'a Databases,
    pub scope: Scope,
    /// On the shared target, when the migration is for only some of its tiers: the
    /// tenants whose documents it may touch.
    pub tenants: Option<Vec<String>>,
    /// On the shared target: the tenants whose documents this migration may touch (every
    /// tenant stored there, or the `tenants` above). Empty elsewhere.
    pub tenants_here: Vec<String>,
    /// The ledger database and entry id, for checkpoints.
    pub ledger_db: Database,
    pub entry_id: String,
    pub batch_pause: Duration,
    pub bypass_validation: bool,
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// The one session every transaction of this target run uses (its id is in the
    /// lease), and the lease: every checkpoint commits only while it holds. None only for
    /// `--dry-run`, which describes steps and runs none.
    pub lease: Option<(&'a tokio::sync::Mutex<ClientSession>, &'a Fence)>,
}

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The lease went to another runner: nothing more may be written, not even `failed`.
    #[error(transparent)]
    Lost(#[from] LockError),
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: stopped at a safe point; the checkpoint is kept, a rerun resumes.
    #[error("interrupted")]
    Interrupted,
}

impl From<FenceError> for StepError {
    fn from(e: FenceError) -> Self {
        match e {
            FenceError::Lost(l) => StepError::Lost(l),
            FenceError::Server(e) => StepError::Failed(describe_err(&e)),
        }
    }
}

impl From<String> for StepError {
    fn from(s: String) -> Self {
        StepError::Failed(s)
    }
}

impl From<&str> for StepError {
    fn from(s: &str) -> Self {
        StepError::Failed(s.to_owned())
    }
}

impl StepCtx<'_> {
    fn fence(&self) -> &Fence {
        self.lease.expect("steps run only under a lease").1
    }

    fn session(&self) -> &tokio::sync::Mutex<ClientSession> {
        self.lease.expect("steps run only under a lease").0
    }

    pub fn place(&self, logical: &str) -> Result<Placement, String> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.collection == logical)
            .ok_or_else(|| format!("no spec declares collection `{logical}`"))?;
        Ok(self.target.place(spec, self.dbs))
    }

    fn spec(&self, logical: &str) -> Option<&CollectionSpec> {
        self.specs.iter().find(|s| s.collection == logical).copied()
    }

    /// The step's filter, narrowed to the allowed tenants on a shared target.
    fn filter(
        &self,
        logical: &str,
        filter: &serde_json::Map<String, serde_json::Value>,
    ) -> Document {
        let base = json_to_bson(&serde_json::Value::Object(filter.clone()))
            .as_document()
            .cloned()
            .unwrap_or_default();
        match (
            &self.tenants,
            self.spec(logical).is_some_and(|s| s.is_tenant_scoped()),
        ) {
            (Some(ids), true) => {
                let scope = doc! { "tenant_id": { "$in": ids.clone() } };
                if base.is_empty() {
                    scope
                } else {
                    doc! { "$and": [scope, base] }
                }
            }
            _ => base,
        }
    }

    /// Human description of a step with physical names (for `--dry-run` and progress).
    pub fn describe(&self, step: &Step) -> String {
        let ns = |logical: &str| {
            self.place(logical)
                .map(|p| format!("{}.{}", p.database, p.collection))
                .unwrap_or_else(|e| e)
        };
        let show = |d: &Document| crate::compile::to_json(d).to_string();
        match step {
            Step::UpdateMany(s) => format!(
                "update_many {} where {}",
                ns(&s.collection),
                show(&self.filter(&s.collection, &s.filter))
            ),
            Step::Backfill(s) => format!(
                "backfill {} where {} in batches of {}",
                ns(&s.collection),
                show(&self.filter(&s.collection, &s.filter)),
                s.batch_size
            ),
            Step::RenameField(s) => {
                format!("rename_field {} {} -> {}", ns(&s.collection), s.from, s.to)
            }
            Step::SetDefault(s) => format!(
                "set_default {} {} = {}",
                ns(&s.collection),
                s.field,
                s.value
            ),
            Step::UnsetField(s) => format!("unset_field {} {}", ns(&s.collection), s.field),
            Step::CreateIndex(s) => match self.place(&s.collection) {
                Ok(p) => format!(
                    "create_index {} {}",
                    ns(&s.collection),
                    crate::compile::to_json(&compile_index(&s.index, &p).to_create_spec())
                ),
                Err(e) => e,
            },
            Step::DropIndex(s) => format!("drop_index {} {}", ns(&s.collection), s.name),
            Step::Aggregate(s) => {
                let runs = self.aggregate_runs(s);
                let shown = match &runs {
                    Ok(r) => r
                        .first()
                        .map(|p| crate::compile::to_json(&doc! { "p": p.clone() })["p"].to_string())
                        .unwrap_or_default(),
                    Err(e) => e.clone(),
                };
                let each = match &runs {
                    Ok(r) if r.len() > 1 => format!(
                        " (once per tenant of the target: {}; shown for the first)",
                        r.len()
                    ),
                    _ => String::new(),
                };
                format!("aggregate {} {shown}{each}", ns(&s.collection))
            }
            Step::InsertDocuments(s) => format!(
                "insert_documents {} ({} document(s) by {:?})",
                ns(&s.collection),
                s.documents.len(),
                s.key
            ),
            Step::Command(s) => format!(
                "command on {}: {}",
                self.command_db(),
                serde_json::to_string(&self.command(&s.command)).unwrap_or_default()
            ),
        }
    }

    /// The pipelines an aggregate step runs: collection names mapped to this target's
    /// physical names, ending in the `$merge` into `into`. On the shared target a pipeline
    /// that joins other collections runs once per tenant, every join narrowed to that
    /// tenant, so no tenant's documents meet another's.
    pub fn aggregate_runs(
        &self,
        s: &super::source::AggregateStep,
    ) -> Result<Vec<Vec<Document>>, String> {
        let (from, into) = (self.place(&s.collection)?, self.place(&s.into)?);
        let physical = |logical: &str| {
            self.place(logical)
                .ok()
                .filter(|p| p.database == from.database)
                .map(|p| p.collection)
        };
        let joins = !super::pipeline::scan(&s.pipeline).0.is_empty();
        let per_tenant: Vec<Option<&str>> =
            if joins && self.target.kind == crate::tenancy::TargetKind::Shared {
                self.tenants_here.iter().map(|t| Some(t.as_str())).collect()
            } else {
                vec![None]
            };
        let on: Bson = if s.on.is_empty() {
            Bson::String("_id".into())
        } else {
            Bson::Array(s.on.iter().cloned().map(Bson::String).collect())
        };
        let merge = doc! { "$merge": { "into": { "db": &into.database, "coll": &into.collection }, "on": on, "whenMatched": "merge", "whenNotMatched": "insert" } };
        let scope = self.filter(&s.collection, &Default::default());
        per_tenant
            .into_iter()
            .map(|tenant| {
                let mut pipeline: Vec<Document> = Vec::new();
                if let Some(t) = tenant {
                    pipeline.push(doc! { "$match": { "tenant_id": t } });
                } else if !scope.is_empty() {
                    pipeline.push(doc! { "$match": scope.clone() });
                }
                let mapped = super::pipeline::map(&s.pipeline, &physical, tenant)?;
                pipeline.extend(mapped.into_iter().filter_map(|st| {
                    json_to_bson(&serde_json::Value::Object(st))
                        .as_document()
                        .cloned()
                }));
                pipeline.push(merge.clone());
                Ok(pipeline)
            })
            .collect()
    }

    fn command_db(&self) -> String {
        match self.scope {
            Scope::Tenant => match &self.target.kind {
                crate::tenancy::TargetKind::Database { tenant, .. } => {
                    self.dbs.tenant_database(tenant)
                }
                _ => self.dbs.shared.clone(),
            },
            other => self.dbs.for_domain(other.domain()).to_owned(),
        }
    }

    /// Replace `{collection}` placeholders in string values with physical names.
    fn command(&self, cmd: &indexmap::IndexMap<String, serde_json::Value>) -> serde_json::Value {
        fn walk(v: &serde_json::Value, ctx: &StepCtx<'_>) -> serde_json::Value {
            match v {
                serde_json::Value::String(s) if s.starts_with('{') && s.ends_with('}') => {
                    match ctx.place(&s[1..s.len() - 1]) {
                        Ok(p) => serde_json::Value::String(p.collection),
                        Err(_) => v.clone(),
                    }
                }
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(|x| walk(x, ctx)).collect())
                }
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter().map(|(k, x)| (k.clone(), walk(x, ctx))).collect(),
                ),
                other => other.clone(),
            }
        }
        serde_json::Value::Object(
            cmd.iter()
                .map(|(k, v)| (k.clone(), walk(v, self)))
                .collect(),
        )
    }
}

fn describe_err(e: &mongodb::error::Error) -> String {
    crate::base::driver::describe(e)
}

fn update_of(v: &serde_json::Value) -> mongodb::options::UpdateModifications {
    match json_to_bson(v) {
        Bson::Array(stages) => mongodb::options::UpdateModifications::Pipeline(
            stages
                .into_iter()
                .filter_map(|b| b.as_document().cloned())
                .collect(),
        ),
        Bson::Document(d) => mongodb::options::UpdateModifications::Document(d),
        _ => mongodb::options::UpdateModifications::Document(Document::new()),
    }
}

/// Record that the steps before `next` are done (for steps that run outside a transaction).
async fn mark_done(ctx: &StepCtx<'_>, next: u32) -> Result<(), StepError> {
    in_txn(ctx, next, |_| Box::pin(async { Ok(()) })).await
}

/// Run `f` and the checkpoint "step `next` is next" in one fenced transaction.
async fn in_txn<F>(ctx: &StepCtx<'_>, next: u32, f: F) -> Result<(), StepError>
where
    F: for<'s> Fn(
        &'s mut ClientSession,
    ) -> futures::future::BoxFuture<'s, mongodb::error::Result<()>>,
{
    let mut guard = ctx.session().lock().await;
    let cp = Checkpoint {
        step: next,
        ..Default::default()
    };
    ctx.fence()
        .txn(&mut guard, async |session| {
            f(&mut *session).await?;
            ledger::save_checkpoint(&ctx.ledger_db, &ctx.entry_id, &cp, session).await?;
            Ok(Some(()))
        })
        .await?;
    Ok(())
}

/// Run step `index` of a migration on the target, resuming from `checkpoint`.
pub async fn run(
    ctx: &StepCtx<'_>,
    index: u32,
    step: &Step,
    checkpoint: &Checkpoint,
) -> Result<(), StepError> {
    ctx.fence().ensure_held().await?;
    if crate::base::interrupt::requested() {
        return Err(StepError::Interrupted);
    }
    let next = index + 1;
    let coll_of = |logical: &str| -> Result<mongodb::Collection<Document>, String> {
        let p = ctx.place(logical)?;
        Ok(ctx.client.database(&p.database).collection(&p.collection))
    };
    match step {
        Step::UpdateMany(s) => {
            let (coll, filter, update) = (
                coll_of(&s.collection)?,
                ctx.filter(&s.collection, &s.filter),
                update_of(&s.update),
            );
            let bypass = ctx.bypass_validation;
            in_txn(ctx, next, |session| {
                let (coll, filter, update) = (coll.clone(), filter.clone(), update.clone());
                Box::pin(async move {
                    coll.update_many(filter, update)
                        .bypass_document_validation(bypass)
                        .session(session)
                        .await
                        .map(drop)
                })
            })
            .await
        }
        Step::RenameField(s) => {
            field_update(
                ctx,
                next,
                &s.collection,
                &s.from,
                doc! { "$rename": { &s.from: &s.to } },
                true,
            )
            .await
        }
        Step::SetDefault(s) => {
            let mut value = doc! { &s.field: json_to_bson(&s.value) };
            if let Some(spec) = ctx.spec(&s.collection) {
                crate::compile::coerce(&mut value, &spec.fields);
            }
            field_update(
                ctx,
                next,
                &s.collection,
                &s.field,
                doc! { "$set": value },
                false,
            )
            .await
        }
        Step::UnsetField(s) => {
            field_update(
                ctx,
                next,
                &s.collection,
                &s.field,
                doc! { "$unset": { &s.field: "" } },
                true,
            )
            .await
        }
        Step::Backfill(s) => backfill(ctx, index, s, checkpoint).await,
        Step::CreateIndex(s) => {
            let p = ctx.place(&s.collection)?;
            let spec = compile_index(&s.index, &p).to_create_spec();
            let db = ctx.client.database(&p.database);
            db.run_command(doc! { "createIndexes": &p.collection, "indexes": [spec] })
                .await
                .map_err(|e| describe_err(&e))?;
            mark_done(ctx, next).await
        }
        Step::DropIndex(s) => {
            let p = ctx.place(&s.collection)?;
            let db = ctx.client.database(&p.database);
            match db
                .run_command(doc! { "dropIndexes": &p.collection, "index": &s.name })
                .await
            {
                Ok(_) => {}
                Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 27 || c.code == 26) =>
                    {}
                Err(e) => return Err(describe_err(&e).into()),
            }
            mark_done(ctx, next).await
        }
        Step::Aggregate(s) => {
            let from = ctx.place(&s.collection)?;
            let coll = ctx
                .client
                .database(&from.database)
                .collection::<Document>(&from.collection);
            for pipeline in ctx.aggregate_runs(s)? {
                let cursor = coll
                    .aggregate(pipeline)
                    .await
                    .map_err(|e| describe_err(&e))?;
                let _: Vec<Document> = cursor.try_collect().await.map_err(|e| describe_err(&e))?;
            }
            mark_done(ctx, next).await
        }
        Step::InsertDocuments(s) => {
            let coll = coll_of(&s.collection)?;
            let spec = ctx.spec(&s.collection);
            let scoped = spec.is_some_and(|sp| sp.is_tenant_scoped());
            let tenants: Vec<Option<String>> = match (scoped, ctx.target.tenant(), &ctx.tenants) {
                (false, _, _) => vec![None],
                (true, Some(t), _) => vec![Some(t.to_owned())],
                (true, None, Some(ids)) => ids.iter().cloned().map(Some).collect(),
                (true, None, None) => return Err("insert_documents into a shared tenant collection needs the tenants: give the migration `tiers`".into()),
            };
            let standard = spec.map(|sp| sp.standard_field_names()).unwrap_or_default();
            let docs: Vec<(Document, Document)> = tenants
                .iter()
                .flat_map(|t| {
                    s.documents.iter().map(move |d| {
                        let mut d = json_to_bson(&serde_json::Value::Object(d.clone()))
                            .as_document()
                            .cloned()
                            .unwrap_or_default();
                        if let Some(sp) = spec {
                            let fields: indexmap::IndexMap<String, crate::spec::Field> = sp
                                .effective_fields(None)
                                .into_iter()
                                .map(|(k, (f, _))| (k, f))
                                .collect();
                            crate::compile::coerce(&mut d, &fields);
                        }
                        if let Some(t) = t {
                            d.insert("tenant_id", t.as_str());
                        }
                        let mut key = Document::new();
                        for k in s
                            .key
                            .iter()
                            .map(String::as_str)
                            .chain(t.as_ref().map(|_| "tenant_id"))
                        {
                            key.insert(k, d.get(k).cloned().unwrap_or(Bson::Null));
                        }
                        (key, d)
                    })
                })
                .collect();
            let now = bson::DateTime::now();
            let bypass = ctx.bypass_validation;
            in_txn(ctx, next, |session| {
                let (coll, docs, standard) = (coll.clone(), docs.clone(), standard.clone());
                Box::pin(async move {
                    for (key, mut d) in docs {
                        for name in standard[..2].iter().flatten() {
                            if !d.contains_key(name) {
                                d.insert(name, now);
                            }
                        }
                        coll.update_one(key, doc! { "$setOnInsert": d })
                            .upsert(true)
                            .bypass_document_validation(bypass)
                            .session(&mut *session)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
        }
        Step::Command(s) => {
            let cmd = json_to_bson(&ctx.command(&s.command))
                .as_document()
                .cloned()
                .unwrap_or_default();
            ctx.client
                .database(&ctx.command_db())
                .run_command(cmd)
                .await
                .map_err(|e| describe_err(&e))?;
            mark_done(ctx, next).await
        }
    }
}

/// update_many on documents that have (or lack) `field`, in a transaction with the checkpoint.
async fn field_update(
    ctx: &StepCtx<'_>,
    next: u32,
    logical: &str,
    field: &str,
    update: Document,
    has_field: bool,
) -> Result<(), StepError> {
    let p = ctx.place(logical)?;
    let coll = ctx
        .client
        .database(&p.database)
        .collection::<Document>(&p.collection);
    let mut base = serde_json::Map::new();
    base.insert(
        field.to_owned(),
        serde_json::json!({ "$exists": has_field }),
    );
    let filter = ctx.filter(logical, &base);
    let bypass = ctx.bypass_validation;
    in_txn(ctx, next, |session| {
        let (coll, filter, update) = (coll.clone(), filter.clone(), update.clone());
        Box::pin(async move {
            coll.update_many(filter, update)
                .bypass_document_validation(bypass)
                .session(session)
                .await
                .map(drop)
        })
    })
    .await
}

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
async fn backfill(
    ctx: &StepCtx<'_>,
    index: u32,
    s: &super::source::BackfillStep,
    checkpoint: &Checkpoint,
) -> Result<(), StepError> {
    let p = ctx.place(&s.collection)?;
    let coll = ctx
        .client
        .database(&p.database)
        .collection::<Document>(&p.collection);
    let filter = ctx.filter(&s.collection, &s.filter);
    let update = update_of(&s.update);
    let (last, mut processed) = if checkpoint.step == index {
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
    let walk = match &last {
        Some(l) => doc! { "$and": [filter.clone(), after(l)] },
        None => filter.clone(),
    };
    let mut ids = coll
        .find(walk)
        .sort(doc! { "_id": 1 })
        .projection(doc! { "_id": 1 })
        .batch_size(s.batch_size)
        .await
        .map_err(|e| describe_err(&e))?;
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
