//! The fleet: every physical target a run covers, with its desired and live state.
//! This is the one place that strings the pure steps together:
//! registry -> targets -> compile -> inspect -> plan.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::Result;

use crate::compile::{compile_target, CompiledTarget};
use crate::config::Config;
use crate::connect::Connection;
use crate::inspect::{self, LiveState};
use crate::plan::{plan_target, TargetPlan};
use crate::spec::CollectionSpec;
pub mod apply;
pub mod registry;
pub mod sharding;

use crate::tenancy::{Layout, Target, TargetKind};
use registry::{Selection, Tenant};

/// The registered tenants and the targets selected for this run.
pub struct Fleet {
    pub tenants: Vec<Tenant>,
    pub targets: Vec<Target>,
    /// Soft-deleted tenants (`deleted_at` set): not migrated or applied, but their data is
    /// still theirs, so nobody claims (or prunes) it.
    pub retired: Vec<Tenant>,
}

/// Read the registry and resolve the selection into targets.
pub async fn resolve(conn: &Connection, config: &Config, sel: &Selection) -> Result<Fleet> {
    let db = conn.client.database(&config.databases.platform);
    let (tenants, retired) = registry::list_all(&db, config).await?;
    let targets = registry::resolve_targets(&tenants, config, sel)?;
    Ok(Fleet {
        tenants,
        targets,
        retired,
    })
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
    specs: &[&CollectionSpec],
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
    let live = inspect::read(&conn.client, &databases, declared, concurrency).await?;
    let ownership = Ownership::new(config, fleet, specs);
    let plans: Vec<TargetPlan> = compiled
        .iter()
        .map(|t| {
            plan_target(
                &t.target,
                &t.collections,
                &live,
                &owner(&t.target, config, &ownership),
            )
        })
        .collect();
    let live_count: usize = live
        .values()
        .flat_map(|colls| colls.values())
        .map(|c| 1 + c.index_count().map_or(0, |i| i + 1))
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
    inspect::read(&conn.client, &databases, declared, concurrency).await
}

/// What [`plan_streamed`] saw besides the plans.
pub struct Streamed {
    pub targets: usize,
    /// Collections plus indexes once the plans are applied (see [`namespace_estimate`]).
    pub namespaces_after: usize,
}

/// Read and plan at once: databases are read in the order the targets need them, and each
/// target (in fleet order) is compiled, planned and handed to `each` as soon as its
/// databases are in, while later ones are still being read. A database is let go once the
/// last target that uses it is planned, so memory stays bounded by the databases in flight.
/// Same round trips as [`read_live`]: one listCollections per database, one listIndexes per
/// declared collection.
pub async fn plan_streamed(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
    each: &mut dyn FnMut(TargetPlan),
) -> Result<Streamed> {
    Ok(
        read_and_plan(conn, config, fleet, specs, concurrency, false, each)
            .await?
            .0,
    )
}

/// Like [`plan_streamed`], but keeps the whole live state and returns it (what `apply`
/// does: its workers plan each changed target again when they take it). Planning still
/// overlaps with reading.
pub async fn plan_streamed_keeping_live(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
    each: &mut dyn FnMut(TargetPlan),
) -> Result<(Streamed, LiveState)> {
    read_and_plan(conn, config, fleet, specs, concurrency, true, each).await
}

async fn read_and_plan(
    conn: &Connection,
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    concurrency: usize,
    keep: bool,
    each: &mut dyn FnMut(TargetPlan),
) -> Result<(Streamed, LiveState)> {
    let mut order: Vec<String> = Vec::new();
    let mut last_use: BTreeMap<String, usize> = BTreeMap::new();
    let mut needs: Vec<Vec<String>> = Vec::with_capacity(fleet.targets.len());
    let mut declared = BTreeSet::new();
    for (i, t) in fleet.targets.iter().enumerate() {
        let mut dbs: Vec<String> = Vec::new();
        for s in specs.iter().filter(|s| t.holds(s)) {
            let p = t.place(s, &config.databases);
            if !dbs.contains(&p.database) {
                dbs.push(p.database.clone());
            }
            declared.insert((p.database, p.collection));
        }
        for db in &dbs {
            if last_use.insert(db.clone(), i).is_none() {
                order.push(db.clone());
            }
        }
        needs.push(dbs);
    }
    let planner = Planner::new(config, fleet, specs);
    let mut rx = inspect::read_stream(conn.client.clone(), order, declared, concurrency);
    let mut live = LiveState::new();
    let mut namespaces = 0;
    for (i, target) in fleet.targets.iter().enumerate() {
        while !needs[i].iter().all(|db| live.contains_key(db)) {
            let (db, colls) = rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("the live-state reader stopped early"))??;
            namespaces += live_namespaces(&colls);
            live.insert(db, colls);
        }
        namespaces += missing_namespaces(config, specs, &live, target);
        each(planner.plan(&live, target));
        if !keep {
            live.retain(|db, _| last_use.get(db).is_some_and(|&last| last > i));
        }
    }
    let streamed = Streamed {
        targets: fleet.targets.len(),
        namespaces_after: namespaces,
    };
    Ok((streamed, live))
}

/// Compiles and plans targets one at a time against a live state. Built once per run: it
/// knows, for the whole fleet, which collections of the shared database belong to whom.
pub struct Planner<'a> {
    config: &'a Config,
    specs: &'a [&'a CollectionSpec],
    ownership: Ownership,
}

impl<'a> Planner<'a> {
    pub fn new(config: &'a Config, fleet: &Fleet, specs: &'a [&'a CollectionSpec]) -> Self {
        Planner {
            config,
            specs,
            ownership: Ownership::new(config, fleet, specs),
        }
    }

    /// Compile and plan one target.
    pub fn plan(&self, live: &LiveState, target: &Target) -> TargetPlan {
        let compiled = compile_target(self.specs, target, &self.config.databases);
        let owns = owner(target, self.config, &self.ownership);
        plan_target(target, &compiled.collections, live, &owns)
    }
}

/// Plans against a live state ([`read_live`]) one target at a time, handing each plan to
/// `each` before the next is built: memory stays flat however many targets there are.
pub fn plan_live_each(
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
    live: &LiveState,
    each: &mut dyn FnMut(TargetPlan),
) -> usize {
    let planner = Planner::new(config, fleet, specs);
    for target in &fleet.targets {
        each(planner.plan(live, target));
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
    let live_count: usize = live.values().map(live_namespaces).sum();
    let missing: usize = fleet
        .targets
        .iter()
        .map(|t| missing_namespaces(config, specs, live, t))
        .sum();
    live_count + missing
}

/// Collections plus indexes (the `_id` index included) in one live database.
fn live_namespaces(colls: &BTreeMap<String, inspect::LiveCollection>) -> usize {
    colls
        .values()
        .map(|c| 1 + c.index_count().map_or(0, |i| i + 1))
        .sum()
}

/// What a target's specs would add where their collections are not live yet.
fn missing_namespaces(
    config: &Config,
    specs: &[&CollectionSpec],
    live: &LiveState,
    target: &Target,
) -> usize {
    specs
        .iter()
        .filter(|s| target.holds(s))
        .filter(|s| {
            let p = target.place(s, &config.databases);
            !live
                .get(&p.database)
                .is_some_and(|d| d.contains_key(&p.collection))
        })
        .map(|s| 2 + s.indexes.len())
        .sum()
}

/// Refuse a fleet in which two targets would use one physical collection of the shared
/// database: Pro tenant `acme` with a spec `eu_users` and Pro tenant `acme_eu` with a spec
/// `users` would both get `acme_eu_users` (tenant ids may contain `_`).
pub fn check_shared_names(
    config: &Config,
    fleet: &Fleet,
    specs: &[&CollectionSpec],
) -> Result<(), String> {
    let dbs = &config.databases;
    let holders = std::iter::once(Target::shared()).chain(
        fleet
            .tenants
            .iter()
            .filter(|t| config.tiers.layout(t.tier) == Layout::CollectionSet)
            .map(|t| Target::for_tenant(&t.id, t.tier, Layout::CollectionSet)),
    );
    let mut seen: std::collections::HashMap<String, (Target, String)> = Default::default();
    for h in holders {
        for s in specs.iter().filter(|s| h.holds(s)) {
            let p = h.place(s, dbs);
            if p.database != dbs.shared {
                continue;
            }
            if let Some((other, spec)) = seen.get(&p.collection) {
                return Err(format!(
                    "{}.{} would be both {other}'s `{spec}` and {h}'s `{}`; rename one of the collections, or register one of the tenants under another id",
                    p.database, p.collection, s.collection
                ));
            }
            seen.insert(p.collection, (h.clone(), s.collection.clone()));
        }
    }
    Ok(())
}

/// Who owns what in the shared database, for the whole fleet (not only the selected
/// targets): each Pro tenant's collection prefix, and every collection name that the shared
/// tiers or any Pro set declare there.
struct Ownership {
    /// `(tenant, prefix)` of each Pro tenant.
    prefixes: Vec<(String, String)>,
    declared: HashSet<String>,
}

impl Ownership {
    fn new(config: &Config, fleet: &Fleet, specs: &[&CollectionSpec]) -> Ownership {
        let dbs = &config.databases;
        let pro: Vec<&Tenant> = fleet
            .tenants
            .iter()
            .filter(|t| config.tiers.layout(t.tier) == Layout::CollectionSet)
            .collect();
        // Soft-deleted Pro tenants keep their prefixes: their sets are nobody else's.
        let retired = fleet
            .retired
            .iter()
            .filter(|t| config.tiers.layout(t.tier) == Layout::CollectionSet);
        let prefixes = pro
            .iter()
            .copied()
            .chain(retired)
            .map(|t| (t.id.clone(), dbs.set_prefix(&t.id)))
            .collect();
        let holders = std::iter::once(Target::shared()).chain(
            pro.iter()
                .map(|t| Target::for_tenant(&t.id, t.tier, Layout::CollectionSet)),
        );
        let mut declared = HashSet::new();
        for h in holders {
            for s in specs.iter().filter(|s| h.holds(s)) {
                let p = h.place(s, dbs);
                if p.database == dbs.shared {
                    declared.insert(p.collection);
                }
            }
        }
        Ownership { prefixes, declared }
    }
}

/// Whether an undeclared live collection belongs to `target` (so it is reported once), as a
/// test built once per target: the shared database holds every Pro set next to the shared
/// collections, so this runs for thousands of collections per target.
fn owner<'a>(
    target: &Target,
    config: &'a Config,
    ownership: &'a Ownership,
) -> impl Fn(&str, &str) -> bool + 'a {
    let dbs = &config.databases;
    let prefixes = &ownership.prefixes;
    let in_some_set = move |coll: &str| {
        prefixes
            .iter()
            .any(|(_, p)| !p.is_empty() && coll.starts_with(p.as_str()))
    };
    let kind = match &target.kind {
        TargetKind::Platform => Owner::NotShared,
        TargetKind::Shared => Owner::Shared,
        TargetKind::CollectionSet { tenant, .. } => {
            match prefixes.iter().find(|(t, p)| t == tenant && !p.is_empty()) {
                // Tenant ids may contain `_`, so `acme_` also matches `acme_eu_users`: a
                // collection belongs to the longest Pro prefix it starts with.
                Some((_, mine)) => Owner::Set {
                    prefix: mine.clone(),
                    longer: prefixes
                        .iter()
                        .filter(|(_, p)| p.len() > mine.len() && p.starts_with(mine.as_str()))
                        .map(|(_, p)| p.clone())
                        .collect(),
                },
                None => Owner::Nothing,
            }
        }
        TargetKind::Database { tenant, .. } => Owner::Database(dbs.tenant_database(tenant)),
    };
    // A name some target declares is never another target's undeclared collection: a Pro
    // tenant called `user` must not claim the shared tiers' `user_sessions`.
    move |db: &str, coll: &str| match &kind {
        _ if db == dbs.shared && ownership.declared.contains(coll) => false,
        // The tenant registry is caas's own, spec or not: never drift, never pruned.
        _ if db == dbs.platform && coll == registry::REGISTRY => false,
        Owner::NotShared => db != dbs.shared,
        Owner::Shared => db == dbs.shared && !in_some_set(coll),
        Owner::Set { prefix, longer } => {
            db == dbs.shared
                && coll.starts_with(prefix.as_str())
                && !longer.iter().any(|p| coll.starts_with(p.as_str()))
        }
        Owner::Nothing => false,
        Owner::Database(name) => db == name,
    }
}

enum Owner {
    NotShared,
    Shared,
    Set { prefix: String, longer: Vec<String> },
    Nothing,
    Database(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::Tier;

    fn spec(name: &str) -> CollectionSpec {
        let text = format!(
            "collection: {name}\ndomain: saas\nstandard_fields: false\nfields:\n  name: {{ type: string }}\n"
        );
        serde_json::from_value(crate::base::yaml::parse(&text).unwrap().value).unwrap()
    }

    fn tenant(id: &str, tier: Tier) -> Tenant {
        Tenant::for_test(id, tier, None)
    }

    /// Each undeclared live collection has exactly one owner, and a collection that some
    /// target declares is nobody's undeclared one: a Pro set's prefix wins over the shared
    /// target, the longest prefix wins when one tenant id extends another, and a Pro tenant
    /// whose prefix starts a shared collection's name does not claim it.
    #[test]
    fn every_undeclared_collection_has_one_owner() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        let (users, sessions) = (spec("users"), spec("user_sessions"));
        let specs = vec![&users, &sessions];
        let fleet = Fleet {
            tenants: vec![
                tenant("acme", Tier::Pro),
                tenant("acme_eu", Tier::Pro),
                tenant("user", Tier::Pro),
                tenant("bank", Tier::Enterprise),
                tenant("f1", Tier::Free),
            ],
            targets: vec![
                Target::platform(),
                Target::shared(),
                Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet),
                Target::for_tenant("acme_eu", Tier::Pro, Layout::CollectionSet),
                Target::for_tenant("user", Tier::Pro, Layout::CollectionSet),
                Target::for_tenant("bank", Tier::Enterprise, Layout::Database),
            ],
            retired: vec![tenant("gone", Tier::Pro)],
        };
        let ownership = Ownership::new(&config, &fleet, &specs);
        let owners = |db: &str, coll: &str| -> Vec<String> {
            fleet
                .targets
                .iter()
                .filter(|t| owner(t, &config, &ownership)(db, coll))
                .map(|t| t.to_string())
                .collect()
        };
        assert_eq!(owners("caas_shared", "stray"), ["shared"]);
        // A soft-deleted Pro tenant's set is still its own: nobody claims (or prunes) it.
        assert!(owners("caas_shared", "gone_users").is_empty());
        // The registry is caas's own, with or without a spec.
        assert!(owners("caas_platform", "saas_clients").is_empty());
        assert_eq!(owners("caas_shared", "acme_old"), ["pro:acme"]);
        assert_eq!(
            owners("caas_shared", "acme_eu_old"),
            ["pro:acme_eu"],
            "never acme's: pruning acme must not drop acme_eu's collections"
        );
        assert_eq!(owners("caas_shared", "user_old"), ["pro:user"]);
        for declared in [
            "users",
            "user_sessions",
            "acme_users",
            "acme_eu_users",
            "user_users",
        ] {
            assert_eq!(
                owners("caas_shared", declared),
                Vec::<String>::new(),
                "{declared} is declared, so no target may prune it"
            );
        }
        assert_eq!(owners("caas_platform", "old"), ["platform"]);
        // The planner asks only about databases the target places collections in, so the
        // platform target is never asked about a tenant database.
        let bank = &fleet.targets[5];
        assert!(owner(bank, &config, &ownership)("caas_bank", "old"));
        assert!(!owner(bank, &config, &ownership)("caas_other", "old"));
    }

    /// Two targets may never share a physical collection of the shared database.
    #[test]
    fn colliding_shared_names_are_refused() {
        let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
        let (users, eu_users, keys, user_keys) = (
            spec("users"),
            spec("eu_users"),
            spec("keys"),
            spec("user_keys"),
        );
        let fleet = |ids: &[&str]| Fleet {
            tenants: ids.iter().map(|id| tenant(id, Tier::Pro)).collect(),
            targets: vec![],
            retired: vec![],
        };
        let specs = vec![&users, &eu_users];
        assert_eq!(
            check_shared_names(&config, &fleet(&["acme"]), &specs),
            Ok(())
        );
        let err = check_shared_names(&config, &fleet(&["acme", "acme_eu"]), &specs).unwrap_err();
        assert!(
            err.starts_with("caas_shared.acme_eu_users would be both pro:acme's `eu_users` and pro:acme_eu's `users`"),
            "{err}"
        );
        let specs = vec![&keys, &user_keys];
        let err = check_shared_names(&config, &fleet(&["user"]), &specs).unwrap_err();
        assert!(
            err.starts_with(
                "caas_shared.user_keys would be both shared's `user_keys` and pro:user's `keys`"
            ),
            "{err}"
        );
        assert_eq!(
            check_shared_names(&config, &fleet(&["acme"]), &specs),
            Ok(())
        );
    }
}
