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
