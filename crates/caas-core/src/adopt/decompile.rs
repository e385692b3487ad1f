//! A live `$jsonSchema` validator read back into spec fields and rules. Pure.
//!
//! Each level of the schema is split in two: the keywords the field language can say
//! become the field, and the rest stay as a `json_schema` rule at the same path, so the
//! pulled spec accepts exactly the documents the live validator accepts. Nothing is
//! dropped; every keyword kept raw is named in a note.

use bson::{Bson, Document};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::Note;
use crate::compile::field_schema;
use crate::inspect::normalize::canonical_query;
use crate::spec::{
    AnyOfRequiredRule, ConditionalRule, ExprRule, Field, FieldType, JsonSchemaRule, QueryRule, Rule,
};

/// The fields, rules and description a validator says.
#[derive(Debug, Default)]
pub struct FromValidator {
    pub fields: IndexMap<String, Field>,
    pub allow_extra_fields: bool,
    pub rules: Vec<Rule>,
    /// From the schema's `title` (caas writes `collection: first sentence`).
    pub description: Option<String>,
    pub notes: Vec<Note>,
}

/// Where a schema sits inside the document's schema.
#[derive(Debug, Clone)]
enum Step {
    Property(String),
    Items,
}

/// Read a validator document (`{$jsonSchema, $expr, ...query}`) back.
pub fn from_validator(collection: &str, validator: &Document) -> FromValidator {
    let mut out = FromValidator::default();
    let mut query = Map::new();
    for (key, value) in validator {
        match (key.as_str(), value) {
            ("$jsonSchema", Bson::Document(schema)) => root(collection, schema, &mut out),
            ("$expr", expr) => match to_json(expr) {
                Value::Object(expr) => out.rules.push(Rule::Expr(ExprRule {
                    expr,
                    description: None,
                })),
                other => {
                    out.rules.push(Rule::Query(QueryRule {
                        query: Map::from_iter([("$expr".to_owned(), other)]),
                        description: None,
                    }));
                }
            },
            _ => {
                query.insert(key.clone(), to_json(value));
            }
        }
    }
    if !query.is_empty() {
        out.notes.push(Note::new(
            "validator",
            format!(
                "query operators beside $jsonSchema ({}) are kept as a `query` rule",
                query.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
        out.rules.push(Rule::Query(QueryRule {
            query,
            description: None,
        }));
    }
    out
}

fn root(collection: &str, schema: &Document, out: &mut FromValidator) {
    let mut rest = schema.clone();
    if let Some(Bson::String(title)) = rest.remove("title") {
        let prefix = format!("{collection}: ");
        out.description = Some(match title.strip_prefix(&prefix) {
            Some(t) => t.to_owned(),
            None => {
                out.notes.push(Note::new(
                    "title",
                    format!("the validator's title {title:?} becomes the description; caas titles validators `{collection}: <first sentence>`"),
                ));
                title
            }
        });
    }
    if let Some(Bson::Array(all_of)) = rest.remove("allOf") {
        for entry in all_of {
            out.rules.push(match entry {
                Bson::Document(d) => rule_of(&d),
                other => raw_rule(Map::from_iter([(
                    "allOf".to_owned(),
                    Value::Array(vec![to_json(&other)]),
                )])),
            });
        }
    }
    if rest.get_str("bsonType") == Ok("object") {
        rest.remove("bsonType");
    }
    let mut raws = Vec::new();
    let (fields, allow_extra) = object_level(&mut rest, &[], &mut raws, &mut out.notes);
    out.fields = fields;
    out.allow_extra_fields = allow_extra;
    if !rest.is_empty() {
        raws.push((Vec::new(), rest));
    }
    for (path, kept) in raws {
        out.notes.push(Note::new(
            &dotted(&path),
            format!(
                "kept as a `json_schema` rule (the field language cannot say it): {}",
                kept.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
        out.rules.push(raw_rule(wrap(&path, kept)));
    }
}

/// `properties`, `required` and `additionalProperties` of an object level, taken out of
/// `schema`: the fields, and whether undeclared fields are allowed.
fn object_level(
    schema: &mut Document,
    path: &[Step],
    raws: &mut Vec<(Vec<Step>, Document)>,
    notes: &mut Vec<Note>,
) -> (IndexMap<String, Field>, bool) {
    let mut fields = IndexMap::new();
    let properties = match schema.remove("properties") {
        Some(Bson::Document(p)) => p,
        Some(other) => {
            schema.insert("properties", other);
            Document::new()
        }
        None => Document::new(),
    };
    let required: Vec<String> = match schema.get_array("required") {
        Ok(list) => list
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect(),
        Err(_) => Vec::new(),
    };
    for (name, sub) in &properties {
        let mut sub_path = path.to_vec();
        sub_path.push(Step::Property(name.clone()));
        let mut field = match sub {
            Bson::Document(d) => field_of(d, &sub_path, raws, notes),
            other => {
                raws.push((
                    path.to_vec(),
                    Document::from_iter([(
                        "properties".to_owned(),
                        Bson::Document(Document::from_iter([(name.clone(), other.clone())])),
                    )]),
                ));
                Field::of(FieldType::Any)
            }
        };
        field.required = required.contains(name);
        fields.insert(name.clone(), field);
    }
    let undeclared: Vec<Bson> = required
        .iter()
        .filter(|r| !fields.contains_key(*r))
        .map(|r| Bson::String(r.clone()))
        .collect();
    if schema.contains_key("required") {
        schema.remove("required");
        if !undeclared.is_empty() {
            schema.insert("required", undeclared);
        }
    }
    if schema.contains_key("patternProperties") && schema.contains_key("additionalProperties") {
        // `additionalProperties` then depends on both maps: keep it raw, beside the names
        // it must not count as extra.
        let names: Document = properties
            .keys()
            .map(|k| (k.clone(), Bson::Document(Document::new())))
            .collect();
        schema.insert("properties", names);
        return (fields, true);
    }
    let allow_extra = match schema.remove("additionalProperties") {
        None | Some(Bson::Boolean(true)) => true,
        Some(Bson::Boolean(false)) => false,
        Some(other) => {
            schema.insert("additionalProperties", other);
            true
        }
    };
    (fields, allow_extra)
}

/// One property's schema as a field; what it cannot say goes to `raws` at its path.
fn field_of(
    schema: &Document,
    path: &[Step],
    raws: &mut Vec<(Vec<Step>, Document)>,
    notes: &mut Vec<Note>,
) -> Field {
    if let Some(geo) = geo_point(schema) {
        return geo;
    }
    let mut rest = schema.clone();
    let mut field = Field::of(FieldType::Any);
    if let Some(kind) = rest.remove("bsonType") {
        match kind_of(&kind) {
            Some((kind, nullable)) => {
                field.kind = kind;
                field.nullable = nullable;
            }
            None => {
                rest.insert("bsonType", kind);
            }
        }
    }
    scalars(&mut rest, &mut field);
    if let Some(values) = rest.remove("enum") {
        match plain_values(&values, field.nullable) {
            Some(v) => field.enum_values = Some(v),
            None => {
                rest.insert("enum", values);
            }
        }
    }
    match (field.kind, rest.remove("items")) {
        (FieldType::Array, Some(Bson::Document(items))) => {
            let mut sub = path.to_vec();
            sub.push(Step::Items);
            field.items = Some(Box::new(field_of(&items, &sub, raws, notes)));
        }
        (_, Some(items)) => {
            rest.insert("items", items);
        }
        (_, None) => {}
    }
    if field.kind == FieldType::Object && rest.contains_key("properties") {
        let (fields, allow_extra) = object_level(&mut rest, path, raws, notes);
        field.fields = Some(fields);
        field.allow_extra_fields = Some(allow_extra);
    } else if field.kind == FieldType::Object && !rest.contains_key("additionalProperties") {
        // `{bsonType: object}` alone: free-form data.
        field.allow_extra_fields = Some(true);
    }
    // `exclusiveMinimum`/`exclusiveMaximum` (draft 4 booleans) mean nothing without their
    // bound: the raw part keeps a copy of it.
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if rest.contains_key(flag) {
            if let Some(b) = schema.get(bound) {
                rest.insert(bound, b.clone());
            }
        }
    }
    if !rest.is_empty() {
        raws.push((path.to_vec(), rest));
    }
    field
}

/// Description, pattern and the numeric and length bounds, taken out of `rest`.
fn scalars(rest: &mut Document, field: &mut Field) {
    if let Some(Bson::String(d)) = rest.get("description").cloned() {
        rest.remove("description");
        field.description = Some(d);
    }
    if let Some(Bson::String(p)) = rest.get("pattern").cloned() {
        rest.remove("pattern");
        field.pattern = Some(p);
    }
    let counts: [(&str, &mut Option<u64>); 4] = [
        ("minLength", &mut field.min_length),
        ("maxLength", &mut field.max_length),
        ("minItems", &mut field.min_items),
        ("maxItems", &mut field.max_items),
    ];
    for (key, slot) in counts {
        if let Some(n) = rest.get(key).and_then(as_f64) {
            if n >= 0.0 && n.fract() == 0.0 {
                rest.remove(key);
                *slot = Some(n as u64);
            }
        }
    }
    for (key, slot) in [("minimum", &mut field.min), ("maximum", &mut field.max)] {
        if let Some(n) = rest.get(key).and_then(as_f64) {
            rest.remove(key);
            *slot = Some(n);
        }
    }
    if rest.get("uniqueItems") == Some(&Bson::Boolean(true)) {
        rest.remove("uniqueItems");
        field.unique_items = true;
    }
}

/// A field type and nullability from `bsonType` (a name, or `[name, "null"]`).
fn kind_of(b: &Bson) -> Option<(FieldType, bool)> {
    let names: Vec<&str> = match b {
        Bson::String(s) => vec![s.as_str()],
        Bson::Array(a) => a.iter().map(|x| x.as_str()).collect::<Option<_>>()?,
        _ => return None,
    };
    let nullable = names.contains(&"null");
    let rest: Vec<&str> = names.into_iter().filter(|n| *n != "null").collect();
    let [name] = rest.as_slice() else {
        return None;
    };
    let kind = match *name {
        "string" => FieldType::String,
        "int" => FieldType::Int,
        "long" => FieldType::Long,
        "double" => FieldType::Double,
        "decimal" => FieldType::Decimal,
        "number" => FieldType::Number,
        "bool" => FieldType::Bool,
        "date" => FieldType::Date,
        "objectId" => FieldType::ObjectId,
        "binData" => FieldType::Binary,
        "object" => FieldType::Object,
        "array" => FieldType::Array,
        _ => return None,
    };
    Some((kind, nullable))
}

/// Enum values a spec can hold (plain JSON), without the `null` that `nullable` adds back.
fn plain_values(values: &Bson, nullable: bool) -> Option<Vec<Value>> {
    let Bson::Array(list) = values else {
        return None;
    };
    let mut out = Vec::new();
    for v in list {
        match v {
            Bson::Null if nullable => {}
            Bson::Null => out.push(Value::Null),
            Bson::String(s) => out.push(Value::String(s.clone())),
            Bson::Boolean(b) => out.push(Value::Bool(*b)),
            Bson::Int32(i) => out.push(Value::from(*i)),
            Bson::Int64(i) => out.push(Value::from(*i)),
            Bson::Double(d) if d.is_finite() => out.push(Value::from(*d)),
            _ => return None,
        }
    }
    Some(out)
}

/// A GeoJSON point exactly as caas compiles one (with its description and nullability).
fn geo_point(schema: &Document) -> Option<Field> {
    let (kind, nullable) = kind_of(schema.get("bsonType")?)?;
    if kind != FieldType::Object || !schema.contains_key("properties") {
        return None;
    }
    let mut f = Field::of(FieldType::GeoPoint);
    f.nullable = nullable;
    f.description = schema.get_str("description").ok().map(str::to_owned);
    (canonical_query(&field_schema(&f)) == canonical_query(schema)).then_some(f)
}

/// An `allOf` entry as the rule caas compiled it from, or a raw `json_schema` rule.
fn rule_of(entry: &Document) -> Rule {
    let requires = |b: &Bson| -> Option<Vec<String>> {
        let d = b.as_document()?;
        if d.len() != 1 {
            return None;
        }
        d.get_array("required")
            .ok()?
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    if let (1, Ok(any_of)) = (entry.len(), entry.get_array("anyOf")) {
        let singles: Option<Vec<String>> = any_of
            .iter()
            .map(|a| {
                requires(a)
                    .filter(|r| r.len() == 1)
                    .map(|mut r| r.remove(0))
            })
            .collect();
        if let Some(any_of_required) = singles.filter(|s| s.len() >= 2) {
            return Rule::AnyOfRequired(AnyOfRequiredRule {
                any_of_required,
                description: None,
            });
        }
        if let Some(rule) = conditional(any_of) {
            return rule;
        }
    }
    raw_rule(match to_json(&Bson::Document(entry.clone())) {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// `anyOf: [{not: {required: [when...], properties: {k: {enum: [v]}}}}, {required: [...]}]`.
fn conditional(any_of: &[Bson]) -> Option<Rule> {
    let [Bson::Document(not), Bson::Document(then)] = any_of else {
        return None;
    };
    let cond = not.get_document("not").ok()?;
    let props = cond.get_document("properties").ok()?;
    let mut when = IndexMap::new();
    for (k, v) in props {
        let values = v.as_document()?.get_array("enum").ok()?;
        let [value] = values.as_slice() else {
            return None;
        };
        when.insert(k.clone(), to_json(value));
    }
    let mut required: Vec<&str> = cond
        .get_array("required")
        .ok()?
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    let mut keys: Vec<&str> = when.keys().map(String::as_str).collect();
    required.sort_unstable();
    keys.sort_unstable();
    let require: Vec<String> = then
        .get_array("required")
        .ok()?
        .iter()
        .map(|b| b.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    (cond.len() == 2 && then.len() == 1 && required == keys).then(|| {
        Rule::Conditional(ConditionalRule {
            when,
            require,
            description: None,
        })
    })
}

fn raw_rule(json_schema: Map<String, Value>) -> Rule {
    Rule::JsonSchema(JsonSchemaRule {
        json_schema,
        description: Some("Kept from the live validator by `caas schema pull`.".into()),
    })
}

/// `kept` placed at `path`: `{properties: {a: {items: kept}}}`.
fn wrap(path: &[Step], kept: Document) -> Map<String, Value> {
    let mut inner = Bson::Document(kept);
    for step in path.iter().rev() {
        inner = match step {
            Step::Property(name) => Bson::Document(Document::from_iter([(
                "properties".to_owned(),
                Bson::Document(Document::from_iter([(name.clone(), inner)])),
            )])),
            Step::Items => Bson::Document(Document::from_iter([("items".to_owned(), inner)])),
        };
    }
    match to_json(&inner) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn dotted(path: &[Step]) -> String {
    if path.is_empty() {
        return "validator".into();
    }
    path.iter()
        .map(|s| match s {
            Step::Property(n) => n.clone(),
            Step::Items => "[]".into(),
        })
        .collect::<Vec<_>>()
        .join(".")
        .replace(".[]", "[]")
}

fn as_f64(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// BSON as the JSON a spec holds: relaxed Extended JSON.
pub fn to_json(b: &Bson) -> Value {
    b.clone().into_relaxed_extjson()
}
