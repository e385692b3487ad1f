//! A spec as the YAML a person would write: keys in the spec's order, defaults left out,
//! short fields and index keys on one line (`{ type: string, required: true }`), and
//! comments above the fields they are about. Pure; the text parses back to the same spec.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Value};

use crate::spec::CollectionSpec;

/// A field or index line longer than this is written as a block.
const FLOW_WIDTH: usize = 100;

/// The spec's YAML text: `header` lines as comments first, then the spec, with each
/// `notes` entry (top-level field name -> lines) as comments above that field.
pub fn spec_yaml(
    spec: &CollectionSpec,
    header: &[String],
    notes: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut out = String::from("# yaml-language-server: $schema=../caas-spec.schema.json\n");
    for line in header {
        comment(&mut out, "", line);
    }
    let mut value = serde_json::to_value(spec).expect("a spec serialises");
    prune(&mut value, Context::Spec);
    let Value::Object(top) = value else {
        return out;
    };
    for (key, v) in &top {
        match (key.as_str(), v) {
            ("fields", Value::Object(fields)) => {
                out.push_str("fields:\n");
                for (name, f) in fields {
                    for line in notes.get(name).into_iter().flatten() {
                        comment(&mut out, "  ", line);
                    }
                    entry(&mut out, 1, name, f);
                }
            }
            ("indexes" | "rules" | "access", Value::Array(items)) => {
                let _ = writeln!(out, "{key}:");
                for item in items {
                    list_item(&mut out, 1, item);
                }
            }
            _ => entry(&mut out, 0, key, v),
        }
    }
    out
}

fn comment(out: &mut String, indent: &str, line: &str) {
    for l in line.lines() {
        let _ = writeln!(out, "{indent}# {l}");
    }
}

#[derive(Clone, Copy)]
enum Context {
    Spec,
    Field,
    Index,
    Other,
}

/// Drop the keys whose value is the default, so the file says only what was chosen.
fn prune(v: &mut Value, ctx: Context) {
    let Value::Object(m) = v else { return };
    let defaults: &[(&str, Value)] = match ctx {
        Context::Spec => &[("allow_extra_fields", Value::Bool(false))],
        Context::Field => &[
            ("required", Value::Bool(false)),
            ("nullable", Value::Bool(false)),
            ("unique_items", Value::Bool(false)),
            ("secret", Value::Bool(false)),
        ],
        Context::Index => &[
            ("unique", Value::Bool(false)),
            ("sparse", Value::Bool(false)),
            ("hidden", Value::Bool(false)),
            ("per_tenant", Value::Bool(true)),
        ],
        Context::Other => &[],
    };
    m.retain(|k, v| !defaults.iter().any(|(dk, dv)| dk == k && dv == v));
    if let Context::Spec = ctx {
        if m.get("fields")
            .is_some_and(|f| f.as_object().is_some_and(Map::is_empty))
        {
            m.remove("fields");
        }
    }
    for (k, child) in m.iter_mut() {
        match (ctx, k.as_str()) {
            (Context::Spec | Context::Field, "fields") => {
                if let Value::Object(fields) = child {
                    fields.values_mut().for_each(|f| prune(f, Context::Field));
                }
            }
            (Context::Field, "items") => prune(child, Context::Field),
            (Context::Spec, "indexes") => {
                if let Value::Array(list) = child {
                    list.iter_mut().for_each(|i| prune(i, Context::Index));
                }
            }
            _ => prune(child, Context::Other),
        }
    }
}

/// `key: value` at a depth: a scalar or short map on one line, anything else as a block.
fn entry(out: &mut String, depth: usize, key: &str, v: &Value) {
    let pad = "  ".repeat(depth);
    let k = scalar_text(&Value::String(key.to_owned()));
    match v {
        Value::Object(m) if !m.is_empty() => {
            let flow = flow_text(v);
            if pad.len() + k.len() + 2 + flow.len() <= FLOW_WIDTH && depth > 0 {
                let _ = writeln!(out, "{pad}{k}: {flow}");
            } else {
                let _ = writeln!(out, "{pad}{k}:");
                for (ck, cv) in m {
                    entry(out, depth + 1, ck, cv);
                }
            }
        }
        Value::Array(items) if !items.is_empty() && !items.iter().all(is_scalar) => {
            let _ = writeln!(out, "{pad}{k}:");
            for item in items {
                list_item(out, depth + 1, item);
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}{k}: {}", flow_text(v));
        }
    }
}

/// `- ` followed by a map's entries (the first on the dash's line), or a scalar.
fn list_item(out: &mut String, depth: usize, v: &Value) {
    let pad = "  ".repeat(depth);
    let Value::Object(m) = v else {
        let _ = writeln!(out, "{pad}- {}", flow_text(v));
        return;
    };
    let mut body = String::new();
    for (k, cv) in m {
        entry(&mut body, depth + 1, k, cv);
    }
    let inner = "  ".repeat(depth + 1);
    for (i, line) in body.lines().enumerate() {
        let rest = line.strip_prefix(&inner).unwrap_or(line);
        if i == 0 {
            let _ = writeln!(out, "{pad}- {rest}");
        } else {
            let _ = writeln!(out, "{inner}{rest}");
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// A value on one line, in YAML flow style.
fn flow_text(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    scalar_text(&Value::String(k.clone())),
                    flow_text(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(flow_text).collect::<Vec<_>>().join(", ")
        ),
        other => scalar_text(other),
    }
}

/// A scalar, plain when YAML reads it back as the same string, quoted otherwise.
fn scalar_text(v: &Value) -> String {
    let Value::String(s) = v else {
        return v.to_string();
    };
    let reserved = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _./-$".contains(c))
        && !s.ends_with(' ')
        && !s.contains("  ")
        && !reserved.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        return s.clone();
    }
    if s.chars().all(|c| !c.is_control()) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    serde_json::to_string(s).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_parses_back_to_the_same_spec() {
        let spec: CollectionSpec = serde_json::from_value(serde_json::json!({
            "collection": "users", "domain": "saas", "description": "People: who signs in. Yes, 'quoted'.",
            "fields": {
                "email": { "type": "string", "required": true, "pattern": "^[^@\\s]+@[^@\\s]+$" },
                "on": { "type": "bool" },
                "profile": { "type": "object", "fields": { "bio": { "type": "string", "max_length": 500, "description": "A very long description that goes on and on so that the flow form is far too wide" } } },
                "tags": { "type": "array", "items": { "type": "string", "enum": ["a", "yes", "1"] } }
            },
            "rules": [ { "expr": { "$gt": ["$a", 1] } }, { "any_of_required": ["email", "on"] } ],
            "indexes": [ { "keys": { "email": 1, "meta.kind": -1 }, "unique": true, "collation": { "locale": "en", "strength": 2 } } ]
        })).unwrap();
        let text = spec_yaml(
            &spec,
            &["pulled".into()],
            &BTreeMap::from([("email".into(), vec!["a note".into()])]),
        );
        let doc = crate::base::yaml::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let back: CollectionSpec =
            serde_json::from_value(doc.value.clone()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&spec).unwrap(),
            "{text}"
        );
        assert!(text.contains("  # a note\n  email: {"), "{text}");
        assert!(
            text.contains("on: { type: bool }") || text.contains("'on': { type: bool }"),
            "{text}"
        );
    }
}
