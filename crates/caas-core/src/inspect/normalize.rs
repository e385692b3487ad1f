//! The server returns what it stored, not always what was sent. These pure functions put
//! both sides into one canonical form before they are compared:
//! numbers compare numerically (1, 1.0 and NumberLong(1) are equal); `required` and
//! `bsonType` lists are sets; key order inside `$jsonSchema` and filters is irrelevant but
//! index key order is significant; absent validationLevel/Action mean strict/error;
//! `v`, `ns`, `background`, `2dsphereIndexVersion` and server-filled collation keys are
//! ignored; text indexes are rebuilt from `weights`.

use bson::{doc, Bson, Document};
use serde::Serialize;

/// A number in one canonical BSON type: Int64 when integral, Double otherwise.
pub fn canonical_number(b: &Bson) -> Option<Bson> {
    let f = match b {
        Bson::Int32(i) => return Some(Bson::Int64(i64::from(*i))),
        Bson::Int64(i) => return Some(Bson::Int64(*i)),
        Bson::Double(d) => *d,
        Bson::Decimal128(d) => d.to_string().parse::<f64>().ok()?,
        _ => return None,
    };
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(Bson::Int64(f as i64))
    } else {
        Some(Bson::Double(f))
    }
}

/// A query-like document (validator, partial filter) with keys sorted at every level,
/// numbers canonical, and `required`/`bsonType` arrays sorted. Array order is otherwise kept.
pub fn canonical_query(d: &Document) -> Document {
    let mut keys: Vec<&String> = d.keys().collect();
    keys.sort();
    let mut out = Document::new();
    for k in keys {
        let v = &d[k.as_str()];
        let v = match (k.as_str(), v) {
            ("required" | "bsonType", Bson::Array(a)) => {
                let mut items: Vec<Bson> = a.iter().map(canonical_value).collect();
                items.sort_by_key(|b| b.to_string());
                items.dedup();
                Bson::Array(items)
            }
            _ => canonical_value(v),
        };
        out.insert(k.clone(), v);
    }
    out
}

fn canonical_value(v: &Bson) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(canonical_query(d)),
        Bson::Array(a) => Bson::Array(a.iter().map(canonical_value).collect()),
        other => canonical_number(other).unwrap_or_else(|| other.clone()),
    }
}

/// Whether a listCollections entry is a time series. mongod says `type: timeseries`;
/// some servers (SecantusDB) say `type: collection` with `options.timeseries`.
pub fn is_time_series(kind: &str, options: &Document) -> bool {
    kind == "timeseries" || options.contains_key("timeseries")
}

/// Collection options in comparable form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionShape {
    pub validator: Option<Document>,
    pub validation_level: String,
    pub validation_action: String,
    pub timeseries: Option<Document>,
    pub expire_after_seconds: Option<Bson>,
    /// The default collation, as the server fills it in.
    pub collation: Option<Document>,
    /// Tenants whose documents a caas write fence makes read-only here (a move's cutover,
    /// a suspension): the fence is left out of `validator`, level and action.
    pub fenced: Vec<String>,
}

/// What every caas write fence's title starts with (applications can recognise it in the
/// `errInfo` of a refused write on servers that report it).
pub const WRITE_FENCE_TITLE: &str = "caas write fence";

/// The validator clause that refuses every insert and update of these tenants' documents
/// (code 121), remembering the level and action to restore when it is lifted.
pub fn write_fence_clause(tenants: &[String], level: &str, action: &str) -> Document {
    doc! { "$jsonSchema": {
        "title": format!("{WRITE_FENCE_TITLE}; restores validationLevel={level} validationAction={action}"),
        "description": "These tenants are read-only while caas moves or suspends them: re-read the tenant's registry entry (saas_clients) and retry at its location.",
        "not": { "required": ["tenant_id"], "properties": { "tenant_id": { "enum": tenants.to_vec() } } },
    } }
}

/// The validator with `tenants` fenced in it (none: the validator alone).
pub fn fenced_validator(
    original: Option<&Document>,
    tenants: &[String],
    level: &str,
    action: &str,
) -> Document {
    let original = original.filter(|v| !v.is_empty());
    if tenants.is_empty() {
        return original.cloned().unwrap_or_default();
    }
    let fence = write_fence_clause(tenants, level, action);
    match original {
        Some(v) => doc! { "$and": [v.clone(), fence] },
        None => fence,
    }
}

/// Split a live validator into the one caas (or a person) declared and its write fence:
/// `(validator, fenced tenants, level and action the fence restores)`.
pub fn split_write_fence(
    v: &Document,
) -> (Option<Document>, Vec<String>, Option<(String, String)>) {
    let fence_of = |d: &Document| -> Option<(Vec<String>, (String, String))> {
        let js = d.get_document("$jsonSchema").ok()?;
        let title = js.get_str("title").ok()?.strip_prefix(WRITE_FENCE_TITLE)?;
        let word = |k: &str| {
            title
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_owned)
        };
        let restore = (word("validationLevel=")?, word("validationAction=")?);
        let tenants = js
            .get_document("not")
            .ok()?
            .get_document("properties")
            .ok()?
            .get_document("tenant_id")
            .ok()?
            .get_array("enum")
            .ok()?
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        Some((tenants, restore))
    };
    if let Some((tenants, restore)) = fence_of(v) {
        return (None, tenants, Some(restore));
    }
    if let Ok(and) = v.get_array("$and") {
        if let [Bson::Document(first), Bson::Document(second)] = and.as_slice() {
            if let Some((tenants, restore)) = fence_of(second) {
                return (Some(first.clone()), tenants, Some(restore));
            }
        }
    }
    (Some(v.clone()), Vec::new(), None)
}

/// Normalise `create` options (ours) or `listCollections` options (the server's).
pub fn collection_shape(options: &Document) -> CollectionShape {
    let (validator, fenced, restore) = match options.get_document("validator") {
        Ok(v) => split_write_fence(v),
        Err(_) => (None, Vec::new(), None),
    };
    let validator = validator
        .filter(|v| !v.is_empty())
        .map(|v| canonical_query(&v));
    let timeseries = options.get_document("timeseries").ok().map(|ts| {
        // The server adds bucket settings derived from granularity; compare what a spec sets.
        let mut d = Document::new();
        for k in ["timeField", "metaField", "granularity"] {
            if let Some(v) = ts.get(k) {
                d.insert(k, v.clone());
            }
        }
        if !d.contains_key("granularity") {
            d.insert("granularity", "seconds");
        }
        d
    });
    let (validation_level, validation_action) = restore.unwrap_or_else(|| {
        (
            options
                .get_str("validationLevel")
                .unwrap_or("strict")
                .to_owned(),
            options
                .get_str("validationAction")
                .unwrap_or("error")
                .to_owned(),
        )
    });
    CollectionShape {
        validator,
        validation_level,
        validation_action,
        fenced,
        timeseries,
        expire_after_seconds: options.get("expireAfterSeconds").and_then(canonical_number),
        collation: options
            .get_document("collation")
            .ok()
            .filter(|c| c.get_str("locale") != Ok("simple"))
            .map(full_collation),
    }
}

/// An index in comparable form. `identity` changes need a rebuild; `ttl` and `hidden`
/// can change in place (collMod).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexShape {
    pub name: String,
    pub identity: IndexIdentity,
    pub ttl: Option<Bson>,
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexIdentity {
    /// Keys in order, directions canonical; text keys rebuilt from weights.
    pub keys: Vec<(String, Bson)>,
    pub unique: bool,
    pub sparse: bool,
    pub partial: Option<Document>,
    pub collation: Option<Document>,
    pub weights: Option<Document>,
    pub default_language: Option<String>,
}

/// Collation as the server fills it in, so a spec's `{locale: en, strength: 2}` equals the
/// server's full document.
fn full_collation(c: &Document) -> Document {
    let mut d = Document::new();
    let locale = c.get_str("locale").unwrap_or("simple");
    d.insert("locale", locale);
    let defaults: [(&str, Bson); 8] = [
        ("caseLevel", Bson::Boolean(false)),
        ("caseFirst", Bson::String("off".into())),
        ("strength", Bson::Int64(3)),
        ("numericOrdering", Bson::Boolean(false)),
        ("alternate", Bson::String("non-ignorable".into())),
        ("maxVariable", Bson::String("punct".into())),
        ("normalization", Bson::Boolean(false)),
        ("backwards", Bson::Boolean(false)),
    ];
    for (k, default) in defaults {
        let v = c
            .get(k)
            .map(|v| canonical_number(v).unwrap_or_else(|| v.clone()))
            .unwrap_or(default);
        d.insert(k, v);
    }
    d
}

/// Normalise a createIndexes spec (ours) or a listIndexes entry (the server's).
pub fn index_shape(spec: &Document) -> IndexShape {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let is_text = key
        .iter()
        .any(|(k, v)| k == "_fts" || v.as_str() == Some("text"));
    let mut weights = spec.get_document("weights").ok().map(canonical_query);
    let mut keys = Vec::new();
    if is_text {
        // The server stores `{prefix..., _fts: "text", _ftsx: 1, suffix...}` plus weights;
        // rebuild one form for both sides: prefix, the text fields sorted by name, suffix.
        let mut text_fields: Vec<String> = Vec::new();
        let mut suffix = Vec::new();
        let mut seen_text = false;
        for (k, v) in &key {
            match (k.as_str(), v.as_str()) {
                ("_fts", _) | ("_ftsx", _) => seen_text = true,
                (_, Some("text")) => {
                    seen_text = true;
                    text_fields.push(k.clone());
                }
                _ if seen_text => suffix.push((k.clone(), direction(v))),
                _ => keys.push((k.clone(), direction(v))),
            }
        }
        if text_fields.is_empty() {
            if let Some(w) = &weights {
                text_fields = w.keys().cloned().collect();
            }
        }
        text_fields.sort();
        let mut w = weights.take().unwrap_or_default();
        for f in &text_fields {
            if !w.contains_key(f) {
                w.insert(f.clone(), Bson::Int64(1));
            }
        }
        weights = Some(canonical_query(&w));
        keys.extend(
            text_fields
                .into_iter()
                .map(|f| (f, Bson::String("text".into()))),
        );
        keys.extend(suffix);
    } else {
        keys = key.iter().map(|(k, v)| (k.clone(), direction(v))).collect();
    }
    let flag = |k: &str| {
        spec.get(k).is_some_and(|v| {
            matches!(v, Bson::Boolean(true)) || canonical_number(v) == Some(Bson::Int64(1))
        })
    };
    IndexShape {
        name: spec.get_str("name").unwrap_or("").to_owned(),
        identity: IndexIdentity {
            keys,
            unique: flag("unique"),
            sparse: flag("sparse"),
            partial: spec
                .get_document("partialFilterExpression")
                .ok()
                .map(canonical_query),
            collation: spec.get_document("collation").ok().map(full_collation),
            weights,
            default_language: is_text.then(|| {
                spec.get_str("default_language")
                    .unwrap_or("english")
                    .to_owned()
            }),
        },
        ttl: spec.get("expireAfterSeconds").and_then(canonical_number),
        hidden: flag("hidden"),
    }
}

fn direction(v: &Bson) -> Bson {
    canonical_number(v).unwrap_or_else(|| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn numbers_compare_numerically() {
        assert_eq!(
            canonical_number(&Bson::Int32(1)),
            canonical_number(&Bson::Double(1.0))
        );
        assert_eq!(
            canonical_number(&Bson::Int64(1)),
            canonical_number(&Bson::Int32(1))
        );
        assert_ne!(
            canonical_number(&Bson::Double(1.5)),
            canonical_number(&Bson::Int32(1))
        );
        let dec: bson::Decimal128 = "7".parse().unwrap();
        assert_eq!(
            canonical_number(&Bson::Decimal128(dec)),
            Some(Bson::Int64(7))
        );
    }

    #[test]
    fn required_is_a_set_and_key_order_is_irrelevant_in_validators() {
        let ours = doc! { "$jsonSchema": { "bsonType": "object", "required": ["a", "b"], "properties": { "a": { "bsonType": ["string", "null"], "maxLength": 5 } } } };
        let theirs = doc! { "$jsonSchema": { "properties": { "a": { "maxLength": 5.0, "bsonType": ["null", "string"] } }, "required": ["b", "a"], "bsonType": "object" } };
        assert_eq!(canonical_query(&ours), canonical_query(&theirs));
        let changed = doc! { "$jsonSchema": { "bsonType": "object", "required": ["a"] } };
        assert_ne!(canonical_query(&ours), canonical_query(&changed));
    }

    #[test]
    fn enum_and_items_order_is_kept() {
        let a = doc! { "x": { "items": [ { "bsonType": "int" }, { "bsonType": "string" } ] } };
        let b = doc! { "x": { "items": [ { "bsonType": "string" }, { "bsonType": "int" } ] } };
        assert_ne!(canonical_query(&a), canonical_query(&b));
    }

    #[test]
    fn time_series_is_recognised_by_type_or_options() {
        assert!(is_time_series("timeseries", &doc! {}));
        assert!(is_time_series(
            "collection",
            &doc! { "timeseries": { "timeField": "ts" } }
        ));
        assert!(!is_time_series("collection", &doc! { "validator": {} }));
        let ours = collection_shape(
            &doc! { "timeseries": { "timeField": "ts" }, "expireAfterSeconds": 60 },
        );
        let theirs = collection_shape(
            &doc! { "timeseries": { "timeField": "ts", "granularity": "seconds", "bucketMaxSpanSeconds": 3600 }, "expireAfterSeconds": 60_i64 },
        );
        assert_eq!(
            ours, theirs,
            "server-filled granularity and bucket settings are ignored"
        );
    }

    #[test]
    fn absent_level_and_action_are_strict_and_error() {
        let s = collection_shape(&doc! { "validator": { "a": 1 } });
        assert_eq!(
            (s.validation_level.as_str(), s.validation_action.as_str()),
            ("strict", "error")
        );
        let empty = collection_shape(&doc! { "validator": {} });
        assert_eq!(empty.validator, None, "an empty validator is no validator");
    }

    #[test]
    fn index_key_order_is_significant() {
        let a = index_shape(&doc! { "key": { "a": 1, "b": 1 }, "name": "x" });
        let b = index_shape(&doc! { "key": { "b": 1, "a": 1 }, "name": "x" });
        assert_ne!(a.identity, b.identity);
        let c = index_shape(&doc! { "key": { "a": 1.0, "b": 1_i64 }, "name": "x" });
        assert_eq!(a.identity, c.identity, "directions compare numerically");
        let d = index_shape(&doc! { "key": { "a": -1, "b": 1 }, "name": "x" });
        assert_ne!(a.identity, d.identity, "direction matters");
    }

    #[test]
    fn server_only_fields_are_ignored() {
        let ours = index_shape(&doc! { "key": { "loc": "2dsphere" }, "name": "loc_2dsphere" });
        let theirs = index_shape(
            &doc! { "v": 2, "key": { "loc": "2dsphere" }, "name": "loc_2dsphere", "ns": "db.c", "background": true, "2dsphereIndexVersion": 3 },
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn server_filled_collation_keys_are_ignored_but_real_changes_are_not() {
        let ours = index_shape(
            &doc! { "key": { "e": 1 }, "name": "e", "collation": { "locale": "en", "strength": 2 } },
        );
        let theirs = index_shape(&doc! { "key": { "e": 1 }, "name": "e", "collation": {
        "locale": "en", "caseLevel": false, "caseFirst": "off", "strength": 2, "numericOrdering": false,
        "alternate": "non-ignorable", "maxVariable": "punct", "normalization": false, "backwards": false, "version": "57.1" } });
        assert_eq!(ours, theirs);
        let stronger = index_shape(
            &doc! { "key": { "e": 1 }, "name": "e", "collation": { "locale": "en", "strength": 3 } },
        );
        assert_ne!(ours, stronger);
    }

    #[test]
    fn text_indexes_are_rebuilt_from_weights() {
        let ours = index_shape(
            &doc! { "key": { "tenant_id": 1, "body": "text", "title": "text" }, "name": "t", "weights": { "title": 5 } },
        );
        let theirs = index_shape(
            &doc! { "key": { "tenant_id": 1, "_fts": "text", "_ftsx": 1 }, "name": "t",
            "weights": { "body": 1, "title": 5 }, "default_language": "english", "language_override": "language", "textIndexVersion": 3 },
        );
        assert_eq!(ours, theirs);
        let other_weights = index_shape(
            &doc! { "key": { "tenant_id": 1, "_fts": "text", "_ftsx": 1 }, "name": "t", "weights": { "body": 1, "title": 1 } },
        );
        assert_ne!(ours, other_weights);
    }

    #[test]
    fn ttl_and_hidden_are_mutable_not_identity() {
        let a = index_shape(&doc! { "key": { "d": 1 }, "name": "d", "expireAfterSeconds": 60 });
        let b = index_shape(
            &doc! { "key": { "d": 1 }, "name": "d", "expireAfterSeconds": 60.0, "hidden": false },
        );
        assert_eq!(a, b);
        let c = index_shape(
            &doc! { "key": { "d": 1 }, "name": "d", "expireAfterSeconds": 61, "hidden": true },
        );
        assert_eq!(a.identity, c.identity);
        assert_ne!((a.ttl, a.hidden), (c.ttl, c.hidden));
    }

    #[test]
    fn unique_sparse_and_partial_are_identity() {
        let base = index_shape(&doc! { "key": { "e": 1 }, "name": "e" });
        for changed in [
            doc! { "key": { "e": 1 }, "name": "e", "unique": true },
            doc! { "key": { "e": 1 }, "name": "e", "sparse": true },
            doc! { "key": { "e": 1 }, "name": "e", "partialFilterExpression": { "e": { "$exists": true } } },
        ] {
            assert_ne!(base.identity, index_shape(&changed).identity, "{changed}");
        }
        let a = index_shape(
            &doc! { "key": { "e": 1 }, "name": "e", "partialFilterExpression": { "a": 1, "b": { "$type": "string" } } },
        );
        let b = index_shape(
            &doc! { "key": { "e": 1 }, "name": "e", "partialFilterExpression": { "b": { "$type": "string" }, "a": 1.0 } },
        );
        assert_eq!(a, b, "filter key order and number types do not matter");
    }
}
