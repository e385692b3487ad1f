//! createIndexes specs. On collections several tenants share, every index is prefixed
//! with `tenant_id` so queries stay tenant-bounded and uniqueness is per tenant; TTL
//! indexes are the exception (MongoDB allows TTL on single-field indexes only).

use bson::{doc, Bson, Document};
use serde::Serialize;

use super::json_to_bson;
use crate::spec::{CollectionSpec, IndexDirection, IndexOrder, IndexSpec, SoftDelete};
use crate::tenancy::Placement;

/// One index as createIndexes takes it: keys, name and options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompiledIndex {
    pub name: String,
    pub keys: Document,
    /// unique, sparse, partialFilterExpression, expireAfterSeconds, collation, hidden,
    /// weights, default_language, in that order; only those that are set.
    pub options: Document,
}

impl CompiledIndex {
    /// `{key, name, ...options}`, an element of createIndexes' `indexes` array.
    pub fn to_create_spec(&self) -> Document {
        let mut d = doc! { "key": self.keys.clone(), "name": &self.name };
        d.extend(self.options.clone());
        d
    }
}

/// MongoDB's default name: `field_1_other_-1`.
pub fn default_index_name(keys: &Document) -> String {
    keys.iter()
        .map(|(k, v)| {
            let dir = match v {
                Bson::String(s) => s.clone(),
                Bson::Int32(i) => i.to_string(),
                Bson::Int64(i) => i.to_string(),
                other => other.to_string(),
            };
            format!("{k}_{dir}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn direction(d: IndexDirection) -> Bson {
    match d {
        IndexDirection::Order(o) => Bson::Int32(i32::from(o)),
        other => Bson::String(other.name_part()),
    }
}

/// The spec's indexes for one placement, plus the ones caas adds: the soft-delete
/// retention TTL, and `{tenant_id: 1}` on shared collections when no other index
/// already starts with `tenant_id`.
pub fn compile_indexes(spec: &CollectionSpec, placement: &Placement) -> Vec<CompiledIndex> {
    let mut out: Vec<CompiledIndex> = spec
        .indexes
        .iter()
        .map(|ix| compile_index(ix, placement))
        .collect();
    if let Some(SoftDelete::DeletedAt {
        retention_days: Some(days),
        field,
        ..
    }) = &spec.soft_delete
    {
        let keys = doc! { field.as_str(): 1 };
        let mut filter = Document::new();
        filter.insert(field.as_str(), doc! { "$type": "date" });
        out.push(CompiledIndex {
            name: format!("{}_retention", default_index_name(&keys)),
            keys,
            options: doc! {
                "partialFilterExpression": filter,
                "expireAfterSeconds": i64::from(*days) * 86_400,
            },
        });
    }
    if placement.shared_by_tenants
        && !out
            .iter()
            .any(|ix| ix.keys.keys().next().is_some_and(|k| k == "tenant_id"))
    {
        let keys = doc! { "tenant_id": 1 };
        out.insert(
            0,
            CompiledIndex {
                name: default_index_name(&keys),
                keys,
                options: Document::new(),
            },
        );
    }
    out
}

/// Whether this index gets the `tenant_id` prefix in this placement.
pub fn takes_tenant_prefix(ix: &IndexSpec, placement: &Placement) -> bool {
    placement.shared_by_tenants
        && ix.per_tenant
        && ix.ttl_seconds.is_none()
        && ix.keys.keys().next().is_some_and(|k| k != "tenant_id")
}

/// A collation as MongoDB takes it.
pub fn collation_document(c: &crate::spec::Collation) -> Document {
    let mut d = doc! { "locale": &c.locale };
    if let Some(s) = c.strength {
        d.insert("strength", i32::from(s));
    }
    if let Some(b) = c.case_level {
        d.insert("caseLevel", b);
    }
    if let Some(b) = c.numeric_ordering {
        d.insert("numericOrdering", b);
    }
    d
}

/// One spec index in one placement (migrations' `create_index` steps use it too).
pub fn compile_index(ix: &IndexSpec, placement: &Placement) -> CompiledIndex {
    let mut keys = Document::new();
    if takes_tenant_prefix(ix, placement) {
        keys.insert("tenant_id", Bson::Int32(i32::from(IndexOrder::Asc)));
    }
    for (field, dir) in &ix.keys {
        keys.insert(field, direction(*dir));
    }
    let mut options = Document::new();
    if ix.unique {
        options.insert("unique", true);
    }
    if ix.sparse {
        options.insert("sparse", true);
    }
    if let Some(filter) = &ix.partial {
        options.insert(
            "partialFilterExpression",
            json_to_bson(&serde_json::Value::Object(filter.clone())),
        );
    }
    if let Some(ttl) = ix.ttl_seconds {
        options.insert("expireAfterSeconds", ttl as i64);
    }
    if let Some(c) = &ix.collation {
        options.insert("collation", collation_document(c));
    }
    if ix.hidden {
        options.insert("hidden", true);
    }
    if let Some(w) = &ix.weights {
        let mut d = Document::new();
        for (k, v) in w {
            d.insert(k, i32::try_from(*v).unwrap_or(i32::MAX));
        }
        options.insert("weights", d);
    }
    if let Some(lang) = &ix.default_language {
        options.insert("default_language", lang);
    }
    let name = ix.name.clone().unwrap_or_else(|| default_index_name(&keys));
    CompiledIndex {
        name,
        keys,
        options,
    }
}
