//! A sample document for a collection, generated from its compiled validator: every
//! declared field, with a value its `$jsonSchema` accepts (type, enum, pattern, length,
//! range, array items, nested objects). Dates increase in field order, so the usual
//! `$expr` rule "ends after it starts" holds; fields that mean "not set" when null (the
//! soft-delete markers) are null. Pure and deterministic: `caas docs` prints it, and a live
//! test inserts it under the validator of every spec it documents.

use bson::{oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::expr::satisfy;
use super::validator::compile_validator;
use crate::spec::{CollectionSpec, Origin};

/// 2026-01-15T09:00:00Z: the first date a sample uses; each later date is an hour on.
const FIRST_DATE_MS: i64 = 1_768_467_600_000;

/// A generated document, and whether the spec's expression rules are known to hold on it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub document: Document,
    /// False when an `$expr` rule could not be met automatically (or uses operators the
    /// offline evaluator does not know): the document may then fail that rule.
    pub rules_met: bool,
}

/// The sample document of a spec, for a tenant when the collection is tenant-scoped.
pub fn for_spec(spec: &CollectionSpec, tenant: Option<&str>) -> Sample {
    let fields = spec.effective_fields(tenant);
    let null_fields: Vec<String> = fields
        .iter()
        .filter(|(_, (_, origin))| *origin == Origin::SoftDelete)
        .map(|(name, _)| name.clone())
        .collect();
    sample(&compile_validator(spec, tenant), &null_fields)
}

/// Build a document that `validator` (`{$jsonSchema: ..., $expr?: ...}`) accepts.
/// `null_fields` are top-level fields to leave null where the schema allows it.
pub fn sample(validator: &Document, null_fields: &[String]) -> Sample {
    let mut s = Sampler {
        dates: 0,
        ids: 0,
        null_fields,
    };
    let schema = validator.get_document("$jsonSchema").ok();
    let mut document = schema.map(|sc| s.object(sc, true)).unwrap_or_default();
    let rules_met = match validator.get("$expr") {
        None => true,
        Some(rule) => {
            let enums = |field: &str| -> Vec<Bson> {
                schema
                    .and_then(|sc| sc.get_document("properties").ok())
                    .and_then(|p| p.get_document(field).ok())
                    .and_then(|f| f.get_array("enum").ok())
                    .map(|v| v.iter().filter(|x| **x != Bson::Null).cloned().collect())
                    .unwrap_or_default()
            };
            satisfy(rule, &mut document, &enums)
        }
    };
    Sample {
        document,
        rules_met,
    }
}

struct Sampler<'a> {
    dates: i64,
    ids: u32,
    null_fields: &'a [String],
}

impl Sampler<'_> {
    fn object(&mut self, schema: &Document, top: bool) -> Document {
        let mut out = Document::new();
        let Ok(props) = schema.get_document("properties") else {
            return out;
        };
        for (name, prop) in props {
            let Bson::Document(prop) = prop else { continue };
            let prefer_null = top && self.null_fields.iter().any(|f| f == name);
            out.insert(name, self.value(prop, name, 0, prefer_null));
        }
        out
    }

    /// A value for `schema`; `variant` makes the items of a unique array differ.
    fn value(&mut self, schema: &Document, name: &str, variant: usize, prefer_null: bool) -> Bson {
        let types = bson_types(schema);
        if prefer_null && types.iter().any(|t| t == "null") {
            return Bson::Null;
        }
        if let Ok(values) = schema.get_array("enum") {
            let usable: Vec<&Bson> = values.iter().filter(|v| **v != Bson::Null).collect();
            if let Some(v) = usable.get(variant % usable.len().max(1)) {
                return (*v).clone();
            }
        }
        let kind = types
            .iter()
            .find(|t| *t != "null")
            .map(String::as_str)
            .unwrap_or(if types.is_empty() { "string" } else { "null" });
        match kind {
            "null" => Bson::Null,
            "string" => Bson::String(string_value(schema, name, variant)),
            "int" => Bson::Int32(integer(schema, variant) as i32),
            "long" => Bson::Int64(integer(schema, variant)),
            "number" => Bson::Int32(integer(schema, variant) as i32),
            "double" => Bson::Double(integer(schema, variant) as f64 + 0.5),
            "decimal" => decimal(integer(schema, variant)),
            "bool" => Bson::Boolean(true),
            "date" => {
                self.dates += 1;
                Bson::DateTime(DateTime::from_millis(
                    FIRST_DATE_MS + (self.dates - 1) * 3_600_000,
                ))
            }
            "objectId" => {
                self.ids += 1;
                let mut bytes = [0u8; 12];
                bytes[..4].copy_from_slice(&0x6968_c610u32.to_be_bytes());
                bytes[8..].copy_from_slice(&self.ids.to_be_bytes());
                Bson::ObjectId(ObjectId::from_bytes(bytes))
            }
            "binData" => Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: (0..16u8).map(|b| b.wrapping_mul(17)).collect(),
            }),
            "object" => Bson::Document(self.object(schema, false)),
            "array" => Bson::Array(self.array(schema, name)),
            _ => Bson::Null,
        }
    }

    fn array(&mut self, schema: &Document, name: &str) -> Vec<Bson> {
        let min = count(schema, "minItems").unwrap_or(1);
        let max = count(schema, "maxItems").unwrap_or(u64::MAX);
        match schema.get("items") {
            // A tuple: one schema per position.
            Some(Bson::Array(positions)) => positions
                .iter()
                .filter_map(|p| p.as_document())
                .enumerate()
                .map(|(i, p)| self.value(p, name, i, false))
                .collect(),
            Some(Bson::Document(items)) => {
                let mut n = min.max(1).min(max);
                if schema.get_bool("uniqueItems").unwrap_or(false) {
                    if let Ok(values) = items.get_array("enum") {
                        n = n.min(values.len() as u64);
                    }
                }
                (0..n as usize)
                    .map(|i| self.value(items, name, i, false))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

fn bson_types(schema: &Document) -> Vec<String> {
    match schema.get("bsonType") {
        Some(Bson::String(t)) => vec![t.clone()],
        Some(Bson::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn number_of(schema: &Document, key: &str) -> Option<f64> {
    match schema.get(key)? {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

fn count(schema: &Document, key: &str) -> Option<u64> {
    number_of(schema, key).map(|n| n.max(0.0) as u64)
}

/// 1 (plus the variant), moved into `[minimum, maximum]`, exclusive bounds respected.
fn integer(schema: &Document, variant: usize) -> i64 {
    let exclusive = |k: &str| schema.get_bool(k).unwrap_or(false);
    let lo = number_of(schema, "minimum")
        .map(|m| m.ceil() as i64 + i64::from(exclusive("exclusiveMinimum")));
    let hi = number_of(schema, "maximum")
        .map(|m| m.floor() as i64 - i64::from(exclusive("exclusiveMaximum")));
    let mut v = 1 + variant as i64;
    if let Some(lo) = lo {
        v = v.max(lo);
    }
    if let Some(hi) = hi {
        v = v.min(hi);
    }
    v
}

fn decimal(v: i64) -> Bson {
    let ext = serde_json::json!({ "$numberDecimal": v.to_string() });
    Bson::try_from(ext).unwrap_or(Bson::Int64(v))
}

/// A readable string that fits the length bounds and the pattern: a value people would
/// recognise for the field's name when one fits, else one built from the pattern itself.
fn string_value(schema: &Document, name: &str, variant: usize) -> String {
    let min = count(schema, "minLength").unwrap_or(0) as usize;
    let max = count(schema, "maxLength").map_or(usize::MAX, |m| m as usize);
    let pattern = schema.get_str("pattern").ok();
    let matcher = pattern.map(Matcher::new);
    let fits = |s: &str| {
        let n = s.chars().count();
        n >= min && n <= max && matcher.as_ref().is_none_or(|m| m.matches(s))
    };
    let suffix = if variant == 0 {
        String::new()
    } else {
        format!("{}", variant + 1)
    };
    for base in hints(name) {
        for candidate in [format!("{base}{suffix}"), format!("{base}_{suffix}")] {
            if fits(&candidate) {
                return candidate;
            }
        }
    }
    if let Some(hir) = pattern.and_then(|p| regex_syntax::parse(p).ok()) {
        for extra in 0..64 {
            let s = from_pattern(&hir, extra + variant as u32);
            if fits(&s) {
                return s;
            }
        }
    }
    "x".repeat(min.max(1)).chars().take(max).collect()
}

/// Values a reader would expect for a field of this name, best first; the field's own
/// name in words comes last.
fn hints(name: &str) -> Vec<String> {
    let n = name.to_ascii_lowercase();
    let known: &[(&str, &[&str])] = &[
        ("email", &["ada@example.com"]),
        ("phone", &["15551234567", "+15551234567"]),
        ("url", &["https://example.com/ada"]),
        ("uri", &["https://example.com/ada"]),
        ("domain", &["example.com"]),
        ("username", &["ada_lovelace", "ada.lovelace", "ada"]),
        ("handle", &["ada_lovelace"]),
        ("locale", &["en-US", "en"]),
        ("language", &["en"]),
        ("timezone", &["Europe/London"]),
        ("currency", &["EUR"]),
        ("country", &["GB"]),
        ("region", &["eu-west"]),
        ("color", &["#3366ff"]),
        ("colour", &["#3366ff"]),
        ("slug", &["getting-started"]),
        ("first_name", &["Ada"]),
        ("last_name", &["Lovelace"]),
        ("name", &["Ada Lovelace", "ada"]),
        ("title", &["Getting started"]),
        ("ip", &["192.0.2.1"]),
        (
            "sha256",
            &["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        ),
        (
            "hash",
            &["$argon2id$v=19$m=19456,t=2,p=1$c2FtcGxlc2FsdA$c2FtcGxlaGFzaA"],
        ),
        ("mime", &["image/png"]),
        ("content_type", &["image/png"]),
    ];
    let mut out: Vec<String> = known
        .iter()
        .filter(|(k, _)| {
            n == *k
                || n.starts_with(&format!("{k}_"))
                || n.ends_with(&format!("_{k}"))
                || n.contains(&format!("_{k}_"))
        })
        .flat_map(|(_, v)| v.iter().map(|s| (*s).to_owned()))
        .collect();
    out.push(n.replace('_', " ").trim().to_owned());
    out.push(n);
    out
}

/// A pattern check with MongoDB's flavour where Rust's regex cannot parse it (lookaround).
enum Matcher {
    Plain(regex::Regex),
    Fancy(fancy_regex::Regex),
    Unknown,
}

impl Matcher {
    fn new(p: &str) -> Matcher {
        if let Ok(r) = regex::Regex::new(p) {
            return Matcher::Plain(r);
        }
        fancy_regex::Regex::new(p).map_or(Matcher::Unknown, Matcher::Fancy)
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Plain(r) => r.is_match(s),
            Matcher::Fancy(r) => r.is_match(s).unwrap_or(false),
            Matcher::Unknown => false,
        }
    }
}

/// The shortest string of the pattern's first alternatives, each repetition taken
/// `extra` more times than its minimum (within its maximum).
fn from_pattern(hir: &Hir, extra: u32) -> String {
    let mut out = String::new();
    emit(hir, extra, &mut out);
    out
}

fn emit(hir: &Hir, extra: u32, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(l) => out.push_str(&String::from_utf8_lossy(&l.0)),
        HirKind::Class(c) => out.push(class_char(c)),
        HirKind::Repetition(r) => {
            let n = r.max.map_or(r.min + extra, |max| (r.min + extra).min(max));
            for _ in 0..n {
                emit(&r.sub, extra, out);
            }
        }
        HirKind::Capture(c) => emit(&c.sub, extra, out),
        HirKind::Concat(parts) => parts.iter().for_each(|p| emit(p, extra, out)),
        HirKind::Alternation(alts) => {
            if let Some(first) = alts.first() {
                emit(first, extra, out);
            }
        }
    }
}

/// A readable member of the class: a lower-case letter, a digit, an upper-case letter or
/// common punctuation when the class has one, else its first member.
fn class_char(c: &Class) -> char {
    let preferred = ('a'..='z')
        .chain('0'..='9')
        .chain('A'..='Z')
        .chain(['-', '_', '.', ' ', '+', '/']);
    match c {
        Class::Unicode(u) => {
            let has = |ch: char| u.ranges().iter().any(|r| r.start() <= ch && ch <= r.end());
            preferred
                .clone()
                .find(|ch| has(*ch))
                .or_else(|| u.ranges().first().map(|r| r.start()))
                .unwrap_or('x')
        }
        Class::Bytes(b) => {
            let has = |ch: char| {
                b.ranges()
                    .iter()
                    .any(|r| char::from(r.start()) <= ch && ch <= char::from(r.end()))
            };
            preferred
                .clone()
                .find(|ch| has(*ch))
                .or_else(|| b.ranges().first().map(|r| char::from(r.start())))
                .unwrap_or('x')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn one(field: Document) -> Bson {
        let v = doc! { "$jsonSchema": { "bsonType": "object", "properties": { "f": field } } };
        sample(&v, &[]).document.get("f").cloned().unwrap()
    }

    #[test]
    fn strings_meet_pattern_and_length_together() {
        let s = one(
            doc! { "bsonType": "string", "pattern": "^[a-z0-9_.]+$", "minLength": 3, "maxLength": 5 },
        );
        let s = s.as_str().unwrap();
        assert!(
            regex::Regex::new("^[a-z0-9_.]+$").unwrap().is_match(s),
            "{s}"
        );
        assert!((3..=5).contains(&s.len()), "{s}");
        let p = one(doc! { "bsonType": "string", "pattern": "^[0-9]{7,15}$" });
        assert_eq!(p.as_str().unwrap().len(), 7);
        let lit = one(doc! { "bsonType": "string", "pattern": "^\\$argon2id\\$" });
        assert!(lit.as_str().unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn a_name_hint_is_used_only_when_it_fits() {
        let v = doc! { "$jsonSchema": { "bsonType": "object", "properties": {
            "email": { "bsonType": "string", "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$" },
            "email_code": { "bsonType": "string", "pattern": "^[A-Z]{4}$" },
        } } };
        let d = sample(&v, &[]).document;
        assert_eq!(d.get_str("email").unwrap(), "ada@example.com");
        assert_eq!(d.get_str("email_code").unwrap(), "AAAA");
    }

    #[test]
    fn numbers_stay_in_range_and_enums_take_their_first_value() {
        assert_eq!(
            one(doc! { "bsonType": "int", "minimum": 5 }),
            Bson::Int32(5)
        );
        assert_eq!(
            one(doc! { "bsonType": "int", "maximum": -3 }),
            Bson::Int32(-3)
        );
        assert_eq!(
            one(doc! { "bsonType": "int", "minimum": 1, "exclusiveMinimum": true }),
            Bson::Int32(2)
        );
        assert_eq!(
            one(doc! { "bsonType": "string", "enum": ["b", "a"] }),
            Bson::String("b".into())
        );
    }

    #[test]
    fn dates_increase_in_field_order_and_null_markers_stay_null() {
        let v = doc! { "$jsonSchema": { "bsonType": "object", "properties": {
            "start": { "bsonType": "date" },
            "end": { "bsonType": "date" },
            "deleted_at": { "bsonType": ["date", "null"] },
        } } };
        let d = sample(&v, &["deleted_at".into()]).document;
        assert!(d.get_datetime("start").unwrap() < d.get_datetime("end").unwrap());
        assert_eq!(d.get("deleted_at"), Some(&Bson::Null));
    }

    #[test]
    fn unique_enum_arrays_and_tuples() {
        let tags = one(
            doc! { "bsonType": "array", "uniqueItems": true, "minItems": 3,
            "items": { "bsonType": "string", "enum": ["x", "y"] } },
        );
        assert_eq!(tags, Bson::Array(vec!["x".into(), "y".into()]));
        let point = one(
            doc! { "bsonType": "array", "minItems": 2, "maxItems": 2, "items": [
                { "bsonType": "number", "minimum": -180, "maximum": 180 },
                { "bsonType": "number", "minimum": -90, "maximum": 90 },
            ] },
        );
        assert_eq!(point.as_array().unwrap().len(), 2);
    }
}
