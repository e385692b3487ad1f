//! Semantic lint: what the meta-schema cannot say, as analyzers in the manner of atlas's
//! `sqlcheck`: one file per concern, each a set of checks over one spec's typed form and
//! positioned document ([`Linter`]), plus the checks across files. None touches a database.
//! Checks of the compiled form (duplicate indexes after `tenant_id` prefixes) live in
//! `compile::check`. To add a rule: put it in the file of its concern, call it from
//! [`Linter::run`], give it a finding code, and a unit test beside it.

mod across;
mod fields;
mod indexes;
mod names;
mod rules;
mod sharding;
mod timeseries;

use indexmap::IndexMap;
use serde_json::Value;

use super::effective::Origin;
use super::load::LoadedSpec;
use super::model::*;
use crate::base::diagnostic::Finding;
use crate::base::yaml::{pointer_segment, Pos};

/// The longest Pro prefix a collection name must leave room for (40-char tenant id + `_`).
const LONGEST_SET_PREFIX: usize = 41;

/// Lint loaded specs: per-file checks, then checks across files. `also_known` are
/// collections defined by files that failed to load (references to them are not errors).
pub fn lint(specs: &[LoadedSpec], also_known: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for s in specs {
        Linter::new(s, &mut findings).run();
    }
    across::across_files(specs, also_known, &mut findings);
    findings.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    findings
}

pub(super) struct Linter<'a> {
    loaded: &'a LoadedSpec,
    spec: &'a CollectionSpec,
    out: &'a mut Vec<Finding>,
}

impl<'a> Linter<'a> {
    fn new(loaded: &'a LoadedSpec, out: &'a mut Vec<Finding>) -> Self {
        Linter {
            loaded,
            spec: &loaded.spec,
            out,
        }
    }

    fn key(&self, pointer: &str) -> Pos {
        self.loaded.doc.key_pos(pointer)
    }

    fn value(&self, pointer: &str) -> Pos {
        self.loaded.doc.value_pos(pointer)
    }

    fn error(
        &mut self,
        code: &'static str,
        pos: Pos,
        pointer: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let f = Finding::error(
            code,
            &self.loaded.file,
            pos,
            crate::base::diagnostic::dotted(pointer),
        )
        .says(message, fix);
        self.out.push(f);
    }

    fn warning(
        &mut self,
        code: &'static str,
        pos: Pos,
        pointer: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let f = Finding::warning(
            code,
            &self.loaded.file,
            pos,
            crate::base::diagnostic::dotted(pointer),
        )
        .says(message, fix);
        self.out.push(f);
    }

    fn run(mut self) {
        self.placement();
        self.names();
        let fields = self.spec.fields.clone();
        for (name, field) in &fields {
            self.field(
                &format!("/fields/{}", pointer_segment(name)),
                name,
                field,
                true,
            );
        }
        self.soft_delete();
        self.time_series();
        self.rules();
        self.indexes();
        self.sharding();
        self.services();
    }

    pub(super) fn declared_list(
        &mut self,
        fields: &IndexMap<String, (Field, Origin)>,
        at: &str,
        names: &[String],
    ) {
        for (i, name) in names.iter().enumerate() {
            if !fields.contains_key(name) {
                self.undeclared(&format!("{at}/{i}"), name, true);
            }
        }
    }

    pub(super) fn undeclared(&mut self, at: &str, name: &str, key_pos: bool) {
        let pos = if key_pos {
            self.key(at)
        } else {
            self.value(at)
        };
        let candidates: Vec<String> = self.spec.effective_fields(None).keys().cloned().collect();
        let fix = match crate::base::diagnostic::closest_name(name, &candidates) {
            Some(best) => format!("did you mean `{best}`? or declare `{name}` under fields"),
            None => format!("declare `{name}` under fields"),
        };
        self.error(
            "undeclared-field",
            pos,
            at,
            format!("field `{name}` is not declared"),
            fix,
        );
    }
}

pub(super) fn value_fits(kind: FieldType, v: &Value) -> bool {
    match kind {
        FieldType::String => v.is_string(),
        FieldType::Int | FieldType::Long => v.as_i64().is_some(),
        FieldType::Double | FieldType::Decimal | FieldType::Number => v.is_number(),
        FieldType::Bool => v.is_boolean(),
        FieldType::Any => true,
        _ => false,
    }
}

/// Lint one spec given as text, as if it were `schemas/<rel>` (for the analyzers' tests).
#[cfg(test)]
pub(super) fn lint_text(rel: &str, text: &str) -> Vec<Finding> {
    let doc = crate::base::yaml::parse(text).expect("test YAML parses");
    let spec = crate::base::files::decode(&doc).expect("test spec decodes");
    let loaded = LoadedSpec {
        file: std::path::PathBuf::from("schemas").join(rel),
        relative: Some(rel.into()),
        doc,
        spec,
    };
    lint(&[loaded], &[])
}

/// `(code, line, column)` of each finding, for compact assertions.
#[cfg(test)]
pub(super) fn places(findings: &[Finding]) -> Vec<(&'static str, usize, usize)> {
    findings
        .iter()
        .map(|f| (f.code, f.line, f.column))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_spec_has_no_findings() {
        let text = "collection: users\ndomain: saas\nfields:\n  email: { type: string }\nindexes:\n  - keys: { email: 1 }\n";
        assert_eq!(places(&lint_text("saas/users.yaml", text)), vec![]);
    }
}
