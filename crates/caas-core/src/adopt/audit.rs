//! `caas schema audit`: data drift. Per target and collection, how many documents the
//! current specs' validator refuses (counted with `$nor`), which part of the validator
//! each failure breaks with sample `_id`s, the failures per tenant on shared collections,
//! and per top-level field the BSON types the data holds against the type the spec says.
//! Read-only; the validator is split into parts here ([`parts`], pure) so a count names
//! the rule, as the server's `errInfo` would for a refused write.

use anyhow::{Context, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use serde::Serialize;

use crate::compile::{CompiledCollection, CompiledTarget};
use crate::connect::Connection;

/// Sample `_id`s kept per failing part.
const SAMPLE_IDS: i64 = 3;

/// One part of a validator: a label and the filter documents must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub label: String,
    pub filter: Document,
}

/// The conjuncts of a compiled validator, each a filter of its own: every required field,
/// every property's schema, the no-undeclared-fields rule, every `allOf` rule, `$expr` and
/// any query operators.
pub fn parts(validator: &Document) -> Vec<Part> {
    let mut out = Vec::new();
    for (key, value) in validator {
        match (key.as_str(), value) {
            ("$jsonSchema", Bson::Document(schema)) => schema_parts(schema, &mut out),
            ("$expr", _) => out.push(Part {
                label: "rule $expr".into(),
                filter: doc! { "$expr": value.clone() },
            }),
            _ => out.push(Part {
                label: format!("query {key}"),
                filter: doc! { key: value.clone() },
            }),
        }
    }
    out
}

fn schema_parts(schema: &Document, out: &mut Vec<Part>) {
    let js = |d: Document| doc! { "$jsonSchema": d };
    if let Ok(required) = schema.get_array("required") {
        for name in required.iter().filter_map(|b| b.as_str()) {
            out.push(Part {
                label: format!("required {name}"),
                filter: js(doc! { "required": [name] }),
            });
        }
    }
    let properties = schema
        .get_document("properties")
        .cloned()
        .unwrap_or_default();
    for (name, sub) in &properties {
        out.push(Part {
            label: format!("field {name}"),
            filter: js(doc! { "properties": { name: sub.clone() } }),
        });
    }
    if schema.get_bool("additionalProperties") == Ok(false) {
        let names: Document = properties
            .keys()
            .map(|k| (k.clone(), Bson::Document(Document::new())))
            .collect();
        out.push(Part {
            label: "undeclared fields".into(),
            filter: js(doc! { "properties": names, "additionalProperties": false }),
        });
    }
    if let Ok(all_of) = schema.get_array("allOf") {
        for (i, rule) in all_of.iter().enumerate() {
            out.push(Part {
                label: format!("rule {}", i + 1),
                filter: js(doc! { "allOf": [rule.clone()] }),
            });
        }
    }
}

/// The documents of one collection that break one part.
#[derive(Debug, Clone, Serialize)]
pub struct PartFailures {
    pub part: String,
    pub documents: u64,
    /// Up to three `_id`s, as relaxed Extended JSON.
    pub sample_ids: Vec<serde_json::Value>,
}

/// The BSON types one top-level field holds, against the spec.
#[derive(Debug, Clone, Serialize)]
pub struct FieldTypes {
    pub field: String,
    /// The `bsonType` the spec compiles to (`any` when none).
    pub expected: String,
    /// BSON type name -> documents.
    pub types: std::collections::BTreeMap<String, u64>,
    /// Documents holding a type the spec does not allow.
    pub unexpected: u64,
}

/// One collection of one target.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionAudit {
    pub database: String,
    pub collection: String,
    pub logical: String,
    pub documents: u64,
    pub failing: u64,
    /// On shared collections: failing documents per tenant.
    pub by_tenant: std::collections::BTreeMap<String, u64>,
    pub parts: Vec<PartFailures>,
    pub fields: Vec<FieldTypes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetAudit {
    pub target: String,
    pub collections: Vec<CollectionAudit>,
    pub failing: u64,
}

/// Audit every collection of every target that has a validator.
pub async fn audit(conn: &Connection, targets: &[CompiledTarget]) -> Result<Vec<TargetAudit>> {
    let mut out = Vec::new();
    for t in targets {
        let mut collections = Vec::new();
        for c in &t.collections {
            if let Some(a) = audit_collection(conn, c).await? {
                collections.push(a);
            }
        }
        out.push(TargetAudit {
            target: t.target.to_string(),
            failing: collections.iter().map(|c| c.failing).sum(),
            collections,
        });
    }
    Ok(out)
}

async fn audit_collection(
    conn: &Connection,
    c: &CompiledCollection,
) -> Result<Option<CollectionAudit>> {
    let Some(validator) = &c.options.validator else {
        return Ok(None);
    };
    let (db, name) = (&c.placement.database, &c.placement.collection);
    let coll = conn.client.database(db).collection::<Document>(name);
    let ns = format!("{db}.{name}");
    let documents = coll
        .count_documents(doc! {})
        .await
        .with_context(|| format!("counting {ns}"))?;
    let failing = coll
        .count_documents(doc! { "$nor": [validator.clone()] })
        .await
        .with_context(|| format!("counting documents {ns}'s validator refuses"))?;
    let mut parts_failing = Vec::new();
    let mut by_tenant = std::collections::BTreeMap::new();
    if failing > 0 {
        for part in parts(validator) {
            let filter = doc! { "$nor": [part.filter.clone()] };
            let n = coll
                .count_documents(filter.clone())
                .await
                .with_context(|| format!("auditing {ns} ({})", part.label))?;
            if n == 0 {
                continue;
            }
            let ids: Vec<Document> = coll
                .find(filter)
                .projection(doc! { "_id": 1 })
                .limit(SAMPLE_IDS)
                .await?
                .try_collect()
                .await?;
            parts_failing.push(PartFailures {
                part: part.label,
                documents: n,
                sample_ids: ids
                    .iter()
                    .filter_map(|d| d.get("_id"))
                    .map(|b| b.clone().into_relaxed_extjson())
                    .collect(),
            });
        }
        if c.placement.shared_by_tenants {
            by_tenant = per_tenant(&coll, validator)
                .await
                .with_context(|| format!("auditing {ns} per tenant"))?;
        }
    }
    let fields = field_types(&coll, validator)
        .await
        .with_context(|| format!("reading field types of {ns}"))?;
    Ok(Some(CollectionAudit {
        database: db.clone(),
        collection: name.clone(),
        logical: c.logical.clone(),
        documents,
        failing,
        by_tenant,
        parts: parts_failing,
        fields,
    }))
}

async fn per_tenant(
    coll: &mongodb::Collection<Document>,
    validator: &Document,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let rows: Vec<Document> = coll
        .aggregate(vec![
            doc! { "$match": { "$nor": [validator.clone()] } },
            doc! { "$group": { "_id": "$tenant_id", "n": { "$sum": 1 } } },
        ])
        .await?
        .try_collect()
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = match r.get("_id") {
                Some(Bson::String(s)) => s.clone(),
                _ => "(no tenant_id)".to_owned(),
            };
            (t, count(r.get("n")))
        })
        .collect())
}

fn count(b: Option<&Bson>) -> u64 {
    match b {
        Some(Bson::Int32(i)) => u64::try_from(*i).unwrap_or(0),
        Some(Bson::Int64(i)) => u64::try_from(*i).unwrap_or(0),
        Some(Bson::Double(d)) => *d as u64,
        _ => 0,
    }
}

/// Per top-level field, the `$type` of every document's value, against the spec's.
async fn field_types(
    coll: &mongodb::Collection<Document>,
    validator: &Document,
) -> Result<Vec<FieldTypes>> {
    let props = validator
        .get_document("$jsonSchema")
        .and_then(|s| s.get_document("properties"))
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Document> = coll
        .aggregate(vec![
            doc! { "$project": { "_id": 0, "kv": { "$objectToArray": "$$ROOT" } } },
            doc! { "$unwind": "$kv" },
            doc! { "$group": { "_id": { "k": "$kv.k", "t": { "$type": "$kv.v" } }, "n": { "$sum": 1 } } },
        ])
        .await?
        .try_collect()
        .await?;
    let mut out: Vec<FieldTypes> = Vec::new();
    for r in &rows {
        let Ok(id) = r.get_document("_id") else {
            continue;
        };
        let (Ok(k), Ok(t)) = (id.get_str("k"), id.get_str("t")) else {
            continue;
        };
        let expected = expected_types(props.get_document(k).ok());
        let slot = match out.iter_mut().position(|f| f.field == k) {
            Some(i) => &mut out[i],
            None => {
                out.push(FieldTypes {
                    field: k.to_owned(),
                    expected: if props.contains_key(k) {
                        expected.join("|")
                    } else {
                        "undeclared".into()
                    },
                    types: Default::default(),
                    unexpected: 0,
                });
                out.last_mut().expect("just pushed")
            }
        };
        let n = count(r.get("n"));
        *slot.types.entry(t.to_owned()).or_default() += n;
        if !allowed(&expected, t) || !props.contains_key(k) && !props.is_empty() {
            slot.unexpected += n;
        }
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    Ok(out)
}

fn expected_types(schema: Option<&Document>) -> Vec<String> {
    match schema.and_then(|s| s.get("bsonType")) {
        Some(Bson::String(t)) => vec![t.clone()],
        Some(Bson::Array(a)) => a
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect(),
        _ => vec!["any".into()],
    }
}

/// Whether a `$type` name is one of the `bsonType`s (`number` takes every numeric type).
fn allowed(expected: &[String], t: &str) -> bool {
    expected.iter().any(|e| {
        e == "any"
            || e == t
            || (e == "number" && matches!(t, "int" | "long" | "double" | "decimal"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validator_splits_into_named_parts() {
        let v = doc! {
            "$jsonSchema": { "bsonType": "object", "required": ["a", "b"],
                "properties": { "a": { "bsonType": "string" }, "b": { "bsonType": "int" } },
                "additionalProperties": false,
                "allOf": [ { "anyOf": [ { "required": ["a"] }, { "required": ["b"] } ] } ] },
            "$expr": { "$gt": ["$b", 0] },
            "status": { "$in": ["x"] },
        };
        let labels: Vec<String> = parts(&v).into_iter().map(|p| p.label).collect();
        assert_eq!(
            labels,
            [
                "required a",
                "required b",
                "field a",
                "field b",
                "undeclared fields",
                "rule 1",
                "rule $expr",
                "query status"
            ]
        );
    }

    #[test]
    fn number_takes_every_numeric_type() {
        assert!(allowed(&["number".into()], "long"));
        assert!(!allowed(&["string".into(), "null".into()], "int"));
        assert!(allowed(&["string".into(), "null".into()], "null"));
    }
}
