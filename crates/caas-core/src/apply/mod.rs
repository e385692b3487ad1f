//! Execute plans. Each target runs on its own (a work queue of `--concurrency` targets);
//! a failing target does not stop the others unless `fail_fast`. Before a change whose
//! success depends on the data, a preflight counts the documents it would reject.

mod preflight;

use std::sync::atomic::{AtomicBool, Ordering};

use bson::{doc, Document};
use mongodb::error::Error;

use crate::base::driver::describe;
use mongodb::{Client, Database};
use serde::Serialize;

use crate::plan::{rebuild_steps, Action, Change, IndexStep, Safety, TargetPlan};
use crate::tenancy::Target;

/// What `apply` may do beyond safe changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Run destructive changes (index rebuilds, drops).
    pub allow_destructive: bool,
    /// Drop undeclared live indexes and collections (with `allow_destructive`).
    pub prune: bool,
    /// Tighten validators even when existing documents would fail them.
    pub allow_invalid_docs: bool,
    /// Stop starting new targets after the first failure.
    pub fail_fast: bool,
    pub concurrency: usize,
}

/// How one target ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NoChanges,
    Applied,
    /// Some changes were held back (they need a flag or a person).
    Incomplete,
    Failed,
    /// Not started because an earlier target failed under `--fail-fast`.
    NotStarted,
}

/// A change that was not executed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub namespace: String,
    pub change: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: Target,
    pub status: Status,
    pub applied: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub error: Option<String>,
}

/// Apply every plan; `on_done` is called as each target finishes (for progress output).
pub async fn apply(
    client: &Client,
    plans: Vec<TargetPlan>,
    opts: ApplyOptions,
    on_done: &(dyn Fn(&TargetReport) + Sync),
) -> Vec<TargetReport> {
    apply_each(client, plans, &|p| p, opts, on_done).await
}

/// Apply lazily: each item becomes its plan only when a worker takes it, so at most
/// `concurrency` plans exist at once however many targets there are.
pub async fn apply_each<T: Send>(
    client: &Client,
    items: Vec<T>,
    plan_of: &(dyn Fn(T) -> TargetPlan + Sync),
    opts: ApplyOptions,
    on_done: &(dyn Fn(&TargetReport) + Sync),
) -> Vec<TargetReport> {
    let stop = AtomicBool::new(false);
    let stop = &stop;
    crate::base::pool::in_order(items, opts.concurrency, |item| async move {
        let plan = plan_of(item);
        let report = if stop.load(Ordering::SeqCst) || crate::base::interrupt::requested() {
            TargetReport {
                target: plan.target.clone(),
                status: Status::NotStarted,
                applied: vec![],
                skipped: vec![],
                error: None,
            }
        } else {
            tracing::info!(target = %plan.target, changes = plan.changes.len(), "apply: target start");
            apply_target(client, &plan, opts).await
        };
        if report.status == Status::Failed && opts.fail_fast {
            stop.store(true, Ordering::SeqCst);
        }
        on_done(&report);
        report
    })
    .await
}

/// Why a change is held back under these options, if it is.
pub fn held_back(c: &Change, opts: ApplyOptions) -> Option<String> {
    if let Action::Conflict { .. } = &c.action {
        return Some("needs a person (caas cannot change this in place)".into());
    }
    if let Action::DropCollection { owner, .. } = &c.action {
        if !crate::plan::is_prunable_owner(owner) {
            return Some(format!("belongs to {owner}; tenant data is never pruned"));
        }
    }
    if c.undeclared && !opts.prune {
        return Some("undeclared; `--prune --allow-destructive` drops it".into());
    }
    if c.safety == Safety::Destructive && !opts.allow_destructive {
        return Some("destructive; rerun with --allow-destructive".into());
    }
    None
}

async fn apply_target(client: &Client, plan: &TargetPlan, opts: ApplyOptions) -> TargetReport {
    let started = std::time::Instant::now();
    let report = apply_plan(client, plan, opts).await;
    tracing::info!(
        target = %report.target,
        status = ?report.status,
        applied = report.applied.len(),
        held_back = report.skipped.len(),
        ms = started.elapsed().as_millis() as u64,
        "apply: target done"
    );
    report
}

async fn apply_plan(client: &Client, plan: &TargetPlan, opts: ApplyOptions) -> TargetReport {
    let mut report = TargetReport {
        target: plan.target.clone(),
        status: Status::NoChanges,
        applied: vec![],
        skipped: vec![],
        error: None,
    };
    let todo = match admitted(client, plan, opts, &mut report.skipped).await {
        Ok(todo) => todo,
        Err(message) => {
            report.status = Status::Failed;
            report.error = Some(message);
            return report;
        }
    };
    // Consecutive new indexes of one collection go in one createIndexes command.
    let mut i = 0;
    while i < todo.len() {
        let c = todo[i];
        let db = client.database(&c.database);
        let batch: Vec<&Change> = if matches!(c.action, Action::CreateIndex { .. }) {
            todo[i..]
                .iter()
                .take_while(|x| {
                    matches!(x.action, Action::CreateIndex { .. })
                        && x.database == c.database
                        && x.collection == c.collection
                })
                .copied()
                .collect()
        } else {
            vec![c]
        };
        i += batch.len();
        let result = if batch.len() > 1 {
            create_indexes(&db, &batch).await
        } else {
            execute(&db, c).await
        };
        match result {
            Ok(()) => report.applied.extend(
                batch
                    .iter()
                    .map(|c| format!("{}.{}: {}", c.database, c.collection, c.summary())),
            ),
            Err(message) => {
                report.status = Status::Failed;
                report.error = Some(message);
                return report;
            }
        }
    }
    report.status = match (
        report.applied.is_empty(),
        report
            .skipped
            .iter()
            .any(|s| !s.reason.starts_with("undeclared")),
    ) {
        (_, true) => Status::Incomplete,
        (true, false) => Status::NoChanges,
        (false, false) => Status::Applied,
    };
    report
}

/// The changes that may run under these options and pass their preflight; the others
/// go to `skipped` with the reason. A preflight the server cannot answer fails the target.
async fn admitted<'p>(
    client: &Client,
    plan: &'p TargetPlan,
    opts: ApplyOptions,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<&'p Change>, String> {
    let mut todo: Vec<&Change> = Vec::new();
    for c in &plan.changes {
        let ns = format!("{}.{}", c.database, c.collection);
        if let Some(reason) = held_back(c, opts) {
            skipped.push(Skipped {
                namespace: ns,
                change: c.summary(),
                reason,
            });
            continue;
        }
        match preflight::check(client, c, opts).await {
            Ok(None) => todo.push(c),
            Ok(Some(reason)) => skipped.push(Skipped {
                namespace: ns,
                change: c.summary(),
                reason,
            }),
            Err(e) => {
                return Err(format!(
                    "{ns}: preflight for `{}` failed: {}",
                    c.summary(),
                    describe(&e)
                ))
            }
        }
    }
    Ok(todo)
}

/// createIndexes with several indexes; on failure, retry one by one to name the culprit.
async fn create_indexes(db: &Database, batch: &[&Change]) -> Result<(), String> {
    let specs: Vec<Document> = batch
        .iter()
        .filter_map(|c| match &c.action {
            Action::CreateIndex { index } => Some(index.to_create_spec()),
            _ => None,
        })
        .collect();
    let coll = &batch[0].collection;
    if db
        .run_command(doc! { "createIndexes": coll, "indexes": specs })
        .await
        .is_ok()
    {
        return Ok(());
    }
    for c in batch {
        execute(db, c).await?;
    }
    Ok(())
}

async fn execute(db: &Database, c: &Change) -> Result<(), String> {
    let ns = format!("{}.{}", c.database, c.collection);
    let coll = &c.collection;
    let fail = |what: String| {
        let ns = ns.clone();
        move |e: Error| format!("{ns}: {what} refused by the server: {}", describe(&e))
    };
    match &c.action {
        Action::CreateCollection { options } => {
            let mut cmd = doc! { "create": coll };
            cmd.extend(options.clone());
            db.run_command(cmd)
                .await
                .map(drop)
                .map_err(fail("create collection".into()))
        }
        Action::UpdateValidation { .. } | Action::ModifyIndex { .. } => {
            let cmd = c
                .coll_mod()
                .expect("validation and index-option changes are collMods");
            let what = match &c.action {
                Action::ModifyIndex { name, .. } => format!("collMod of index {name}"),
                _ => "collMod".to_string(),
            };
            db.run_command(cmd).await.map(drop).map_err(fail(what))
        }
        Action::CreateIndex { index } => db
            .run_command(doc! { "createIndexes": coll, "indexes": [index.to_create_spec()] })
            .await
            .map(drop)
            .map_err(fail(format!("index {}", index.name))),
        Action::RebuildIndex { live, index, .. } => {
            for step in rebuild_steps(live, index) {
                match step {
                    IndexStep::Create(spec) => {
                        let name = spec.get_str("name").unwrap_or("").to_owned();
                        db.run_command(doc! { "createIndexes": coll, "indexes": [spec] })
                            .await
                            .map_err(fail(format!("index {name} (rebuild)")))?;
                    }
                    IndexStep::Drop(name) => {
                        db.run_command(doc! { "dropIndexes": coll, "index": &name })
                            .await
                            .map_err(fail(format!("drop of index {name} (rebuild)")))?;
                    }
                }
            }
            Ok(())
        }
        Action::DropIndex { name, .. } => db
            .run_command(doc! { "dropIndexes": coll, "index": name })
            .await
            .map(drop)
            .map_err(fail(format!("drop of index {name}"))),
        Action::DropCollection { .. } => db
            .run_command(doc! { "drop": coll })
            .await
            .map(drop)
            .map_err(fail("drop collection".into())),
        Action::Conflict { reason } => Err(format!("{ns}: {reason}")),
    }
}
