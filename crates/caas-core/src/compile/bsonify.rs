//! Plain JSON (from YAML) to BSON. Integers that fit become Int32, as mongosh would send
//! them; Extended JSON forms are not interpreted, so `$type` in a filter stays a key.

use bson::{Bson, Document};
use serde_json::Value;

pub fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i)),
            (None, Some(f)) => Bson::Double(f),
            (None, None) => Bson::Double(f64::NAN),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(m) => Bson::Document(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect::<Document>(),
        ),
    }
}

/// Give a document's values the BSON types its spec declares: YAML has one kind of
/// integer, but a `long` field must hold an Int64, a `double` a Double, a `date` a Date
/// (from an RFC 3339 string), an `object_id` an ObjectId (from 24 hex digits or
/// `{$oid: ...}`). Nested objects and array items follow their declared fields.
pub fn coerce(doc: &mut Document, fields: &indexmap::IndexMap<String, crate::spec::Field>) {
    for (name, field) in fields {
        if let Some(v) = doc.get_mut(name) {
            coerce_value(v, field);
        }
    }
}

fn coerce_value(v: &mut Bson, field: &crate::spec::Field) {
    use crate::spec::FieldType as T;
    let as_f64 = |b: &Bson| match b {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    };
    match (field.kind, &*v) {
        (T::Long, Bson::Int32(i)) => *v = Bson::Int64(i64::from(*i)),
        (T::Double, b) if as_f64(b).is_some() && !matches!(b, Bson::Double(_)) => {
            *v = Bson::Double(as_f64(b).unwrap_or_default())
        }
        (T::Decimal, b) if as_f64(b).is_some() => {
            if let Ok(d) = as_f64(b).unwrap_or_default().to_string().parse() {
                *v = Bson::Decimal128(d);
            }
        }
        (T::Date, Bson::String(s)) => {
            if let Ok(d) = bson::DateTime::parse_rfc3339_str(s) {
                *v = Bson::DateTime(d);
            }
        }
        (T::ObjectId, Bson::String(s)) => {
            if let Ok(o) = bson::oid::ObjectId::parse_str(s) {
                *v = Bson::ObjectId(o);
            }
        }
        (T::ObjectId, Bson::Document(d)) if d.len() == 1 => {
            if let Some(o) = d
                .get_str("$oid")
                .ok()
                .and_then(|s| bson::oid::ObjectId::parse_str(s).ok())
            {
                *v = Bson::ObjectId(o);
            }
        }
        (T::Object, Bson::Document(_)) => {
            if let (Some(nested), Bson::Document(d)) = (&field.fields, v) {
                coerce(d, nested);
            }
        }
        (T::Array, Bson::Array(_)) => {
            if let (Some(items), Bson::Array(a)) = (&field.items, v) {
                for item in a.iter_mut() {
                    coerce_value(item, items);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_take_the_smallest_type() {
        assert_eq!(json_to_bson(&json!(5)), Bson::Int32(5));
        assert_eq!(
            json_to_bson(&json!(5_000_000_000i64)),
            Bson::Int64(5_000_000_000)
        );
        assert_eq!(json_to_bson(&json!(1.5)), Bson::Double(1.5));
    }

    #[test]
    fn coerce_follows_the_spec() {
        let spec: crate::spec::CollectionSpec = serde_json::from_value(json!({
            "collection": "c", "domain": "platform",
            "fields": { "n": { "type": "long" }, "r": { "type": "double" }, "at": { "type": "date" },
                "o": { "type": "object", "fields": { "m": { "type": "long" } } },
                "a": { "type": "array", "items": { "type": "long" } } }
        })).unwrap();
        let mut d = json_to_bson(&json!({ "n": 5, "r": 2, "at": "2026-01-15T00:00:00Z", "o": { "m": 1 }, "a": [1, 2], "x": 3 })).as_document().cloned().unwrap();
        coerce(&mut d, &spec.fields);
        assert_eq!(d.get("n"), Some(&Bson::Int64(5)));
        assert_eq!(d.get("r"), Some(&Bson::Double(2.0)));
        assert!(matches!(d.get("at"), Some(Bson::DateTime(_))));
        assert_eq!(d.get_document("o").unwrap().get("m"), Some(&Bson::Int64(1)));
        assert_eq!(d.get_array("a").unwrap()[1], Bson::Int64(2));
        assert_eq!(
            d.get("x"),
            Some(&Bson::Int32(3)),
            "undeclared fields are left alone"
        );
    }

    #[test]
    fn object_ids_come_from_hex_or_oid() {
        let spec: crate::spec::CollectionSpec = serde_json::from_value(json!({
            "collection": "c", "domain": "platform",
            "fields": { "a": { "type": "object_id" }, "b": { "type": "object_id" }, "c": { "type": "object_id" } }
        })).unwrap();
        let hex = "000000000000000000000001";
        let mut d = json_to_bson(&json!({ "a": hex, "b": { "$oid": hex }, "c": "not hex" }))
            .as_document()
            .cloned()
            .unwrap();
        coerce(&mut d, &spec.fields);
        let oid = bson::oid::ObjectId::parse_str(hex).unwrap();
        assert_eq!(d.get("a"), Some(&Bson::ObjectId(oid)));
        assert_eq!(d.get("b"), Some(&Bson::ObjectId(oid)));
        assert_eq!(
            d.get_str("c").ok(),
            Some("not hex"),
            "left for the validator to refuse"
        );
    }

    #[test]
    fn operators_stay_keys() {
        let b = json_to_bson(&json!({"deleted_at": {"$type": "date"}}));
        assert_eq!(
            b.as_document()
                .unwrap()
                .get_document("deleted_at")
                .unwrap()
                .get_str("$type")
                .unwrap(),
            "date"
        );
    }
}
