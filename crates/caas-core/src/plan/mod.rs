//! The plan: a pure diff of the desired state (compiled specs) against the live state of
//! one target. Every change is classed safe, data-dependent or destructive; undeclared
//! live collections and indexes are listed as changes that only `--prune` executes.

mod bounds;
mod diff;
mod mongosh;
pub mod shard;

use bson::Document;
use serde::Serialize;

pub use diff::{rebuild_steps, IndexStep};
pub use mongosh::{mongosh_sharding, mongosh_target, to_mongosh, MONGOSH_HEADER};

use crate::compile::{CompiledCollection, CompiledIndex};
use crate::inspect::{is_internal, LiveState};
use crate::tenancy::{Target, TargetKind};

/// How risky a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Cannot fail on existing data or lose anything.
    Safe,
    /// May fail, or reject writes, depending on the data (a tighter validator, a unique index).
    DataDependent,
    /// Drops or rebuilds something.
    Destructive,
}

impl Safety {
    pub fn as_str(self) -> &'static str {
        match self {
            Safety::Safe => "safe",
            Safety::DataDependent => "data-dependent",
            Safety::Destructive => "destructive",
        }
    }
}

/// One change to one collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Action {
    CreateCollection {
        options: Document,
    },
    /// collMod of validator, validationLevel and/or validationAction.
    UpdateValidation {
        /// Time series only: the collection's expireAfterSeconds.
        expire_after_seconds: Option<i64>,
        validator: Option<Document>,
        level: Option<String>,
        action: Option<String>,
        /// What differs, for people.
        differences: Vec<String>,
        /// The collection already exists with documents that may not pass (preflight).
        tightens: bool,
    },
    CreateIndex {
        index: CompiledIndex,
    },
    /// collMod of an index's TTL and/or hidden flag.
    ModifyIndex {
        name: String,
        expire_after_seconds: Option<i64>,
        hidden: Option<bool>,
        differences: Vec<String>,
    },
    /// The index's identity changed: build the new one, then drop the old.
    RebuildIndex {
        live_name: String,
        live: Document,
        index: CompiledIndex,
        differences: Vec<String>,
    },
    /// Live, but no spec declares it (only `--prune` drops it).
    DropIndex {
        name: String,
        keys: Document,
    },
    DropCollection {
        kind: String,
        /// Whose it is: a tenant target (`pro:acme`, `enterprise:bank`: tenant data, never
        /// pruned), `unregistered` (named like a collection set of a tenant that is not
        /// registered) or `unknown`. Only the last two are dropped by `--prune`.
        owner: String,
    },
    /// Something caas cannot change in place; needs a person.
    Conflict {
        reason: String,
    },
}

/// A change to one namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub database: String,
    pub collection: String,
    pub safety: Safety,
    /// Undeclared live objects; dropped only with `--prune`.
    pub undeclared: bool,
    #[serde(flatten)]
    pub action: Action,
}

impl Change {
    /// The `collMod` command of a validation or index-option change (what `apply` runs
    /// and the mongosh script shows); `None` for other changes.
    pub fn coll_mod(&self) -> Option<Document> {
        let mut cmd = bson::doc! { "collMod": &self.collection };
        match &self.action {
            Action::UpdateValidation {
                validator,
                level,
                action,
                expire_after_seconds,
                ..
            } => {
                if let Some(v) = validator {
                    cmd.insert("validator", v.clone());
                }
                if let Some(l) = level {
                    cmd.insert("validationLevel", l);
                }
                if let Some(a) = action {
                    cmd.insert("validationAction", a);
                }
                if let Some(secs) = expire_after_seconds {
                    cmd.insert("expireAfterSeconds", *secs);
                }
            }
            Action::ModifyIndex {
                name,
                expire_after_seconds,
                hidden,
                ..
            } => {
                let mut ix = bson::doc! { "name": name };
                if let Some(t) = expire_after_seconds {
                    ix.insert("expireAfterSeconds", *t);
                }
                if let Some(h) = hidden {
                    ix.insert("hidden", *h);
                }
                cmd.insert("index", ix);
            }
            _ => return None,
        }
        Some(cmd)
    }

    /// One line for tables and logs.
    pub fn summary(&self) -> String {
        match &self.action {
            Action::CreateCollection { options } => {
                if options.contains_key("timeseries") {
                    "create time-series collection".into()
                } else {
                    "create collection with validator".into()
                }
            }
            Action::UpdateValidation { differences, .. } => {
                format!("update validation: {}", differences.join("; "))
            }
            Action::CreateIndex { index } => format!(
                "create index {} {}",
                index.name,
                crate::compile::to_json(&index.keys)
            ),
            Action::ModifyIndex {
                name, differences, ..
            } => format!("modify index {name}: {}", differences.join("; ")),
            Action::RebuildIndex {
                live_name,
                index,
                differences,
                ..
            } => {
                format!(
                    "rebuild index {live_name} as {}: {}",
                    index.name,
                    differences.join("; ")
                )
            }
            Action::DropIndex { name, keys } => {
                format!("undeclared index {name} {}", crate::compile::to_json(keys))
            }
            Action::DropCollection { kind, owner } if is_prunable_owner(owner) => {
                format!("undeclared {kind} (no spec declares it; owner: {owner})")
            }
            Action::DropCollection { kind, owner } => format!(
                "undeclared {kind} (no spec declares it; owner: {owner}, whose data is never pruned)"
            ),
            Action::Conflict { reason } => format!("conflict: {reason}"),
        }
    }
}

/// The plan of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPlan {
    pub target: Target,
    pub changes: Vec<Change>,
}

impl TargetPlan {
    /// Changes that bring the target in line with the specs (not the undeclared ones).
    pub fn declared(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !c.undeclared)
    }
}

/// Whether `--prune` may drop an undeclared collection of this owner: never a tenant's.
pub fn is_prunable_owner(owner: &str) -> bool {
    owner == "unregistered" || owner == "unknown"
}

/// The owner of an undeclared collection that `target` reports: a tenant target owns what
/// is in its set or database; on the shared target, a name shaped like a collection set
/// (`{id}_{collection}` for a declared collection) belongs to an unregistered tenant.
fn owner_of(target: &Target, desired: &[CompiledCollection], name: &str) -> String {
    match &target.kind {
        TargetKind::CollectionSet { .. } | TargetKind::Database { .. } => target.to_string(),
        TargetKind::Shared => {
            let set_like = desired.iter().any(|c| {
                name.strip_suffix(c.placement.collection.as_str())
                    .and_then(|p| p.strip_suffix('_'))
                    .is_some_and(|id| crate::tenancy::check_tenant_id(id).is_ok())
            });
            if set_like { "unregistered" } else { "unknown" }.into()
        }
        TargetKind::Platform => "unknown".into(),
    }
}

/// Which live collections of a database belong to a target for undeclared-object reports.
pub type Owns<'a> = &'a dyn Fn(&str, &str) -> bool;

/// Diff one target. `owns(db, coll)` says whether an undeclared live collection belongs
/// to this target (so each one is reported once, by its owner).
pub fn plan_target(
    target: &Target,
    desired: &[CompiledCollection],
    live: &LiveState,
    owns: Owns<'_>,
) -> TargetPlan {
    let mut changes = Vec::new();
    for want in desired {
        let (db, name) = (&want.placement.database, &want.placement.collection);
        match live.get(db).and_then(|d| d.get(name)) {
            None => {
                changes.push(change(
                    want,
                    Safety::Safe,
                    Action::CreateCollection {
                        options: want.options.to_document(),
                    },
                ));
                // A new collection is empty: even unique indexes cannot fail.
                for ix in &want.indexes {
                    changes.push(change(
                        want,
                        Safety::Safe,
                        Action::CreateIndex { index: ix.clone() },
                    ));
                }
            }
            Some(have) => {
                diff::collection_changes(want, have, &mut changes);
                diff::index_changes(want, have, &mut changes);
            }
        }
    }
    let mut dbs: Vec<&String> = desired.iter().map(|c| &c.placement.database).collect();
    dbs.sort();
    dbs.dedup();
    for db in dbs {
        let Some(colls) = live.get(db) else { continue };
        for (name, have) in colls {
            // Cheapest test first: most collections of the shared database are other targets'.
            if is_internal(name) || !owns(db, name) {
                continue;
            }
            if desired
                .iter()
                .any(|c| &c.placement.database == db && &c.placement.collection == name)
            {
                continue;
            }
            changes.push(Change {
                database: db.clone(),
                collection: name.clone(),
                safety: Safety::Destructive,
                undeclared: true,
                action: Action::DropCollection {
                    kind: have.kind.clone(),
                    owner: owner_of(target, desired, name),
                },
            });
        }
    }
    TargetPlan {
        target: target.clone(),
        changes,
    }
}

pub(super) fn change(want: &CompiledCollection, safety: Safety, action: Action) -> Change {
    Change {
        database: want.placement.database.clone(),
        collection: want.placement.collection.clone(),
        safety,
        undeclared: false,
        action,
    }
}

#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;
