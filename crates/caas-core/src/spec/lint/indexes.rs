//! Indexes: keys on declared fields of the right kind, partial filters, TTL, options.

use indexmap::IndexMap;
use serde_json::Value;

use super::*;
use crate::base::yaml::pointer_segment;
use crate::spec::effective::Origin;
use crate::spec::index::*;
use crate::spec::model::*;

impl Linter<'_> {
    pub(super) fn indexes(&mut self) {
        let spec = self.spec;
        let fields = spec.effective_fields(None);
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
            self.index_keys(&keys_at, ix, &fields);
            let is_text = ix
                .keys
                .values()
                .any(|k| *k == IndexDirection::Special(IndexKind::Text));
            if is_text {
                text_indexes.push(i);
            }
            self.index_kinds(&at, ix, &fields);
            self.index_scope(&at, ix);
            self.index_options(&at, ix, &fields, is_text);
        }
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

    /// Each key names a declared field of a kind its index type can use.
    fn index_keys(
        &mut self,
        keys_at: &str,
        ix: &IndexSpec,
        fields: &IndexMap<String, (Field, Origin)>,
    ) {
        for (path, dir) in &ix.keys {
            let p = format!("{keys_at}/{}", pointer_segment(path));
            if path == "$**" && *dir == IndexDirection::Special(IndexKind::Text) {
                continue;
            }
            match resolve_path(fields, path) {
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
    }

    /// Hashed keys (one, never unique) and TTL.
    fn index_kinds(
        &mut self,
        at: &str,
        ix: &IndexSpec,
        fields: &IndexMap<String, (Field, Origin)>,
    ) {
        let keys_at = format!("{at}/keys");
        let kinds: Vec<IndexDirection> = ix.keys.values().copied().collect();
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
            self.ttl(&ttl_at, ix, fields);
        }
    }

    /// Uniqueness and sparseness against the collection's sharing and kind.
    fn index_scope(&mut self, at: &str, ix: &IndexSpec) {
        let shared = self.spec.is_tenant_scoped();
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
        if ix.unique && self.spec.time_series.is_some() {
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
    }

    /// Partial filter, text weights, collation and the name.
    fn index_options(
        &mut self,
        at: &str,
        ix: &IndexSpec,
        fields: &IndexMap<String, (Field, Origin)>,
        is_text: bool,
    ) {
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
                if resolve_path(fields, key).is_none() {
                    self.undeclared(&format!("{at}/partial/{}", pointer_segment(key)), key, true);
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

    pub(super) fn ttl(
        &mut self,
        at: &str,
        ix: &IndexSpec,
        fields: &IndexMap<String, (Field, Origin)>,
    ) {
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

#[cfg(test)]
mod tests {
    use super::super::{lint_text, places};

    #[test]
    fn index_keys_must_be_declared_and_partial_filters_allowed() {
        let text = "collection: users\ndomain: saas\nfields:\n  email: { type: string }\nindexes:\n  - keys: { emial: 1 }\n  - keys: { email: 1 }\n    unique: true\n    partial: { email: { $regex: '@corp' } }\n";
        let got = lint_text("saas/users.yaml", text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[0].line, 6);
        assert!(got[1].message.contains("$regex"), "{}", got[1].message);
    }

    #[test]
    fn paths_resolve_through_objects_and_arrays() {
        let text = "collection: teams\ndomain: saas\nfields:\n  members: { type: array, items: { type: object, fields: { user_id: { type: string } } } }\nindexes:\n  - keys: { members.user_id: 1 }\n";
        assert_eq!(places(&lint_text("saas/teams.yaml", text)), vec![]);
    }
}
