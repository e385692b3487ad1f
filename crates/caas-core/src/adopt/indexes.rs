//! Live `listIndexes` entries read back into spec indexes. Pure.
//!
//! On a collection several tenants share, caas prefixes every index with `tenant_id`; the
//! prefix is taken off again (or `per_tenant: false` said when it is missing), and the
//! `{tenant_id: 1}` index caas adds by itself is left implied.

use bson::{Bson, Document};
use indexmap::IndexMap;

use super::decompile::to_json;
use super::Note;
use crate::compile::default_index_name;
use crate::inspect::normalize::canonical_number;
use crate::spec::{Collation, IndexDirection, IndexKind, IndexOrder, IndexSpec};
use crate::tenancy::Placement;

/// Index keys the server adds that say nothing a spec sets.
const SERVER_KEYS: &[&str] = &[
    "v",
    "key",
    "name",
    "ns",
    "background",
    "2dsphereIndexVersion",
    "textIndexVersion",
    "language_override",
    "weights",
    "default_language",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "collation",
    "hidden",
];

/// The indexes of one collection, and a soft-delete retention index caas made itself
/// (`(field, days)`), when one is there.
#[derive(Debug, Default)]
pub struct FromIndexes {
    pub indexes: Vec<IndexSpec>,
    pub retention: Option<(String, u32)>,
    pub notes: Vec<Note>,
}

pub fn from_indexes(list: &[Document], placement: &Placement) -> FromIndexes {
    let mut out = FromIndexes::default();
    let led_by_tenant = list
        .iter()
        .filter(|ix| first_key(ix) == Some("tenant_id"))
        .count();
    for ix in list {
        let name = ix.get_str("name").unwrap_or("").to_owned();
        if name == "_id_" {
            continue;
        }
        if placement.shared_by_tenants && led_by_tenant == 1 && is_implied_tenant_index(ix) {
            continue;
        }
        if let Some(r) = retention(ix) {
            out.retention = Some(r);
            continue;
        }
        match index_of(ix, placement, &mut out.notes) {
            Some(spec) => out.indexes.push(spec),
            None => out.notes.push(Note::new(
                &format!("indexes.{name}"),
                format!(
                    "index `{name}` ({}) is of a kind caas specs cannot hold; it is left out, and `schema diff` reports it as undeclared",
                    ix.get_document("key").map(|k| k.to_string()).unwrap_or_default()
                ),
            )),
        }
    }
    out
}

fn first_key(ix: &Document) -> Option<&str> {
    ix.get_document("key")
        .ok()?
        .keys()
        .next()
        .map(String::as_str)
}

/// `{tenant_id: 1}` named by default with no options: the one caas adds on shared collections.
fn is_implied_tenant_index(ix: &Document) -> bool {
    let Ok(key) = ix.get_document("key") else {
        return false;
    };
    key.len() == 1
        && key.get("tenant_id").and_then(canonical_number) == Some(Bson::Int64(1))
        && ix.get_str("name") == Ok("tenant_id_1")
        && !ix.keys().any(|k| {
            !SERVER_KEYS.contains(&k.as_str())
                || matches!(
                    k.as_str(),
                    "unique"
                        | "sparse"
                        | "partialFilterExpression"
                        | "expireAfterSeconds"
                        | "collation"
                        | "hidden"
                )
        })
}

/// `{field}_1_retention`: a partial TTL index on dates, whole days.
fn retention(ix: &Document) -> Option<(String, u32)> {
    let key = ix.get_document("key").ok()?;
    let (field, dir) = key.iter().next()?;
    let filter = ix.get_document("partialFilterExpression").ok()?;
    let secs = ix.get("expireAfterSeconds").and_then(canonical_number)?;
    let Bson::Int64(secs) = secs else { return None };
    let by_date =
        filter.len() == 1 && filter.get_document(field).ok()?.get_str("$type").ok()? == "date";
    (key.len() == 1
        && canonical_number(dir) == Some(Bson::Int64(1))
        && ix.get_str("name").ok()? == format!("{field}_1_retention")
        && by_date
        && secs > 0
        && secs % 86_400 == 0)
        .then(|| (field.clone(), u32::try_from(secs / 86_400).ok()))
        .and_then(|(f, d)| Some((f, d?)))
}

fn direction(v: &Bson) -> Option<IndexDirection> {
    match canonical_number(v) {
        Some(Bson::Int64(1)) => Some(IndexDirection::Order(IndexOrder::Asc)),
        Some(Bson::Int64(-1)) => Some(IndexDirection::Order(IndexOrder::Desc)),
        Some(_) => None,
        None => match v.as_str()? {
            "text" => Some(IndexDirection::Special(IndexKind::Text)),
            "2dsphere" => Some(IndexDirection::Special(IndexKind::Sphere2d)),
            "hashed" => Some(IndexDirection::Special(IndexKind::Hashed)),
            _ => None,
        },
    }
}

/// Keys as a spec writes them: text indexes' `_fts`/`_ftsx` become the weighted fields.
fn keys_of(ix: &Document) -> Option<IndexMap<String, IndexDirection>> {
    let key = ix.get_document("key").ok()?;
    let mut keys = IndexMap::new();
    for (k, v) in key {
        match k.as_str() {
            "_fts" => {
                let weights = ix.get_document("weights").ok()?;
                let mut names: Vec<&String> = weights.keys().collect();
                names.sort();
                for n in names {
                    keys.insert(n.clone(), IndexDirection::Special(IndexKind::Text));
                }
            }
            "_ftsx" => {}
            _ => {
                keys.insert(k.clone(), direction(v)?);
            }
        }
    }
    Some(keys)
}

fn index_of(ix: &Document, placement: &Placement, notes: &mut Vec<Note>) -> Option<IndexSpec> {
    let name = ix.get_str("name").unwrap_or("").to_owned();
    let mut keys = keys_of(ix)?;
    let ttl_seconds = ix
        .get("expireAfterSeconds")
        .and_then(canonical_number)
        .and_then(|b| b.as_i64())
        .and_then(|s| u64::try_from(s).ok());
    let mut per_tenant = true;
    if placement.shared_by_tenants && ttl_seconds.is_none() {
        match keys.first() {
            Some((k, IndexDirection::Order(IndexOrder::Asc)))
                if k == "tenant_id" && keys.len() > 1 =>
            {
                keys.shift_remove("tenant_id");
            }
            Some((k, _)) if k == "tenant_id" => {}
            _ => per_tenant = false,
        }
    }
    let physical = ix.get_document("key").cloned().unwrap_or_default();
    let flag = |k: &str| {
        ix.get(k).is_some_and(|v| {
            matches!(v, Bson::Boolean(true)) || canonical_number(v) == Some(Bson::Int64(1))
        })
    };
    let is_text = keys
        .values()
        .any(|d| *d == IndexDirection::Special(IndexKind::Text));
    let weights = ix
        .get_document("weights")
        .ok()
        .filter(|_| is_text)
        .and_then(|w| {
            let heavy: IndexMap<String, u32> = w
                .iter()
                .filter_map(|(k, v)| {
                    let n = canonical_number(v)?.as_i64()?;
                    (n != 1).then(|| (k.clone(), u32::try_from(n).unwrap_or(1)))
                })
                .collect();
            (!heavy.is_empty()).then_some(heavy)
        });
    for key in ix.keys().filter(|k| !SERVER_KEYS.contains(&k.as_str())) {
        notes.push(Note::new(
            &format!("indexes.{name}"),
            format!("index option `{key}` is not in the spec language; `schema apply` would rebuild `{name}` without it"),
        ));
    }
    Some(IndexSpec {
        name: (name != default_index_name(&physical)).then(|| name.clone()),
        unique: flag("unique"),
        sparse: flag("sparse"),
        partial: ix
            .get_document("partialFilterExpression")
            .ok()
            .and_then(|d| match to_json(&Bson::Document(d.clone())) {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            }),
        ttl_seconds,
        collation: ix
            .get_document("collation")
            .ok()
            .map(|c| collation(c, &name, notes)),
        hidden: flag("hidden"),
        per_tenant,
        weights,
        default_language: ix
            .get_str("default_language")
            .ok()
            .filter(|l| is_text && *l != "english")
            .map(str::to_owned),
        description: None,
        keys,
    })
}

/// The collation keys a spec sets; any other key with a non-default value is a note.
pub fn collation(c: &Document, index: &str, notes: &mut Vec<Note>) -> Collation {
    let strength = c
        .get("strength")
        .and_then(canonical_number)
        .and_then(|b| b.as_i64())
        .filter(|s| *s != 3)
        .and_then(|s| u8::try_from(s).ok());
    let yes = |k: &str| c.get_bool(k).ok().filter(|b| *b);
    let defaults = [
        ("caseFirst", Bson::String("off".into())),
        ("alternate", Bson::String("non-ignorable".into())),
        ("maxVariable", Bson::String("punct".into())),
        ("normalization", Bson::Boolean(false)),
        ("backwards", Bson::Boolean(false)),
    ];
    for (k, default) in defaults {
        if let Some(v) = c.get(k).filter(|v| **v != default) {
            notes.push(Note::new(
                &format!("indexes.{index}.collation"),
                format!("collation `{k}: {v}` is not in the spec language; `schema apply` would rebuild `{index}` without it"),
            ));
        }
    }
    Collation {
        locale: c.get_str("locale").unwrap_or("simple").to_owned(),
        strength,
        case_level: yes("caseLevel"),
        numeric_ordering: yes("numericOrdering"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn shared() -> Placement {
        Placement {
            database: "caas_shared".into(),
            collection: "posts".into(),
            shared_by_tenants: true,
            tenant: None,
        }
    }

    /// listIndexes entries as mongod returns them (text indexes as `_fts`/`_ftsx` with
    /// weights; collation filled in), read back into what the spec wrote.
    #[test]
    fn every_index_kind_reads_back_without_the_tenant_prefix() {
        let live = vec![
            doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
            doc! { "v": 2, "key": { "tenant_id": 1, "_fts": "text", "_ftsx": 1 }, "name": "tenant_id_1_body_text_title_text",
            "weights": { "body": 1, "title": 5 }, "default_language": "english", "language_override": "language", "textIndexVersion": 3 },
            doc! { "v": 2, "key": { "tenant_id": 1, "loc": "2dsphere" }, "name": "tenant_id_1_loc_2dsphere", "2dsphereIndexVersion": 3 },
            doc! { "v": 2, "key": { "shard": "hashed" }, "name": "shard_hashed" },
            doc! { "v": 2, "key": { "expires_at": 1 }, "name": "expires_at_1", "expireAfterSeconds": 0 },
            doc! { "v": 2, "key": { "tenant_id": 1, "email": 1 }, "name": "tenant_id_1_email_1", "unique": true,
            "partialFilterExpression": { "email": { "$type": "string" } },
            "collation": { "locale": "en", "caseLevel": false, "caseFirst": "off", "strength": 2, "numericOrdering": false,
                           "alternate": "non-ignorable", "maxVariable": "punct", "normalization": false, "backwards": false, "version": "57.1" } },
            doc! { "v": 2, "key": { "deleted_at": 1 }, "name": "deleted_at_1_retention", "partialFilterExpression": { "deleted_at": { "$type": "date" } }, "expireAfterSeconds": 7_776_000 },
        ];
        let got = from_indexes(&live, &shared());
        assert!(got.notes.is_empty(), "{:?}", got.notes);
        assert_eq!(got.retention, Some(("deleted_at".to_string(), 90)));
        let keys: Vec<String> = got
            .indexes
            .iter()
            .map(|i| serde_json::to_string(&i.keys).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                r#"{"body":"text","title":"text"}"#,
                r#"{"loc":"2dsphere"}"#,
                r#"{"shard":"hashed"}"#,
                r#"{"expires_at":1}"#,
                r#"{"email":1}"#,
            ]
        );
        let text = &got.indexes[0];
        assert_eq!(text.weights.as_ref().map(|w| w["title"]), Some(5));
        assert!(
            !got.indexes[2].per_tenant,
            "no prefix on a shared collection: spans tenants"
        );
        assert_eq!(got.indexes[3].ttl_seconds, Some(0));
        let email = &got.indexes[4];
        assert!(email.unique && email.partial.is_some());
        assert_eq!(email.collation.as_ref().map(|c| c.strength), Some(Some(2)));
        // Compiled again for the same placement, every index has its live name back.
        let mut spec: crate::spec::CollectionSpec =
            serde_json::from_value(serde_json::json!({ "collection": "posts", "domain": "saas" }))
                .unwrap();
        spec.indexes = got.indexes;
        let names: Vec<String> = crate::compile::compile_indexes(&spec, &shared())
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(
            names,
            [
                "tenant_id_1_body_text_title_text",
                "tenant_id_1_loc_2dsphere",
                "shard_hashed",
                "expires_at_1",
                "tenant_id_1_email_1",
            ]
        );
    }
}
