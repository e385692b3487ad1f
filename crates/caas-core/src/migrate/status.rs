//! What each target has applied and what applies to it: the ledgers read once per
//! database, each target's state against the migrations on disk, and the refusals that
//! come before any lease (edited migrations, half-reverted targets, partial shared runs).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use futures::StreamExt;
use mongodb::Client;
use serde::Serialize;

use super::ledger::{self, Entry, EntryStatus};
use super::lock::{self, LeaseInfo};
use super::source::{Migration, Scope};
use crate::base::error::{Edited, Error};
use crate::config::Config;
use crate::fleet::registry::Tenant;
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
pub(super) fn allowed_tenants(
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
pub(super) fn tenants_here(
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
    /// Marked done by `migrate baseline` (never run by caas; `down` leaves them).
    pub baselined: Vec<u32>,
    pub latest: Option<u32>,
}

/// Read every target's ledger: one query per database (targets sharing a database are read together).
pub async fn read_ledgers(
    client: &Client,
    config: &Config,
    targets: &[Target],
) -> Result<BTreeMap<String, BTreeMap<u32, Entry>>> {
    let reads = futures::stream::iter(by_ledger_db(config, targets))
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
        baselined: vec![],
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
            Some(e) if e.status == EntryStatus::Baselined => {
                s.baselined.push(m.version);
                if e.checksum != m.checksum {
                    s.edited.push((m.version, m.name.clone()));
                }
            }
            _ => s.pending.push(m.version),
        }
    }
    for (v, e) in entries {
        let holds_changes = matches!(
            e.status,
            EntryStatus::Applied | EntryStatus::Reverting | EntryStatus::Baselined
        );
        if holds_changes && !mine.iter().any(|m| m.version == *v) {
            s.missing.push(*v);
        }
    }
    s.latest = s
        .applied
        .iter()
        .chain(s.baselined.iter())
        .chain(s.missing.iter())
        .max()
        .copied();
    if let Some(top) = s.latest {
        s.out_of_order = s.pending.iter().copied().filter(|v| *v < top).collect();
    }
    s
}

/// Refuse to run when applied migrations were edited: name versions and targets.
pub fn refuse_edited(states: &[TargetState]) -> Result<(), Error> {
    let edited: Vec<Edited> = states
        .iter()
        .flat_map(|s| {
            s.edited.iter().map(move |(v, n)| Edited {
                target: s.target.to_string(),
                version: *v,
                name: n.clone(),
            })
        })
        .collect();
    if edited.is_empty() {
        Ok(())
    } else {
        Err(Error::EditedMigrations(edited))
    }
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

/// One target's ledger entries and state, read again under its lease: another runner may
/// have applied, reverted or failed something since the fleet-wide read.
pub async fn reread(
    db: &mongodb::Database,
    target: &Target,
    config: &Config,
    migrations: &[Migration],
) -> Result<(BTreeMap<u32, Entry>, TargetState)> {
    let label = target.to_string();
    let entries = ledger::read(db, std::slice::from_ref(&label))
        .await?
        .remove(&label)
        .unwrap_or_default();
    let state = state_of(target, config, migrations, &entries);
    Ok((entries, state))
}

/// Target labels grouped by the database that holds their ledger and lock, so each
/// database is read once.
pub fn by_ledger_db(config: &Config, targets: &[Target]) -> BTreeMap<String, Vec<String>> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in targets {
        by_db
            .entry(ledger_db(t, config))
            .or_default()
            .push(t.to_string());
    }
    by_db
}

/// Each target's state, in the targets' order (one ledger read per database).
pub async fn states(
    client: &Client,
    config: &Config,
    targets: &[Target],
    migrations: &[Migration],
) -> Result<Vec<TargetState>> {
    let ledgers = read_ledgers(client, config, targets).await?;
    let empty = BTreeMap::new();
    Ok(targets
        .iter()
        .map(|t| {
            let entries = ledgers.get(&t.to_string()).unwrap_or(&empty);
            state_of(t, config, migrations, entries)
        })
        .collect())
}

/// The live leases of these targets, by target label (expired ones are not holders).
pub async fn live_holders(
    client: &Client,
    config: &Config,
    targets: &[Target],
) -> Result<BTreeMap<String, LeaseInfo>> {
    let mut out = BTreeMap::new();
    for (db, ids) in by_ledger_db(config, targets) {
        let db = client.database(&db);
        let now = lock::server_now(&db).await?;
        for l in lock::holders(&db, &ids).await? {
            if l.is_live(now) {
                out.insert(l.id.clone(), l);
            }
        }
    }
    Ok(out)
}

/// `caas migrate status`: where every target stands, and who holds it.
#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub targets: usize,
    /// Targets with pending migrations or a half-finished revert.
    pub behind: usize,
    /// Targets with failed entries.
    pub failed: usize,
    /// Migration files on disk.
    pub migrations: usize,
    pub states: Vec<TargetStatus>,
}

#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub target: Target,
    pub applied: Vec<u32>,
    pub pending: Vec<u32>,
    pub failed: Vec<FailedEntry>,
    pub edited: Vec<u32>,
    pub missing: Vec<u32>,
    pub latest: Option<u32>,
    pub running: Vec<u32>,
    pub reverting: Vec<u32>,
    /// Marked done by `migrate baseline`, never run by caas.
    pub baselined: Vec<u32>,
    /// A `running` entry with no live lease: its runner is gone; `up` resumes it.
    pub interrupted: bool,
    /// The live lease, described (owner, token, expiry).
    pub lock: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FailedEntry {
    pub version: u32,
    pub error: String,
}

/// Read every target's ledger and lease.
pub async fn fleet_status(
    client: &Client,
    config: &Config,
    targets: &[Target],
    migrations: &[Migration],
) -> Result<FleetStatus> {
    let states = states(client, config, targets, migrations).await?;
    let locks = live_holders(client, config, targets).await?;
    let behind = states
        .iter()
        .filter(|s| !s.pending.is_empty() || !s.reverting.is_empty())
        .count();
    let failed = states.iter().filter(|s| !s.failed.is_empty()).count();
    let states = states
        .into_iter()
        .map(|s| {
            let lock = locks.get(&s.target.to_string());
            TargetStatus {
                interrupted: !s.running.is_empty() && lock.is_none(),
                lock: lock.map(LeaseInfo::describe),
                failed: (s.failed.into_iter())
                    .map(|(version, error)| FailedEntry { version, error })
                    .collect(),
                edited: s.edited.into_iter().map(|(v, _)| v).collect(),
                target: s.target,
                applied: s.applied,
                pending: s.pending,
                missing: s.missing,
                latest: s.latest,
                running: s.running,
                reverting: s.reverting,
                baselined: s.baselined,
            }
        })
        .collect();
    Ok(FleetStatus {
        targets: targets.len(),
        behind,
        failed,
        migrations: migrations.len(),
        states,
    })
}

/// What `caas migrate verify` finds in one target's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub target: String,
    pub version: u32,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Applied, and its file changed since.
    Edited,
    /// Applied, and its file is gone.
    Missing,
    Failed,
    /// Pending, but older than an applied version.
    OutOfOrder,
}

/// Checksums, files and order of every target's ledger against the migrations on disk.
pub fn verify(states: &[TargetState]) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in states {
        let target = s.target.to_string();
        let mut add = |version: u32, kind: ProblemKind, message: String| {
            out.push(Problem {
                target: target.clone(),
                version,
                kind,
                message: format!("{target}: {message}"),
            })
        };
        for (v, n) in &s.edited {
            let m = format!("V{v:04}__{n} was edited after it was applied (checksum differs)");
            add(*v, ProblemKind::Edited, m);
        }
        for v in &s.missing {
            let m = format!("version {v} is applied but its file is gone");
            add(*v, ProblemKind::Missing, m);
        }
        for (v, e) in &s.failed {
            add(*v, ProblemKind::Failed, format!("version {v} failed: {e}"));
        }
        for v in &s.out_of_order {
            let m = format!(
                "version {v} is pending but older than the applied version {}",
                s.latest.unwrap_or(0)
            );
            add(*v, ProblemKind::OutOfOrder, m);
        }
    }
    out
}
