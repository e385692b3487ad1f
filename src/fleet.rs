//! The fleet: every physical target a run covers, with its desired and live state.
//! This is the one place that strings the pure steps together:
//! registry -> targets -> compile -> inspect -> plan.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::compile::{compile_target, CompiledTarget};
use crate::config::Config;
use crate::connect::Connection;
use crate::inspect::{self, LiveState};
use crate::plan::{plan_target, TargetPlan};
use crate::spec::CollectionSpec;
use crate::tenancy::registry::{self, Selection, Tenant};
use crate::tenancy::{Layout, Target, TargetKind};

/// The registered tenants and the targets selected for this run.
pub struct Fleet {
    pub tenants: Vec<Tenant>,
    pub targets: Vec<Target>,
}

/// Read the registry and resolve the selection into targets.
pub async fn resolve(conn: &Connection, config: &Config, sel: &Selection) -> Result<Fleet> {
    let db = conn.client.database(&config.databases.platform);
    let tenants = registry::list(&db, config).await?;
    let targets = registry::resolve_targets(&tenants, config, sel)?;
    Ok(Fleet { tenants, targets })
}

/// The desired state of every target.
pub fn desired(specs: &[&CollectionSpec], fleet: &Fleet, config: &Config) -> Vec<CompiledTarget> {
    fleet
        .targets
        .iter()
        .map(|t| compile_target(specs, t, &config.databases))
        .collect()
}

/// Plans for every target, and what was read to make them.
pub struct Plans {
    pub plans: Vec<TargetPlan>,
    pub live: LiveState,
    /// Live collections and indexes in the databases read, plus those the plans create.
    pub namespaces_after: usize,
}

/// Read the live state (one listCollections per database, one listIndexes per declared
/// collection) and diff every target.
pub async fn plan(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    compiled: &[CompiledTarget],
    concurrency: usize,
) -> Result<Plans> {
    let mut databases = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for t in compiled {
        for c in &t.collections {
            databases.insert(c.placement.database.clone());
            declared.insert((c.placement.database.clone(), c.placement.collection.clone()));
        }
    }
    let live = inspect::read(
        &conn.client,
        &databases,
        |db, coll| declared.contains(&(db.to_owned(), coll.to_owned())),
        concurrency,
    )
    .await?;
    let prefixes = pro_prefixes(fleet, config);
    let plans: Vec<TargetPlan> = compiled
        .iter()
        .map(|t| {
            let owns = |db: &str, coll: &str| owns(&t.target, config, &prefixes, db, coll);
            plan_target(&t.target, &t.collections, &live, &owns)
        })
        .collect();
    let live_count: usize = live
        .values()
        .flat_map(|colls| colls.values())
        .map(|c| 1 + c.indexes.as_ref().map_or(0, |i| i.len() + 1))
        .sum();
    let created: usize = plans
        .iter()
        .flat_map(|p| p.declared())
        .filter(|c| {
            matches!(
                c.action,
                crate::plan::Action::CreateCollection { .. }
                    | crate::plan::Action::CreateIndex { .. }
            )
        })
        .count();
    Ok(Plans {
        plans,
        live,
        namespaces_after: live_count + created,
    })
}

/// Read the live state of every database the fleet's targets use: one listCollections per
/// database, one listIndexes per declared collection. Placements only; nothing is compiled.
pub async fn read_live(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
) -> Result<LiveState> {
    let mut databases = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for t in &fleet.targets {
        for s in specs.iter().filter(|s| t.holds(s)) {
            let p = t.place(s, &config.databases);
            databases.insert(p.database.clone());
            declared.insert((p.database, p.collection));
        }
    }
    inspect::read(
        &conn.client,
        &databases,
        |db, coll| declared.contains(&(db.to_owned(), coll.to_owned())),
        concurrency,
    )
    .await
}

/// Compile and plan one target against the live state.
pub fn plan_one(
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    live: &LiveState,
    target: &Target,
) -> TargetPlan {
    let prefixes = pro_prefixes(fleet, config);
    let compiled = compile_target(specs, target, &config.databases);
    let owns = |db: &str, coll: &str| owns(target, config, &prefixes, db, coll);
    plan_target(target, &compiled.collections, live, &owns)
}

/// Like [`plan`], but compiles and plans one target at a time and hands each plan to
/// `each` before the next is built: memory stays flat however many targets there are
/// (the live state is still read once, one listCollections per database).
pub async fn plan_each(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
    mut each: impl FnMut(TargetPlan),
) -> Result<usize> {
    let live = read_live(conn, config, fleet, specs, concurrency).await?;
    Ok(plan_live_each(config, fleet, specs, &live, &mut each))
}

/// The pure half of [`plan_each`]: plans against a given live state, one target at a time.
pub fn plan_live_each(
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    live: &LiveState,
    each: &mut dyn FnMut(TargetPlan),
) -> usize {
    for target in &fleet.targets {
        each(plan_one(config, fleet, specs, live, target));
    }
    fleet.targets.len()
}

/// Collections plus indexes after a plan, estimated without compiling: what is live, plus
/// what the specs declare and is not live yet (for the capacity guard).
pub fn namespace_estimate(
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    live: &LiveState,
) -> usize {
    let live_count: usize = live
        .values()
        .flat_map(|c| c.values())
        .map(|c| 1 + c.indexes.as_ref().map_or(0, |i| i.len() + 1))
        .sum();
    let mut missing = 0;
    for t in &fleet.targets {
        for s in specs.iter().filter(|s| t.holds(s)) {
            let p = t.place(s, &config.databases);
            if !live
                .get(&p.database)
                .is_some_and(|d| d.contains_key(&p.collection))
            {
                missing += 2 + s.indexes.len();
            }
        }
    }
    live_count + missing
}

/// `(shared database prefix of each Pro tenant's collections)`, for attributing live
/// collections in the shared database to the right target.
fn pro_prefixes(fleet: &Fleet, config: &Config) -> Vec<(String, String)> {
    fleet
        .tenants
        .iter()
        .filter(|t| config.tiers.layout(t.tier) == Layout::CollectionSet)
        .map(|t| {
            let prefix = config
                .databases
                .collection_set
                .replace("{tenant_id}", &t.id);
            let prefix = prefix.split("{collection}").next().unwrap_or("").to_owned();
            (t.id.clone(), prefix)
        })
        .collect()
}

/// Whether an undeclared live collection belongs to `target` (so it is reported once).
fn owns(
    target: &Target,
    config: &Config,
    prefixes: &[(String, String)],
    db: &str,
    coll: &str,
) -> bool {
    let dbs = &config.databases;
    let in_set = |tenant: &str| {
        prefixes
            .iter()
            .any(|(t, p)| t == tenant && !p.is_empty() && coll.starts_with(p.as_str()))
    };
    match &target.kind {
        TargetKind::Platform => db != dbs.shared,
        TargetKind::Shared => db == dbs.shared && !prefixes.iter().any(|(t, _)| in_set(t)),
        TargetKind::CollectionSet { tenant, .. } => db == dbs.shared && in_set(tenant),
        TargetKind::Database { tenant, .. } => db == dbs.tenant.replace("{tenant_id}", tenant),
    }
}
