//! `migrate down`: undo the newest migrations of each target, as safely as `up` applies
//! them. Under the target's lease the ledger is read again; the entry turns `reverting`
//! before the first down step; every down step and backfill batch commits with its
//! checkpoint; a killed revert is finished by the next `down`; and a version is never
//! undone while a newer one is applied (or half applied) on that target.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};

use super::ledger::{self, Checkpoint, Entry, EntryStatus};
use super::lock::Fence;
use super::runner::{self, Fleetwide, RunStatus, TargetRun};
use super::source::Migration;
use super::status::{self, ledger_db, state_of, TargetState};
use super::steps::{self, StepCtx, StepError};
use crate::base::error::Error;
use crate::tenancy::Target;

#[derive(Debug, Clone)]
pub struct DownOptions {
    /// How many versions to undo per target (default 1); an interrupted revert counts.
    pub steps: Option<usize>,
    /// Undo every version above this one.
    pub to: Option<u32>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub lock_wait: Duration,
    pub lease: Duration,
    pub batch_pause: Duration,
}

/// Whether an entry has changed data that undoing an older version would sit under.
fn holds_changes(e: &Entry) -> bool {
    match e.status {
        EntryStatus::Applied
        | EntryStatus::Running
        | EntryStatus::Reverting
        | EntryStatus::Baselined => true,
        EntryStatus::Failed => e.checkpoint.step > 0 || e.checkpoint.last_id.is_some(),
        EntryStatus::Reverted => false,
    }
}

/// The versions to undo on a target, newest first: an interrupted revert, then applied
/// versions. Refused when that would undo a version under a newer one that holds changes
/// and is not undone too (running, failed part-way, or applied but without a file).
pub fn plan_down(
    state: &TargetState,
    entries: &BTreeMap<u32, Entry>,
    steps: Option<usize>,
    to: Option<u32>,
) -> Result<Vec<u32>, String> {
    let mut candidates: Vec<u32> = state
        .reverting
        .iter()
        .chain(state.applied.iter())
        .copied()
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let undo: Vec<u32> = match (steps, to) {
        (_, Some(v)) => candidates.into_iter().filter(|a| *a > v).collect(),
        (n, None) => candidates.into_iter().take(n.unwrap_or(1)).collect(),
    };
    let Some(lowest) = undo.iter().min().copied() else {
        return Ok(undo);
    };
    for (v, e) in entries.range(lowest + 1..) {
        if holds_changes(e) && !undo.contains(v) {
            let what = match e.status {
                EntryStatus::Running => {
                    "is running or was interrupted (`caas migrate up` finishes it)".to_string()
                }
                EntryStatus::Failed => {
                    "failed part-way (`caas migrate up` finishes it once fixed)".to_string()
                }
                _ if state.missing.contains(v) => "is applied but its file is gone".to_string(),
                _ => format!("is {:?}", e.status).to_lowercase(),
            };
            return Err(format!(
                "{}: will not revert V{lowest:04} while the newer V{v:04} {what}",
                state.target
            ));
        }
    }
    Ok(undo)
}

pub async fn down(
    f: &Fleetwide<'_>,
    targets: &[Target],
    opts: &DownOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<TargetRun>, Error> {
    // A first look without leases: refuse early when a selected version has no down steps.
    let ledgers = status::read_ledgers(f.client, f.config, targets).await?;
    let empty = BTreeMap::new();
    for t in targets {
        let entries = ledgers.get(&t.to_string()).unwrap_or(&empty);
        let state = state_of(t, f.config, f.migrations, entries);
        if let Ok(undo) = plan_down(&state, entries, opts.steps, opts.to) {
            for v in undo {
                let m = migration(f, v)?;
                if m.body.down.is_empty() {
                    return Err(anyhow::anyhow!("V{:04}__{} has no `down` steps; nothing was reverted (add `down:` to the file)", m.version, m.name).into());
                }
            }
        }
    }
    let (ledgers, empty) = (&ledgers, &empty);
    let runs = crate::base::pool::in_order(targets, opts.concurrency, |t| async move {
        let entries = ledgers.get(&t.to_string()).unwrap_or(empty);
        let state = state_of(t, f.config, f.migrations, entries);
        let mut run = TargetRun::new(t.clone());
        match plan_down(&state, entries, opts.steps, opts.to) {
            Ok(undo) if undo.is_empty() => {}
            Ok(undo) if opts.dry_run => {
                describe(f, t, &undo, &mut run);
            }
            Ok(_) if !runner::suspended_on(f.tenants, t).is_empty() => {
                run = runner::skipped(run, &runner::suspended_on(f.tenants, t), "down");
            }
            _ => down_target(f, t, opts, progress, &mut run).await,
        }
        run
    })
    .await;
    Ok(runs)
}

fn migration<'a>(f: &'a Fleetwide<'_>, v: u32) -> Result<&'a super::Migration> {
    f.migrations
        .iter()
        .find(|m| m.version == v)
        .ok_or_else(|| anyhow::anyhow!("version {v} is in the ledger but has no file"))
}

fn describe(f: &Fleetwide<'_>, target: &Target, undo: &[u32], run: &mut TargetRun) {
    for v in undo {
        if let Ok(m) = migration(f, *v) {
            for (i, step) in m.body.down.iter().enumerate() {
                run.steps.push(format!(
                    "V{:04}__{} down step {}: {}",
                    m.version,
                    m.name,
                    i + 1,
                    runner::describe_step(f, target, m, step)
                ));
            }
        }
    }
    run.status = RunStatus::DryRun;
}

async fn down_target(
    f: &Fleetwide<'_>,
    target: &Target,
    opts: &DownOptions,
    progress: &(dyn Fn(&str) + Sync),
    run: &mut TargetRun,
) {
    let label = target.to_string();
    let db = f.client.database(&ledger_db(target, f.config));
    let (lease, session) =
        match runner::lease_target(f.client, &db, &label, opts.lock_wait, opts.lease).await {
            Ok(l) => l,
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(format!("{e:#}"));
                return;
            }
        };
    let result = revert_locked(f, target, opts, progress, &session, lease.fence(), run).await;
    let released = lease.release().await;
    if let Err(e) = result.and(released) {
        run.status = RunStatus::Failed;
        run.error.get_or_insert_with(|| format!("{e:#}"));
    }
}

async fn revert_locked(
    f: &Fleetwide<'_>,
    target: &Target,
    opts: &DownOptions,
    progress: &(dyn Fn(&str) + Sync),
    session: &tokio::sync::Mutex<mongodb::ClientSession>,
    fence: &Fence,
    run: &mut TargetRun,
) -> Result<()> {
    let label = target.to_string();
    let (entries, state) = status::reread(fence.db(), target, f.config, f.migrations).await?;
    let undo = plan_down(&state, &entries, opts.steps, opts.to).map_err(anyhow::Error::msg)?;
    for v in undo {
        let m = migration(f, v)?;
        if m.body.down.is_empty() {
            bail!(
                "V{v:04}__{} has no `down` steps; nothing more was reverted",
                m.name
            );
        }
        let id = ledger::entry_id(&label, v);
        let checkpoint =
            begin_revert(m, &entries[&v], &label, progress, session, fence, run).await?;
        let ctx = runner::step_ctx(
            f,
            target,
            m,
            progress,
            opts.batch_pause,
            Some((session, fence)),
        );
        if !down_steps(&ctx, m, &label, &checkpoint, progress, session, fence, run).await? {
            return Ok(());
        }
        ledger::set_status(
            fence,
            &mut *session.lock().await,
            &id,
            EntryStatus::Reverted,
            bson::doc! { "checkpoint": { "step": 0, "processed": 0 }, "error": null },
        )
        .await?;
        run.applied.push(v);
        run.status = RunStatus::Applied;
    }
    Ok(())
}

/// Mark a migration `reverting` (or pick up the checkpoint of an interrupted revert).
async fn begin_revert(
    m: &Migration,
    entry: &Entry,
    label: &str,
    progress: &(dyn Fn(&str) + Sync),
    session: &tokio::sync::Mutex<mongodb::ClientSession>,
    fence: &Fence,
    run: &mut TargetRun,
) -> Result<Checkpoint> {
    let id = ledger::entry_id(label, m.version);
    Ok(if entry.status == EntryStatus::Reverting {
        run.resumed = true;
        progress(&format!(
            "{label}: resuming the revert of V{:04}__{} at down step {}",
            m.version,
            m.name,
            entry.checkpoint.step + 1
        ));
        entry.checkpoint.clone()
    } else {
        ledger::set_status(
            fence,
            &mut *session.lock().await,
            &id,
            EntryStatus::Reverting,
            bson::doc! { "checkpoint": { "step": 0, "processed": 0 }, "error": null },
        )
        .await?;
        Default::default()
    })
}

/// Run a migration's `down` steps from the checkpoint. `Ok(false)`: stopped (failed or
/// interrupted, as `run` says); the entry stays `reverting` for the next `down`.
#[allow(clippy::too_many_arguments)]
async fn down_steps(
    ctx: &StepCtx<'_>,
    m: &Migration,
    label: &str,
    checkpoint: &Checkpoint,
    progress: &(dyn Fn(&str) + Sync),
    session: &tokio::sync::Mutex<mongodb::ClientSession>,
    fence: &Fence,
    run: &mut TargetRun,
) -> Result<bool> {
    let id = ledger::entry_id(label, m.version);
    for (i, step) in m.body.down.iter().enumerate() {
        let i = i as u32;
        if i < checkpoint.step {
            continue;
        }
        progress(&format!(
            "{label}: V{:04}__{} down step {} {}",
            m.version,
            m.name,
            i + 1,
            step.name()
        ));
        match steps::run(ctx, i, step, checkpoint).await {
            Ok(()) => {}
            Err(StepError::Lost(lost)) => return Err(lost.into()),
            Err(StepError::Interrupted) => {
                run.interrupted(m, "rerun `down` to finish it");
                return Ok(false);
            }
            Err(StepError::Failed(e)) => {
                let message = format!(
                    "V{:04}__{} down step {} ({}): {e}",
                    m.version,
                    m.name,
                    i + 1,
                    step.name()
                );
                // Stays `reverting`: the next `down` resumes at this step.
                ledger::set_fields(
                    fence,
                    &mut *session.lock().await,
                    &id,
                    bson::doc! { "error": &message },
                )
                .await?;
                run.status = RunStatus::Failed;
                run.error = Some(message);
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::ledger::Checkpoint;

    fn entry(v: u32, status: EntryStatus, step: u32) -> (u32, Entry) {
        (
            v,
            Entry {
                id: ledger::entry_id("t", v),
                target: "t".into(),
                version: v,
                name: format!("m{v}"),
                checksum: String::new(),
                status,
                error: None,
                started_at: bson::DateTime::now(),
                finished_at: None,
                duration_ms: None,
                tool_version: String::new(),
                host: String::new(),
                checkpoint: Checkpoint {
                    step,
                    ..Default::default()
                },
                resumed: 0,
                token: None,
                moved_from: None,
            },
        )
    }

    fn state(entries: &BTreeMap<u32, Entry>) -> TargetState {
        let of = |s: EntryStatus| -> Vec<u32> {
            entries
                .values()
                .filter(|e| e.status == s)
                .map(|e| e.version)
                .collect()
        };
        TargetState {
            target: Target::platform(),
            applied: of(EntryStatus::Applied),
            pending: vec![],
            failed: vec![],
            running: of(EntryStatus::Running),
            edited: vec![],
            missing: vec![],
            out_of_order: vec![],
            reverting: of(EntryStatus::Reverting),
            baselined: of(EntryStatus::Baselined),
            latest: None,
        }
    }

    #[test]
    fn newest_first_and_an_interrupted_revert_counts_as_a_step() {
        let e: BTreeMap<_, _> = [
            entry(1, EntryStatus::Applied, 0),
            entry(2, EntryStatus::Applied, 0),
            entry(3, EntryStatus::Reverting, 1),
        ]
        .into();
        assert_eq!(plan_down(&state(&e), &e, None, None), Ok(vec![3]));
        assert_eq!(plan_down(&state(&e), &e, Some(2), None), Ok(vec![3, 2]));
        assert_eq!(plan_down(&state(&e), &e, None, Some(1)), Ok(vec![3, 2]));
        assert_eq!(plan_down(&state(&e), &e, None, Some(3)), Ok(vec![]));
    }

    #[test]
    fn never_under_a_newer_version_that_holds_changes() {
        let e: BTreeMap<_, _> = [
            entry(1, EntryStatus::Applied, 0),
            entry(2, EntryStatus::Running, 1),
        ]
        .into();
        let err = plan_down(&state(&e), &e, None, None).unwrap_err();
        assert!(
            err.contains("will not revert V0001 while the newer V0002 is running"),
            "{err}"
        );
        let failed_early: BTreeMap<_, _> = [
            entry(1, EntryStatus::Applied, 0),
            entry(2, EntryStatus::Failed, 0),
        ]
        .into();
        assert_eq!(
            plan_down(&state(&failed_early), &failed_early, None, None),
            Ok(vec![1])
        );
        let failed_late: BTreeMap<_, _> = [
            entry(1, EntryStatus::Applied, 0),
            entry(2, EntryStatus::Failed, 2),
        ]
        .into();
        assert!(plan_down(&state(&failed_late), &failed_late, None, None)
            .unwrap_err()
            .contains("failed part-way"));
        // A reverting version below an applied one (edited by hand): refused, not skipped.
        let odd: BTreeMap<_, _> = [
            entry(1, EntryStatus::Reverting, 1),
            entry(2, EntryStatus::Applied, 0),
        ]
        .into();
        assert_eq!(plan_down(&state(&odd), &odd, None, None), Ok(vec![2]));
        assert_eq!(plan_down(&state(&odd), &odd, Some(2), None), Ok(vec![2, 1]));
    }
}
