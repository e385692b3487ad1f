//! `migrate baseline`: adopt caas on targets whose data already has what the first
//! migrations do (Flyway's baseline). Versions up to V that a target has no entry for are
//! recorded `baselined` (with the file's checksum, never run); `up` skips them, `status` and
//! `verify` show them, and `down` does not undo them (caas never did them). Under the
//! target's lease, with the ledger read again once it is held; a target with a running,
//! failed or reverting entry at or below V is refused, writing nothing there.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use bson::DateTime;
use serde::Serialize;

use super::ledger::{self, Checkpoint, Entry, EntryStatus};
use super::lock::LockError;
use super::runner::{self, Fleetwide};
use super::status::{self, applies_to, ledger_db};
use crate::base::error::Error;
use crate::tenancy::Target;

pub struct BaselineOptions {
    /// Mark every version up to and including this one.
    pub version: u32,
    pub dry_run: bool,
    pub lock_wait: Duration,
    pub lease: Duration,
}

/// What baseline did on one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetBaseline {
    pub target: String,
    /// Versions recorded `baselined` now (or, in a dry run, that would be).
    pub baselined: Vec<u32>,
    /// Versions already applied or baselined: left as they are.
    pub already: Vec<u32>,
    /// Why nothing was written here (a live runner, an unfinished entry).
    pub refused: Option<String>,
}

/// Which versions to baseline on a target, or why not: pure, over its ledger.
pub fn plan_baseline(
    versions: &[u32],
    entries: &BTreeMap<u32, Entry>,
    target: &str,
) -> Result<(Vec<u32>, Vec<u32>), String> {
    let (mut todo, mut already) = (Vec::new(), Vec::new());
    for v in versions {
        match entries.get(v).map(|e| e.status) {
            None | Some(EntryStatus::Reverted) => todo.push(*v),
            Some(EntryStatus::Applied | EntryStatus::Baselined) => already.push(*v),
            Some(s) => {
                let fix = match s {
                    EntryStatus::Failed => "fix it and run `caas migrate up`, or clear it with `caas migrate repair --clear-failed`",
                    EntryStatus::Reverting => "finish it with `caas migrate down`",
                    _ => "let `caas migrate up` finish it",
                };
                return Err(format!(
                    "{target}: V{v:04} is {} in the ledger; {fix}, then baseline",
                    format!("{s:?}").to_lowercase()
                ));
            }
        }
    }
    Ok((todo, already))
}

pub async fn baseline(
    f: &Fleetwide<'_>,
    targets: &[Target],
    opts: &BaselineOptions,
) -> Result<Vec<TargetBaseline>, Error> {
    if !f.migrations.iter().any(|m| m.version <= opts.version) {
        return Err(anyhow::anyhow!(
            "no migration file has a version at or below {}; `caas migrate status` lists them",
            opts.version
        )
        .into());
    }
    let mut out = Vec::new();
    for t in targets {
        let label = t.to_string();
        let versions: Vec<u32> = f
            .migrations
            .iter()
            .filter(|m| m.version <= opts.version && applies_to(m, t, f.config))
            .map(|m| m.version)
            .collect();
        let mut report = TargetBaseline {
            target: label.clone(),
            ..Default::default()
        };
        let db = f.client.database(&ledger_db(t, f.config));
        if opts.dry_run {
            let (entries, _) = status::reread(&db, t, f.config, f.migrations).await?;
            match plan_baseline(&versions, &entries, &label) {
                Ok((todo, already)) => (report.baselined, report.already) = (todo, already),
                Err(why) => report.refused = Some(why),
            }
            out.push(report);
            continue;
        }
        let (lease, session) =
            match runner::lease_target(f.client, &db, &label, opts.lock_wait, opts.lease).await {
                Ok(l) => l,
                Err(Error::Lock(LockError::Held { holder, .. })) => {
                    report.refused = Some(format!("{label}: held by {holder}; nothing written"));
                    out.push(report);
                    continue;
                }
                Err(e) => return Err(e),
            };
        let fence = lease.fence();
        let result = async {
            let (entries, _) = status::reread(&db, t, f.config, f.migrations).await?;
            match plan_baseline(&versions, &entries, &label) {
                Err(why) => report.refused = Some(why),
                Ok((todo, already)) => {
                    for v in &todo {
                        let m = f
                            .migrations
                            .iter()
                            .find(|m| m.version == *v)
                            .expect("a file");
                        let entry = baselined_entry(&label, m, fence.token());
                        ledger::record(fence, &mut *session.lock().await, entry).await?;
                    }
                    (report.baselined, report.already) = (todo, already);
                }
            }
            anyhow::Ok(())
        }
        .await;
        let released = lease.release().await;
        result?;
        released?;
        out.push(report);
    }
    Ok(out)
}

fn baselined_entry(target: &str, m: &super::Migration, token: i64) -> Entry {
    let now = DateTime::now();
    Entry {
        id: ledger::entry_id(target, m.version),
        target: target.to_owned(),
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        status: EntryStatus::Baselined,
        error: None,
        started_at: now,
        finished_at: Some(now),
        duration_ms: Some(0),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: ledger::host(),
        checkpoint: Checkpoint::default(),
        resumed: 0,
        token: Some(token),
        moved_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u32, status: EntryStatus) -> (u32, Entry) {
        (
            v,
            Entry {
                id: ledger::entry_id("shared", v),
                target: "shared".into(),
                version: v,
                name: "m".into(),
                checksum: "c".into(),
                status,
                error: None,
                started_at: DateTime::now(),
                finished_at: None,
                duration_ms: None,
                tool_version: "0".into(),
                host: "h".into(),
                checkpoint: Checkpoint::default(),
                resumed: 0,
                token: None,
                moved_from: None,
            },
        )
    }

    #[test]
    fn only_versions_without_an_entry_are_baselined() {
        let entries = BTreeMap::from([
            entry(1, EntryStatus::Applied),
            entry(3, EntryStatus::Reverted),
        ]);
        let (todo, already) = plan_baseline(&[1, 2, 3], &entries, "shared").unwrap();
        assert_eq!((todo, already), (vec![2, 3], vec![1]));
    }

    #[test]
    fn an_unfinished_entry_refuses_the_target() {
        for s in [
            EntryStatus::Running,
            EntryStatus::Failed,
            EntryStatus::Reverting,
        ] {
            let entries = BTreeMap::from([entry(2, s)]);
            let why = plan_baseline(&[1, 2], &entries, "shared").unwrap_err();
            assert!(why.contains("V0002") && why.contains("shared"), "{why}");
        }
    }
}
