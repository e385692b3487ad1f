//! References between collections in the generated docs: links both ways on each page, and
//! Mermaid diagrams on the index.

use std::fmt::Write;

use indexmap::IndexMap;

use super::page_path;
use crate::spec::{CollectionSpec, Field};

/// Every `ref` in a spec's fields: (field path, referenced collection).
fn refs_of(s: &CollectionSpec) -> Vec<(String, String)> {
    fn walk(prefix: &str, fields: &IndexMap<String, Field>, out: &mut Vec<(String, String)>) {
        for (name, f) in fields {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(r) = &f.reference {
                out.push((path.clone(), r.clone()));
            }
            if let Some(items) = &f.items {
                if let Some(r) = &items.reference {
                    out.push((format!("{path}[]"), r.clone()));
                }
                if let Some(inner) = &items.fields {
                    walk(&format!("{path}[]"), inner, out);
                }
            }
            if let Some(inner) = &f.fields {
                walk(&path, inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", &s.fields, &mut out);
    out
}

/// Link from one collection's page to another's (pages sit in `<domain>/`).
fn link(to: &str, specs: &[&CollectionSpec]) -> String {
    match specs.iter().find(|x| x.collection == to) {
        Some(t) => format!("[`{to}`](../{})", page_path(t)),
        None => format!("`{to}`"),
    }
}

/// What this collection points at, and what points at it.
pub(super) fn references(o: &mut String, s: &CollectionSpec, specs: &[&CollectionSpec]) {
    let out = refs_of(s);
    let mut incoming: Vec<(String, String)> = Vec::new();
    for other in specs {
        for (path, to) in refs_of(other) {
            if to == s.collection {
                incoming.push((other.collection.clone(), path));
            }
        }
    }
    if out.is_empty() && incoming.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## References\n");
    for (path, to) in &out {
        let _ = writeln!(o, "- `{path}` refers to {}", link(to, specs));
    }
    for (from, path) in &incoming {
        let _ = writeln!(o, "- referenced by {} (`{path}`)", link(from, specs));
    }
}

/// A Mermaid diagram of collections and their references: `from -->|field| to`.
pub(super) fn diagram(o: &mut String, specs: &[&CollectionSpec], title: &str) {
    let mut edges = Vec::new();
    for s in specs {
        for (path, to) in refs_of(s) {
            edges.push(format!("  {} -->|\"{path}\"| {to}", s.collection));
        }
    }
    if edges.is_empty() {
        return;
    }
    edges.sort();
    edges.dedup();
    let _ = writeln!(o, "\n{title}\n\n```mermaid\nflowchart LR");
    for e in edges {
        let _ = writeln!(o, "{e}");
    }
    let _ = writeln!(o, "```");
}
