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
    /// The ledger database and entry id, for checkpoints.
    pub ledger_db: Database,
    pub entry_id: String,
    pub batch_pause: Duration,
    pub bypass_validation: bool,
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// The one session every transaction of this target run uses (its id is in the lease).
    pub session: &'a tokio::sync::Mutex<ClientSession>,
}

impl StepCtx<'_> {
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
            Step::Aggregate(s) => format!(
                "aggregate {} -> $merge into {}",
                ns(&s.collection),
                ns(&s.into)
            ),
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

    fn command_db(&self) -> String {
        match self.scope {
            Scope::Tenant => match &self.target.kind {
                crate::tenancy::TargetKind::Database { tenant, .. } => {
                    self.dbs.tenant.replace("{tenant_id}", tenant)
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
    crate::apply::describe(e)
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
async fn mark_done(ctx: &StepCtx<'_>, next: u32) -> Result<(), String> {
    let cp = Checkpoint {
        step: next,
        ..Default::default()
    };
    ledger::save_checkpoint(&ctx.ledger_db, &ctx.entry_id, &cp, None)
        .await
        .map_err(|e| describe_err(&e))
}

/// Run `f` and the checkpoint "step `next` is next" in one transaction.
async fn in_txn<F>(ctx: &StepCtx<'_>, next: u32, f: F) -> Result<(), String>
where
    F: for<'s> Fn(
        &'s mut ClientSession,
    ) -> futures::future::BoxFuture<'s, mongodb::error::Result<()>>,
{
    let mut guard = ctx.session.lock().await;
    let session: &mut ClientSession = &mut guard;
    for attempt in 0..3 {
        session
            .start_transaction()
            .await
            .map_err(|e| describe_err(&e))?;
        let result = async {
            f(&mut *session).await?;
            ledger::save_checkpoint(
                &ctx.ledger_db,
                &ctx.entry_id,
                &Checkpoint {
                    step: next,
                    last_id: None,
                    processed: 0,
                },
                Some(&mut *session),
            )
            .await?;
            session.commit_transaction().await
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.contains_label("TransientTransactionError") && attempt < 2 => {
                let _ = session.abort_transaction().await;
                continue;
            }
            Err(e) => {
                let _ = session.abort_transaction().await;
                return Err(describe_err(&e));
            }
        }
    }
    Err("transaction kept failing with transient errors".into())
}

/// Run step `index` of a migration on the target, resuming from `checkpoint`.
pub async fn run(
    ctx: &StepCtx<'_>,
    index: u32,
    step: &Step,
    checkpoint: &Checkpoint,
) -> Result<(), String> {
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
                Err(e) => return Err(describe_err(&e)),
            }
            mark_done(ctx, next).await
        }
        Step::Aggregate(s) => {
            let (from, into) = (ctx.place(&s.collection)?, ctx.place(&s.into)?);
            let mut pipeline: Vec<Document> = Vec::new();
            let scope = ctx.filter(&s.collection, &Default::default());
            if !scope.is_empty() {
                pipeline.push(doc! { "$match": scope });
            }
            pipeline.extend(s.pipeline.iter().filter_map(|st| {
                json_to_bson(&serde_json::Value::Object(st.clone()))
                    .as_document()
                    .cloned()
            }));
            let on: Bson = if s.on.is_empty() {
                Bson::String("_id".into())
            } else {
                Bson::Array(s.on.iter().cloned().map(Bson::String).collect())
            };
            pipeline.push(doc! { "$merge": { "into": { "db": &into.database, "coll": &into.collection }, "on": on, "whenMatched": "merge", "whenNotMatched": "insert" } });
            let cursor = ctx
                .client
                .database(&from.database)
                .collection::<Document>(&from.collection)
                .aggregate(pipeline)
                .await
                .map_err(|e| describe_err(&e))?;
            let _: Vec<Document> = cursor.try_collect().await.map_err(|e| describe_err(&e))?;
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
) -> Result<(), String> {
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

/// Batches by `_id` range: each batch's update and its checkpoint commit together, so a crash
/// resumes after the last committed batch and no document is updated twice.
///
/// One cursor walks the matching `_id`s in order and cuts a batch every `batch_size` of them,
/// so each batch costs one update (an `_id` range) rather than a lookup of its end and then
/// the update.
async fn backfill(
    ctx: &StepCtx<'_>,
    index: u32,
    s: &super::source::BackfillStep,
    checkpoint: &Checkpoint,
) -> Result<(), String> {
    let p = ctx.place(&s.collection)?;
    let coll = ctx
        .client
        .database(&p.database)
        .collection::<Document>(&p.collection);
    let filter = ctx.filter(&s.collection, &s.filter);
    let update = update_of(&s.update);
    let (mut last, mut processed) = if checkpoint.step == index {
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
    let mut walk = filter.clone();
    if let Some(l) = &last {
        walk = doc! { "$and": [walk, { "_id": { "$gt": l.clone() } }] };
    }
    let mut ids = coll
        .find(walk)
        .sort(doc! { "_id": 1 })
        .projection(doc! { "_id": 1 })
        .batch_size(s.batch_size)
        .await
        .map_err(|e| describe_err(&e))?;
    let mut guard = ctx.session.lock().await;
    let session: &mut ClientSession = &mut guard;
    let mut in_batch = 0u64;
    let mut max = None;
    loop {
        let next = ids.try_next().await.map_err(|e| describe_err(&e))?;
        let end = next.is_none();
        if let Some(id) = next.and_then(|d| d.get("_id").cloned()) {
            in_batch += 1;
            max = Some(id);
        }
        if in_batch < u64::from(s.batch_size) && !end {
            continue;
        }
        let Some(hi) = max.take() else {
            break;
        };
        let cp = Checkpoint {
            step: index,
            last_id: Some(hi.clone()),
            processed: processed + in_batch,
        };
        let mut range = doc! { "$lte": hi.clone() };
        if let Some(l) = &last {
            range.insert("$gt", l.clone());
        }
        let batch = doc! { "$and": [filter.clone(), { "_id": range }] };
        session
            .start_transaction()
            .await
            .map_err(|e| describe_err(&e))?;
        let r = async {
            coll.update_many(batch, update.clone())
                .bypass_document_validation(ctx.bypass_validation)
                .session(&mut *session)
                .await?;
            ledger::save_checkpoint(&ctx.ledger_db, &ctx.entry_id, &cp, Some(&mut *session))
                .await?;
            session.commit_transaction().await
        }
        .await;
        if let Err(e) = r {
            let _ = session.abort_transaction().await;
            return Err(format!(
                "backfill batch after {processed} document(s): {}",
                describe_err(&e)
            ));
        }
        processed += in_batch;
        in_batch = 0;
        last = Some(hi);
        (ctx.progress)(&format!(
            "backfill {}.{}: {processed} document(s)",
            p.database, p.collection
        ));
        if end {
            break;
        }
        if !ctx.batch_pause.is_zero() {
            tokio::time::sleep(ctx.batch_pause).await;
        }
    }
    mark_done(ctx, index + 1).await
}
