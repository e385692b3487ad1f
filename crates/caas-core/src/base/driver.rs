//! Driver and server errors as people read them: one line with code, name and message,
//! the failing rules of a rejected document (code 121), credentials redacted. Every command
//! that talks to the server explains its errors here.

use bson::{Bson, Document};
use mongodb::error::{Error, ErrorKind, WriteFailure};

/// A server or driver error as one line: code, name and message (credentials redacted).
pub fn describe(e: &Error) -> String {
    let text = match e.kind.as_ref() {
        ErrorKind::Command(c) => format!("code {} ({}): {}", c.code, c.code_name, c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 121 => {
            let reasons = w
                .details
                .as_ref()
                .map(validation_reasons)
                .unwrap_or_default();
            if reasons.is_empty() {
                format!("code 121: {}", w.message)
            } else {
                format!(
                    "code 121: document failed validation: {}",
                    reasons.join("; ")
                )
            }
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => format!("code {}: {}", w.code, w.message),
        ErrorKind::Io(io) => format!("the connection to the server was lost ({io}); check that the server runs, then rerun"),
        ErrorKind::ServerSelection { .. } => "no server answered (server selection timed out); check that the server runs, then rerun".to_string(),
        ErrorKind::ConnectionPoolCleared { .. } => "the connection to the server was lost (pool cleared); check that the server runs, then rerun".to_string(),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern error {}: {}", w.code, w.message)
        }
        _ => e.to_string(),
    };
    super::redact::redact(text.lines().next().unwrap_or(""))
}

/// A rejected write as a typed error: for validation failures (code 121), the failing
/// rule from the server's errInfo (field path and reason), not a raw dump.
pub fn explain_write_error(e: &Error, namespace: &str) -> super::error::Error {
    let code = code_of(e);
    let message = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 121 => {
            let reasons = w
                .details
                .as_ref()
                .map(validation_reasons)
                .unwrap_or_default();
            format!(
                "the document fails the collection's validator: {}",
                if reasons.is_empty() {
                    w.message.clone()
                } else {
                    reasons.join("; ")
                }
            )
        }
        _ => format!("write refused: {}", describe(e)),
    };
    super::error::Error::Server {
        code,
        namespace: namespace.to_owned(),
        message,
    }
}

/// The server's error code, when the server answered with one.
pub fn code_of(e: &Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// The reasons in a code-121 errInfo: each failing rule with its field path.
pub fn validation_reasons(details: &Document) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(d) = details.get_document("details") {
        walk(d, "", &mut out);
    }
    out.sort();
    out.dedup();
    out
}

const NESTED: [&str; 4] = [
    "schemaRulesNotSatisfied",
    "details",
    "propertiesNotSatisfied",
    "clausesNotSatisfied",
];

/// The strings of an array field (an empty list when absent).
fn strings(d: &Document, key: &str) -> Vec<String> {
    d.get_array(key)
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn walk(d: &Document, path: &str, out: &mut Vec<String>) {
    let op = d.get_str("operatorName").unwrap_or("");
    let mut nested = false;
    for key in NESTED {
        let children: Vec<&Document> = match d.get(key) {
            Some(Bson::Array(list)) => list.iter().filter_map(Bson::as_document).collect(),
            // `$and` clauses carry their details as one document.
            Some(Bson::Document(inner)) => vec![inner],
            _ => continue,
        };
        nested = true;
        for inner in children {
            let p = match inner.get_str("propertyName") {
                Ok(name) if path.is_empty() => name.to_owned(),
                Ok(name) => format!("{path}.{name}"),
                Err(_) => path.to_owned(),
            };
            walk(inner, &p, out);
        }
    }
    match op {
        "required" => {
            let missing: Vec<String> = strings(d, "missingProperties");
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{path}.")
            };
            for m in missing {
                out.push(format!("`{at}{m}` is required"));
            }
        }
        "additionalProperties" => {
            let extra: Vec<String> = strings(d, "additionalProperties");
            out.push(format!(
                "`{}` not allowed{}",
                extra.join("`, `"),
                if path.is_empty() {
                    String::new()
                } else {
                    format!(" in `{path}`")
                }
            ));
        }
        "$expr" => {
            let rule = d
                .get_document("specifiedAs")
                .ok()
                .and_then(|s| s.get("$expr"))
                .map(|e| e.clone().into_relaxed_extjson().to_string())
                .unwrap_or_default();
            out.push(format!("rule `$expr: {rule}` is false"));
        }
        "" => {}
        op if !nested || d.contains_key("reason") => {
            let reason = d.get_str("reason").unwrap_or("does not match");
            let at = if path.is_empty() {
                "document".to_string()
            } else {
                format!("`{path}`")
            };
            let value = d
                .get("consideredValue")
                .map(|v| format!(" (value {v})"))
                .unwrap_or_default();
            out.push(format!("{at}: {op} {reason}{value}"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn reasons_name_field_paths() {
        let info = doc! { "failingDocumentId": 1, "details": { "operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
            { "operatorName": "properties", "propertiesNotSatisfied": [
                { "propertyName": "email", "details": [ { "operatorName": "pattern", "specifiedAs": { "pattern": "^x" }, "reason": "regular expression did not match", "consideredValue": "bob" } ] }
            ] },
            { "operatorName": "required", "specifiedAs": { "required": ["name"] }, "missingProperties": ["name"] },
        ] } };
        let r = validation_reasons(&info);
        assert_eq!(
            r,
            vec![
                "`email`: pattern regular expression did not match (value \"bob\")".to_string(),
                "`name` is required".to_string()
            ]
        );
    }

    #[test]
    fn reasons_inside_and_clauses_with_expr() {
        let info = doc! { "details": { "operatorName": "$and", "clausesNotSatisfied": [
            { "index": 0, "details": { "operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
                { "operatorName": "additionalProperties", "specifiedAs": { "additionalProperties": false }, "additionalProperties": ["San Francisco"] } ] } },
            { "index": 1, "details": { "operatorName": "$expr", "specifiedAs": { "$expr": { "$gt": ["$end_time", "$start_time"] } }, "reason": "expression did not match", "expressionResult": false } },
        ] } };
        let r = validation_reasons(&info);
        assert_eq!(
            r,
            vec![
                "`San Francisco` not allowed".to_string(),
                r#"rule `$expr: {"$gt":["$end_time","$start_time"]}` is false"#.to_string()
            ]
        );
    }
}
