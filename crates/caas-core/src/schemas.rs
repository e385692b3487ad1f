//! JSON Schemas for editors, derived from the Rust types the files are read into, so an
//! editor's completion and caas's reader cannot disagree: specs, migration files, seed
//! files and caas.toml. Committed under `schemas/`; `caas schema json-schema --check`
//! keeps them current.

use schemars::JsonSchema;
use serde_json::Value;

/// One schema and the file it is committed as.
pub struct EditorSchema {
    /// What it describes, as `--kind` names it.
    pub kind: &'static str,
    /// Path relative to the project root.
    pub file: &'static str,
    /// Pretty JSON with a trailing newline (the committed file's exact text).
    pub text: String,
}

/// Every editor schema, the spec's first.
pub fn all() -> Vec<EditorSchema> {
    vec![
        EditorSchema {
            kind: "spec",
            file: crate::spec::META_SCHEMA_FILE,
            text: crate::spec::meta_schema_json(),
        },
        derived::<crate::migrate::MigrationFile>("migration", "schemas/caas-migration.schema.json"),
        derived::<crate::seed::fixtures::SeedFile>("seed", "schemas/caas-seed.schema.json"),
        derived::<crate::config::Config>("config", "schemas/caas-toml.schema.json"),
    ]
}

/// The schema of one kind (`spec`, `migration`, `seed`, `config`).
pub fn of_kind(kind: &str) -> Option<EditorSchema> {
    all().into_iter().find(|s| s.kind == kind)
}

fn derived<T: JsonSchema>(kind: &'static str, file: &'static str) -> EditorSchema {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value: Value = serde_json::to_value(schema).expect("schema serialises");
    let name = file.rsplit('/').next().unwrap_or(file);
    value["$id"] = format!("https://caas.dev/schemas/{name}").into();
    let mut text = serde_json::to_string_pretty(&value).expect("schema serialises");
    text.push('\n');
    EditorSchema { kind, file, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_refuses_an_unknown_top_level_key() {
        for s in all() {
            let schema: Value = serde_json::from_str(&s.text).unwrap();
            let v = jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", s.kind));
            let bogus = serde_json::json!({ "no_such_key_anywhere": 1 });
            assert!(!v.is_valid(&bogus), "{} accepts an unknown key", s.kind);
        }
    }
}
