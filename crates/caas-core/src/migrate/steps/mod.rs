//! Executing one migration step on one target. Data steps run in a transaction together
//! with the ledger checkpoint that marks them done, so a crash never applies a step twice;
//! a backfill commits each batch with its checkpoint the same way. Index steps and raw
//! commands cannot run in a transaction: they are idempotent (an existing index, a missing
//! one to drop, are not errors).

use std::time::Duration;

use bson::{doc, Bson, Document};
use mongodb::{Client, ClientSession, Database};

mod aggregate;
mod backfill;
mod command;
mod index;
mod write;

pub use backfill::{after, bracket};

use crate::compile::{compile_index, json_to_bson};
use crate::config::Databases;
use crate::migrate::ledger::{self, Checkpoint};
use crate::migrate::lock::{Fence, FenceError, LockError};
use crate::migrate::source::{Scope, Step};
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

    /// The target's physical collection of a logical one.
    fn collection(&self, logical: &str) -> Result<mongodb::Collection<Document>, String> {
        let p = self.place(logical)?;
        Ok(self.client.database(&p.database).collection(&p.collection))
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
    tracing::info!(target = %ctx.target, step = index + 1, kind = step.name(), "migrate: step");
    let started = std::time::Instant::now();
    let result = run_kind(ctx, index, next, step, checkpoint).await;
    tracing::info!(
        target = %ctx.target,
        step = index + 1,
        kind = step.name(),
        outcome = match &result {
            Ok(()) => "ok",
            Err(StepError::Failed(_)) => "failed",
            Err(StepError::Lost(_)) => "lost",
            Err(StepError::Interrupted) => "interrupted",
        },
        ms = started.elapsed().as_millis() as u64,
        "migrate: step done"
    );
    result
}

async fn run_kind(
    ctx: &StepCtx<'_>,
    index: u32,
    next: u32,
    step: &Step,
    checkpoint: &Checkpoint,
) -> Result<(), StepError> {
    match step {
        Step::UpdateMany(s) => write::update_many(ctx, next, s).await,
        Step::RenameField(s) => write::rename_field(ctx, next, s).await,
        Step::SetDefault(s) => write::set_default(ctx, next, s).await,
        Step::UnsetField(s) => write::unset_field(ctx, next, s).await,
        Step::InsertDocuments(s) => write::insert_documents(ctx, next, s).await,
        Step::Backfill(s) => backfill::run(ctx, index, s, checkpoint).await,
        Step::CreateIndex(s) => index::create(ctx, next, s).await,
        Step::DropIndex(s) => index::drop(ctx, next, s).await,
        Step::Aggregate(s) => aggregate::run(ctx, next, s).await,
        Step::Command(s) => command::run(ctx, next, s).await,
    }
}
