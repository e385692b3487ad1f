//! Shard keys: MongoDB's rules for a key, checked per layout the collection is sharded in
//! (the shared form has `tenant_id` first, as `compile::shard` builds it). Each message
//! cites the rule of MongoDB's manual it comes from.

use indexmap::IndexMap;

use super::*;
use crate::spec::effective::Origin;
use crate::spec::index::{IndexDirection, IndexKind, IndexOrder};
use crate::spec::Shard;
use crate::tenancy::Layout;

const KEY_RULE: &str = "MongoDB (Shard Keys): shard key fields";

impl Linter<'_> {
    pub(super) fn sharding(&mut self) {
        let Some(shard) = self.spec.shard.clone() else {
            return;
        };
        let fields = self.spec.effective_fields(None);
        let key = shard.written_key();
        let at = if shard.key.is_empty() {
            "/shard"
        } else {
            "/shard/key"
        };
        self.key_directions(&key, &shard, at);
        for name in key.keys() {
            let ptr = if shard.key.is_empty() {
                "/shard".to_string()
            } else {
                format!("/shard/key/{}", pointer_segment(name))
            };
            self.key_field(&fields, name, &ptr, &shard);
        }
        self.time_series_key(&key, at);
        self.layouts_meaningful(&key, &shard, at);
        self.unique_indexes_prefixed(&key, &shard);
    }

    fn key_directions(&mut self, key: &IndexMap<String, IndexDirection>, shard: &Shard, at: &str) {
        let hashed = key
            .values()
            .filter(|d| **d == IndexDirection::Special(IndexKind::Hashed))
            .count();
        for (name, dir) in key {
            let ok = matches!(
                dir,
                IndexDirection::Order(IndexOrder::Asc) | IndexDirection::Special(IndexKind::Hashed)
            );
            if !ok {
                let ptr = format!("/shard/key/{}", pointer_segment(name));
                self.error("shard-key", self.value(&ptr), &ptr, format!("shard key field `{name}` is {}: {KEY_RULE} are `1` (ranged) or `\"hashed\"`", dir.name_part()), "write `1` or `hashed`");
            }
        }
        if hashed > 1 {
            self.error("shard-key", self.value(at), at, format!("the shard key has {hashed} hashed fields: MongoDB (Hashed Sharding) allows one hashed field in a compound shard key"), "keep `hashed` on one field, `1` on the others");
        }
        if hashed > 0 && shard.unique {
            self.error("shard-key", self.value("/shard/unique"), "/shard/unique", "a unique shard key cannot be hashed: MongoDB (shardCollection) refuses `unique: true` with a hashed key".into(), "drop `unique`, or make the key ranged (`1`)");
        }
    }

    fn key_field(
        &mut self,
        fields: &IndexMap<String, (Field, Origin)>,
        name: &str,
        ptr: &str,
        shard: &Shard,
    ) {
        let top = name.split('.').next().unwrap_or(name);
        let Some((field, origin)) = fields.get(top) else {
            self.undeclared(ptr, name, !shard.key.is_empty());
            return;
        };
        let field = nested(field, name).unwrap_or(field);
        if field.kind == FieldType::Array {
            self.error("shard-key", self.key(ptr), ptr, format!("shard key field `{name}` is an array: {KEY_RULE} cannot hold arrays (nor be multikey)"), "shard on a scalar field");
        }
        let required = *origin != Origin::Declared || required_path(&self.spec.fields, name);
        if !required && !shard.missing_as_null {
            self.error("shard-key", self.key(ptr), ptr, format!("shard key field `{name}` is optional: {KEY_RULE} missing from a document are filed under null, so one null range grows with every such document"), format!("make `{name}` required, or write `missing_as_null: true` under shard to accept it"));
        }
    }

    /// Time series: MongoDB (Time Series Limitations, Sharding) allows only the metaField,
    /// its subfields and the timeField in the key, the timeField last.
    fn time_series_key(&mut self, key: &IndexMap<String, IndexDirection>, at: &str) {
        let Some(ts) = self.spec.time_series.clone() else {
            return;
        };
        let meta = ts.meta_field.as_deref();
        let n = key.len();
        for (i, name) in key.keys().enumerate() {
            let in_meta = meta.is_some_and(|m| name == m || name.starts_with(&format!("{m}.")));
            let is_time = *name == ts.time_field;
            if (is_time && i + 1 != n) || !(in_meta || is_time) {
                self.error("shard-key", self.value(at), at, format!("`{name}` cannot be in a time-series shard key: MongoDB (Time Series Limitations) allows the metaField, its subfields and the timeField, the timeField last"), "shard on the meta field (or its subfields), optionally followed by the time field");
            }
        }
        if self.shared_form(self.spec.shard.as_ref().expect("sharded"))
            && meta != Some("tenant_id")
            && key.keys().next().map(String::as_str) != Some("tenant_id")
        {
            self.error("shard-key", self.value(at), at, "a time-series collection tenants share gets `tenant_id` first in its shard key, and only the metaField may lead it".into(), "make `tenant_id` the time series' meta_field, or shard it only in Pro sets or Enterprise databases (`layouts`)");
        }
    }

    fn shared_form(&self, shard: &Shard) -> bool {
        self.spec.domain == Domain::Saas
            && self.spec.is_tenant_scoped()
            && shard.applies_to(Layout::Shared)
            || self.spec.domain != Domain::Saas && self.spec.is_tenant_scoped()
    }

    fn layouts_meaningful(
        &mut self,
        key: &IndexMap<String, IndexDirection>,
        shard: &Shard,
        at: &str,
    ) {
        if self.spec.domain != Domain::Saas && shard.layouts.is_some() {
            self.warning("shard-layouts", self.key("/shard/layouts"), "/shard/layouts", format!("`layouts` applies to `saas` collections; a `{}` collection is one collection in its domain's database", self.spec.domain.as_str()), "remove `layouts`");
        }
        let only_tenant = key.len() == 1 && key.contains_key("tenant_id");
        let per_tenant = [Layout::CollectionSet, Layout::Database]
            .into_iter()
            .any(|l| self.spec.domain == Domain::Saas && shard.applies_to(l));
        if per_tenant && key.first().is_some_and(|(k, _)| k == "tenant_id") {
            self.error("shard-key", self.value(at), at, "in a Pro set or Enterprise database every document has the same `tenant_id`: a key led by it cannot split the tenant's data (MongoDB, Shard Keys: low cardinality makes jumbo chunks)".into(), "write the key without `tenant_id` (caas puts it first where tenants share the collection)");
        } else if only_tenant && self.shared_form(shard) {
            self.warning("shard-key-cardinality", self.value(at), at, "a key of `tenant_id` alone keeps each tenant in one chunk that cannot split: a large tenant becomes a jumbo chunk (MongoDB, Shard Keys: cardinality)".into(), "add a second field, e.g. `{tenant_id: 1, _id: 1}` (the default)");
        }
        if self.spec.time_series.is_none()
            && self.spec.domain == Domain::Saas
            && !self.spec.is_tenant_scoped()
            && shard.applies_to(Layout::Shared)
            && shard.layouts.is_none()
        {
            self.warning("shard-layouts", self.key("/shard"), "/shard", "the collection is not tenant-scoped, so tenants' documents cannot be told apart in the shared key".into(), "name the layouts it is sharded in with `layouts`");
        }
    }

    /// MongoDB (Unique Indexes, Sharded Clusters): a unique index on a sharded collection
    /// must be prefixed by the shard key; checked in each form the collection is sharded in.
    fn unique_indexes_prefixed(&mut self, key: &IndexMap<String, IndexDirection>, shard: &Shard) {
        let mut forms = Vec::new();
        if self.shared_form(shard) {
            let mut k: Vec<&str> = vec!["tenant_id"];
            k.extend(key.keys().map(String::as_str).filter(|f| *f != "tenant_id"));
            forms.push((true, k));
        }
        if self.spec.domain == Domain::Saas
            && [Layout::CollectionSet, Layout::Database]
                .into_iter()
                .any(|l| shard.applies_to(l))
            || !self.spec.is_tenant_scoped() && self.spec.domain != Domain::Saas
        {
            forms.push((false, key.keys().map(String::as_str).collect()));
        }
        let unique: Vec<(usize, &crate::spec::IndexSpec)> = self
            .spec
            .indexes
            .iter()
            .enumerate()
            .filter(|(_, ix)| ix.unique)
            .collect();
        let mut found = Vec::new();
        for (shared, k) in &forms {
            let physical: Vec<(usize, Vec<&str>)> = unique
                .iter()
                .map(|(i, ix)| {
                    let mut p: Vec<&str> = Vec::new();
                    if *shared
                        && ix.per_tenant
                        && ix.keys.first().is_none_or(|(f, _)| f != "tenant_id")
                    {
                        p.push("tenant_id");
                    }
                    p.extend(ix.keys.keys().map(String::as_str));
                    (*i, p)
                })
                .collect();
            let fix = common_prefix_fix(&physical, *shared);
            for (i, p) in &physical {
                if p.len() < k.len() || p[..k.len()] != k[..] {
                    let form = if *shared {
                        "where tenants share the collection"
                    } else {
                        "in a Pro set or Enterprise database"
                    };
                    found.push((*i, format!("unique index {{{}}} is not prefixed by the shard key {{{}}} {form}: MongoDB (Unique Indexes, Sharded Clusters) enforces uniqueness across shards only for indexes prefixed by the shard key", p.join(", "), k.join(", ")), fix.clone()));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, message, fix) in found {
            if seen.insert(i) {
                let ptr = format!("/indexes/{i}/unique");
                self.error("shard-unique-index", self.key(&ptr), &ptr, message, fix);
            }
        }
    }
}

/// The fix for unique indexes the key does not prefix: the key every one of them starts
/// with, if they share a leading field beyond `tenant_id`'s place.
fn common_prefix_fix(physical: &[(usize, Vec<&str>)], shared: bool) -> String {
    let mut common: Vec<&str> = physical.first().map(|(_, p)| p.clone()).unwrap_or_default();
    for (_, p) in physical {
        let n = common.iter().zip(p).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    let written: Vec<String> = common
        .iter()
        .skip(usize::from(shared && common.first() == Some(&"tenant_id")))
        .map(|f| format!("{f}: 1"))
        .collect();
    match (written.is_empty(), shared && !common.is_empty()) {
        (false, _) => format!("shard on a key every unique index starts with, `shard: {{ key: {{ {} }} }}`, or lead this index with the shard key's fields", written.join(", ")),
        (true, true) => "every unique index starts with tenant_id alone: shard on `{ key: { tenant_id: 1 } }` (one chunk range per tenant), or lead this index with the shard key's fields".into(),
        (true, false) => "lead the index with the shard key's fields, or leave the collection unsharded".into(),
    }
}

/// The field a dotted path names inside `field`, if the spec declares it.
fn nested<'a>(field: &'a Field, path: &str) -> Option<&'a Field> {
    let mut cur = field;
    for part in path.split('.').skip(1) {
        cur = cur.fields.as_ref()?.get(part)?;
    }
    Some(cur)
}

/// Whether every step of a dotted path is required.
fn required_path(fields: &IndexMap<String, Field>, path: &str) -> bool {
    let mut level = Some(fields);
    for part in path.split('.') {
        let Some(f) = level.and_then(|l| l.get(part)) else {
            return false;
        };
        if !f.required {
            return false;
        }
        level = f.fields.as_ref();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::{lint_text, places};

    fn lint(shard_and_more: &str) -> Vec<crate::base::diagnostic::Finding> {
        let text = format!("collection: users\ndomain: saas\nfields:\n  email: {{ type: string, required: true }}\n  nick: {{ type: string }}\n  tags: {{ type: array, required: true, items: {{ type: string }} }}\n{shard_and_more}");
        lint_text("saas/users.yaml", &text)
    }

    fn messages(f: &[crate::base::diagnostic::Finding]) -> Vec<String> {
        f.iter()
            .map(|f| format!("{}:{}:{} {}", f.code, f.line, f.column, f.message))
            .collect()
    }

    #[test]
    fn the_default_key_is_clean() {
        assert_eq!(places(&lint("shard: {}\n")), vec![]);
    }

    #[test]
    fn key_fields_must_be_declared_scalar_and_required() {
        let got = lint("shard: { key: { emial: 1, tags: 1, nick: 1 } }\n");
        let m = messages(&got);
        assert_eq!(
            places(&got),
            vec![
                ("undeclared-field", 7, 17),
                ("shard-key", 7, 27),
                ("shard-key", 7, 36)
            ],
            "{m:#?}"
        );
        assert!(
            m[0].contains("`emial`") && got[0].fix.contains("`email`"),
            "{m:#?}"
        );
        assert!(
            m[1].contains("array") && m[2].contains("optional"),
            "{m:#?}"
        );
        let ok = lint("shard: { key: { nick: 1 }, missing_as_null: true }\n");
        assert_eq!(places(&ok), vec![], "{:#?}", messages(&ok));
    }

    #[test]
    fn one_hashed_field_at_most_and_never_unique() {
        let got = lint("shard: { key: { email: hashed, _id: hashed }, unique: true }\n");
        let m = messages(&got);
        assert!(m.iter().any(|m| m.contains("2 hashed fields")), "{m:#?}");
        assert!(m.iter().any(|m| m.contains("cannot be hashed")), "{m:#?}");
        let desc = lint("shard: { key: { email: -1 } }\n");
        assert!(
            messages(&desc)[0].contains("`1` (ranged)"),
            "{:#?}",
            messages(&desc)
        );
    }

    #[test]
    fn unique_indexes_must_be_prefixed_by_the_shard_key() {
        let got = lint("shard: {}\nindexes:\n  - { keys: { email: 1 }, unique: true }\n");
        assert_eq!(
            places(&got),
            vec![("shard-unique-index", 9, 27)],
            "{:#?}",
            messages(&got)
        );
        let m = messages(&got);
        assert!(
            m[0].contains("{tenant_id, email}") && m[0].contains("{tenant_id, _id}"),
            "{m:#?}"
        );
        let ok = lint(
            "shard: { key: { email: 1 } }\nindexes:\n  - { keys: { email: 1 }, unique: true }\n",
        );
        assert_eq!(places(&ok), vec![], "{:#?}", messages(&ok));
        let dedicated = lint("shard: { key: { email: 1 }, layouts: [database] }\nindexes:\n  - { keys: { nick: 1, email: 1 }, unique: true }\n");
        assert!(
            messages(&dedicated)[0].contains("in a Pro set or Enterprise database"),
            "{:#?}",
            messages(&dedicated)
        );
    }

    #[test]
    fn a_key_meaningless_for_the_layout_is_refused() {
        let got = lint("shard: { key: { tenant_id: 1, email: 1 }, layouts: [shared, database] }\n");
        assert!(
            messages(&got)[0].contains("same `tenant_id`"),
            "{:#?}",
            messages(&got)
        );
        let alone = lint("shard: { key: { tenant_id: 1 } }\n");
        assert_eq!(
            alone[0].code,
            "shard-key-cardinality",
            "{:#?}",
            messages(&alone)
        );
    }

    #[test]
    fn time_series_keys_are_the_meta_field_then_the_time_field() {
        let text = "collection: ticks\ndomain: analytics\nstandard_fields: false\ntenant_scoped: false\nvalidation: { level: off }\ntime_series: { time_field: ts, meta_field: meta, expire_after_seconds: 60 }\nfields:\n  ts: { type: date, required: true }\n  meta: { type: object, required: true, fields: { sensor: { type: string, required: true } } }\n  v: { type: double, required: true }\n";
        let ok = lint_text(
            "analytics/ticks.yaml",
            &format!("{text}shard: {{ key: {{ meta.sensor: 1, ts: 1 }} }}\n"),
        );
        assert_eq!(places(&ok), vec![], "{:#?}", messages(&ok));
        let bad = lint_text(
            "analytics/ticks.yaml",
            &format!("{text}shard: {{ key: {{ ts: 1, v: 1 }} }}\n"),
        );
        assert_eq!(
            bad.iter().filter(|f| f.code == "shard-key").count(),
            2,
            "{:#?}",
            messages(&bad)
        );
    }
}
