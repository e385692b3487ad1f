//! Fields inferred from a sample of documents, for collections without a validator. Pure.
//!
//! Every path counts its BSON types and how often it is present. A field is `required`
//! only when present in at least `required_ratio` of the documents that could hold it;
//! one type is that type, `[type, null]` is nullable, several numeric types are `number`;
//! any other mix is `any`, with a note giving the split and its counts, so the user
//! decides (no silent guess). Memory is bounded by the sample and [`MAX_KEYS`].

use std::collections::BTreeMap;

use bson::{Bson, Document};
use indexmap::IndexMap;

use super::Note;
use crate::spec::{Field, FieldType};

/// An object with more distinct keys than this is a map (`allow_extra_fields`), not a record.
pub const MAX_KEYS: usize = 200;
/// At most this many distinct `tenant_id` values are kept.
const MAX_TENANTS: usize = 100_000;

/// What a sample showed at one path.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Documents (or array items) in which the path was present.
    pub present: usize,
    /// BSON type name -> count.
    pub types: BTreeMap<&'static str, usize>,
    pub children: IndexMap<String, Stats>,
    /// More keys than [`MAX_KEYS`] were seen: the object is a map.
    pub overflow: bool,
    pub items: Option<Box<Stats>>,
    /// Objects seen that were not GeoJSON points.
    pub not_geo: usize,
}

/// The sample of one collection.
#[derive(Debug, Default)]
pub struct Sample {
    pub documents: usize,
    pub root: Stats,
    /// Distinct top-level `tenant_id` strings, and documents without one.
    pub tenants: BTreeMap<String, usize>,
    pub without_tenant: usize,
}

impl Sample {
    pub fn observe(&mut self, doc: &Document) {
        self.documents += 1;
        match doc.get("tenant_id") {
            Some(Bson::String(t)) => {
                if self.tenants.len() < MAX_TENANTS || self.tenants.contains_key(t) {
                    *self.tenants.entry(t.clone()).or_default() += 1;
                }
            }
            _ => self.without_tenant += 1,
        }
        self.root.present += 1;
        observe_document(&mut self.root, doc);
    }

    /// Every sampled document carries a string `tenant_id`.
    pub fn all_carry_tenant(&self) -> bool {
        self.documents > 0 && self.without_tenant == 0
    }
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::String(_) => "string",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Double(_) => "double",
        Bson::Decimal128(_) => "decimal",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::ObjectId(_) => "objectId",
        Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::Uuid => "uuid",
        Bson::Binary(_) => "binData",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Null => "null",
        Bson::Timestamp(_) => "timestamp",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
        Bson::Undefined => "undefined",
        Bson::DbPointer(_) => "dbPointer",
    }
}

fn observe(stats: &mut Stats, v: &Bson) {
    *stats.types.entry(type_name(v)).or_default() += 1;
    match v {
        Bson::Document(d) => {
            if !is_geo_point(d) {
                stats.not_geo += 1;
            }
            observe_document(stats, d);
        }
        Bson::Array(items) => {
            let s = stats.items.get_or_insert_with(Default::default);
            for item in items {
                s.present += 1;
                observe(s, item);
            }
        }
        _ => {}
    }
}

fn observe_document(stats: &mut Stats, d: &Document) {
    for (k, v) in d {
        if !stats.children.contains_key(k) && stats.children.len() >= MAX_KEYS {
            stats.overflow = true;
            continue;
        }
        let child = stats.children.entry(k.clone()).or_default();
        child.present += 1;
        observe(child, v);
    }
}

/// `{type: "Point", coordinates: [lng, lat]}` in range, nothing else.
fn is_geo_point(d: &Document) -> bool {
    let Ok(coords) = d.get_array("coordinates") else {
        return false;
    };
    let num = |b: &Bson| match b {
        Bson::Double(x) => Some(*x),
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    };
    d.len() == 2
        && d.get_str("type") == Ok("Point")
        && coords.len() == 2
        && num(&coords[0]).is_some_and(|x| (-180.0..=180.0).contains(&x))
        && num(&coords[1]).is_some_and(|y| (-90.0..=90.0).contains(&y))
}

/// The fields of an object whose `count` observations gave `stats`.
pub fn fields_of(
    stats: &Stats,
    count: usize,
    required_ratio: f64,
    path: &str,
    notes: &mut Vec<Note>,
) -> IndexMap<String, Field> {
    stats
        .children
        .iter()
        .map(|(name, s)| {
            let at = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let mut f = field_of(s, required_ratio, &at, notes);
            f.required = count > 0 && (s.present as f64) >= required_ratio * count as f64;
            (name.clone(), f)
        })
        .collect()
}

fn field_of(s: &Stats, ratio: f64, at: &str, notes: &mut Vec<Note>) -> Field {
    let nulls = s.types.get("null").copied().unwrap_or(0);
    let kinds: Vec<(&str, usize)> = s
        .types
        .iter()
        .filter(|(k, _)| **k != "null")
        .map(|(k, n)| (*k, *n))
        .collect();
    let mut f = Field::of(kind_of(&kinds).unwrap_or(FieldType::Any));
    f.nullable = nulls > 0 && f.kind != FieldType::Any;
    let split = || {
        s.types
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if kinds.len() > 1 || (f.kind == FieldType::Any && !kinds.is_empty()) {
        let said = if f.kind == FieldType::Any {
            "`any`; choose a type and migrate the rest"
        } else {
            "`number`"
        };
        notes.push(Note::new(
            at,
            format!("mixed types in the sample ({}): declared {said}", split()),
        ));
    } else if kinds.is_empty() {
        notes.push(Note::new(
            at,
            format!("only null in the sample ({}): declared `any`", split()),
        ));
    }
    match f.kind {
        FieldType::Object if s.not_geo == 0 && s.types.contains_key("object") => {
            f.kind = FieldType::GeoPoint;
        }
        FieldType::Object if s.overflow => {
            f.allow_extra_fields = Some(true);
            notes.push(Note::new(at, format!("more than {MAX_KEYS} distinct keys: a map, declared with `allow_extra_fields: true`")));
        }
        FieldType::Object => {
            let objects = s.types.get("object").copied().unwrap_or(0);
            f.fields = Some(fields_of(s, objects, ratio, at, notes));
            f.allow_extra_fields = Some(false);
        }
        FieldType::Array => {
            if let Some(items) = &s.items {
                f.items = Some(Box::new(field_of(items, ratio, &format!("{at}[]"), notes)));
            }
        }
        _ => {}
    }
    f
}

/// One field type for the kinds seen, or `None` when the mix has no single type.
fn kind_of(kinds: &[(&str, usize)]) -> Option<FieldType> {
    let one = |k: &str| {
        Some(match k {
            "string" => FieldType::String,
            "int" => FieldType::Int,
            "long" => FieldType::Long,
            "double" => FieldType::Double,
            "decimal" => FieldType::Decimal,
            "bool" => FieldType::Bool,
            "date" => FieldType::Date,
            "objectId" => FieldType::ObjectId,
            "uuid" => FieldType::Uuid,
            "binData" => FieldType::Binary,
            "object" => FieldType::Object,
            "array" => FieldType::Array,
            _ => return None,
        })
    };
    match kinds {
        [] => None,
        [(k, _)] => one(k),
        _ if kinds
            .iter()
            .all(|(k, _)| matches!(*k, "int" | "long" | "double" | "decimal")) =>
        {
            Some(FieldType::Number)
        }
        _ if kinds.iter().all(|(k, _)| matches!(*k, "uuid" | "binData")) => Some(FieldType::Binary),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn infer(docs: &[Document]) -> (IndexMap<String, Field>, Vec<Note>) {
        let mut s = Sample::default();
        for d in docs {
            s.observe(d);
        }
        let mut notes = Vec::new();
        let f = fields_of(&s.root, s.documents, 1.0, "", &mut notes);
        (f, notes)
    }

    #[test]
    fn mixed_types_are_said_with_their_counts_never_guessed() {
        let (f, notes) = infer(&[
            doc! { "a": "x", "n": 1, "m": 1.5 },
            doc! { "a": 3, "n": 2_i64, "m": bson::Bson::Null },
            doc! { "a": "y", "n": 3 },
        ]);
        assert_eq!(f["a"].kind, FieldType::Any);
        assert_eq!(f["n"].kind, FieldType::Number);
        assert_eq!(
            (f["m"].kind, f["m"].nullable, f["m"].required),
            (FieldType::Double, true, false)
        );
        let a = notes.iter().find(|n| n.at == "a").expect("a note for a");
        assert!(a.message.contains("int 1, string 2"), "{}", a.message);
        assert!(notes
            .iter()
            .any(|n| n.at == "n" && n.message.contains("int 2, long 1")));
    }

    #[test]
    fn nested_objects_arrays_and_geo_points() {
        let (f, _) = infer(&[
            doc! { "o": { "x": 1, "y": "a" }, "tags": [["a"], ["b", "c"]], "loc": { "type": "Point", "coordinates": [13.4, 52.5] } },
            doc! { "o": { "x": 2 }, "tags": [], "loc": { "type": "Point", "coordinates": [-73.9, 40.7] } },
        ]);
        let o = f["o"].fields.as_ref().unwrap();
        assert!(o["x"].required && !o["y"].required);
        let items = f["tags"].items.as_ref().unwrap();
        assert_eq!(items.kind, FieldType::Array);
        assert_eq!(items.items.as_ref().unwrap().kind, FieldType::String);
        assert_eq!(f["loc"].kind, FieldType::GeoPoint);
    }
}
