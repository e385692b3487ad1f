//! `$jsonSchema` validators. Only keywords MongoDB supports are emitted (no `$ref`,
//! `format`, `default`, `definitions` or `integer`), and every field schema carries a
//! `bsonType`, so a restriction can never pass because the value had another type.

use bson::{doc, Bson, Document};
use indexmap::IndexMap;

use super::json_to_bson;
use crate::spec::{CollectionSpec, Field, FieldType, Rule};

/// The collection's `validator` document: `{$jsonSchema: ...}`, plus `$expr` when the spec
/// has expression rules (which `$jsonSchema` cannot hold).
pub fn compile_validator(spec: &CollectionSpec, pinned_tenant: Option<&str>) -> Document {
    let fields: IndexMap<String, Field> = spec
        .effective_fields(pinned_tenant)
        .into_iter()
        .map(|(k, (f, _))| (k, f))
        .collect();
    let mut schema = object_schema(&fields, spec.allow_extra_fields);
    if let Some(title) = &spec.description {
        schema.insert(
            "title",
            format!("{}: {}", spec.collection, first_sentence(title)),
        );
    }
    let mut all_of = Vec::new();
    let mut exprs = Vec::new();
    let mut queries = Vec::new();
    for rule in &spec.rules {
        match rule {
            Rule::AnyOfRequired(r) => {
                let alternatives: Vec<Bson> = r
                    .any_of_required
                    .iter()
                    .map(|f| Bson::Document(doc! { "required": [f] }))
                    .collect();
                all_of.push(Bson::Document(doc! { "anyOf": alternatives }));
            }
            Rule::Conditional(r) => {
                let mut props = Document::new();
                for (field, value) in &r.when {
                    props.insert(field, doc! { "enum": [json_to_bson(value)] });
                }
                let condition = doc! {
                    "required": r.when.keys().cloned().collect::<Vec<_>>(),
                    "properties": props,
                };
                all_of.push(Bson::Document(doc! {
                    "anyOf": [ { "not": condition }, { "required": r.require.clone() } ]
                }));
            }
            Rule::Expr(r) => exprs.push(json_to_bson(&serde_json::Value::Object(r.expr.clone()))),
            Rule::JsonSchema(r) => all_of.push(json_to_bson(&serde_json::Value::Object(
                r.json_schema.clone(),
            ))),
            Rule::Query(r) => {
                queries.push(json_to_bson(&serde_json::Value::Object(r.query.clone())))
            }
        }
    }
    if !all_of.is_empty() {
        schema.insert("allOf", all_of);
    }
    let mut validator = doc! { "$jsonSchema": schema };
    match exprs.len() {
        0 => {}
        1 => {
            validator.insert("$expr", exprs.remove(0));
        }
        _ => {
            validator.insert("$expr", doc! { "$and": exprs });
        }
    }
    // Query rules sit beside `$jsonSchema`; several are joined with `$and` so none can
    // overwrite another's key.
    match queries.len() {
        0 => {}
        1 => {
            if let Some(Bson::Document(q)) = queries.pop() {
                validator.extend(q);
            }
        }
        _ => {
            validator.insert("$and", queries);
        }
    }
    validator
}

fn first_sentence(s: &str) -> &str {
    let s = s.trim();
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}

/// `{bsonType: object, required, properties, additionalProperties}` for a field map.
fn object_schema(fields: &IndexMap<String, Field>, allow_extra: bool) -> Document {
    let mut schema = doc! { "bsonType": "object" };
    let required: Vec<&String> = fields
        .iter()
        .filter(|(_, f)| f.required)
        .map(|(k, _)| k)
        .collect();
    if !required.is_empty() {
        schema.insert(
            "required",
            required.into_iter().cloned().collect::<Vec<_>>(),
        );
    }
    let mut properties = Document::new();
    for (name, field) in fields {
        let schema = field_schema(field);
        // `{}` constrains nothing; it only matters where it keeps a name from being extra.
        if schema.is_empty() && allow_extra {
            continue;
        }
        properties.insert(name, schema);
    }
    schema.insert("properties", properties);
    if !allow_extra {
        schema.insert("additionalProperties", false);
    }
    schema
}

fn bson_type(kind: FieldType) -> Option<&'static str> {
    Some(match kind {
        FieldType::String => "string",
        FieldType::Int => "int",
        FieldType::Long => "long",
        FieldType::Double => "double",
        FieldType::Decimal => "decimal",
        FieldType::Number => "number",
        FieldType::Bool => "bool",
        FieldType::Date => "date",
        FieldType::ObjectId => "objectId",
        FieldType::Uuid | FieldType::Binary => "binData",
        FieldType::Object | FieldType::GeoPoint => "object",
        FieldType::Array => "array",
        FieldType::Any => return None,
    })
}

/// A number as the narrowest BSON type that holds it exactly.
fn number(v: f64) -> Bson {
    if v.fract() == 0.0 && v.abs() < 2f64.powi(53) {
        let i = v as i64;
        i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i))
    } else {
        Bson::Double(v)
    }
}

fn count(v: u64) -> Bson {
    i32::try_from(v)
        .map(Bson::Int32)
        .unwrap_or(Bson::Int64(v as i64))
}

/// A GeoJSON point: `{type: "Point", coordinates: [longitude, latitude]}` in range.
fn geo_point(s: &mut Document) {
    s.insert("required", vec!["type", "coordinates"]);
    s.insert(
        "properties",
        doc! {
            "type": { "bsonType": "string", "enum": ["Point"] },
            "coordinates": {
                "bsonType": "array",
                "minItems": 2,
                "maxItems": 2,
                "items": [
                    { "bsonType": "number", "minimum": -180, "maximum": 180, "description": "longitude" },
                    { "bsonType": "number", "minimum": -90, "maximum": 90, "description": "latitude" },
                ],
                "additionalItems": false,
            },
        },
    );
}

/// The `$jsonSchema` of one field.
pub fn field_schema(field: &Field) -> Document {
    let mut s = Document::new();
    if let Some(t) = bson_type(field.kind) {
        if field.nullable {
            s.insert("bsonType", vec![t, "null"]);
        } else {
            s.insert("bsonType", t);
        }
    }
    if let Some(d) = &field.description {
        s.insert("description", d.trim());
    }
    if let Some(values) = &field.enum_values {
        let mut values: Vec<Bson> = values.iter().map(json_to_bson).collect();
        if field.nullable && !values.contains(&Bson::Null) {
            values.push(Bson::Null);
        }
        s.insert("enum", values);
    }
    if let Some(p) = &field.pattern {
        s.insert("pattern", p);
    }
    if let Some(n) = field.min_length {
        s.insert("minLength", count(n));
    }
    if let Some(n) = field.max_length {
        s.insert("maxLength", count(n));
    }
    if let Some(n) = field.min {
        s.insert("minimum", number(n));
    }
    if let Some(n) = field.max {
        s.insert("maximum", number(n));
    }
    if let Some(n) = field.min_items {
        s.insert("minItems", count(n));
    }
    if let Some(n) = field.max_items {
        s.insert("maxItems", count(n));
    }
    if field.unique_items {
        s.insert("uniqueItems", true);
    }
    match field.kind {
        FieldType::Array => {
            if let Some(items) = &field.items {
                s.insert("items", field_schema(items));
            }
        }
        FieldType::Object => {
            if let Some(fields) = &field.fields {
                let nested = object_schema(fields, field.allow_extra_fields.unwrap_or(false));
                for (k, v) in nested {
                    if k != "bsonType" {
                        s.insert(k, v);
                    }
                }
            }
        }
        FieldType::GeoPoint => geo_point(&mut s),
        _ => {}
    }
    s
}
