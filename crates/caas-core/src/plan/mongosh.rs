//! A plan as a mongosh script a DBA can review and run by hand.

use bson::{doc, Document};

use super::{Action, IndexStep, TargetPlan};
use crate::compile::to_json;

fn js(d: &Document) -> String {
    serde_json::to_string_pretty(&to_json(d)).expect("json")
}

fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("json")
}

/// The first line of a script.
pub const MONGOSH_HEADER: &str =
    "// caas schema plan, as mongosh commands. Review before running.\n";

/// The script for these plans. Undeclared objects are listed as comments unless `prune`.
pub fn to_mongosh(plans: &[TargetPlan], prune: bool) -> String {
    let mut out = String::from(MONGOSH_HEADER);
    for plan in plans {
        out.push_str(&mongosh_target(plan, prune));
    }
    out
}

/// The part of a script for one target (plans stream out one target at a time).
pub fn mongosh_target(plan: &TargetPlan, prune: bool) -> String {
    let mut out = String::new();
    {
        out.push_str(&format!("\n// ---- target {} ----\n", plan.target));
        if plan.changes.is_empty() {
            out.push_str("// no changes\n");
        }
        for c in &plan.changes {
            let db = format!("db.getSiblingDB({})", lit(&c.database));
            out.push_str(&format!(
                "// [{}] {}.{}: {}\n",
                c.safety.as_str(),
                c.database,
                c.collection,
                c.summary()
            ));
            let cmd = match &c.action {
                Action::CreateCollection { options } => format!(
                    "{db}.createCollection({}, {});",
                    lit(&c.collection),
                    js(options)
                ),
                Action::UpdateValidation { .. } | Action::ModifyIndex { .. } => format!(
                    "{db}.runCommand({});",
                    js(&c
                        .coll_mod()
                        .expect("validation and index-option changes are collMods"))
                ),
                Action::CreateIndex { index } => format!(
                    "{db}.runCommand({});",
                    js(
                        &doc! { "createIndexes": &c.collection, "indexes": [index.to_create_spec()] }
                    )
                ),
                Action::RebuildIndex { live, index, .. } => super::rebuild_steps(live, index)
                    .iter()
                    .map(|step| match step {
                        IndexStep::Create(spec) => format!(
                            "{db}.runCommand({});",
                            js(&doc! { "createIndexes": &c.collection, "indexes": [spec.clone()] })
                        ),
                        IndexStep::Drop(name) => format!(
                            "{db}.getCollection({}).dropIndex({});",
                            lit(&c.collection),
                            lit(name)
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Action::DropIndex { name, .. } => format!(
                    "{}{db}.getCollection({}).dropIndex({});",
                    if prune { "" } else { "// " },
                    lit(&c.collection),
                    lit(name)
                ),
                Action::DropCollection { owner, .. } if !crate::plan::is_prunable_owner(owner) => {
                    format!(
                        "// {db}.getCollection({}) is undeclared but belongs to {owner}; tenant data is never pruned",
                        lit(&c.collection)
                    )
                }
                Action::DropCollection { .. } => format!(
                    "{}{db}.getCollection({}).drop();",
                    if prune { "" } else { "// " },
                    lit(&c.collection)
                ),
                Action::Conflict { reason } => format!("// needs a person: {reason}"),
            };
            out.push_str(&cmd);
            out.push('\n');
        }
    }
    out
}

/// The cluster's sharding steps as `sh.*` calls, in the order `apply` runs them (after
/// every target's collections and indexes). Steps that need a person, and undeclared
/// ones without `prune`, are comments.
pub fn mongosh_sharding(changes: &[super::shard::ShardChange], prune: bool) -> String {
    use super::shard::ShardStep;
    let mut out = String::from("\n// ---- sharding (run on the mongos) ----\n");
    if changes.is_empty() {
        out.push_str("// no changes\n");
    }
    for c in changes {
        let ns = lit(&c.namespace);
        out.push_str(&format!(
            "// [{}] {}: {}\n",
            c.safety.as_str(),
            c.namespace,
            c.summary()
        ));
        if let Some(cost) = c.cost {
            out.push_str(&format!("// cost: {cost}\n"));
        }
        let call = match &c.step {
            ShardStep::ShardCollection { key, unique } => {
                format!("sh.shardCollection({ns}, {}, {unique});", js(key))
            }
            ShardStep::ZoneRange {
                min,
                max,
                zone,
                replaces,
            } => {
                let (min, max) = (bound(min), bound(max));
                let add = format!("sh.updateZoneKeyRange({ns}, {min}, {max}, {});", lit(zone));
                match replaces {
                    // Out of the old zone first: a range may not overlap one in another zone.
                    Some(_) => {
                        format!("sh.updateZoneKeyRange({ns}, {min}, {max}, null);\n{add}")
                    }
                    None => add,
                }
            }
            ShardStep::RemoveZoneRange { min, max, .. } => {
                format!(
                    "sh.updateZoneKeyRange({ns}, {}, {}, null);",
                    bound(min),
                    bound(max)
                )
            }
            ShardStep::NeedsOperator { .. } => continue,
            _ => c
                .commands()
                .iter()
                .map(|cmd| format!("db.adminCommand({});", js(cmd)))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if c.undeclared && !prune {
            out.push_str(&format!("// (--prune) {call}\n"));
        } else {
            out.push_str(&format!("{call}\n"));
        }
    }
    out
}

/// A zone range bound in mongosh's own syntax: `MinKey()` and `MaxKey()` are not
/// Extended JSON there (`{"$minKey": 1}` would be sent as a field named `$minKey`).
fn bound(d: &Document) -> String {
    let fields: Vec<String> = d
        .iter()
        .map(|(k, v)| {
            let v = match v {
                bson::Bson::MinKey => "MinKey()".to_string(),
                bson::Bson::MaxKey => "MaxKey()".to_string(),
                other => other.clone().into_relaxed_extjson().to_string(),
            };
            format!("{}: {v}", lit(k))
        })
        .collect();
    format!("{{ {} }}", fields.join(", "))
}
