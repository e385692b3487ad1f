//! The plan: a pure diff of the desired state (compiled specs) against the live state of
//! one target. Every change is classed safe, data-dependent or destructive; undeclared
//! live collections and indexes are listed as changes that only `--prune` executes.

mod mongosh;

use bson::{Bson, Document};
use serde::Serialize;

pub use mongosh::{mongosh_target, to_mongosh, MONGOSH_HEADER};

use crate::compile::{CompiledCollection, CompiledIndex};
use crate::inspect::normalize::{collection_shape, index_shape, IndexShape};
use crate::inspect::{is_internal, LiveCollection, LiveState};
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
                collection_changes(want, have, &mut changes);
                index_changes(want, have, &mut changes);
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

fn change(want: &CompiledCollection, safety: Safety, action: Action) -> Change {
    Change {
        database: want.placement.database.clone(),
        collection: want.placement.collection.clone(),
        safety,
        undeclared: false,
        action,
    }
}

fn strictness_level(l: &str) -> u8 {
    match l {
        "off" => 0,
        "moderate" => 1,
        _ => 2,
    }
}

fn collection_changes(want: &CompiledCollection, have: &LiveCollection, out: &mut Vec<Change>) {
    let desired = collection_shape(&want.options.to_document());
    let live = collection_shape(&have.options);
    let want_ts = want.options.timeseries.is_some();
    let have_ts = crate::inspect::normalize::is_time_series(&have.kind, &have.options);
    if want_ts != have_ts || (want_ts && desired.timeseries != live.timeseries) {
        let reason = if want_ts && have_ts {
            "time-series options differ; MongoDB cannot change timeField/metaField/granularity in place: migrate the data to a new collection".to_string()
        } else {
            format!(
                "the spec wants a {} collection but the live one is {}; recreate it through a migration",
                if want_ts { "time-series" } else { "regular" },
                if have_ts { "a time series" } else { "a regular collection" }
            )
        };
        out.push(change(
            want,
            Safety::Destructive,
            Action::Conflict { reason },
        ));
        return;
    }
    if want_ts {
        // Time series: only expireAfterSeconds can change (collMod); it is an option, not an index.
        if desired.expire_after_seconds != live.expire_after_seconds {
            out.push(change(
                want,
                Safety::Safe,
                Action::UpdateValidation {
                    validator: None,
                    level: None,
                    action: None,
                    expire_after_seconds: desired
                        .expire_after_seconds
                        .as_ref()
                        .and_then(Bson::as_i64),
                    differences: vec![format!(
                        "expireAfterSeconds {} -> {}",
                        show(&live.expire_after_seconds),
                        show(&desired.expire_after_seconds)
                    )],
                    tightens: false,
                },
            ));
        }
        return;
    }
    let mut differences = Vec::new();
    let mut tightens = false;
    let validator = (desired.validator != live.validator).then(|| {
        differences.push(if live.validator.is_none() {
            "add validator".to_string()
        } else {
            "validator differs".to_string()
        });
        tightens = true;
        want.options.validator.clone().unwrap_or_default()
    });
    let level = (desired.validation_level != live.validation_level).then(|| {
        differences.push(format!(
            "validationLevel {} -> {}",
            live.validation_level, desired.validation_level
        ));
        tightens |=
            strictness_level(&desired.validation_level) > strictness_level(&live.validation_level);
        desired.validation_level.clone()
    });
    let action = (desired.validation_action != live.validation_action).then(|| {
        differences.push(format!(
            "validationAction {} -> {}",
            live.validation_action, desired.validation_action
        ));
        tightens |= desired.validation_action == "error";
        desired.validation_action.clone()
    });
    if differences.is_empty() {
        return;
    }
    let safety = if tightens {
        Safety::DataDependent
    } else {
        Safety::Safe
    };
    out.push(change(
        want,
        safety,
        Action::UpdateValidation {
            validator,
            level,
            action,
            expire_after_seconds: None,
            differences,
            tightens,
        },
    ));
}

fn show(b: &Option<Bson>) -> String {
    b.as_ref()
        .map(|b| b.to_string())
        .unwrap_or_else(|| "none".into())
}

fn index_changes(want: &CompiledCollection, have: &LiveCollection, out: &mut Vec<Change>) {
    let live: Vec<(IndexShape, &Document)> = have
        .indexes
        .iter()
        .flatten()
        .map(|d| (index_shape(d), d))
        .collect();
    let mut matched = vec![false; live.len()];
    for ix in &want.indexes {
        let shape = index_shape(&ix.to_create_spec());
        // Same name first; otherwise an index with the same identity under another name.
        let by_name = live.iter().position(|(l, _)| l.name == shape.name);
        let by_identity = live.iter().position(|(l, _)| l.identity == shape.identity);
        match by_name.or(by_identity) {
            None => {
                let safety = if shape.identity.unique {
                    Safety::DataDependent
                } else {
                    Safety::Safe
                };
                out.push(change(
                    want,
                    safety,
                    Action::CreateIndex { index: ix.clone() },
                ));
            }
            Some(i) => {
                matched[i] = true;
                let l = &live[i].0;
                let mut differences = identity_differences(&l.identity, &shape.identity);
                if l.name != shape.name {
                    differences.push(format!("name {} -> {}", l.name, shape.name));
                }
                let ttl_kind_changed = l.ttl.is_some() != shape.ttl.is_some();
                if ttl_kind_changed {
                    differences.push(format!("TTL {} -> {}", show(&l.ttl), show(&shape.ttl)));
                }
                if !differences.is_empty() {
                    if l.hidden != shape.hidden {
                        differences.push(format!("hidden {} -> {}", l.hidden, shape.hidden));
                    }
                    let rebuild = Action::RebuildIndex {
                        live_name: l.name.clone(),
                        live: live[i].1.clone(),
                        index: ix.clone(),
                        differences,
                    };
                    out.push(change(want, Safety::Destructive, rebuild));
                    continue;
                }
                let mut mods = Vec::new();
                let ttl = (l.ttl != shape.ttl).then(|| {
                    mods.push(format!(
                        "expireAfterSeconds {} -> {}",
                        show(&l.ttl),
                        show(&shape.ttl)
                    ));
                    ix.options
                        .get("expireAfterSeconds")
                        .and_then(crate::inspect::normalize::canonical_number)
                        .and_then(|b| b.as_i64())
                        .unwrap_or(0)
                });
                let hidden = (l.hidden != shape.hidden).then(|| {
                    mods.push(format!("hidden {} -> {}", l.hidden, shape.hidden));
                    shape.hidden
                });
                if !mods.is_empty() {
                    out.push(change(
                        want,
                        Safety::Safe,
                        Action::ModifyIndex {
                            name: l.name.clone(),
                            expire_after_seconds: ttl,
                            hidden,
                            differences: mods,
                        },
                    ));
                }
            }
        }
    }
    for (i, (l, d)) in live.iter().enumerate() {
        if !matched[i] {
            out.push(Change {
                database: want.placement.database.clone(),
                collection: want.placement.collection.clone(),
                safety: Safety::Destructive,
                undeclared: true,
                action: Action::DropIndex {
                    name: l.name.clone(),
                    keys: d.get_document("key").cloned().unwrap_or_default(),
                },
            });
        }
    }
}

/// One step of an index rebuild.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexStep {
    Create(Document),
    Drop(String),
}

/// Suffix of the temporary index that serves queries during a rebuild.
pub const REBUILD_SUFFIX: &str = "_caas_rebuild";

/// The steps that replace index `live` by `index` without a window where neither exists.
/// When the new key pattern differs from the old (and so can coexist with it), the new
/// index is built first and the old one dropped. Otherwise a temporary index with the new
/// options and one extra, always-missing key serves the same queries (and enforces the
/// same uniqueness) while the old index is dropped and the new one built. Text indexes
/// cannot coexist (one per collection): they are dropped, then built.
pub fn rebuild_steps(live: &Document, index: &CompiledIndex) -> Vec<IndexStep> {
    let old = index_shape(live);
    let new_spec = index.to_create_spec();
    let new = index_shape(&new_spec);
    let is_text = new.identity.weights.is_some() || old.identity.weights.is_some();
    if is_text {
        return vec![IndexStep::Drop(old.name), IndexStep::Create(new_spec)];
    }
    let coexist = (old.identity.keys != new.identity.keys
        || old.identity.collation != new.identity.collation)
        && old.name != new.name;
    if coexist {
        return vec![IndexStep::Create(new_spec), IndexStep::Drop(old.name)];
    }
    let mut temp = new_spec.clone();
    let mut keys = index.keys.clone();
    keys.insert("_caas_rebuild", 1);
    temp.insert("key", keys);
    temp.insert("name", format!("{}{REBUILD_SUFFIX}", index.name));
    temp.remove("expireAfterSeconds");
    temp.remove("hidden");
    vec![
        IndexStep::Create(temp),
        IndexStep::Drop(old.name),
        IndexStep::Create(new_spec),
        IndexStep::Drop(format!("{}{REBUILD_SUFFIX}", index.name)),
    ]
}

fn identity_differences(
    live: &crate::inspect::normalize::IndexIdentity,
    want: &crate::inspect::normalize::IndexIdentity,
) -> Vec<String> {
    let mut d = Vec::new();
    if live.keys != want.keys {
        let fmt = |k: &[(String, Bson)]| {
            k.iter()
                .map(|(f, v)| format!("{f}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        d.push(format!(
            "keys {{{}}} -> {{{}}}",
            fmt(&live.keys),
            fmt(&want.keys)
        ));
    }
    if live.unique != want.unique {
        d.push(format!("unique {} -> {}", live.unique, want.unique));
    }
    if live.sparse != want.sparse {
        d.push(format!("sparse {} -> {}", live.sparse, want.sparse));
    }
    if live.partial != want.partial {
        d.push("partial filter differs".into());
    }
    if live.collation != want.collation {
        d.push("collation differs".into());
    }
    if live.weights != want.weights || live.default_language != want.default_language {
        d.push("text weights or language differ".into());
    }
    d
}

#[cfg(test)]
mod tests;
