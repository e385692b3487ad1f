//! Checks on a migration before anything runs: collections exist and belong to the scope,
//! pipelines are pipelines, and no step can reach another tenant's data where it should not.

use std::path::Path;

use serde_json::Value;

use super::source::{Migration, MigrationFile, Scope, Step};
use crate::base::diagnostic::{dotted, Finding};
use crate::base::yaml::Document;
use crate::spec::CollectionSpec;
use crate::tenancy::Tier;

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

/// Load every migration under `dir`, checked against the specs. Any finding means
/// nothing runs: the caller stops before connecting.
pub fn load(
    dir: &Path,
    specs: &[&CollectionSpec],
    shared_tiers: &[Tier],
) -> (Vec<Migration>, Vec<Finding>) {
    super::source::read_dir(dir, &|file, doc, body| {
        lint(file, doc, body, specs, shared_tiers)
    })
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
    // Whether the migration runs on the shared target at all.
    let shares_tiers = m.scope == Scope::Tenant
        && m.tiers
            .as_ref()
            .is_none_or(|t| shared_tiers.iter().any(|s| t.contains(s)));
    for (dir, steps) in [("up", &m.up), ("down", &m.down)] {
        for (i, step) in steps.iter().enumerate() {
            let at = format!("/{dir}/{i}/{}", step.name());
            step_checks(&mut cx, &at, step, m, specs, partial_shared, shares_tiers);
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
    shares_tiers: bool,
) {
    let domain = m.scope.domain();
    let tenant = m.scope == Scope::Tenant;
    collection_checks(cx, at, step, specs, domain);
    field_name_checks(cx, at, step, tenant);
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
        Step::CreateIndex(s) => {
            if let Some(spec) = specs.iter().find(|sp| sp.collection == s.collection) {
                undeclared_index_checks(cx, &format!("{at}/index"), &s.index, spec);
            }
        }
        Step::Aggregate(s) => aggregate_checks(cx, at, s, specs, domain),
        Step::Command(s) => command_checks(cx, at, s, specs, domain, tenant && shares_tiers),
        _ => {}
    }
    if partial_shared {
        partial_shared_check(cx, at, step, m);
    }
}

/// A migration for only some shared tiers cannot run collection-wide steps there: they
/// would touch every tenant of the shared collections.
fn partial_shared_check(cx: &mut Ctx<'_>, at: &str, step: &Step, m: &MigrationFile) {
    if matches!(
        step,
        Step::CreateIndex(_) | Step::DropIndex(_) | Step::Command(_) | Step::Aggregate(_)
    ) {
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

/// Every collection a step names is declared, in the migration's scope.
fn collection_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    step: &Step,
    specs: &[&CollectionSpec],
    domain: crate::spec::Domain,
) {
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
                let fix = unknown_collection_fix(name, specs, domain);
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
}

/// Filters never pin a tenant; field names are ones MongoDB can store and query.
fn field_name_checks(cx: &mut Ctx<'_>, at: &str, step: &Step, tenant: bool) {
    if let Some(filter) = step.filter() {
        if tenant && mentions_tenant(&Value::Object(filter.clone())) {
            cx.error(&format!("{at}/filter"), false, "the filter names `tenant_id`: a tenant migration runs on every tenant target, and a hard-coded tenant could touch another tenant's data".into(), "remove `tenant_id` from the filter; use `tiers` to choose tenants");
        }
    }
    // Field names MongoDB cannot store or query: checked before anything else about them.
    let names: Vec<(&str, &str)> = match step {
        Step::RenameField(s) => vec![("from", s.from.as_str()), ("to", s.to.as_str())],
        Step::SetDefault(s) => vec![("field", s.field.as_str())],
        Step::UnsetField(s) => vec![("field", s.field.as_str())],
        _ => vec![],
    };
    for (key, name) in names {
        if let Some(why) = bad_field_path(name) {
            cx.error(
                &format!("{at}/{key}"),
                false,
                format!("`{name}` {why}"),
                "name a field: letters, digits and `_`, dotted for an embedded field (`profile.phone`)",
            );
        }
    }
    if let Step::InsertDocuments(s) = step {
        for (i, k) in s.key.iter().enumerate() {
            if let Some(why) = bad_field_path(k) {
                cx.error(
                    &format!("{at}/key/{i}"),
                    false,
                    format!("`{k}` {why}"),
                    "name a field of the documents",
                );
            }
        }
    }
}

/// An aggregate step's stages, then what its pipeline reads and writes.
fn aggregate_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    s: &super::source::AggregateStep,
    specs: &[&CollectionSpec],
    domain: crate::spec::Domain,
) {
    for (i, stage) in s.pipeline.iter().enumerate() {
        if stage.len() != 1 || !stage.keys().all(|k| k.starts_with('$')) {
            cx.error(
                &format!("{at}/pipeline/{i}"),
                false,
                "an aggregation stage is one `$` operator, e.g. `{$match: {...}}`".into(),
                "write one stage per list item",
            );
        }
    }
    pipeline_checks(
        cx,
        &format!("{at}/pipeline"),
        &s.pipeline,
        specs,
        domain,
        false,
    );
}

/// A raw command: not empty, not one caas refuses, and its pipelines checked like an
/// aggregate's. `joins_shared_tenants`: it runs on the shared target of a tenant migration.
fn command_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    s: &super::source::CommandStep,
    specs: &[&CollectionSpec],
    domain: crate::spec::Domain,
    joins_shared_tenants: bool,
) {
    match s.command.keys().next().map(String::as_str) {
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
        _ => {
            let pipelines =
                command_pipelines(&Value::Object(s.command.clone().into_iter().collect()), "");
            for (p, stages) in pipelines {
                let p = format!("{at}/command{p}");
                pipeline_checks(cx, &p, &stages, specs, domain, true);
                let joins = !super::pipeline::scan(&stages).0.is_empty();
                if joins && joins_shared_tenants {
                    cx.error(&p, false, "a raw command that joins collections would, on the shared target, join every tenant's documents".into(), "use an `aggregate` step: caas narrows its joins to one tenant at a time there");
                }
            }
        }
    }
}

/// "did you mean" for a collection name no spec declares, among the scope's collections.
fn unknown_collection_fix(
    name: &str,
    specs: &[&CollectionSpec],
    domain: crate::spec::Domain,
) -> String {
    let known: Vec<String> = specs
        .iter()
        .filter(|s| s.domain == domain)
        .map(|s| s.collection.clone())
        .collect();
    match crate::base::diagnostic::closest_name(name, &known) {
        Some(best) => format!("did you mean `{best}`?"),
        None => "name a collection that a spec declares".into(),
    }
}

/// Why a field path cannot be used, if it cannot: empty, an empty segment, a `$` at the
/// start of a segment (MongoDB reads it as an operator), or a NUL.
fn bad_field_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("is empty")
    } else if path.contains('\0') {
        Some("contains a NUL character")
    } else if path.split('.').any(str::is_empty) {
        Some("has an empty segment (a leading, trailing or double `.`)")
    } else if path.split('.').any(|seg| seg.starts_with('$')) {
        Some("starts a segment with `$`, which MongoDB reads as an operator, not a field")
    } else {
        None
    }
}

/// A migration may create an index early, but only one its spec declares (same keys and
/// options): otherwise `schema diff` would report it as drift forever after and `--prune`
/// would drop what the ledger says a migration created.
fn undeclared_index_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    index: &crate::spec::IndexSpec,
    spec: &CollectionSpec,
) {
    let comparable = |i: &crate::spec::IndexSpec| {
        let mut v = serde_json::to_value(i).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("description");
        }
        v
    };
    let keys = |i: &crate::spec::IndexSpec| serde_json::to_value(&i.keys).unwrap_or_default();
    match spec.indexes.iter().find(|d| keys(d) == keys(index)) {
        None => cx.error(
            at,
            false,
            format!(
                "no spec declares an index on {} for `{}`: created by a migration, it would be drift in every `schema diff` (and `--prune` would drop it)",
                keys(index),
                spec.collection
            ),
            "declare the index in the collection's spec (a migration may then create it early, with the same options), or let `schema apply` create it",
        ),
        Some(d) if comparable(d) != comparable(index) => cx.error(
            at,
            false,
            format!(
                "the index differs from the one `{}`'s spec declares on the same keys ({} here, {} in the spec)",
                spec.collection,
                comparable(index),
                comparable(d)
            ),
            "copy the declared index's options exactly",
        ),
        Some(_) => {}
    }
}

/// Every collection a pipeline names must be one the specs declare in this migration's
/// database (a join never leaves the target's database), and every stage must be one caas
/// can map per target. In a raw command names are `{logical}` placeholders.
fn pipeline_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    stages: &[serde_json::Map<String, Value>],
    specs: &[&CollectionSpec],
    domain: crate::spec::Domain,
    placeholders: bool,
) {
    let (refs, refusals) = super::pipeline::scan(stages);
    for r in refusals {
        cx.error(&format!("{at}{}", r.at), true, r.message, r.fix);
    }
    for r in refs {
        let p = format!("{at}{}", r.at);
        let Some(name) = r.name else {
            cx.error(&p, false, format!("`{}` names a collection of another database; a migration's joins stay inside the target's database", r.stage), "name a collection this migration's scope declares");
            continue;
        };
        let logical = if placeholders {
            match name.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                Some(l) => l.to_owned(),
                None => {
                    cx.error(&p, false, format!("`{}` names `{name}` literally: a raw command is not mapped per target, so it would reach the same physical collection from every target", r.stage), format!("write the logical name as a placeholder: `'{{{name}}}'`"));
                    continue;
                }
            }
        } else {
            name
        };
        match specs.iter().find(|s| s.collection == logical) {
            None => {
                let fix = unknown_collection_fix(&logical, specs, domain);
                cx.error(&p, false, format!("`{}` names `{logical}`, which no spec declares", r.stage), fix);
            }
            Some(s) if s.domain != domain => cx.error(
                &p,
                false,
                format!(
                    "`{}` names `{logical}` of domain `{}`, another database than this migration's `{}`: a join cannot cross databases",
                    r.stage,
                    s.domain.as_str(),
                    domain.as_str()
                ),
                "join only collections of this migration's scope, or copy the data in a separate migration",
            ),
            Some(_) => {}
        }
    }
}

/// The pipelines inside a raw command (values under `pipeline` keys, at any depth), with
/// their JSON pointers.
fn command_pipelines(v: &Value, at: &str) -> Vec<(String, Vec<serde_json::Map<String, Value>>)> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", crate::base::yaml::pointer_segment(k));
                if k == "pipeline" {
                    if let Some(stages) = x.as_array().and_then(|a| {
                        a.iter()
                            .map(|s| s.as_object().cloned())
                            .collect::<Option<Vec<_>>>()
                    }) {
                        out.push((p.clone(), stages));
                        continue;
                    }
                }
                out.extend(command_pipelines(x, &p));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.extend(command_pipelines(x, &format!("{at}/{i}")));
            }
        }
        _ => {}
    }
    out
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
