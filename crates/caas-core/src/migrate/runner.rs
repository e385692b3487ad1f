//! Running migrations over the fleet: which migrations a target needs, the cheap no-op
//! check (one ledger query per database), then per target: lease -> ledger -> steps.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use mongodb::{Client, Database};
use serde::Serialize;

use super::ledger::{self};
use super::lock;
use super::source::Migration;
use super::status::{self, *};
use super::steps::{self, StepCtx, StepError};
use crate::base::error::Error;
use crate::config::Config;
use crate::fleet::registry::Tenant;
use crate::spec::CollectionSpec;
use crate::tenancy::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Other targets go on after a failure (the end report lists every failure).
    Continue,
    /// No new target starts after the first failure.
    Stop,
}

pub struct UpOptions {
    pub to: Option<u32>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub on_error: OnError,
    pub max_failures: Option<usize>,
    pub lock_wait: Duration,
    pub lease: Duration,
    pub batch_pause: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    UpToDate,
    Applied,
    Failed,
    /// Not started: `--on-error stop` or `--max-failures` was reached, or Ctrl-C.
    NotStarted,
    /// Stopped by Ctrl-C at a safe point; the ledger keeps its checkpoint.
    Interrupted,
    DryRun,
    /// A tenant it holds is suspended (read-only): nothing ran; `tenant resume` and rerun.
    Skipped,
}

/// How one target's run ended.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRun {
    pub target: Target,
    pub status: RunStatus,
    pub applied: Vec<u32>,
    /// (version, step index, step kind, error)
    pub failure: Option<(u32, u32, String, String)>,
    pub error: Option<String>,
    pub resumed: bool,
    /// For --dry-run: the steps with physical names.
    pub steps: Vec<String>,
}

impl TargetRun {
    /// Stopped by Ctrl-C at a safe point in `m`; `rerun` says how to finish.
    pub fn interrupted(&mut self, m: &Migration, rerun: &str) {
        self.status = RunStatus::Interrupted;
        self.error = Some(format!(
            "V{:04}__{} interrupted at a safe point; {rerun}",
            m.version, m.name
        ));
    }

    pub fn new(target: Target) -> TargetRun {
        TargetRun {
            target,
            status: RunStatus::UpToDate,
            applied: vec![],
            failure: None,
            error: None,
            resumed: false,
            steps: vec![],
        }
    }
}

/// Everything `up` needs from the caller.
pub struct Fleetwide<'a> {
    pub client: &'a Client,
    pub config: &'a Config,
    pub specs: &'a [&'a CollectionSpec],
    pub tenants: &'a [Tenant],
    pub migrations: &'a [Migration],
}

pub async fn up(
    f: &Fleetwide<'_>,
    targets: &[Target],
    opts: &UpOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<TargetRun>, Error> {
    let states = status::states(f.client, f.config, targets, f.migrations).await?;
    refuse_edited(&states)?;
    let wanted = |v: u32| opts.to.is_none_or(|to| v <= to);
    let failures = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (failures, stop) = (&failures, &stop);
    let runs = crate::base::pool::in_order(states, opts.concurrency, |state| async move {
        let pending: Vec<&Migration> = f
            .migrations
            .iter()
            .filter(|m| state.pending.contains(&m.version) && wanted(m.version))
            .collect();
        let base = TargetRun::new(state.target.clone());
        let suspended = suspended_on(f.tenants, &state.target);
        let run = if pending.is_empty() {
            base
        } else if !suspended.is_empty() && !opts.dry_run {
            skipped(base, &suspended, "up")
        } else if stop.load(Ordering::SeqCst) || crate::base::interrupt::requested() {
            TargetRun {
                status: RunStatus::NotStarted,
                ..base
            }
        } else if opts.dry_run {
            dry_run(f, &state.target, &pending, base).await
        } else {
            run_target(f, &state.target, opts, progress, base).await
        };
        if run.status == RunStatus::Failed {
            let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
            if opts.on_error == OnError::Stop || opts.max_failures.is_some_and(|k| n >= k) {
                stop.store(true, Ordering::SeqCst);
            }
        }
        run
    })
    .await;
    Ok(runs)
}

/// A target not migrated (`up` or `down`) because tenants it holds are suspended.
pub(crate) fn skipped(base: TargetRun, suspended: &[String], command: &str) -> TargetRun {
    TargetRun {
        status: RunStatus::Skipped,
        error: Some(format!(
            "skipped: tenant(s) {} suspended (read-only; the write fence would refuse the migration's writes to their documents); `caas tenant resume ID`, then `caas migrate {command}`",
            suspended.join(", ")
        )),
        ..base
    }
}

/// The suspended tenants whose documents live on `target`.
pub(crate) fn suspended_on(tenants: &[Tenant], target: &Target) -> Vec<String> {
    let label = target.to_string();
    tenants
        .iter()
        .filter(|t| t.status == "suspended" && t.target == label)
        .map(|t| t.id.clone())
        .collect()
}

pub(crate) fn step_ctx<'a>(
    f: &'a Fleetwide<'a>,
    target: &'a Target,
    m: &Migration,
    progress: &'a (dyn Fn(&str) + Sync),
    batch_pause: Duration,
    lease: Option<(
        &'a tokio::sync::Mutex<mongodb::ClientSession>,
        &'a lock::Fence,
    )>,
) -> StepCtx<'a> {
    StepCtx {
        client: f.client,
        target,
        specs: f.specs,
        dbs: &f.config.databases,
        scope: m.body.scope,
        tenants: allowed_tenants(m, target, f.config, f.tenants),
        tenants_here: tenants_here(m, target, f.config, f.tenants),
        ledger_db: f.client.database(&ledger_db(target, f.config)),
        entry_id: ledger::entry_id(&target.to_string(), m.version),
        batch_pause,
        bypass_validation: m.body.bypass_validation,
        progress,
        lease,
    }
}

/// A step with physical names, for `--dry-run`.
pub fn describe_step(
    f: &Fleetwide<'_>,
    target: &Target,
    m: &Migration,
    step: &super::Step,
) -> String {
    let quiet = |_: &str| {};
    step_ctx(f, target, m, &quiet, Duration::ZERO, None).describe(step)
}

async fn dry_run(
    f: &Fleetwide<'_>,
    target: &Target,
    pending: &[&Migration],
    mut run: TargetRun,
) -> TargetRun {
    for m in pending {
        for step in &m.body.up {
            run.steps.push(format!(
                "V{:04}__{}: {}",
                m.version,
                m.name,
                describe_step(f, target, m, step)
            ));
        }
    }
    run.status = RunStatus::DryRun;
    run
}

/// A runner's identity in leases and messages: host, process and a unique suffix.
pub fn new_owner() -> String {
    format!("{}:{}", ledger::host(), bson::oid::ObjectId::new().to_hex())
}

/// One session for every transaction of a target run, and the target's lease recording its
/// id, so a runner that takes over after a crash can end the transaction this one left open.
pub async fn lease_target(
    client: &Client,
    db: &Database,
    label: &str,
    lock_wait: Duration,
    lease: Duration,
) -> Result<(lock::Lease, tokio::sync::Mutex<mongodb::ClientSession>), Error> {
    let session = client
        .start_session()
        .await
        .map_err(|e| Error::Connection(crate::base::driver::describe(&e)))?;
    let lsid = session.id().clone();
    let lease = lock::acquire(db, label, &new_owner(), lock_wait, lease, lsid).await?;
    Ok((lease, tokio::sync::Mutex::new(session)))
}

async fn run_target(
    f: &Fleetwide<'_>,
    target: &Target,
    opts: &UpOptions,
    progress: &(dyn Fn(&str) + Sync),
    mut run: TargetRun,
) -> TargetRun {
    let label = target.to_string();
    let started = std::time::Instant::now();
    tracing::info!(target = %label, "migrate: target start");
    let db: Database = f.client.database(&ledger_db(target, f.config));
    let (lease, session) =
        match lease_target(f.client, &db, &label, opts.lock_wait, opts.lease).await {
            Ok(l) => l,
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(format!("{e:#}"));
                return run;
            }
        };
    let result = run_locked(
        f,
        target,
        opts,
        progress,
        &db,
        &session,
        lease.fence(),
        &mut run,
    )
    .await;
    let released = lease.release().await;
    match (result, released) {
        (Err(e), _) | (Ok(()), Err(e)) => {
            run.status = RunStatus::Failed;
            run.error.get_or_insert_with(|| format!("{e:#}"));
        }
        (Ok(()), Ok(())) => {}
    }
    tracing::info!(
        target = %label,
        status = ?run.status,
        applied = ?run.applied,
        ms = started.elapsed().as_millis() as u64,
        "migrate: target done"
    );
    run
}

/// Run a migration's `up` steps from the checkpoint; the first that fails, with its
/// index and kind.
async fn up_steps(
    ctx: &StepCtx<'_>,
    m: &Migration,
    label: &str,
    checkpoint: &ledger::Checkpoint,
    progress: &(dyn Fn(&str) + Sync),
) -> Option<(u32, String, StepError)> {
    for (i, step) in m.body.up.iter().enumerate() {
        let i = i as u32;
        if i < checkpoint.step {
            continue;
        }
        progress(&format!(
            "{label}: V{:04}__{} step {} {}",
            m.version,
            m.name,
            i + 1,
            step.name()
        ));
        if let Err(e) = steps::run(ctx, i, step, checkpoint).await {
            return Some((i, step.name().to_owned(), e));
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    f: &Fleetwide<'_>,
    target: &Target,
    opts: &UpOptions,
    progress: &(dyn Fn(&str) + Sync),
    db: &Database,
    session: &tokio::sync::Mutex<mongodb::ClientSession>,
    fence: &lock::Fence,
    run: &mut TargetRun,
) -> Result<()> {
    let label = target.to_string();
    let (entries, state) = status::reread(db, target, f.config, f.migrations).await?;
    refuse_edited(std::slice::from_ref(&state))?;
    refuse_reverting(&state)?;
    for m in f
        .migrations
        .iter()
        .filter(|m| state.pending.contains(&m.version) && opts.to.is_none_or(|to| m.version <= to))
    {
        let entry = ledger::start(
            fence,
            &mut *session.lock().await,
            &label,
            m,
            entries.get(&m.version),
        )
        .await?;
        run.resumed |= entry.resumed > entries.get(&m.version).map_or(0, |e| e.resumed);
        let ctx = step_ctx(
            f,
            target,
            m,
            progress,
            opts.batch_pause,
            Some((session, fence)),
        );
        let failure = up_steps(&ctx, m, &label, &entry.checkpoint, progress).await;
        match failure {
            None => {
                ledger::finish(fence, &mut *session.lock().await, &entry, None).await?;
                run.applied.push(m.version);
            }
            // Another runner holds the target now: write nothing, not even `failed`.
            Some((_, _, StepError::Lost(lost))) => return Err(lost.into()),
            // Ctrl-C: the entry stays `running` with its checkpoint; a rerun resumes.
            Some((_, _, StepError::Interrupted)) => {
                run.interrupted(m, "rerun to resume");
                return Ok(());
            }
            Some((i, kind, StepError::Failed(e))) => {
                let message = format!("step {} ({kind}): {e}", i + 1);
                ledger::finish(
                    fence,
                    &mut *session.lock().await,
                    &entry,
                    Some(message.clone()),
                )
                .await?;
                run.failure = Some((m.version, i + 1, kind, e));
                run.status = RunStatus::Failed;
                run.error = Some(format!("V{:04}__{} {message}", m.version, m.name));
                return Ok(());
            }
        }
    }
    run.status = if run.applied.is_empty() {
        RunStatus::UpToDate
    } else {
        RunStatus::Applied
    };
    Ok(())
}
