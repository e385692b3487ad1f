//! Checks across files: one file per collection, and every `ref` names a collection.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;

use crate::base::diagnostic::Finding;
use crate::base::yaml::pointer_segment;
use crate::spec::load::LoadedSpec;
use crate::spec::model::*;

/// Checks that need every spec: duplicate collections, references to unknown collections.
pub(super) fn across_files(specs: &[LoadedSpec], also_known: &[String], out: &mut Vec<Finding>) {
    let mut first: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in specs {
        if let Some(prev) = first.insert(&s.spec.collection, &s.file) {
            out.push(
                Finding::error(
                    "duplicate-collection",
                    &s.file,
                    s.doc.value_pos("/collection"),
                    "collection",
                )
                .says(
                    format!(
                        "collection `{}` is also defined in {}",
                        s.spec.collection,
                        prev.display()
                    ),
                    "rename one of them, or delete the duplicate file",
                ),
            );
        }
    }
    let mut names: Vec<String> = specs.iter().map(|s| s.spec.collection.clone()).collect();
    names.extend(also_known.iter().cloned());
    for s in specs {
        let mut refs = Vec::new();
        collect_refs("/fields", &s.spec.fields, &mut refs);
        for (at, target) in refs {
            if !names.contains(&target) {
                let p = format!("{at}/ref");
                let fix = match crate::base::diagnostic::closest_name(&target, &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "name a collection defined by a spec in this project".into(),
                };
                out.push(
                    Finding::error(
                        "unknown-ref",
                        &s.file,
                        s.doc.value_pos(&p),
                        crate::base::diagnostic::dotted(&p),
                    )
                    .says(format!("`ref: {target}` names no collection"), fix),
                );
            }
        }
    }
}

fn collect_refs(at: &str, fields: &IndexMap<String, Field>, out: &mut Vec<(String, String)>) {
    for (name, f) in fields {
        let p = format!("{at}/{}", pointer_segment(name));
        if let Some(r) = &f.reference {
            out.push((p.clone(), r.clone()));
        }
        if let Some(items) = &f.items {
            if let Some(r) = &items.reference {
                out.push((format!("{p}/items"), r.clone()));
            }
            if let Some(nested) = &items.fields {
                collect_refs(&format!("{p}/items/fields"), nested, out);
            }
        }
        if let Some(nested) = &f.fields {
            collect_refs(&format!("{p}/fields"), nested, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(rel: &str, text: &str) -> LoadedSpec {
        let doc = crate::base::yaml::parse(text).unwrap();
        LoadedSpec {
            file: std::path::PathBuf::from("schemas").join(rel),
            relative: Some(rel.into()),
            spec: crate::base::files::decode(&doc).unwrap(),
            doc,
        }
    }

    #[test]
    fn duplicate_collections_and_unknown_refs_are_found() {
        let a = loaded(
            "saas/users.yaml",
            "collection: users\ndomain: saas\nfields:\n  team: { type: string, ref: teams }\n",
        );
        let b = loaded(
            "platform/users.yaml",
            "collection: users\ndomain: platform\nfields:\n  a: { type: string }\n",
        );
        let mut out = Vec::new();
        across_files(&[a.clone(), b], &[], &mut out);
        let codes: Vec<&str> = out.iter().map(|f| f.code).collect();
        assert_eq!(codes, vec!["duplicate-collection", "unknown-ref"]);
        let mut out = Vec::new();
        across_files(&[a], &["teams".into()], &mut out);
        assert!(
            out.is_empty(),
            "a collection of a file that failed to load is known: {out:#?}"
        );
    }
}
