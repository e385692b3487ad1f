//! `schema apply` over the fleet: read and plan at once, apply only the targets that
//! change (each planned again as a worker takes it, so memory stays flat), and report
//! every target in fleet order.

use anyhow::Result;

use super::{Fleet, Planner, Streamed};
use crate::apply::{apply_each, ApplyOptions, Status, TargetReport};
use crate::config::Config;
use crate::connect::Connection;
use crate::inspect::LiveState;
use crate::plan::{Change, Safety};
use crate::spec::CollectionSpec;
use crate::tenancy::Target;

/// The read half of `schema apply`: which targets change, and the live state their
/// plans are made from again when a worker takes them.
pub struct Prepared {
    with_changes: Vec<Target>,
    /// Destructive or undeclared changes (whether these options would run them or not),
    /// for the confirmation before they run.
    pub risky: Vec<(Target, Change)>,
    live: LiveState,
    /// What the read saw (the capacity estimate for the warning).
    pub streamed: Streamed,
}

impl Prepared {
    /// How many targets have changes to apply.
    pub fn changed(&self) -> usize {
        self.with_changes.len()
    }

    /// The destructive or undeclared changes these options would run (not hold back):
    /// what a person confirms before `apply --allow-destructive` or `--prune`.
    pub fn to_confirm(&self, opts: ApplyOptions) -> Vec<(&Target, &Change)> {
        self.risky
            .iter()
            .filter(|(_, c)| crate::apply::held_back(c, opts).is_none())
            .map(|(t, c)| (t, c))
            .collect()
    }
}

/// Read and plan every target at once, keeping only which targets change.
pub async fn prepare(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
) -> Result<Prepared> {
    let mut with_changes: Vec<Target> = Vec::new();
    let mut risky = Vec::new();
    let (streamed, live) =
        super::plan_streamed_keeping_live(conn, config, fleet, specs, concurrency, &mut |p| {
            for c in &p.changes {
                if c.safety == Safety::Destructive || c.undeclared {
                    risky.push((p.target.clone(), c.clone()));
                }
            }
            if !p.changes.is_empty() {
                with_changes.push(p.target);
            }
        })
        .await?;
    Ok(Prepared {
        with_changes,
        risky,
        live,
        streamed,
    })
}

/// Apply the prepared changes; `on_done` hears each changed target as it finishes (for
/// progress). Returns every target of the fleet, in fleet order.
pub async fn apply(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    prepared: Prepared,
    opts: ApplyOptions,
    on_done: &(dyn Fn(&TargetReport) + Sync),
) -> Vec<TargetReport> {
    let Prepared {
        with_changes, live, ..
    } = prepared;
    let planner = Planner::new(config, fleet, specs);
    let plan_of = |t: Target| planner.plan(&live, &t);
    let done = apply_each(&conn.client, with_changes, &plan_of, opts, on_done).await;
    in_fleet_order(&fleet.targets, done)
}

/// Every target's report in fleet order; a target that was not applied had nothing to do.
fn in_fleet_order(targets: &[Target], done: Vec<TargetReport>) -> Vec<TargetReport> {
    let mut done: std::collections::BTreeMap<Target, TargetReport> =
        done.into_iter().map(|r| (r.target.clone(), r)).collect();
    targets
        .iter()
        .map(|t| {
            done.remove(t).unwrap_or_else(|| TargetReport {
                target: t.clone(),
                status: Status::NoChanges,
                applied: vec![],
                skipped: vec![],
                error: None,
            })
        })
        .collect()
}
