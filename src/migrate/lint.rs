//! Checks on a migration before anything runs: collections exist and belong to the scope,
//! pipelines are pipelines, and no step can reach another tenant's data where it should not.

use std::path::Path;

use serde_json::Value;

use super::source::{MigrationFile, Scope, Step};
use crate::diagnostic::{dotted, Finding};
use crate::spec::CollectionSpec;
use crate::tenancy::Tier;
use crate::yaml::Document;

/// Stages allowed in an update pipeline (MongoDB's list).
const UPDATE_STAGES: &[&str] = &[
    "$addFields",
    "$set",
    "$project",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
];

struct Ctx<'a> {
    file: &'a Path,
    doc: &'a Document,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn error(&mut self, at: &str, key: bool, message: String, fix: impl Into<String>) {
        let pos = if key {
            self.doc.key_pos(at)
        } else {
            self.doc.value_pos(at)
        };
        self.out.push(
            Finding::error("invalid-migration", self.file, pos, dotted(at)).says(message, fix),
        );
    }
}

pub fn lint(
    file: &Path,
    doc: &Document,
    m: &MigrationFile,
    specs: &[&CollectionSpec],
    shared_tiers: &[Tier],
) -> Vec<Finding> {
    let mut cx = Ctx {
        file,
        doc,
        out: Vec::new(),
    };
    if m.up.is_empty() {
        cx.error(
            "/up",
            false,
            "`up` has no steps".into(),
            "add at least one step",
        );
    }
    if m.tiers.is_some() && m.scope != Scope::Tenant {
        cx.error(
            "/tiers",
            true,
            "`tiers` applies to tenant-scoped migrations only".into(),
            "remove `tiers`, or set `scope: tenant`",
        );
    }
    // On the shared target, a migration for only some of its tiers must not touch the
    // other tiers' tenants: steps that cannot be narrowed by tenant are refused.
    let partial_shared = m.scope == Scope::Tenant
        && m.tiers.as_ref().is_some_and(|t| {
            shared_tiers.iter().any(|s| !t.contains(s))
                && shared_tiers.iter().any(|s| t.contains(s))
        });
    for (dir, steps) in [("up", &m.up), ("down", &m.down)] {
        for (i, step) in steps.iter().enumerate() {
            let at = format!("/{dir}/{i}/{}", step.name());
            step_checks(&mut cx, &at, step, m, specs, partial_shared);
        }
    }
    cx.out
}

fn step_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    step: &Step,
    m: &MigrationFile,
    specs: &[&CollectionSpec],
    partial_shared: bool,
) {
    let domain = m.scope.domain();
    for name in step.collections() {
        let field = if matches!(step, Step::Aggregate(a) if a.into == name && a.collection != name)
        {
            "into"
        } else {
            "collection"
        };
        let p = format!("{at}/{field}");
        match specs.iter().find(|s| s.collection == name) {
            None => {
                let known: Vec<String> = specs
                    .iter()
                    .filter(|s| s.domain == domain)
                    .map(|s| s.collection.clone())
                    .collect();
                let fix = match crate::spec::closest_name(name, &known) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "name a collection that a spec declares".into(),
                };
                cx.error(
                    &p,
                    false,
                    format!("no spec declares collection `{name}`"),
                    fix,
                );
            }
            Some(s) if s.domain != domain => cx.error(
                &p,
                false,
                format!(
                    "collection `{name}` is in domain `{}`, but this migration's scope is `{}`",
                    s.domain.as_str(),
                    domain.as_str()
                ),
                "split the migration by scope (one scope per file)",
            ),
            Some(_) => {}
        }
    }
    let tenant = m.scope == Scope::Tenant;
    if let Some(filter) = step.filter() {
        if tenant && mentions_tenant(&Value::Object(filter.clone())) {
            cx.error(&format!("{at}/filter"), false, "the filter names `tenant_id`: a tenant migration runs on every tenant target, and a hard-coded tenant could touch another tenant's data".into(), "remove `tenant_id` from the filter; use `tiers` to choose tenants");
        }
    }
    match step {
        Step::UpdateMany(s) => update_checks(cx, &format!("{at}/update"), &s.update, tenant),
        Step::Backfill(s) => {
            update_checks(cx, &format!("{at}/update"), &s.update, tenant);
            if s.batch_size == 0 || s.batch_size > 10_000 {
                cx.error(
                    &format!("{at}/batch_size"),
                    false,
                    format!("batch_size {} is out of range", s.batch_size),
                    "use 1 to 10000",
                );
            }
        }
        Step::RenameField(s) => {
            if s.from == s.to {
                cx.error(
                    &format!("{at}/to"),
                    false,
                    "`from` and `to` are the same field".into(),
                    "name the new field in `to`",
                );
            }
            for (k, v) in [("from", &s.from), ("to", &s.to)] {
                if tenant && v == "tenant_id" {
                    cx.error(
                        &format!("{at}/{k}"),
                        false,
                        "a migration cannot rename `tenant_id`".into(),
                        "tenant_id is managed by caas",
                    );
                }
            }
        }
        Step::UnsetField(s) if tenant && s.field == "tenant_id" => {
            cx.error(
                &format!("{at}/field"),
                false,
                "a migration cannot remove `tenant_id`".into(),
                "tenant_id is managed by caas",
            );
        }
        Step::Aggregate(s) => {
            for (i, stage) in s.pipeline.iter().enumerate() {
                let p = format!("{at}/pipeline/{i}");
                if stage.len() != 1 || !stage.keys().all(|k| k.starts_with('$')) {
                    cx.error(
                        &p,
                        false,
                        "an aggregation stage is one `$` operator, e.g. `{$match: {...}}`".into(),
                        "write one stage per list item",
                    );
                } else if stage.contains_key("$out") || stage.contains_key("$merge") {
                    cx.error(
                        &p,
                        false,
                        "`$out`/`$merge` are added by caas from `into`".into(),
                        "remove the stage; name the target collection in `into`",
                    );
                }
            }
        }
        Step::Command(s) => match s.command.keys().next().map(String::as_str) {
            None => cx.error(
                &format!("{at}/command"),
                false,
                "the command is empty".into(),
                "write the command document, e.g. `{collMod: \"{users}\", ...}`",
            ),
            Some("dropDatabase" | "shutdown" | "renameCollection") => cx.error(
                &format!("{at}/command"),
                false,
                "this command is not allowed in a migration".into(),
                "use a dedicated step, or do it by hand",
            ),
            _ => {}
        },
        _ => {}
    }
    if partial_shared
        && matches!(
            step,
            Step::CreateIndex(_) | Step::DropIndex(_) | Step::Command(_) | Step::Aggregate(_)
        )
    {
        cx.error(
            at,
            true,
            format!(
                "`{}` on a shared collection would touch every tenant of the shared tier, but this migration is only for {}",
                step.name(),
                m.tiers.as_deref().unwrap_or(&[]).iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "move the step to a migration for every shared tier, or use a filtered data step",
        );
    }
}

fn update_checks(cx: &mut Ctx<'_>, at: &str, update: &Value, tenant: bool) {
    match update {
        Value::Object(m) => {
            if m.is_empty() || !m.keys().all(|k| k.starts_with('$')) {
                cx.error(
                    at,
                    false,
                    "an update document holds update operators, e.g. `{$set: {...}}`".into(),
                    "wrap the fields in `$set`, or write a pipeline `[{$set: ...}]`",
                );
            }
        }
        Value::Array(stages) => {
            if stages.is_empty() {
                cx.error(
                    at,
                    false,
                    "the update pipeline is empty".into(),
                    "add a stage such as `{$set: {...}}`",
                );
            }
            for (i, stage) in stages.iter().enumerate() {
                let ok = stage.as_object().is_some_and(|m| {
                    m.len() == 1 && m.keys().all(|k| UPDATE_STAGES.contains(&k.as_str()))
                });
                if !ok {
                    cx.error(
                        &format!("{at}/{i}"),
                        false,
                        "invalid update pipeline stage".into(),
                        format!("each stage is one of {}", UPDATE_STAGES.join(", ")),
                    );
                }
            }
        }
        _ => cx.error(
            at,
            false,
            "`update` must be an update document or a pipeline".into(),
            "write `{$set: {...}}` or `[{$set: {...}}]`",
        ),
    }
    if tenant && sets_tenant(update) {
        cx.error(
            at,
            false,
            "the update changes `tenant_id`, which would move documents to another tenant".into(),
            "remove `tenant_id` from the update",
        );
    }
}

fn mentions_tenant(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "tenant_id" || k.starts_with("tenant_id.") || mentions_tenant(v)),
        Value::Array(a) => a.iter().any(mentions_tenant),
        Value::String(s) => s == "$tenant_id",
        _ => false,
    }
}

fn sets_tenant(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "tenant_id")
                || (k.starts_with('$') && sets_tenant(v))
                || (k == "$unset" && v == "tenant_id")
        }),
        Value::Array(a) => a.iter().any(sets_tenant),
        Value::String(s) => s == "tenant_id",
        _ => false,
    }
}
