//! `migrate repair`: accept edited files' checksums, or clear `failed` entries, on purpose.
//! Only under the target's lease, with the ledger read again once it is held: an entry a
//! live runner is writing is never touched. A `running` entry whose lease is gone is an
//! interrupted run, not a failure: `up` resumes it from its checkpoint, so repair leaves it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::ledger::{self, EntryStatus};
use super::lock::{self, LockError};
use super::runner::{self, Fleetwide};
use super::status::{self, ledger_db, state_of, TargetState};
use crate::base::error::Error;
use crate::tenancy::Target;

pub struct RepairOptions {
    /// Record the current file's checksum for edited, applied migrations.
    pub accept_checksum: bool,
    /// Remove `failed` entries so they run again from their first step.
    pub clear_failed: bool,
    /// Only this version.
    pub version: Option<u32>,
    pub lock_wait: Duration,
    pub lease: Duration,
}

/// One thing repair did, or would not do, on a target.
#[derive(Debug, Clone, Serialize)]
pub struct RepairItem {
    pub target: String,
    pub version: u32,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Edited, applied migrations whose new checksum was recorded.
    pub accepted: Vec<RepairItem>,
    /// Failed entries removed: they run again from their first step.
    pub cleared: Vec<RepairItem>,
    /// `running` entries whose runner is gone: left for `up`, which resumes them.
    pub interrupted: Vec<RepairItem>,
    /// `reverting` entries: left for `down`, which finishes them.
    pub reverting: Vec<RepairItem>,
    /// Targets a live runner holds (target, holder): nothing was changed there.
    pub refused: Vec<(String, String)>,
}

impl RepairReport {
    pub fn changed(&self) -> usize {
        self.accepted.len() + self.cleared.len()
    }
}

/// Whether the state has anything repair could act on or report.
fn needs_repair(s: &TargetState, opts: &RepairOptions) -> bool {
    let wanted = |v: &u32| opts.version.is_none_or(|x| x == *v);
    (opts.accept_checksum && s.edited.iter().any(|(v, _)| wanted(v)))
        || (opts.clear_failed
            && (s.failed.iter().any(|(v, _)| wanted(v))
                || s.running.iter().any(wanted)
                || s.reverting.iter().any(wanted)))
}

pub async fn repair(
    f: &Fleetwide<'_>,
    targets: &[Target],
    opts: &RepairOptions,
) -> Result<RepairReport, Error> {
    let ledgers = status::read_ledgers(f.client, f.config, targets).await?;
    let empty = BTreeMap::new();
    let mut report = RepairReport::default();
    for t in targets {
        let before = state_of(
            t,
            f.config,
            f.migrations,
            ledgers.get(&t.to_string()).unwrap_or(&empty),
        );
        if !needs_repair(&before, opts) {
            continue;
        }
        let label = t.to_string();
        let db = f.client.database(&ledger_db(t, f.config));
        let (lease, session) =
            match runner::lease_target(f.client, &db, &label, opts.lock_wait, opts.lease).await {
                Ok(l) => l,
                Err(Error::Lock(LockError::Held { holder, .. })) => {
                    report.refused.push((label, holder));
                    continue;
                }
                Err(e) => return Err(e),
            };
        let fence = lease.fence();
        let result = async {
            let (entries, s) = status::reread(&db, t, f.config, f.migrations).await?;
            let wanted = |v: &u32| opts.version.is_none_or(|x| x == *v);
            let item = |v: u32| RepairItem {
                target: label.clone(),
                version: v,
                name: entries.get(&v).map(|e| e.name.clone()).unwrap_or_default(),
            };
            if opts.accept_checksum {
                for (v, _) in s.edited.iter().filter(|(v, _)| wanted(v)) {
                    let m = f
                        .migrations
                        .iter()
                        .find(|m| m.version == *v)
                        .expect("edited versions have files");
                    ledger::set_fields(
                        fence,
                        &mut *session.lock().await,
                        &ledger::entry_id(&label, *v),
                        bson::doc! { "checksum": &m.checksum },
                    )
                    .await?;
                    report.accepted.push(item(*v));
                }
            }
            if opts.clear_failed {
                for (v, e) in entries.iter().filter(|(v, _)| wanted(v)) {
                    match e.status {
                        EntryStatus::Failed => {
                            ledger::remove(fence, &mut *session.lock().await, &e.id).await?;
                            report.cleared.push(item(*v));
                        }
                        EntryStatus::Running => report.interrupted.push(item(*v)),
                        EntryStatus::Reverting => report.reverting.push(item(*v)),
                        _ => {}
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        let released = lease.release().await;
        result?;
        released?;
    }
    Ok(report)
}

/// `caas migrate unlock`: release the expired leases of these targets, and with `evict`
/// the live lease of that owner, one lock collection per database.
pub async fn unlock(
    client: &mongodb::Client,
    config: &crate::config::Config,
    targets: &[Target],
    evict: Option<&str>,
) -> Result<lock::UnlockReport> {
    let mut report = lock::UnlockReport::default();
    for (db, ids) in status::by_ledger_db(config, targets) {
        let r = lock::unlock(&client.database(&db), &ids, evict).await?;
        report.released.extend(r.released);
        report.refused.extend(r.refused);
    }
    Ok(report)
}
