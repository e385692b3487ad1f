//! Checks of the compiled form, which the spec alone cannot answer: index names and key
//! patterns must stay distinct after caas adds the `tenant_id` prefix and retention
//! indexes. `project::lint` runs them beside the spec analyzers.

use std::collections::{HashMap, HashSet};

use super::{compile_indexes, to_json, CompiledIndex};
use crate::base::diagnostic::{dotted, Finding};
use crate::spec::{Domain, LoadedSpec, SoftDelete};
use crate::tenancy::Placement;

/// Index names and key patterns must be distinct in every form the spec compiles to:
/// the shared form (with `tenant_id` prefixes) and, for `saas`, the dedicated form.
pub fn duplicate_indexes(loaded: &LoadedSpec) -> Vec<Finding> {
    let spec = &loaded.spec;
    let mut out = Vec::new();
    let forms: Vec<(bool, &str)> = match (spec.domain, spec.is_tenant_scoped()) {
        (Domain::Saas, _) => vec![
            (true, "the shared form"),
            (false, "the Pro/Enterprise form"),
        ],
        (_, scoped) => vec![(scoped, "")],
    };
    let mut reported = HashSet::new();
    for (shared, form) in forms {
        let placement = Placement {
            database: String::new(),
            collection: spec.collection.clone(),
            shared_by_tenants: shared,
            tenant: None,
        };
        let compiled = compile_indexes(spec, &placement);
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut patterns: HashMap<String, usize> = HashMap::new();
        // Compiled indexes start with the spec's, in order; caas-added ones follow.
        let offset = compiled.len()
            - spec.indexes.len()
            - usize::from(matches!(
                &spec.soft_delete,
                Some(SoftDelete::DeletedAt {
                    retention_days: Some(_),
                    ..
                })
            ));
        for (j, ix) in compiled.iter().enumerate() {
            let i = j.checked_sub(offset).filter(|i| *i < spec.indexes.len());
            let pattern = format!("{:?}{:?}", ix.keys, ix.options.get("collation"));
            let clash = names
                .insert(&ix.name, j)
                .map(|first| ("name", first))
                .or_else(|| patterns.insert(pattern, j).map(|first| ("keys", first)));
            let (Some(i), Some((what, first))) = (i, clash) else {
                continue;
            };
            if !reported.insert(i) {
                continue;
            }
            let keys_at = format!("/indexes/{i}/keys");
            let other = first.checked_sub(offset).map_or_else(
                || "an index caas adds".to_string(),
                |f| format!("indexes[{f}]"),
            );
            let (message, fix) = clash_finding(what, ix, &other, form);
            out.push(
                Finding::error(
                    "duplicate-index",
                    &loaded.file,
                    loaded.doc.value_pos(&keys_at),
                    dotted(&keys_at),
                )
                .says(message, fix),
            );
        }
    }
    out
}

/// What a clash says and how to fix it; `what` is `name` or `keys`.
fn clash_finding(
    what: &str,
    ix: &CompiledIndex,
    other: &str,
    form: &str,
) -> (String, &'static str) {
    let within = if form.is_empty() {
        String::new()
    } else {
        format!(" in {form}")
    };
    if what == "name" {
        (
            format!(
                "index name `{}` is also the name of {other}{within}",
                ix.name
            ),
            "give one of them an explicit, different `name`",
        )
    } else {
        (
            format!("{other} has the same keys{within}: {}", to_json(&ix.keys)),
            "merge the two indexes; MongoDB keeps one index per key pattern and collation",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedSpec {
        let doc = crate::base::yaml::parse(text).unwrap();
        LoadedSpec {
            file: "schemas/saas/users.yaml".into(),
            relative: Some("saas/users.yaml".into()),
            spec: crate::base::files::decode(&doc).unwrap(),
            doc,
        }
    }

    #[test]
    fn keys_that_clash_only_after_the_tenant_prefix_are_found() {
        let spec = loaded("collection: users\ndomain: saas\nfields:\n  email: { type: string }\nindexes:\n  - keys: { email: 1 }\n  - keys: { tenant_id: 1, email: 1 }\n");
        let got = duplicate_indexes(&spec);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!((got[0].code, got[0].line), ("duplicate-index", 7));
        assert!(
            got[0].message.contains("in the shared form"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn distinct_indexes_pass() {
        let spec = loaded("collection: users\ndomain: saas\nfields:\n  email: { type: string }\n  name: { type: string }\nindexes:\n  - keys: { email: 1 }\n  - keys: { name: 1 }\n");
        assert!(duplicate_indexes(&spec).is_empty());
    }
}
