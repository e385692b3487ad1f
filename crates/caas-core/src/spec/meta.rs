//! The JSON Schema of the spec format, derived from the Rust types, and its validation
//! of a parsed document into positioned findings.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use super::model::CollectionSpec;
use crate::base::diagnostic::{dotted, Finding};
use crate::base::yaml::{pointer_segment, Document};

/// Where the committed copy lives, relative to the project root.
pub const META_SCHEMA_FILE: &str = "schemas/caas-spec.schema.json";

/// The spec format's JSON Schema (draft-07, which editors' YAML plugins support best).
pub fn meta_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = schemars::generate::SchemaSettings::draft07().into_generator();
        let schema = generator.into_root_schema_for::<CollectionSpec>();
        let mut value = serde_json::to_value(schema).expect("schema serialises");
        value["$id"] = "https://caas.dev/schemas/caas-spec.schema.json".into();
        value
    })
}

/// The schema as pretty JSON with a trailing newline (the committed file's exact text).
pub fn meta_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(meta_schema()).expect("schema serialises");
    s.push('\n');
    s
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| jsonschema::draft7::new(meta_schema()).expect("meta-schema compiles"))
}

/// Validate a document against the meta-schema; each error becomes a finding at the
/// offending key or value, with a fix.
pub fn check(doc: &Document, file: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    for err in validator().iter_errors(&doc.value) {
        report(&err, doc, file, &mut findings);
    }
    // A misspelt required key shows up twice: as unknown, and the real one as missing.
    // The unknown-key finding already says "did you mean"; drop the missing one.
    let typos: Vec<(String, String)> = findings
        .iter()
        .filter(|f| f.code == "unknown-key")
        .filter_map(|f| {
            let parent = f.path.rsplit_once('.').map_or("", |(p, _)| p).to_owned();
            let meant = f
                .fix
                .strip_prefix("did you mean `")?
                .split('`')
                .next()?
                .to_owned();
            Some((parent, meant))
        })
        .collect();
    findings.retain(|f| {
        f.code != "missing-key"
            || !typos.iter().any(|(parent, meant)| {
                *parent == f.path && f.message == format!("missing required key `{meant}`")
            })
    });
    findings.sort_by_key(|a| (a.line, a.column));
    findings.dedup();
    findings
}

fn report(
    err: &jsonschema::ValidationError<'_>,
    doc: &Document,
    file: &Path,
    findings: &mut Vec<Finding>,
) {
    let at = err.instance_path().as_str().to_owned();
    let schema_path = err.schema_path().as_str().to_owned();
    use jsonschema::error::ValidationErrorKind as K;
    match err.kind() {
        K::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(&schema_path);
            for key in unexpected {
                let child = format!("{at}/{}", pointer_segment(key));
                let fix = match crate::base::diagnostic::closest_name(key, &allowed) {
                    Some(best) => format!(
                        "did you mean `{best}`? allowed keys here: {}",
                        allowed.join(", ")
                    ),
                    None => format!("remove it; allowed keys here: {}", allowed.join(", ")),
                };
                findings.push(
                    Finding::error("unknown-key", file, doc.key_pos(&child), dotted(&child))
                        .says(format!("unknown key `{key}`"), fix),
                );
            }
        }
        K::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(plain).collect())
                .unwrap_or_default();
            let got = plain(err.instance());
            let fix = match crate::base::diagnostic::closest_name(&got, &options) {
                Some(best) => format!("did you mean `{best}`? use one of: {}", options.join(", ")),
                None => format!("use one of: {}", options.join(", ")),
            };
            findings.push(
                Finding::error("invalid-value", file, doc.value_pos(&at), dotted(&at))
                    .says(format!("`{got}` is not a valid {}", what(&at)), fix),
            );
        }
        K::Required { property } => {
            let key = plain(property);
            findings.push(
                Finding::error("missing-key", file, doc.value_pos(&at), dotted(&at)).says(
                    format!("missing required key `{key}`"),
                    format!("add `{key}:`"),
                ),
            );
        }
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            report_alternatives(err, context, &at, doc, file, findings)
        }
        _ => {
            findings.push(
                Finding::error("invalid-value", file, doc.value_pos(&at), dotted(&at)).says(
                    err.to_string(),
                    "see schemas/caas-spec.schema.json for this key's form",
                ),
            );
        }
    }
}

/// An `anyOf`/`oneOf` failure: the errors of the alternative the author most likely meant,
/// a stray soft-delete key, or one message for the value.
fn report_alternatives(
    err: &jsonschema::ValidationError<'_>,
    context: &[Vec<jsonschema::ValidationError<'_>>],
    at: &str,
    doc: &Document,
    file: &Path,
    findings: &mut Vec<Finding>,
) {
    // Report the errors of the alternative the author most likely meant: the one
    // whose failures are deepest (its discriminator matched) and fewest.
    let best = context
        .iter()
        .filter(|errs| !errs.is_empty())
        .min_by_key(|errs| {
            let shallow = errs
                .iter()
                .filter(|e| e.instance_path().as_str() == at && !is_key_error(e))
                .count();
            (shallow, errs.len())
        });
    match best {
        Some(errs)
            if errs
                .iter()
                .all(|e| e.instance_path().as_str() != at || is_key_error(e)) =>
        {
            for e in errs {
                report(e, doc, file, findings);
            }
        }
        _ if at == "/soft_delete" && soft_delete_stray_key(err.instance()).is_some() => {
            let (key, style, allowed) = soft_delete_stray_key(err.instance()).expect("checked");
            let kp = format!("/soft_delete/{}", crate::base::yaml::pointer_segment(&key));
            findings.push(
                Finding::error("unknown-key", file, doc.key_pos(&kp), dotted(&kp)).says(
                    format!("`{key}` is not a key of a `{style}` soft delete"),
                    format!("its keys are {allowed}"),
                ),
            );
        }
        _ => {
            let (message, fix) = any_of_help(at, err.instance());
            findings.push(
                Finding::error("invalid-value", file, doc.value_pos(at), dotted(at))
                    .says(message, fix),
            );
        }
    }
}

/// A key that does not belong to a soft delete whose `style` is valid: (key, style, the
/// style's keys). The untagged alternatives would otherwise only say "needs a valid style".
fn soft_delete_stray_key(v: &Value) -> Option<(String, &'static str, &'static str)> {
    let m = v.as_object()?;
    let (style, keys, allowed): (&'static str, &[&str], &'static str) =
        match m.get("style")?.as_str()? {
            "deleted_at" => (
                "deleted_at",
                &["style", "retention_days", "field", "by_field"],
                "style, retention_days, field, by_field",
            ),
            "state_history" => (
                "state_history",
                &["style", "states", "deleted_states", "state_field", "field"],
                "style, states, deleted_states, state_field, field",
            ),
            _ => return None,
        };
    let stray = m.keys().find(|k| !keys.contains(&k.as_str()))?;
    Some((stray.clone(), style, allowed))
}

/// Errors about an object's keys (as opposed to its type or discriminator value).
fn is_key_error(e: &jsonschema::ValidationError<'_>) -> bool {
    use jsonschema::error::ValidationErrorKind as K;
    matches!(
        e.kind(),
        K::AdditionalProperties { .. } | K::Required { .. }
    )
}

/// The messages for untagged alternatives, by the place they occur.
fn any_of_help(at: &str, got: &Value) -> (String, String) {
    let segs: Vec<&str> = at.split('/').collect();
    let got = plain(got);
    match segs.as_slice() {
        ["", "indexes", _, "keys", key] => (
            format!("`{got}` is not an index key kind for `{key}`"),
            "use 1, -1, text, 2dsphere or hashed".into(),
        ),
        ["", "rules", _] => (
            "this rule has no valid form".into(),
            "a rule is one of `{any_of_required: [fields]}`, `{when: {field: value}, require: [fields]}` or `{expr: {...}}`, each with an optional `description`".into(),
        ),
        ["", "soft_delete"] => (
            "`soft_delete` needs a valid `style`".into(),
            "use `style: deleted_at` (optional retention_days, field, by_field) or `style: state_history` (states, deleted_states, state_field, field)".into(),
        ),
        ["", "standard_fields"] | ["", "standard_fields", ..] => (
            "`standard_fields` must be true, false, or a map of names".into(),
            "write `standard_fields: false`, or `{created_at: createdAt, updated_at: updatedAt, version: false}`".into(),
        ),
        _ => (
            format!("`{got}` does not have a valid form here"),
            "see schemas/caas-spec.schema.json for this key's form".into(),
        ),
    }
}

/// A human name for the value at a pointer, used in enum messages.
fn what(at: &str) -> String {
    match at.rsplit('/').next().unwrap_or("") {
        "type" => "field type".into(),
        "domain" => "domain".into(),
        "level" => "validation level".into(),
        "action" => "validation action".into(),
        "granularity" => "granularity".into(),
        "mode" => "access mode".into(),
        "style" => "soft-delete style".into(),
        other => format!("value for `{other}`"),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The keys the schema allows at an `additionalProperties` failure: walk the schema path
/// (minus the failing keyword), resolving `$ref`s, and read the `properties` there.
fn allowed_keys(schema_path: &str) -> Vec<String> {
    let root = meta_schema();
    let mut node = root;
    let segs: Vec<String> = schema_path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let segs = match segs.split_last() {
        Some((last, rest)) if last == "additionalProperties" => rest,
        _ => &segs[..],
    };
    for seg in segs {
        node = resolve(root, node);
        node = match node {
            Value::Object(m) => match m.get(seg.as_str()) {
                Some(n) => n,
                None => return Vec::new(),
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(n) => n,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    }
    let node = resolve(root, node);
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..8 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => match root.pointer(r.trim_start_matches('#')) {
                Some(target) => node = target,
                None => break,
            },
            None => break,
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_uses_draft7_and_knows_every_top_level_key() {
        let s = meta_schema();
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
        let keys: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
        for k in [
            "collection",
            "domain",
            "fields",
            "indexes",
            "rules",
            "soft_delete",
            "time_series",
        ] {
            assert!(keys.iter().any(|x| *x == k), "{k}");
        }
    }

    #[test]
    fn allowed_keys_follow_refs() {
        let findings = check(
            &crate::base::yaml::parse(
                "collection: a\ndomain: saas\nfields:\n  x:\n    type: string\n    requird: true\n",
            )
            .unwrap(),
            Path::new("a.yaml"),
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].fix.starts_with("did you mean `required`?"),
            "{}",
            findings[0].fix
        );
        assert_eq!((findings[0].line, findings[0].column), (6, 5));
    }
}
