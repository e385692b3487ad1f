//! Rules (`$expr` validators): known operators, declared fields, values that fit.

use serde_json::Value;

use super::*;
use crate::base::yaml::pointer_segment;
use crate::spec::model::*;

impl Linter<'_> {
    pub(super) fn rules(&mut self) {
        let fields = self.spec.effective_fields(None);
        let rules = self.spec.rules.clone();
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("/rules/{i}");
            match rule {
                Rule::AnyOfRequired(r) => {
                    if r.any_of_required.len() < 2 {
                        self.error(
                            "rule",
                            self.value(&format!("{at}/any_of_required")),
                            &at,
                            "`any_of_required` needs at least two fields".into(),
                            "for a single field, set `required: true` on it",
                        );
                    }
                    self.declared_list(
                        &fields,
                        &format!("{at}/any_of_required"),
                        &r.any_of_required,
                    );
                }
                Rule::Conditional(r) => {
                    for (field, value) in &r.when {
                        let p = format!("{at}/when/{}", pointer_segment(field));
                        match fields.get(field) {
                            None => self.undeclared(&p, field, true),
                            Some((f, _)) => {
                                let in_enum =
                                    f.enum_values.as_ref().is_none_or(|e| e.contains(value));
                                if !value_fits(f.kind, value) || !in_enum {
                                    self.error("rule", self.value(&p), &p, format!("`{field}` can never equal {value}, so this rule never applies"), format!("use a value of type `{}`{}", f.kind.as_str(), enum_hint(f)));
                                }
                            }
                        }
                    }
                    self.declared_list(&fields, &format!("{at}/require"), &r.require);
                }
                Rule::Expr(r) => {
                    let p = format!("{at}/expr");
                    if r.expr.len() != 1 || !r.expr.keys().all(|k| k.starts_with('$')) {
                        self.error("rule", self.value(&p), &p, "`expr` must be one aggregation operator, e.g. `{$gt: [\"$ends_at\", \"$starts_at\"]}`".into(), "wrap the condition in a single `$` operator");
                    }
                    for (op_at, op) in unknown_operators(&Value::Object(r.expr.clone()), &p) {
                        let fix = match crate::base::diagnostic::closest_name(
                            &op,
                            &EXPR_OPERATORS
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>(),
                        ) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => {
                                "use an aggregation expression operator (MongoDB's list)".into()
                            }
                        };
                        self.error(
                            "rule",
                            self.key(&op_at),
                            &op_at,
                            format!("`{op}` is not an aggregation expression operator; MongoDB refuses the validator"),
                            fix,
                        );
                    }
                    let mut refs = Vec::new();
                    field_refs(&Value::Object(r.expr.clone()), &mut refs);
                    for name in refs {
                        if !fields.contains_key(&name) {
                            self.undeclared(&p, &name, false);
                        }
                    }
                }
                Rule::JsonSchema(r) => self.json_schema_rule(&at, r),
                Rule::Query(r) => self.query_rule(&at, r),
            }
        }
    }

    fn json_schema_rule(&mut self, at: &str, r: &JsonSchemaRule) {
        let p = format!("{at}/json_schema");
        let mut bad = Vec::new();
        unknown_keywords(&Value::Object(r.json_schema.clone()), &p, &mut bad);
        for (kw_at, kw) in bad {
            self.error(
                            "rule",
                            self.key(&kw_at),
                            &kw_at,
                            format!("`{kw}` is not a `$jsonSchema` keyword MongoDB supports; it refuses the validator"),
                            "use the keywords of MongoDB's $jsonSchema (bsonType, properties, oneOf, ...); `$ref`, `format` and `default` are not supported",
                        );
        }
    }

    fn query_rule(&mut self, at: &str, r: &QueryRule) {
        let p = format!("{at}/query");
        for key in r.query.keys() {
            let fix = match key.as_str() {
                            "$jsonSchema" => "write the constraint as fields, or as a `json_schema` rule",
                            "$expr" => "write it as an `expr` rule",
                            "$where" | "$near" | "$nearSphere" | "$text" => "MongoDB refuses this operator in a validator; express the condition with `expr`",
                            _ => continue,
                        };
            let kp = format!("{p}/{}", pointer_segment(key));
            self.error(
                "rule",
                self.key(&kp),
                &kp,
                format!("`{key}` cannot be a query rule"),
                fix,
            );
        }
    }
}

/// The `$jsonSchema` keywords MongoDB supports (draft 4 without `$ref`, `format`,
/// `default`, `definitions` and `integer`, plus `bsonType`).
const JSON_SCHEMA_KEYWORDS: &[&str] = &[
    "bsonType",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "dependencies",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "title",
    "description",
    "encrypt",
    "encryptMetadata",
];

/// Keywords of a schema (and the schemas nested in it) that MongoDB does not support.
fn unknown_keywords(schema: &Value, at: &str, out: &mut Vec<(String, String)>) {
    let Value::Object(m) = schema else { return };
    for (k, v) in m {
        let p = format!("{at}/{}", pointer_segment(k));
        if !JSON_SCHEMA_KEYWORDS.contains(&k.as_str()) {
            out.push((p.clone(), k.clone()));
            continue;
        }
        match (k.as_str(), v) {
            ("properties" | "patternProperties", Value::Object(props)) => {
                for (name, sub) in props {
                    unknown_keywords(sub, &format!("{p}/{}", pointer_segment(name)), out);
                }
            }
            ("allOf" | "anyOf" | "oneOf" | "items", Value::Array(list)) => {
                for (i, sub) in list.iter().enumerate() {
                    unknown_keywords(sub, &format!("{p}/{i}"), out);
                }
            }
            ("not" | "items" | "additionalProperties" | "additionalItems", sub) => {
                unknown_keywords(sub, &p, out)
            }
            _ => {}
        }
    }
}

/// MongoDB's aggregation expression operators (as of 8.0), the ones `$expr` accepts.
const EXPR_OPERATORS: &[&str] = &[
    "$abs",
    "$acos",
    "$acosh",
    "$add",
    "$allElementsTrue",
    "$and",
    "$anyElementTrue",
    "$arrayElemAt",
    "$arrayToObject",
    "$asin",
    "$asinh",
    "$atan",
    "$atan2",
    "$atanh",
    "$avg",
    "$binarySize",
    "$bitAnd",
    "$bitNot",
    "$bitOr",
    "$bitXor",
    "$bsonSize",
    "$ceil",
    "$cmp",
    "$concat",
    "$concatArrays",
    "$cond",
    "$convert",
    "$cos",
    "$cosh",
    "$dateAdd",
    "$dateDiff",
    "$dateFromParts",
    "$dateFromString",
    "$dateSubtract",
    "$dateToParts",
    "$dateToString",
    "$dateTrunc",
    "$dayOfMonth",
    "$dayOfWeek",
    "$dayOfYear",
    "$degreesToRadians",
    "$divide",
    "$eq",
    "$exp",
    "$filter",
    "$first",
    "$firstN",
    "$floor",
    "$getField",
    "$gt",
    "$gte",
    "$hour",
    "$ifNull",
    "$in",
    "$indexOfArray",
    "$indexOfBytes",
    "$indexOfCP",
    "$isArray",
    "$isNumber",
    "$isoDayOfWeek",
    "$isoWeek",
    "$isoWeekYear",
    "$last",
    "$lastN",
    "$let",
    "$literal",
    "$ln",
    "$log",
    "$log10",
    "$lt",
    "$lte",
    "$ltrim",
    "$map",
    "$max",
    "$maxN",
    "$median",
    "$mergeObjects",
    "$meta",
    "$millisecond",
    "$min",
    "$minN",
    "$minute",
    "$mod",
    "$month",
    "$multiply",
    "$ne",
    "$not",
    "$objectToArray",
    "$or",
    "$percentile",
    "$pow",
    "$radiansToDegrees",
    "$rand",
    "$range",
    "$reduce",
    "$regexFind",
    "$regexFindAll",
    "$regexMatch",
    "$replaceAll",
    "$replaceOne",
    "$reverseArray",
    "$round",
    "$rtrim",
    "$sampleRate",
    "$second",
    "$setDifference",
    "$setEquals",
    "$setField",
    "$setIntersection",
    "$setIsSubset",
    "$setUnion",
    "$sin",
    "$sinh",
    "$size",
    "$slice",
    "$sortArray",
    "$split",
    "$sqrt",
    "$stdDevPop",
    "$stdDevSamp",
    "$strLenBytes",
    "$strLenCP",
    "$strcasecmp",
    "$substr",
    "$substrBytes",
    "$substrCP",
    "$subtract",
    "$sum",
    "$switch",
    "$tan",
    "$tanh",
    "$toBool",
    "$toDate",
    "$toDecimal",
    "$toDouble",
    "$toHashedIndexKey",
    "$toInt",
    "$toLong",
    "$toLower",
    "$toObjectId",
    "$toString",
    "$toUpper",
    "$toUUID",
    "$trim",
    "$trunc",
    "$tsIncrement",
    "$tsSecond",
    "$type",
    "$unsetField",
    "$week",
    "$year",
    "$zip",
];

/// Keys that look like operators (`$name`) and are not expression operators, with their
/// JSON pointers. Arguments of `$literal` are not looked into.
fn unknown_operators(v: &Value, at: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", pointer_segment(k));
                if k.starts_with('$') && !EXPR_OPERATORS.contains(&k.as_str()) {
                    out.push((p.clone(), k.clone()));
                }
                if k != "$literal" {
                    out.extend(unknown_operators(x, &p));
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.extend(unknown_operators(x, &format!("{at}/{i}")));
            }
        }
        _ => {}
    }
    out
}

/// Field names referenced as `"$name"` (not `"$$var"`) inside an expression.
fn field_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with('$') && !s.starts_with("$$") => {
            let top = s[1..].split('.').next().unwrap_or("").to_owned();
            if !top.is_empty() && !out.contains(&top) {
                out.push(top);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| field_refs(x, out)),
        Value::Object(m) => m.values().for_each(|x| field_refs(x, out)),
        _ => {}
    }
}

fn enum_hint(f: &Field) -> String {
    match &f.enum_values {
        Some(values) => format!(
            " from its enum: {}",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lint_text, places};

    #[test]
    fn an_unknown_expression_operator_is_named_with_the_closest() {
        let text = "collection: events\ndomain: saas\nfields:\n  starts_at: { type: date }\n  ends_at: { type: date }\nrules:\n  - expr: { $gtee: [$ends_at, $starts_at] }\n";
        let got = lint_text("saas/events.yaml", text);
        assert_eq!(places(&got).len(), 1, "{got:#?}");
        assert!(got[0].fix.contains("$gte"), "{}", got[0].fix);
    }

    #[test]
    fn a_rule_on_an_undeclared_field_is_found() {
        let text = "collection: events\ndomain: saas\nfields:\n  starts_at: { type: date }\nrules:\n  - expr: { $gt: [$ends_at, $starts_at] }\n";
        let got = lint_text("saas/events.yaml", text);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].message.contains("ends_at"), "{}", got[0].message);
    }

    #[test]
    fn raw_rules_refuse_what_mongodb_refuses_and_say_where() {
        let text = "collection: things\ndomain: saas\nfields:\n  a: { type: any }\nrules:\n  - json_schema: { properties: { a: { oneOf: [ { format: email } ] } } }\n  - query: { $where: 'true' }\n  - json_schema: { properties: { a: { oneOf: [ { bsonType: int } ] } } }\n";
        let got = lint_text("saas/things.yaml", text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].message.contains("`format`"), "{}", got[0].message);
        assert_eq!(got[0].line, 6, "{got:#?}");
        assert!(got[1].message.contains("`$where`"), "{}", got[1].message);
    }
}
