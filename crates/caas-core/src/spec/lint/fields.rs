//! Fields: names, reserved names, enums that break their own rules, soft-delete fields.

use std::collections::HashSet;

use serde_json::Value;

use super::*;
use crate::base::yaml::pointer_segment;
use crate::spec::model::*;

impl Linter<'_> {
    pub(super) fn field(&mut self, at: &str, name: &str, f: &Field, top: bool) {
        if let Some(why) = bad_field_name(name) {
            self.error(
                "invalid-name",
                self.key(at),
                at,
                format!("invalid field name `{name}`: {why}"),
                "rename the field (letters, digits and `_`)",
            );
        }
        if top {
            self.reserved(at, name, f);
        }
        self.restrictions(at, f);
        self.values(at, f);
        self.shape(at, name, f);
        if let Some(items) = &f.items {
            self.field(&format!("{at}/items"), name, items, false);
        }
        if let Some(fields) = &f.fields {
            for (child, cf) in fields {
                self.field(
                    &format!("{at}/fields/{}", pointer_segment(child)),
                    child,
                    cf,
                    false,
                );
            }
        }
    }

    /// Restrictions that fit the field's type, and ranges that some value can pass.
    fn restrictions(&mut self, at: &str, f: &Field) {
        let kind = f.kind;
        let mismatched: [(&str, bool, bool); 8] = [
            ("pattern", f.pattern.is_some(), kind == FieldType::String),
            (
                "min_length",
                f.min_length.is_some(),
                kind == FieldType::String,
            ),
            (
                "max_length",
                f.max_length.is_some(),
                kind == FieldType::String,
            ),
            ("min", f.min.is_some(), kind.is_numeric()),
            ("max", f.max.is_some(), kind.is_numeric()),
            ("min_items", f.min_items.is_some(), kind == FieldType::Array),
            ("max_items", f.max_items.is_some(), kind == FieldType::Array),
            ("unique_items", f.unique_items, kind == FieldType::Array),
        ];
        for (key, present, fits) in mismatched {
            if present && !fits {
                let p = format!("{at}/{key}");
                self.error(
                    "restriction-type",
                    self.key(&p),
                    &p,
                    format!(
                        "`{key}` does not apply to a field of type `{}`",
                        kind.as_str()
                    ),
                    format!("remove `{key}`, or change the type to one it applies to"),
                );
            }
        }
        for (lo, hi, lk, hk) in [
            (
                f.min_length.map(|v| v as f64),
                f.max_length.map(|v| v as f64),
                "min_length",
                "max_length",
            ),
            (f.min, f.max, "min", "max"),
            (
                f.min_items.map(|v| v as f64),
                f.max_items.map(|v| v as f64),
                "min_items",
                "max_items",
            ),
        ] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    let p = format!("{at}/{lk}");
                    self.error(
                        "empty-range",
                        self.value(&p),
                        &p,
                        format!("`{lk}` ({lo}) is greater than `{hk}` ({hi}): no value can pass"),
                        format!("swap or correct `{lk}` and `{hk}`"),
                    );
                }
            }
        }
    }

    /// The pattern compiles, the enum is consistent, a `ref` sits on an id-shaped field.
    fn values(&mut self, at: &str, f: &Field) {
        let kind = f.kind;
        if let Some(pattern) = &f.pattern {
            if let Err(e) = fancy_regex::Regex::new(pattern) {
                let p = format!("{at}/pattern");
                let why = e.to_string();
                self.error(
                    "invalid-pattern",
                    self.value(&p),
                    &p,
                    format!("`{pattern}` is not a valid regular expression: {why}"),
                    "fix the pattern; in YAML, single-quote it so backslashes stay literal",
                );
            }
        }
        if let Some(values) = &f.enum_values {
            self.enum_values(&format!("{at}/enum"), f, values);
        }
        if f.reference.is_some() && !reference_shaped(f) {
            let p = format!("{at}/ref");
            self.error(
                "ref-type",
                self.key(&p),
                &p,
                format!(
                    "`ref` on a `{}` field: a reference holds another document's id",
                    kind.as_str()
                ),
                "put `ref` on an object_id, string or uuid field (or an array of them), or remove it",
            );
        }
    }

    /// Arrays say what their items are, objects what their fields are, and the keys that
    /// shape a value (`items`, `fields`, `secret`) sit on a type they apply to.
    fn shape(&mut self, at: &str, name: &str, f: &Field) {
        let kind = f.kind;
        match kind {
            FieldType::Array if f.items.is_none() => {
                self.error(
                    "untyped-array",
                    self.key(at),
                    at,
                    format!("array `{name}` does not say what its items are"),
                    "add `items: {type: ...}` (use `type: any` for mixed items)",
                );
            }
            FieldType::Object if f.fields.is_none() && f.allow_extra_fields != Some(true) => {
                self.error("empty-object", self.key(at), at, format!("object `{name}` declares no fields and allows no extra fields, so only `{{}}` would pass"), "add `fields:`, or `allow_extra_fields: true` for free-form data");
            }
            _ => {}
        }
        if f.items.is_some() && kind != FieldType::Array {
            let p = format!("{at}/items");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                format!("`items` applies to arrays, not `{}`", kind.as_str()),
                "remove `items`, or set `type: array`",
            );
        }
        if (f.fields.is_some() || f.allow_extra_fields.is_some()) && kind != FieldType::Object {
            let p = format!("{at}/fields");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                format!("`fields` applies to objects, not `{}`", kind.as_str()),
                "remove `fields`, or set `type: object`",
            );
        }
        if f.secret && !matches!(kind, FieldType::String | FieldType::Binary) {
            let p = format!("{at}/secret");
            self.error(
                "restriction-type",
                self.key(&p),
                &p,
                "`secret` marks a hashed string or binary value".into(),
                "set the type to `string` (a hash) or `binary`",
            );
        }
    }

    /// Names caas adds itself must not be declared again.
    pub(super) fn reserved(&mut self, at: &str, name: &str, f: &Field) {
        let standard = self.spec.standard_field_names();
        let why = if name == "tenant_id" && self.spec.is_tenant_scoped() {
            Some("caas adds `tenant_id` to every tenant-scoped collection")
        } else if standard.iter().flatten().any(|s| s == name) {
            Some("it is a standard field (created_at, updated_at, __v) that caas adds")
        } else {
            None
        };
        if let Some(why) = why {
            self.error(
                "reserved-field",
                self.key(at),
                at,
                format!("field `{name}` is declared, but {why}"),
                "remove the declaration (or switch the standard field off with `standard_fields`)",
            );
        }
        if self.soft_delete_names().contains(&name.to_string()) {
            self.error(
                "reserved-field",
                self.key(at),
                at,
                format!("field `{name}` is declared, but `soft_delete` adds it"),
                "remove the declaration",
            );
        }
        if name == "_id" && matches!(f.kind, FieldType::Array) {
            self.error(
                "invalid-id",
                self.value(&format!("{at}/type")),
                at,
                "`_id` cannot be an array".into(),
                "use object_id, string, uuid or another scalar type",
            );
        }
    }

    pub(super) fn soft_delete_names(&self) -> Vec<String> {
        match &self.spec.soft_delete {
            Some(SoftDelete::DeletedAt {
                field, by_field, ..
            }) => vec![field.clone(), by_field.clone()],
            Some(SoftDelete::StateHistory {
                state_field, field, ..
            }) => vec![state_field.clone(), field.clone()],
            None => Vec::new(),
        }
    }

    pub(super) fn enum_values(&mut self, at: &str, f: &Field, values: &[Value]) {
        if values.is_empty() {
            self.error(
                "empty-enum",
                self.value(at),
                at,
                "`enum` is empty: no value can pass".into(),
                "list the allowed values, or remove `enum`",
            );
            return;
        }
        let mut seen = HashSet::new();
        for (i, v) in values.iter().enumerate() {
            let p = format!("{at}/{i}");
            if !seen.insert(v.to_string()) {
                self.error(
                    "duplicate-enum",
                    self.value(&p),
                    &p,
                    format!("enum value {v} is listed twice"),
                    "remove the repeat",
                );
            }
            if v.is_null() {
                if !f.nullable {
                    self.error("enum-type", self.value(&p), &p, "`null` is in the enum of a field that is not nullable".into(), "remove `null`, or set `nullable: true` (null is then allowed without listing it)");
                }
                continue;
            }
            if value_fits(f.kind, v) {
                if let Some(why) = breaks_own_rules(f, v) {
                    self.error(
                        "enum-restricted",
                        self.value(&p),
                        &p,
                        format!("enum value {v} {why}, so no document can hold it"),
                        "correct the value, or the field's restriction",
                    );
                }
            }
            if !value_fits(f.kind, v) {
                self.error(
                    "enum-type",
                    self.value(&p),
                    &p,
                    format!(
                        "enum value {v} is not of the field's type `{}`",
                        f.kind.as_str()
                    ),
                    format!(
                        "write a value of type `{}` (quote strings, no quotes on numbers)",
                        f.kind.as_str()
                    ),
                );
            }
        }
    }

    pub(super) fn soft_delete(&mut self) {
        if let Some(SoftDelete::StateHistory {
            states,
            deleted_states,
            ..
        }) = &self.spec.soft_delete
        {
            if states.is_empty() {
                self.error("soft-delete", self.value("/soft_delete/states"), "/soft_delete/states", "`states` is empty".into(), "list the states, initial state first, e.g. [active, deleted, suspended, archived]");
            }
            for (i, d) in deleted_states.iter().enumerate() {
                if !states.contains(d) {
                    let p = format!("/soft_delete/deleted_states/{i}");
                    self.error(
                        "soft-delete",
                        self.value(&p),
                        &p,
                        format!("deleted state `{d}` is not one of the states"),
                        format!(
                            "add `{d}` to `states`, or use one of: {}",
                            states.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// Why an enum value breaks its own field's pattern, length or range, if it does.
fn breaks_own_rules(f: &Field, v: &Value) -> Option<String> {
    if let Some(text) = v.as_str() {
        let chars = text.chars().count() as u64;
        if let Some(p) = &f.pattern {
            if let Ok(re) = fancy_regex::Regex::new(p) {
                if matches!(re.is_match(text), Ok(false)) {
                    return Some(format!("does not match the field's pattern `{p}`"));
                }
            }
        }
        if f.min_length.is_some_and(|m| chars < m) {
            return Some(format!(
                "is shorter than min_length {}",
                f.min_length.unwrap_or(0)
            ));
        }
        if f.max_length.is_some_and(|m| chars > m) {
            return Some(format!(
                "is longer than max_length {}",
                f.max_length.unwrap_or(0)
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if f.min.is_some_and(|m| n < m) {
            return Some(format!("is below min {}", f.min.unwrap_or(0.0)));
        }
        if f.max.is_some_and(|m| n > m) {
            return Some(format!("is above max {}", f.max.unwrap_or(0.0)));
        }
    }
    None
}

/// Whether a field can hold a reference: an id-like scalar, or an array of them.
fn reference_shaped(f: &Field) -> bool {
    let id_like =
        |k: FieldType| matches!(k, FieldType::ObjectId | FieldType::String | FieldType::Uuid);
    match f.kind {
        FieldType::Array => f.items.as_ref().is_some_and(|i| id_like(i.kind)),
        k => id_like(k),
    }
}

fn bad_field_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('$') {
        Some("names starting with `$` are reserved for operators")
    } else if name.contains('.') {
        Some("a `.` in a field name cannot be queried with dot notation")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lint_text, places};

    #[test]
    fn reserved_and_malformed_field_names_are_refused() {
        let text = "collection: users\ndomain: saas\nfields:\n  tenant_id: { type: string }\n  $bad: { type: string }\n";
        let got = places(&lint_text("saas/users.yaml", text));
        assert_eq!(
            got.iter().filter(|p| p.0 == "invalid-name").count(),
            1,
            "{got:?}"
        );
        assert!(
            got.iter().any(|p| p.1 == 4),
            "tenant_id is reserved: {got:?}"
        );
    }

    #[test]
    fn an_enum_value_that_breaks_its_own_pattern_is_found() {
        let text = "collection: users\ndomain: saas\nfields:\n  code: { type: string, pattern: '^[a-z]+$', enum: [ok, NOT] }\n";
        let got = lint_text("saas/users.yaml", text);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].message.contains("pattern"), "{}", got[0].message);
    }
}
