//! Running migrations over the fleet: which migrations a target needs, the cheap no-op
//! check (one ledger query per database), then per target: lease -> ledger -> steps.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use futures::StreamExt;
use mongodb::{Client, Database};
use serde::Serialize;

use super::ledger::{self, Entry, EntryStatus};
use super::lock;
use super::source::{Migration, Scope};
use super::steps::{self, StepCtx, StepError};
use crate::config::Config;
use crate::fleet::registry::Tenant;
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, Target, TargetKind, Tier};

/// The database that holds a target's ledger and lock.
pub fn ledger_db(target: &Target, config: &Config) -> String {
    match &target.kind {
        TargetKind::Platform => config.databases.platform.clone(),
        TargetKind::Shared | TargetKind::CollectionSet { .. } => config.databases.shared.clone(),
        TargetKind::Database { tenant, .. } => config.databases.tenant_database(tenant),
    }
}

/// The tiers a target serves.
fn target_tiers(target: &Target, config: &Config) -> Vec<Tier> {
    match &target.kind {
        TargetKind::Platform => vec![],
        TargetKind::Shared => Tier::ALL
            .into_iter()
            .filter(|t| config.tiers.layout(*t) == Layout::Shared)
            .collect(),
        TargetKind::CollectionSet { tier, .. } | TargetKind::Database { tier, .. } => vec![*tier],
    }
}

/// Whether migration `m` runs on `target`.
pub fn applies_to(m: &Migration, target: &Target, config: &Config) -> bool {
    match (m.body.scope, &target.kind) {
        (Scope::Tenant, TargetKind::Platform) => false,
        (Scope::Tenant, _) => m.body.tiers.as_ref().is_none_or(|tiers| {
            target_tiers(target, config)
                .iter()
                .any(|t| tiers.contains(t))
        }),
        (_, TargetKind::Platform) => true,
        (_, _) => false,
    }
}

/// On the shared target, the tenants a migration limited to some tiers may touch.
fn allowed_tenants(
    m: &Migration,
    target: &Target,
    config: &Config,
    tenants: &[Tenant],
) -> Option<Vec<String>> {
    let tiers = m.body.tiers.as_ref()?;
    if target.kind != TargetKind::Shared {
        return None;
    }
    let shared = target_tiers(target, config);
    if shared.iter().all(|t| tiers.contains(t)) {
        return None;
    }
    Some(
        tenants
            .iter()
            .filter(|t| tiers.contains(&t.tier) && shared.contains(&t.tier))
            .map(|t| t.id.clone())
            .collect(),
    )
}

/// The tenants of the shared target a migration may touch (none for other targets).
fn tenants_here(
    m: &Migration,
    target: &Target,
    config: &Config,
    tenants: &[Tenant],
) -> Vec<String> {
    if target.kind != TargetKind::Shared {
        return Vec::new();
    }
    allowed_tenants(m, target, config, tenants).unwrap_or_else(|| {
        tenants
            .iter()
            .filter(|t| config.tiers.layout(t.tier) == Layout::Shared)
            .map(|t| t.id.clone())
            .collect()
    })
}

/// A migration on the shared target changes every tenant stored there: the shared target
/// has one ledger, so it is migrated for all of its tenants or for none. A selection
/// (`--tenant`, `--tier`) that names only some of them is refused, never silently widened.
pub fn refuse_partial_shared(
    sel: &crate::fleet::registry::Selection,
    tenants: &[Tenant],
    config: &Config,
) -> Result<()> {
    if sel.is_all() {
        return Ok(());
    }
    let shared: Vec<&Tenant> = tenants
        .iter()
        .filter(|t| config.tiers.layout(t.tier) == Layout::Shared)
        .collect();
    let chosen: Vec<&str> = shared
        .iter()
        .filter(|t| sel.tenants.contains(&t.id) || sel.tiers.contains(&t.tier))
        .map(|t| t.id.as_str())
        .collect();
    let tier_named = sel
        .tiers
        .iter()
        .any(|t| config.tiers.layout(*t) == Layout::Shared);
    if (chosen.is_empty() && !tier_named) || chosen.len() == shared.len() {
        return Ok(());
    }
    let tiers: Vec<&str> = Tier::ALL
        .iter()
        .filter(|t| config.tiers.layout(**t) == Layout::Shared)
        .map(|t| t.as_str())
        .collect();
    bail!(
        "the selection names {} of the {} tenants of the shared target ({}: the {} tiers), but a migration there changes every one of them (the shared target has one ledger). Migrate them all: `{}`, or leave out --tenant/--tier",
        chosen.len(),
        shared.len(),
        config.databases.shared,
        tiers.join(" and "),
        std::iter::once("caas migrate up".to_string())
            .chain(tiers.iter().map(|t| format!("--tier {t}")))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// A target's state against the migration files.
#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    pub target: Target,
    pub applied: Vec<u32>,
    pub pending: Vec<u32>,
    pub failed: Vec<(u32, String)>,
    pub running: Vec<u32>,
    /// Applied, but the file changed since (version, name).
    pub edited: Vec<(u32, String)>,
    /// In the ledger, but no file.
    pub missing: Vec<u32>,
    /// Pending versions older than the newest applied one.
    pub out_of_order: Vec<u32>,
    /// Versions an interrupted `migrate down` was undoing (finish with `migrate down`).
    pub reverting: Vec<u32>,
    pub latest: Option<u32>,
}

/// Read every target's ledger: one query per database (targets sharing a database are read together).
pub async fn read_ledgers(
    client: &Client,
    config: &Config,
    targets: &[Target],
) -> Result<BTreeMap<String, BTreeMap<u32, Entry>>> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in targets {
        by_db
            .entry(ledger_db(t, config))
            .or_default()
            .push(t.to_string());
    }
    let reads = futures::stream::iter(by_db)
        .map(|(db, ts)| async move { ledger::read(&client.database(&db), &ts).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut out = BTreeMap::new();
    for r in reads {
        out.extend(r?);
    }
    Ok(out)
}

/// Compare a target's ledger with the files.
pub fn state_of(
    target: &Target,
    config: &Config,
    migrations: &[Migration],
    entries: &BTreeMap<u32, Entry>,
) -> TargetState {
    let mine: Vec<&Migration> = migrations
        .iter()
        .filter(|m| applies_to(m, target, config))
        .collect();
    let mut s = TargetState {
        target: target.clone(),
        applied: vec![],
        pending: vec![],
        failed: vec![],
        running: vec![],
        edited: vec![],
        missing: vec![],
        out_of_order: vec![],
        reverting: vec![],
        latest: None,
    };
    for m in &mine {
        match entries.get(&m.version) {
            Some(e) if e.status == EntryStatus::Applied => {
                s.applied.push(m.version);
                if e.checksum != m.checksum {
                    s.edited.push((m.version, m.name.clone()));
                }
            }
            Some(e) if e.status == EntryStatus::Failed => {
                s.failed
                    .push((m.version, e.error.clone().unwrap_or_default()));
                s.pending.push(m.version);
            }
            Some(e) if e.status == EntryStatus::Running => {
                s.running.push(m.version);
                s.pending.push(m.version);
            }
            Some(e) if e.status == EntryStatus::Reverting => s.reverting.push(m.version),
            _ => s.pending.push(m.version),
        }
    }
    for (v, e) in entries {
        let holds_changes = matches!(e.status, EntryStatus::Applied | EntryStatus::Reverting);
        if holds_changes && !mine.iter().any(|m| m.version == *v) {
            s.missing.push(*v);
        }
    }
    s.latest = s.applied.iter().chain(s.missing.iter()).max().copied();
    if let Some(top) = s.latest {
        s.out_of_order = s.pending.iter().copied().filter(|v| *v < top).collect();
    }
    s
}

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

/// Refuse to run when applied migrations were edited: name versions and targets.
pub fn refuse_edited(states: &[TargetState]) -> Result<()> {
    let edited: Vec<String> = states
        .iter()
        .flat_map(|s| {
            s.edited
                .iter()
                .map(move |(v, n)| format!("V{v:04}__{n} on {}", s.target))
        })
        .collect();
    if !edited.is_empty() {
        bail!(
            "{} applied migration(s) were edited since they ran:\n  {}\nrestore the files, or accept the new content with `caas migrate repair --accept-checksum`",
            edited.len(),
            edited.join("\n  ")
        );
    }
    Ok(())
}

pub async fn up(
    f: &Fleetwide<'_>,
    targets: &[Target],
    opts: &UpOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<TargetRun>> {
    let ledgers = read_ledgers(f.client, f.config, targets).await?;
    let empty = BTreeMap::new();
    let states: Vec<TargetState> = targets
        .iter()
        .map(|t| {
            state_of(
                t,
                f.config,
                f.migrations,
                ledgers.get(&t.to_string()).unwrap_or(&empty),
            )
        })
        .collect();
    refuse_edited(&states)?;
    let wanted = |v: u32| opts.to.is_none_or(|to| v <= to);
    let failures = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (failures, stop) = (&failures, &stop);
    let runs = in_order(states, opts.concurrency, |state| async move {
        let pending: Vec<&Migration> = f
            .migrations
            .iter()
            .filter(|m| state.pending.contains(&m.version) && wanted(m.version))
            .collect();
        let base = TargetRun::new(state.target.clone());
        let run = if pending.is_empty() {
            base
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

/// Run `work` on every item, `concurrency` at a time, and return the results in the items'
/// order (targets finish in any order; reports keep the fleet's).
pub(crate) async fn in_order<T, R, Fut>(
    items: impl IntoIterator<Item = T>,
    concurrency: usize,
    work: impl Fn(T) -> Fut,
) -> Vec<R>
where
    Fut: std::future::Future<Output = R>,
{
    let mut done: Vec<(usize, R)> = futures::stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| {
            let job = work(item);
            async move { (i, job.await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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
) -> Result<(lock::Lease, tokio::sync::Mutex<mongodb::ClientSession>)> {
    let session = client
        .start_session()
        .await
        .map_err(|e| anyhow::anyhow!(crate::base::driver::describe(&e)))?;
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
    run
}

/// Refuse to run `up` on a target whose `migrate down` was interrupted: its newest
/// versions are half undone, and running them forward again would apply parts twice.
pub fn refuse_reverting(state: &TargetState) -> Result<()> {
    if let Some(v) = state.reverting.iter().max() {
        bail!(
            "V{v:04} is half reverted on {} (a `migrate down` was interrupted); finish it with `caas migrate down --tenant ...` (it resumes where it stopped), then run up",
            state.target
        );
    }
    Ok(())
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
    // Under the lease, read this target's ledger again: another runner may have finished.
    let entries = ledger::read(db, std::slice::from_ref(&label))
        .await?
        .remove(&label)
        .unwrap_or_default();
    let state = state_of(target, f.config, f.migrations, &entries);
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
        let mut failure = None;
        for (i, step) in m.body.up.iter().enumerate() {
            let i = i as u32;
            if i < entry.checkpoint.step {
                continue;
            }
            progress(&format!(
                "{label}: V{:04}__{} step {} {}",
                m.version,
                m.name,
                i + 1,
                step.name()
            ));
            if let Err(e) = steps::run(&ctx, i, step, &entry.checkpoint).await {
                failure = Some((i, step.name().to_owned(), e));
                break;
            }
        }
        match failure {
            None => {
                ledger::finish(fence, &mut *session.lock().await, &entry, None).await?;
                run.applied.push(m.version);
            }
            // Another runner holds the target now: write nothing, not even `failed`.
            Some((_, _, StepError::Lost(lost))) => return Err(lost.into()),
            // Ctrl-C: the entry stays `running` with its checkpoint; a rerun resumes.
            Some((_, _, StepError::Interrupted)) => {
                run.status = RunStatus::Interrupted;
                run.error = Some(format!(
                    "V{:04}__{} interrupted at a safe point; rerun to resume",
                    m.version, m.name
                ));
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
