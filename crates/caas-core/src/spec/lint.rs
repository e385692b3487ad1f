//! Semantic lint: what the meta-schema cannot say. Each check reads a typed spec and its
//! positioned document and returns findings; none touches a database.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use super::effective::Origin;
use super::load::LoadedSpec;
use super::model::*;
use crate::base::diagnostic::Finding;
use crate::base::yaml::{pointer_segment, Pos};
use crate::tenancy::check_collection_name;

/// The longest Pro prefix a collection name must leave room for (40-char tenant id + `_`).
const LONGEST_SET_PREFIX: usize = 41;

/// Lint loaded specs: per-file checks, then checks across files. `also_known` are
/// collections defined by files that failed to load (references to them are not errors).
pub fn lint(specs: &[LoadedSpec], also_known: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for s in specs {
        Linter::new(s, &mut findings).run();
    }
    across_files(specs, also_known, &mut findings);
    findings.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    findings
}

struct Linter<'a> {
    loaded: &'a LoadedSpec,
    spec: &'a CollectionSpec,
    out: &'a mut Vec<Finding>,
}

impl<'a> Linter<'a> {
    fn new(loaded: &'a LoadedSpec, out: &'a mut Vec<Finding>) -> Self {
        Linter {
            loaded,
            spec: &loaded.spec,
            out,
        }
    }

    fn key(&self, pointer: &str) -> Pos {
        self.loaded.doc.key_pos(pointer)
    }

    fn value(&self, pointer: &str) -> Pos {
        self.loaded.doc.value_pos(pointer)
    }

    fn error(
        &mut self,
        code: &'static str,
        pos: Pos,
        pointer: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let f = Finding::error(
            code,
            &self.loaded.file,
            pos,
            crate::base::diagnostic::dotted(pointer),
        )
        .says(message, fix);
        self.out.push(f);
    }

    fn warning(
        &mut self,
        code: &'static str,
        pos: Pos,
        pointer: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let f = Finding::warning(
            code,
            &self.loaded.file,
            pos,
            crate::base::diagnostic::dotted(pointer),
        )
        .says(message, fix);
        self.out.push(f);
    }

    fn run(mut self) {
        self.placement();
        self.names();
        let fields = self.spec.fields.clone();
        for (name, field) in &fields {
            self.field(
                &format!("/fields/{}", pointer_segment(name)),
                name,
                field,
                true,
            );
        }
        self.soft_delete();
        self.time_series();
        self.rules();
        self.indexes();
        self.services();
    }

    /// `owner` and `access` name services: roles and users are derived from them, so an
    /// empty or malformed name would become a malformed role.
    fn services(&mut self) {
        let mut names: Vec<(String, &str)> = Vec::new();
        if let Some(o) = &self.spec.owner {
            names.push(("/owner".into(), o.as_str()));
        }
        for (i, a) in self.spec.access.iter().enumerate() {
            names.push((format!("/access/{i}/service"), a.service.as_str()));
        }
        for (p, name) in names {
            if let Some(why) = bad_service_name(name) {
                self.error(
                    "service-name",
                    self.value(&p),
                    &p,
                    format!("service `{name}` {why}"),
                    "name the service in lowercase letters, digits and `-`, e.g. `billing-service`",
                );
            }
        }
    }

    /// The folder a spec sits in must agree with its domain; the file name with its collection.
    fn placement(&mut self) {
        let spec = self.spec;
        if let Some(rel) = &self.loaded.relative {
            let folder = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("");
            let is_nested = rel.components().count() > 1;
            if is_nested && folder != spec.domain.as_str() {
                self.error(
                    "domain-folder",
                    self.value("/domain"),
                    "/domain",
                    format!("domain `{}` contradicts the folder `{folder}/`", spec.domain.as_str()),
                    format!(
                        "move the file to `{}/`, or set `domain: {folder}` if that is where it belongs",
                        spec.domain.as_str()
                    ),
                );
            }
        }
        let stem = self
            .loaded
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if stem != spec.collection {
            self.error(
                "file-name",
                self.value("/collection"),
                "/collection",
                format!(
                    "collection `{}` is defined in a file named `{stem}`",
                    spec.collection
                ),
                format!(
                    "rename the file to `{}.yaml` (one collection per file, named after it)",
                    spec.collection
                ),
            );
        }
        if spec.domain == Domain::Saas && spec.tenant_scoped == Some(false) {
            self.error(
                "placement",
                self.value("/tenant_scoped"),
                "/tenant_scoped",
                "a `saas` collection follows its tenant's tier, so it must be tenant-scoped".into(),
                "remove `tenant_scoped: false`, or move the collection to the platform domain",
            );
        }
    }

    fn names(&mut self) {
        let spec = self.spec;
        let db = match spec.domain {
            Domain::Saas => "caas_shared",
            _ => "caas_platform",
        };
        let longest = if spec.domain == Domain::Saas {
            format!("{}{}", "t".repeat(LONGEST_SET_PREFIX), spec.collection)
        } else {
            spec.collection.clone()
        };
        for name in [&spec.collection, &longest] {
            if let Err(why) = check_collection_name(db, name) {
                self.error(
                    "invalid-name",
                    self.value("/collection"),
                    "/collection",
                    format!("invalid collection name: {why}"),
                    "use letters, digits and `_`; no `$`, no `system.` prefix, short enough for a Pro prefix",
                );
                break;
            }
        }
        if !spec
            .collection
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && check_collection_name(db, &spec.collection).is_ok()
        {
            self.warning(
                "name-style",
                self.value("/collection"),
                "/collection",
                format!(
                    "collection name `{}` has characters other than letters, digits and `_`",
                    spec.collection
                ),
                "shells and drivers need quoting for such names; prefer snake_case",
            );
        }
    }

    fn field(&mut self, at: &str, name: &str, f: &Field, top: bool) {
        if let Some(why) = bad_field_name(name) {
            self.error(
                "invalid-name",
                self.key(at),
                at,
                format!("invalid field name `{name}`: {why}"),
                "rename the field (letters, digits and `_`)",
            );
        }
        if top {
            self.reserved(at, name, f);
        } else if name == "_id" && at.matches("/fields/").count() > 1 {
            // `_id` inside an embedded document is an ordinary field.
        }
        let kind = f.kind;
        let mismatched: [(&str, bool, bool); 8] = [
            ("pattern", f.pattern.is_some(), kind == FieldType::String),
            (
                "min_length",
                f.min_length.is_some(),
                kind == FieldType::String,
            ),
            (
                "max_length",
                f.max_length.is_some(),
                kind == FieldType::String,
            ),
            ("min", f.min.is_some(), kind.is_numeric()),
            ("max", f.max.is_some(), kind.is_numeric()),
            ("min_items", f.min_items.is_some(), kind == FieldType::Array),
            ("max_items", f.max_items.is_some(), kind == FieldType::Array),
            ("unique_items", f.unique_items, kind == FieldType::Array),
        ];
        for (key, present, fits) in mismatched {
            if present && !fits {
                let p = format!("{at}/{key}");
                self.error(
                    "restriction-type",
                    self.key(&p),
                    &p,
                    format!(
                        "`{key}` does not apply to a field of type `{}`",
                        kind.as_str()
                    ),
                    format!("remove `{key}`, or change the type to one it applies to"),
                );
            }
        }
        for (lo, hi, lk, hk) in [
            (
                f.min_length.map(|v| v as f64),
                f.max_length.map(|v| v as f64),
                "min_length",
                "max_length",
            ),
            (f.min, f.max, "min", "max"),
            (
                f.min_items.map(|v| v as f64),
                f.max_items.map(|v| v as f64),
                "min_items",
                "max_items",
            ),
        ] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    let p = format!("{at}/{lk}");
                    self.error(
                        "empty-range",
                        self.value(&p),
                        &p,
                        format!("`{lk}` ({lo}) is greater than `{hk}` ({hi}): no value can pass"),
                        format!("swap or correct `{lk}` and `{hk}`"),
                    );
                }
            }
        }
        if let Some(pattern) = &f.pattern {
            if let Err(e) = fancy_regex::Regex::new(pattern) {
                let p = format!("{at}/pattern");
                let why = e.to_string();
                self.error(
                    "invalid-pattern",
                    self.value(&p),
                    &p,
                    format!("`{pattern}` is not a valid regular expression: {why}"),
                    "fix the pattern; in YAML, single-quote it so backslashes stay literal",
                );
            }
        }
        if let Some(values) = &f.enum_values {
            self.enum_values(&format!("{at}/enum"), f, values);
        }
        if f.reference.is_some() && !reference_shaped(f) {
            let p = format!("{at}/ref");
            self.error(
                "ref-type",
                self.key(&p),
                &p,
                format!(
                    "`ref` on a `{}` field: a reference holds another document's id",
                    kind.as_str()
                ),
                "put `ref` on an object_id, string or uuid field (or an array of them), or remove it",
            );
        }
        match kind {
            FieldType::Array if f.items.is_none() => {
                self.error(
                    "untyped-array",
                    self.key(at),
                    at,
                    format!("array `{name}` does not say what its items are"),
                    "add `items: {type: ...}` (use `type: any` for mixed items)",
                );
            }
            FieldType::Object if f.fields.is_none() && f.allow_extra_fields != Some(true) => {
                self.error("empty-object", self.key(at), at, format!("object `{name}` declares no fields and allows no extra fields, so only `{{}}` would pass"), "add `fields:`, or `allow_extra_fields: true` for free-form data");
            }
            _ => {}
        }
        if f.items.is_some() && kind != FieldType::Array {
            let p = format!("{at}/items");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                format!("`items` applies to arrays, not `{}`", kind.as_str()),
                "remove `items`, or set `type: array`",
            );
        }
        if (f.fields.is_some() || f.allow_extra_fields.is_some()) && kind != FieldType::Object {
            let p = format!("{at}/fields");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                format!("`fields` applies to objects, not `{}`", kind.as_str()),
                "remove `fields`, or set `type: object`",
            );
        }
        if f.secret && !matches!(kind, FieldType::String | FieldType::Binary) {
            let p = format!("{at}/secret");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                "`secret` marks a hashed string or binary value".into(),
                "set the type to `string` (a hash) or `binary`",
            );
        }
        if let Some(items) = &f.items {
            self.field(&format!("{at}/items"), name, items, false);
        }
        if let Some(fields) = &f.fields {
            for (child, cf) in fields {
                self.field(
                    &format!("{at}/fields/{}", pointer_segment(child)),
                    child,
                    cf,
                    false,
                );
            }
        }
    }

    /// Names caas adds itself must not be declared again.
    fn reserved(&mut self, at: &str, name: &str, f: &Field) {
        let standard = self.spec.standard_field_names();
        let why = if name == "tenant_id" && self.spec.is_tenant_scoped() {
            Some("caas adds `tenant_id` to every tenant-scoped collection")
        } else if standard.iter().flatten().any(|s| s == name) {
            Some("it is a standard field (created_at, updated_at, __v) that caas adds")
        } else {
            None
        };
        if let Some(why) = why {
            self.error(
                "reserved-field",
                self.key(at),
                at,
                format!("field `{name}` is declared, but {why}"),
                "remove the declaration (or switch the standard field off with `standard_fields`)",
            );
        }
        if self.soft_delete_names().contains(&name.to_string()) {
            self.error(
                "reserved-field",
                self.key(at),
                at,
                format!("field `{name}` is declared, but `soft_delete` adds it"),
                "remove the declaration",
            );
        }
        if name == "_id" && matches!(f.kind, FieldType::Array) {
            self.error(
                "invalid-id",
                self.value(&format!("{at}/type")),
                at,
                "`_id` cannot be an array".into(),
                "use object_id, string, uuid or another scalar type",
            );
        }
    }

    fn soft_delete_names(&self) -> Vec<String> {
        match &self.spec.soft_delete {
            Some(SoftDelete::DeletedAt {
                field, by_field, ..
            }) => vec![field.clone(), by_field.clone()],
            Some(SoftDelete::StateHistory {
                state_field, field, ..
            }) => vec![state_field.clone(), field.clone()],
            None => Vec::new(),
        }
    }

    fn enum_values(&mut self, at: &str, f: &Field, values: &[Value]) {
        if values.is_empty() {
            self.error(
                "empty-enum",
                self.value(at),
                at,
                "`enum` is empty: no value can pass".into(),
                "list the allowed values, or remove `enum`",
            );
            return;
        }
        let mut seen = HashSet::new();
        for (i, v) in values.iter().enumerate() {
            let p = format!("{at}/{i}");
            if !seen.insert(v.to_string()) {
                self.error(
                    "duplicate-enum",
                    self.value(&p),
                    &p,
                    format!("enum value {v} is listed twice"),
                    "remove the repeat",
                );
            }
            if v.is_null() {
                if !f.nullable {
                    self.error("enum-type", self.value(&p), &p, "`null` is in the enum of a field that is not nullable".into(), "remove `null`, or set `nullable: true` (null is then allowed without listing it)");
                }
                continue;
            }
            if value_fits(f.kind, v) {
                if let Some(why) = breaks_own_rules(f, v) {
                    self.error(
                        "enum-restricted",
                        self.value(&p),
                        &p,
                        format!("enum value {v} {why}, so no document can hold it"),
                        "correct the value, or the field's restriction",
                    );
                }
            }
            if !value_fits(f.kind, v) {
                self.error(
                    "enum-type",
                    self.value(&p),
                    &p,
                    format!(
                        "enum value {v} is not of the field's type `{}`",
                        f.kind.as_str()
                    ),
                    format!(
                        "write a value of type `{}` (quote strings, no quotes on numbers)",
                        f.kind.as_str()
                    ),
                );
            }
        }
    }

    fn soft_delete(&mut self) {
        if let Some(SoftDelete::StateHistory {
            states,
            deleted_states,
            ..
        }) = &self.spec.soft_delete
        {
            if states.is_empty() {
                self.error("soft-delete", self.value("/soft_delete/states"), "/soft_delete/states", "`states` is empty".into(), "list the states, initial state first, e.g. [active, deleted, suspended, archived]");
            }
            for (i, d) in deleted_states.iter().enumerate() {
                if !states.contains(d) {
                    let p = format!("/soft_delete/deleted_states/{i}");
                    self.error(
                        "soft-delete",
                        self.value(&p),
                        &p,
                        format!("deleted state `{d}` is not one of the states"),
                        format!(
                            "add `{d}` to `states`, or use one of: {}",
                            states.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn time_series(&mut self) {
        let Some(ts) = &self.spec.time_series else {
            return;
        };
        let fields = self.spec.effective_fields(None);
        match fields.get(&ts.time_field) {
            Some((f, _)) if f.kind == FieldType::Date => {}
            Some(_) => self.error(
                "time-series",
                self.value("/time_series/time_field"),
                "/time_series/time_field",
                format!("time field `{}` is not a date", ts.time_field),
                "declare it with `type: date`",
            ),
            None => self.error(
                "time-series",
                self.value("/time_series/time_field"),
                "/time_series/time_field",
                format!("time field `{}` is not declared", ts.time_field),
                format!(
                    "declare `{}: {{type: date, required: true}}` under fields",
                    ts.time_field
                ),
            ),
        }
        if let Some(meta) = &ts.meta_field {
            if !fields.contains_key(meta) {
                self.error(
                    "time-series",
                    self.value("/time_series/meta_field"),
                    "/time_series/meta_field",
                    format!("meta field `{meta}` is not declared"),
                    format!("declare `{meta}` under fields"),
                );
            }
        }
        if self.spec.soft_delete.is_some() {
            self.error(
                "time-series",
                self.key("/soft_delete"),
                "/soft_delete",
                "time-series collections cannot soft-delete (measurements are not updated)".into(),
                "remove `soft_delete`; use `time_series.expire_after_seconds` for retention",
            );
        }
        if !self.spec.rules.is_empty() {
            self.error("time-series", self.key("/rules"), "/rules", "rules cannot be enforced on a time-series collection: MongoDB refuses validators there".into(), "remove `rules`, or check them in the writing service");
        }
        if self.spec.validation().level != ValidationLevel::Off && !self.spec.fields.is_empty() {
            self.warning(
                "time-series-validation",
                self.key("/time_series"),
                "/time_series",
                "field rules are not enforced on a time-series collection: MongoDB refuses validators there, so caas emits none and uses the fields for docs and seed data only".into(),
                "write `validation: {level: off}` to acknowledge, or drop `time_series` if the rules must be enforced",
            );
        }
    }

    fn rules(&mut self) {
        let fields = self.spec.effective_fields(None);
        let rules = self.spec.rules.clone();
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("/rules/{i}");
            match rule {
                Rule::AnyOfRequired(r) => {
                    if r.any_of_required.len() < 2 {
                        self.error(
                            "rule",
                            self.value(&format!("{at}/any_of_required")),
                            &at,
                            "`any_of_required` needs at least two fields".into(),
                            "for a single field, set `required: true` on it",
                        );
                    }
                    self.declared_list(
                        &fields,
                        &format!("{at}/any_of_required"),
                        &r.any_of_required,
                    );
                }
                Rule::Conditional(r) => {
                    for (field, value) in &r.when {
                        let p = format!("{at}/when/{}", pointer_segment(field));
                        match fields.get(field) {
                            None => self.undeclared(&p, field, true),
                            Some((f, _)) => {
                                let in_enum =
                                    f.enum_values.as_ref().is_none_or(|e| e.contains(value));
                                if !value_fits(f.kind, value) || !in_enum {
                                    self.error("rule", self.value(&p), &p, format!("`{field}` can never equal {value}, so this rule never applies"), format!("use a value of type `{}`{}", f.kind.as_str(), enum_hint(f)));
                                }
                            }
                        }
                    }
                    self.declared_list(&fields, &format!("{at}/require"), &r.require);
                }
                Rule::Expr(r) => {
                    let p = format!("{at}/expr");
                    if r.expr.len() != 1 || !r.expr.keys().all(|k| k.starts_with('$')) {
                        self.error("rule", self.value(&p), &p, "`expr` must be one aggregation operator, e.g. `{$gt: [\"$ends_at\", \"$starts_at\"]}`".into(), "wrap the condition in a single `$` operator");
                    }
                    for (op_at, op) in unknown_operators(&Value::Object(r.expr.clone()), &p) {
                        let fix = match crate::base::diagnostic::closest_name(
                            &op,
                            &EXPR_OPERATORS
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>(),
                        ) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => {
                                "use an aggregation expression operator (MongoDB's list)".into()
                            }
                        };
                        self.error(
                            "rule",
                            self.key(&op_at),
                            &op_at,
                            format!("`{op}` is not an aggregation expression operator; MongoDB refuses the validator"),
                            fix,
                        );
                    }
                    let mut refs = Vec::new();
                    field_refs(&Value::Object(r.expr.clone()), &mut refs);
                    for name in refs {
                        if !fields.contains_key(&name) {
                            self.undeclared(&p, &name, false);
                        }
                    }
                }
            }
        }
    }

    fn declared_list(
        &mut self,
        fields: &IndexMap<String, (Field, Origin)>,
        at: &str,
        names: &[String],
    ) {
        for (i, name) in names.iter().enumerate() {
            if !fields.contains_key(name) {
                self.undeclared(&format!("{at}/{i}"), name, true);
            }
        }
    }

    fn undeclared(&mut self, at: &str, name: &str, key_pos: bool) {
        let pos = if key_pos {
            self.key(at)
        } else {
            self.value(at)
        };
        let candidates: Vec<String> = self.spec.effective_fields(None).keys().cloned().collect();
        let fix = match crate::base::diagnostic::closest_name(name, &candidates) {
            Some(best) => format!("did you mean `{best}`? or declare `{name}` under fields"),
            None => format!("declare `{name}` under fields"),
        };
        self.error(
            "undeclared-field",
            pos,
            at,
            format!("field `{name}` is not declared"),
            fix,
        );
    }

    fn indexes(&mut self) {
        let spec = self.spec;
        let fields = spec.effective_fields(None);
        let shared = spec.is_tenant_scoped();
        let mut text_indexes = Vec::new();
        for (i, ix) in spec.indexes.iter().enumerate() {
            let at = format!("/indexes/{i}");
            let keys_at = format!("{at}/keys");
            if ix.keys.is_empty() {
                self.error(
                    "index",
                    self.value(&keys_at),
                    &keys_at,
                    "index has no keys".into(),
                    "list at least one key, e.g. `keys: {email: 1}`",
                );
                continue;
            }
            for (path, dir) in &ix.keys {
                let p = format!("{keys_at}/{}", pointer_segment(path));
                if path == "$**" && *dir == IndexDirection::Special(IndexKind::Text) {
                    continue;
                }
                match resolve_path(&fields, path) {
                    None => self.undeclared(&p, path, true),
                    Some(f) => {
                        if *dir == IndexDirection::Special(IndexKind::Sphere2d)
                            && !matches!(f.kind, FieldType::GeoPoint | FieldType::Any)
                        {
                            self.error(
                                "index",
                                self.key(&p),
                                &p,
                                format!(
                                    "2dsphere index on `{path}`, which is `{}`, not `geo_point`",
                                    f.kind.as_str()
                                ),
                                format!("declare `{path}` as `type: geo_point`"),
                            );
                        }
                        if *dir == IndexDirection::Special(IndexKind::Text)
                            && !matches!(
                                f.kind,
                                FieldType::String | FieldType::Array | FieldType::Any
                            )
                        {
                            self.error(
                                "index",
                                self.key(&p),
                                &p,
                                format!(
                                    "text index on `{path}`, which is `{}`, not text",
                                    f.kind.as_str()
                                ),
                                "index a string field",
                            );
                        }
                    }
                }
            }
            let kinds: Vec<IndexDirection> = ix.keys.values().copied().collect();
            let is_text = kinds.contains(&IndexDirection::Special(IndexKind::Text));
            if is_text {
                text_indexes.push(i);
            }
            let hashed = kinds
                .iter()
                .filter(|k| **k == IndexDirection::Special(IndexKind::Hashed))
                .count();
            if hashed > 1 {
                self.error(
                    "index",
                    self.value(&keys_at),
                    &keys_at,
                    "an index may have only one hashed key".into(),
                    "keep one `hashed` key",
                );
            }
            if hashed > 0 && ix.unique {
                self.error(
                    "index",
                    self.key(&format!("{at}/unique")),
                    &format!("{at}/unique"),
                    "MongoDB cannot make a hashed index unique".into(),
                    "use an ascending index for uniqueness",
                );
            }
            if let Some(ttl_at) = ix.ttl_seconds.map(|_| format!("{at}/ttl_seconds")) {
                self.ttl(&ttl_at, ix, &fields);
            }
            if ix.unique && !ix.per_tenant && shared {
                let p = format!("{at}/per_tenant");
                self.error(
                    "global-unique",
                    self.key(&p),
                    &p,
                    "unique index across every tenant of a shared collection: one tenant's value blocks another's, and the error reveals that it exists".into(),
                    "remove `per_tenant: false` so uniqueness is per tenant",
                );
            }
            if ix.unique && spec.time_series.is_some() {
                self.error(
                    "time-series",
                    self.key(&format!("{at}/unique")),
                    &format!("{at}/unique"),
                    "time-series collections do not support unique indexes".into(),
                    "remove `unique`",
                );
            }
            if ix.sparse && shared && ix.per_tenant && ix.ttl_seconds.is_none() {
                let p = format!("{at}/sparse");
                self.error(
                    "sparse-shared",
                    self.key(&p),
                    &p,
                    "`sparse` has no effect on a shared tenant collection: the index is prefixed with `tenant_id`, which every document has, so every document is indexed".into(),
                    "use `partial: {field: {$exists: true}}` instead (for unique-if-present, `{field: {$type: \"string\"}}`)",
                );
            }
            if ix.sparse && ix.partial.is_some() {
                self.error(
                    "index",
                    self.key(&format!("{at}/sparse")),
                    &format!("{at}/sparse"),
                    "MongoDB refuses `sparse` together with a partial filter".into(),
                    "drop `sparse`; add `{field: {$exists: true}}` to the partial filter instead",
                );
            }
            if let Some(filter) = &ix.partial {
                for (p, why) in partial_filter_problems(filter, &format!("{at}/partial")) {
                    self.error(
                        "partial-filter",
                        self.key(&p),
                        &p,
                        why,
                        "a partial filter may use equality, `$exists: true`, `$gt`, `$gte`, `$lt`, `$lte`, `$type`, `$in`, and `$and`/`$or` of those (MongoDB 6.0+)",
                    );
                }
                for key in filter.keys().filter(|k| !k.starts_with('$')) {
                    if resolve_path(&fields, key).is_none() {
                        self.undeclared(
                            &format!("{at}/partial/{}", pointer_segment(key)),
                            key,
                            true,
                        );
                    }
                }
            }
            if let Some(w) = &ix.weights {
                let p = format!("{at}/weights");
                if !is_text {
                    self.error(
                        "index",
                        self.key(&p),
                        &p,
                        "`weights` applies to text indexes only".into(),
                        "remove `weights`, or make a key `text`",
                    );
                }
                for k in w.keys() {
                    if ix.keys.get(k) != Some(&IndexDirection::Special(IndexKind::Text))
                        && !ix.keys.contains_key("$**")
                    {
                        let kp = format!("{p}/{}", pointer_segment(k));
                        self.error(
                            "index",
                            self.key(&kp),
                            &kp,
                            format!("weight for `{k}`, which is not a text key of this index"),
                            "weight only the index's text keys",
                        );
                    }
                }
            }
            if let Some(c) = &ix.collation {
                if let Some(s) = c.strength.filter(|s| !(1..=5).contains(s)) {
                    let p = format!("{at}/collation/strength");
                    self.error(
                        "index",
                        self.value(&p),
                        &p,
                        format!("collation strength {s} is out of range"),
                        "use 1 (base letters) to 5 (identical); 2 is case-insensitive",
                    );
                }
            }
            if ix.name.as_deref() == Some("_id_") {
                self.error(
                    "index",
                    self.value(&format!("{at}/name")),
                    &format!("{at}/name"),
                    "`_id_` is the name of MongoDB's own `_id` index".into(),
                    "choose another name",
                );
            }
        }
        self.duplicate_indexes();
        if text_indexes.len() > 1 {
            let p = format!("/indexes/{}", text_indexes[1]);
            self.error(
                "text-index",
                self.value(&p),
                &p,
                format!(
                    "{} text indexes; MongoDB allows one per collection",
                    text_indexes.len()
                ),
                "combine the text keys into one index (with `weights` if needed)",
            );
        }
    }

    /// Index names and key patterns must be distinct in every form the spec compiles to:
    /// the shared form (with `tenant_id` prefixes) and, for `saas`, the dedicated form.
    fn duplicate_indexes(&mut self) {
        let spec = self.spec;
        let forms: Vec<(bool, &str)> = match (spec.domain, spec.is_tenant_scoped()) {
            (Domain::Saas, _) => vec![
                (true, "the shared form"),
                (false, "the Pro/Enterprise form"),
            ],
            (_, scoped) => vec![(scoped, "")],
        };
        let mut reported = HashSet::new();
        for (shared, form) in forms {
            let placement = crate::tenancy::Placement {
                database: String::new(),
                collection: spec.collection.clone(),
                shared_by_tenants: shared,
                tenant: None,
            };
            let compiled = crate::compile::compile_indexes(spec, &placement);
            let mut names: HashMap<&str, usize> = HashMap::new();
            let mut patterns: HashMap<String, usize> = HashMap::new();
            // Compiled indexes start with the spec's, in order; caas-added ones follow.
            let offset = compiled.len()
                - spec.indexes.len()
                - usize::from(matches!(
                    &spec.soft_delete,
                    Some(SoftDelete::DeletedAt {
                        retention_days: Some(_),
                        ..
                    })
                ));
            for (j, ix) in compiled.iter().enumerate() {
                let i = j.checked_sub(offset).filter(|i| *i < spec.indexes.len());
                let pattern = format!("{:?}{:?}", ix.keys, ix.options.get("collation"));
                let clash = names
                    .insert(&ix.name, j)
                    .map(|first| ("name", first))
                    .or_else(|| patterns.insert(pattern, j).map(|first| ("keys", first)));
                let (Some(i), Some((what, first))) = (i, clash) else {
                    continue;
                };
                if !reported.insert(i) {
                    continue;
                }
                let keys_at = format!("/indexes/{i}/keys");
                let other = first.checked_sub(offset).map_or_else(
                    || "an index caas adds".to_string(),
                    |f| format!("indexes[{f}]"),
                );
                let within = if form.is_empty() {
                    String::new()
                } else {
                    format!(" in {form}")
                };
                let (message, fix) = if what == "name" {
                    (
                        format!(
                            "index name `{}` is also the name of {other}{within}",
                            ix.name
                        ),
                        "give one of them an explicit, different `name`",
                    )
                } else {
                    (format!("{other} has the same keys{within}: {}", crate::compile::to_json(&ix.keys)), "merge the two indexes; MongoDB keeps one index per key pattern and collation")
                };
                self.error(
                    "duplicate-index",
                    self.value(&keys_at),
                    &keys_at,
                    message,
                    fix,
                );
            }
        }
    }

    fn ttl(&mut self, at: &str, ix: &IndexSpec, fields: &IndexMap<String, (Field, Origin)>) {
        if self.spec.time_series.is_some() {
            self.error(
                "ttl",
                self.key(at),
                at,
                "TTL index on a time-series collection".into(),
                "use `time_series.expire_after_seconds` instead",
            );
            return;
        }
        if ix.keys.len() != 1 {
            self.error("ttl", self.key(at), at, format!("TTL on a compound index ({} keys); MongoDB expires documents only through single-field indexes", ix.keys.len()), "make a separate index with the one date field and `ttl_seconds`");
            return;
        }
        let (path, _) = ix.keys.iter().next().expect("one key");
        let f = resolve_path(fields, path);
        let is_date = f.is_some_and(|f| {
            f.kind == FieldType::Date
                || (f.kind == FieldType::Array
                    && f.items.as_ref().is_some_and(|i| i.kind == FieldType::Date))
        });
        if f.is_some() && !is_date {
            let kind = f.map(|f| f.kind.as_str()).unwrap_or("?");
            self.error(
                "ttl",
                self.key(at),
                at,
                format!("TTL on `{path}`, a `{kind}` field: documents expire only by a date value"),
                format!("index a date field, or declare `{path}` with `type: date`"),
            );
        }
    }
}

/// Checks that need every spec: duplicate collections, references to unknown collections.
fn across_files(specs: &[LoadedSpec], also_known: &[String], out: &mut Vec<Finding>) {
    let mut first: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in specs {
        if let Some(prev) = first.insert(&s.spec.collection, &s.file) {
            out.push(
                Finding::error(
                    "duplicate-collection",
                    &s.file,
                    s.doc.value_pos("/collection"),
                    "collection",
                )
                .says(
                    format!(
                        "collection `{}` is also defined in {}",
                        s.spec.collection,
                        prev.display()
                    ),
                    "rename one of them, or delete the duplicate file",
                ),
            );
        }
    }
    let mut names: Vec<String> = specs.iter().map(|s| s.spec.collection.clone()).collect();
    names.extend(also_known.iter().cloned());
    for s in specs {
        let mut refs = Vec::new();
        collect_refs("/fields", &s.spec.fields, &mut refs);
        for (at, target) in refs {
            if !names.contains(&target) {
                let p = format!("{at}/ref");
                let fix = match crate::base::diagnostic::closest_name(&target, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "name a collection defined by a spec in this project".into(),
                };
                out.push(
                    Finding::error(
                        "unknown-ref",
                        &s.file,
                        s.doc.value_pos(&p),
                        crate::base::diagnostic::dotted(&p),
                    )
                    .says(format!("`ref: {target}` names no collection"), fix),
                );
            }
        }
    }
}

/// MongoDB's aggregation expression operators (as of 8.0), the ones `$expr` accepts.
const EXPR_OPERATORS: &[&str] = &[
    "$abs",
    "$acos",
    "$acosh",
    "$add",
    "$allElementsTrue",
    "$and",
    "$anyElementTrue",
    "$arrayElemAt",
    "$arrayToObject",
    "$asin",
    "$asinh",
    "$atan",
    "$atan2",
    "$atanh",
    "$avg",
    "$binarySize",
    "$bitAnd",
    "$bitNot",
    "$bitOr",
    "$bitXor",
    "$bsonSize",
    "$ceil",
    "$cmp",
    "$concat",
    "$concatArrays",
    "$cond",
    "$convert",
    "$cos",
    "$cosh",
    "$dateAdd",
    "$dateDiff",
    "$dateFromParts",
    "$dateFromString",
    "$dateSubtract",
    "$dateToParts",
    "$dateToString",
    "$dateTrunc",
    "$dayOfMonth",
    "$dayOfWeek",
    "$dayOfYear",
    "$degreesToRadians",
    "$divide",
    "$eq",
    "$exp",
    "$filter",
    "$first",
    "$firstN",
    "$floor",
    "$getField",
    "$gt",
    "$gte",
    "$hour",
    "$ifNull",
    "$in",
    "$indexOfArray",
    "$indexOfBytes",
    "$indexOfCP",
    "$isArray",
    "$isNumber",
    "$isoDayOfWeek",
    "$isoWeek",
    "$isoWeekYear",
    "$last",
    "$lastN",
    "$let",
    "$literal",
    "$ln",
    "$log",
    "$log10",
    "$lt",
    "$lte",
    "$ltrim",
    "$map",
    "$max",
    "$maxN",
    "$median",
    "$mergeObjects",
    "$meta",
    "$millisecond",
    "$min",
    "$minN",
    "$minute",
    "$mod",
    "$month",
    "$multiply",
    "$ne",
    "$not",
    "$objectToArray",
    "$or",
    "$percentile",
    "$pow",
    "$radiansToDegrees",
    "$rand",
    "$range",
    "$reduce",
    "$regexFind",
    "$regexFindAll",
    "$regexMatch",
    "$replaceAll",
    "$replaceOne",
    "$reverseArray",
    "$round",
    "$rtrim",
    "$sampleRate",
    "$second",
    "$setDifference",
    "$setEquals",
    "$setField",
    "$setIntersection",
    "$setIsSubset",
    "$setUnion",
    "$sin",
    "$sinh",
    "$size",
    "$slice",
    "$sortArray",
    "$split",
    "$sqrt",
    "$stdDevPop",
    "$stdDevSamp",
    "$strLenBytes",
    "$strLenCP",
    "$strcasecmp",
    "$substr",
    "$substrBytes",
    "$substrCP",
    "$subtract",
    "$sum",
    "$switch",
    "$tan",
    "$tanh",
    "$toBool",
    "$toDate",
    "$toDecimal",
    "$toDouble",
    "$toHashedIndexKey",
    "$toInt",
    "$toLong",
    "$toLower",
    "$toObjectId",
    "$toString",
    "$toUpper",
    "$toUUID",
    "$trim",
    "$trunc",
    "$tsIncrement",
    "$tsSecond",
    "$type",
    "$unsetField",
    "$week",
    "$year",
    "$zip",
];

/// Keys that look like operators (`$name`) and are not expression operators, with their
/// JSON pointers. Arguments of `$literal` are not looked into.
fn unknown_operators(v: &Value, at: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", pointer_segment(k));
                if k.starts_with('$') && !EXPR_OPERATORS.contains(&k.as_str()) {
                    out.push((p.clone(), k.clone()));
                }
                if k != "$literal" {
                    out.extend(unknown_operators(x, &p));
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.extend(unknown_operators(x, &format!("{at}/{i}")));
            }
        }
        _ => {}
    }
    out
}

/// Why a service name is unusable, if it is.
fn bad_service_name(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("is empty");
    }
    if name.len() > 64 {
        return Some("is longer than 64 characters");
    }
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (!ok).then_some("is not a service name")
}

/// What MongoDB refuses in a `partialFilterExpression` (as of 6.0: equality, `$exists:
/// true`, comparisons, `$type`, `$in`, and `$and`/`$or` of those), with JSON pointers.
fn partial_filter_problems(
    filter: &serde_json::Map<String, Value>,
    at: &str,
) -> Vec<(String, String)> {
    const FIELD_OPS: &[&str] = &[
        "$eq", "$exists", "$gt", "$gte", "$lt", "$lte", "$type", "$in",
    ];
    let mut out = Vec::new();
    for (k, v) in filter {
        let p = format!("{at}/{}", pointer_segment(k));
        if k.starts_with('$') {
            match (k.as_str(), v.as_array()) {
                ("$and" | "$or", Some(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(m) = item.as_object() {
                            out.extend(partial_filter_problems(m, &format!("{p}/{i}")));
                        }
                    }
                }
                _ => out.push((p, format!("`{k}` is not allowed in a partial filter"))),
            }
            continue;
        }
        let Some(ops) = v
            .as_object()
            .filter(|m| m.keys().any(|o| o.starts_with('$')))
        else {
            continue;
        };
        for (op, arg) in ops {
            let op_at = format!("{p}/{}", pointer_segment(op));
            if !FIELD_OPS.contains(&op.as_str()) {
                out.push((
                    op_at,
                    format!("`{op}` (on `{k}`) is not allowed in a partial filter"),
                ));
            } else if op == "$exists" && arg != &Value::Bool(true) {
                out.push((
                    op_at,
                    format!(
                        "`$exists: {arg}` (on `{k}`): a partial filter takes `$exists: true` only"
                    ),
                ));
            }
        }
    }
    out
}

/// Why an enum value breaks its own field's pattern, length or range, if it does.
fn breaks_own_rules(f: &Field, v: &Value) -> Option<String> {
    if let Some(text) = v.as_str() {
        let chars = text.chars().count() as u64;
        if let Some(p) = &f.pattern {
            if let Ok(re) = fancy_regex::Regex::new(p) {
                if matches!(re.is_match(text), Ok(false)) {
                    return Some(format!("does not match the field's pattern `{p}`"));
                }
            }
        }
        if f.min_length.is_some_and(|m| chars < m) {
            return Some(format!(
                "is shorter than min_length {}",
                f.min_length.unwrap_or(0)
            ));
        }
        if f.max_length.is_some_and(|m| chars > m) {
            return Some(format!(
                "is longer than max_length {}",
                f.max_length.unwrap_or(0)
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if f.min.is_some_and(|m| n < m) {
            return Some(format!("is below min {}", f.min.unwrap_or(0.0)));
        }
        if f.max.is_some_and(|m| n > m) {
            return Some(format!("is above max {}", f.max.unwrap_or(0.0)));
        }
    }
    None
}

/// Whether a field can hold a reference: an id-like scalar, or an array of them.
fn reference_shaped(f: &Field) -> bool {
    let id_like =
        |k: FieldType| matches!(k, FieldType::ObjectId | FieldType::String | FieldType::Uuid);
    match f.kind {
        FieldType::Array => f.items.as_ref().is_some_and(|i| id_like(i.kind)),
        k => id_like(k),
    }
}

fn collect_refs(at: &str, fields: &IndexMap<String, Field>, out: &mut Vec<(String, String)>) {
    for (name, f) in fields {
        let p = format!("{at}/{}", pointer_segment(name));
        if let Some(r) = &f.reference {
            out.push((p.clone(), r.clone()));
        }
        if let Some(items) = &f.items {
            if let Some(r) = &items.reference {
                out.push((format!("{p}/items"), r.clone()));
            }
            if let Some(nested) = &items.fields {
                collect_refs(&format!("{p}/items/fields"), nested, out);
            }
        }
        if let Some(nested) = &f.fields {
            collect_refs(&format!("{p}/fields"), nested, out);
        }
    }
}

/// Find a dotted path (`profile.email`, `members.user_id`) through objects and arrays.
fn resolve_path<'f>(
    fields: &'f IndexMap<String, (Field, Origin)>,
    path: &str,
) -> Option<&'f Field> {
    let mut parts = path.split('.');
    let mut field = &fields.get(parts.next()?)?.0;
    for part in parts {
        while field.kind == FieldType::Array {
            field = field.items.as_deref()?;
        }
        if field.kind == FieldType::Any
            || (field.kind == FieldType::Object
                && field.allow_extra_fields == Some(true)
                && field.fields.as_ref().is_none_or(|f| !f.contains_key(part)))
        {
            return Some(field);
        }
        if field.kind == FieldType::GeoPoint && matches!(part, "type" | "coordinates") {
            return Some(field);
        }
        field = field.fields.as_ref()?.get(part)?;
    }
    Some(field)
}

/// Field names referenced as `"$name"` (not `"$$var"`) inside an expression.
fn field_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with('$') && !s.starts_with("$$") => {
            let top = s[1..].split('.').next().unwrap_or("").to_owned();
            if !top.is_empty() && !out.contains(&top) {
                out.push(top);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| field_refs(x, out)),
        Value::Object(m) => m.values().for_each(|x| field_refs(x, out)),
        _ => {}
    }
}

fn bad_field_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('$') {
        Some("names starting with `$` are reserved for operators")
    } else if name.contains('.') {
        Some("a `.` in a field name cannot be queried with dot notation")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else {
        None
    }
}

fn value_fits(kind: FieldType, v: &Value) -> bool {
    match kind {
        FieldType::String => v.is_string(),
        FieldType::Int | FieldType::Long => v.as_i64().is_some(),
        FieldType::Double | FieldType::Decimal | FieldType::Number => v.is_number(),
        FieldType::Bool => v.is_boolean(),
        FieldType::Any => true,
        _ => false,
    }
}

fn enum_hint(f: &Field) -> String {
    match &f.enum_values {
        Some(values) => format!(
            " from its enum: {}",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}
