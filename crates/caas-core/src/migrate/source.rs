//! Migration files: `migrations/V0003__normalize_phone.yaml`. Declarative YAML steps (no
//! JavaScript runtime), loaded with positions so every error names file, line and column,
//! and a checksum of the canonical content so formatting-only edits (comments, CRLF,
//! quoting, indentation) do not count as changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::base::diagnostic::{dotted, Finding};
use crate::base::files;
use crate::base::yaml::{self, Document};
use crate::spec::{Domain, IndexSpec};
use crate::tenancy::Tier;

/// One migration file's content.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationFile {
    /// What the migration does and why.
    pub description: String,
    /// `tenant` (the saas collections of every tenant target) or a platform domain.
    pub scope: Scope,
    /// Only tenants of these tiers (tenant scope). Default: every tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<Tier>>,
    /// Write past the collections' validators (`bypassDocumentValidation`). For transitional
    /// migrations that bring legacy documents up to the current schema, whose intermediate
    /// states the current validator rejects. Default false.
    #[serde(default)]
    pub bypass_validation: bool,
    pub up: Vec<Step>,
    #[serde(default)]
    pub down: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Tenant,
    Platform,
    Billing,
    Analytics,
    Security,
}

impl Scope {
    /// The spec domain whose collections the migration may name.
    pub fn domain(self) -> Domain {
        match self {
            Scope::Tenant => Domain::Saas,
            Scope::Platform => Domain::Platform,
            Scope::Billing => Domain::Billing,
            Scope::Analytics => Domain::Analytics,
            Scope::Security => Domain::Security,
        }
    }
}

/// A step. Collections are logical names; caas maps them to each target's physical name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// `updateMany` with an update document or an aggregation pipeline.
    UpdateMany(UpdateStep),
    /// Like update_many, in batches by `_id`, with a checkpoint so a crash resumes.
    Backfill(BackfillStep),
    RenameField(RenameStep),
    /// Set a field where it is missing.
    SetDefault(SetDefaultStep),
    UnsetField(UnsetStep),
    CreateIndex(CreateIndexStep),
    DropIndex(DropIndexStep),
    /// Run a pipeline on a collection and `$merge` the result into another.
    Aggregate(AggregateStep),
    /// Insert reference documents (upserted by `key`, so reruns change nothing).
    InsertDocuments(InsertStep),
    /// A raw database command (escape hatch). `{collection}` placeholders in string values
    /// are replaced by physical names, e.g. `collMod: "{users}"`. Must be idempotent.
    Command(CommandStep),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStep {
    pub collection: String,
    #[serde(default)]
    pub filter: serde_json::Map<String, Value>,
    /// An update document (`{$set: ...}`) or a pipeline (`[{$set: ...}]`).
    pub update: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillStep {
    pub collection: String,
    #[serde(default)]
    pub filter: serde_json::Map<String, Value>,
    pub update: Value,
    /// Documents per batch (default 500).
    #[serde(default = "default_batch")]
    pub batch_size: u32,
}

fn default_batch() -> u32 {
    500
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameStep {
    pub collection: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDefaultStep {
    pub collection: String,
    pub field: String,
    pub value: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsetStep {
    pub collection: String,
    pub field: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexStep {
    pub collection: String,
    /// As in a spec's `indexes` (keys, name, unique, partial, ...).
    pub index: IndexSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropIndexStep {
    pub collection: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateStep {
    pub collection: String,
    pub pipeline: Vec<serde_json::Map<String, Value>>,
    /// Logical collection the results are merged into (`$merge` on `on`, default `_id`).
    pub into: String,
    #[serde(default)]
    pub on: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertStep {
    pub collection: String,
    /// Fields that identify a document (upsert key), e.g. `[code]`.
    pub key: Vec<String>,
    pub documents: Vec<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandStep {
    pub command: IndexMap<String, Value>,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::UpdateMany(_) => "update_many",
            Step::Backfill(_) => "backfill",
            Step::RenameField(_) => "rename_field",
            Step::SetDefault(_) => "set_default",
            Step::UnsetField(_) => "unset_field",
            Step::CreateIndex(_) => "create_index",
            Step::DropIndex(_) => "drop_index",
            Step::Aggregate(_) => "aggregate",
            Step::InsertDocuments(_) => "insert_documents",
            Step::Command(_) => "command",
        }
    }

    /// The logical collections a step names.
    pub fn collections(&self) -> Vec<&str> {
        match self {
            Step::UpdateMany(s) => vec![&s.collection],
            Step::Backfill(s) => vec![&s.collection],
            Step::RenameField(s) => vec![&s.collection],
            Step::SetDefault(s) => vec![&s.collection],
            Step::UnsetField(s) => vec![&s.collection],
            Step::CreateIndex(s) => vec![&s.collection],
            Step::DropIndex(s) => vec![&s.collection],
            Step::Aggregate(s) => vec![&s.collection, &s.into],
            Step::InsertDocuments(s) => vec![&s.collection],
            Step::Command(_) => vec![],
        }
    }

    /// The filter the step narrows documents with, if it takes one.
    pub fn filter(&self) -> Option<&serde_json::Map<String, Value>> {
        match self {
            Step::UpdateMany(s) => Some(&s.filter),
            Step::Backfill(s) => Some(&s.filter),
            _ => None,
        }
    }
}

/// A migration found on disk.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    /// From the file name: `normalize_phone`.
    pub name: String,
    pub file: PathBuf,
    pub checksum: String,
    pub body: MigrationFile,
    pub doc: Document,
}

/// File name form: `V<digits>__<name>.yaml`.
pub fn parse_file_name(file: &Path) -> Result<(u32, String), String> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .ok_or("a migration file ends in .yaml")?;
    let rest = stem.strip_prefix('V').ok_or(
        "a migration file name starts with `V` and a version, e.g. V0003__normalize_phone.yaml",
    )?;
    let (version, title) = rest.split_once("__").ok_or("the version and the name are separated by two underscores, e.g. V0003__normalize_phone.yaml")?;
    let version: u32 = version
        .parse()
        .map_err(|_| format!("`{version}` is not a version number; use digits, e.g. V0003"))?;
    if version == 0 {
        return Err("versions start at 1".into());
    }
    if title.is_empty() || !title.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{title}` is not a valid migration name; use letters, digits and `_`"
        ));
    }
    Ok((version, title.to_owned()))
}

/// sha256 of the canonical JSON of the parsed document: comments, line endings, quoting
/// and layout do not change it; any change of content does.
pub fn checksum(value: &Value) -> String {
    let canonical = serde_json::to_string(value).expect("json");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Read every migration under `dir`; `check` lints each parsed file (see
/// [`super::check::load`]), and a migration with findings is left out. Findings come in
/// file order.
pub fn read_dir(
    dir: &Path,
    check: &dyn Fn(&Path, &Document, &MigrationFile) -> Vec<Finding>,
) -> (Vec<Migration>, Vec<Finding>) {
    let mut out = Vec::new();
    let (files, mut findings) = match list_files(dir) {
        Ok(listed) => listed,
        Err(f) => return (out, vec![f]),
    };
    let mut versions: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for file in files {
        if file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || n.ends_with(".md"))
        {
            continue;
        }
        let start = yaml::Pos { line: 1, col: 1 };
        let (version, name) = match parse_file_name(&file) {
            Ok(v) => v,
            Err(why) => {
                findings.push(Finding::error("migration-name", &file, start, "").says(
                    format!("bad migration file name: {why}"),
                    "rename the file to V<version>__<name>.yaml",
                ));
                continue;
            }
        };
        if let Some(other) = versions.insert(version, file.clone()) {
            findings.push(Finding::error("duplicate-version", &file, start, "").says(
                format!("version {version} is also used by {}", other.display()),
                "give each migration its own version number",
            ));
            continue;
        }
        match read_one(&file, check) {
            Ok((body, doc, mut f)) => {
                if f.is_empty() {
                    out.push(Migration {
                        version,
                        name,
                        file: file.clone(),
                        checksum: checksum(&doc.value),
                        body,
                        doc,
                    });
                }
                findings.append(&mut f);
            }
            Err(mut f) => findings.append(&mut f),
        }
    }
    (out, findings)
}

/// The regular files in the migration folder, sorted; YAML names that are not regular
/// files (a FIFO would block a read forever) are reported and never opened. A missing
/// folder has no migrations.
#[allow(clippy::result_large_err)] // a Finding is the error every loader returns
fn list_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Finding>), Finding> {
    let mut findings = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut f: Vec<PathBuf> = Vec::new();
            for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if p.is_file() {
                    f.push(p);
                } else if !p.is_dir()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                {
                    // A FIFO, socket or device: never read (a FIFO would block forever).
                    findings.push(
                        Finding::warning(
                            "skipped-file",
                            &p,
                            crate::base::yaml::Pos { line: 1, col: 1 },
                            "",
                        )
                        .says(
                            "not a regular file (a FIFO, socket or device); skipped".to_string(),
                            "replace it with a regular file",
                        ),
                    );
                }
            }
            f.sort();
            Ok((f, findings))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), findings)),
        Err(e) => Err(
            Finding::error("unreadable", dir, Default::default(), "").says(
                format!("cannot read the migration folder: {e}"),
                "check `[project] migrations` in caas.toml",
            ),
        ),
    }
}

fn read_one(
    file: &Path,
    check: &dyn Fn(&Path, &Document, &MigrationFile) -> Vec<Finding>,
) -> Result<(MigrationFile, Document, Vec<Finding>), Vec<Finding>> {
    let doc = files::read_yaml(file)?;
    let body: MigrationFile = files::decode(&doc).map_err(|e| {
        let fix = if let Some(hint) = crate::base::diagnostic::did_you_mean(&e.message) {
            hint
        } else if e.message.contains("unknown variant") {
            "a step is one of: update_many, backfill, rename_field, set_default, unset_field, create_index, drop_index, aggregate, insert_documents, command".into()
        } else if e.message.contains("missing field") {
            "add the missing key".into()
        } else {
            "see the migration file format in the README".into()
        };
        let pos = if e.message.contains("unknown variant") || e.message.contains("unknown field") {
            doc.key_pos(&e.pointer)
        } else {
            doc.value_pos(&e.pointer)
        };
        vec![Finding::error("invalid-migration", file, pos, dotted(&e.pointer)).says(e.message, fix)]
    })?;
    let findings = check(file, &doc, &body);
    Ok((body, doc, findings))
}

/// Create `V<next>__<name>.yaml` in `dir` from the template; returns its path.
pub fn new_file(dir: &Path, name: &str, scope: &str) -> anyhow::Result<PathBuf> {
    use anyhow::{bail, Context};
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
        bail!("migration name `{name}` must be letters, digits and `_` (e.g. normalize_phone)");
    }
    if !["tenant", "platform", "billing", "analytics", "security"].contains(&scope) {
        bail!("--scope `{scope}` must be one of tenant, platform, billing, analytics, security");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let next = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_file_name(&e.path()).ok().map(|(v, _)| v))
        .max()
        .unwrap_or(0)
        + 1;
    let file = dir.join(format!("V{next:04}__{name}.yaml"));
    let text = format!(
        "# yaml-language-server: $schema=../schemas/caas-migration.schema.json\n# {name}: see the README's migration section for every step.\ndescription: {}\nscope: {scope}\n# tiers: [pro, enterprise]   # tenant scope only; default: every tier\nup: []\n  # - update_many:\n  #     collection: users\n  #     filter: {{ status: invited }}\n  #     update: {{ $set: {{ pass_change: true }} }}\ndown: []\n",
        name.replace('_', " ")
    );
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_take_the_next_version_and_refuse_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_file(dir.path(), "first_step", "tenant").unwrap();
        let b = new_file(dir.path(), "second", "platform").unwrap();
        assert!(a.ends_with("V0001__first_step.yaml"), "{}", a.display());
        assert!(b.ends_with("V0002__second.yaml"), "{}", b.display());
        let doc = yaml::parse(&std::fs::read_to_string(&b).unwrap()).unwrap();
        assert!(files::decode::<MigrationFile>(&doc).is_ok());
        assert!(new_file(dir.path(), "bad name", "tenant").is_err());
        assert!(new_file(dir.path(), "ok", "galaxy").is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name(Path::new("V0003__normalize_phone.yaml")),
            Ok((3, "normalize_phone".into()))
        );
        assert!(parse_file_name(Path::new("V3_x.yaml"))
            .unwrap_err()
            .contains("two underscores"));
        assert!(parse_file_name(Path::new("0003__x.yaml"))
            .unwrap_err()
            .contains("starts with `V`"));
        assert!(parse_file_name(Path::new("Vabc__x.yaml"))
            .unwrap_err()
            .contains("not a version number"));
        assert!(parse_file_name(Path::new("V1__bad-name.yaml"))
            .unwrap_err()
            .contains("not a valid migration name"));
    }

    #[test]
    fn checksum_ignores_formatting_but_not_content() {
        let a = yaml::parse("description: x\nscope: tenant\nup: []\n")
            .unwrap()
            .value;
        let crlf = yaml::parse("# a comment\r\ndescription: 'x'\r\nscope:   tenant\r\nup: [ ]\r\n")
            .unwrap()
            .value;
        let flow = yaml::parse("{description: \"x\", scope: tenant, up: []}")
            .unwrap()
            .value;
        let changed = yaml::parse("description: y\nscope: tenant\nup: []\n")
            .unwrap()
            .value;
        assert_eq!(checksum(&a), checksum(&crlf));
        assert_eq!(checksum(&a), checksum(&flow));
        assert_ne!(checksum(&a), checksum(&changed));
        assert_eq!(checksum(&a).len(), 64);
    }
}
