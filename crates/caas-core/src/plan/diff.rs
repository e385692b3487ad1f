//! Diffing one collection: its options (validator, validation level and action, time
//! series expiry) and its indexes against the live ones, as changes.

use bson::{Bson, Document};

use super::{change, Action, Change, Safety};
use crate::compile::{CompiledCollection, CompiledIndex};
use crate::inspect::normalize::{collection_shape, index_shape, CollectionShape, IndexShape};
use crate::inspect::LiveCollection;

fn strictness_level(l: &str) -> u8 {
    match l {
        "off" => 0,
        "moderate" => 1,
        _ => 2,
    }
}

pub(super) fn collection_changes(
    want: &CompiledCollection,
    have: &LiveCollection,
    out: &mut Vec<Change>,
) {
    let desired = collection_shape(&want.options.to_document());
    let have_options = have.options();
    let live = collection_shape(&have_options);
    let want_ts = want.options.timeseries.is_some();
    let have_ts = crate::inspect::normalize::is_time_series(&have.kind, &have_options);
    if let Some(c) = collation_conflict(want, &desired, &live) {
        out.push(c);
        return;
    }
    if want_ts != have_ts || (want_ts && desired.timeseries != live.timeseries) {
        let reason = kind_conflict(want_ts, have_ts);
        out.push(change(
            want,
            Safety::Destructive,
            Action::Conflict { reason },
        ));
        return;
    }
    if want_ts {
        // Time series: only expireAfterSeconds can change (collMod); it is an option, not an index.
        if let Some(c) = expiry_change(want, &desired, &live) {
            out.push(c);
        }
        return;
    }
    out.extend(validation_change(want, &desired, &live));
}

/// The collMod that brings validator, level and action in line, if any differ; a conflict
/// while the collection carries a tenant's write fence (a collMod would lift it).
fn validation_change(
    want: &CompiledCollection,
    desired: &CollectionShape,
    live: &CollectionShape,
) -> Option<Change> {
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
        return None;
    }
    if !live.fenced.is_empty() {
        // A collMod now would lift the fence of a move's cutover or a suspension.
        let reason = format!(
            "{} while tenant(s) {} are fenced read-only (a move or a suspension); finish the move (`caas tenant move ID --finish` or `--abort`) or `caas tenant resume ID`, then apply",
            differences.join(", "),
            live.fenced.join(", ")
        );
        return Some(change(
            want,
            Safety::Destructive,
            Action::Conflict { reason },
        ));
    }
    let safety = if tightens {
        Safety::DataDependent
    } else {
        Safety::Safe
    };
    Some(change(
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
    ))
}

fn show(b: &Option<Bson>) -> String {
    b.as_ref()
        .map(|b| b.to_string())
        .unwrap_or_else(|| "none".into())
}

pub(super) fn index_changes(
    want: &CompiledCollection,
    have: &LiveCollection,
    out: &mut Vec<Change>,
) {
    let have_indexes = have.indexes().unwrap_or_default();
    let live: Vec<(IndexShape, &Document)> =
        have_indexes.iter().map(|d| (index_shape(d), d)).collect();
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
                out.extend(matched_index_change(
                    want, ix, &shape, &live[i].0, live[i].1,
                ));
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

/// Why a collection cannot become what the spec wants in place (time series or not, or
/// other time-series options).
/// A default collation that differs: MongoDB sets it at creation only.
fn collation_conflict(
    want: &CompiledCollection,
    desired: &CollectionShape,
    live: &CollectionShape,
) -> Option<Change> {
    if desired.collation == live.collation {
        return None;
    }
    let shown = |c: &Option<Document>| {
        c.as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "simple".into())
    };
    let reason = format!(
        "the default collation differs (live {}, spec {}); MongoDB cannot change it in place: copy the data into a new collection through a migration",
        shown(&live.collation),
        shown(&desired.collation)
    );
    Some(change(
        want,
        Safety::Destructive,
        Action::Conflict { reason },
    ))
}

fn kind_conflict(want_ts: bool, have_ts: bool) -> String {
    if want_ts && have_ts {
        "time-series options differ; MongoDB cannot change timeField/metaField/granularity in place: migrate the data to a new collection".to_string()
    } else {
        format!(
            "the spec wants a {} collection but the live one is {}; recreate it through a migration",
            if want_ts { "time-series" } else { "regular" },
            if have_ts { "a time series" } else { "a regular collection" }
        )
    }
}

/// A time series' `expireAfterSeconds` change, if it differs.
fn expiry_change(
    want: &CompiledCollection,
    desired: &CollectionShape,
    live: &CollectionShape,
) -> Option<Change> {
    // Time series: only expireAfterSeconds can change (collMod); it is an option, not an index.
    (desired.expire_after_seconds != live.expire_after_seconds).then(|| {
        change(
            want,
            Safety::Safe,
            Action::UpdateValidation {
                validator: None,
                level: None,
                action: None,
                expire_after_seconds: desired.expire_after_seconds.as_ref().and_then(Bson::as_i64),
                differences: vec![format!(
                    "expireAfterSeconds {} -> {}",
                    show(&live.expire_after_seconds),
                    show(&desired.expire_after_seconds)
                )],
                tightens: false,
            },
        )
    })
}

/// The change an index needs when a live one matches it by name or identity: a rebuild
/// when what it indexes differs, a collMod for TTL and hidden, or nothing.
fn matched_index_change(
    want: &CompiledCollection,
    ix: &CompiledIndex,
    shape: &IndexShape,
    l: &IndexShape,
    live_doc: &Document,
) -> Option<Change> {
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
            live: live_doc.clone(),
            index: ix.clone(),
            differences,
        };
        return Some(change(want, Safety::Destructive, rebuild));
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
    (!mods.is_empty()).then(|| {
        change(
            want,
            Safety::Safe,
            Action::ModifyIndex {
                name: l.name.clone(),
                expire_after_seconds: ttl,
                hidden,
                differences: mods,
            },
        )
    })
}
