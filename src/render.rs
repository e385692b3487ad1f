//! Output forms shared by commands: YAML text for JSON values, and terminal tables.
//! Nothing here decides anything; it only shows what the engine returned.

use comfy_table::{
    presets::UTF8_FULL_CONDENSED, ColumnConstraint, ContentArrangement, Table, Width,
};
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

/// The longest word a column may hold unbroken; longer ones (hashes, long messages) may
/// still wrap inside.
const LONGEST_UNBROKEN: usize = 48;

/// The table, ready to print: no column is narrower than its longest word (up to
/// [`LONGEST_UNBROKEN`]), so names like `caas_{tenant_id}.users` never split mid-word;
/// the space comes from columns with spaces to wrap at.
pub fn fitted(mut t: Table) -> Table {
    let longest_word = |text: &str| {
        text.split_whitespace()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
    };
    for i in 0..t.column_count() {
        let mut widest = t
            .header()
            .and_then(|h| h.cell_iter().nth(i))
            .map_or(0, |c| longest_word(&c.content()));
        for cell in t.column_cells_iter(i).flatten() {
            widest = widest.max(longest_word(&cell.content()));
        }
        // The boundary counts the cell's padding (one space each side).
        let widest = widest.min(LONGEST_UNBROKEN) as u16 + 2;
        if let Some(col) = t.column_mut(i) {
            col.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(widest)));
        }
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
    fn names_are_never_split_mid_word() {
        let mut t = table(vec!["target".into(), "namespace".into(), "why".into()]);
        t.set_width(70);
        t.add_row(vec![
            "pro:acme".to_owned(),
            "caas_{tenant_id}.user_relationships".to_owned(),
            "a validator loosened behind caas's back, caught by schema diff".to_owned(),
        ]);
        let text = fitted(t).to_string();
        assert!(
            text.contains("caas_{tenant_id}.user_relationships"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= 70), "{text}");
    }

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
