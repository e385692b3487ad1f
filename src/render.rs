//! Output forms shared by commands: YAML text for JSON values, and terminal tables.
//! Nothing here decides anything; it only shows what the engine returned.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::Value;

/// A table with the house style.
pub fn table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    // Off a terminal (CI logs, pipes) there is no width to fit; keep lines readable.
    // A pseudo-terminal may report no columns at all; treat that like no terminal.
    if t.width().is_none_or(|w| w < 40) {
        t.set_width(140);
    }
    if crate::cli::style::enabled() {
        t.enforce_styling();
    }
    t
}

/// Block-style YAML for a JSON value, with keys in their given order. Strings that YAML
/// would read as something else are double-quoted (JSON quoting is valid YAML).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                out.push_str(&pad);
                out.push_str(&scalar_str(k));
                out.push(':');
                nested(child, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for child in a {
                out.push_str(&pad);
                out.push('-');
                match child {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        emit(child, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => nested(child, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn nested(child: &Value, indent: usize, out: &mut String) {
    match child {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(child, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit(child, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => scalar_str(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn scalar_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./ ".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !s.ends_with(' ')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_round_trips_through_our_parser() {
        let v = json!({
            "a": 1, "b": "true", "c": "$type", "d": [1, {"x": "y", "z": []}], "e": {},
            "f": "tenant_id_1_email_1", "g": null, "h": [[1, 2]], "i": "two words"
        });
        let text = to_yaml(&v);
        let back = caas_core::base::yaml::parse(&text).unwrap().value;
        assert_eq!(back, v, "{text}");
    }
}
