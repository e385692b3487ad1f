//! `caas schema pull --merge`: a re-pull that keeps what people wrote. The live side decides
//! fields, types, indexes and options; the existing spec keeps its descriptions, owner,
//! access, refs, secrets and rules (a hand-written rule the live side lacks stays, and
//! `schema apply` adds it). Every difference the live side brought is reported. Pure.

use indexmap::IndexMap;
use serde_json::Value;

use crate::spec::{CollectionSpec, Field, Rule};

/// The merged spec, and what the live side changed (one line each).
pub fn merge(existing: &CollectionSpec, pulled: &CollectionSpec) -> (CollectionSpec, Vec<String>) {
    let mut out = pulled.clone();
    let mut changes = Vec::new();
    out.description = existing.description.clone().or(out.description);
    out.owner = existing.owner.clone();
    out.access = existing.access.clone();
    out.fields = merge_fields(&existing.fields, &pulled.fields, "", &mut changes);
    out.rules = existing.rules.clone();
    for r in &pulled.rules {
        if !existing.rules.iter().any(|e| same_rule(e, r)) {
            changes.push(format!("rule added on the live side: {}", rule_text(r)));
            out.rules.push(r.clone());
        }
    }
    for r in &existing.rules {
        if !pulled.rules.iter().any(|p| same_rule(p, r)) {
            changes.push(format!(
                "rule kept though the live validator lacks it (`schema apply` adds it): {}",
                rule_text(r)
            ));
        }
    }
    for ix in &mut out.indexes {
        match existing.indexes.iter().find(|e| e.keys == ix.keys) {
            Some(e) => ix.description = e.description.clone(),
            None => changes.push(format!(
                "index added on the live side: {}",
                keys_text(&ix.keys)
            )),
        }
    }
    for e in &existing.indexes {
        if !pulled.indexes.iter().any(|p| p.keys == e.keys) {
            changes.push(format!(
                "index gone from the live side: {}",
                keys_text(&e.keys)
            ));
        }
    }
    for (what, a, b) in [
        (
            "validation",
            json(&existing.validation),
            json(&pulled.validation),
        ),
        (
            "time_series",
            json(&existing.time_series),
            json(&pulled.time_series),
        ),
        (
            "soft_delete",
            json(&existing.soft_delete),
            json(&pulled.soft_delete),
        ),
        (
            "standard_fields",
            json(&existing.standard_fields),
            json(&pulled.standard_fields),
        ),
        (
            "tenant_scoped",
            json(&existing.is_tenant_scoped()),
            json(&pulled.is_tenant_scoped()),
        ),
        (
            "allow_extra_fields",
            json(&existing.allow_extra_fields),
            json(&pulled.allow_extra_fields),
        ),
    ] {
        if a != b {
            changes.push(format!("{what}: {a} -> {b}"));
        }
    }
    (out, changes)
}

fn merge_fields(
    existing: &IndexMap<String, Field>,
    pulled: &IndexMap<String, Field>,
    path: &str,
    changes: &mut Vec<String>,
) -> IndexMap<String, Field> {
    let at = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let mut out = IndexMap::new();
    for (name, p) in pulled {
        let mut f = p.clone();
        match existing.get(name) {
            None => changes.push(format!(
                "field `{}` added on the live side ({})",
                at(name),
                p.kind.as_str()
            )),
            Some(e) => {
                keep_hand_written(e, &mut f);
                let (a, b) = (field_shape(e), field_shape(p));
                if a != b {
                    changes.push(format!("field `{}` changed: {a} -> {b}", at(name)));
                }
                if let (Some(ef), Some(pf)) = (&e.fields, &p.fields) {
                    f.fields = Some(merge_fields(ef, pf, &at(name), changes));
                }
            }
        }
        out.insert(name.clone(), f);
    }
    for name in existing.keys().filter(|n| !pulled.contains_key(*n)) {
        changes.push(format!("field `{}` gone from the live side", at(name)));
    }
    out
}

/// Descriptions, refs and the secret flag come from the person, not the server.
fn keep_hand_written(e: &Field, f: &mut Field) {
    f.description = e.description.clone().or(f.description.take());
    f.reference = e.reference.clone();
    f.secret = e.secret;
    if let (Some(ei), Some(fi)) = (&e.items, &mut f.items) {
        keep_hand_written(ei, fi);
    }
}

/// A field's type, presence and bounds, without nested fields and prose.
fn field_shape(f: &Field) -> String {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in ["description", "fields", "ref", "secret"] {
            m.remove(k);
        }
        m.retain(|_, v| !matches!(v, Value::Bool(false)));
    }
    v.to_string()
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    let strip = |r: &Rule| {
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("description");
        }
        v
    };
    strip(a) == strip(b)
}

fn rule_text(r: &Rule) -> String {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("description");
    }
    v.to_string()
}

fn keys_text(keys: &IndexMap<String, crate::spec::IndexDirection>) -> String {
    serde_json::to_value(keys)
        .unwrap_or(Value::Null)
        .to_string()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).unwrap_or(Value::Null).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> CollectionSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hand_edits_survive_and_live_changes_are_reported() {
        let existing = spec(serde_json::json!({
            "collection": "users", "domain": "saas", "owner": "identity-service", "description": "People.",
            "fields": { "email": { "type": "string", "required": true, "description": "Sign-in address." },
                        "nick": { "type": "string" } },
            "rules": [ { "any_of_required": ["email", "nick"], "description": "One way to reach them." } ],
            "indexes": [ { "keys": { "email": 1 }, "unique": true, "description": "Sign-in lookup." } ]
        }));
        let pulled = spec(serde_json::json!({
            "collection": "users", "domain": "saas",
            "fields": { "email": { "type": "string", "required": true, "max_length": 254 },
                        "age": { "type": "int" } },
            "indexes": [ { "keys": { "email": 1 }, "unique": true }, { "keys": { "age": 1 } } ]
        }));
        let (merged, changes) = merge(&existing, &pulled);
        assert_eq!(merged.owner.as_deref(), Some("identity-service"));
        assert_eq!(merged.description.as_deref(), Some("People."));
        assert_eq!(
            merged.fields["email"].description.as_deref(),
            Some("Sign-in address.")
        );
        assert_eq!(merged.fields["email"].max_length, Some(254));
        assert_eq!(merged.rules.len(), 1, "the hand-written rule stays");
        assert_eq!(
            merged.indexes[0].description.as_deref(),
            Some("Sign-in lookup.")
        );
        let text = changes.join("\n");
        for expected in [
            "field `age` added",
            "field `nick` gone",
            "field `email` changed",
            "index added on the live side: {\"age\":1}",
            "rule kept",
        ] {
            assert!(text.contains(expected), "{expected}:\n{text}");
        }
    }
}
